"""`problems.threefry` draws exactly what `jax.random` draws: the same bits, not merely the
same distribution, so that every run keeps its minibatches (exact integer and bit-pattern
comparisons; nothing here depends on floating-point rounding)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from problems import threefry, uniform_indices

SEEDS = (0, 1, 42, 2**31 - 1)
# Counters as the SGD loop has them (int64), past 2³² too, where both take them modulo 2³².
COUNTERS = (0, 1, 7, 1_000_003, 2**31 + 5, 2**32 + 3, 2**40 + 11)


def typed_and_legacy(seed):
    return jax.random.key(seed), jax.random.PRNGKey(seed)


def raw(key):
    return np.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key)


@pytest.mark.parametrize("seed", SEEDS)
def test_fold_in_is_jax_fold_in_bit_for_bit(seed):
    for key in typed_and_legacy(seed):
        for counter in COUNTERS:
            data = jnp.int64(counter)
            ours, theirs = threefry.fold_in(key, data), jax.random.fold_in(key, data)
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            np.testing.assert_array_equal(raw(ours), raw(theirs))


@pytest.mark.parametrize("shape", [(), (1,), (3,), (2, 5)])
def test_uniform_is_jax_uniform_bit_for_bit(shape):
    for seed in SEEDS:
        for key in typed_and_legacy(seed):
            key = jax.random.fold_in(key, 12345)
            ours = np.asarray(threefry.uniform(key, shape))
            theirs = np.asarray(jax.random.uniform(key, shape, jnp.float64))
            assert ours.shape == theirs.shape == shape
            np.testing.assert_array_equal(ours.view(np.uint64), theirs.view(np.uint64))


def test_the_same_draws_in_a_compiled_loop_over_vmapped_keys():
    """As the SGD loop draws: `fold_in` of the step counter then the indices, for a batch of
    keys under `vmap` inside a `fori_loop`, compiled."""
    keys = jax.random.split(jax.random.key(3), 16)

    def indices(fold, uniform):
        def body(k, total):
            drawn = jax.vmap(lambda key: jnp.floor(uniform(fold(key, k), (4,)) * 1000).astype(jnp.int64))(keys)
            return total.at[k].set(drawn)
        return jax.jit(lambda: jax.lax.fori_loop(0, 50, body, jnp.zeros((50, 16, 4), jnp.int64)))()

    ours = indices(threefry.fold_in, threefry.uniform)
    theirs = indices(jax.random.fold_in, lambda key, shape: jax.random.uniform(key, shape, jnp.float64))
    np.testing.assert_array_equal(ours, theirs)
    assert len(np.unique(np.asarray(ours))) > 900     # the draws vary: not a constant compared with itself


def test_uniform_indices_are_those_of_jax_uniform():
    key = jax.random.key(8)
    expected = jnp.minimum(jnp.floor(jax.random.uniform(key, (64,), jnp.float64) * 37).astype(jnp.int32), 36)
    np.testing.assert_array_equal(uniform_indices(key, 64, 37), expected)


def test_other_implementations_and_settings_go_to_jax_random():
    key = jax.random.key(5, impl="rbg")
    np.testing.assert_array_equal(raw(threefry.fold_in(key, 9)), raw(jax.random.fold_in(key, 9)))
    np.testing.assert_array_equal(threefry.uniform(key, (3,)), jax.random.uniform(key, (3,), jnp.float64))
    with jax.threefry_partitionable(False):
        key = jax.random.key(5)
        np.testing.assert_array_equal(threefry.uniform(key, (3,)), jax.random.uniform(key, (3,), jnp.float64))


def test_a_wrong_rotation_is_caught(monkeypatch):
    """Negative check: the comparison sees a hash with one rotation constant changed."""
    monkeypatch.setattr(threefry, "_ROTATIONS", ((13, 15, 26, 6), (17, 29, 16, 25)))
    key = jax.random.key(0)
    assert not np.array_equal(raw(threefry.fold_in(key, jnp.int64(1))), raw(jax.random.fold_in(key, jnp.int64(1))))
    assert not np.array_equal(threefry.uniform(key, (3,)), jax.random.uniform(key, (3,), jnp.float64))

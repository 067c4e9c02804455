"""The draws of an SGD step, bit for bit those of `jax.random`, with the hash written out.

Every step of SGD folds its counter into the run's key (`fold_in(key, k)`) and draws its
minibatch's indices from the result (`uniform`): two Threefry-2x32 hashes a seed and step.
On the CPU, JAX lowers the hash's 20 rounds as a loop of five iterations (it compiles
faster), so that inside a loop of small SGD steps each step runs two more loops of five
iterations, each of several kernels, and waits on each. Written out as plain array
operations, the rounds fuse into the kernels that use the indices: the rate report's
Monte Carlo runs (128 seeds, d = 5 to 10) took 5–9% less time (`docs/performance.md`).

The same numbers, not new ones: `fold_in` and `uniform` return exactly what
`jax.random.fold_in` and `jax.random.uniform(key, shape, jnp.float64)` return, for typed
and legacy keys of the default implementation `threefry2x32`, with JAX's default
`jax_threefry_partitionable` (`tests/test_threefry.py` compares them bit for bit). Any
other key, or the other setting, is passed to `jax.random` itself.

The hash is Threefry-2x32 with 20 rounds (Salmon, Moraes, Dror and Shaw, "Parallel random
numbers: as easy as 1, 2, 3", SC 2011): rotation constants (13, 15, 26, 6) and
(17, 29, 16, 24) in alternate groups of four rounds, the key schedule's parity constant
0x1BD11BDA, and a key injection with the group's number after each group.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PRNGKeyArray, UInt32

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)
_IMPLEMENTATION = "threefry2x32"
_FLOAT64_MANTISSA = 52
_ONE_BITS = np.array(1.0, np.float64).view(np.uint64)


def threefry2x32(key: tuple[UInt32[ArrayLike, "*k"], UInt32[ArrayLike, "*k"]],
                 count: tuple[UInt32[ArrayLike, "*c"], UInt32[ArrayLike, "*c"]],
                 ) -> tuple[UInt32[Array, "*c"], UInt32[Array, "*c"]]:
    """The Threefry-2x32 hash (20 rounds) of the counter words `count` under the key words
    `key`, elementwise over broadcast arrays of uint32."""
    key0, key1 = (jnp.asarray(word, jnp.uint32) for word in key)
    keys = (key0, key1, key0 ^ key1 ^ _PARITY)
    x0, x1 = (jnp.asarray(word, jnp.uint32) for word in count)
    x0, x1 = x0 + key0, x1 + key1
    for group in range(5):
        for rotation in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = (x1 << np.uint32(rotation)) | (x1 >> np.uint32(32 - rotation))
            x1 = x0 ^ x1
        x0 = x0 + keys[(group + 1) % 3]
        x1 = x1 + keys[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def _words(key) -> UInt32[Array, " 2"] | None:
    """The two words of a threefry key (typed, or legacy of the default implementation), or
    `None` for a key of another implementation."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key) if str(jax.random.key_impl(key)) == _IMPLEMENTATION else None
    if key.dtype == jnp.uint32 and key.shape == (2,) and jax.config.jax_default_prng_impl == _IMPLEMENTATION:
        return key
    return None


def fold_in(key: PRNGKeyArray, data: ArrayLike) -> PRNGKeyArray:
    """`jax.random.fold_in(key, data)`: the key of the same kind (typed or legacy) hashed
    with the counter `(0, data)`, `data` taken modulo 2³² as JAX takes it."""
    words = _words(key)
    if words is None:
        return jax.random.fold_in(key, data)
    folded = jnp.stack(threefry2x32((words[0], words[1]), (np.uint32(0), jnp.asarray(data, dtype=jnp.uint32))))
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(folded, impl=_IMPLEMENTATION)
    return folded


def uniform(key: PRNGKeyArray, shape: tuple[int, ...]) -> Float[Array, "*shape"]:
    """`jax.random.uniform(key, shape, jnp.float64)`: element i (row-major) hashes the
    counter `(0, i)` into 64 bits, whose top 52 fill the mantissa of a float in [1, 2), less 1."""
    words = _words(key)
    size = int(np.prod(shape, dtype=np.int64))
    if words is None or not jax.config.jax_threefry_partitionable or size >= 2**32:
        return jax.random.uniform(key, shape, jnp.float64)
    counts = jax.lax.iota(jnp.uint32, size).reshape(shape)
    high, low = threefry2x32((words[0], words[1]), (jnp.zeros_like(counts), counts))
    bits = (high.astype(jnp.uint64) << np.uint64(32)) | low.astype(jnp.uint64)
    mantissa = (bits >> np.uint64(64 - _FLOAT64_MANTISSA)) | _ONE_BITS
    return jax.lax.bitcast_convert_type(mantissa, jnp.float64) - 1.0


__all__ = ["fold_in", "threefry2x32", "uniform"]

"""One key check for every public function that takes a key.

Typed keys (`jax.random.key`) and legacy `jax.random.PRNGKey` arrays are both accepted
and give the same results for the same seed; anything else is a `TypeError` that names
the argument and what is accepted. The list of entry points is checked against what the
public namespaces actually contain, so a new function that takes a key cannot skip it.
"""

import dataclasses
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import derivatives
import problems
import rates
import rates.dsgd
from derivatives.sgd import MinibatchSGD
from problems import programs

RIDGE = problems.ridge(20, 3, seed=0)
MIXTURE = programs.mixture1d()
SUM = lambda y: jnp.sum(jnp.sign(y))  # noqa: E731
SGD = MinibatchSGD(RIDGE, rates.constant(0.01), 1)
BILEVEL = problems.bilevel.ridge_validation(20, 10, 3, per_feature=True)
WEIGHTED = problems.bilevel.hyper_cleaning(20, 10, 3).inner
WEIGHTED_SGD = MinibatchSGD(WEIGHTED, rates.constant(0.01), 1)

ENTRY_POINTS = {
    "problems.FiniteSumProblem.sample": lambda key: RIDGE.sample(key, 3),
    "problems.Problem.sample": lambda key: RIDGE.sample(key, 3),
    "problems.uniform_indices": lambda key: problems.uniform_indices(key, 3, 20),
    "problems.programs.Program.elbo": lambda key: MIXTURE.elbo(MIXTURE.theta0, key, 16),
    "derivatives.unrolled": lambda key: derivatives.unrolled(RIDGE, RIDGE.theta0, key, step_size=0.01,
                                                             num_steps=5),
    "derivatives.gradient_samples": lambda key: derivatives.gradient_samples(MIXTURE, MIXTURE.theta0, key,
                                                                             "score", 4),
    "derivatives.estimate_gradient": lambda key: derivatives.estimate_gradient(MIXTURE, MIXTURE.theta0, key,
                                                                               "smoothed", 4, eta=0.1),
    "derivatives.base_noise": lambda key: derivatives.base_noise(MIXTURE, key, 4),
    "derivatives.smoothed_gradient": lambda key: derivatives.smoothed_gradient(SUM, jnp.zeros(2), key,
                                                                               num_samples=8),
    **{f"derivatives.{method}.solve": lambda key, method=method: getattr(derivatives, method)().solve(
        SGD, RIDGE.theta0, jnp.zeros(RIDGE.dim), key, 5) for method in ("ForwardMode", "ReverseMode",
                                                                        "ExplicitRecursion", "TangentRecursion")},
    "derivatives.ClosedFormRecursion.solve": lambda key: derivatives.ClosedFormRecursion().solve(
        WEIGHTED_SGD, WEIGHTED.theta0, jnp.zeros(WEIGHTED.dim), key, 5),
    # The protocol's `solve`, as every method implements it.
    "derivatives.DerivativeMethod.solve": lambda key: derivatives.TangentRecursion().solve(
        SGD, RIDGE.theta0, jnp.zeros(RIDGE.dim), key, 5),
    "derivatives.hypergradient": lambda key: derivatives.hypergradient(BILEVEL, BILEVEL.theta0, key,
                                                                       method="stochastic_neumann", num_iterations=3),
    "rates.error_curves": lambda key: rates.error_curves(RIDGE, step_size=0.01, num_steps=5, num_seeds=2,
                                                         key=key, num_checkpoints=3).as_dict(),
    "rates.dsgd.train": lambda key: rates.dsgd.train(MIXTURE, "score", key=key, num_steps=4, log_every=2,
                                                     num_samples=2, num_log_samples=4),
    "rates.dsgd.train_grid": lambda key: rates.dsgd.train_grid(MIXTURE, [0.5, 0.1], key=key, num_steps=4,
                                                               log_every=2, num_samples=2, num_log_samples=4),
}

# `error_curves` documents `key=None` as its default key, `jax.random.key(0)`; `hypergradient`
# takes None for its deterministic methods (a stochastic one then asks for a key).
ACCEPTS_NONE = {"rates.error_curves", "derivatives.hypergradient"}

NAMESPACES = {"problems": problems, "problems.programs": programs, "derivatives": derivatives, "rates": rates,
              "rates.dsgd": rates.dsgd}


def functions_taking_a_key():
    found = set()
    for prefix, module in NAMESPACES.items():
        # What a namespace exports: its `__all__`, or what it defines itself.
        names = getattr(module, "__all__", None) or [
            name for name in dir(module) if getattr(getattr(module, name), "__module__", None) == module.__name__]
        for name in names:
            value = getattr(module, name)
            if name.startswith("_") or inspect.ismodule(value):
                continue
            members = inspect.getmembers(value, inspect.isfunction) if inspect.isclass(value) else [("", value)]
            for member, function in members:
                if member.startswith("_") or not callable(function):
                    continue
                try:
                    parameters = inspect.signature(function).parameters
                except (TypeError, ValueError):
                    continue
                if "key" in parameters:
                    found.add(".".join(filter(None, (prefix, name, member))))
    return found


def test_every_public_function_that_takes_a_key_is_checked_here():
    assert functions_taking_a_key() == set(ENTRY_POINTS)


def as_arrays(result):
    def unpack(value):  # dataclass results (dsgd traces) as plain fields
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value

    leaves = jax.tree.leaves(jax.tree.map(unpack, result, is_leaf=dataclasses.is_dataclass))
    return [np.asarray(leaf) for leaf in leaves]


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_typed_and_legacy_keys_give_the_same_result(name):
    call = ENTRY_POINTS[name]
    typed, legacy = as_arrays(call(jax.random.key(7))), as_arrays(call(jax.random.PRNGKey(7)))
    other = as_arrays(call(jax.random.key(8)))
    assert len(typed) == len(legacy) > 0
    for a, b in zip(typed, legacy):
        np.testing.assert_array_equal(a, b)
    # The comparison sees the key: another seed changes something.
    assert any(not np.array_equal(a, b) for a, b in zip(typed, other))


BAD_KEYS = {
    "None": None,
    "an integer seed": 0,
    "a float": 1.5,
    "float data": np.zeros(2),
    "three words": np.zeros(3, np.uint32),
    "a batch of typed keys": jax.random.split(jax.random.key(0), 2),
    "a batch of legacy keys": jax.random.split(jax.random.PRNGKey(0), 2),
}


@pytest.mark.parametrize("bad", sorted(BAD_KEYS))
@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_anything_else_is_a_type_error_naming_the_key(name, bad):
    if bad == "None" and name in ACCEPTS_NONE:
        pytest.skip("None is this function's documented default key")
    with pytest.raises(TypeError, match=r"key must be a single JAX PRNG key: jax.random.key\(seed\) or a "
                                        r"legacy jax.random.PRNGKey\(seed\) array, got"):
        ENTRY_POINTS[name](BAD_KEYS[bad])


def test_keys_inside_vmap_are_checked_one_at_a_time():
    """Under `vmap` each call sees a single key, typed or legacy, and the draws agree."""
    run = lambda key: derivatives.unrolled(RIDGE, RIDGE.theta0, key, step_size=0.01, num_steps=5)[1]  # noqa: E731
    typed = jax.vmap(run)(jax.random.split(jax.random.key(1), 3))
    legacy = jax.vmap(run)(jax.random.split(jax.random.PRNGKey(1), 3))
    np.testing.assert_array_equal(typed, legacy)

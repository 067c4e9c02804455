"""Hypergradients: every method of `derivatives.hypergradient` against the exact
hypergradient of `problems.bilevel`, against each other where they must agree, against
finite differences taken with the same key, and the error bounds of the approximate
implicit methods with their constants; negative checks show each comparison can fail."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import derivatives
from derivatives import hypergradients as hg
from problems import bilevel, strategies
from rates import hypergradients as rh

FAMILIES = {
    "ridge": lambda: bilevel.ridge_validation(60, 40, 5, seed=1),
    "per_feature_ridge": lambda: bilevel.ridge_validation(60, 40, 5, per_feature=True, seed=2),
    "cleaning_squared": lambda: bilevel.hyper_cleaning(30, 40, 4, seed=3),
    "cleaning_logistic": lambda: bilevel.hyper_cleaning(30, 40, 4, loss="logistic", seed=4),
}


def relative_error(estimate, exact):
    return float(jnp.linalg.norm(estimate - exact) / jnp.linalg.norm(exact))


@given(strategies.bilevel_problems())
def test_the_implicit_method_is_the_exact_hypergradient(problem):
    """At the exact x*, the dense solve reproduces the closed form to 1e-10 relative."""
    theta = problem.theta0
    assert relative_error(hg.hypergradient(problem, theta), problem.hypergradient(theta)) <= 1e-10


@pytest.mark.parametrize("name", FAMILIES)
def test_conjugate_gradient_and_neumann_meet_their_bounds(name):
    """At the exact x*, with `q = 1 − μ/L` (α = 1/L) and `ρ = (√κ − 1)/(√κ + 1)`, κ = L/μ:

        ‖ĥ_k − h‖ ≤ ‖C‖₂ q^k ‖v*‖             (Neumann and the fixed-point recursion),
        ‖ĥ_k − h‖ ≤ 2‖C‖₂ ρ^k ‖v*‖_H / √μ      (conjugate gradient),

    for k = 0 … 40 (docs/theory.md, "Hypergradients"). CG reaches the exact value after d
    iterations (to 1e-8 relative), and the fixed-point recursion equals Neumann's series
    to rounding. Deterministic: no tolerance beyond 1e-12 of rounding."""
    problem = FAMILIES[name]()
    theta = problem.theta0
    exact = problem.hypergradient(theta)
    constants = rh.adjoint_constants(problem, theta)
    for k in (0, 1, 2, 5, 10, 20, 40):
        neumann = hg.hypergradient(problem, theta, method="neumann", num_iterations=k)
        fixed_point = hg.hypergradient(problem, theta, method="fixed_point", num_iterations=k)
        cg = hg.hypergradient(problem, theta, method="cg", num_iterations=k)
        assert float(jnp.linalg.norm(neumann - exact)) <= rh.neumann_bound(constants, k) * (1 + 1e-12) + 1e-14
        assert float(jnp.linalg.norm(cg - exact)) <= rh.conjugate_gradient_bound(constants, k) * (1 + 1e-12) + 1e-14
        np.testing.assert_allclose(fixed_point, neumann, rtol=1e-10, atol=1e-14 * float(jnp.linalg.norm(exact)))
    full = hg.hypergradient(problem, theta, method="cg", num_iterations=problem.dim)
    assert relative_error(full, exact) <= 1e-8


def test_the_neumann_bound_fails_with_the_wrong_contraction():
    """Negative check: the same bound with `q = 1 − 2μ/L` (the rate of a step 2/L) is
    violated by the series at α = 1/L: the comparison can fail."""
    problem = FAMILIES["ridge"]()
    theta = problem.theta0
    exact = problem.hypergradient(theta)
    constants = rh.adjoint_constants(problem, theta)
    errors = [float(jnp.linalg.norm(hg.hypergradient(problem, theta, method="neumann", num_iterations=k) - exact))
              for k in (10, 20, 40)]
    wrong = [constants.cross_norm * (1 - 2 * constants.mu / constants.L) ** k * constants.adjoint_norm
             for k in (10, 20, 40)]
    assert any(e > w for e, w in zip(errors, wrong)), (errors, wrong)


@pytest.mark.parametrize("name", FAMILIES)
def test_unrolled_forward_reverse_and_the_jacobian_agree(name):
    """`Unrolled(K)` in forward and reverse mode, and `∇θG + J_Kᵀ∇ₓG` with `(x_K, J_K)`
    from `derivatives.unrolled` with the same key, agree to 1e-10 relative; `Truncated`
    with T = K equals reverse mode, and with T = 0 keeps only `∇θG(x_K)`."""
    problem = FAMILIES[name]()
    theta, key = problem.theta0, jax.random.key(7)
    step = 0.5 / float(problem.inner.smoothness(theta))
    options = dict(num_steps=30, step_size=step, batch_size=3)
    reverse = hg.hypergradient(problem, theta, key, method="unrolled", **options)
    forward = hg.hypergradient(problem, theta, key, method="unrolled", mode="forward", **options)
    x_k, jac = derivatives.unrolled(problem.inner, theta, key, **options)
    outer_x, outer_theta = problem.outer_gradients(x_k, theta)
    through_jacobian = outer_theta + jac.T @ outer_x
    np.testing.assert_allclose(forward, reverse, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(through_jacobian, reverse, rtol=1e-10, atol=1e-13)
    truncated = hg.hypergradient(problem, theta, key, method="truncated", truncation=30, **options)
    np.testing.assert_allclose(truncated, reverse, rtol=1e-12, atol=1e-14)
    direct = hg.hypergradient(problem, theta, key, method="truncated", truncation=0, **options)
    np.testing.assert_allclose(direct, outer_theta, rtol=1e-12, atol=1e-14)


def test_unrolled_matches_finite_differences_with_the_same_key():
    """Central differences of `θ ↦ G(x_K(θ), θ)`, every evaluation with the same key (so the
    same minibatches), step 1e-5: agreement to 1e-6 relative. Negative check: differences
    taken with a different key per evaluation are off by far more."""
    problem = FAMILIES["per_feature_ridge"]()
    theta, key = problem.theta0, jax.random.key(3)
    options = dict(num_steps=40, step_size=0.5 / float(problem.inner.smoothness(theta)), batch_size=2)

    def value(t, k):
        return problem.outer(derivatives.unrolled(problem.inner, t, k, **options)[0], t)

    estimate = hg.hypergradient(problem, theta, key, method="unrolled", **options)
    basis, step = np.eye(theta.shape[0]), 1e-5
    same_key = np.array([(value(theta + step * e, key) - value(theta - step * e, key)) / (2 * step) for e in basis])
    assert relative_error(estimate, same_key) <= 1e-6
    other_keys = np.array([(value(theta + step * e, jax.random.key(10 + i)) - value(theta - step * e, key))
                           / (2 * step) for i, e in enumerate(basis)])
    assert relative_error(estimate, other_keys) > 1e-2


def test_gradient_descent_unrolling_converges_to_the_exact_hypergradient():
    """Full-batch gradient descent with α = 1/L: the unrolled hypergradient's error falls
    below 1e-8 relative after 2000 steps (linearly, `O(K q^K)`), and truncation to the
    last T steps leaves an error that shrinks with T."""
    problem = FAMILIES["ridge"]()
    theta = problem.theta0
    exact = problem.hypergradient(theta)
    step = 1.0 / float(problem.inner.smoothness(theta))
    errors = [relative_error(hg.hypergradient(problem, theta, method="unrolled", num_steps=k, step_size=step,
                                              batch_size=None), exact) for k in (10, 100, 2000)]
    assert errors[0] > errors[1] > errors[2] and errors[2] <= 1e-8
    truncated = [relative_error(hg.hypergradient(problem, theta, method="truncated", num_steps=2000, truncation=t,
                                                 step_size=step, batch_size=None), exact) for t in (1, 10, 100)]
    assert truncated[0] > truncated[1] > truncated[2]


def _stochastic_mean(problem, theta, method, num_keys):
    keys = jax.random.split(jax.random.key(11), num_keys)
    samples = jax.vmap(lambda k: hg.estimate(problem, theta, k, None, method))(keys)
    return samples.mean(0), samples.std(0, ddof=1) / np.sqrt(num_keys)


def test_stochastic_neumann_is_unbiased_for_the_series_and_reusing_a_batch_is_not():
    """The mean of `StochasticNeumann(k, α, b)` over 4000 keys against `Neumann(k, α)` (its
    expectation, the minibatches being independent across terms): |z| ≤ 5 per component,
    Bonferroni over p ≤ 6 components, false failure ≤ 3.5e-6. Negative check: the same
    series with one minibatch reused for every term, `E[(I − αH_B)^j] ≠ (I − αH)^j`, is
    rejected (|z| > 5 on some component)."""
    problem = FAMILIES["per_feature_ridge"]()
    theta = problem.theta0
    method = hg.StochasticNeumann(num_iterations=8, batch_size=2)
    expected = hg.hypergradient(problem, theta, method=hg.Neumann(num_iterations=8))
    mean, error = _stochastic_mean(problem, theta, method, 4000)
    assert float(jnp.max(jnp.abs(mean - expected) / error)) <= 5.0

    def reused(key):
        inner = problem.inner
        x = inner.solution(theta)
        outer_x, _ = problem.outer_gradients(x, theta)
        batch = inner.sample(key, 2)
        alpha = 1.0 / inner.smoothness(theta)
        adjoint = hg.neumann_series(lambda v: hg.hessian_vector_product(inner, x, theta, v, batch), outer_x, alpha, 8)
        return hg.from_adjoint(problem, x, theta, adjoint)

    samples = jax.vmap(reused)(jax.random.split(jax.random.key(11), 4000))
    z = (samples.mean(0) - expected) / (samples.std(0, ddof=1) / np.sqrt(4000))
    assert float(jnp.max(jnp.abs(z))) > 5.0


def test_a_pytree_theta_gives_the_flattened_hypergradient():
    problem = FAMILIES["per_feature_ridge"]()
    flat = problem.theta0
    tree = {"first": flat[:2], "rest": flat[2:]}
    for method, options in (("implicit", {}), ("cg", dict(num_iterations=3))):
        as_tree = hg.hypergradient(problem, tree, method=method, **options)
        as_array = hg.hypergradient(problem, flat, method=method, **options)
        assert set(as_tree) == {"first", "rest"}
        np.testing.assert_array_equal(jnp.concatenate([as_tree["first"], as_tree["rest"]]), as_array)


def test_methods_compose_with_jit_and_vmap():
    problem = FAMILIES["ridge"]()
    thetas = jnp.array([[0.05], [0.1], [0.2]])
    batched = jax.jit(jax.vmap(lambda t: hg.hypergradient(problem, t, method="cg", num_iterations=5)))(thetas)
    for theta, value in zip(thetas, batched):
        np.testing.assert_allclose(value, hg.hypergradient(problem, theta, method="cg", num_iterations=5),
                                   rtol=1e-12)


@pytest.mark.parametrize("name", ["per_feature_ridge", "cleaning_logistic"])
def test_every_count_in_one_pass_is_each_count_on_its_own(name):
    """`estimates` at counts (7, 0, 30, 1, 7), unsorted and repeated, against `estimate` run
    at each count: the Neumann series, the fixed-point recursion, and the stochastic series
    with the same key (its term j's minibatch depends on j alone). An off-by-one count (the
    estimate at k + 1) would differ by a whole term."""
    problem = FAMILIES[name]()
    theta, key, counts = problem.theta0, jax.random.key(5), [7, 0, 30, 1, 7]
    for method in (hg.Neumann(0), hg.FixedPoint(0), hg.StochasticNeumann(0, batch_size=2)):
        together = method.estimates(problem, theta, key, None, counts)
        alone = [hg.estimate(problem, theta, key, None, dataclasses.replace(method, num_iterations=count))
                 for count in counts]
        np.testing.assert_allclose(together, jnp.stack(alone), rtol=1e-12, atol=1e-15)
        shifted = hg.estimate(problem, theta, key, None, dataclasses.replace(method, num_iterations=31))
        assert relative_error(together[2], shifted) > 1e-6


@pytest.mark.parametrize("counts", [[], [-1, 2]])
def test_partial_sums_reject_bad_counts(counts):
    with pytest.raises(ValueError, match="counts"):
        hg.neumann_partial_sums(lambda v: v, jnp.ones(3), 0.5, counts)
    with pytest.raises(ValueError, match="counts"):
        hg.at_counts(lambda j, state: state, jnp.ones(3), counts)


@pytest.mark.parametrize("method", [hg.Implicit(), hg.ConjugateGradient(4), hg.Neumann(4), hg.FixedPoint(4),
                                    hg.StochasticNeumann(4, batch_size=2), hg.Unrolled(4, 0.1),
                                    hg.Truncated(4, 2, 0.1)], ids=lambda m: type(m).__name__)
def test_every_method_states_its_cost(method):
    cost = method.cost(10, 3)
    assert cost.hessian_vector_products >= 0 and cost.gradients >= 1 and cost.memory.startswith("O(")


@pytest.mark.parametrize("call, message", [
    (lambda p: hg.hypergradient(p, p.theta0, method="newton"), "method must be one of"),
    (lambda p: hg.hypergradient(p, p.theta0, method="cg"), "num_iterations"),
    (lambda p: hg.hypergradient(p, p.theta0, method=hg.Implicit(), num_iterations=3), "options"),
    (lambda p: hg.hypergradient(p, p.theta0, method="stochastic_neumann", num_iterations=3), "needs a key"),
    (lambda p: hg.hypergradient(p, p.theta0, jax.random.key(0), method="truncated", num_steps=3, truncation=4,
                                step_size=0.1), "truncation"),
    (lambda p: hg.hypergradient(p, p.theta0, jax.random.key(0), method="unrolled", num_steps=3, step_size=0.1,
                                mode="sideways"), "mode"),
    (lambda p: hg.hypergradient(p, p.theta0, method="neumann", num_iterations=3, step_size=-1.0), "step_size"),
    (lambda p: hg.hypergradient(p, p.theta0, method="cg", num_iterations=3, x=jnp.zeros(p.dim + 1)), "x must"),
    (lambda p: hg.hypergradient(p, -p.theta0), "theta"),
])
def test_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call(FAMILIES["ridge"]())


@given(st.integers(1, 6))
def test_conjugate_gradient_solves_a_small_system_exactly(size):
    """`conjugate_gradient` on a random SPD system of size n converges in n iterations (to
    1e-9 relative) and stays put afterwards."""
    rng = np.random.default_rng(size)
    factor = rng.standard_normal((size, size))
    matrix = jnp.asarray(factor @ factor.T + size * np.eye(size))
    rhs = jnp.asarray(rng.standard_normal(size))
    solution = jnp.linalg.solve(matrix, rhs)
    for k in (size, size + 3):
        v = hg.conjugate_gradient(lambda u: matrix @ u, rhs, k)
        assert relative_error(v, solution) <= 1e-9

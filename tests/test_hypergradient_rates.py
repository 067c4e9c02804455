"""The rates of hypergradient approximations, checked by the rate machinery: fitted
geometric rates of the Neumann series against the certified `1 − μ/L`, the CG and Neumann
bounds with their constants, and the unrolled hypergradient's error streamed over seeds by
the engine of `rates.error_curves`. Negative checks show that each comparison can fail."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import rates
from derivatives import hypergradients as hg
from problems import bilevel
from rates import fit
from rates import hypergradients as rh

FAMILIES = {
    "ridge": lambda: bilevel.ridge_validation(60, 40, 5, seed=1),
    "per_feature_ridge": lambda: bilevel.ridge_validation(60, 40, 5, per_feature=True, seed=2),
    "cleaning_squared": lambda: bilevel.hyper_cleaning(30, 40, 4, seed=3),
    "cleaning_logistic": lambda: bilevel.hyper_cleaning(30, 40, 4, loss="logistic", seed=4),
}
# Errors below this fraction of ‖h‖ are rounding.
ROUNDING = 1e-13
# How much slower than the certified rate the fitted one may be: the local rate of a sum of
# eigen-components approaches the slowest one from above, with a correction of relative
# size (q₂/q)^k (q₂ the next factor); on ridge at k = 200 … 400 it is 0.09%.
PRE_ASYMPTOTIC = 0.01


def tail_fit(steps, errors, scale):
    """The geometric rate over the second half of the steps whose error is above rounding."""
    above = steps[errors > ROUNDING * scale]
    window = above[above >= above[len(above) // 2]]
    return fit.fit_linear_rate(window, errors[window - 1], start=window[0])


@pytest.mark.parametrize("name", FAMILIES)
def test_the_neumann_series_converges_at_least_at_the_certified_rate(name):
    """`‖ĥ_k − h‖` of `Neumann(k, 1/L)` at x*: under `neumann_bound` at every k of 1 … 400
    (plus 1e-13‖h‖ of rounding), and its geometric rate fitted over the second half of the
    steps above rounding (`rates.fit.fit_linear_rate`, 95%) is as fast as the certified
    `log(1 − μ/L)`, up to the pre-asymptotic 1%. On ridge, where μ = λ_min(H) exactly, it
    is that rate within 2%; a claimed rate `1 − 2μ/L` is refuted by the same fit."""
    problem = FAMILIES[name]()
    constants = rh.adjoint_constants(problem)
    scale = float(np.linalg.norm(problem.hypergradient(problem.theta0)))
    steps = np.arange(1, 401)
    errors = np.sqrt(rh.approximation_errors(problem, None, hg.Neumann(0), steps))
    assert np.all(errors <= rh.neumann_bound(constants, steps) * (1 + 1e-10) + ROUNDING * scale)
    rate = tail_fit(steps, errors, scale)
    certified = np.log(1 - constants.mu / constants.L)
    assert fit.at_least_as_steep_as(rate, certified * (1 - PRE_ASYMPTOTIC)), (rate.slope, certified)
    if name == "ridge":
        assert abs(rate.slope[1] - certified) <= 0.02 * abs(certified), (rate.slope, certified)
        assert not fit.at_least_as_steep_as(rate, np.log(1 - 2 * constants.mu / constants.L))


def test_a_smaller_step_is_caught_by_the_rate_of_the_larger_one():
    """Negative check: the series at α = 1/(2L) converges at `1 − μ/(2L)`, so the fit refutes
    the rate `1 − μ/L` that α = 1/L has."""
    problem = FAMILIES["ridge"]()
    constants = rh.adjoint_constants(problem)
    steps = np.arange(1, 401)
    errors = np.sqrt(rh.approximation_errors(problem, None, hg.Neumann(0, step_size=0.5 / constants.L), steps))
    rate = tail_fit(steps, errors, float(np.linalg.norm(problem.hypergradient(problem.theta0))))
    assert not fit.at_least_as_steep_as(rate, np.log(1 - constants.mu / constants.L) * (1 - PRE_ASYMPTOTIC))


@pytest.mark.parametrize("name", FAMILIES)
def test_conjugate_gradient_is_under_its_bound_and_exact_after_d_iterations(name):
    problem = FAMILIES[name]()
    constants = rh.adjoint_constants(problem)
    steps = np.arange(0, problem.dim + 1)
    errors = np.sqrt(rh.approximation_errors(problem, None, hg.ConjugateGradient(0), steps))
    assert np.all(errors <= rh.conjugate_gradient_bound(constants, steps) * (1 + 1e-10) + 1e-15)
    assert errors[-1] <= 1e-9 * np.linalg.norm(problem.hypergradient(problem.theta0))


def test_the_neumann_bound_refuses_a_step_above_one_over_L():
    constants = rh.adjoint_constants(FAMILIES["ridge"]())
    with pytest.raises(ValueError, match="1/L"):
        rh.neumann_bound(constants, [1, 2], step_size=2.0 / constants.L)


@pytest.mark.parametrize("name", ["per_feature_ridge", "cleaning_logistic"])
def test_the_hypergradient_curves_are_the_unrolled_hypergradients_seed_by_seed(name):
    """Full-batch gradient descent draws nothing: every seed's hypergradient error equals the
    squared error of `Unrolled(k, α, None, "forward")` at each checkpoint, to 1e-10 relative;
    where GD has brought the error below 1e-6·‖h‖, the two errors differ by rounding of
    relative size 1e-17/1e-6 and 1e-10 cannot hold, so there their norms must agree to
    1e-13·‖h‖ (hyper-cleaning's curves run the closed-form recursion, stored as J, not Jᵀ)."""
    problem = FAMILIES[name]()
    step = 0.5 / float(problem.inner.smoothness(problem.theta0))
    curves = rh.hypergradient_curves(problem, step_size=step, num_steps=200, num_seeds=2, batch_size=None,
                                     num_checkpoints=6)
    exact = problem.hypergradient(problem.theta0)
    for k, error in zip(curves.steps, curves.hypergradient_error):
        estimate = hg.hypergradient(problem, problem.theta0, method="unrolled", num_steps=int(k), step_size=step,
                                    batch_size=None, mode="forward")
        expected, scale = float(np.sum((estimate - exact) ** 2)), float(np.linalg.norm(exact))
        if expected > (1e-6 * scale) ** 2:
            np.testing.assert_allclose(error, expected, rtol=1e-10, atol=1e-300)
        else:
            assert abs(math.sqrt(error) - math.sqrt(expected)) <= 1e-13 * scale, (k, error, expected)
    assert np.all(curves.hypergradient_error_se == 0)
    # The iterate and Jacobian curves of the same run are error_curves'.
    plain = rates.error_curves(problem.inner, step_size=step, num_steps=200, num_seeds=2, batch_size=None,
                               num_checkpoints=6)
    np.testing.assert_array_equal(curves.curves.jacobian_error, plain.jacobian_error)


def test_the_unrolled_sgd_hypergradient_error_decays_like_one_over_k_with_decreasing_steps():
    """`α_k = a/(k + k0)` with `a = 2/μ`, `k0 = 4L/μ` (the derivative error is
    `O(log(k)²/k)`, so the hypergradient error `‖ĥ_k − h‖² ≤ 2‖J_k − J*‖²‖∇ₓG‖² + O(e_x)` is
    too): 32 seeds, 20 000 steps, minibatches of 1. The fitted power-law slope of the mean
    squared error over the second half of the checkpoints lies in [−1.3, −0.7] (measured
    −0.92 [−1.08, −0.76] on ridge). Negative check: with a constant step the error stops at
    a noise ball, and the fitted slope is above −0.3."""
    problem = FAMILIES["ridge"]()
    constants = rh.adjoint_constants(problem)
    options = dict(num_steps=20_000, num_seeds=32, batch_size=1, key=jax.random.key(5))
    decreasing = rh.hypergradient_curves(problem, step_size=rates.inverse_time(2 / constants.mu,
                                                                               4 * constants.L / constants.mu),
                                         **options)
    slope = fit.fit_power_law(decreasing.steps[1:], decreasing.hypergradient_error[1:],
                              decreasing.hypergradient_error_se[1:]).slope
    assert -1.3 <= slope[1] <= -0.7, slope
    constant = rh.hypergradient_curves(problem, step_size=0.5 / constants.L, **options)
    plateau = fit.fit_power_law(constant.steps[1:], constant.hypergradient_error[1:],
                                constant.hypergradient_error_se[1:]).slope
    assert plateau[1] > -0.3, plateau

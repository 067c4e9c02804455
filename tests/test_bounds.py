"""Bounds that carry their theorem: conditions evaluated on numbers and named when they
fail, asymptotic rates that follow from the constants, and verdicts that read both from
the bound — a tight rate tested two-sidedly, an upper bound one-sidedly.

The verdict tests use synthetic curves `c·k^s·X` with `X = g²` (g standard normal, 64
seeds per checkpoint) drawn from `numpy.random.default_rng` with fixed seeds, as
`tests/test_fit.py` does; each judges one curve, and the slopes are chosen so far from
the decision boundary (0.5 or more, against 95% intervals of half-width about 0.02) that
under fresh randomness the false-failure probability of each is below 1e-6.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

import rates
from proofs_check import sgd
from rates import bounds
from rates.bounds import ConditionError, Evaluation, Rate, RateKind
from rates.verdict import judge

STEPS = np.unique(np.geomspace(1, 1e5, 32).astype(int)).astype(np.float64)


def constants(sigma2=1.0, sigma2_jac=1.0, mu=0.5, L=2.0):
    return types.SimpleNamespace(mu=mu, L=L, sigma2=sigma2, sigma2_jac=sigma2_jac, hessian_lipschitz=0.0,
                                 cross_lipschitz=1.0)


def evaluate(c, schedule, steps=STEPS):
    return bounds.sgd_bounds(c, schedule, batch_size=1, x0_error_sq=1.0, jac0_error_sq=1.0, jac_star_norm=1.0,
                             steps=steps)


def test_bounds_on_estimated_constants_warn_that_they_are_not_certified():
    estimated = types.SimpleNamespace(**vars(constants()), estimated=("mu", "L"))
    with pytest.warns(bounds.EstimatedConstantsWarning, match="mu, L are estimates"):
        evaluate(estimated, rates.constant(0.1))
    evaluate(constants(), rates.constant(0.1))   # exact constants: no warning (warnings are errors here)


# --- conditions -----------------------------------------------------------------------------

def test_a_violated_condition_is_named_with_its_numbers():
    c = constants()
    with pytest.raises(ConditionError, match=r"sgd_constant_iterates does not apply: "
                                             r"step_at_most_half_inverse_smoothness: needs alpha <= 1/\(2\*L\), "
                                             r"got alpha = 0.5, 1/\(2\*L\) = 0.25"):
        evaluate(c, rates.constant(0.5))
    with pytest.raises(ConditionError, match=r"a_mu_above_one: needs a\*mu > 1, got a\*mu = 0.5$"):
        evaluate(c, rates.inverse_time(1.0, 4.0))
    with pytest.raises(ValueError, match="no certified SGD bound"):
        evaluate(c, rates.polynomial_decay(1.0, 10.0, 0.7))


def test_conditions_allow_rounding_and_nothing_more():
    c = constants()
    alpha = 1 / (2 * c.L)
    held = evaluate(c, rates.constant(alpha * (1 + 1e-13))).conditions
    assert [(x.name, x.holds) for x in held] == [("step_at_most_half_inverse_smoothness", True)]
    with pytest.raises(ConditionError):
        evaluate(c, rates.constant(alpha * (1 + 1e-9)))
    # Exact theorems decide by exact arithmetic: 2·0.9 − 0.8 = 1 exactly, not 1 + 2e-16.
    assert not {x.name: x.holds for x in bounds.DSGD_SCHEDULE.conditions_at(a=0.9, r=0.8, ell=1)}["noise_summable"]


def test_every_theorem_states_its_conditions_and_certificate():
    for theorem in (bounds.GD_ITERATE, bounds.GD_JACOBIAN, bounds.SGD_CONSTANT_ITERATE, bounds.SGD_CONSTANT_JACOBIAN,
                    bounds.SGD_DECREASING_ITERATE, bounds.SGD_DECREASING_JACOBIAN,
                    bounds.SGD_DECREASING_JACOBIAN_LOG, bounds.SMOOTHED_VARIANCE, bounds.DSGD_SCHEDULE):
        assert theorem.conditions, theorem.name
        assert theorem.name and theorem.statement
        assert theorem.assumptions, theorem.name


# --- rates ---------------------------------------------------------------------------------

def test_constant_step_rates_follow_the_noise():
    noisy = evaluate(constants(), rates.constant(0.25))
    assert (noisy.iterate.rate, noisy.jacobian.rate) == (Rate(RateKind.PLATEAU), Rate(RateKind.PLATEAU))
    simple = evaluate(constants(sigma2=0.0), rates.constant(0.25))
    assert simple.iterate.rate == Rate(RateKind.EXPONENTIAL, tight=False, certificate=sgd.INTERPOLATION.name)
    assert simple.jacobian.rate == Rate(RateKind.PLATEAU, certificate=sgd.INTERPOLATION.name)
    assert simple.jacobian.claim_certificates == (sgd.CONSTANT_STEP_JACOBIAN.name, sgd.INTERPOLATION.name)
    double = evaluate(constants(sigma2=0.0, sigma2_jac=0.0), rates.constant(0.25))
    assert double.jacobian.rate.kind is RateKind.EXPONENTIAL and not double.jacobian.rate.tight


def test_decreasing_step_rates_and_which_is_tight():
    c = constants()
    a = 2.0 / c.mu
    result = evaluate(c, rates.inverse_time(a, 2.0 * a * c.L))
    assert result.iterate.rate.describe() == "O(1/k)" and result.iterate.rate.tight
    assert result.jacobian.rate.describe() == "O(1/k)" and result.jacobian.rate.tight
    (log_bound,) = result.jacobian_alternatives
    assert log_bound.rate.describe() == "O(1/k·log(k)^2)" and not log_bound.rate.tight


def test_the_variance_bound_grows_like_eta_to_minus_depth():
    rate = bounds.SMOOTHED_VARIANCE.rate(ell=3)
    assert (rate.power, rate.variable, rate.tight) == (-3.0, "eta", False)
    values = bounds.SMOOTHED_VARIANCE(K=1.0, ell=3, eta=np.array([1e-4, 1e-6]))
    # Θ(η^−ℓ): two decades of η are six decades of the bound, up to the lower-order terms.
    assert np.log10(values[1] / values[0]) == pytest.approx(6.0, abs=0.01)


# --- verdicts read the bound ---------------------------------------------------------------------

def synthetic(slope, seed, steps=STEPS, num_seeds=64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_seeds, steps.size)) ** 2 * steps**slope
    return x.mean(axis=0), x.std(axis=0, ddof=1) / np.sqrt(num_seeds)


def with_rate(rate, values=None, steps=STEPS):
    """An evaluation far above the curves, so that only the rate decides."""
    values = 1e3 * np.ones_like(steps) if values is None else values
    return Evaluation(bounds.SGD_DECREASING_JACOBIAN, steps, values, (), rate)


TIGHT = Rate(RateKind.POWER, power=-1.0)
UPPER = Rate(RateKind.POWER, power=-1.0, log_power=2.0, tight=False)


@pytest.mark.parametrize(("slope", "tight_passes", "upper_passes"), [
    (-1.0, True, True),     # the rate itself
    (-2.0, False, True),    # faster: refutes a tight rate, not an upper bound
    (-0.5, False, False),   # slower: refutes both
])
def test_a_tight_rate_is_two_sided_and_an_upper_bound_one_sided(slope, tight_passes, upper_passes):
    mean, se = synthetic(slope, seed=int(10 * -slope))
    assert judge("e", mean, se, with_rate(TIGHT), fit_from=10.0).rate_consistent is tight_passes
    assert judge("e", mean, se, with_rate(UPPER), fit_from=10.0).rate_consistent is upper_passes


def test_a_plateau_must_not_be_rounding():
    flat_mean, flat_se = synthetic(0.0, seed=1)
    assert judge("e", flat_mean, flat_se, with_rate(Rate(RateKind.PLATEAU)), fit_from=10.0).passed
    # Negative check: a curve that fell ten orders and then sat at rounding is flat, but no plateau.
    fallen = np.where(STEPS < 10, 1.0, 1e-10) * flat_mean
    verdict = judge("e", fallen, 1e-10 * flat_se, with_rate(Rate(RateKind.PLATEAU)), fit_from=10.0)
    assert verdict.bound_holds and not verdict.rate_consistent


def test_an_exponential_rate_needs_the_drop():
    mean = np.exp(-0.01 * STEPS)           # falls far below 1e-12 by k = 10⁵
    assert judge("e", mean, 0 * mean, with_rate(Rate(RateKind.EXPONENTIAL, tight=False)), fit_from=1.0).passed
    slow = np.exp(-1e-4 * STEPS)           # e^−10: not twelve orders
    assert not judge("e", slow, 0 * slow, with_rate(Rate(RateKind.EXPONENTIAL, tight=False)), fit_from=1.0).passed


def test_a_bound_below_the_measurement_fails_whatever_the_rate():
    mean, se = synthetic(-1.0, seed=10)
    verdict = judge("e", mean, se, with_rate(TIGHT, values=0.5 * STEPS**-1.0), fit_from=10.0)
    assert verdict.rate_consistent and not verdict.bound_holds and not verdict.passed


@pytest.mark.parametrize(("slope", "passes"), [(-1.0, True), (-2.0, True), (-3.0, False)])
def test_a_variance_may_grow_no_faster_than_its_bound_as_eta_shrinks(slope, passes):
    fitted = rates.fit.fit_power_law(STEPS, *synthetic(slope, seed=int(-slope)), start=1.0)
    assert rates.verdict.rate_holds(fitted, bounds.SMOOTHED_VARIANCE.rate(ell=2)) is passes

"""Error curves, SGD bounds and verdicts: the measured curves stay under the certified
bounds, and the verdicts reject wrong claims."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import derivatives
import problems
import rates
from helpers import assert_relative_close
from problems.strategies import EXACT_KINDS, problems_and_thetas
from rates import regimes, verdict
from rates.curves import checkpoints, error_curves


def test_curves_are_the_mean_over_seeds_of_unrolled_errors():
    """Seed s of `error_curves(key)` is `derivatives.unrolled(split(key, S)[s])`."""
    problem = problems.logistic(30, 3, seed=2)
    schedule = rates.inverse_time(4.0, 40.0)
    curves = error_curves(problem, step_size=schedule, num_steps=60, num_seeds=3, key=jax.random.key(5),
                          num_checkpoints=6)
    x_star, jac_star = problem.solution(problem.theta0), problem.solution_jacobian(problem.theta0)
    keys = jax.random.split(jax.random.key(5), 3)
    for index in (2, len(curves.steps) - 1):
        k = int(curves.steps[index])
        runs = [derivatives.unrolled(problem, problem.theta0, key, step_size=schedule, num_steps=k) for key in keys]
        iterate = np.mean([float(jnp.sum((x - x_star) ** 2)) for x, _ in runs])
        jacobian = np.mean([float(jnp.sum((j - jac_star) ** 2)) for _, j in runs])
        assert curves.iterate_error[index] == pytest.approx(iterate, rel=1e-10)
        assert curves.jacobian_error[index] == pytest.approx(jacobian, rel=1e-10)
        suboptimality = np.mean([float(problem.objective(x, problem.theta0) - problem.objective(x_star, problem.theta0))
                                 for x, _ in runs])
        assert curves.suboptimality[index] == pytest.approx(suboptimality, rel=1e-8)


def test_checkpoints_are_log_spaced_and_start_at_zero():
    steps = checkpoints(10_000, 20)
    assert steps[0] == 0 and steps[-1] == 10_000
    assert np.all(np.diff(steps) > 0) and len(steps) <= 20
    assert list(checkpoints(0, 5)) == [0]


def measured_and_bounds(problem, theta, schedule, num_steps, num_seeds=64):
    curves = error_curves(problem, theta, step_size=schedule, num_steps=num_steps, num_seeds=num_seeds,
                          key=jax.random.key(1), num_checkpoints=24)
    x_star, jac_star = np.asarray(problem.solution(theta)), np.asarray(problem.solution_jacobian(theta))
    bounds = rates.bounds.sgd_bounds(problem.constants(theta), schedule, batch_size=1,
                                     x0_error_sq=float(np.sum(x_star**2)), jac0_error_sq=float(np.sum(jac_star**2)),
                                     jac_star_norm=float(np.linalg.norm(jac_star)), steps=curves.steps)
    floors = (verdict.resolution_floor(float(np.sum(x_star**2))), verdict.resolution_floor(float(np.sum(jac_star**2))))
    return curves, bounds, floors


@given(problems_and_thetas(EXACT_KINDS), st.booleans())
def test_measured_errors_stay_under_the_certified_bounds(drawn, decreasing):
    """64 seeds, 2,000 steps, 24 checkpoints. A true bound fails the one-sided 3-se band at a
    checkpoint with probability ≤ 1.3e-3 (normal approximation), ≤ 3% per example over 24
    checkpoints; with the keys fixed the suite is deterministic."""
    problem, theta = drawn
    c = problem.constants(theta)
    L, mu = float(c.L), float(c.mu)
    schedule = rates.inverse_time(2.0 / mu, 4.0 * L / mu) if decreasing else rates.constant(0.5 / L)
    curves, bounds, floors = measured_and_bounds(problem, theta, schedule, 2000)
    for mean, se, bound, floor in ((curves.iterate_error, curves.iterate_error_se, bounds.iterate, floors[0]),
                                   (curves.jacobian_error, curves.jacobian_error_se, bounds.jacobian, floors[1])):
        holds, worst = verdict.bound_holds(mean, se, bound, floor=floor)
        assert holds, f"bound exceeded by a factor {worst:.3g}"
    for alternative in bounds.jacobian_alternatives.values():
        assert verdict.bound_holds(curves.jacobian_error, curves.jacobian_error_se, alternative, floor=floors[1])[0]


@pytest.fixture(scope="module")
def decreasing_run():
    problem = problems.least_squares(100, 5, "none", seed=0)
    c = problem.constants()
    schedule = rates.inverse_time(2.0 / float(c.mu), 4.0 * float(c.L) / float(c.mu))
    curves, bounds, floors = measured_and_bounds(problem, problem.theta0, schedule, 50_000, num_seeds=32)
    return curves, bounds, float(schedule.k0)


@pytest.mark.parametrize("quantity", ["iterate", "jacobian"])
def test_a_bound_divided_by_four_is_reported_violated(quantity):
    """Constant steps, where both bounds start at the (deterministic) initial error."""
    problem = problems.least_squares(100, 5, "none", seed=0)
    curves, bounds, _ = measured_and_bounds(problem, problem.theta0, rates.constant(0.5 / float(problem.constants().L)),
                                            3000, num_seeds=32)
    mean, se = getattr(curves, f"{quantity}_error"), getattr(curves, f"{quantity}_error_se")
    bound = getattr(bounds, quantity)
    assert verdict.check(quantity, curves.steps, mean, se, bound).bound_holds
    assert not verdict.check(quantity, curves.steps, mean, se, bound / 4).bound_holds


def test_decreasing_steps_have_slope_minus_one_and_reject_minus_two(decreasing_run):
    curves, bounds, k0 = decreasing_run
    for quantity in ("iterate", "jacobian"):
        mean, se = getattr(curves, f"{quantity}_error"), getattr(curves, f"{quantity}_error_se")
        right = verdict.check(quantity, curves.steps, mean, se, getattr(bounds, quantity),
                              claimed_slope=-1.0, fit_from=10 * k0)
        wrong = verdict.check(quantity, curves.steps, mean, se, getattr(bounds, quantity),
                              claimed_slope=-2.0, fit_from=10 * k0)
        assert right.passed and right.rate_consistent
        assert not wrong.rate_consistent and not wrong.passed


def test_plateau_grows_linearly_with_the_step_size_and_a_flat_claim_is_rejected():
    settings = regimes.Settings(num_seeds=16, constant_steps=4000, decreasing_steps=0, interpolation_steps=0,
                                num_checkpoints=24)
    sweep = regimes.run_sweep(settings, fractions=(0.5, 0.125, 0.03125))
    for quantity in ("iterate", "jacobian"):
        lo, estimate, hi = sweep[f"{quantity}_plateau_slope"]
        assert lo <= 1.0 <= hi, f"{quantity} plateau slope {estimate:.2f} [{lo:.2f}, {hi:.2f}]"
        assert not lo <= 0.0 <= hi, "a plateau independent of the step size was not rejected"


def test_sgd_bounds_refuse_schedules_outside_their_conditions():
    c = problems.ridge(20, 3).constants()
    L, mu = float(c.L), float(c.mu)
    common = dict(batch_size=1, x0_error_sq=1.0, jac0_error_sq=1.0, jac_star_norm=1.0, steps=[0, 1])
    with pytest.raises(ValueError, match=r"step_size must be <= 1/\(2L\)"):
        rates.bounds.sgd_bounds(c, rates.constant(1.0 / L), **common)
    with pytest.raises(ValueError, match=r"a·mu > 1"):
        rates.bounds.sgd_bounds(c, rates.inverse_time(0.5 / mu, L / mu), **common)
    with pytest.raises(ValueError, match="no certified SGD bound"):
        rates.bounds.sgd_bounds(c, rates.polynomial_decay(1.0, 10.0 * L, 0.7), **common)


def test_error_curves_rejects_bad_arguments():
    problem = problems.ridge(20, 3)
    with pytest.raises(ValueError, match="num_seeds must be an integer >= 2"):
        error_curves(problem, step_size=0.01, num_steps=10, num_seeds=1)
    with pytest.raises(ValueError, match="step size"):
        error_curves(problem, step_size=-0.01, num_steps=10, num_seeds=4)


def test_report_writes_the_documented_files(tmp_path):
    from rates.report import write_report

    tiny = regimes.Settings(num_seeds=4, constant_steps=300, decreasing_steps=600, interpolation_steps=300,
                            num_checkpoints=12)
    write_report(tmp_path, quick=True, settings=tiny)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["regimes"]) == {r.name for r in regimes.REGIMES}
    for regime in results["regimes"].values():
        for key in ("problem", "constants", "steps", "iterate_error", "jacobian_error", "iterate_bound",
                    "jacobian_bound", "fitted", "verdict"):
            assert key in regime
        assert regime["verdict"] in ("pass", "fail")
        assert len(regime["steps"]) == len(regime["iterate_error"]) == len(regime["jacobian_bound"])
    sweep = results["constant_step_sweep"]
    assert len(sweep["step_sizes"]) == len(sweep["iterate_plateau"]) == len(sweep["jacobian_plateau"]) >= 3
    for name in ("report.md", "figure1.png", "ridge_logistic.png", "constant_step_sweep.png"):
        assert (tmp_path / name).stat().st_size > 0
    # Every bound and claim in the report names a registered certificate.
    import proofs_check

    registered = {certificate.name for certificate in proofs_check.CERTIFICATES}
    report = (tmp_path / "report.md").read_text()
    for regime in results["regimes"].values():
        named = [regime["iterate_bound_certificate"], regime["jacobian_bound_certificate"], regime["claim_certificate"]]
        assert {name for name in named if name} <= registered
        assert all(f"`{name}`" in report for name in named if name)
    assert "`sgd_interpolation`" in report


def synthetic_violation_rate(factor, num_seeds=32, trials=400, seed=0):
    """How often `bound_holds` rejects the bound `factor × true mean` on synthetic curves."""
    rng = np.random.default_rng(seed)
    steps = np.unique(np.round(np.geomspace(1, 1e5, 32)))
    true = 3.0 / steps
    rejected = 0
    for _ in range(trials):
        draws = true * rng.chisquare(2, size=(num_seeds, steps.size)) / 2
        mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(num_seeds)
        rejected += not verdict.bound_holds(mean, se, factor * true)[0]
    return rejected / trials


def test_bound_verdict_calibration_on_synthetic_curves():
    """400 synthetic curves of 32 seeds. A tight true bound is rejected in 0.6% of curves
    (measured over 1000); asserting ≤ 3% fails by chance with probability < 1e-5 (binomial,
    p = 0.006). A bound at half the mean is caught in all 1000 measured curves; asserting
    ≥ 95% fails with probability < 1e-8 if the true rate were 0.99."""
    assert synthetic_violation_rate(1.0) <= 0.03
    assert synthetic_violation_rate(0.5) >= 0.95

"""What the rate report's checks can see: the two-sided verdict against the exact curves,
the power search over deliberately perturbed inputs, the per-seed statistic behind the
mutated-derivative engine, and the new keys of a report's `results.json`."""

import contextlib
import io
import json

import jax
import numpy as np
import pytest
from scipy import stats

import derivatives
import problems
import rates
from experiments import figures, rate_checks, regimes, report
from rates import exact, verdict
from rates.curves import SEED_STATISTICS, STATISTICS, mean_and_standard_error, seed_statistics

# A small least-squares run whose errors settle in their noise ball within the run, at a step
# small enough for light-tailed errors (at α = 1/(4L) SGD's multiplicative noise makes them heavy).
PROBLEM = problems.least_squares(40, 3, "none", param_dim=2, seed=1)
STEP = (1 / 32) / float(PROBLEM.constants().L)
NUM_STEPS, NUM_CHECKPOINTS = 12_000, 16


def _seeds(num_seeds, key=0, problem=PROBLEM, step=STEP, num_steps=NUM_STEPS):
    return seed_statistics(problem, step_size=step, num_steps=num_steps, num_seeds=num_seeds,
                           key=jax.random.key(key), num_checkpoints=NUM_CHECKPOINTS)


@pytest.fixture(scope="module")
def run():
    """128 seeds of the small problem, its exact curves, and the float64 floors of its statistics."""
    seeds = _seeds(128)
    truth = rates.exact_curves(PROBLEM, step_size=STEP, num_steps=NUM_STEPS, num_checkpoints=NUM_CHECKPOINTS)
    x_star, jac_star = (np.asarray(f(PROBLEM.theta0)) for f in (PROBLEM.solution, PROBLEM.solution_jacobian))
    floors = {"iterate_error": verdict.resolution_floor(float(np.sum(x_star**2))),
              "jacobian_error": verdict.resolution_floor(float(np.sum(jac_star**2)))}
    floors["suboptimality"] = 0.5 * float(PROBLEM.constants().L) * floors["iterate_error"]
    return seeds, truth, floors


def _agreement(seeds, expected, floors, jacobian=None, expected_jacobian=None):
    per_seed = rate_checks._stack(seeds, jacobian)
    return rate_checks._agreement(per_seed, rate_checks._exact_stack(expected, expected_jacobian), floors)


# --- the per-seed statistics ------------------------------------------------------------------

def test_seed_statistics_reduce_to_the_error_curves():
    seeds = _seeds(6, key=3)
    curves = rates.error_curves(PROBLEM, step_size=STEP, num_steps=NUM_STEPS, num_seeds=6, key=jax.random.key(3),
                                num_checkpoints=NUM_CHECKPOINTS)
    assert seeds.values.shape == (6, len(curves.steps), len(SEED_STATISTICS))
    reduced = seeds.curves()
    for name in STATISTICS:
        np.testing.assert_array_equal(getattr(reduced, name), getattr(curves, name))
        np.testing.assert_array_equal(getattr(reduced, f"{name}_se"), getattr(curves, f"{name}_se"))
    assert reduced.num_seeds == curves.num_seeds == 6


def test_the_mutated_derivative_formula_matches_a_mutated_run():
    """`scaled_jacobian_error(δ)` is, seed by seed, ‖(1 + δ)J_k − J*‖² of an engine that
    returned (1 + δ)J_k: here `derivatives.unrolled` with the same keys, its derivative scaled."""
    schedule = rates.inverse_time(4.0, 40.0)
    problem = problems.ridge(30, 3, seed=2)
    seeds = seed_statistics(problem, step_size=schedule, num_steps=60, num_seeds=3, key=jax.random.key(5),
                            num_checkpoints=6)
    jac_star = np.asarray(problem.solution_jacobian(problem.theta0))
    keys = jax.random.split(jax.random.key(5), 3)
    for delta in (0.3, -0.05):
        mutated = seeds.scaled_jacobian_error(delta)
        for index in (2, len(seeds.steps) - 1):
            k = int(seeds.steps[index])
            for seed, key in enumerate(keys):
                _, jacobian = derivatives.unrolled(problem, problem.theta0, key, step_size=schedule, num_steps=k)
                expected = float(np.sum(((1 + delta) * np.asarray(jacobian) - jac_star) ** 2))
                assert mutated[seed, index] == pytest.approx(expected, rel=1e-9)
    np.testing.assert_array_equal(seeds.scaled_jacobian_error(0.0), seeds.statistic("jacobian_error"))


# --- the verdict against the exact curves ------------------------------------------------------

def test_exact_agreement_passes_a_correct_engine(run):
    seeds, truth, floors = run
    agreement = _agreement(seeds, truth, floors)
    assert agreement.passed, agreement
    assert agreement.num_tested > 30 and agreement.num_deterministic == 3  # k = 0, three statistics
    assert agreement.threshold == pytest.approx(stats.t.isf(1e-3 / (2 * agreement.num_tested), 127))


@pytest.mark.parametrize("broken", ["derivative scaled by 1.1", "sigma_J^2 doubled", "initial error off by 1e-6"])
def test_exact_agreement_fails_a_broken_input(run, broken):
    """Negative checks: an engine whose derivative is 10% off, exact curves of a problem whose
    σ_J² is doubled, and a deterministic checkpoint (k = 0) off by a relative 1e-6."""
    seeds, truth, floors = run
    if broken == "derivative scaled by 1.1":
        agreement = _agreement(seeds, truth, floors, jacobian=seeds.scaled_jacobian_error(0.1))
    elif broken == "sigma_J^2 doubled":
        doubled = exact.moment_curves(exact.affine_dynamics(PROBLEM).with_noise_scaled(jacobian=2.0), step_size=STEP,
                                      num_steps=NUM_STEPS, num_checkpoints=NUM_CHECKPOINTS)
        agreement = _agreement(seeds, doubled, floors)
    else:
        jacobian = seeds.statistic("jacobian_error").copy()
        jacobian[:, 0] *= 1 + 1e-6
        agreement = _agreement(seeds, truth, floors, jacobian=jacobian)
        assert agreement.deterministic_deviation == pytest.approx(1e-6, rel=1e-3)
    assert not agreement.passed


def test_exact_agreement_leaves_out_rounding_and_heavy_tails():
    """Checkpoints whose exact value is at the float64 floor are not tested whatever the
    measurement; nor those whose seeds have a coefficient of variation above 1."""
    mean = np.array([1.0, 0.5, 1e-30, 0.2])
    se = np.array([0.0, 0.01, 1e-40, 0.2 * 2.0 / np.sqrt(16)])   # the last: sd = 2·mean
    exact_values = np.array([1.0, 0.5, 1e-31, 0.1])               # the last is far off, but heavy-tailed
    agreement = verdict.exact_agreement(mean, se, exact_values, floor=1e-29, num_seeds=16)
    assert agreement.passed
    assert (agreement.num_deterministic, agreement.num_tested, agreement.num_unresolved,
            agreement.num_heavy_tailed) == (1, 1, 1, 1)
    shifted = verdict.exact_agreement(mean, se, exact_values * np.array([1, 1.2, 1, 1]), floor=1e-29, num_seeds=16)
    assert not shifted.passed and shifted.worst == (0, 1)
    # A skewed checkpoint gets the Edgeworth allowance: the same z passes with it, fails without.
    z = shifted.threshold * 1.2
    values = dict(mean=[1.0 + z * 0.01], standard_error=[0.01], exact=[1.0], num_seeds=16)
    assert not verdict.exact_agreement(**values).passed
    assert verdict.exact_agreement(**values, skewness=[2.0]).passed


def test_sigma2_jac_factor_terms_reproduce_the_scaled_recursion():
    """`Truth.jacobian_error(c)` (three runs, a + b√c + γc) equals the exact curves of the
    dynamics with σ_J² scaled by c, on ridge, whose derivative is coupled to the iterate."""
    regime = regimes.Regime("small_ridge", lambda: problems.ridge(30, 4, seed=0), regimes.ConstantStep(),
                            regimes.RIDGE_LOGISTIC)
    settings = regimes.Settings(num_seeds=4, constant_steps=400, decreasing_steps=400, interpolation_steps=400,
                                num_checkpoints=12)
    truth = rate_checks.exact_truth(regime, settings)
    run_ = rate_checks.setup(regime, settings)
    dynamics = exact.affine_dynamics(run_.problem)
    assert dynamics.coupled
    for factor in (0.3, 2.0, 1e4):
        direct = exact.moment_curves(dynamics.with_noise_scaled(jacobian=factor), step_size=run_.schedule,
                                     num_steps=run_.num_steps, num_checkpoints=12)
        np.testing.assert_allclose(truth.jacobian_error(factor), direct.jacobian_error, rtol=1e-9)
    np.testing.assert_allclose(truth.jacobian_error(1.0), truth.curves.jacobian_error, rtol=1e-12)


# --- the power search --------------------------------------------------------------------------

def test_smallest_detected_refines_a_threshold_and_is_null_when_blind():
    sizes = verdict.size_grid(1e-3, 1.0)
    found = verdict.smallest_detected(lambda size: size >= 0.0372, sizes)
    assert 0.0372 <= found <= 0.0372 * 1.01
    assert verdict.smallest_detected(lambda size: False, sizes) is None
    assert verdict.smallest_detected(lambda size: True, sizes) == pytest.approx(1e-3)
    # A perturbation twice as strong per unit of size is caught at half the size.
    detects = lambda size: abs(size) * 2.0 >= 0.0372  # noqa: E731
    assert verdict.smallest_detected(detects, sizes) == pytest.approx(found / 2, rel=0.02)


def _smallest_derivative_error(seeds, truth, floors):
    def detects(delta):
        return not _agreement(seeds, truth, floors, jacobian=seeds.scaled_jacobian_error(delta)).passed
    return verdict.smallest_detected(detects, verdict.size_grid(1e-4, 0.5))


def test_power_grows_with_the_seeds_and_with_the_perturbation(run):
    """On the same problem, 32 seeds catch a larger relative error of the derivative than 128
    seeds; an engine whose error is δ on the derivative is caught at a smaller δ than one whose
    error is δ/4 (the same verdict on a weaker perturbation)."""
    seeds, truth, floors = run
    fewer = _seeds(32, key=11)
    assert _agreement(fewer, truth, floors).passed   # else every perturbation would be "caught"
    many = _smallest_derivative_error(seeds, truth, floors)
    few = _smallest_derivative_error(fewer, truth, floors)
    assert many is not None and few is not None and many < few

    def detects_weaker(delta):
        return not _agreement(seeds, truth, floors, jacobian=seeds.scaled_jacobian_error(delta / 4)).passed
    weaker = verdict.smallest_detected(detects_weaker, verdict.size_grid(1e-4, 0.5))
    assert weaker == pytest.approx(4 * many, rel=0.05)


def test_a_bound_far_above_the_measurement_is_blind():
    """The bound verdict on a bound 1e9 times the measurement: no factor in the searched range
    of `rate_checks.SIGMA2_JAC_EXCESS` lowering it is caught, so the search returns None; a
    bound at the measurement is caught as soon as it is lowered by a few standard errors."""
    rng = np.random.default_rng(0)
    draws = rng.chisquare(4, size=(64, 20)) / 4
    mean, se = mean_and_standard_error(draws)

    def detects(bound_scale):
        return lambda excess: not verdict.bound_holds(mean, se, bound_scale * mean / (1 + excess))[0]
    sizes = verdict.size_grid(*rate_checks.SIGMA2_JAC_EXCESS)
    assert verdict.smallest_detected(detects(1e9), sizes) is None
    tight = verdict.smallest_detected(detects(1.0), sizes)
    assert tight is not None and tight < 1.0


# --- the report -------------------------------------------------------------------------------

SMALL = regimes.Settings(num_seeds=8, constant_steps=1500, decreasing_steps=2000, interpolation_steps=1500,
                         num_checkpoints=14)
SUBSET = (regimes.DECREASING, regimes.named("ridge_constant"), regimes.named("logistic_constant"))


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    """The report on three regimes (least squares with decreasing steps, ridge, logistic) at
    small settings: its `results.json` and `report.md`."""
    out = tmp_path_factory.mktemp("power_report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report, "REGIMES", SUBSET)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            report.write(out, settings=SMALL)
    return json.loads((out / "results.json").read_text()), (out / "report.md").read_text(), out


def test_results_hold_the_exact_verdict_the_power_and_the_looseness(small_report):
    results, text, out = small_report
    assert set(results["regimes"]) == {regime.name for regime in SUBSET}
    assert results["exact_family_false_failure"] == verdict.EXACT_FAMILY_FALSE_FAILURE
    for name, regime in results["regimes"].items():
        power = regime["power"]
        for key in ("derivative_relative_error", "sigma2_jac_factor", "rate_exponent", "blind_to_2x_sigma2_jac",
                    "details", "num_seeds"):
            assert key in power
        assert power["num_seeds"] == SMALL.num_seeds
        assert regime["blind_to_2x_sigma2_jac"] == power["blind_to_2x_sigma2_jac"]
        assert regime["verdict"] == ("pass" if regime["bound_verdicts"] == "pass"
                                     and (regime["exact"] is None or regime["exact"]["verdict"] == "pass") else "fail")
        if name == "logistic_constant":
            assert regime["exact"] is None and regime["bound_over_truth"] is None
            assert "affine in x" in regime["exact_reason"]
            assert power["blind_to_2x_sigma2_jac"] is True
            continue
        agreement = regime["exact"]
        for key in ("max_abs_z", "threshold", "verdict", "num_tested", "num_unresolved", "family_false_failure"):
            assert key in agreement
        assert agreement["verdict"] in ("pass", "fail") and agreement["threshold"] > 0
        looseness = regime["bound_over_truth"]
        assert {"iterate_error", "jacobian_error"} <= set(looseness)
        assert all(entry["ratio"] > 0 for entry in looseness.values())
    decreasing = results["regimes"]["decreasing"]["bound_over_truth"]
    assert decreasing["sgd_decreasing_jacobian_log"]["grows_like"] == "log(k)^2"
    assert decreasing["jacobian_error"]["ratio"] > 1 and decreasing["iterate_error"]["ratio"] > 1
    assert "## Power of the verdicts" in text and "## Agreement with the exact curves" in text
    assert "pass — blind to a 2× error in σ_J²" in text or "**fail**" in text
    assert "![bound ÷ truth](bound_over_truth.png)" in text and (out / "bound_over_truth.png").stat().st_size > 0


def test_a_blind_pass_is_labelled_in_results_and_report(small_report):
    results, text, _ = small_report
    for name, regime in results["regimes"].items():
        if regime["verdict"] == "pass" and regime["blind_to_2x_sigma2_jac"]:
            assert regime["verdict_label"].startswith("pass — blind to")
            assert f"| {name} |" in text and regime["verdict_label"] in text


def test_bound_over_truth_figure_draws_every_entry():
    entries = [{"regime": "constant", "bound": "sgd_constant_jacobian", "ratio": 19.6, "kind": "plateau"},
               {"regime": "decreasing", "bound": "sgd_decreasing_jacobian", "ratio": 15.5, "kind": "limit"},
               {"regime": "decreasing", "bound": "sgd_decreasing_jacobian_log", "ratio": 127.0,
                "kind": "log bound at K"},
               {"regime": "double_interpolation", "bound": "sgd_constant_jacobian", "ratio": 3.9,
                "kind": "decay rate"},
               {"regime": "logistic_constant", "bound": "sgd_constant_jacobian", "ratio": 2e6, "kind": "measured"}]
    figure = figures.bound_over_truth_figure(entries)
    (axis,) = figure.axes
    labels = {label.get_text(): y for label, y in zip(axis.get_yticklabels(), axis.get_yticks())}
    assert set(labels) == {f"{e['regime']}: {e['bound']}" for e in entries}
    assert labels["constant: sgd_constant_jacobian"] == max(labels.values())   # first entry on top
    assert axis.get_xscale() == "log" and len(figure.legends[0].get_texts()) == len(figures.RATIO_KINDS)

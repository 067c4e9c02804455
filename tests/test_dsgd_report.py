"""The estimator comparison: the cost search, the variance-slope verdict (with its negative
check), and the documented JSON written by a short run."""

import dataclasses
import json

import numpy as np
import pytest
from scipy import integrate, stats

from experiments import dsgd as dsgd_report
from problems import programs
from rates import dsgd
from rates.bounds import SMOOTHED_VARIANCE
from rates.verdict import rate_holds

TINY = dsgd_report.Settings(num_steps=100, log_every=50, num_samples=4, num_log_samples=50, eta_grid=(0.14, 0.06),
                            cost_budget=0.02, cost_tolerance=0.5, cost_start=100, cost_search=False,
                            variance_samples=500, variance_points=3)


def test_cost_search_finds_the_largest_batch_within_the_budget(monkeypatch):
    """With a synthetic timer, 1 µs per estimate plus 2 ms overhead, the batch that fits in
    0.1 s is 98 000; the protocol's search lands within its 5% tolerance below it."""
    probes = []

    def seconds(program, estimator, eta, batch):
        probes.append(batch)
        return 2e-3 + 1e-6 * batch

    monkeypatch.setattr(dsgd_report, "_seconds_per_call", seconds)
    found = dsgd_report.batch_cost(None, "score", None, budget=0.1, tolerance=0.05, start=1000)
    assert 0.95 * 98_000 <= found <= 98_000
    assert probes[0] == 100_000 and len(probes) < 20
    # Extrapolation from one batch agrees when the time is affine with a small overhead.
    assert dsgd_report.throughput_cost(None, "score", None, budget=0.1, batch=10_000) == pytest.approx(83_333, rel=1e-3)


def test_the_variance_slope_verdict_rejects_a_steeper_curve():
    """Synthetic variances `C·η^(−s)` with 5% independent noise at 6 values of η over 1.5
    decades, judged against the bound's rate `SMOOTHED_VARIANCE.rate(ell=ℓ)` (an upper
    bound): s = 1 respects ℓ = 1, s = 2 does not (and respects ℓ = 2); s = 0.5, shallower
    than the bound, respects ℓ = 1."""
    rng = np.random.default_rng(0)
    eta = np.geomspace(1e-3, 10**-1.5 * 1e0, 6)
    for slope, depth, expected in ((1.0, 1, True), (2.0, 1, False), (2.0, 2, True), (0.5, 1, True)):
        variance = 3.0 * eta**-slope * (1 + 0.05 * rng.standard_normal(eta.size))
        fit = dsgd.fitted_variance_slope(eta, variance, 0.05 * variance)
        rate = SMOOTHED_VARIANCE.rate(ell=depth)
        assert rate.slope == -depth and not rate.tight and rate.variable == "eta"
        assert rate_holds(fit, rate) == expected, (slope, depth, fit.slope)


def test_estimator_runs_follow_the_protocol():
    names = [run[0] for run in dsgd_report.estimator_runs(programs.xornet(), (0.14,))]
    assert names == ["Score", "Reparam", "Fixed", "DSGD"]  # xornet's guards are not affine: no LYY18
    names = [run[0] for run in dsgd_report.estimator_runs(programs.textmsg(), (0.14,))]
    assert names == ["Score", "Reparam", "LYY18", "Fixed", "DSGD"]
    _, _, schedules = dsgd_report.estimator_runs(programs.xornet(), (0.14,))[-1]
    assert float(schedules[0](3999)) == pytest.approx(0.14) and float(schedules[0].beta) == 0.2


def test_short_run_writes_the_documented_json(tmp_path, capsys):
    written = dsgd_report.write(tmp_path, settings=dataclasses.replace(TINY, models=("cheating",)))
    # Off a terminal, progress is a few whole lines: no carriage returns into logs.
    stderr = capsys.readouterr().err
    assert "\r" not in stderr
    progress = [line for line in stderr.splitlines() if line.startswith("dsgd ")]
    assert 1 <= len(progress) <= 8 and progress[-1].startswith("dsgd 6/6 [")
    document = json.loads((tmp_path / "dsgd.json").read_text())
    model = document["models"]["cheating"]
    assert model["nesting_depth"] == 1
    expected = {"Score", "Reparam", "LYY18", "Fixed@0.14", "Fixed@0.06", "DSGD@0.14", "DSGD@0.06"}
    assert set(model["estimators"]) == expected
    for summary in model["estimators"].values():
        assert set(summary) >= {"final_elbo", "avg_variance", "norm_variance", "cost", "work_normalised_avg_variance",
                                "work_normalised_norm_variance"}
        assert all(np.isfinite(value) for value in summary.values())
    score = model["estimators"]["Score"]
    assert score["cost"] == score["work_normalised_avg_variance"] == score["work_normalised_norm_variance"] == 1.0
    study = document["variance_vs_eta"]["cheating"]
    assert len(study["eta"]) == len(study["avg_variance"]) == 3
    assert max(study["eta"]) / min(study["eta"]) == pytest.approx(10**1.5)
    lo, est, hi = study["fitted_slope"]
    assert lo <= est <= hi
    # The bound is read from `SMOOTHED_VARIANCE`, with its certificate, rate and conditions.
    assert study["bound_certificate"] == SMOOTHED_VARIANCE.name == "nested_if_variance"
    assert study["bound_slope"] == -1.0 and study["bound_tight"] is False and study["bound_rate"] == "O(1/eta)"
    assert study["allowed_slope"] <= study["bound_slope"] and len(study["bound_conditions"]) == 2
    assert written.verdicts == {"cheating variance vs eta": study["respects_bound"]}
    assert document["reference_eta"] == dsgd_report.REFERENCE_ETA
    assert "| O(1/eta), upper bound |" in (tmp_path / "dsgd.md").read_text()
    for name in ("dsgd.md", "dsgd_elbo.png", "dsgd_variance_vs_eta.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_finite_eta_allowance_matches_the_exact_second_moment_of_one_if():
    """For one if with a Gaussian guard N(0, s), E[σ_η'(g)²] by quadrature has local log–log
    slope −1 − δ_exact, and the first-order allowance δ covers it: δ_exact ≤ δ ≤ δ_exact/0.95
    at η/s = 0.1 (measured: 0.01269 against 0.01298). A centred share R makes the allowance
    ℓ(1 + δ)/(1 − R) − ℓ."""
    y_squared = integrate.quad(lambda y: y * y * np.exp(-2 * abs(y)) / (1 + np.exp(-abs(y))) ** 4, -60, 60)[0]
    energy = integrate.quad(lambda y: np.exp(-2 * abs(y)) / (1 + np.exp(-abs(y))) ** 4, -60, 60)[0]
    assert dsgd_report.SIGMOID_CURVATURE == pytest.approx(y_squared / energy, rel=1e-10)

    def second_moment(eta, s=1.0):
        def integrand(y):
            derivative = np.exp(-abs(y)) / (1 + np.exp(-abs(y))) ** 2
            return derivative**2 * stats.norm.pdf(eta * y, scale=s)
        return integrate.quad(integrand, -60, 60, epsabs=0, epsrel=1e-13)[0] / eta

    eta, step = 0.1, 1e-3
    slope = (np.log(second_moment(eta * (1 + step))) - np.log(second_moment(eta * (1 - step)))) / (
        np.log1p(step) - np.log1p(-step))
    allowance = dsgd_report.finite_eta_allowance(1, eta, 0.0)
    assert 0.95 * allowance <= -slope - 1 <= allowance
    assert allowance > 0.01  # a 1% steepening: measurable with 20 000 samples, hence the allowance
    assert dsgd_report.finite_eta_allowance(2, 0.0, 0.5) == pytest.approx(2.0)


def test_settings_name_the_models_and_an_unknown_one_is_refused():
    assert dsgd_report.FULL.models == tuple(dsgd_report.PROTOCOL)
    with pytest.raises(ValueError, match="unknown models"):
        dsgd_report.num_tasks(dataclasses.replace(TINY, models=("nope",)))

"""The variance-against-η check: `rates.fit.fit_offset_power` (`A + B·η^(−s)` with a
profile-likelihood interval for s) and `rates.dsgd.eta_verdict`, calibrated on synthetic
curves with a known exponent, and shown to catch a steeper curve and to refuse a flat one.

Every curve is drawn from `numpy.random.default_rng` with a fixed seed, so the tests are
deterministic; the docstrings give the false-failure probability each would have under
fresh randomness (binomial model).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from rates.dsgd import ETA_VERDICTS, eta_verdict
from rates.fit import fit_offset_power

# Ten η four to a decade from 0.1, as the ladder of `experiments.dsgd` measures them.
ETA = 0.1 * 10 ** (-np.arange(10) / 4)
NUM_CURVES = 300
RELATIVE_NOISE = 0.03


def noisy_fits(seed, offset, scale, exponent, num_curves=NUM_CURVES):
    """Fits to `offset + scale·η^(−exponent)` plus independent Gaussian noise of standard
    deviation 3% of the value, given as the standard error."""
    rng = np.random.default_rng(seed)
    truth = offset + scale * ETA**-exponent
    errors = RELATIVE_NOISE * np.abs(truth)
    return [fit_offset_power(ETA, truth + errors * rng.standard_normal(ETA.size), errors) for _ in range(num_curves)]


def test_an_exact_curve_is_recovered():
    truth = -0.3 + 0.02 * ETA**-2.0
    fit = fit_offset_power(ETA, truth, 1e-6 * truth)
    assert fit.exponent[1] == pytest.approx(2.0, abs=1e-3)
    assert fit.offset == pytest.approx(-0.3, abs=1e-3) and fit.scale == pytest.approx(0.02 * 0.1**-2.0, rel=1e-3)
    assert fit.constant_rejected and not fit.upper_open
    np.testing.assert_allclose(fit.predict(ETA), truth, rtol=1e-3)


@pytest.mark.parametrize("seed, offset, scale, exponent", [
    (0, 1.0, 0.066, 1.0),    # depth-1 constants: the prior's variance plus φ(0)/(6η)
    (1, -0.1, 0.02, 2.0),    # a negative offset: the squared mean subtracted
    (2, 5.0, 0.001, 1.0),    # the η-dependent part only a third of the variance at the smallest η
])
def test_the_interval_covers_the_true_exponent(seed, offset, scale, exponent):
    """Coverage of the 95% interval over 300 curves (measured 96.3%, 97.3% and 96.3%): it must lie in
    [90%, 99%], ±4 binomial standard deviations at 95% (false failure < 1e-4)."""
    fits = noisy_fits(seed, offset, scale, exponent)
    coverage = np.mean([fit.exponent[0] <= exponent <= fit.exponent[2] for fit in fits])
    assert 0.90 <= coverage <= 0.99, coverage


def test_a_constant_is_inconclusive():
    """A flat curve: the constant is not rejected, `lo = 0` and the verdict inconclusive, in
    at least 93% of 300 curves (measured 95.3%; the sup over s of the likelihood ratio
    behaves like χ²₁ here, 4–6% above its 95% quantile for 5–19 points). The binomial
    probability of fewer than 93% at a true 95% is 5e-3. An estimator whose variance
    ignores η therefore no longer passes as consistent."""
    fits = noisy_fits(3, 1.0, 0.0, 1.0)
    inconclusive = [eta_verdict(fit, 1) == "inconclusive" for fit in fits]
    assert np.mean(inconclusive) >= 0.93
    assert all(fit.exponent[0] == 0.0 for fit, flat in zip(fits, inconclusive) if flat)


def test_the_verdict_catches_a_steeper_curve_and_rarely_accuses_a_tight_one():
    """Variance `1 + 0.066·η^(−2)` against ℓ = 1: violated in every one of 300 curves
    (power 100%). At the tight exponent (`η^(−1)`, ℓ = 1) it is violated in at most 6%
    (measured 2.0%; the one-sided level is 2.5%, and at 2.5% the binomial probability of
    more than 6% is 3e-4), and consistent otherwise."""
    steeper = [eta_verdict(fit, 1) for fit in noisy_fits(4, 1.0, 0.066, 2.0)]
    assert steeper == ["violated"] * NUM_CURVES
    tight = [eta_verdict(fit, 1) for fit in noisy_fits(0, 1.0, 0.066, 1.0)]
    assert set(tight) <= {"consistent", "violated"} and tight.count("violated") <= 0.06 * NUM_CURVES
    # The allowance moves the threshold: a curve of exponent 1.3 is violated at ℓ = 1 but
    # not with an allowance of 0.5.
    fit = noisy_fits(5, 1.0, 0.066, 1.3, num_curves=1)[0]
    assert eta_verdict(fit, 1) == "violated" and eta_verdict(fit, 1, allowance=0.5) == "consistent"


def test_the_interval_is_wider_when_the_scatter_exceeds_the_errors():
    """Standard errors understated tenfold: the reduced χ² is about 100 and scales the
    threshold, so the interval still covers the truth where an unscaled one would not."""
    rng = np.random.default_rng(6)
    truth = 1.0 + 0.066 * ETA**-1.0
    errors = RELATIVE_NOISE * truth
    values = truth + errors * rng.standard_normal(ETA.size)
    honest, understated = fit_offset_power(ETA, values, errors), fit_offset_power(ETA, values, errors / 10)
    assert understated.reduced_chi2 > 30 * honest.reduced_chi2
    width = lambda fit: fit.exponent[2] - fit.exponent[0]  # noqa: E731
    assert width(understated) == pytest.approx(width(honest), rel=0.2)
    assert understated.exponent[0] <= 1.0 <= understated.exponent[2]


def test_the_threshold_is_the_chi2_quantile():
    """With exact values the profile's minimum is 0, so the interval is where
    `χ²(s) ≤ q`, `q` the χ²₁ quantile: a wider confidence widens it."""
    rng = np.random.default_rng(7)
    truth = 1.0 + 0.066 * ETA**-1.0
    errors = RELATIVE_NOISE * truth
    values = truth + errors * rng.standard_normal(ETA.size)
    narrow, wide = (fit_offset_power(ETA, values, errors, confidence=c) for c in (0.5, 0.99))
    assert wide.exponent[0] < narrow.exponent[0] <= narrow.exponent[1] <= narrow.exponent[2] < wide.exponent[2]
    assert stats.chi2.ppf(0.99, 1) > stats.chi2.ppf(0.5, 1)


def test_the_fit_is_json_ready_and_the_verdicts_are_named():
    fit = noisy_fits(8, 1.0, 0.066, 1.0, num_curves=1)[0]
    decoded = json.loads(json.dumps(fit.as_dict()))
    assert decoded["exponent"] == list(fit.exponent) and decoded["num_points"] == ETA.size
    assert eta_verdict(fit, 1) in ETA_VERDICTS == ("consistent", "inconclusive", "violated")


@pytest.mark.parametrize("call, message", [
    (lambda: fit_offset_power(ETA[:3], ETA[:3], ETA[:3]), "4 distinct"),
    (lambda: fit_offset_power(-ETA, ETA, ETA), "positive"),
    (lambda: fit_offset_power(ETA, ETA, 0 * ETA), "positive"),
    (lambda: fit_offset_power(ETA, ETA[:-1], ETA), "values"),
    (lambda: fit_offset_power(ETA, ETA, ETA, confidence=1.0), "confidence"),
    (lambda: eta_verdict(fit_offset_power(ETA, 1 / ETA, ETA), -1), "non-negative"),
])
def test_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()

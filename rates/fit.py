"""Empirical convergence rates, fitted with confidence intervals to measured error curves.

A curve is a mean over seeds of a squared error at log-spaced checkpoints, with the
standard error of that mean. Every fit here is one weighted regression in log space
(`_regress`); the intervals account for the seed noise (through the standard errors,
by the delta method), for misfit (residual scatter beyond the standard errors) and for
the correlation along the curve that comes from following the same seeds through time.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
from scipy import stats

# Correlation lengths, in multiples of the median gap between the log-checkpoints, over
# which `_regress` takes the worst case: from nearly independent to nearly constant
# offsets (which the intercept absorbs), finely enough that the maximum is not missed.
_CORRELATION_LENGTHS = np.geomspace(0.05, 1000.0, 80)


@dataclasses.dataclass(frozen=True)
class RateFit:
    """`value ≈ exp(intercept) · k^slope`, fitted over `num_points` steps `k ≥ start`.

    `slope` is `(lo, estimate, hi)`: the estimate inside its `confidence` interval.
    `reduced_chi2` is the weighted residual sum of squares over the degrees of freedom
    (`None` without standard errors); well above 1 means the power law misfits.
    """

    slope: tuple[float, float, float]
    intercept: float
    num_points: int
    start: float
    confidence: float
    reduced_chi2: float | None

    def interval(self) -> list[float]:
        """`[lo, hi]` of the slope, as a JSON-ready list."""
        return [self.slope[0], self.slope[2]]

    def as_dict(self) -> dict:
        """The fit as plain JSON-ready values."""
        return {**dataclasses.asdict(self), "slope": list(self.slope)}


@dataclasses.dataclass(frozen=True)
class PowerLogFit:
    """`value ≈ exp(intercept) · k^(−a) · log(k)^b`, fitted over `num_points` steps `k ≥ start`.

    `a` and `b` are `(lo, estimate, hi)` with marginal `confidence` intervals.
    """

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    intercept: float
    num_points: int
    start: float
    confidence: float
    reduced_chi2: float | None

    def as_dict(self) -> dict:
        """The fit as plain JSON-ready values."""
        return {**dataclasses.asdict(self), "a": list(self.a), "b": list(self.b)}


class Plateau(NamedTuple):
    """The level a curve settles at, its standard error and how many checkpoints it averages."""

    level: float
    standard_error: float
    num_points: int


def fit_power_law(steps, values, standard_errors=None, *, start=None, confidence=0.95,
                  correlated=True) -> RateFit:
    """Fit `log value = c + slope · log k` over the checkpoints `k ≥ start`.

    With standard errors, a weighted least-squares fit of `log value` with variances
    `(se/value)²` (the delta method for the log of a mean); without them, ordinary least
    squares. The variance of the slope is

    - scaled by `max(1, χ²/(n−2))`, so that scatter beyond the standard errors (a curve
      that is not a power law over the window) widens the interval;
    - with `correlated=True`, the largest it can be when neighbouring checkpoints are
      correlated with `exp(−|log kᵢ − log kⱼ|/ℓ)`, over every correlation length ℓ
      (independent checkpoints included). One seed's errors at neighbouring checkpoints
      are correlated (SGD forgets its noise geometrically, so the correlation decays
      geometrically in the log-ratio of the steps), and the mean over seeds inherits
      that correlation; the residuals cannot show it, since it bends the whole curve.

    The interval uses Student's t with `n − 2` degrees of freedom.

    Calibration (measured; `numpy.random.default_rng(0)`, 1000 synthetic curves a line):
    `k^slope` at the 31 distinct integers of `geomspace(1, 10⁵, 32)`, fitted by default
    from k ≥ 316 (16 points), each the mean of 64 seeds whose values are `k^slope · X`
    with a positive noise `X` of mean 1 (`synthetic_curves` in `tests/test_fit.py`);
    95% intervals. The figures are the same for every true slope and constant (the fit
    is equivariant: a power law times the noise is the noise plus a line in log space).
    "accepts s" is the fraction of curves with true slope −1 whose interval contains `s`.

    | noise `X` | coverage | accepts −1.05 | −1.1 | −1.2 | −2 | coverage, `correlated=False` |
    |---|---|---|---|---|---|---|
    | independent χ²₁ (relative sd 1.4) | 100% | 98% | 56% | 0.2% | 0% | 96.6% |
    | independent lognormal, log-sd 1 | 100% | 94% | 34% | 0% | 0% | 95.5% |
    | `g²`, `g` a unit AR(1) with ρ = 0.7 between neighbours | 98.8% | 91% | 51% | 0.7% | 0% | 83.9% |
    | the same, ρ = 0.9 | 95.8% | 84% | 50% | 2.1% | 0% | 73.4% |
    | `exp(g − ½)`, ρ = 0.7 | 97.6% | 83% | 32% | 0.3% | 0% | 79.9% |
    | the same, ρ = 0.9 | 96.7% | 80% | 33% | 0.1% | 0% | 76.6% |
    | `exp(W − ½var W)`, `W` a random walk, steps of sd 0.25 | 99.2% | 95% | 64% | 1.6% | 0% | 83.8% |

    So correlation breaks the independent interval (`correlated=False`, nominal only for
    independent checkpoints such as separate runs), and the default allowance restores
    it, at the price of intervals about 1.8 times as wide when the noise is independent.
    Fewer seeds make the standard errors themselves noisy: for the ρ = 0.9 χ² noise the
    coverage is 89.9% with 8 seeds, 92.6% with 16, 96.8% with 256. Without standard
    errors the residuals set the scale, which positive correlation shrinks: coverage is
    100% for independent χ²₁ noise but 79% for ρ = 0.9 and 60% for the random walk, so
    pass standard errors when there are any.

    **Arguments:**

    - `steps`: checkpoints `k`, positive and strictly increasing, shape `(n,)`.
    - `values`: the measured (mean) errors at `steps`, positive, shape `(n,)`.
    - `standard_errors`: standard errors of `values` over seeds, positive, or `None`.
    - `start`: fit the checkpoints `k ≥ start`. Default `√(steps[0]·steps[-1])`: the
      second half of a log-spaced curve, past the transient of the first half.
    - `confidence`: level of the interval, in (0, 1).
    - `correlated`: allow for correlation between checkpoints (see above).

    **Returns:**

    A `RateFit`.
    """
    steps, values, standard_errors = _curve(steps, values, standard_errors)
    confidence = _confidence(confidence)
    start = math.sqrt(steps[0] * steps[-1]) if start is None else _positive_number(start, "start")
    window = _window(steps, start, minimum=3)
    log_steps = np.log(steps[window])
    design = np.stack([np.ones_like(log_steps), log_steps], axis=1)
    estimate, half_width, reduced_chi2 = _regress(
        design, values[window], _select(standard_errors, window), log_steps, confidence, correlated)
    return RateFit(
        slope=_triple(estimate[1], half_width[1]), intercept=float(estimate[0]),
        num_points=int(window.sum()), start=float(start), confidence=confidence,
        reduced_chi2=reduced_chi2,
    )


def fit_power_log(steps, values, standard_errors=None, *, start=None, confidence=0.95,
                  correlated=True) -> PowerLogFit:
    """Fit `log value = c − a · log k + b · log log k` over the checkpoints `k ≥ start`.

    The model of errors like `O(log(k)^b / k^a)`, e.g. the derivative error of SGD with
    step sizes `∝ 1/k`, claimed `O(log(k)²/k)`. The regression, weights, misfit scaling
    and correlation allowance are those of `fit_power_law`, with `n − 3` degrees of
    freedom. `log log k` must be positive, hence `k ≥ 3`.

    `b` is only identified over a wide range of `log k` (`log log k` is nearly linear in
    `log k` over a narrow one): at 31 log-spaced checkpoints from 1 to 10⁵, the standard
    deviation of `b` per unit of noise in `log value` is 1.0 from k ≥ 3, 2.4 from k ≥ 10,
    and 14 from k ≥ 316. Hence the default `start = 3`; pass a later start if the curve
    has a transient, and expect a wide interval for `b`.

    Calibration (measured as in `fit_power_law`, 1000 curves a line, fitted from k = 3:
    29 points): true curves `log(k)²/k`, 95% intervals. By equivariance the coverage of
    `b` on `log(k)²/k` curves is also the rate at which `b = 0` is accepted on `1/k`
    curves with the same noise.

    | noise `X` | covers a | covers b | accepts b = 1 | accepts b = 0 | covers b, `correlated=False` |
    |---|---|---|---|---|---|
    | independent χ²₁ | 99.9% | 99.8% | 3.8% | 0% | 96.0% |
    | independent lognormal | 99.9% | 99.8% | 1.3% | 0% | 95.0% |
    | χ² of AR(1), ρ = 0.7 | 98.9% | 98.6% | 8.8% | 0% | 84.8% |
    | χ² of AR(1), ρ = 0.9 | 95.7% | 95.6% | 11% | 0% | 74.7% |
    | lognormal AR(1), ρ = 0.7 | 96.5% | 95.8% | 5.8% | 0% | 77.1% |
    | lognormal AR(1), ρ = 0.9 | 95.7% | 95.8% | 5.4% | 0% | 76.6% |
    | lognormal random walk | 98.6% | 98.3% | 0% | 0% | 83.1% |

    The median width of the interval of `b` is 1.0–1.3 (0.7 for the random walk). On the
    same curves `fit_power_law` (from k ≥ 316) rejects the slope −1 on ≥ 99.4% of them:
    the log factor shows as a shallower slope, and only this fit names it.

    **Arguments:**

    - `steps`: checkpoints `k`, positive and strictly increasing, shape `(n,)`.
    - `values`: the measured (mean) errors at `steps`, positive, shape `(n,)`.
    - `standard_errors`: standard errors of `values` over seeds, positive, or `None`.
    - `start`: fit the checkpoints `k ≥ start`; at least 3, which is the default.
    - `confidence`: level of the intervals, in (0, 1).
    - `correlated`: allow for correlation between checkpoints (see `fit_power_law`).

    **Returns:**

    A `PowerLogFit`.
    """
    steps, values, standard_errors = _curve(steps, values, standard_errors)
    confidence = _confidence(confidence)
    start = 3.0 if start is None else _positive_number(start, "start")
    if start < 3:
        raise ValueError(f"start must be ≥ 3 so that log log k > 0, got {start}")
    window = _window(steps, start, minimum=4)
    log_steps = np.log(steps[window])
    design = np.stack([np.ones_like(log_steps), -log_steps, np.log(log_steps)], axis=1)
    estimate, half_width, reduced_chi2 = _regress(
        design, values[window], _select(standard_errors, window), log_steps, confidence, correlated)
    return PowerLogFit(
        a=_triple(estimate[1], half_width[1]), b=_triple(estimate[2], half_width[2]),
        intercept=float(estimate[0]), num_points=int(window.sum()), start=float(start),
        confidence=confidence, reduced_chi2=reduced_chi2,
    )


def fit_linear_rate(steps, values, standard_errors=None, *, start=None, confidence=0.95) -> RateFit:
    """Fit `log value = c + k·log q` over the checkpoints `k ≥ start`: a linear (geometric)
    rate `value ∝ q^k`. The returned `RateFit`'s `slope` is `log q` per step, with its
    interval (`math.exp` of it is the factor per step). The regression, weights and misfit
    scaling are those of `fit_power_law`, in k instead of `log k`, without the correlation
    allowance (a deterministic curve, or independent points). Default `start`: the
    midpoint of the steps, past the transient."""
    steps, values, standard_errors = _curve(steps, values, standard_errors)
    confidence = _confidence(confidence)
    start = 0.5 * (steps[0] + steps[-1]) if start is None else float(start)
    window = _window(steps, start, minimum=3)
    design = np.stack([np.ones(int(window.sum())), steps[window]], axis=1)
    estimate, half_width, reduced_chi2 = _regress(
        design, values[window], _select(standard_errors, window), steps[window], confidence, False)
    return RateFit(slope=_triple(estimate[1], half_width[1]), intercept=float(estimate[0]),
                   num_points=int(window.sum()), start=float(start), confidence=confidence,
                   reduced_chi2=reduced_chi2)


@dataclasses.dataclass(frozen=True)
class OffsetPowerFit:
    """`value ≈ offset + scale·(x/reference)^(−exponent)`, fitted over `num_points` values of x.

    `exponent` is `(lo, estimate, hi)` inside its `confidence` interval, or `lo = 0` when a
    constant (the model with exponent 0) is not rejected: then the data do not resolve any
    dependence on x. `upper_open` says the interval reached the largest exponent searched.
    `reference` is the largest x, so `offset + scale` is the fitted value there.
    """

    exponent: tuple[float, float, float]
    offset: float
    scale: float
    reference: float
    num_points: int
    confidence: float
    reduced_chi2: float
    constant_rejected: bool
    upper_open: bool

    def predict(self, x):
        """The fitted `offset + scale·(x/reference)^(−exponent)` at `x`."""
        return self.offset + self.power_part(x)

    def power_part(self, x):
        """The fitted x-dependent part `scale·(x/reference)^(−exponent)` at `x`."""
        return self.scale * (np.asarray(x, dtype=np.float64) / self.reference) ** (-self.exponent[1])

    def as_dict(self) -> dict:
        """The fit as plain JSON-ready values."""
        return {**dataclasses.asdict(self), "exponent": list(self.exponent)}


def fit_offset_power(x, values, standard_errors, *, confidence=0.95, max_exponent=8.0,
                     resolution=1e-3) -> OffsetPowerFit:
    """Fit `value = A + B·(x/x_max)^(−s)`, `B ≥ 0`, by weighted least squares, with a
    profile-likelihood interval for `s`.

    The model of a variance that is the sum of a part independent of x and a part growing
    like `x^(−s)` as x → 0 (the smoothed estimator's variance against η): a log–log
    slope would mix the two, and a constant would pass any one-sided test on it.

    - For each s on a grid of step `resolution` in `(0, max_exponent]`, A and B solve the
      weighted linear least squares with weights `1/se²` (B clipped at 0, where the fit is
      the weighted mean), giving the profile `χ²(s)`; `s = 0` is the constant model.
    - The interval is the hull of `{s : χ²(s) ≤ χ²_min + q·f}`, `q` the `confidence`
      quantile of χ²₁ (Wilks' theorem for one parameter), `f = max(1, χ²_min/(n − 3))`
      widening it when the scatter exceeds the standard errors (a misfitting model, or
      standard errors that are themselves noisy).
    - `lo = 0` exactly when the constant model is inside: x-dependence not resolved.

    **Arguments:** `x` (> 0, at least 4 distinct values), `values` and their
    `standard_errors` (> 0), independent between points; `confidence` in (0, 1).

    **Returns:** an `OffsetPowerFit`.
    """
    x = _vector(x, "x")
    values = _vector_like(values, "values", x, "x")
    standard_errors = _vector_like(standard_errors, "standard_errors", x, "x")
    confidence = _confidence(confidence)
    if np.any(x <= 0) or np.any(standard_errors <= 0):
        raise ValueError("x and standard_errors must be positive")
    if np.unique(x).size < 4:
        raise ValueError(f"fitting A + B·x^(−s) needs at least 4 distinct x, got {np.unique(x).size}")
    reference = float(np.max(x))
    weights = standard_errors**-2.0
    exponents = np.arange(1, round(max_exponent / resolution) + 1) * resolution
    powers = np.exp(np.outer(exponents, np.log(reference / x)))     # (grid, n), ≥ 1

    def centred(columns):
        return columns - (columns @ weights / weights.sum())[..., None]

    y, e = centred(values), centred(powers)
    syy = float(weights @ y**2)
    sxy, sxx = e @ (weights * y), (e**2) @ weights
    chi2 = syy - np.maximum(sxy, 0.0) ** 2 / sxx
    best = int(np.argmin(chi2))
    dof = x.size - 3
    reduced = float(chi2[best] / dof) if dof > 0 else float("nan")
    threshold = chi2[best] + stats.chi2.ppf(confidence, 1) * (max(1.0, reduced) if dof > 0 else 1.0)
    inside = np.flatnonzero(chi2 <= threshold)
    constant_rejected = bool(syy > threshold)
    scale = max(float(sxy[best] / sxx[best]), 0.0)
    offset = float(values @ weights / weights.sum() - scale * powers[best] @ weights / weights.sum())
    return OffsetPowerFit(
        exponent=(0.0 if not constant_rejected else float(exponents[inside[0]]), float(exponents[best]),
                  float(exponents[inside[-1]])),
        offset=offset, scale=scale, reference=reference, num_points=int(x.size), confidence=confidence,
        reduced_chi2=reduced, constant_rejected=constant_rejected, upper_open=bool(inside[-1] == exponents.size - 1),
    )


def consistent_with_slope(fit: RateFit, claimed: float) -> bool:
    """Whether the `claimed` slope lies inside the fit's interval."""
    lo, _, hi = fit.slope
    return bool(lo <= claimed <= hi)


def no_steeper_than(fit: RateFit, claimed: float) -> bool:
    """Whether the curve may decay no faster than the `claimed` slope: `claimed ≤ hi`.

    `False` means the curve decays significantly faster than claimed, which refutes a
    claimed rate that should be tight (a lower bound on the error). As a one-sided test
    its level is `(1 + confidence)/2`, since it uses the fit's two-sided interval.
    """
    return bool(claimed <= fit.slope[2])


def at_least_as_steep_as(fit: RateFit, claimed: float) -> bool:
    """Whether the curve may decay at least as fast as the `claimed` slope: `lo ≤ claimed`.

    `False` means the curve decays significantly more slowly than claimed, which refutes
    a claimed upper bound `O(k^claimed)` on the error. As a one-sided test its level is
    `(1 + confidence)/2`, since it uses the fit's two-sided interval.
    """
    return bool(fit.slope[0] <= claimed)


def plateau(steps, values, standard_errors=None, *, last_fraction=0.25) -> Plateau:
    """The level a curve settles at: the mean of `values` over its last checkpoints.

    For constant step sizes, where SGD settles in a noise ball. The standard error is the
    larger of the mean of the standard errors (the standard error of the average whatever
    the correlation between checkpoints, as `sd(Σ) ≤ Σ sd`) and the scatter of the
    values over `√m` (which exceeds it if the curve is still moving); without standard
    errors, only the latter, which assumes independent checkpoints.

    Calibration: on constant curves (64 seeds of χ² noise from an AR(1) along the
    checkpoints, as in `fit_power_law`), `level ± 1.96 · standard_error` covered the
    truth on 100% of 1000 curves for ρ = 0.5 and 95% for ρ = 0.95: conservative, and
    nominal as the checkpoints approach full correlation.

    **Arguments:**

    - `steps`: checkpoints, positive and strictly increasing, log-spaced, shape `(n,)`.
    - `values`: the measured (mean) errors at `steps`, positive, shape `(n,)`.
    - `standard_errors`: standard errors of `values` over seeds, positive, or `None`.
    - `last_fraction`: the fraction of the checkpoints (by index, so of the log-range)
      averaged, in (0, 1]; at least 2 checkpoints are used.

    **Returns:**

    A `Plateau(level, standard_error, num_points)`.
    """
    steps, values, standard_errors = _curve(steps, values, standard_errors)
    if not 0 < last_fraction <= 1:
        raise ValueError(f"last_fraction must be in (0, 1], got {last_fraction}")
    count = max(2, math.ceil(last_fraction * steps.size))
    if count > steps.size:
        raise ValueError(f"values must have at least 2 checkpoints for a plateau, got {steps.size}")
    tail = values[-count:]
    scatter = float(np.std(tail, ddof=1) / math.sqrt(count))
    seed_noise = 0.0 if standard_errors is None else float(np.mean(standard_errors[-count:]))
    return Plateau(float(np.mean(tail)), max(scatter, seed_noise), count)


def plateau_slope(step_sizes, plateaus, plateau_errors=None, *, confidence=0.95,
                  correlated=True) -> RateFit:
    """Fit `log plateau = c + slope · log α` across constant step sizes `α`.

    The noise ball of SGD with a constant step size scales like `α σ²/μ`: slope 1. This is
    `fit_power_law` with the step sizes as abscissae, over all of them (sorted first).

    Calibration: 5 step sizes a factor 16 apart, each with the `plateau` of a curve of 64
    seeds (AR(1) χ² noise, ρ = 0.5), 1000 trials: the 95% interval (median width 0.55)
    covered the true exponent every time, for exponent 1 and for 0, and never the other.

    **Arguments:**

    - `step_sizes`: distinct positive step sizes, shape `(m,)`, m ≥ 3.
    - `plateaus`: the plateau level at each step size, positive, shape `(m,)`.
    - `plateau_errors`: their standard errors, positive, or `None`.
    - `confidence`: level of the interval, in (0, 1).
    - `correlated`: allow for correlation between step sizes (runs that share seeds).

    **Returns:**

    A `RateFit` whose `slope` is the exponent of the step size.
    """
    step_sizes = _vector(step_sizes, "step_sizes")
    if step_sizes.size < 3:
        raise ValueError(f"step_sizes must hold at least 3 step sizes to fit a slope, got {step_sizes.size}")
    order = np.argsort(step_sizes)
    plateaus = _vector_like(plateaus, "plateaus", step_sizes, "step_sizes")
    if plateau_errors is not None:
        plateau_errors = _vector_like(plateau_errors, "plateau_errors", step_sizes, "step_sizes")[order]
    step_sizes = step_sizes[order]
    if np.any(np.diff(step_sizes) == 0):
        raise ValueError(f"step_sizes must be distinct, got {step_sizes}")
    if np.any(step_sizes <= 0):
        raise ValueError(f"step_sizes must be > 0, got {step_sizes}")
    return fit_power_law(step_sizes, plateaus[order], plateau_errors, start=step_sizes[0],
                         confidence=confidence, correlated=correlated)


def _regress(design, values, standard_errors, positions, confidence, correlated):
    """Weighted least squares of `log values` on `design`, with the `half_width` of each
    coefficient's interval at `confidence` and the reduced χ²; `positions` (`log k`) are
    where the correlation decays. Without `standard_errors`, ordinary least squares with
    the residual variance."""
    n, p = design.shape
    log_values = np.log(values)
    # The delta method: sd(log mean) ≈ se / mean.
    sigmas = np.ones(n) if standard_errors is None else standard_errors / values
    whitened = design / sigmas[:, None]
    # Row j of `solver` maps the data to coefficient j; its variance under any
    # correlation matrix C of the data is solverⱼ · diag(σ) C diag(σ) · solverⱼᵀ.
    solver = np.linalg.pinv(whitened) / sigmas[None, :]
    estimate = solver @ log_values
    residuals = (log_values - design @ estimate) / sigmas
    reduced_chi2 = float(residuals @ residuals / (n - p))
    scale = reduced_chi2 if standard_errors is None else max(1.0, reduced_chi2)
    weighted = solver * sigmas[None, :]
    variance = np.sum(weighted**2, axis=1)
    if correlated:
        gap = np.median(np.diff(np.sort(positions)))
        distances = np.abs(positions[:, None] - positions[None, :])
        correlations = np.exp(-distances[None] / (_CORRELATION_LENGTHS[:, None, None] * gap))
        correlated_variances = np.einsum("ji,lik,jk->lj", weighted, correlations, weighted)
        variance = np.maximum(variance, correlated_variances.max(axis=0))
    quantile = stats.t.ppf(0.5 + confidence / 2, n - p)
    half_width = quantile * np.sqrt(scale * variance)
    return estimate, half_width, (None if standard_errors is None else reduced_chi2)


def _select(standard_errors, window):
    return None if standard_errors is None else standard_errors[window]


def _triple(estimate, half_width) -> tuple[float, float, float]:
    return float(estimate - half_width), float(estimate), float(estimate + half_width)


def _window(steps, start, minimum):
    window = steps >= start
    if window.sum() < minimum:
        span = f"steps run from {steps[0]} to {steps[-1]}" if steps.size else "no steps were given"
        raise ValueError(f"start = {start} leaves {int(window.sum())} checkpoints to fit; "
                         f"at least {minimum} are needed ({span})")
    return window


def _curve(steps, values, standard_errors):
    steps = _vector(steps, "steps")
    values = _vector_like(values, "values", steps, "steps")
    if np.any(steps <= 0):
        raise ValueError(f"steps must be > 0, got {steps}")
    if np.any(np.diff(steps) <= 0):
        raise ValueError(f"steps must be strictly increasing, got {steps}")
    if np.any(values <= 0):
        raise ValueError(f"values must be > 0 (they are fitted in log space), got {values}")
    if standard_errors is not None:
        standard_errors = _vector_like(standard_errors, "standard_errors", steps, "steps")
        if np.any(standard_errors <= 0):
            raise ValueError("standard_errors must be > 0 (pass None for noiseless curves), "
                             f"got {standard_errors}")
    return steps, values, standard_errors


def _vector_like(array, name, reference, reference_name):
    vector = _vector(array, name)
    if vector.shape != reference.shape:
        raise ValueError(f"{name} must have the shape of {reference_name} {reference.shape}, got {vector.shape}")
    return vector


def _vector(array, name):
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array}")
    return array


def _confidence(confidence):
    confidence = float(confidence)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return confidence


def _positive_number(value, name):
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value

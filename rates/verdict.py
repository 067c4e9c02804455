"""Verdicts: does a measured curve stay under its bound, and is its rate the claimed one?

A curve is the mean over S seeds of a squared error, with its standard error, at
checkpoints `steps`. The bound is *held* when, at every checkpoint,
`mean − z·se ≤ bound` (z = 3 by default: a true bound is declared violated at one
checkpoint with probability at most Φ(−3) = 1.3e-3 under the normal approximation of
the seed mean).

Calibration (1000 synthetic curves per cell, 31 checkpoints, per-seed values
`bound(k)·χ²₂/2`, independent across checkpoints; `tests/test_rates.py` re-measures it):
a bound exactly equal to the true mean everywhere, the worst case, is declared violated
in 0.4% (S = 16), 0.6% (S = 32) and 0.3% (S = 64) of curves; a bound at half the true
mean is caught in 97%, 100%, 100%; at a quarter, always; at 0.8 of the mean, in 9%,
22%, 71%. Bounds that are loose are never declared violated. The *rate* is consistent when
the claimed log–log slope lies in the confidence interval of the fitted slope (`rates.fit`,
whose calibration is stated there) for a rate claimed tight, and on the right side of it
for a rate that is only an upper bound (`rate_holds`). `judge` reads both the values and
the rate from a `rates.bounds.Evaluation`.

Where the expected curve is known exactly (`rates.exact_curves`, problems whose gradients
are affine in x), `exact_agreement` tests the measurement against it two-sidedly, checkpoint
by checkpoint. `smallest_detected` searches for the smallest perturbation of a verdict's
input that the verdict catches: the power of a check, measured by running it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from rates import fit as rate_fit
from rates.bounds import Evaluation, Rate, RateKind

BOUND_Z = 3.0
MIN_FIT_POINTS = 4
# An exponential rate is confirmed when the error falls by more than this factor.
EXPONENTIAL_DROP = 1e-12
# A plateau (a noise ball, a floor) must sit this far above where the run started: a curve
# that fell to rounding is flat too, but it is not the claimed plateau.
PLATEAU_ABOVE_START = 1e-8

# `exact_agreement`: the family-wise probability of failing a correct engine (nominal, under
# the Bonferroni bound and the normal approximation of the seed mean; measured: its docstring).
EXACT_FAMILY_FALSE_FAILURE = 1e-3
# A checkpoint is deterministic when its standard error is below this fraction of its mean (all
# seeds equal: k = 0); it must then match the exact value to `EXACT_RTOL`, relative.
DETERMINISTIC_SE = 1e-12
EXACT_RTOL = 1e-9
# The normal approximation of a mean of S seeds is trusted when their coefficient of variation
# (sd/mean) is at most this, i.e. the effective number of seeds (Σx)²/Σx² is at least about S/2.
MAX_VARIATION = 1.0


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The verdict on one quantity (e.g. the derivative error of one regime)."""

    quantity: str
    bound_holds: bool
    # max over checkpoints of (mean − z·se)/bound; ≤ 1 when the bound holds. It includes k = 0,
    # where bound and measurement are both the initial error: how loose a bound is shows in
    # `experiments.rate_checks.bound_over_measured` over the fit window instead.
    worst_ratio: float
    fitted_slope: tuple[float, float, float] | None
    claimed_slope: float | None
    rate_consistent: bool | None

    @property
    def passed(self) -> bool:
        return self.bound_holds and self.rate_consistent is not False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"passed": self.passed}


def past_start(steps, *curves, start: float | None = None):
    """The checkpoints `k ≥ max(1, start)` of `steps` and of each curve (log–log fits
    cannot use k = 0, and the transient before `start` is not part of the claim)."""
    keep = np.asarray(steps) >= max(1.0, start or 1.0)
    return (np.asarray(steps)[keep],) + tuple(np.asarray(c)[keep] for c in curves)


def resolution_floor(scale_sq: float, step_fraction: float = 0.5) -> float:
    """The smallest squared error float64 resolves for SGD around a point of squared norm
    `scale_sq`, with steps `α ≥ step_fraction/L`: `(8ε)²·scale_sq·max(1, 1/(2αL))²`.

    At `α = 1/(2L)` an iterate rounded at every step cannot get closer than about
    `ε‖x*‖` (measured: 1.7·ε²‖x*‖² on double interpolation). A smaller step stalls
    earlier, once its update `α∇f_ξ(x)` is below half an ulp of `x`, at
    `‖x − x*‖ ≈ ε‖x*‖/(αL)`: measured on simple interpolation (32 seeds, α·K fixed), the
    iterate error levels at 0.78, 0.98 and 1.03 × `ε²‖x*‖²/(αL)²` for `αL = 1/16, 1/32,
    1/64`, so the factor `(1/(2αL))²` keeps the margin of about 16 that the floor has at
    `1/(2L)`.
    """
    return (8.0 * np.finfo(np.float64).eps) ** 2 * scale_sq * max(1.0, 0.5 / step_fraction) ** 2


def bound_holds(mean, standard_error, bound, z: float = BOUND_Z, floor: float = 0.0) -> tuple[bool, float]:
    """Whether `mean − z·se ≤ max(bound, floor)` at every checkpoint, and the worst ratio.

    `floor` is the float64 resolution of the quantity (`resolution_floor`): below it a
    measurement is rounding, not convergence."""
    mean, standard_error, bound = (np.asarray(v, dtype=np.float64) for v in (mean, standard_error, bound))
    if not mean.shape == standard_error.shape == bound.shape:
        raise ValueError(f"mean, standard_error and bound must have one shape, got "
                         f"{mean.shape}, {standard_error.shape}, {bound.shape}")
    lower = mean - z * standard_error
    # A relative allowance of 1e-9 for rounding where bound and measurement coincide (k = 0).
    bound = np.maximum(bound, floor)
    ratios = lower / np.maximum(bound, np.finfo(np.float64).tiny)
    return bool(np.all(lower <= bound * (1 + 1e-9))), float(np.max(ratios))


def check(quantity: str, steps, mean, standard_error, bound, *, claimed_slope: float | None = None,
          fit_from: float | None = None, z: float = BOUND_Z, floor: float = 0.0, rate: Rate | None = None) -> Verdict:
    """Compare one measured curve with its bound and (optionally) a claimed slope.

    **Arguments:**

    - `quantity`: a label. `steps`, `mean`, `standard_error`, `bound`: arrays over checkpoints.
    - `claimed_slope`: the log–log slope the theory claims (−1 for `O(1/k)`, 0 for a
      plateau), tested over the steps `k ≥ fit_from`.
    - `z`: the width of the one-sided confidence band in standard errors.
    - `floor`: the float64 resolution of the quantity (`resolution_floor`).
    - `rate`: how to test the slope (`rate_holds`); default, a tight power rate with
      `claimed_slope` (the slope must lie in the fit's interval).

    **Returns:** a `Verdict`.
    """
    holds, worst = bound_holds(mean, standard_error, bound, z, floor)
    if claimed_slope is None:
        return Verdict(quantity, holds, worst, None, None, None)
    window = past_start(steps, mean, standard_error, start=fit_from)
    if window[0].size < MIN_FIT_POINTS:
        # A run too short to reach the claimed regime cannot confirm its rate.
        return Verdict(quantity, holds, worst, None, float(claimed_slope), False)
    fitted = rate_fit.fit_power_law(*window, start=fit_from)
    consistent = rate_holds(fitted, rate or Rate(RateKind.POWER, power=float(claimed_slope)))
    return Verdict(quantity, holds, worst, tuple(float(s) for s in fitted.slope), float(claimed_slope), consistent)


def rate_holds(fitted: rate_fit.RateFit, rate: Rate) -> bool:
    """Whether a fitted log–log slope agrees with a power or plateau `rate`: inside the
    fit's interval when the rate is claimed tight; one-sided when it is only an upper
    bound (an error as `k → ∞` must fall at least as fast; a variance as `η → 0` must
    grow no faster, i.e. its slope in η be no steeper)."""
    if rate.slope is None:
        raise ValueError("an exponential rate is judged by the drop of the curve, not by a slope")
    if rate.tight:
        return rate_fit.consistent_with_slope(fitted, rate.slope)
    if rate.variable == "k":
        return rate_fit.at_least_as_steep_as(fitted, rate.slope)
    return rate_fit.no_steeper_than(fitted, rate.slope)


def judge(quantity: str, mean, standard_error, bound: Evaluation, *, fit_from: float, z: float = BOUND_Z,
          floor: float = 0.0) -> Verdict:
    """Compare one measured curve with a bound evaluated on its run, reading what to test
    from the bound: its values (held: `mean − z·se ≤ bound` at every checkpoint) and its
    rate at the run's constants (`bound.rate`).

    - power rate (`O(1/k)`, …) or plateau: the log–log slope over `k ≥ fit_from`, tested
      as `rate_holds` does (two-sided when tight, one-sided for an upper bound); a plateau
      must also stay `PLATEAU_ABOVE_START` above the initial error, not fall to rounding;
    - exponential rate: the curve falls by more than `EXPONENTIAL_DROP`.

    `floor` is the float64 resolution of the quantity (`resolution_floor`).
    """
    steps, rate = bound.steps, bound.rate
    mean = np.asarray(mean, dtype=np.float64)
    if rate.kind is RateKind.EXPONENTIAL:
        holds, worst = bound_holds(mean, standard_error, bound.values, z, floor)
        return Verdict(quantity, holds, worst, None, None, bool(mean[-1] / mean[0] < EXPONENTIAL_DROP))
    verdict = check(quantity, steps, mean, standard_error, bound.values, claimed_slope=rate.slope,
                    fit_from=fit_from, z=z, floor=floor, rate=rate)
    if rate.kind is RateKind.PLATEAU:
        above_rounding = bool(mean[-1] / mean[0] > PLATEAU_ABOVE_START)
        verdict = dataclasses.replace(verdict, rate_consistent=bool(verdict.rate_consistent and above_rounding))
    return verdict


@dataclasses.dataclass(frozen=True)
class Agreement:
    """The verdict of `exact_agreement`: does a measured curve agree with its exact expectation?

    `max_abs_z`: the largest |z| over the tested checkpoints (`None`: none tested);
    `threshold`: the Bonferroni critical value of |z| before the skewness allowance, and
    `worst_ratio`: the largest |z| ÷ (that checkpoint's critical value, allowance included),
    ≤ 1 when every tested checkpoint agrees. `worst`: where that ratio is attained,
    `(row, column)` of the inputs. `deterministic_deviation`: the largest relative
    |mean − exact| over the deterministic checkpoints (`None`: none). Counts: `num_tested`
    (z-tested), `num_deterministic`, `num_unresolved` (exact value at or below the float64
    floor: not tested), `num_heavy_tailed` (seeds too dispersed for the normal approximation:
    not tested)."""

    passed: bool
    max_abs_z: float | None
    threshold: float
    worst_ratio: float | None
    worst: tuple[int, int] | None
    deterministic_deviation: float | None
    family_false_failure: float
    num_tested: int
    num_deterministic: int
    num_unresolved: int
    num_heavy_tailed: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"verdict": "pass" if self.passed else "fail",
                                           "worst": None if self.worst is None else list(self.worst)}


def sample_skewness(per_seed) -> np.ndarray:
    """`m₃/m₂^(3/2)` over the first (seed) axis; 0 where the seeds are all equal."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    deviations = per_seed - per_seed.mean(axis=0)
    m2, m3 = np.mean(deviations**2, axis=0), np.mean(deviations**3, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        skewness = m3 / m2**1.5
    return np.where(m2 > 0, skewness, 0.0)


def exact_agreement(mean, standard_error, exact, *, floor=0.0, num_seeds: int | None = None, skewness=None,
                    family_false_failure: float = EXACT_FAMILY_FALSE_FAILURE) -> Agreement:
    """Whether measured means over seeds agree with their exact expectations at every checkpoint.

    **The test.** The inputs are arrays over checkpoints, `(C,)`, or a stack of curves
    (statistics) `(Q, C)` with `floor` a number or one per curve. Each checkpoint is one of:

    - *unresolved*, when the exact value is at or below `floor` (the float64 resolution,
      `resolution_floor`): the measurement there is rounding, and it is not tested;
    - *deterministic*, when `se ≤ DETERMINISTIC_SE·|mean|` (every seed equal, e.g. k = 0): it
      must match, `|mean − exact| ≤ EXACT_RTOL·|exact|`;
    - *heavy-tailed*, when the seeds' coefficient of variation `se·√S/mean` exceeds
      `MAX_VARIATION` (the effective number of seeds (Σx)²/Σx² is below about S/2): a few seeds
      carry the mean, whose normal approximation is then not to be trusted, so it is not
      tested (`num_heavy_tailed` says how many; only with `num_seeds`);
    - otherwise *tested*: `z = (mean − exact)/se` must satisfy `|z| ≤ t + |γ|(2t² + 1)/(6√S)`.

    `t` is the two-sided Bonferroni critical value over the m tested checkpoints: the
    `1 − family_false_failure/(2m)` quantile of Student's t with S − 1 degrees of freedom
    (of the normal distribution without `num_seeds`), so that under a normal seed mean a
    correct engine fails somewhere with probability at most `family_false_failure`. The
    allowance `|γ|(2t² + 1)/(6√S)`, with γ the seeds' sample `skewness` at that checkpoint
    (none when `skewness` is not given), is the first-order Edgeworth shift of the quantiles
    of a studentized mean of skewed values (Hall, *The Bootstrap and Edgeworth Expansion*,
    1992, §2.6), taken on both sides.

    Calibration, measured on the report's six quadratic regimes (`experiments.regimes`, quick
    run lengths, shortened to at most 60,000 steps), 4,096 seeds of the engine split into
    disjoint groups and each group tested against `rates.exact_curves` on its three statistics
    (about 110 checkpoints, m ≈ 110). Groups of 128 seeds failed in 0 of 32 groups for every
    regime; groups of 32 in 0 of 128 for five regimes and in 5 of 128 for double
    interpolation; groups of 16 in at most 3 of 256 (1.2%), and 31 of 256 for double
    interpolation; groups of 8 in at most 2 of 512, and 65 of 512. Double interpolation is the
    hard case: its errors are products of random contractions, log-normal with a spread
    growing with k, so that its late checkpoints are heavy-tailed (coefficient of variation up
    to 6 over the 4,096 seeds); the variation screen leaves out most of them, not all. Larger
    constant steps make the stationary errors heavy-tailed too (SGD's multiplicative noise;
    least squares, n = 40, d = 3, at α = 1/(4L): 3 failures in 128 groups of 16). Without the
    skewness allowance, groups of 32 failed in up to 1.6% of groups on the five other regimes
    (the first checkpoints, k = 1, 2, whose values take a few discrete, skewed values), and with
    the normal quantile instead of Student's in up to 8%. The nominal `family_false_failure`
    therefore holds only where the seed mean is close to normal: with 32 seeds or more on
    light-tailed errors.

    **Returns:** an `Agreement`.
    """
    mean, standard_error, exact = (np.atleast_2d(np.asarray(v, dtype=np.float64))
                                   for v in (mean, standard_error, exact))
    if not mean.shape == standard_error.shape == exact.shape:
        raise ValueError(f"mean, standard_error and exact must have one shape, got "
                         f"{mean.shape}, {standard_error.shape}, {exact.shape}")
    if not 0.0 < family_false_failure < 1.0:
        raise ValueError(f"family_false_failure must be in (0, 1), got {family_false_failure!r}")
    floor = np.broadcast_to(np.asarray(floor, dtype=np.float64).reshape(-1, 1), (mean.shape[0], 1))
    skewness = (np.zeros_like(mean) if skewness is None
                else np.atleast_2d(np.nan_to_num(np.asarray(skewness, dtype=np.float64))))
    resolved = exact > floor
    deterministic = resolved & (standard_error <= DETERMINISTIC_SE * np.abs(mean))
    variable = resolved & ~deterministic
    heavy = np.zeros_like(variable)
    if num_seeds is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            heavy = variable & ~(standard_error * math.sqrt(num_seeds) <= MAX_VARIATION * mean)
    tested = variable & ~heavy
    m = int(tested.sum())
    level = family_false_failure / (2 * max(m, 1))
    threshold = float(stats.t.isf(level, num_seeds - 1) if num_seeds is not None else stats.norm.isf(level))
    root = math.sqrt(num_seeds) if num_seeds is not None else math.inf
    allowance = np.abs(skewness) * (2 * threshold**2 + 1) / (6 * root)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(tested, (mean - exact) / np.where(tested, standard_error, 1.0), 0.0)
        deviation = np.where(deterministic, np.abs(mean - exact) / np.abs(exact), 0.0)
    ratios = np.where(tested, np.abs(z) / (threshold + allowance), -np.inf)
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(ratios), ratios.shape)) if m else None
    worst_ratio = float(ratios[worst]) if m else None
    deviation_max = float(deviation.max()) if deterministic.any() else None
    passed = (worst_ratio is None or worst_ratio <= 1.0) and (deviation_max is None or deviation_max <= EXACT_RTOL)
    return Agreement(passed=bool(passed), max_abs_z=float(np.abs(z).max()) if m else None, threshold=threshold,
                     worst_ratio=worst_ratio, worst=worst, deterministic_deviation=deviation_max,
                     family_false_failure=float(family_false_failure), num_tested=m,
                     num_deterministic=int(deterministic.sum()), num_unresolved=int((~resolved).sum()),
                     num_heavy_tailed=int(heavy.sum()))


def size_grid(low: float, high: float, per_decade: int = 4) -> np.ndarray:
    """Log-spaced sizes from `low` to `high`, `per_decade` to a decade, both ends included."""
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got {low!r}, {high!r}")
    count = max(2, math.ceil(per_decade * math.log10(high / low)) + 1)
    return np.geomspace(low, high, count)


def smallest_detected(detects: Callable[[float], bool], sizes: Sequence[float] | np.ndarray, *,
                      refine: int = 6) -> float | None:
    """The smallest perturbation size that a verdict catches: the power of a check, measured.

    `detects(size)` runs the verdict on an input perturbed by `size` and says whether it
    failed. The sizes are tried in increasing order; the first caught is refined by `refine`
    bisections in log(size) between it and the size tried before it (assuming detection is
    monotone between the two), so the answer is within a factor `(s₁/s₀)^(2^−refine)` of the
    threshold. Returns `None` when no size in `sizes` is caught: the verdict is blind over the
    whole range; the smallest size when even that is caught.
    """
    sizes = sorted(float(s) for s in sizes)
    below = None
    for size in sizes:
        if detects(size):
            above = size
            break
        below = size
    else:
        return None
    if below is None:
        return above
    for _ in range(refine):
        middle = math.sqrt(below * above)
        if detects(middle):
            above = middle
        else:
            below = middle
    return above

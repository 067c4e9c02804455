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
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rates import fit as rate_fit
from rates.bounds import Evaluation, Rate, RateKind

BOUND_Z = 3.0
MIN_FIT_POINTS = 4
# An exponential rate is confirmed when the error falls by more than this factor.
EXPONENTIAL_DROP = 1e-12
# A plateau (a noise ball, a floor) must sit this far above where the run started: a curve
# that fell to rounding is flat too, but it is not the claimed plateau.
PLATEAU_ABOVE_START = 1e-8


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

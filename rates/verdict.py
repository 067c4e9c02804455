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
22%, 71%. Bounds that are loose are never declared violated. The *rate* is consistent when the claimed log–log slope lies in the
confidence interval of the fitted slope (`rates.fit`, whose calibration is stated there).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rates import fit as rate_fit

BOUND_Z = 3.0
MIN_FIT_POINTS = 4


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The verdict on one quantity (e.g. the derivative error of one regime)."""

    quantity: str
    bound_holds: bool
    # max over checkpoints of (mean − z·se)/bound; ≤ 1 when the bound holds. It includes k = 0,
    # where bound and measurement are both the initial error: how loose a bound is shows in
    # `regimes.bound_over_measured` over the fit window instead.
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
          fit_from: float | None = None, z: float = BOUND_Z, floor: float = 0.0) -> Verdict:
    """Compare one measured curve with its bound and (optionally) a claimed slope.

    **Arguments:**

    - `quantity`: a label. `steps`, `mean`, `standard_error`, `bound`: arrays over checkpoints.
    - `claimed_slope`: the log–log slope the theory claims (−1 for `O(1/k)`, 0 for a
      plateau), tested over the steps `k ≥ fit_from`.
    - `z`: the width of the one-sided confidence band in standard errors.
    - `floor`: the float64 resolution of the quantity (`resolution_floor`).

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
    consistent = rate_fit.consistent_with_slope(fitted, claimed_slope)
    return Verdict(quantity, holds, worst, tuple(float(s) for s in fitted.slope), float(claimed_slope), consistent)

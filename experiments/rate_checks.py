"""Run a regime, evaluate the certified bounds on its run and judge the measured curves.

Every claim comes from a bound object: `rates.bounds.sgd_bounds` evaluates the bounds
that apply to the run's schedule and constants (each an `Evaluation` with its
certificate, its conditions and its `Rate`), and `rates.verdict.judge` tests the mean
over seeds against the values (held at every checkpoint) and the rate (a power or a
plateau by its log–log slope over the fit window, two-sided when tight and one-sided for
an upper bound; an exponential rate by a fall of 12 orders of magnitude).

Where further bounds on the same quantity hold (decreasing steps: `O(1/k)` and the
paper's `O(log(k)²/k)` on the derivative error), `tightness` says which has the
measured rate.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments.regimes import SWEEP_FRACTIONS, SWEEP_REGIME, ConstantStep, Regime, Settings, step_label
from rates import bounds as rate_bounds
from rates import fit as rate_fit
from rates import verdict as rate_verdict
from rates.curves import Curves, error_curves

QUANTITIES = ("iterate_error", "jacobian_error")


@dataclasses.dataclass(frozen=True)
class RegimeResult:
    """One regime's run: its curves, its bounds and the verdicts on them."""

    regime: Regime
    problem_name: str
    constants: dict
    schedule: str
    curves: Curves
    bounds: rate_bounds.SGDBounds
    suboptimality_bound: np.ndarray   # (L/2)·(the iterate bound)
    verdicts: tuple[rate_verdict.Verdict, ...]
    fitted: dict
    floors: dict          # float64 resolution of each squared error, and of the suboptimality
    window_start: float   # the verdicts fit the checkpoints k ≥ window_start
    bound_ratios: dict    # quantity -> `bound_over_measured` in the window, or None

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    def verdict(self, quantity: str) -> rate_verdict.Verdict:
        """The verdict on `quantity` (`"iterate_error"` or `"jacobian_error"`)."""
        return next(v for v in self.verdicts if v.quantity == quantity)

    def evaluation(self, quantity: str) -> rate_bounds.Evaluation:
        """The bound on `quantity` (`"iterate_error"` or `"jacobian_error"`)."""
        return {"iterate_error": self.bounds.iterate, "jacobian_error": self.bounds.jacobian}[quantity]

    @property
    def claim_certificate(self) -> str | None:
        """The certificate of a rate that is not its bound's own (`sgd_interpolation`), if any."""
        return next((e.rate.certificate for e in (self.bounds.iterate, self.bounds.jacobian) if e.rate.certificate),
                    None)


def _constants_dict(constants, rounded_to_zero: tuple[str, ...]) -> dict:
    names = ("mu", "L", "sigma2", "sigma2_jac", "hessian_lipschitz", "cross_lipschitz")
    return {n: float(getattr(constants, n)) for n in names} | {"estimated": list(constants.estimated),
                                                              "rounded_to_zero": list(rounded_to_zero)}


def without_rounding_noise(constants, x_star_sq: float, jac_star_sq: float):
    """`constants` with σ² and σ_J² set to 0 where they are float64 rounding, and the names
    of those set.

    Under interpolation every per-sample gradient vanishes at x*, but computed in floating
    point it is rounding of size about `ε·L‖x*‖`: σ² comes out near `ε²L²‖x*‖²` (4e-30 on
    Figure 1's problem), not 0. The bounds' rates tell σ² = 0 (an exponential fall) from
    σ² > 0 (a plateau), so a noise below `(8ε)²·L²·‖x*‖²` (σ²) or `(8ε)²·L²·‖J*‖²_F` (σ_J²),
    the resolution of `verdict.resolution_floor` scaled by L², counts as 0.
    """
    L = float(constants.L)
    limits = {"sigma2": rate_verdict.resolution_floor(x_star_sq) * L**2,
              "sigma2_jac": rate_verdict.resolution_floor(jac_star_sq) * L**2}
    zeroed = tuple(name for name, limit in limits.items() if 0.0 < float(getattr(constants, name)) <= limit)
    return dataclasses.replace(constants, **{name: jnp.zeros(()) for name in zeroed}), zeroed


def bound_over_measured(steps, mean, bound, *, start: float | int, floor: float = 0.0) -> dict | None:
    """How loose a bound is where its regime's claim applies: `bound ÷ mean` over the
    checkpoints `k ≥ max(1, start)` at which the measurement is resolved (`mean > floor`).

    At `k = 0` a constant-step bound is the initial error itself, so a ratio taken over
    every checkpoint is 1 whatever the bound is worth; the fit window is where a bound's
    constants and rate show.

    **Arguments:**

    - `steps`, `mean`, `bound`: arrays over checkpoints; `mean` is the measured mean.
    - `start`: the first step of the window (`StepRule.fit_window_start`).
    - `floor`: the float64 resolution of the quantity (`verdict.resolution_floor`).

    **Returns:** `{"start", "num_points", "min", "max"}`, or `None` when no checkpoint
    qualifies (a run too short to reach its window).
    """
    steps, mean, bound = (np.asarray(v, dtype=np.float64) for v in (steps, mean, bound))
    keep = (steps >= max(1.0, start)) & (mean > floor)
    if not keep.any():
        return None
    # As the verdict compares them: a bound below the resolution counts as the floor.
    ratios = np.maximum(bound[keep], floor) / mean[keep]
    return {"start": float(start), "num_points": int(keep.sum()), "min": float(ratios.min()),
            "max": float(ratios.max())}


def run_regime(regime: Regime, settings: Settings) -> RegimeResult:
    """Run one regime: curves over `settings.num_seeds` seeds, its certified bounds, the
    verdicts and the looseness of each bound over the fit window.

    **Raises:** `rates.bounds.ConditionError` when the regime's steps are outside the
    conditions of its bounds."""
    problem = regime.make_problem()
    theta = problem.theta0
    x_star, jac_star = np.asarray(problem.solution(theta)), np.asarray(problem.solution_jacobian(theta))
    x_star_sq, jac_star_sq = float(np.sum(x_star**2)), float(np.sum(jac_star**2))
    constants, zeroed = without_rounding_noise(problem.constants(theta), x_star_sq, jac_star_sq)
    schedule = regime.schedule(constants)
    curves = error_curves(problem, theta, step_size=schedule, num_steps=regime.steps.num_steps(settings, constants),
                          num_seeds=settings.num_seeds, key=jax.random.key(settings.seed),
                          num_checkpoints=settings.num_checkpoints)
    bounds = rate_bounds.sgd_bounds(
        constants, schedule, batch_size=1, x0_error_sq=x_star_sq, jac0_error_sq=jac_star_sq,
        jac_star_norm=float(np.linalg.norm(jac_star)), steps=curves.steps,
    )
    L = float(constants.L)
    fraction = regime.steps.fraction
    floors = {"iterate_error": rate_verdict.resolution_floor(x_star_sq, fraction),
              "jacobian_error": rate_verdict.resolution_floor(jac_star_sq, fraction)}
    # F(x) − F(x*) ≤ (L/2)‖x − x*‖²: the suboptimality of an iterate at the resolution.
    floors["suboptimality"] = 0.5 * L * floors["iterate_error"]
    start = regime.steps.fit_window_start(constants, schedule)
    evaluations = dict(zip(QUANTITIES, (bounds.iterate, bounds.jacobian)))
    judged = {name: _verdict_on(curves, name, evaluation, start, floors[name])
              for name, evaluation in evaluations.items()}
    fitted = {}
    for name, v in judged.items():
        mean = getattr(curves, name)
        fitted[f"{name.split('_')[0]}_slope"] = _listed(v.fitted_slope)
        fitted[f"{name.split('_')[0]}_orders_of_magnitude"] = float(np.log10(mean[0] / mean[-1]))
    if bounds.jacobian_alternatives:
        fitted |= tightness(curves, bounds, start, floors["jacobian_error"], judged["jacobian_error"])
    ratios = {name: bound_over_measured(curves.steps, getattr(curves, name), evaluation.values, start=start,
                                        floor=floors[name])
              for name, evaluation in evaluations.items()}
    return RegimeResult(regime, repr(problem), _constants_dict(constants, zeroed), repr(schedule), curves, bounds,
                        0.5 * L * bounds.iterate.values, tuple(judged.values()), fitted, floors, start, ratios)


def _verdict_on(curves: Curves, quantity: str, evaluation, start: float, floor: float) -> rate_verdict.Verdict:
    return rate_verdict.judge(quantity, getattr(curves, quantity), getattr(curves, f"{quantity}_se"), evaluation,
                              fit_from=start, floor=floor)


def tightness(curves: Curves, bounds: rate_bounds.SGDBounds, start: float, floor: float,
              measured: rate_verdict.Verdict) -> dict:
    """Which of the valid bounds on the derivative error has the measured rate.

    Over the fit window each bound has its own log–log slope (`O(1/k)` has −1 there,
    `O(log(k)²/k)` has −1 + 2/log k on average, visibly shallower); a bound's rate
    matches when that slope lies in the measured slope's 95% interval. Each further bound
    (`bounds.jacobian_alternatives`) is also judged on its own (`rates.verdict.judge`:
    held, and its rate, tight or an upper bound). A free fit of `k^(−a)·log(k)^b` is
    added for completeness.

    **Returns:** `{"jacobian_bound_slopes": {certificate: slope}, "jacobian_rate_matches":
    [certificate, …], "jacobian_power_log": {"a", "b"}, "jacobian_alternatives":
    {certificate: {"rate", "tight", "bound_holds", "bound_over_measured", "verdict"}}}`.
    """
    steps, mean, standard_error = curves.steps, curves.jacobian_error, curves.jacobian_error_se
    window = rate_verdict.past_start(steps, mean, standard_error, start=start)
    enough = window[0].size >= rate_verdict.MIN_FIT_POINTS
    power_log = rate_fit.fit_power_log(*window, start=start) if enough else None
    evaluations = (bounds.jacobian,) + bounds.jacobian_alternatives
    slopes = {e.certificate: _bound_slope(steps, e.values, start) for e in evaluations}
    interval = measured.fitted_slope
    alternatives = {}
    for evaluation in bounds.jacobian_alternatives:
        verdict = _verdict_on(curves, "jacobian_error", evaluation, start, floor)
        alternatives[evaluation.certificate] = {
            "rate": evaluation.rate.describe(), "tight": evaluation.rate.tight, "bound_holds": verdict.bound_holds,
            "bound_over_measured": bound_over_measured(steps, mean, evaluation.values, start=start, floor=floor),
            "verdict": verdict.as_dict()}
    return {"jacobian_bound_slopes": slopes,
            "jacobian_rate_matches": [name for name, slope in slopes.items()
                                      if interval is not None and slope is not None
                                      and interval[0] <= slope <= interval[2]],
            "jacobian_power_log": {"a": list(power_log.a) if power_log else None,
                                   "b": list(power_log.b) if power_log else None},
            "jacobian_alternatives": alternatives}


def _bound_slope(steps, bound, start):
    """The log–log slope a bound itself has over the fit window."""
    window = rate_verdict.past_start(steps, bound, start=start)
    if window[0].size < rate_verdict.MIN_FIT_POINTS:
        return None
    return float(rate_fit.fit_power_law(*window, start=start).slope[1])


def _listed(interval):
    return None if interval is None else list(interval)


def run_sweep(settings: Settings, fractions=SWEEP_FRACTIONS, regime: Regime = SWEEP_REGIME) -> dict:
    """Plateaus of both errors under constant steps `α = fraction/L` on `regime`'s problem
    (each run `α·K`-matched by `ConstantStep.num_steps`, so that it reaches its plateau),
    and the log–log slope of the plateau against α with its 95% interval (theory: 1)."""
    results = [run_regime(dataclasses.replace(regime, steps=ConstantStep(f)), settings) for f in fractions]
    step_sizes = [f / r.constants["L"] for f, r in zip(fractions, results)]
    sweep = {"problem": results[0].problem_name, "step_fractions": list(fractions),
             "step_labels": [step_label(f) for f in fractions], "step_sizes": step_sizes}
    for quantity in ("iterate", "jacobian"):
        plateaus = [rate_fit.plateau(*rate_verdict.past_start(r.curves.steps, getattr(r.curves, f"{quantity}_error"),
                                                              getattr(r.curves, f"{quantity}_error_se")))
                    for r in results]
        sweep[f"{quantity}_plateau"] = [p[0] for p in plateaus]
        sweep[f"{quantity}_plateau_se"] = [p[1] for p in plateaus]
        fitted = rate_fit.plateau_slope(step_sizes, [p[0] for p in plateaus], [p[1] for p in plateaus])
        sweep[f"{quantity}_plateau_slope"] = [float(s) for s in fitted.slope]
        sweep[f"{quantity}_plateau_bound"] = [float(r.evaluation(f"{quantity}_error").values[-1]) for r in results]
    return sweep


def sweep_passes(sweep: dict) -> bool:
    """The plateau is proportional to the step: slope 1 in both intervals."""
    return all(lo <= 1.0 <= hi for lo, _, hi in (sweep["iterate_plateau_slope"], sweep["jacobian_plateau_slope"]))

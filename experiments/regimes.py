"""The regimes of the rate report: a problem, a schedule, and what the theory claims.

Figure 1 of the paper, on `least_squares`:

- `constant`: constant step, no interpolation — both errors settle in a noise ball
  whose size is proportional to the step (checked by a sweep over step sizes, from
  1/(2L) down);
- `decreasing`: `α_k = a/(k + k0)` with `aμ = 2` — iterates `O(1/k)`, derivatives
  `O(1/k)` (certificate `sgd_decreasing_jacobian`) and `O(log(k)²/k)` (the paper's rate);
- `double_interpolation`: σ² = σ_J² = 0 — both errors fall exponentially;
- `simple_interpolation`: σ² = 0 < σ_J² — iterates fall exponentially, derivatives
  stop at a floor proportional to the step.

The interpolation claims (exponential rates, the floor `8ασ_J²/(μb)`) are those of the
certificate `sgd_interpolation`, a specialisation of the constant-step bounds.

Figure 1's `constant` and `simple_interpolation` columns use `α = 1/(64L)`, not the
largest certified step `1/(2L)`: at `1/(2L)` the derivative noise ball of this problem
(0.12, measured) is as large as the initial error `‖J*‖²_F = 0.12`, so the column would
show no convergence at all. At `1/(64L)` both the noise ball and the floor sit about 30
times below the initial error. Every certified bound holds for any `α ≤ 1/(2L)`.

Then `ridge` and `logistic` with θ = λ, constant and decreasing steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction

import numpy as np

import problems
from derivatives.schedules import constant, inverse_time
from proofs_check import sgd as sgd_certificates
from rates import bounds as rate_bounds
from rates import fit as rate_fit
from rates import verdict as rate_verdict
from rates.curves import Curves, error_curves

KINDS = ("constant", "decreasing", "double_interpolation", "simple_interpolation")
# α = FIGURE1_STEP_FRACTION/L in Figure 1's constant-step columns (module docstring).
FIGURE1_STEP_FRACTION = 1 / 64
# Orders of magnitude that an exponentially converging error must fall by.
EXPONENTIAL_DROP = 1e-12


@dataclasses.dataclass(frozen=True)
class Regime:
    name: str
    kind: str
    make_problem: Callable[[], object]
    step_fraction: float = 0.5  # constant steps: α = step_fraction/L, at most 1/2 (α ≤ 1/(2L))

    @property
    def claim_certificate(self) -> str | None:
        """The certificate of the regime's claim where it is not the bound's own."""
        return sgd_certificates.INTERPOLATION.name if self.kind.endswith("interpolation") else None

    def schedule(self, constants):
        L, mu = float(constants.L), float(constants.mu)
        if self.kind == "decreasing":
            a = 2.0 / mu  # aμ = 2 > 1
            return inverse_time(a, 2.0 * a * L)  # α₀ = a/k0 = 1/(2L)
        return constant(self.step_fraction / L)

    def num_steps(self, settings: Settings) -> int:
        """The run's length. `settings` count steps at `α = 1/(2L)`; a smaller constant
        step runs proportionally longer (`α·K` fixed), so that its plateau, floor or
        exponential fall lasts as many time constants `1/(αμ)` past the transient."""
        if self.kind == "decreasing":
            return settings.decreasing_steps
        base = settings.constant_steps if self.kind == "constant" else settings.interpolation_steps
        return round(base * 0.5 / self.step_fraction)

    def describe_steps(self) -> str:
        """The step sizes in words, e.g. `α = 1/(64L)`."""
        if self.kind == "decreasing":
            return "α_k = a/(k + k0), aμ = 2, a/k0 = 1/(2L)"
        return f"α = {step_label(self.step_fraction)}"


def step_label(fraction: float) -> str:
    """`fraction/L` as a fraction of `1/L`, e.g. `1/(64L)`."""
    value = Fraction(fraction).limit_denominator(1 << 12)
    return f"{value.numerator}/({value.denominator}L)"


def figure1_problem(interpolation: str):
    return lambda: problems.least_squares(100, 5, interpolation, param_dim=2, seed=0)


REGIMES = (
    Regime("constant", "constant", figure1_problem("none"), FIGURE1_STEP_FRACTION),
    Regime("decreasing", "decreasing", figure1_problem("none")),
    Regime("double_interpolation", "double_interpolation", figure1_problem("double")),
    Regime("simple_interpolation", "simple_interpolation", figure1_problem("simple"), FIGURE1_STEP_FRACTION),
    Regime("ridge_constant", "constant", lambda: problems.ridge(200, 10, seed=0)),
    Regime("ridge_decreasing", "decreasing", lambda: problems.ridge(200, 10, seed=0)),
    Regime("logistic_constant", "constant", lambda: problems.logistic(200, 10, seed=0)),
    Regime("logistic_decreasing", "decreasing", lambda: problems.logistic(200, 10, seed=0)),
)
SWEEP_FRACTIONS = (0.5, 0.25, 0.125, 0.0625)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Seeds and run lengths. Constant-step runs are counted at `α = 1/(2L)` and scaled
    for smaller steps (`Regime.num_steps`)."""

    num_seeds: int
    constant_steps: int
    decreasing_steps: int
    interpolation_steps: int
    num_checkpoints: int = 40
    seed: int = 0


QUICK = Settings(num_seeds=32, constant_steps=20_000, decreasing_steps=100_000, interpolation_steps=5_000)
FULL = Settings(num_seeds=128, constant_steps=100_000, decreasing_steps=2_000_000, interpolation_steps=10_000)


@dataclasses.dataclass(frozen=True)
class RegimeResult:
    regime: Regime
    problem_name: str
    constants: dict
    schedule: str
    curves: Curves
    bounds: rate_bounds.SGDBounds
    suboptimality_bound: np.ndarray
    verdicts: tuple[rate_verdict.Verdict, ...]
    fitted: dict
    floors: dict  # float64 resolution of each squared error, and of the suboptimality
    window_start: float  # the verdicts fit the checkpoints k ≥ window_start
    bound_ratios: dict  # quantity -> `bound_over_measured` in the window, or None

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def _constants_dict(constants) -> dict:
    names = ("mu", "L", "sigma2", "sigma2_jac", "hessian_lipschitz", "cross_lipschitz")
    return {n: float(getattr(constants, n)) for n in names} | {"estimated": list(constants.estimated)}


def fit_window_start(kind: str, constants, schedule) -> float:
    """The first step of the window a regime's claim is about, past the transient.

    Decreasing steps: `10·k0`, where `α_k` has fallen tenfold. Constant steps: `10/(αμ)`,
    where the initial error has contracted by `e^−10` (iterates) or `e^−5` (derivatives,
    at the bound's rate `1 − αμ/2`)."""
    if kind == "decreasing":
        return 10.0 * float(schedule.k0)
    return 10.0 / (float(schedule.alpha) * float(constants.mu))


def bound_over_measured(steps, mean, bound, *, start: float, floor: float = 0.0) -> dict | None:
    """How loose a bound is where its regime's claim applies: `bound ÷ mean` over the
    checkpoints `k ≥ max(1, start)` at which the measurement is resolved (`mean > floor`).

    At `k = 0` a constant-step bound is the initial error itself, so a ratio taken over
    every checkpoint is 1 whatever the bound is worth; the fit window is where a bound's
    constants and rate show.

    **Arguments:**

    - `steps`, `mean`, `bound`: arrays over checkpoints; `mean` is the measured mean.
    - `start`: the first step of the window (`fit_window_start`).
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


def run_regime(regime: Regime, settings: Settings, step_fraction: float | None = None) -> RegimeResult:
    """Run one regime: curves over `settings.num_seeds` seeds, its certified bounds, the
    verdicts and the looseness of each bound over the fit window. `step_fraction`
    overrides the regime's constant step `α = step_fraction/L`."""
    import jax

    if step_fraction is not None:
        regime = dataclasses.replace(regime, step_fraction=step_fraction)
    problem = regime.make_problem()
    theta = problem.theta0
    constants = problem.constants(theta)
    schedule = regime.schedule(constants)
    curves = error_curves(problem, theta, step_size=schedule, num_steps=regime.num_steps(settings),
                          num_seeds=settings.num_seeds, key=jax.random.key(settings.seed),
                          num_checkpoints=settings.num_checkpoints)
    x_star, jac_star = np.asarray(problem.solution(theta)), np.asarray(problem.solution_jacobian(theta))
    bounds = rate_bounds.sgd_bounds(
        constants, schedule, batch_size=1, x0_error_sq=float(np.sum(x_star**2)),
        jac0_error_sq=float(np.sum(jac_star**2)), jac_star_norm=float(np.linalg.norm(jac_star)), steps=curves.steps,
    )
    L = float(constants.L)
    floors = {"iterate_error": rate_verdict.resolution_floor(float(np.sum(x_star**2)), regime.step_fraction),
              "jacobian_error": rate_verdict.resolution_floor(float(np.sum(jac_star**2)), regime.step_fraction)}
    # F(x) − F(x*) ≤ (L/2)‖x − x*‖²: the suboptimality of an iterate at the resolution.
    floors["suboptimality"] = 0.5 * L * floors["iterate_error"]
    start = fit_window_start(regime.kind, constants, schedule)
    verdicts, fitted = _judge(regime.kind, curves, bounds, start, floors)
    ratios = {name: bound_over_measured(curves.steps, getattr(curves, name), bound, start=start, floor=floors[name])
              for name, bound in (("iterate_error", bounds.iterate), ("jacobian_error", bounds.jacobian))}
    return RegimeResult(regime, repr(problem), _constants_dict(constants), repr(schedule), curves, bounds,
                        0.5 * L * bounds.iterate, tuple(verdicts), fitted, floors, start, ratios)


def _judge(kind, curves: Curves, bounds, start, floors):
    steps = curves.steps
    iterate = (curves.iterate_error, curves.iterate_error_se)
    jacobian = (curves.jacobian_error, curves.jacobian_error_se)
    if kind == "decreasing":
        iterate_verdict = rate_verdict.check("iterate_error", steps, *iterate, bounds.iterate,
                                             claimed_slope=-1.0, fit_from=start, floor=floors["iterate_error"])
        jacobian_verdict = rate_verdict.check("jacobian_error", steps, *jacobian, bounds.jacobian,
                                              claimed_slope=-1.0, fit_from=start, floor=floors["jacobian_error"])
        window = rate_verdict.past_start(steps, *jacobian, start=start)
        power_log = rate_fit.fit_power_log(*window, start=start) if window[0].size >= rate_verdict.MIN_FIT_POINTS else None
        log_name, log_bound = next(iter(bounds.jacobian_alternatives.items()))
        log_holds, _ = rate_verdict.bound_holds(*jacobian, log_bound, floor=floors["jacobian_error"])
        fitted = {"iterate_slope": _listed(iterate_verdict.fitted_slope),
                  "jacobian_slope": _listed(jacobian_verdict.fitted_slope),
                  "jacobian_power_log": {"a": list(power_log.a) if power_log else None,
                                         "b": list(power_log.b) if power_log else None},
                  "jacobian_log_bound_holds": log_holds,
                  "jacobian_log_bound_over_measured": bound_over_measured(
                      steps, jacobian[0], log_bound, start=start, floor=floors["jacobian_error"]),
                  "jacobian_bound_slopes": {name: _bound_slope(steps, values, start) for name, values in
                                            ((bounds.jacobian_certificate, bounds.jacobian), (log_name, log_bound))}}
        measured = jacobian_verdict.fitted_slope
        fitted["jacobian_rate_matches"] = [name for name, slope in fitted["jacobian_bound_slopes"].items()
                                           if measured is not None and slope is not None
                                           and measured[0] <= slope <= measured[2]]
        return [iterate_verdict, jacobian_verdict], fitted
    # Constant steps: the tail, after 10/(αμ) steps, is a plateau (slope 0) unless it interpolates.
    if kind == "constant":
        verdicts = [rate_verdict.check(name, steps, *values, bound, claimed_slope=0.0, fit_from=start,
                                       floor=floors[name])
                    for name, values, bound in (("iterate_error", iterate, bounds.iterate),
                                                ("jacobian_error", jacobian, bounds.jacobian))]
    else:
        verdicts = [_exponential("iterate_error", *iterate, bounds.iterate, floors["iterate_error"])]
        if kind == "double_interpolation":
            verdicts.append(_exponential("jacobian_error", *jacobian, bounds.jacobian, floors["jacobian_error"]))
        else:
            verdicts.append(_floor("jacobian_error", steps, *jacobian, bounds.jacobian, start, floors["jacobian_error"]))
    fitted = {f"{v.quantity.split('_')[0]}_slope": _listed(v.fitted_slope) for v in verdicts}
    if kind != "constant":
        for name, (mean, _) in (("iterate", iterate), ("jacobian", jacobian)):
            fitted[f"{name}_orders_of_magnitude"] = float(np.log10(mean[0] / mean[-1]))
    return verdicts, fitted


def _bound_slope(steps, bound, start):
    """The log–log slope a bound itself has over the fitting window: `O(1/k)` has −1 there,
    `O(log(k)²/k)` has −1 + 2/log k on average, visibly shallower."""
    window = rate_verdict.past_start(steps, bound, start=start)
    if window[0].size < rate_verdict.MIN_FIT_POINTS:
        return None
    return float(rate_fit.fit_power_law(*window, start=start).slope[1])


def _listed(interval):
    return None if interval is None else list(interval)


def _exponential(quantity, mean, standard_error, bound, floor):
    """Exponential convergence: the error falls by more than 12 orders of magnitude."""
    holds, worst = rate_verdict.bound_holds(mean, standard_error, bound, floor=floor)
    drop = float(mean[-1] / mean[0])
    return rate_verdict.Verdict(quantity, holds, worst, None, None, drop < EXPONENTIAL_DROP)


def _floor(quantity, steps, mean, standard_error, bound, start, floor):
    """A floor: the tail is flat (slope 0 in its interval) and well above rounding."""
    verdict = rate_verdict.check(quantity, steps, mean, standard_error, bound, claimed_slope=0.0, fit_from=start,
                                 floor=floor)
    above_rounding = float(mean[-1] / mean[0]) > 1e-8
    return dataclasses.replace(verdict, rate_consistent=bool(verdict.rate_consistent and above_rounding))


def run_sweep(settings: Settings, fractions=SWEEP_FRACTIONS) -> dict:
    """Plateaus of both errors under constant steps α = fraction/L on the `constant` problem
    (each run `α·K`-matched by `Regime.num_steps`, so that it reaches its plateau)."""
    results = [run_regime(REGIMES[0], settings, step_fraction=f) for f in fractions]
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
        sweep[f"{quantity}_plateau_bound"] = [float(r.bounds.iterate[-1] if quantity == "iterate"
                                                    else r.bounds.jacobian[-1]) for r in results]
    return sweep

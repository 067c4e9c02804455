"""The regimes of the rate report: a problem, a schedule, and what the theory claims.

Figure 1 of the paper, on `least_squares`:

- `constant`: constant step, no interpolation — both errors settle in a noise ball
  whose size is proportional to the step (checked by a sweep over step sizes);
- `decreasing`: `α_k = a/(k + k0)` with `aμ = 2` — iterates `O(1/k)`, derivatives
  `O(1/k)` (certificate `sgd_decreasing_jacobian`) and `O(log(k)²/k)` (the paper's rate);
- `double_interpolation`: σ² = σ_J² = 0 — both errors fall exponentially;
- `simple_interpolation`: σ² = 0 < σ_J² — iterates fall exponentially, derivatives
  stop at a floor proportional to the step.

The interpolation claims (exponential rates, the floor `8ασ_J²/(μb)`) are those of the
certificate `sgd_interpolation`, a specialisation of the constant-step bounds.

Then `ridge` and `logistic` with θ = λ, constant and decreasing steps.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

import problems
from proofs_check import sgd as sgd_certificates
from rates import bounds as rate_bounds
from rates import fit as rate_fit
from rates import verdict as rate_verdict
from rates.curves import Curves, error_curves
from derivatives.schedules import constant, inverse_time

KINDS = ("constant", "decreasing", "double_interpolation", "simple_interpolation")
# Orders of magnitude that an exponentially converging error must fall by.
EXPONENTIAL_DROP = 1e-12


@dataclasses.dataclass(frozen=True)
class Regime:
    name: str
    kind: str
    make_problem: Callable[[], object]
    step_fraction: float = 0.5  # constant steps: α = step_fraction/L

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


def figure1_problem(interpolation: str):
    return lambda: problems.least_squares(100, 5, interpolation, param_dim=2, seed=0)


REGIMES = (
    Regime("constant", "constant", figure1_problem("none")),
    Regime("decreasing", "decreasing", figure1_problem("none")),
    Regime("double_interpolation", "double_interpolation", figure1_problem("double")),
    Regime("simple_interpolation", "simple_interpolation", figure1_problem("simple")),
    Regime("ridge_constant", "constant", lambda: problems.ridge(200, 10, seed=0)),
    Regime("ridge_decreasing", "decreasing", lambda: problems.ridge(200, 10, seed=0)),
    Regime("logistic_constant", "constant", lambda: problems.logistic(200, 10, seed=0)),
    Regime("logistic_decreasing", "decreasing", lambda: problems.logistic(200, 10, seed=0)),
)
SWEEP_FRACTIONS = (0.5, 0.25, 0.125, 0.0625)


@dataclasses.dataclass(frozen=True)
class Settings:
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
    floors: dict  # float64 resolution of each squared error

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def _constants_dict(constants) -> dict:
    names = ("mu", "L", "sigma2", "sigma2_jac", "hessian_lipschitz", "cross_lipschitz")
    return {n: float(getattr(constants, n)) for n in names} | {"estimated": list(constants.estimated)}


def run_regime(regime: Regime, settings: Settings, step_fraction: float | None = None) -> RegimeResult:
    import jax

    if step_fraction is not None:
        regime = dataclasses.replace(regime, step_fraction=step_fraction)
    problem = regime.make_problem()
    theta = problem.theta0
    constants = problem.constants(theta)
    schedule = regime.schedule(constants)
    num_steps = {"constant": settings.constant_steps, "decreasing": settings.decreasing_steps}.get(
        regime.kind, settings.interpolation_steps)
    curves = error_curves(problem, theta, step_size=schedule, num_steps=num_steps, num_seeds=settings.num_seeds,
                          key=jax.random.key(settings.seed), num_checkpoints=settings.num_checkpoints)
    x_star, jac_star = np.asarray(problem.solution(theta)), np.asarray(problem.solution_jacobian(theta))
    bounds = rate_bounds.sgd_bounds(
        constants, schedule, batch_size=1, x0_error_sq=float(np.sum(x_star**2)),
        jac0_error_sq=float(np.sum(jac_star**2)), jac_star_norm=float(np.linalg.norm(jac_star)), steps=curves.steps,
    )
    floors = {"iterate_error": rate_verdict.resolution_floor(float(np.sum(x_star**2))),
              "jacobian_error": rate_verdict.resolution_floor(float(np.sum(jac_star**2)))}
    verdicts, fitted = _judge(regime.kind, curves, bounds, constants, schedule, floors)
    return RegimeResult(regime, repr(problem), _constants_dict(constants), repr(schedule), curves, bounds,
                        0.5 * float(constants.L) * bounds.iterate, tuple(verdicts), fitted, floors)


def _judge(kind, curves: Curves, bounds, constants, schedule, floors):
    steps = curves.steps
    iterate = (curves.iterate_error, curves.iterate_error_se)
    jacobian = (curves.jacobian_error, curves.jacobian_error_se)
    if kind == "decreasing":
        # Past the transient: k ≥ 10·k0, where α_k has fallen tenfold.
        start = 10.0 * float(schedule.k0)
        iterate_verdict = rate_verdict.check("iterate_error", steps, *iterate, bounds.iterate,
                                             claimed_slope=-1.0, fit_from=start, floor=floors["iterate_error"])
        jacobian_verdict = rate_verdict.check("jacobian_error", steps, *jacobian, bounds.jacobian,
                                              claimed_slope=-1.0, fit_from=start, floor=floors["jacobian_error"])
        window = rate_verdict.past_start(steps, *jacobian, start=start)
        power_log = rate_fit.fit_power_log(*window, start=start) if window[0].size >= rate_verdict.MIN_FIT_POINTS else None
        log_name, log_bound = next(iter(bounds.jacobian_alternatives.items()))
        log_holds, log_worst = rate_verdict.bound_holds(*jacobian, log_bound, floor=floors["jacobian_error"])
        fitted = {"iterate_slope": _listed(iterate_verdict.fitted_slope),
                  "jacobian_slope": _listed(jacobian_verdict.fitted_slope),
                  "jacobian_power_log": {"a": list(power_log.a) if power_log else None,
                                         "b": list(power_log.b) if power_log else None},
                  "jacobian_log_bound_holds": log_holds, "jacobian_log_bound_worst_ratio": log_worst,
                  "jacobian_bound_slopes": {name: _bound_slope(steps, values, start) for name, values in
                                            ((bounds.jacobian_certificate, bounds.jacobian), (log_name, log_bound))}}
        measured = jacobian_verdict.fitted_slope
        fitted["jacobian_rate_matches"] = [name for name, slope in fitted["jacobian_bound_slopes"].items()
                                           if measured is not None and slope is not None
                                           and measured[0] <= slope <= measured[2]]
        return [iterate_verdict, jacobian_verdict], fitted
    # Constant steps: the tail, after 10/(αμ) steps, is a plateau (slope 0) unless it interpolates.
    start = 10.0 / (float(schedule.alpha) * float(constants.mu))
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
    """Plateaus of both errors under constant steps α = fraction/L on the `constant` problem."""
    # Smaller steps take proportionally longer to reach their plateau: keep α·K fixed.
    results = [run_regime(REGIMES[0], dataclasses.replace(settings, constant_steps=round(settings.constant_steps * fractions[0] / f)),
                          step_fraction=f) for f in fractions]
    step_sizes = [f / r.constants["L"] for f, r in zip(fractions, results)]
    sweep = {"problem": results[0].problem_name, "step_sizes": step_sizes}
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

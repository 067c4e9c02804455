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

Where the expected curves are known exactly (every regime whose per-sample gradients are
affine in x: least squares and ridge; `rates.exact`), three more things are measured:

- `exact_check`: the measured curves against the exact ones, two-sided, at every checkpoint
  (`rates.verdict.exact_agreement`), part of the regime's verdict;
- `verdict_power`: the smallest perturbation each verdict catches at the run's seed count,
  found by running the verdicts on deliberately perturbed inputs (a derivative `(1 + δ)J_k`,
  σ_J² misstated by a factor, a rate exponent off by δ), for every regime;
- `bound_over_truth`: how loose each certified bound is against the exact truth as k → ∞.

The exact curves of a regime (`exact_truth`) and its seeds (`regime_seeds`) are computed
apart from the rest of its run, so that the report can compute them in worker processes
(`experiments.workers`) and judge them here.
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import Future

import jax
import jax.numpy as jnp
import numpy as np

from derivatives.schedules import Constant
from experiments.regimes import SWEEP_FRACTIONS, SWEEP_REGIME, ConstantStep, Regime, Settings, step_label
from rates import bounds as rate_bounds
from rates import exact as rate_exact
from rates import fit as rate_fit
from rates import verdict as rate_verdict
from rates.curves import STATISTICS, Curves, SeedStatistics, mean_and_standard_error, seed_statistics

QUANTITIES = ("iterate_error", "jacobian_error")

# σ_J² multipliers whose exact runs give the derivative curve for every multiplier c:
# E‖J_k − J*‖²_F is a quadratic a + b√c + γc in √c (`Truth`).
EXACT_FACTORS = (0.0, 1.0, 4.0)
# The searched ranges of the perturbations (`verdict_power`), log-spaced, 4 sizes a decade.
DERIVATIVE_ERRORS = (1e-9, 0.5)        # |δ| in (1 + δ)J_k
SIGMA2_JAC_EXCESS = (1e-2, 1e8)        # f − 1, for σ_J² claimed f times too small or too large
RATE_EXPONENTS = (1e-4, 2.0)           # |δ| in (k/k_start)^(∓δ)
# The factor on σ_J² below which a regime's verdicts must see an error, or be labelled blind.
BLIND_FACTOR = 2.0
# Steps at which a bound is evaluated "as k → ∞" (`bound_over_truth`).
LIMIT_STEP = 1e12


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
    seeds: SeedStatistics | None = None   # the per-seed statistics behind `curves`
    # `exact_check` (None: no exact truth, `exact_reason` says why), `verdict_power`, `bound_over_truth`;
    # all None for a run that was not assessed (`run_regime(assess=False)`).
    exact: dict | None = None
    exact_reason: str | None = None
    power: dict | None = None
    bound_over_truth: dict | None = None

    @property
    def passed(self) -> bool:
        """Every verdict on a bound passed, and the measurement agrees with the exact curves where known."""
        return all(v.passed for v in self.verdicts) and (self.exact is None or self.exact["verdict"] == "pass")

    @property
    def bound_verdicts_passed(self) -> bool:
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


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a regime's run is made of: its problem at θ, its constants (rounding noise set to
    0, `without_rounding_noise`), its schedule and its number of steps."""

    problem: object
    theta: object
    x_star_sq: float
    jac_star_sq: float
    jac_star_norm: float
    constants: object
    zeroed: tuple[str, ...]
    schedule: object
    num_steps: int


def setup(regime: Regime, settings: Settings) -> Setup:
    problem = regime.make_problem()
    theta = problem.theta0
    x_star, jac_star = np.asarray(problem.solution(theta)), np.asarray(problem.solution_jacobian(theta))
    x_star_sq, jac_star_sq = float(np.sum(x_star**2)), float(np.sum(jac_star**2))
    constants, zeroed = without_rounding_noise(problem.constants(theta), x_star_sq, jac_star_sq)
    schedule = regime.schedule(constants)
    return Setup(problem, theta, x_star_sq, jac_star_sq, float(np.linalg.norm(jac_star)), constants, zeroed, schedule,
                 regime.steps.num_steps(settings, constants))


def regime_seeds(regime: Regime, settings: Settings, run: Setup | None = None) -> SeedStatistics:
    """The Monte Carlo part of a regime's run, the costly one: the per-seed statistics of
    `settings.num_seeds` seeds (`run`: the regime's `setup`, made here when not given)."""
    run = setup(regime, settings) if run is None else run
    # Only ‖J_k − J*‖²_F is needed: sketched where probes pay (`rates.probes`; never at the
    # p ≤ 2 of the report's regimes, which carry the full Jacobian).
    return seed_statistics(run.problem, run.theta, step_size=run.schedule, num_steps=run.num_steps,
                           num_seeds=settings.num_seeds, key=jax.random.key(settings.seed),
                           num_checkpoints=settings.num_checkpoints, jacobian_probes="auto")


def run_regime(regime: Regime, settings: Settings, *, assess: bool = True,
               truth: Truth | Future | None = None, seeds: SeedStatistics | None = None) -> RegimeResult:
    """Run one regime: curves over `settings.num_seeds` seeds, its certified bounds, the
    verdicts and the looseness of each bound over the fit window.

    With `assess` (the report's regimes; the sweep leaves it out), also the agreement with
    the exact curves where known (`exact_check`), the power of the verdicts
    (`verdict_power`) and each bound against the exact truth (`bound_over_truth`). `truth`:
    the regime's `exact_truth`, or a `Future` of it, computed here when not given; `seeds`:
    its `regime_seeds`, likewise.

    **Raises:** `rates.bounds.ConditionError` when the regime's steps are outside the
    conditions of its bounds."""
    run = setup(regime, settings)
    problem, constants, schedule = run.problem, run.constants, run.schedule
    seeds = regime_seeds(regime, settings, run) if seeds is None else seeds
    curves = seeds.curves()
    bounds = _bounds(run, constants, curves.steps)
    L = float(constants.L)
    fraction = regime.steps.fraction
    floors = {"iterate_error": rate_verdict.resolution_floor(run.x_star_sq, fraction),
              "jacobian_error": rate_verdict.resolution_floor(run.jac_star_sq, fraction)}
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
    result = RegimeResult(regime, repr(problem), _constants_dict(constants, run.zeroed), repr(schedule), curves,
                          bounds, 0.5 * L * bounds.iterate.values, tuple(judged.values()), fitted, floors, start,
                          ratios, seeds)
    if not assess:
        return result
    truth = truth.result() if isinstance(truth, Future) else truth
    truth = exact_truth(regime, settings) if truth is None else truth
    exact = None if isinstance(truth, str) else exact_check(seeds, truth.curves, floors)
    result = dataclasses.replace(result, exact=exact, exact_reason=truth if isinstance(truth, str) else None)
    return dataclasses.replace(result, power=verdict_power(result, run, None if isinstance(truth, str) else truth),
                               bound_over_truth=None if isinstance(truth, str) else bound_over_truth(result, run,
                                                                                                   truth))


def _bounds(run: Setup, constants, steps) -> rate_bounds.SGDBounds:
    return rate_bounds.sgd_bounds(constants, run.schedule, batch_size=1, x0_error_sq=run.x_star_sq,
                                  jac0_error_sq=run.jac_star_sq, jac_star_norm=run.jac_star_norm, steps=steps)


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


def sweep_regime(fraction: float, regime: Regime = SWEEP_REGIME) -> Regime:
    """`regime` with the constant step `fraction/L`: one run of the step-size sweep."""
    return dataclasses.replace(regime, steps=ConstantStep(fraction))


def run_sweep(settings: Settings, fractions=SWEEP_FRACTIONS, regime: Regime = SWEEP_REGIME,
              seeds: list[SeedStatistics] | None = None) -> dict:
    """Plateaus of both errors under constant steps `α = fraction/L` on `regime`'s problem
    (each run `α·K`-matched by `ConstantStep.num_steps`, so that it reaches its plateau),
    and the log–log slope of the plateau against α with its 95% interval (theory: 1).
    `seeds`: each run's `regime_seeds`, computed here when not given."""
    seeds = [None] * len(fractions) if seeds is None else seeds
    results = [run_regime(sweep_regime(f, regime), settings, assess=False, seeds=s) for f, s in zip(fractions, seeds)]
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


# --- the exact truth, and what the verdicts can see ------------------------------------------

@dataclasses.dataclass(frozen=True)
class Truth:
    """The exact expected curves of a regime's run (`rates.exact`), at its checkpoints.

    - `curves`: `rates.exact_curves` of the run (same problem, θ, schedule, K, checkpoints,
      batch size 1, x₀ = 0).
    - `jacobian_terms`: `(a, b, γ)`, each over checkpoints, such that with σ_J² multiplied by
      c (`AffineDynamics.with_noise_scaled(jacobian=c)`, every covariance consistently)
      `E‖J_k − J*‖²_F = a + b√c + γc` exactly: the moment recursion is linear, and the Jacobian
      noise Zᵢ (scaled by √c) enters it linearly and through ZZᵀ. Three runs, at the factors
      `EXACT_FACTORS`, determine the three terms; the iterate moments do not depend on c.
    - `noiseless`: for interpolation regimes, the exact curves with the noise that
      `without_rounding_noise` read as 0 set to exactly 0 (the computed σ² of an interpolating
      problem is rounding, which gives the exact curves a floor near 1e-31): their
      exponential decay rates. `None` otherwise.
    - `limit`: `rates.exact.first_order_plateau` (constant steps) or
      `rates.exact.decreasing_limit` (decreasing steps), or `None` without noise.
    """

    curves: Curves
    jacobian_terms: tuple[np.ndarray, np.ndarray, np.ndarray]
    noiseless: Curves | None
    limit: rate_exact.Limit | None

    def jacobian_error(self, factor: float) -> np.ndarray:
        """`E‖J_k − J*‖²_F` at every checkpoint with σ_J² multiplied by `factor` (≥ 0)."""
        a, b, gamma = self.jacobian_terms
        return a + b * math.sqrt(factor) + gamma * factor


def exact_truth(regime: Regime, settings: Settings) -> Truth | str:
    """The `Truth` of `regime`'s run at `settings`, or why there is none (a string: the
    problem's gradients are not affine in x, `rates.exact.NotAffineError`)."""
    run = setup(regime, settings)
    try:
        dynamics = rate_exact.affine_dynamics(run.problem, run.theta)
    except rate_exact.NotAffineError as error:
        return f"no exact truth: {error}"

    # The variants are one batch (`rates.exact.moment_curves_batch`): they share the loop.
    variants = [dynamics.with_noise_scaled(jacobian=factor) for factor in EXACT_FACTORS]
    if run.zeroed:
        variants.append(dynamics.with_noise_scaled(gradient=0.0 if "sigma2" in run.zeroed else 1.0,
                                                   jacobian=0.0 if "sigma2_jac" in run.zeroed else 1.0))
    curves = rate_exact.moment_curves_batch(variants, step_sizes=[run.schedule] * len(variants),
                                            num_steps=run.num_steps, batch_size=1,
                                            num_checkpoints=settings.num_checkpoints)
    runs = dict(zip(EXACT_FACTORS, curves))
    (f0, f1, f4) = (runs[factor].jacobian_error for factor in EXACT_FACTORS)
    gamma = (f4 - 2.0 * f1 + f0) / 2.0          # a + b·s + γ·s² at s = √c = 0, 1, 2
    terms = (f0, f1 - f0 - gamma, gamma)
    noiseless = curves[len(EXACT_FACTORS)] if run.zeroed else None
    noisy = float(run.constants.sigma2) > 0.0 or float(run.constants.sigma2_jac) > 0.0
    limit = None
    if noisy and isinstance(run.schedule, Constant):
        limit = dynamics.first_order_plateau(float(run.schedule.alpha))
    elif noisy:
        limit = dynamics.decreasing_limit(float(run.schedule.a))
    return Truth(runs[1.0], terms, noiseless, limit)


def _stack(seeds: SeedStatistics, jacobian=None) -> np.ndarray:
    """The per-seed statistics of `STATISTICS`, `(S, 3, C)`, the derivative error replaced by `jacobian`."""
    return _with_jacobian([seeds.statistic(name) for name in STATISTICS], jacobian, axis=1)


def _agreement(per_seed: np.ndarray, exact: np.ndarray, floors: dict) -> rate_verdict.Agreement:
    mean, standard_error = mean_and_standard_error(per_seed)
    return rate_verdict.exact_agreement(mean, standard_error, exact, floor=[floors[name] for name in STATISTICS],
                                        num_seeds=per_seed.shape[0], skewness=rate_verdict.sample_skewness(per_seed))


def _exact_stack(exact: Curves, jacobian=None) -> np.ndarray:
    """The exact curves of `STATISTICS`, `(3, C)`, the derivative error replaced by `jacobian`."""
    return _with_jacobian([getattr(exact, name) for name in STATISTICS], jacobian, axis=0)


def _with_jacobian(values: list, jacobian, axis: int) -> np.ndarray:
    if jacobian is not None:
        values[STATISTICS.index("jacobian_error")] = jacobian
    return np.stack(values, axis=axis)


def exact_check(seeds: SeedStatistics, exact: Curves, floors: dict) -> dict:
    """The measured curves against the exact ones: `rates.verdict.exact_agreement` on the
    three statistics (`STATISTICS`) at every checkpoint, Bonferroni over all of them.

    **Returns:** the `Agreement` as a dictionary (`max_abs_z`, `threshold`, `verdict`, the
    counts, …), with `statistics` (the rows), `worst` as `{"statistic", "step", "z",
    "critical_value"}` and the largest relative deviation `max_relative_deviation` between
    measured and exact over the tested checkpoints."""
    if not np.array_equal(seeds.steps, exact.steps):
        raise ValueError("the exact curves must be taken at the run's checkpoints")
    per_seed, expected = _stack(seeds), _exact_stack(exact)
    agreement = _agreement(per_seed, expected, floors)
    found = agreement.as_dict() | {"statistics": list(STATISTICS)}
    mean, standard_error = mean_and_standard_error(per_seed)
    if agreement.worst is not None:
        row, column = agreement.worst
        z = (mean[row, column] - expected[row, column]) / standard_error[row, column]
        found["worst"] = {"statistic": STATISTICS[row], "step": int(seeds.steps[column]), "z": float(z),
                          "critical_value": float(abs(z) / agreement.worst_ratio)}
    floor = np.asarray([floors[name] for name in STATISTICS])[:, None]
    resolved = expected > floor
    found["max_relative_deviation"] = (float(np.max(np.abs(mean - expected)[resolved] / expected[resolved]))
                                       if resolved.any() else None)
    return found


def _window_factor(steps, start: float, delta: float) -> np.ndarray:
    """`(k/k_start)^δ` over the fit window `k ≥ k_start`, 1 before it."""
    steps = np.asarray(steps, dtype=np.float64)
    return (np.maximum(steps, start) / start) ** delta


def verdict_power(result: RegimeResult, run: Setup, truth: Truth | None) -> dict:
    """The smallest perturbation of the derivative that the regime's verdicts catch, at its
    seed count, each found by running the verdicts on perturbed inputs
    (`rates.verdict.smallest_detected`, log-spaced sizes refined by bisection):

    - `derivative_relative_error`: an engine returning `(1 + δ)J_k`, its per-seed derivative
      error computed exactly from the recorded statistics
      (`SeedStatistics.scaled_jacobian_error`), both signs of δ, |δ| in `DERIVATIVE_ERRORS`;
    - `sigma2_jac_factor`: σ_J² misstated by a factor f (`SIGMA2_JAC_EXCESS` holds f − 1):
      claimed f times too small (the bound evaluated with σ_J²/f; the exact curves with σ_J²/f,
      `Truth.jacobian_error`) and f times too large (the exact curves with f·σ_J²; a larger
      constant only loosens a bound, which no bound verdict can catch). Checkpoints where
      every seed has the same derivative keep their true exact values;
    - `rate_exponent`: the measured derivative curve (mean, standard error, every seed) times
      `(k/k_start)^(∓δ)` over the fit window, a rate falling faster (−) or slower (+) by δ,
      |δ| in `RATE_EXPONENTS`.

    The verdicts: `bound` (the derivative bound held), `rate` (its rate consistent),
    `exact` (`exact_check`, where the truth is known). A verdict that fails unperturbed
    measures nothing (`None`, listed in `failing_unperturbed`).

    **Returns:** `{"num_seeds", "derivative_relative_error", "sigma2_jac_factor",
    "rate_exponent"` (each the smallest size any verdict catches, or `None`),
    `"blind_to_2x_sigma2_jac"` (σ_J² off by a factor `BLIND_FACTOR` in either direction goes
    uncaught; `None` when σ_J² = 0), `"blind_directions"`, `"failing_unperturbed"`,
    `"details"}`; each detail maps a direction to `{verdict: smallest size or None, "any": …}`.
    """
    seeds, curves = result.seeds, result.curves
    start, floors, evaluation = result.window_start, result.floors, result.bounds.jacobian
    floor = floors["jacobian_error"]
    verdicts = ("bound", "rate") + (("exact",) if truth is not None else ())

    def judge(per_seed_jacobian, bound=evaluation) -> dict:
        mean, standard_error = mean_and_standard_error(per_seed_jacobian)
        v = rate_verdict.judge("jacobian_error", mean, standard_error, bound, fit_from=start, floor=floor)
        return {"bound": not v.bound_holds, "rate": v.rate_consistent is False}

    def exact_fails(per_seed_jacobian, expected_jacobian=None) -> bool:
        expected = _exact_stack(truth.curves, expected_jacobian)
        return not _agreement(_stack(seeds, per_seed_jacobian), expected, floors).passed

    baseline = judge(seeds.statistic("jacobian_error"))
    if truth is not None:
        baseline["exact"] = exact_fails(None)
    failing = [name for name in verdicts if baseline[name]]

    def search(perturbed, sizes, names) -> dict:
        """`perturbed(size) -> {verdict: failed}`, cached; the smallest caught size per verdict."""
        cache = {}

        def caught(size, name):
            if size not in cache:
                cache[size] = perturbed(size)
            return cache[size][name]

        found = {name: (None if name in failing else
                        rate_verdict.smallest_detected(lambda size, name=name: caught(size, name), sizes))
                 for name in names}
        # Caught at the smallest size searched: the true threshold may lie below the range.
        edge = [name for name, size in found.items() if size is not None and size <= sizes[0]]
        return found | {"any": _smallest(found.values()), "at_range_start": edge}

    details = {}
    # (a) the derivative scaled by 1 + δ.
    sizes = rate_verdict.size_grid(*DERIVATIVE_ERRORS)

    def scaled(sign):
        def perturbed(size):
            jacobian = seeds.scaled_jacobian_error(sign * size)
            caught = judge(jacobian)
            if truth is not None:
                caught["exact"] = exact_fails(jacobian)
            return caught
        return perturbed

    details["derivative_relative_error"] = {"range": list(DERIVATIVE_ERRORS), "positive": search(scaled(1), sizes,
                                                                                                  verdicts),
                                            "negative": search(scaled(-1), sizes, verdicts)}
    # (b) σ_J² misstated by a factor f = 1 + size.
    sizes = rate_verdict.size_grid(*SIGMA2_JAC_EXCESS)
    sigma2_jac = float(run.constants.sigma2_jac)
    if sigma2_jac > 0.0:
        if truth is not None:
            # Where every seed has the same derivative (k = 0; k = 1 for ridge, whose J₁ = 0 whatever
            # the sample), the scaled model is no problem at all: scaling Zᵢ alone would make that
            # derivative random. Those checkpoints keep their true values.
            mean, standard_error = mean_and_standard_error(seeds.statistic("jacobian_error"))
            fixed = standard_error <= rate_verdict.DETERMINISTIC_SE * np.abs(mean)

        def misstated(factor):
            return np.where(fixed, truth.curves.jacobian_error, truth.jacobian_error(factor))

        def too_small(size):
            factor = 1.0 + size
            constants = dataclasses.replace(run.constants, sigma2_jac=jnp.asarray(sigma2_jac / factor))
            caught = judge(seeds.statistic("jacobian_error"), _bounds(run, constants, curves.steps).jacobian)
            if truth is not None:
                caught["exact"] = exact_fails(None, misstated(1.0 / factor))
            return caught

        def too_large(size):
            return {"exact": exact_fails(None, misstated(1.0 + size))}

        details["sigma2_jac_factor"] = {
            "range": [1.0 + SIGMA2_JAC_EXCESS[0], 1.0 + SIGMA2_JAC_EXCESS[1]],
            "claimed_too_small": _plus_one(search(too_small, sizes, verdicts)),
            "claimed_too_large": _plus_one(search(too_large, sizes, ("exact",)) if truth is not None
                                           else {"any": None, "at_range_start": []}) | {"bound": None, "rate": None}}
    else:
        details["sigma2_jac_factor"] = None
    # (c) the rate's exponent off by δ over the fit window.
    sizes = rate_verdict.size_grid(*RATE_EXPONENTS)

    def tilted(sign):
        def perturbed(size):
            jacobian = seeds.statistic("jacobian_error") * _window_factor(curves.steps, start, sign * size)
            caught = judge(jacobian)
            if truth is not None:
                caught["exact"] = exact_fails(jacobian)
            return caught
        return perturbed

    details["rate_exponent"] = {"range": list(RATE_EXPONENTS), "faster": search(tilted(-1), sizes, verdicts),
                                "slower": search(tilted(1), sizes, verdicts)}

    sigma = details["sigma2_jac_factor"]
    blind_directions = None
    if sigma is not None:
        blind_directions = [direction for direction in ("claimed_too_small", "claimed_too_large")
                            if sigma[direction]["any"] is None or sigma[direction]["any"] > BLIND_FACTOR]
    return {
        "num_seeds": seeds.num_seeds,
        "verdicts": list(verdicts),
        "derivative_relative_error": _smallest(details["derivative_relative_error"][sign]["any"]
                                               for sign in ("positive", "negative")),
        "sigma2_jac_factor": None if sigma is None else _smallest(sigma[d]["any"] for d in ("claimed_too_small",
                                                                                               "claimed_too_large")),
        "rate_exponent": _smallest(details["rate_exponent"][d]["any"] for d in ("faster", "slower")),
        "blind_to_2x_sigma2_jac": None if blind_directions is None else bool(blind_directions),
        "blind_directions": blind_directions,
        "sigma2_jac_note": "σ_J² = 0 here: a factor on it changes nothing" if sigma is None else None,
        "failing_unperturbed": failing,
        "details": details,
    }


def _smallest(values) -> float | None:
    found = [v for v in values if v is not None]
    return min(found) if found else None


def _plus_one(found: dict) -> dict:
    """Sizes `f − 1` as factors f."""
    return {name: size if name == "at_range_start" or size is None else 1.0 + size for name, size in found.items()}


def bound_over_truth(result: RegimeResult, run: Setup, truth: Truth) -> dict:
    """How loose each certified bound is against the exact truth, as k → ∞.

    - constant steps with noise: the bound's plateau (its value at k = `LIMIT_STEP`) ÷ the
      exact plateau (the exact curve at the run's last step K; `stationary` is its relative
      change since the checkpoint nearest K/2, and `truth_over_first_order` compares it with
      `rates.exact.first_order_plateau`, equal up to 1 + O(α));
    - decreasing steps: `lim k·bound_k` (at k = `LIMIT_STEP`) ÷ `rates.exact.decreasing_limit`
      (`truth_convergence`: K·E_K ÷ the limit); the paper's `O(log(k)²/k)` bound has no finite
      limit: its entry is `k·bound_k ÷ the limit` at k = K, a ratio that grows like log(k)²;
    - exponential decay (interpolation): `ratio` is the truth's decay rate per step ÷ the
      bound's (both over the last checkpoints, between K/2 and K, the truth without the
      rounding-level noise), i.e. how many times longer the bound takes to fall by a factor e.

    **Returns:** `{quantity or certificate: {"bound", "kind", "ratio", …}}`.
    """
    bounds, steps = result.bounds, result.curves.steps
    last = len(steps) - 1
    half = int(np.argmin(np.abs(steps - steps[-1] / 2)))
    found = {}
    large = _bounds(run, run.constants, [LIMIT_STEP]) if truth.limit is not None else None
    for quantity, evaluation, limit_of in (("iterate_error", bounds.iterate, "iterate"),
                                           ("jacobian_error", bounds.jacobian, "jacobian")):
        exact = getattr(truth.curves, quantity)
        entry = {"bound": evaluation.certificate}
        if evaluation.rate.kind is rate_bounds.RateKind.EXPONENTIAL:
            decaying = getattr(truth.noiseless, quantity)
            truth_rate = math.log(decaying[half] / decaying[last]) / float(steps[last] - steps[half])
            bound_rate = math.log(evaluation.values[half] / evaluation.values[last]) / float(steps[last] - steps[half])
            entry |= {"kind": "exponential decay: truth's rate ÷ bound's rate", "truth_rate": truth_rate,
                      "bound_rate": bound_rate, "ratio": truth_rate / bound_rate}
        elif isinstance(run.schedule, Constant):
            bound_limit = float(getattr(large, limit_of).values[0])
            entry |= {"kind": "plateau: bound as k → ∞ ÷ exact plateau", "bound_limit": bound_limit,
                      "truth": float(exact[last]), "ratio": bound_limit / float(exact[last]),
                      "stationary": float(abs(exact[last] - exact[half]) / exact[last]),
                      "first_order": getattr(truth.limit, limit_of),
                      "truth_over_first_order": float(exact[last]) / getattr(truth.limit, limit_of)}
        else:
            limit = getattr(truth.limit, limit_of)
            bound_limit = LIMIT_STEP * float(getattr(large, limit_of).values[0])
            entry |= {"kind": "k·bound_k as k → ∞ ÷ lim k·E_k", "bound_limit": bound_limit, "truth": limit,
                      "ratio": bound_limit / limit, "truth_convergence": float(steps[last] * exact[last]) / limit}
        found[quantity] = entry
    for evaluation in bounds.jacobian_alternatives:
        limit = truth.limit.jacobian
        at_end = float(steps[last] * evaluation.values[last])
        found[evaluation.certificate] = {
            "bound": evaluation.certificate, "kind": "k·bound_k ÷ lim k·E_k at the run's last step K",
            "step": int(steps[last]), "bound_limit": None, "truth": limit, "ratio": at_end / limit,
            "grows_like": f"log(k)^{evaluation.rate.log_power:g}",
            "ratio_at_limit_step": LIMIT_STEP * float(_alternative(large, evaluation).values[0]) / limit}
    return found


def _alternative(bounds: rate_bounds.SGDBounds, evaluation: rate_bounds.Evaluation) -> rate_bounds.Evaluation:
    return next(e for e in bounds.jacobian_alternatives if e.certificate == evaluation.certificate)

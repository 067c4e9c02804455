"""`python -m rates dsgd --out DIR [--quick]`: gradient estimators for non-differentiable
programs compared on the six benchmark models, as in the experiments of the DSGD paper.

For each model and each estimator (Score, Reparam, LYY18 where the guards are affine,
Fixed and DSGD at every η of the grid) it trains with Adam and records the crisp ELBO and
the estimator's variance every `log_every` steps (`rates.dsgd.train`), then summarises:

- `avg_variance`, `norm_variance`: the mean over logging points of the mean per-component
  variance and of the variance of the norm;
- `cost`: `N_Score/N_e`, where `N_e` is the largest batch of single-sample estimates the
  estimator computes (compiled, at θ₀) within 0.1 s, found by the doubling-and-bisection
  search of the protocol in full mode and extrapolated from a batch of 1000 in quick mode,
  measured in this run on this machine;
- `work_normalised_*`: `(V̄_e/V̄_Score)·cost`, so that Score is 1.

Separately, the variance of the smoothed estimator at θ₀ is measured against η over 1.5
decades and its log–log slope fitted. The theory bounds the variance by `O(η^(−ℓ))` for
nesting depth ℓ (`rates.bounds.SMOOTHED_VARIANCE`, certificate `nested_if_variance`),
an upper bound, not a tight rate: the slope must not be significantly steeper than the
bound's (`rates.verdict.rate_holds`). The bound is asymptotic: for a guard of
standard deviation s the variance behaves like `η^(−1)/s` only once η ≪ s (for η ≫ s the
sigmoid is nearly linear over the guard's spread and the variance grows like η^(−2)).
The window is therefore placed below a tenth of the smallest guard standard deviation
under q_θ₀, estimated from samples, and the slope may exceed the bound's by the
first-order allowance of `finite_eta_allowance`; the paper's η grid is also measured, and
reported as the pre-asymptotic slope, which the theory does not constrain.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import derivatives
from experiments import figures, study
from experiments.progress import SILENT, Progress
from problems import programs
from rates import dsgd
from rates.bounds import SMOOTHED_VARIANCE
from rates.verdict import rate_holds

ETA_GRID = (0.14, 0.06, 0.10, 0.18, 0.22)  # 0.14 first: the reference value for cost and WNV
REFERENCE_ETA = 0.14
# Adam step size and accuracy exponent r of the paper's experiments.
PROTOCOL = {
    "temperature": (0.0015, 0.5), "textmsg": (0.0015, 0.5), "influenza": (0.0015, 0.5),
    "cheating": (0.0015, 0.5), "xornet": (0.01, 0.2), "walk": (0.0015, 0.5),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Training, logging, cost and variance-against-η settings, and the models to run."""

    num_steps: int
    log_every: int
    num_samples: int
    num_log_samples: int
    eta_grid: tuple[float, ...]
    cost_budget: float      # seconds per call
    cost_tolerance: float   # relative width at which the bisection stops
    cost_start: int         # initial lower end of the search (the batch timed without search)
    cost_search: bool       # the protocol's search, or extrapolation from one batch
    variance_samples: int   # single-sample estimates per η in the variance-vs-η fit
    variance_points: int    # η values per decade-and-a-half window
    models: tuple[str, ...] = tuple(PROTOCOL)


FULL = Settings(num_steps=10_000, log_every=100, num_samples=16, num_log_samples=1000, eta_grid=ETA_GRID,
                cost_budget=0.1, cost_tolerance=0.05, cost_start=1000, cost_search=True, variance_samples=20_000,
                variance_points=6)
QUICK = Settings(num_steps=400, log_every=100, num_samples=16, num_log_samples=200, eta_grid=(REFERENCE_ETA,),
                 cost_budget=0.1, cost_tolerance=0.25, cost_start=1000, cost_search=False, variance_samples=4000,
                 variance_points=4)


def models():
    """`{name: builder}` of the six models of the protocol."""
    return {name: getattr(programs, name) for name in PROTOCOL}


def estimator_runs(program, eta_grid):
    """`(key, estimator, accuracies)` for every group of runs on `program`: one run for
    Score, Reparam and LYY18 (the latter only with affine guards), and one run per η for
    Fixed and DSGD (computed together)."""
    _, r = PROTOCOL[program.name]
    runs = [("Score", "score", None), ("Reparam", "reparam", None)]
    if program.affine:
        runs.append(("LYY18", "lyy18", None))
    runs.append(("Fixed", "smoothed", [float(eta) for eta in eta_grid]))
    runs.append(("DSGD", "smoothed", [dsgd.paper_accuracy(eta, r) for eta in eta_grid]))
    return runs


# --- cost ---------------------------------------------------------------------------------

def _seconds_per_call(program, estimator: str, eta, batch: int) -> float:
    """Mean wall time of calls 2–10 of 10 (the first compiles), each blocking until ready."""
    theta = jnp.asarray(program.theta0)
    function = jax.jit(lambda key: derivatives.gradient_samples(program, theta, key, estimator, batch, eta))
    times = []
    for call in range(10):
        key = jax.random.PRNGKey(call)
        begin = time.perf_counter()
        function(key).block_until_ready()
        times.append(time.perf_counter() - begin)
    return float(np.mean(times[1:]))


def batch_cost(program, estimator: str, eta, *, budget: float, tolerance: float, start: int,
               ceiling: int = 10_000_000) -> int:
    """`N_e`: the largest batch of single-sample estimates computed (compiled, at θ₀) within
    `budget` seconds. Doubling from `[start, 100·start]`, then bisection to relative
    `tolerance`: the search of the paper's protocol (one compilation per probe)."""
    lower, upper = start, 100 * start
    while _seconds_per_call(program, estimator, eta, upper) < budget and upper < ceiling:
        lower, upper = upper, 2 * upper
    while (upper - lower) / lower > tolerance:
        middle = (lower + upper) // 2
        if _seconds_per_call(program, estimator, eta, middle) < budget:
            lower = middle
        else:
            upper = middle
    return lower


def throughput_cost(program, estimator: str, eta, *, budget: float, batch: int) -> int:
    """`N_e` extrapolated from one batch size: `budget · batch / time(batch)`. One
    compilation instead of a dozen; it assumes the time is linear in the batch, which the
    search does not."""
    return max(1, int(budget * batch / _seconds_per_call(program, estimator, eta, batch)))


def estimator_cost(program, estimator: str, eta, settings: Settings) -> int:
    """`N_e` by the protocol's search (`settings.cost_search`) or extrapolated from one batch."""
    if settings.cost_search:
        return batch_cost(program, estimator, eta, budget=settings.cost_budget, tolerance=settings.cost_tolerance,
                          start=settings.cost_start)
    return throughput_cost(program, estimator, eta, budget=settings.cost_budget, batch=settings.cost_start)


# --- variance against η ----------------------------------------------------------------------

def guard_spread(program, key, num_samples: int = 4000) -> float:
    """The smallest standard deviation, over the scalar ifs, of the crisp guard under q_θ₀."""
    epsilon = jax.random.normal(key, (num_samples, program.dim))
    z = jax.vmap(program.family.sample, (None, 0))(jnp.asarray(program.theta0), epsilon)
    guards = jax.jit(jax.vmap(program.guard_values))(z)
    return float(jnp.min(jnp.std(guards, axis=0)))


# `∫y²σ'(y)²dy / ∫σ'(y)²dy`, the curvature constant of the finite-η correction below
# (tests/test_dsgd_report.py checks it by quadrature).
SIGMOID_CURVATURE = (math.pi**2 - 6) / 3


def finite_eta_allowance(depth: int, eta_over_spread: float, mean_share: float) -> float:
    """How much steeper than −ℓ the measured slope may be at finite η, to first order.

    - Curvature: for a Gaussian guard of standard deviation s and mean g₀,
      `E[σ_η'(g)²] = (φ_s(g₀)/(6η))(1 + ½c η² φ_s''(g₀)/φ_s(g₀) + O(η⁴))`, `c = (π² − 6)/3`
      (expand the density under `∫σ'(y)²φ_s(ηy − g₀)dy`; the odd term vanishes). The
      worst case `g₀ = 0` gives the log–log slope `−1 − δ`, `δ = c(η/s)²/(1 − c(η/s)²/2)`.
    - Centring: the variance is `E[ĝ²] − |E ĝ|²`; if `E[ĝ²] ∝ η^(−ℓ)` and the squared mean
      is a share `R` of it, the variance's slope is `−ℓ/(1 − R)`.

    Together the slope is at least `−ℓ(1 + δ)/(1 − R)`; `δ` per link is applied to every
    link of a chain (a first-order allowance, not a theorem for ℓ > 1). Returns the
    allowance `ℓ(1 + δ)/(1 − R) − ℓ ≥ 0`.
    """
    ratio = SIGMOID_CURVATURE * eta_over_spread**2
    delta = ratio / (1 - ratio / 2)
    return depth * (1 + delta) / (1 - mean_share) - depth


def variance_against_eta(program, etas, key, num_samples: int):
    """For each η, at θ₀: the mean per-component variance of the smoothed estimator, its
    standard error (delta method on the per-sample contributions), and the share of the
    squared mean in the mean square, `R = Σ_p m_p² / Σ_p E[ĝ_p²]`; independent keys."""
    theta = jnp.asarray(program.theta0)

    @jax.jit
    def one(eta, key):
        samples = derivatives.gradient_samples(program, theta, key, "smoothed", num_samples, eta)
        mean = samples.mean(0)
        centred = samples - mean
        variance = jnp.mean(centred**2, axis=0) * num_samples / (num_samples - 1)
        contributions = jnp.mean(centred**2, axis=1)
        share = jnp.sum(mean**2) / jnp.sum(jnp.mean(samples**2, axis=0))
        return jnp.mean(variance), jnp.std(contributions, ddof=1) / jnp.sqrt(num_samples), share

    results = [one(jnp.float64(eta), jax.random.fold_in(key, i)) for i, eta in enumerate(etas)]
    return tuple(np.array([float(r[i]) for r in results]) for i in range(3))


def variance_study(program, settings: Settings, key) -> dict:
    """The variance of the smoothed estimator at θ₀ against η, judged against the bound
    `SMOOTHED_VARIANCE` at the program's nesting depth: its fitted slope must be no
    steeper than the bound's rate minus `finite_eta_allowance` (`rate_holds` on the
    bound's rate, an upper bound, with the allowance subtracted from its power)."""
    spread_key, asymptotic_key, paper_key = jax.random.split(key, 3)
    spread = guard_spread(program, spread_key)
    top = min(max(settings.eta_grid), 0.1 * spread)
    etas = np.geomspace(top / 10**1.5, top, settings.variance_points)
    variance, standard_error, share = variance_against_eta(program, etas, asymptotic_key, settings.variance_samples)
    slope = dsgd.fitted_variance_slope(etas, variance, standard_error)
    paper_etas = np.array(sorted(ETA_GRID))
    paper_variance, paper_se, _ = variance_against_eta(program, paper_etas, paper_key, settings.variance_samples)
    paper_slope = dsgd.fitted_variance_slope(paper_etas, paper_variance, paper_se)
    depth = program.nesting_depth
    rate = SMOOTHED_VARIANCE.rate(ell=depth)
    allowed = dataclasses.replace(rate, power=rate.power - finite_eta_allowance(depth, top / spread,
                                                                                float(np.max(share))))
    conditions = SMOOTHED_VARIANCE.conditions_at(eta=float(etas.min()), ell=depth)
    return {
        "eta": etas.tolist(), "avg_variance": variance.tolist(), "avg_variance_se": standard_error.tolist(),
        "fitted_slope": list(slope.slope), "bound_certificate": SMOOTHED_VARIANCE.name,
        "bound_rate": rate.describe(), "bound_tight": rate.tight, "bound_slope": rate.slope,
        "bound_conditions": [str(c) for c in conditions], "allowed_slope": allowed.slope,
        "mean_share": share.tolist(), "guard_spread": spread,
        "respects_bound": bool(rate_holds(slope, allowed) and all(c.holds for c in conditions)),
        "paper_grid": {"eta": paper_etas.tolist(), "avg_variance": paper_variance.tolist(),
                       "avg_variance_se": paper_se.tolist(), "fitted_slope": list(paper_slope.slope)},
    }


# --- the experiment -----------------------------------------------------------------------------

def run_model(program, settings: Settings, key, progress: Progress = SILENT) -> dict:
    """Train with every estimator of `estimator_runs`, time each, and study the variance
    against η: `{"nesting_depth", "estimators": {name: summary}, "variance_vs_eta",
    "traces": {name: {"steps", "elbo", "avg_variance", "eta"}}}`."""
    adam_step, _ = PROTOCOL[program.name]
    options = dict(key=key, step_size=adam_step, num_steps=settings.num_steps, num_samples=settings.num_samples,
                   log_every=settings.log_every, num_log_samples=settings.num_log_samples)
    estimators, traces, costs = {}, {}, {}
    for group, estimator, accuracies in estimator_runs(program, settings.eta_grid):
        if accuracies is None:
            named = {group: dsgd.train(program, estimator, **options)}
        else:
            named = dict(zip((f"{group}@{eta:g}" for eta in settings.eta_grid),
                             dsgd.train_grid(program, accuracies, **options)))
        for name, trace in named.items():
            traces[name] = trace
            estimators[name] = {"final_elbo": float(trace.elbo[-1]),
                                "avg_variance": float(np.mean(trace.avg_variance)),
                                "norm_variance": float(np.mean(trace.norm_variance))}
        # Fixed and DSGD are timed at the reference η (DSGD's η_k changes nothing in the cost).
        eta = None if accuracies is None else REFERENCE_ETA
        costs[group] = estimator_cost(program, estimator, eta, settings)
        progress.advance(f"{program.name} {group}")
    score = estimators["Score"]
    for name, summary in estimators.items():
        group = name.split("@")[0]
        cost = costs["Score"] / costs[group]
        summary["cost"] = cost
        summary["batch_in_budget"] = costs[group]
        summary["work_normalised_avg_variance"] = summary["avg_variance"] / score["avg_variance"] * cost
        summary["work_normalised_norm_variance"] = summary["norm_variance"] / score["norm_variance"] * cost
    variance = variance_study(program, settings, jax.random.fold_in(key, 1))
    progress.advance(f"{program.name} variance vs eta")
    return {"nesting_depth": program.nesting_depth, "estimators": estimators, "variance_vs_eta": variance,
            "traces": {name: {"steps": t.steps.tolist(), "elbo": t.elbo.tolist(),
                              "avg_variance": t.avg_variance.tolist(), "eta": t.eta.tolist()}
                       for name, t in traces.items()}}


def _programs(settings: Settings) -> dict:
    builders = models()
    unknown = set(settings.models) - set(builders)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; the models are {list(builders)}")
    return {name: builders[name]() for name in settings.models}


def num_tasks(settings: Settings) -> int:
    return sum(len(estimator_runs(p, settings.eta_grid)) + 1 for p in _programs(settings).values())


def run(settings: Settings, progress: Progress = SILENT) -> dict:
    """`run_model` for every model of `settings.models`, each from the key 0: `{model: result}`."""
    return {name: run_model(program, settings, jax.random.PRNGKey(0), progress)
            for name, program in _programs(settings).items()}


def document(outcome: study.Outcome) -> dict:
    """`dsgd.json`: settings, seconds, the reference η, per model the estimators' summaries,
    the variance against η and the traces."""
    results = outcome.result
    return {
        "settings": dataclasses.asdict(outcome.settings),
        "seconds": outcome.seconds,
        "reference_eta": REFERENCE_ETA,
        "models": {name: {"nesting_depth": r["nesting_depth"], "estimators": r["estimators"]}
                   for name, r in results.items()},
        "variance_vs_eta": {name: r["variance_vs_eta"] for name, r in results.items()},
        "traces": {name: r["traces"] for name, r in results.items()},
    }


def markdown(outcome: study.Outcome) -> str:
    settings, results = outcome.settings, outcome.result
    lines = [
        "# Gradient estimators for non-differentiable programs",
        "",
        f"Adam, {settings.num_steps} steps of {settings.num_samples} single-sample estimates; every "
        f"{settings.log_every} steps the crisp ELBO and the variance from {settings.num_log_samples} samples. "
        f"Cost: N_Score/N_e, N_e the largest batch computed in {settings.cost_budget} s (this machine, this run). "
        f"WNV: (variance/Score's variance)·cost. Fixed and DSGD at η = {REFERENCE_ETA:g} are timed; "
        f"{outcome.seconds:.0f} s in all.",
        "",
    ]
    for name, model in results.items():
        lines += [f"## {name} (ℓ = {model['nesting_depth']})", "",
                  "| estimator | final ELBO | avg variance | norm variance | cost | WNV (avg) | WNV (norm) |",
                  "|---|---|---|---|---|---|---|"]
        for key, e in model["estimators"].items():
            lines.append(f"| {key} | {e['final_elbo']:.6g} | {e['avg_variance']:.3g} | {e['norm_variance']:.3g} | "
                         f"{e['cost']:.3g} | {e['work_normalised_avg_variance']:.3g} | "
                         f"{e['work_normalised_norm_variance']:.3g} |")
        lines.append("")
    lines += ["## Variance of the smoothed estimator against η", "",
              f"Slope of log variance against log η at θ₀, 95% interval. The bound `O(η^(−ℓ))` (certificate "
              f"`{SMOOTHED_VARIANCE.name}`) is an upper bound, and asymptotic: at finite η the slope "
              "may be steeper than −ℓ by the first-order allowance of `finite_eta_allowance` (the sigmoid's "
              "curvature over the guard's spread, and the squared mean subtracted from the second moment); "
              "the verdict is that the slope is not significantly below −ℓ minus that allowance. Window: "
              "η ≤ a tenth of the smallest guard standard deviation under q_θ₀, 1.5 decades. The paper's grid "
              "(0.06–0.22) is pre-asymptotic where guards are narrow; its slope is shown, not judged.", "",
              "| model | ℓ | bound's rate | smallest guard sd | η window | fitted slope [95% CI] | allowed "
              "| respects | slope on the paper's grid |", "|---|---|---|---|---|---|---|---|---|"]
    for name, model in results.items():
        v = model["variance_vs_eta"]
        lo, est, hi = v["fitted_slope"]
        plo, pest, phi = v["paper_grid"]["fitted_slope"]
        kind = "tight" if v["bound_tight"] else "upper bound"
        lines.append(f"| {name} | {model['nesting_depth']} | {v['bound_rate']}, {kind} | {v['guard_spread']:.3g} | "
                     f"{min(v['eta']):.2g}–{max(v['eta']):.2g} | {est:.3f} [{lo:.3f}, {hi:.3f}] | "
                     f"{v['allowed_slope']:.3f} | {'yes' if v['respects_bound'] else '**no**'} | "
                     f"{pest:.2f} [{plo:.2f}, {phi:.2f}] |")
    return "\n".join(lines) + "\n"


def figures_of(outcome: study.Outcome) -> dict:
    drawn = document(outcome)
    return {"dsgd_elbo.png": figures.dsgd_elbo(drawn), "dsgd_variance_vs_eta.png": figures.dsgd_variance(drawn)}


def verdicts(results: dict) -> dict[str, bool]:
    """Per model, whether its variance slope respects the bound."""
    return {f"{name} variance vs eta": r["variance_vs_eta"]["respects_bound"] for name, r in results.items()}


STUDY = study.Study(
    name="dsgd", quick=QUICK, full=FULL, num_tasks=num_tasks, run=run, markdown=markdown, document=document,
    figures=figures_of, verdicts=verdicts, markdown_file="dsgd.md", json_file="dsgd.json",
)


def write(out, quick: bool = False, settings: Settings | None = None) -> study.Written:
    """Run the comparison and write `dsgd.md`, `dsgd.json` and the figures into `out`
    (`study.write`); `.passed` says whether every model's variance slope respects its bound."""
    return study.write(STUDY, out, quick, settings)


__all__ = [
    "ETA_GRID",
    "FULL",
    "PROTOCOL",
    "QUICK",
    "REFERENCE_ETA",
    "SIGMOID_CURVATURE",
    "STUDY",
    "Settings",
    "batch_cost",
    "estimator_runs",
    "finite_eta_allowance",
    "guard_spread",
    "models",
    "run",
    "run_model",
    "throughput_cost",
    "variance_against_eta",
    "variance_study",
    "write",
]

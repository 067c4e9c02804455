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

Separately, the variance of the smoothed estimator at θ₀ is measured against η. The
theory bounds it by `O(η^(−ℓ))` for nesting depth ℓ (`rates.bounds.SMOOTHED_VARIANCE`,
certificate `nested_if_variance`), an upper bound and an asymptotic one: for a guard of
standard deviation s the variance behaves like `η^(−1)/s` only once η ≪ s, and most of it
may come from terms without ifs, which a log–log slope would mix in. So η runs down from a
tenth of the narrowest guard's standard deviation until the η-dependent part is resolved
(`eta_ladder`), `Var(η) = A + B·η^(−s)` is fitted with an interval for s
(`rates.fit.fit_offset_power`), and the verdict is consistent, inconclusive or violated
(`rates.dsgd.eta_verdict`). The same check runs on synthetic chains of ifs whose variance
is known exactly by quadrature (`problems.programs.guard_chain`, `synthetic_study`), and on
two mutated estimators with a known wrong η-dependence, which it must catch. The paper's η
grid is also measured, and reported as the pre-asymptotic slope, which the theory does not
constrain.
"""

from __future__ import annotations

import dataclasses
import functools
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
from rates import fit as rate_fit
from rates.bounds import SMOOTHED_VARIANCE

ETA_GRID = (0.14, 0.06, 0.10, 0.18, 0.22)  # 0.14 first: the reference value for cost and WNV
REFERENCE_ETA = 0.14
# Adam step size and accuracy exponent r of the paper's experiments.
PROTOCOL = {
    "temperature": (0.0015, 0.5), "textmsg": (0.0015, 0.5), "influenza": (0.0015, 0.5),
    "cheating": (0.0015, 0.5), "xornet": (0.01, 0.2), "walk": (0.0015, 0.5),
}


# Programs whose variance is known by quadrature (`problems.programs.chains`):
# name → (depth, kind, mutation). A mutation changes the η the estimator smooths with, so
# its variance has a known wrong η-dependence: "sharpened" smooths with η²/top (exponent
# 2ℓ: the check must say violated), "eta_blind" with top whatever η (no η-dependence:
# the check must say inconclusive).
SYNTHETIC = {
    "chain1_aligned": (1, "aligned", None),
    "chain2_aligned": (2, "aligned", None),
    "chain3_aligned": (3, "aligned", None),
    "chain2_separated": (2, "separated", None),
    "chain2_independent": (2, "independent", None),
    "chain1_aligned_sharpened": (1, "aligned", "sharpened"),
    "chain1_aligned_eta_blind": (1, "aligned", "eta_blind"),
}
EXPECTED_VERDICT = {None: "consistent", "sharpened": "violated", "eta_blind": "inconclusive"}
# What each mutation does to the variance's exponent s: η²/top doubles it, a fixed η removes it.
EXPONENT_FACTOR = {None: 1, "sharpened": 2, "eta_blind": 0}


@dataclasses.dataclass(frozen=True)
class EtaLadder:
    """How the variance-against-η check extends η downward.

    η runs down from `top` (a tenth of the narrowest guard's standard deviation, at most
    the largest η of the grid) in steps of `1/per_decade` decades, one independent key per
    η, `samples` single-sample estimates each. After `min_decades` it stops as soon as the
    η-dependent part is resolved: the constant is rejected and the fitted `B·η^(−s)` is at
    least `resolved_share` of the fitted variance at the smallest η. It also stops before
    an η whose variance has a relative standard error above `max_relative_se` (there the
    heavy tail of `σ_η'` makes the sample variance unreliable), and at `max_decades`.
    The exponent's interval has level `confidence`.
    """

    samples: int
    per_decade: int = 4
    min_decades: float = 1.5
    max_decades: float = 5.0
    max_relative_se: float = 0.25
    resolved_share: float = 0.75
    confidence: float = 0.95


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
    ladder: EtaLadder       # the variance-against-η check on the models
    # ... and on the synthetic chains, whose estimates are cheap (one latent) but heavy-tailed
    synthetic_ladder: EtaLadder = EtaLadder(samples=2_000_000, per_decade=8)
    models: tuple[str, ...] = tuple(PROTOCOL)
    synthetic: tuple[str, ...] = ()  # synthetic chains of `SYNTHETIC` checked against their exact variance


FULL = Settings(num_steps=10_000, log_every=100, num_samples=16, num_log_samples=1000, eta_grid=ETA_GRID,
                cost_budget=0.1, cost_tolerance=0.05, cost_start=1000, cost_search=True,
                ladder=EtaLadder(samples=100_000), synthetic=tuple(SYNTHETIC))
QUICK = Settings(num_steps=400, log_every=100, num_samples=16, num_log_samples=200, eta_grid=(REFERENCE_ETA,),
                 cost_budget=0.1, cost_tolerance=0.25, cost_start=1000, cost_search=False,
                 ladder=EtaLadder(samples=20_000), synthetic=tuple(SYNTHETIC))


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


def finite_eta_allowance(depth: int, eta_over_spread: float) -> float:
    """How much larger than ℓ the fitted exponent may be at finite η, to first order.

    For a guard `N(g₀, s)`, `E[σ_η'(g)²] = (φ_s(g₀)/(6η))(1 + ½c η² φ_s''(g₀)/φ_s(g₀) + O(η⁴))`,
    `c = (π² − 6)/3` (expand the density under `∫σ'(y)²φ_s(ηy − g₀)dy`; the odd term
    vanishes). The worst case `g₀ = 0` gives the local exponent `1 + δ`,
    `δ = c(η/s)²/(1 − c(η/s)²/2)`, largest at the top of the window. Applied to each of ℓ
    links: the allowance `ℓδ` (first order, not a theorem for ℓ > 1). The squared mean,
    which the variance subtracts from the second moment, is absorbed by the fitted offset
    `A` of `A + B·η^(−s)` and needs no allowance.
    """
    ratio = SIGMOID_CURVATURE * eta_over_spread**2
    return depth * ratio / (1 - ratio / 2)


def variance_against_eta(program, etas, key, num_samples: int):
    """For each η, at θ₀: the mean per-component variance of the smoothed estimator and its
    standard error (delta method on the per-sample contributions); one key per η,
    `fold_in(key, i)`."""
    results = [_variance_at(program, num_samples, jnp.float64(eta), jax.random.fold_in(key, i))
               for i, eta in enumerate(etas)]
    return tuple(np.array([float(r[i]) for r in results]) for i in range(2))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _variance_at(program, num_samples, eta, key):
    samples = derivatives.gradient_samples(program, jnp.asarray(program.theta0), key, "smoothed", num_samples, eta)
    centred = samples - samples.mean(0)
    variance = jnp.mean(centred**2, axis=0) * num_samples / (num_samples - 1)
    contributions = jnp.mean(centred**2, axis=1)
    return jnp.mean(variance), jnp.std(contributions, ddof=1) / jnp.sqrt(num_samples)


def ladder_top(program, eta_grid, key) -> tuple[float, float]:
    """`(s, top)`: the narrowest guard's standard deviation under q_θ₀ (`guard_spread`) and
    where the η ladder starts, a tenth of it (at most the largest η of `eta_grid`): the
    `1/η` regime of a guard starts only when `η ≪ s`."""
    spread = guard_spread(program, key)
    return spread, min(max(eta_grid), 0.1 * spread)


def eta_ladder(program, ladder: EtaLadder, top: float, key, *, accuracy_of=None) -> dict:
    """Measure the variance down the η ladder of `ladder` from `top` until the η-dependent
    part is resolved (see `EtaLadder`), and fit `A + B·η^(−s)` to what was kept.

    `accuracy_of` maps the nominal η to the η the estimator smooths with (default: the
    same); a deliberately wrong map makes a mutated estimator for negative checks.

    **Returns:** `{"eta", "avg_variance", "avg_variance_se", "stopped", "fit"}`, `stopped`
    one of `"resolved"`, `"monte_carlo_error"`, `"max_decades"`, and `fit` the
    `rates.fit.OffsetPowerFit` (`None` with fewer than 4 points).
    """
    accuracy_of = (lambda eta: eta) if accuracy_of is None else accuracy_of
    etas, variances, errors = [], [], []
    fit, stopped = None, "max_decades"
    for j in range(int(ladder.max_decades * ladder.per_decade) + 1):
        eta = top * 10 ** (-j / ladder.per_decade)
        variance, error = (float(x) for x in _variance_at(program, ladder.samples, jnp.float64(accuracy_of(eta)),
                                                            jax.random.fold_in(key, j)))
        if not error <= ladder.max_relative_se * variance:
            stopped = "monte_carlo_error"
            break
        etas.append(eta)
        variances.append(variance)
        errors.append(error)
        if len(etas) >= 4:
            fit = rate_fit.fit_offset_power(etas, variances, errors, confidence=ladder.confidence)
            resolved = fit.constant_rejected and fit.power_part(eta) >= ladder.resolved_share * fit.predict(eta)
            if resolved and j >= ladder.min_decades * ladder.per_decade:
                stopped = "resolved"
                break
    return {"eta": etas, "avg_variance": variances, "avg_variance_se": errors, "stopped": stopped, "fit": fit}


def judge_ladder(measured: dict, depth: int, allowance: float) -> dict:
    """The JSON summary of `eta_ladder`'s result against `O(η^(−ℓ))` at `depth`: the
    exponent interval `[lo, estimate, hi]` of `Var ∝ A + B·η^(−s)`, the fitted A and B,
    the share of `B·η^(−s)` at the smallest η, whether ℓ lies in the interval, and the
    `rates.dsgd.eta_verdict`."""
    fit = measured["fit"]
    summary = {key: measured[key] for key in ("eta", "avg_variance", "avg_variance_se", "stopped")}
    if fit is None:
        return {**summary, "exponent_interval": None, "eta_verdict": "inconclusive", "attains_depth": False,
                "allowance": allowance}
    smallest = min(measured["eta"])
    return {**summary, "exponent_interval": list(fit.exponent), "offset": fit.offset, "scale": fit.scale,
            "reference_eta": fit.reference, "reduced_chi2": fit.reduced_chi2, "upper_open": fit.upper_open,
            "eta_share": float(fit.power_part(smallest) / fit.predict(smallest)),
            "attains_depth": bool(fit.exponent[0] <= depth <= fit.exponent[2]), "allowance": allowance,
            "eta_verdict": dsgd.eta_verdict(fit, depth, allowance)}


def variance_study(program, settings: Settings, key) -> dict:
    """The variance of the smoothed estimator at θ₀ against η, judged against the bound
    `SMOOTHED_VARIANCE` at the program's nesting depth: `eta_ladder` from a tenth of the
    narrowest guard's standard deviation, `judge_ladder` with the curvature allowance at
    the top of the window; the log–log slope on the paper's η grid is reported beside it,
    pre-asymptotic and not judged."""
    spread_key, ladder_key, paper_key = jax.random.split(key, 3)
    spread, top = ladder_top(program, settings.eta_grid, spread_key)
    measured = eta_ladder(program, settings.ladder, top, ladder_key)
    depth = program.nesting_depth
    summary = judge_ladder(measured, depth, finite_eta_allowance(depth, top / spread))
    paper_etas = np.array(sorted(ETA_GRID))
    paper_variance, paper_se = variance_against_eta(program, paper_etas, paper_key, settings.ladder.samples)
    paper_slope = dsgd.fitted_variance_slope(paper_etas, paper_variance, paper_se)
    rate = SMOOTHED_VARIANCE.rate(ell=depth)
    conditions = SMOOTHED_VARIANCE.conditions_at(eta=min(measured["eta"], default=top), ell=depth)
    return {
        **summary, "kind": "benchmark", "nesting_depth": depth, "guard_spread": spread,
        "bound_certificate": SMOOTHED_VARIANCE.name, "bound_rate": rate.describe(), "bound_tight": rate.tight,
        "bound_exponent": -rate.slope, "bound_conditions": [str(c) for c in conditions],
        "bound_conditions_hold": all(c.holds for c in conditions),
        "paper_grid": {"eta": paper_etas.tolist(), "avg_variance": paper_variance.tolist(),
                       "avg_variance_se": paper_se.tolist(), "fitted_slope": list(paper_slope.slope)},
    }


# --- synthetic chains: the check against an exact variance -----------------------------------

def _accuracy_map(mutation, top):
    if mutation is None:
        return None
    if mutation == "sharpened":
        return lambda eta: eta**2 / top
    if mutation == "eta_blind":
        return lambda eta: top
    raise ValueError(f"unknown mutation {mutation!r}")


def synthetic_study(name: str, settings: Settings, key) -> dict:
    """The check of `variance_study` on a synthetic chain of `SYNTHETIC`, with the exact
    variance at every η of its window (`chain_variance`) and the exact curve's own fit, with
    the Monte Carlo standard errors as weights: the exponent the Monte Carlo fit estimates.
    `covers_exact` says whether the Monte Carlo interval contains it (two-sided)."""
    depth, kind, mutation = SYNTHETIC[name]
    program = programs.guard_chain(depth, kind)
    spread_key, ladder_key = jax.random.split(key)
    spread, top = ladder_top(program, settings.eta_grid, spread_key)
    accuracy_of = _accuracy_map(mutation, top)
    measured = eta_ladder(program, settings.synthetic_ladder, top, ladder_key, accuracy_of=accuracy_of)
    summary = judge_ladder(measured, depth, finite_eta_allowance(depth, top / spread))
    used = [eta if accuracy_of is None else accuracy_of(eta) for eta in measured["eta"]]
    exact = [programs.chain_variance(depth, eta, kind).variance for eta in used]
    result = {**summary, "kind": "synthetic" if mutation is None else "mutant", "chain": kind, "mutation": mutation,
              "nesting_depth": depth, "guard_spread": spread, "exact_variance": exact,
              "asymptotic_exponent": programs.chain_exponent(depth, kind) * EXPONENT_FACTOR[mutation],
              "expected_verdict": EXPECTED_VERDICT[mutation]}
    if summary["exponent_interval"] is not None:
        exact_fit = rate_fit.fit_offset_power(measured["eta"], exact, measured["avg_variance_se"])
        lo, _, hi = summary["exponent_interval"]
        result["exact_exponent"] = exact_fit.exponent[1]
        result["covers_exact"] = bool(lo <= exact_fit.exponent[1] <= hi)
    return result


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
    unknown = set(settings.synthetic) - set(SYNTHETIC)
    if unknown:
        raise ValueError(f"unknown synthetic programs {sorted(unknown)}; they are {list(SYNTHETIC)}")
    return {name: builders[name]() for name in settings.models}


def num_tasks(settings: Settings) -> int:
    return (sum(len(estimator_runs(p, settings.eta_grid)) + 1 for p in _programs(settings).values())
            + len(settings.synthetic))


def run(settings: Settings, progress: Progress = SILENT) -> dict:
    """`run_model` for every model of `settings.models`, each from the key 0, and
    `synthetic_study` for every program of `settings.synthetic`, each from the key 1:
    `{"models": {model: result}, "synthetic": {name: study}}`."""
    results = {name: run_model(program, settings, jax.random.PRNGKey(0), progress)
               for name, program in _programs(settings).items()}
    synthetic = {}
    for name in settings.synthetic:
        synthetic[name] = synthetic_study(name, settings, jax.random.PRNGKey(1))
        progress.advance(f"{name} variance vs eta")
    return {"models": results, "synthetic": synthetic}


def document(outcome: study.Outcome) -> dict:
    """`dsgd.json`: settings, seconds, the reference η, per model the estimators' summaries,
    the variance against η (models and synthetic chains) and the traces."""
    results = outcome.result["models"]
    return {
        "settings": dataclasses.asdict(outcome.settings),
        "seconds": outcome.seconds,
        "reference_eta": REFERENCE_ETA,
        "models": {name: {"nesting_depth": r["nesting_depth"], "estimators": r["estimators"]}
                   for name, r in results.items()},
        "variance_vs_eta": {**{name: r["variance_vs_eta"] for name, r in results.items()},
                            **outcome.result["synthetic"]},
        "traces": {name: r["traces"] for name, r in results.items()},
    }


def _window(v: dict) -> str:
    return f"{min(v['eta']):.2g}–{max(v['eta']):.2g}" if v["eta"] else "—"


def _interval(v: dict) -> str:
    if v["exponent_interval"] is None:
        return "—"
    lo, estimate, hi = v["exponent_interval"]
    return f"{estimate:.3f} [{lo:.3f}, {hi:.3f}{'+' if v['upper_open'] else ''}]"


def markdown(outcome: study.Outcome) -> str:
    settings, results = outcome.settings, outcome.result["models"]
    ladder = settings.ladder
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
    lines += [
        "## Variance of the smoothed estimator against η", "",
        f"At θ₀, `Var(η) = A + B·η^(−s)` fitted by weighted least squares with a 95% profile-likelihood "
        f"interval for s (`rates.fit.fit_offset_power`). η runs down from a tenth of the narrowest guard's "
        f"standard deviation, {ladder.per_decade} points a decade, {ladder.samples} estimates each, until the "
        f"η-dependent part `B·η^(−s)` is resolved (constant rejected and at least {ladder.resolved_share:g} of "
        f"the variance at the smallest η), the relative standard error passes {ladder.max_relative_se:g}, or "
        f"{ladder.max_decades:g} decades. The bound `O(η^(−ℓ))` (certificate `{SMOOTHED_VARIANCE.name}`) is an "
        "upper bound. Verdict (`rates.dsgd.eta_verdict`): **inconclusive** if the interval contains 0 (no "
        "η-dependence resolved), **violated** if it lies above ℓ plus the first-order curvature allowance, "
        "**consistent** otherwise. The slope on the paper's grid (0.06–0.22) is pre-asymptotic: shown, not "
        "judged.", "",
        "| model | ℓ | guard sd | η window | stopped | s [95% CI] | share of B·η^(−s) at the smallest η "
        "| ℓ in CI | verdict | slope on the paper's grid |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, model in results.items():
        v = model["variance_vs_eta"]
        plo, pest, phi = v["paper_grid"]["fitted_slope"]
        share = f"{v['eta_share']:.2f}" if "eta_share" in v else "—"
        lines.append(f"| {name} | {model['nesting_depth']} | {v['guard_spread']:.3g} | "
                     f"{_window(v)} | {v['stopped']} | {_interval(v)} | {share} | "
                     f"{'yes' if v['attains_depth'] else 'no'} | {v['eta_verdict']} | "
                     f"{pest:.2f} [{plo:.2f}, {phi:.2f}] |")
    synthetic = outcome.result["synthetic"]
    if synthetic:
        lines += [
            "", "## The check on programs with an exact variance", "",
            f"Synthetic chains of ifs (`problems.programs.guard_chain`), {settings.synthetic_ladder.samples} "
            f"estimates per η, {settings.synthetic_ladder.per_decade} values of η a decade, with the exact variance "
            "by quadrature (`chain_variance`). *Exact s* is the fit of the exact curve over the same window with "
            "the same weights: what the Monte Carlo interval "
            "estimates, which it should contain 95% of the time. The mutants smooth with a wrong η: "
            "`sharpened` with η²/η_top (variance exponent 2ℓ), `eta_blind` with η_top (no η-dependence).", "",
            "| program | ℓ | asymptotic s | η window | s [95% CI] | exact s | covers exact | verdict | expected |",
            "|---|---|---|---|---|---|---|---|---|"]
        for name, v in synthetic.items():
            exact = f"{v['exact_exponent']:.3f}" if "exact_exponent" in v else "—"
            covers = ("yes" if v["covers_exact"] else "**no**") if "covers_exact" in v else "—"
            verdict = v["eta_verdict"] if v["eta_verdict"] == v["expected_verdict"] else f"**{v['eta_verdict']}**"
            lines.append(f"| {name} | {v['nesting_depth']} | {v['asymptotic_exponent']} | "
                         f"{_window(v)} | {_interval(v)} | {exact} | {covers} | "
                         f"{verdict} | {v['expected_verdict']} |")
    return "\n".join(lines) + "\n"


def figures_of(outcome: study.Outcome) -> dict:
    drawn = document(outcome)
    return {"dsgd_elbo.png": figures.dsgd_elbo(drawn), "dsgd_variance_vs_eta.png": figures.dsgd_variance(drawn)}


def verdicts(results: dict) -> dict[str, bool]:
    """Per model, that its variance against η does not violate the bound; per synthetic
    program, that the check returns the verdict its exact variance calls for."""
    models_ = {f"{name} variance vs eta": r["variance_vs_eta"]["eta_verdict"] != "violated"
               for name, r in results["models"].items()}
    synthetic = {f"{name} verdict is {v['expected_verdict']}": v["eta_verdict"] == v["expected_verdict"]
                 for name, v in results["synthetic"].items()}
    return {**models_, **synthetic}


STUDY = study.Study(
    name="dsgd", quick=QUICK, full=FULL, num_tasks=num_tasks, run=run, markdown=markdown, document=document,
    figures=figures_of, verdicts=verdicts, markdown_file="dsgd.md", json_file="dsgd.json",
)


def write(out, quick: bool = False, settings: Settings | None = None) -> study.Written:
    """Run the comparison and write `dsgd.md`, `dsgd.json` and the figures into `out`
    (`study.write`); `.passed` says whether no model's variance violates its bound and every
    synthetic program gets the verdict its exact variance calls for."""
    return study.write(STUDY, out, quick, settings)


__all__ = [
    "ETA_GRID",
    "EXPECTED_VERDICT",
    "FULL",
    "PROTOCOL",
    "QUICK",
    "REFERENCE_ETA",
    "SIGMOID_CURVATURE",
    "STUDY",
    "SYNTHETIC",
    "EtaLadder",
    "Settings",
    "batch_cost",
    "estimator_runs",
    "eta_ladder",
    "finite_eta_allowance",
    "guard_spread",
    "judge_ladder",
    "ladder_top",
    "models",
    "run",
    "run_model",
    "synthetic_study",
    "throughput_cost",
    "variance_against_eta",
    "variance_study",
    "write",
]

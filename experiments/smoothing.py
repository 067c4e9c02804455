"""`python -m rates smoothing --out DIR [--quick]`: the variance of the black-box smoothing
estimators (`derivatives.smoothed_gradient`) on sorting and shortest-path operators, for
every noise × covariate × antithetic × sampling.

**Tasks** (inputs from the generators of `problems` with seed 0; one scale γ per task, the
same for every noise, whose densities are standardised as in `proofs_check.densities`):

- `sort3`, `sort5`: `f = sort_permutation` (an n × n permutation matrix) at
  `sorting_task(n, 0)`; γ = half the mean gap between sorted neighbours.
- `path8`, `path12`: `f` = the k × k indicator of `shortest_path` at
  `shortest_path_task(k, 0, "uniform")` (costs in [0.5, 2]); γ = a tenth of the mean cost.
  Perturbed costs are floored at 0.01 before the path is computed (the operator needs
  positive costs; heavy-tailed noises would otherwise create negative cycles).

**Combinations.** Every noise of `NOISES`, covariate of `COVARIATES`, antithetic pairs or
not (only for the symmetric densities, `derivatives.noises.SYMMETRIC_NOISES`: all but
gumbel), and sampling of `SAMPLINGS`, with
`num_samples` = 1024. `"cartesian"` needs `num_samples = m kⁿ` (m = 2 with antithetic
pairs): the feasible size nearest 1024 is used (sort3: 1000, antithetic 1024; sort5:
1024, antithetic 486); on the grids (n = 64, 144) already k = 2 needs 2ⁿ samples, so
cartesian is skipped there.

**Statistics** of the Jacobian estimate Ĵ (shape `f(x).shape + x.shape`), from R
repetitions with independent keys (one compiled, vmapped call per combination):

- `variance`: the per-component variance over the repetitions (ddof 1), averaged over
  components;
- `error`: the mean squared error against the reference Jacobian, averaged over
  components and repetitions (variance, squared bias and the reference's own error).

The **reference** per task and noise is the mean of independent randomly shifted Korobov
lattices (`"rqmc"`, `"value"` covariate) of `reference_chunk` points each, computed one
chunk at a time (`lax.map`) to bound memory, `reference_samples` points in all (2^18 in
full mode); its own error (the variance of the chunk mean, from the spread of the chunks)
is reported as a floor.

**Output.** `smoothing.md` (a table per task, the best strategy per task and per noise),
`smoothing_heatmap.png`, and `smoothing.json` shaped
`{"<task>": {"<noise>/<covariate>/<antithetic>/<sampling>": {"variance": v, "error": e}}}`,
where `<antithetic>` is `"antithetic"` or `"plain"`, e.g. `"gaussian/value/plain/rqmc"`.
The baseline of a noise is `"<noise>/none/plain/mc"`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

import derivatives
import problems
from derivatives import COVARIATES, NOISES, SAMPLINGS, noises
from derivatives.noises import SYMMETRIC_NOISES
from experiments import figures, study
from experiments.progress import SILENT, Progress

PATH_COST_FLOOR = 0.01


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    f: Callable           # hashable (compiled once per combination)
    x: jax.Array
    scale: float
    description: str


def _sort(x):
    return problems.sort_permutation(x)


def _path(costs):
    return problems.shortest_path(jnp.maximum(costs, PATH_COST_FLOOR))


def sorting(n: int, seed: int = 0) -> Task:
    x = problems.sorting_task(n, seed)
    gaps = -jnp.diff(jnp.sort(x)[::-1])
    scale = 0.5 * float(jnp.mean(gaps))
    return Task(f"sort{n}", _sort, x, scale, f"sort_permutation of sorting_task({n}, {seed}); "
                                            f"γ = half the mean gap = {scale:.3g}")


def grid(k: int, seed: int = 0) -> Task:
    x = problems.shortest_path_task(k, seed, "uniform")
    scale = 0.1 * float(jnp.mean(x))
    return Task(f"path{k}", _path, x, scale, f"shortest_path of shortest_path_task({k}, {seed}) (costs floored "
                                            f"at {PATH_COST_FLOOR}); γ = a tenth of the mean cost = {scale:.3g}")


TASKS = {"sort3": lambda: sorting(3), "sort5": lambda: sorting(5), "path8": lambda: grid(8),
         "path12": lambda: grid(12)}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Tasks, noises and the strategies tried, repetitions, and the reference's size."""

    tasks: tuple[str, ...]
    noises: tuple[str, ...]
    repetitions: int
    num_samples: int
    reference_samples: int
    reference_chunk: int
    covariates: tuple[str, ...] = COVARIATES
    samplings: tuple[str, ...] = SAMPLINGS
    antithetic: tuple[bool, ...] = (False, True)


FULL = Settings(tasks=tuple(TASKS), noises=NOISES, repetitions=64, num_samples=1024,
                reference_samples=2 ** 18, reference_chunk=4096)
QUICK = Settings(tasks=("sort3", "path8"), noises=("gaussian", "gumbel"), repetitions=16,
                 num_samples=1024, reference_samples=2 ** 14, reference_chunk=2048)


def strategy_key(noise: str, covariate: str, antithetic: bool, sampling: str) -> str:
    return f"{noise}/{covariate}/{'antithetic' if antithetic else 'plain'}/{sampling}"


def baseline_key(noise: str) -> str:
    return strategy_key(noise, "none", False, "mc")


def cartesian_size(dim: int, antithetic: bool, target: int) -> int | None:
    """The `m kⁿ` (k ≥ 2, m = 2 with antithetic pairs) nearest `target` (the smaller on a
    tie), or None when already k = 2 needs more than twice `target`."""
    pairs = 2 if antithetic else 1
    if pairs * 2.0 ** dim > 2 * target:
        return None
    sizes = []
    k = 2
    while True:
        sizes.append(pairs * k ** dim)
        if sizes[-1] >= target:
            break
        k += 1
    return min(sizes, key=lambda size: (abs(size - target), size))


def combinations(task: Task, settings: Settings):
    """`(key, noise, covariate, antithetic, sampling, num_samples)` for every applicable combination."""
    result = []
    for noise in settings.noises:
        for covariate in settings.covariates:
            for antithetic in settings.antithetic:
                if antithetic and noise not in SYMMETRIC_NOISES:  # (ε, −ε) has the law of (ε, ε') only then
                    continue
                for sampling in settings.samplings:
                    size = settings.num_samples
                    if sampling == "cartesian":
                        size = cartesian_size(task.x.size, antithetic, settings.num_samples)
                        if size is None:
                            continue
                    result.append((strategy_key(noise, covariate, antithetic, sampling), noise, covariate,
                                   antithetic, sampling, size))
    return result


def reference_jacobian(task: Task, noise: str, settings: Settings, key):
    """`(jacobian, floor)`: the mean of `reference_samples / reference_chunk` independent
    `"rqmc"`/`"value"` estimates of `reference_chunk` samples each (computed sequentially),
    and the variance of that mean per component (from the chunks' spread), averaged."""
    chunks = max(2, settings.reference_samples // settings.reference_chunk)

    @jax.jit
    def run(keys):
        def one(chunk_key):
            return derivatives.smoothed_gradient(task.f, task.x, chunk_key, noise=noise, scale=task.scale,
                                                 num_samples=settings.reference_chunk, covariate="value",
                                                 sampling="rqmc")[1]
        estimates = jax.lax.map(one, keys)
        return jnp.mean(estimates, axis=0), jnp.mean(jnp.var(estimates, axis=0, ddof=1)) / chunks

    jacobian, floor = run(jax.random.split(key, chunks))
    return jacobian, float(floor)


def combination_statistics(task: Task, reference, noise, covariate, antithetic, sampling, num_samples, keys,
                           estimator=derivatives.smoothed_gradient):
    """`(variance, error)` of the Jacobian estimate over the repetitions given by `keys`
    (one compiled call, vmapped over the keys)."""

    @jax.jit
    def run(keys):
        jacobians = jax.vmap(lambda k: estimator(task.f, task.x, k, noise=noise, scale=task.scale,
                                                 num_samples=num_samples, covariate=covariate, sampling=sampling,
                                                 antithetic=antithetic)[1])(keys)
        variance = jnp.mean(jnp.var(jacobians, axis=0, ddof=1))
        error = jnp.mean((jacobians - reference) ** 2)
        return variance, error

    variance, error = run(keys)
    return float(variance), float(error)


def run_task(task: Task, settings: Settings, key, progress: Progress = SILENT,
             estimator=derivatives.smoothed_gradient) -> dict:
    """Statistics of every combination on `task`: `{"results": {key: {"variance", "error"}},
    "num_samples": {key: N}, "reference_floor": {noise: floor}, "seconds": s}`."""
    start = time.perf_counter()
    combos = combinations(task, settings)
    references, floors = {}, {}
    for index, noise in enumerate(settings.noises):
        references[noise], floors[noise] = reference_jacobian(task, noise, settings, jax.random.fold_in(key, index))
        progress.advance(f"{task.name} reference {noise}")
    # the same repetition keys for every combination (common random numbers)
    keys = jax.random.split(jax.random.fold_in(key, 10_000), settings.repetitions)
    results, sizes = {}, {}
    for name, noise, covariate, antithetic, sampling, size in combos:
        variance, error = combination_statistics(task, references[noise], noise, covariate, antithetic, sampling,
                                                 size, keys, estimator)
        results[name] = {"variance": variance, "error": error}
        sizes[name] = size
        progress.advance(f"{task.name} {name}")
    return {"results": results, "num_samples": sizes, "reference_floor": floors,
            "seconds": time.perf_counter() - start, "description": task.description, "dim": int(task.x.size)}


def relative(results: dict, name: str, field: str = "variance") -> float:
    """`field` of the combination `name` over that of its noise's baseline `none/plain/mc`."""
    return results[name][field] / results[baseline_key(name.split("/")[0])][field]


def finite_fisher_information(noise: str) -> bool:
    """Whether the plain estimator's variance is finite for generic f (`E[s²] < ∞`)."""
    return math.isfinite(noises.by_name(noise).fisher_information)


def best_strategies(results: dict, noises=None) -> dict:
    """The combination of smallest variance relative to its noise's baseline, over the
    noises whose baseline has finite variance (`"all"`: a ratio to an infinite-variance
    baseline, the triangular one, measures nothing) and per noise:
    `{group: (key, relative variance, relative error)}`."""
    groups = {"all": [name for name in results if finite_fisher_information(name.split("/")[0])]}
    for noise in noises or sorted({name.split("/")[0] for name in results}):
        groups[noise] = [name for name in results if name.split("/")[0] == noise]
    best = {}
    for group, names in groups.items():
        name = min(names, key=lambda n: relative(results, n))
        best[group] = (name, relative(results, name), relative(results, name, "error"))
    return best


def run_study(settings: Settings, key=None, progress: Progress = SILENT, tasks: dict | None = None,
              estimator=derivatives.smoothed_gradient) -> dict:
    """`run_task` for every task of `settings` (or of `tasks`, name → Task): `{task: result}`."""
    key = jax.random.PRNGKey(0) if key is None else key
    tasks = tasks or {name: TASKS[name]() for name in settings.tasks}
    return {name: run_task(task, settings, jax.random.fold_in(key, index), progress, estimator)
            for index, (name, task) in enumerate(tasks.items())}


def num_tasks(settings: Settings) -> int:
    """Progress steps of `run_study`: a reference per noise and every combination, per task."""
    return sum(len(combinations(TASKS[name](), settings)) + len(settings.noises) for name in settings.tasks)


def run(settings: Settings, progress: Progress = SILENT) -> dict:
    return run_study(settings, progress=progress)


def document(outcome: study.Outcome) -> dict:
    """`smoothing.json`: `{task: {combination: {"variance", "error"}}}`."""
    return {name: entry["results"] for name, entry in outcome.result.items()}


def verdicts(result: dict) -> dict[str, bool]:
    """Per task, whether every variance and error came out finite (the study measures, it
    has no claim to test)."""
    return {f"{name} finite": all(math.isfinite(value) for r in entry["results"].values() for value in r.values())
            for name, entry in result.items()}


def markdown(outcome: study.Outcome) -> str:
    settings, result = outcome.settings, outcome.result
    no_antithetic = [noise for noise in settings.noises if noise not in SYMMETRIC_NOISES]
    lines = [
        "# Variance of black-box smoothing estimators",
        "",
        f"Jacobian of `E[f(x + γε)]` by `derivatives.smoothed_gradient`, {settings.num_samples} samples "
        f"(cartesian: the nearest feasible `m kⁿ`, column N), {settings.repetitions} repetitions with independent "
        f"keys per combination. *variance*: per-component variance over the repetitions, averaged over components; "
        f"*error*: mean squared error against a reference of {settings.reference_samples} samples (rqmc, value "
        f"covariate, chunks of {settings.reference_chunk}); *rel.*: relative to `none/plain/mc` of the same noise. "
        + (f"Antithetic pairs are offered for symmetric densities only, not for {', '.join(no_antithetic)}; "
           if no_antithetic else "")
        + f"cartesian is skipped where even k = 2 needs far more than {settings.num_samples} samples (the grids). "
        f"{outcome.seconds:.0f} s in all.",
        "",
        "## Best strategy per task", "",
        "Smallest variance relative to the baseline of the same noise, over the noises with finite Fisher "
        "information (the triangular baseline has infinite variance, so ratios to it measure nothing; it "
        "appears per noise below).", "",
        "| task | best | N | rel. variance | rel. error |", "|---|---|---|---|---|",
    ]
    for task, entry in result.items():
        name, variance, error = best_strategies(entry["results"], settings.noises)["all"]
        lines.append(f"| {task} | `{name}` | {entry['num_samples'][name]} | {variance:.3g} | {error:.3g} |")
    lines += ["", "Per noise:", "", "| task | noise | best | rel. variance | rel. error |", "|---|---|---|---|---|"]
    for task, entry in result.items():
        for noise, (name, variance, error) in best_strategies(entry["results"], settings.noises).items():
            if noise != "all":
                lines.append(f"| {task} | {noise} | `{name}` | {variance:.3g} | {error:.3g} |")
    for task, entry in result.items():
        floors = ", ".join(f"{noise} {floor:.2g}" for noise, floor in entry["reference_floor"].items())
        lines += ["", f"## {task}", "", f"{entry['description']}; n = {entry['dim']}; {entry['seconds']:.0f} s. "
                  f"Reference floor (variance of the reference, per component): {floors}.", "",
                  "| noise | covariate | antithetic | sampling | N | variance | rel. variance | error | rel. error |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, r in entry["results"].items():
            noise, covariate, antithetic, sampling = name.split("/")
            lines.append(f"| {noise} | {covariate} | {antithetic} | {sampling} | {entry['num_samples'][name]} | "
                         f"{r['variance']:.3g} | {relative(entry['results'], name):.3g} | {r['error']:.3g} | "
                         f"{relative(entry['results'], name, 'error'):.3g} |")
    return "\n".join(lines) + "\n"


def heatmap(outcome: study.Outcome) -> dict:
    return {"smoothing_heatmap.png": figures.smoothing_heatmap(document(outcome))}


STUDY = study.Study(
    name="smoothing study", quick=QUICK, full=FULL, num_tasks=num_tasks, run=run, markdown=markdown,
    document=document, figures=heatmap, verdicts=verdicts, markdown_file="smoothing.md", json_file="smoothing.json",
)


def write(out, quick: bool = False, settings: Settings | None = None) -> study.Written:
    """Run the study and write `smoothing.md`, `smoothing.json` and `smoothing_heatmap.png`
    into `out` (`study.write`); `.result` is `run_study`'s dictionary."""
    return study.write(STUDY, out, quick, settings)


__all__ = [
    "FULL",
    "QUICK",
    "STUDY",
    "TASKS",
    "Settings",
    "Task",
    "baseline_key",
    "best_strategies",
    "cartesian_size",
    "combination_statistics",
    "combinations",
    "grid",
    "markdown",
    "reference_jacobian",
    "relative",
    "run",
    "run_study",
    "run_task",
    "sorting",
    "strategy_key",
    "write",
]

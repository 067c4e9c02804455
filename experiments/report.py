"""`python -m rates report --out DIR [--quick]`: every regime, its verdicts, figures and JSON.

Writes `report.md`, `results.json` (per regime: the curves, each bound with its
certificate, conditions and rate, the verdicts, the agreement with the exact curves where
they are known, the power of the verdicts and how loose each bound is against the exact
truth; the step-size sweep; and the phase diagram of decreasing steps in aμ), one figure
per figure group of the regimes, the sweep's, `bound_over_truth.png` and `phase_diagram.png`.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Mapping
from concurrent.futures import Executor

from experiments import figures, hypergradients, phase, study, workers
from experiments.progress import SILENT, Progress
from experiments.rate_checks import (
    BLIND_FACTOR,
    DERIVATIVE_ERRORS,
    RATE_EXPONENTS,
    SIGMA2_JAC_EXCESS,
    RegimeResult,
    exact_truth,
    regime_seeds,
    run_regime,
    run_sweep,
    sweep_passes,
    sweep_regime,
)
from experiments.regimes import FULL, QUICK, REGIMES, SWEEP_FRACTIONS, DecreasingStep, Settings, groups, named
from rates import verdict as rate_verdict
from rates.bounds import Evaluation, Rate

SWEEP_FIGURE = "constant_step_sweep.png"
BOUND_OVER_TRUTH_FIGURE = "bound_over_truth.png"


PHASE_FIGURE = "phase_diagram.png"


@dataclasses.dataclass(frozen=True)
class ReportResult:
    """What `run` found; `drawn`: its figures as PNG files by name, drawn by the workers
    (`regime_figures` draws them again, as matplotlib figures)."""

    regimes: tuple[RegimeResult, ...]
    sweep: dict
    phase: phase.PhaseDiagram | None = None
    hypergradients: hypergradients.HypergradientChecks | None = None
    drawn: Mapping[str, bytes] = dataclasses.field(default_factory=dict, repr=False)


def run(settings: Settings, progress: Progress = SILENT) -> ReportResult:
    """Every regime of `REGIMES`, the step-size sweep, the phase diagram of decreasing steps
    (`experiments.phase`, when `settings.phase` is set) and the hypergradient checks (when
    `settings.hypergradients` is set).

    The costly parts (each regime's exact curves and its seeds, each run of the sweep,
    each case of the phase diagram, each hypergradient family) are independent tasks,
    run by one worker process per core, each pinned to its core (`experiments.workers`),
    the longest first; this process judges and assembles what they return."""
    pool = workers.pinned_workers()
    try:
        return _run_tasks(settings, progress, pool)
    finally:
        # After a failure (or Ctrl-C), do not wait for the tasks still queued.
        pool.shutdown(cancel_futures=True)


def _run_tasks(settings: Settings, progress: Progress, pool: Executor) -> ReportResult:
    def submit(task, *args):
        return pool.submit(_timed, task, *args)

    # The order of submission: first the longest task (the exact recursion of ridge with
    # decreasing steps), then each regime's exact curves and seeds in the order they are
    # judged, so that this process judges them while the workers go on with the phase
    # diagram, the hypergradient families and the sweep.
    names = [regime.name for regime in REGIMES]
    longest = max(names, key=_exact_cost)
    truths = {longest: submit(_truth, longest, settings)}
    seeds = {}
    for name in names:
        if name not in truths:
            truths[name] = submit(_truth, name, settings)
        seeds[name] = submit(_seeds, name, settings)
    cases = () if settings.phase is None else tuple(case.name for case in phase.CASES)
    # The later cases and families are the larger ones: they go first.
    diagram = {case: submit(_phase_case, settings.phase, case) for case in reversed(cases)}
    families = () if settings.hypergradients is None else hypergradients.FAMILIES
    checks = {family: submit(hypergradients.check_named_family, family, settings.hypergradients)
              for family in reversed(families)}
    # Smaller steps run longer (K scales as 1/α): the smallest goes first, so that the two
    # workers finish together.
    sweep_seeds = {fraction: submit(_sweep_seeds, fraction, settings) for fraction in sorted(SWEEP_FRACTIONS)}

    results = []
    for regime in REGIMES:
        (truth, exact_seconds), (measured, seeds_seconds) = truths[regime.name].result(), seeds[regime.name].result()
        results.append(run_regime(regime, settings, truth=truth, seeds=measured))
        progress.advance(f"{regime.name} (seeds {seeds_seconds:.0f} s, exact {exact_seconds:.0f} s)")
    # The figures go to the workers as PNGs to draw, after the tasks already queued: drawn
    # there, they take up the time a worker would wait for the other's last task, where here
    # they would come after it (5 s, most of it laying out tick labels).
    drawn = {name: pool.submit(figures.png, figure) for name, figure in _regime_group_figures(results).items()}
    sweep_results = [sweep_seeds[fraction].result() for fraction in SWEEP_FRACTIONS]
    sweep = run_sweep(settings, seeds=[measured for measured, _ in sweep_results])
    progress.advance(f"constant_step_sweep ({sum(seconds for _, seconds in sweep_results):.0f} s)")
    hypergradient_checks = None
    if settings.hypergradients is not None:
        found, total = [], 0.0
        for family in families:
            family_checks, seconds = checks[family].result()
            found, total = found + family_checks, total + seconds
            progress.advance(f"hypergradients {family} ({seconds:.0f} s)")
        hypergradient_checks = hypergradients.HypergradientChecks(settings.hypergradients, tuple(found), total)
    phase_diagram = None
    if settings.phase is not None:
        phase_diagram = phase.merge([diagram[case].result()[0] for case in cases])
        progress.advance(f"phase_diagram ({phase_diagram.seconds:.0f} s)")
    drawn |= {name: pool.submit(figures.png, figure)
              for name, figure in _closing_figures(sweep, phase_diagram, hypergradient_checks).items()}
    return ReportResult(tuple(results), sweep, phase_diagram, hypergradient_checks,
                        {name: future.result() for name, future in drawn.items()})


def _exact_cost(name: str) -> tuple[bool, int]:
    """What makes a regime's exact curves long: decreasing steps (constant steps take matrix
    powers), then the problem's dimension (its moments' state grows with its square)."""
    regime = named(name)
    return isinstance(regime.steps, DecreasingStep), regime.make_problem().dim


# The tasks: module-level functions of picklable arguments (`experiments.workers`).

def _timed(task, *args):
    """`task(*args)` and the seconds it took."""
    began = time.perf_counter()
    return task(*args), time.perf_counter() - began


def _truth(name: str, settings: Settings):
    return exact_truth(named(name), settings)


def _seeds(name: str, settings: Settings):
    return regime_seeds(named(name), settings)


def _sweep_seeds(fraction: float, settings: Settings):
    return regime_seeds(sweep_regime(fraction), settings)


def _phase_case(settings: phase.PhaseSettings, case: str) -> phase.PhaseDiagram:
    return phase.run(settings, cases=tuple(c for c in phase.CASES if c.name == case))


def num_tasks(settings: Settings) -> int:
    """`progress.advance` calls of `run`: one per regime, the sweep, the phase diagram, one
    per hypergradient family."""
    checks = 0 if settings.hypergradients is None else hypergradients.num_tasks(settings.hypergradients)
    return len(REGIMES) + 1 + (settings.phase is not None) + checks


def rate_json(rate: Rate) -> dict:
    return dataclasses.asdict(rate) | {"kind": rate.kind.value, "describe": rate.describe()}


def evaluation_json(evaluation: Evaluation) -> dict:
    """A bound on one run: certificate, rate (tight or upper bound), conditions, values."""
    return {"certificate": evaluation.certificate, "claim_certificates": list(evaluation.claim_certificates),
            "quantity": evaluation.bound.quantity, "rate": rate_json(evaluation.rate),
            "conditions": [str(c) for c in evaluation.conditions],
            "assumptions": list(evaluation.bound.assumptions), "values": evaluation.values.tolist()}


def regime_json(result: RegimeResult) -> dict:
    curves, bounds = result.curves, result.bounds
    return {
        "problem": result.problem_name,
        "schedule": result.schedule,
        "step_rule": result.regime.describe_steps(),
        "figure": result.regime.group.file,
        "conditions": [str(c) for c in bounds.conditions],
        "constants": result.constants,
        "num_seeds": curves.num_seeds,
        "steps": curves.steps.tolist(),
        "iterate_error": curves.iterate_error.tolist(),
        "iterate_error_se": curves.iterate_error_se.tolist(),
        "jacobian_error": curves.jacobian_error.tolist(),
        "jacobian_error_se": curves.jacobian_error_se.tolist(),
        "suboptimality": curves.suboptimality.tolist(),
        "iterate_bound": bounds.iterate.values.tolist(),
        "jacobian_bound": bounds.jacobian.values.tolist(),
        "iterate_bound_certificate": bounds.iterate.certificate,
        "jacobian_bound_certificate": bounds.jacobian.certificate,
        "claim_certificate": result.claim_certificate,
        "iterate_rate": rate_json(bounds.iterate.rate),
        "jacobian_rate": rate_json(bounds.jacobian.rate),
        "jacobian_bound_alternatives": {e.certificate: e.values.tolist() for e in bounds.jacobian_alternatives},
        "bounds": {"iterate_error": evaluation_json(bounds.iterate),
                   "jacobian_error": evaluation_json(bounds.jacobian),
                   "jacobian_error_alternatives": [evaluation_json(e) for e in bounds.jacobian_alternatives]},
        "resolution_floors": result.floors,
        "fit_window_start": result.window_start,
        "bound_over_measured": result.bound_ratios,
        "fitted": result.fitted,
        "verdicts": [v.as_dict() for v in result.verdicts],
        "exact": result.exact,
        "exact_reason": result.exact_reason,
        "power": result.power,
        "blind_to_2x_sigma2_jac": None if result.power is None else result.power["blind_to_2x_sigma2_jac"],
        "bound_over_truth": result.bound_over_truth,
        "bound_over_truth_reason": None if result.bound_over_truth is not None else result.exact_reason,
        "bound_verdicts": "pass" if result.bound_verdicts_passed else "fail",
        "verdict_label": verdict_label(result),
        "verdict": "pass" if result.passed else "fail",
    }


def verdict_label(result: RegimeResult) -> str:
    """`pass` or `fail`, and for a pass whose verdicts cannot see σ_J² off by a factor
    `BLIND_FACTOR` (in either direction: claimed too small or too large), which blindness."""
    if not result.passed:
        return "fail"
    power = result.power or {}
    directions = power.get("blind_directions") or []
    factor = f"{BLIND_FACTOR:g}×"
    if len(directions) == 2:
        return f"pass — blind to a {factor} error in σ_J²"
    if directions:
        return f"pass — blind to σ_J² claimed {factor} too {directions[0].split('_')[-1]}"
    return "pass"


def document(outcome: study.Outcome) -> dict:
    report = outcome.result
    return {"settings": dataclasses.asdict(outcome.settings), "seconds": outcome.seconds,
            "exact_family_false_failure": rate_verdict.EXACT_FAMILY_FALSE_FAILURE,
            "bound_over_truth_figure": BOUND_OVER_TRUTH_FIGURE,
            "regimes": {r.regime.name: regime_json(r) for r in report.regimes},
            "constant_step_sweep": report.sweep | {"verdict": "pass" if sweep_passes(report.sweep) else "fail"},
            "phase_diagram": None if report.phase is None else report.phase.as_dict(),
            "phase_diagram_figure": None if report.phase is None else PHASE_FIGURE,
            "hypergradients": None if report.hypergradients is None else report.hypergradients.as_dict(),
            "hypergradients_figure": None if report.hypergradients is None else hypergradients.FIGURE}


def _interval(values) -> str:
    return "—" if values is None else f"{values[1]:.3f} [{values[0]:.3f}, {values[2]:.3f}]"


def _ratio_columns(ratios: dict | None) -> tuple[str, str]:
    """`bound ÷ measured` over the fit window: its minimum, and its range `min–max`."""
    if ratios is None:
        return "—", "—"
    return f"{ratios['min']:.3g}", f"{ratios['min']:.3g}–{ratios['max']:.3g}"


def _claim(rate: Rate) -> str:
    return f"{rate.describe()}, {'tight' if rate.tight else 'upper bound'}"


def _certificates(evaluation: Evaluation) -> str:
    return ", ".join(f"`{name}`" for name in evaluation.claim_certificates)


INTRODUCTION = (
    "Errors are means over seeds of squared errors. Each bound is a theorem: its certificate (in "
    "`proofs_check/`, `python -m proofs_check`), its conditions, evaluated on the constants of the run (below), "
    "and its rate as k → ∞, either *tight* (attained: the measured log–log slope must match it, two-sided) or "
    "an *upper bound* (the measurement must fall at least as fast; an exponential rate must fall by 12 orders "
    "of magnitude). A bound *holds* when mean − 3·se ≤ bound at every checkpoint. How loose it is shows over the "
    "*fit window*, the checkpoints past the transient on which the rate is tested (k ≥ 10/(αμ) for constant "
    "steps, k ≥ 10·k0 for decreasing steps): there the table gives bound ÷ measured mean, its minimum (the "
    "tightest checkpoint; about 1 or more when the bound holds) and its range. At k = 0 a bound starts at (or "
    "near) the measured initial error, so the window leaves it out. Below the float64 resolution "
    "(8ε)²·‖x*‖² (or (8ε)²·‖J*‖²_F), raised by (1/(2αL))² for steps α below 1/(2L) (smaller steps stall farther "
    "from x*), a measurement is rounding: the bound is compared with that floor, and the ratio leaves such "
    "checkpoints out. Bounds and their proofs: `docs/theory.md`."
)


def _verdict_rows(result: RegimeResult) -> list[str]:
    rows = []
    for v in result.verdicts:
        evaluation = result.evaluation(v.quantity)
        orders = result.fitted.get(f"{v.quantity.split('_')[0]}_orders_of_magnitude")
        measured = (f"fell {orders:.1f} orders" if v.fitted_slope is None and orders is not None
                    else _interval(v.fitted_slope))
        tightest, spread = _ratio_columns(result.bound_ratios[v.quantity])
        rows.append(
            f"| {result.regime.name} | {result.problem_name.split('(')[0]} | {result.regime.describe_steps()} | "
            f"{v.quantity} | {_certificates(evaluation)} | {_claim(evaluation.rate)} | "
            f"k ≥ {result.window_start:.3g} | {tightest} | {spread} | {measured} | "
            f"{'pass' if v.passed else '**fail**'} |")
    return rows


def _condition_rows(result: RegimeResult) -> list[str]:
    rows = []
    for evaluation in (result.bounds.iterate, result.bounds.jacobian, *result.bounds.jacobian_alternatives):
        conditions = "; ".join(f"{c.statement}: {c.detail}{'' if c.holds else ' **fails**'}"
                               for c in evaluation.conditions)
        rows.append(f"| {result.regime.name} | `{evaluation.certificate}` | {evaluation.bound.quantity} | "
                    f"{conditions} |")
    return rows


def _tightness_rows(result: RegimeResult) -> list[str]:
    fitted, bounds = result.fitted, result.bounds
    rows = []
    for evaluation in (bounds.jacobian, *bounds.jacobian_alternatives):
        name = evaluation.certificate
        slope = fitted["jacobian_bound_slopes"][name]
        judged = fitted["jacobian_alternatives"].get(name)
        if judged is None:   # the main bound: its verdict is in the table above
            holds, ratios = result.verdict("jacobian_error").bound_holds, result.bound_ratios["jacobian_error"]
        else:
            holds, ratios = judged["bound_holds"], judged["bound_over_measured"]
        tightest, spread = _ratio_columns(ratios)
        rows.append(f"| {result.regime.name} | `{name}` | {_claim(evaluation.rate)} | "
                    f"{_interval(fitted['jacobian_slope'])} | {'—' if slope is None else f'{slope:.3f}'} | "
                    f"{'yes' if name in fitted['jacobian_rate_matches'] else 'no'} | {holds} | "
                    f"{tightest} ({spread}) |")
    return rows


EXACT_TEXT = (
    "Where the expected curves are known exactly (least squares and ridge: per-sample gradients affine in x, "
    "`rates.exact_curves` on the same problem, θ, schedule, K, checkpoints, batch size 1 and x₀ = 0), the "
    "measured means are tested against them two-sidedly at every checkpoint and for the three statistics "
    "(‖x_k − x*‖², ‖J_k − J*‖²_F, F(x_k) − F*), by `rates.verdict.exact_agreement`: z = (mean − exact)/se must "
    "stay within the Bonferroni critical value of Student's t over the tested checkpoints (family-wise "
    "false-failure probability {family:g} under the normal approximation of the seed mean), widened at each "
    "checkpoint by the first-order Edgeworth allowance for the seeds' skewness. Not tested: checkpoints whose "
    "exact value is below the float64 resolution (the measurement there is rounding), and checkpoints whose "
    "seeds are too dispersed for the normal approximation (coefficient of variation above 1: a few seeds carry "
    "the mean; late in an exponential fall the errors are products of random contractions, heavy-tailed). "
    "Checkpoints where every seed is equal (k = 0; k = 1 for ridge's derivative) must match to a relative 1e-9. "
    "Measured on 4,096 seeds in "
    "groups of 32, a correct engine failed this test in 0 of 128 groups on five of these regimes and in 5 of "
    "128 on double interpolation (its heavy tails); in groups of 128, never (32 groups each). The regime's "
    "verdict requires it."
)

POWER_TEXT = (
    "What each verdict can see, at this report's seed count: the smallest perturbation of the derivative that "
    "makes it fail, found by running the same verdicts on deliberately perturbed inputs (log-spaced sizes, "
    "refined by bisection; `experiments.rate_checks.verdict_power`). *Derivative off by δ*: an engine returning "
    "(1 + δ)J_k, its per-seed error ‖(1 + δ)J_k − J*‖² computed exactly from the recorded ‖J_k − J*‖² and "
    "⟨J_k − J*, J*⟩ (smallest |δ| of either sign, searched in [{d0:g}, {d1:g}]). *σ_J² claimed f× too small*: the "
    "bound evaluated with σ_J²/f, and the exact curves with σ_J²/f; *too large*: the exact curves with f·σ_J² "
    "(a larger constant only loosens a bound), f in [{f0:g}, {f1:.0e}]. *Rate exponent off by δ*: the measured "
    "derivative curve times (k/k_start)^(∓δ) over the fit window, falling slower (+) or faster (−), |δ| in "
    "[{r0:g}, {r1:g}]. Each cell: the smallest size caught by any verdict, then by each: b = the bound held, "
    "r = the rate, e = agreement with the exact curves (absent: no exact truth). — = not caught anywhere in "
    "the range; ≤ = caught already at the smallest size searched."
)


def _size(value, edge: bool = False) -> str:
    if value is None:
        return "—"
    return f"≤{value:.2g}" if edge else f"{value:.3g}"


def _power_cell(found: dict | None, failing=()) -> str:
    """`any (b …, r …, e …)` for one direction of one perturbation; `failing`: the verdicts that
    fail unperturbed (and so measure nothing)."""
    if found is None:
        return "n/a"
    edge = set(found.get("at_range_start", []))
    parts = [f"{letter} {'fails unperturbed' if name in failing else _size(found[name], name in edge)}"
             for name, letter in (("bound", "b"), ("rate", "r"), ("exact", "e")) if name in found]
    return f"{_size(found['any'], bool(edge) and found['any'] == min(found[n] for n in edge))} ({', '.join(parts)})"


def _power_rows(result: RegimeResult) -> list[str]:
    power = result.power
    details = power["details"]
    derivative, rate, sigma = (details["derivative_relative_error"], details["rate_exponent"],
                               details["sigma2_jac_factor"])
    if sigma is None:
        small = large = "n/a: σ_J² = 0"
    else:
        failing = power["failing_unperturbed"]
        small = _power_cell(sigma["claimed_too_small"], failing)
        large = (_power_cell({k: v for k, v in sigma["claimed_too_large"].items() if k not in ("bound", "rate")},
                             failing)
                 if "exact" in power["verdicts"] else "— (only an exact curve could show it; none here)")
    blind, failing = power["blind_to_2x_sigma2_jac"], power["failing_unperturbed"]
    return [f"| {result.regime.name} | {power['num_seeds']} | +: {_power_cell(derivative['positive'], failing)}<br>"
            f"−: {_power_cell(derivative['negative'], failing)} | {small} | {large} | "
            f"slower: {_power_cell(rate['slower'], failing)}<br>faster: {_power_cell(rate['faster'], failing)} | "
            f"{'n/a' if blind is None else ('**yes**' if blind else 'no')} |"]


def _summary_rows(result: RegimeResult) -> list[str]:
    exact = result.exact
    if exact is None:
        agreement = "— (no exact truth: per-sample gradients not affine in x)"
    else:
        worst = exact.get("worst")
        where = "" if not worst else (f"; worst: {worst['statistic']} at k = {worst['step']}, z = {worst['z']:.2f} "
                                      f"against {worst['critical_value']:.2f}")
        agreement = (f"{exact['verdict']}: max abs(z) {_size(exact['max_abs_z'])}, critical value "
                     f"{exact['threshold']:.2f} + skewness allowance{where}; {exact['num_tested']} tested, "
                     f"{exact['num_deterministic']} with all seeds equal, {exact['num_unresolved']} below the float64 "
                     f"resolution, {exact['num_heavy_tailed']} heavy-tailed")
    label = verdict_label(result)
    shown = label if label.startswith("pass") else f"**{label}**"
    return [f"| {result.regime.name} | {'pass' if result.bound_verdicts_passed else '**fail**'} | {agreement} | "
            f"{shown} |"]


def _looseness_rows(result: RegimeResult) -> list[str]:
    name = result.regime.name
    if result.bound_over_truth is None:
        rows = []
        for quantity in ("iterate_error", "jacobian_error"):
            ratios = result.bound_ratios[quantity]
            measured = "—" if ratios is None else f"{ratios['min']:.3g}–{ratios['max']:.3g}"
            rows.append(f"| {name} | `{result.evaluation(quantity).certificate}` | no exact truth (not affine in x); "
                        f"bound ÷ measured over the fit window | — | — | {measured} |")
        return rows
    rows = []
    for entry in result.bound_over_truth.values():
        kind = entry["kind"]
        if "truth_rate" in entry:
            bound, truth = f"rate {entry['bound_rate']:.3g}/step", f"rate {entry['truth_rate']:.3g}/step"
        else:
            bound = "—" if entry.get("bound_limit") is None else f"{entry['bound_limit']:.4g}"
            truth = f"{entry['truth']:.4g}"
        notes = []
        if "stationary" in entry:
            notes.append(f"exact plateau changes {entry['stationary']:.1e} from K/2 to K; "
                         f"÷ first-order plateau {entry['truth_over_first_order']:.4f}")
        if "truth_convergence" in entry:
            notes.append(f"K·E_K ÷ limit {entry['truth_convergence']:.4f}")
        if "grows_like" in entry:
            notes.append(f"at k = {entry['step']:,}; grows like {entry['grows_like']} "
                         f"({entry['ratio_at_limit_step']:.3g} at k = 1e12)")
        rows.append(f"| {name} | `{entry['bound']}` | {kind}{'; ' + '; '.join(notes) if notes else ''} | {bound} | "
                    f"{truth} | {entry['ratio']:.3g} |")
    return rows


def markdown(outcome: study.Outcome) -> str:
    settings, report = outcome.settings, outcome.result
    lines = [
        "# Rate report: SGD iterates and their derivatives", "",
        f"{settings.num_seeds} seeds per regime, batch size 1, float64; {outcome.seconds:.0f} s in all. "
        + INTRODUCTION, "",
        "## Verdicts by regime", "",
        "A regime passes when its bounds hold with their rates (the table below) and, where the exact curves are "
        "known, its measurements agree with them (`## Agreement with the exact curves`). A pass whose verdicts "
        f"cannot see σ_J² off by a factor {BLIND_FACTOR:g} (claimed too small or too large) says so "
        "(`## Power of the verdicts`).", "",
        "| regime | bounds and rates | agreement with the exact curves | verdict |", "|---|---|---|---|"]
    for result in report.regimes:
        lines += _summary_rows(result)
    lines += [
        "", "## Bounds and rates", "",
        "| regime | problem | steps | quantity | bound (certificate) | rate | fit window | bound ÷ measured: min "
        "| range | measured: fitted slope [95% CI] | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in report.regimes:
        lines += _verdict_rows(result)
    lines += ["", "## Conditions of the bounds, on each run's constants", "",
              "| regime | bound | quantity | conditions: both sides in numbers |", "|---|---|---|---|"]
    for result in report.regimes:
        lines += _condition_rows(result)
    assumptions = sorted({a for r in report.regimes for e in (r.bounds.iterate, r.bounds.jacobian)
                          for a in e.bound.assumptions})
    lines += ["", "Assumed, not measured: " + "; ".join(assumptions) + "."]
    lines += ["", "## Decreasing steps: which derivative bound is tight", "",
              "Every bound listed is valid; the question is which has the measured rate. Over the fit window "
              "(k ≥ 10·k0) each bound has its own log–log slope; a bound's rate matches when that slope lies in "
              "the measured slope's 95% interval.", "",
              "| regime | bound | rate | measured slope [95% CI] | bound's slope | rate matches | bound holds "
              "| bound ÷ measured: min (range) |", "|---|---|---|---|---|---|---|---|"]
    for result in report.regimes:
        if result.bounds.jacobian_alternatives:
            lines += _tightness_rows(result)
    lines += ["", "| regime | fitted k^(−a)·log(k)^b: a; b |", "|---|---|"]
    for result in report.regimes:
        if result.bounds.jacobian_alternatives:
            power_log = result.fitted["jacobian_power_log"]
            lines.append(f"| {result.regime.name} | {_interval(power_log['a'])}; {_interval(power_log['b'])} |")
    sweep = report.sweep
    lines += ["", "The free fit of `k^(−a)·log(k)^b` is shown for completeness: over a few decades a and b trade off, "
              "so its interval for b is wide; the slope comparison above is the sharper test.",
              "", "## Constant steps: plateau against step size", "",
              f"Problem `{sweep['problem']}`.", "",
              "| step size α | iterate plateau | jacobian plateau |", "|---|---|---|"]
    for size, label, u, v in zip(sweep["step_sizes"], sweep["step_labels"], sweep["iterate_plateau"],
                                 sweep["jacobian_plateau"]):
        lines.append(f"| {label} = {size:.4g} | {u:.4g} | {v:.4g} |")
    lines += ["", f"Log–log slope of the plateau against α: iterates {_interval(sweep['iterate_plateau_slope'])}, "
              f"derivatives {_interval(sweep['jacobian_plateau_slope'])} (theory: 1)."]
    lines += _assessment_lines(report)
    lines += ["", "## Figures", "",
              "Measured means over seeds with ±2 standard-error bands, the certified bounds dashed, the fit window "
              "shaded, and curves clipped at the float64 resolution where they reach it. Figure 1's constant-step "
              "and simple-interpolation columns run at α = 1/(64L): at the largest certified step 1/(2L) their "
              "derivative noise ball is as large as the initial error ‖J*‖²_F, and the columns would show no "
              "convergence. The sweep below keeps 1/(2L).", ""]
    for group in groups(r.regime for r in report.regimes):
        lines += [f"![{group.title}]({group.file})", ""]
    lines += [f"![plateau sweep]({SWEEP_FIGURE})", ""]
    if report.phase is not None:
        lines += [report.phase.markdown(), "", f"![phase diagram]({PHASE_FIGURE})", ""]
    if report.hypergradients is not None:
        lines += [report.hypergradients.markdown()]
    return "\n".join(lines)


def _assessment_lines(report: ReportResult) -> list[str]:
    """The sections on the exact curves, the power of the verdicts and the looseness of the bounds."""
    lines = []
    lines += ["", "## Agreement with the exact curves", "",
              EXACT_TEXT.format(family=rate_verdict.EXACT_FAMILY_FALSE_FAILURE), "",
              "| regime | verdict | max abs(z) | critical value (before the allowance) | tested | all seeds equal "
              "| below resolution | heavy-tailed | largest relative deviation, resolved checkpoints |",
              "|---|---|---|---|---|---|---|---|---|"]
    for result in report.regimes:
        exact = result.exact
        if exact is None:
            lines.append(f"| {result.regime.name} | — | — | — | — | — | — | — | {result.exact_reason.split(':')[0]} |")
            continue
        deviation = exact["max_relative_deviation"]
        lines.append(f"| {result.regime.name} | {exact['verdict']} | {_size(exact['max_abs_z'])} | "
                     f"{exact['threshold']:.2f} | {exact['num_tested']} | {exact['num_deterministic']} | "
                     f"{exact['num_unresolved']} | {exact['num_heavy_tailed']} | {_size(deviation)} |")
    lines += ["", "## Power of the verdicts", "", POWER_TEXT.format(
        d0=DERIVATIVE_ERRORS[0], d1=DERIVATIVE_ERRORS[1], f0=1 + SIGMA2_JAC_EXCESS[0], f1=1 + SIGMA2_JAC_EXCESS[1],
        r0=RATE_EXPONENTS[0], r1=RATE_EXPONENTS[1]), "",
        f"| regime | seeds | derivative (1 + δ)J_k: smallest abs(δ) | σ_J² claimed f× too small: smallest f "
        f"| σ_J² claimed f× too large: smallest f | rate exponent off by δ: smallest abs(δ) "
        f"| blind to σ_J² off by {BLIND_FACTOR:g}× |", "|---|---|---|---|---|---|---|"]
    for result in report.regimes:
        lines += _power_rows(result)
    lines += ["", "## How loose each certified bound is, against the exact truth", "",
              "With the exact curves, each certified bound is compared with the truth as k → ∞: constant steps, the "
              "bound's plateau (its value at k = 1e12) ÷ the exact plateau (the exact curve at the run's K, which "
              "is stationary); decreasing steps, lim k·bound_k ÷ lim k·E_k (`rates.exact.decreasing_limit`); an "
              "exponential fall, the truth's decay rate ÷ the bound's (how many times longer the bound takes to "
              "fall as far). The paper's O(log(k)²/k) bound has no finite limit: its ratio at the run's K is given, "
              "and it grows like log(k)². Logistic regression has no exact truth; its bound ÷ measured over the fit "
              "window is repeated.", "",
              "| regime | bound | compared | bound | truth | bound ÷ truth |", "|---|---|---|---|---|---|"]
    for result in report.regimes:
        lines += _looseness_rows(result)
    lines += ["", f"![bound ÷ truth]({BOUND_OVER_TRUTH_FIGURE})"]
    return lines


def regime_figures(outcome: study.Outcome) -> dict:
    """Every figure of the report, by file name."""
    report = outcome.result
    return _regime_group_figures(report.regimes) | _closing_figures(report.sweep, report.phase, report.hypergradients)


def _regime_group_figures(regimes) -> dict:
    """The figures of the regimes alone: one per figure group, and the bounds ÷ truth."""
    drawn = {group.file: figures.regime_figure([r for r in regimes if r.regime.group == group], group.title)
             for group in groups(r.regime for r in regimes)}
    drawn[BOUND_OVER_TRUTH_FIGURE] = figures.bound_over_truth_figure(bound_over_truth_entries(regimes))
    return drawn


def _closing_figures(sweep, phase_diagram, hypergradient_checks) -> dict:
    """The figures of the sweep, the phase diagram and the hypergradients, where they ran."""
    drawn = {SWEEP_FIGURE: figures.sweep_figure(sweep)}
    if phase_diagram is not None:
        drawn[PHASE_FIGURE] = phase_diagram.figure()
    if hypergradient_checks is not None:
        drawn[hypergradients.FIGURE] = hypergradient_checks.figure()
    return drawn


def _figure_files(outcome: study.Outcome) -> dict:
    """What `study.write` writes: the PNGs the workers drew during the run, or the figures
    themselves for a result without them."""
    return outcome.result.drawn or regime_figures(outcome)


def bound_over_truth_entries(regimes) -> list[dict]:
    """One entry per regime (`RegimeResult`s) and certified bound for
    `figures.bound_over_truth_figure`: `{"regime", "bound", "ratio", "kind"}`, kind one of
    `figures.RATIO_KINDS`; without an exact truth, the bound ÷ measured minimum over the fit
    window (kind `"measured"`)."""
    entries = []
    for result in regimes:
        if result.bound_over_truth is None:
            for quantity in ("iterate_error", "jacobian_error"):
                ratios = result.bound_ratios[quantity]
                if ratios is not None:
                    entries.append({"regime": result.regime.name, "bound": result.evaluation(quantity).certificate,
                                    "ratio": ratios["min"], "kind": "measured"})
            continue
        for entry in result.bound_over_truth.values():
            kind = ("decay rate" if "truth_rate" in entry else "log bound at K" if "grows_like" in entry
                    else "plateau" if "stationary" in entry else "limit")
            entries.append({"regime": result.regime.name, "bound": entry["bound"], "ratio": entry["ratio"],
                            "kind": kind})
    return entries


def verdicts(report: ReportResult) -> dict[str, bool]:
    diagram = {} if report.phase is None else {"phase_diagram": report.phase.passed}
    checks = {} if report.hypergradients is None else {"hypergradients": report.hypergradients.passed}
    return ({r.regime.name: r.passed for r in report.regimes} | {"constant_step_sweep": sweep_passes(report.sweep)}
            | diagram | checks)


STUDY = study.Study(
    name="rate report", quick=QUICK, full=FULL, num_tasks=num_tasks, run=run,
    markdown=markdown, document=document, figures=_figure_files, verdicts=verdicts,
    markdown_file="report.md", json_file="results.json", progress_lines=len(REGIMES) + 5,
)


def write(out: pathlib.Path, quick: bool = False, settings: Settings | None = None) -> study.Written:
    """Run every regime and the step-size sweep; write `report.md`, `results.json` and the
    figures to `out` (`study.write`); `.passed` says whether every verdict passed."""
    return study.write(STUDY, out, quick, settings)

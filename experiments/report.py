"""`python -m rates report --out DIR [--quick]`: every regime, its verdicts, figures and JSON.

Writes `report.md`, `results.json` (per regime: the curves, each bound with its
certificate, conditions and rate, the verdicts; and the step-size sweep) and one figure
per figure group of the regimes plus the sweep's.
"""

from __future__ import annotations

import dataclasses
import pathlib

from experiments import figures, study
from experiments.progress import SILENT, Progress
from experiments.rate_checks import RegimeResult, run_regime, run_sweep, sweep_passes
from experiments.regimes import FULL, QUICK, REGIMES, Settings, groups
from rates.bounds import Evaluation, Rate

SWEEP_FIGURE = "constant_step_sweep.png"


@dataclasses.dataclass(frozen=True)
class ReportResult:
    regimes: tuple[RegimeResult, ...]
    sweep: dict


def run(settings: Settings, progress: Progress = SILENT) -> ReportResult:
    """Every regime of `REGIMES`, then the step-size sweep."""
    results = []
    for regime in REGIMES:
        results.append(run_regime(regime, settings))
        progress.advance(regime.name)
    sweep = run_sweep(settings)
    progress.advance("constant_step_sweep")
    return ReportResult(tuple(results), sweep)


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
        "verdict": "pass" if result.passed else "fail",
    }


def document(outcome: study.Outcome) -> dict:
    report = outcome.result
    return {"settings": dataclasses.asdict(outcome.settings), "seconds": outcome.seconds,
            "regimes": {r.regime.name: regime_json(r) for r in report.regimes},
            "constant_step_sweep": report.sweep | {"verdict": "pass" if sweep_passes(report.sweep) else "fail"}}


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


def markdown(outcome: study.Outcome) -> str:
    settings, report = outcome.settings, outcome.result
    lines = [
        "# Rate report: SGD iterates and their derivatives", "",
        f"{settings.num_seeds} seeds per regime, batch size 1, float64; {outcome.seconds:.0f} s in all. "
        + INTRODUCTION, "",
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
              f"derivatives {_interval(sweep['jacobian_plateau_slope'])} (theory: 1).", "",
              "## Figures", "",
              "Measured means over seeds with ±2 standard-error bands, the certified bounds dashed, the fit window "
              "shaded, and curves clipped at the float64 resolution where they reach it. Figure 1's constant-step "
              "and simple-interpolation columns run at α = 1/(64L): at the largest certified step 1/(2L) their "
              "derivative noise ball is as large as the initial error ‖J*‖²_F, and the columns would show no "
              "convergence. The sweep below keeps 1/(2L).", ""]
    for group in groups(r.regime for r in report.regimes):
        lines += [f"![{group.title}]({group.file})", ""]
    lines += [f"![plateau sweep]({SWEEP_FIGURE})", ""]
    return "\n".join(lines)


def regime_figures(outcome: study.Outcome) -> dict:
    report = outcome.result
    drawn = {group.file: figures.regime_figure([r for r in report.regimes if r.regime.group == group], group.title)
             for group in groups(r.regime for r in report.regimes)}
    return drawn | {SWEEP_FIGURE: figures.sweep_figure(report.sweep)}


def verdicts(report: ReportResult) -> dict[str, bool]:
    return {r.regime.name: r.passed for r in report.regimes} | {"constant_step_sweep": sweep_passes(report.sweep)}


STUDY = study.Study(
    name="rate report", quick=QUICK, full=FULL, num_tasks=lambda settings: len(REGIMES) + 1, run=run,
    markdown=markdown, document=document, figures=regime_figures, verdicts=verdicts,
    markdown_file="report.md", json_file="results.json", progress_lines=len(REGIMES) + 1,
)


def write(out: pathlib.Path, quick: bool = False, settings: Settings | None = None) -> study.Written:
    """Run every regime and the step-size sweep; write `report.md`, `results.json` and the
    figures to `out` (`study.write`); `.passed` says whether every verdict passed."""
    return study.write(STUDY, out, quick, settings)

"""`python -m rates report --out DIR [--quick]`: every regime, its verdicts, figures and JSON."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

from rates import figures
from rates.regimes import FULL, QUICK, REGIMES, RegimeResult, Settings, run_regime, run_sweep


class Progress:
    """A one-line text progress bar on stderr, with elapsed time per task."""

    def __init__(self, total: int, stream=sys.stderr, width: int = 28):
        self.total, self.done, self.stream, self.width = total, 0, stream, width
        self.start = time.perf_counter()

    def advance(self, label: str) -> None:
        self.done += 1
        filled = round(self.width * self.done / self.total)
        elapsed = time.perf_counter() - self.start
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {elapsed:7.1f}s  {label:<32s}")
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def regime_json(result: RegimeResult) -> dict:
    curves, bounds = result.curves, result.bounds
    return {
        "problem": result.problem_name,
        "schedule": result.schedule,
        "conditions": bounds.conditions,
        "constants": result.constants,
        "num_seeds": curves.num_seeds,
        "steps": curves.steps.tolist(),
        "iterate_error": curves.iterate_error.tolist(),
        "iterate_error_se": curves.iterate_error_se.tolist(),
        "jacobian_error": curves.jacobian_error.tolist(),
        "jacobian_error_se": curves.jacobian_error_se.tolist(),
        "suboptimality": curves.suboptimality.tolist(),
        "iterate_bound": bounds.iterate.tolist(),
        "jacobian_bound": bounds.jacobian.tolist(),
        "iterate_bound_certificate": bounds.iterate_certificate,
        "jacobian_bound_certificate": bounds.jacobian_certificate,
        "claim_certificate": result.regime.claim_certificate,
        "jacobian_bound_alternatives": {name: values.tolist() for name, values in bounds.jacobian_alternatives.items()},
        "resolution_floors": result.floors,
        "fitted": result.fitted,
        "verdicts": [v.as_dict() for v in result.verdicts],
        "verdict": "pass" if result.passed else "fail",
    }


def _interval(values) -> str:
    return "—" if values is None else f"{values[1]:.3f} [{values[0]:.3f}, {values[2]:.3f}]"


def markdown(results: list[RegimeResult], sweep: dict, settings: Settings, seconds: float) -> str:
    lines = [
        "# Rate report: SGD iterates and their derivatives",
        "",
        f"{settings.num_seeds} seeds per regime, batch size 1, float64; {seconds:.0f} s in all. "
        "Errors are means over seeds of squared errors; a bound *holds* when mean − 3·se ≤ bound at every "
        "checkpoint (worst ratio shown, ≤ 1 when it holds); below the float64 resolution (8ε)²·‖x*‖² "
        "(or (8ε)²·‖J*‖²_F) a measurement is rounding, and the bound is compared with that floor. Bounds and their proofs: `docs/theory.md`, "
        "certificates in `proofs_check/` (`python -m proofs_check`).",
        "",
        "| regime | problem | quantity | bound (certificate) | worst ratio | measured: fitted slope [95% CI] | claim | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for v in result.verdicts:
            certificate = (result.bounds.iterate_certificate if v.quantity.startswith("iterate")
                           else result.bounds.jacobian_certificate)
            if result.regime.claim_certificate:
                certificate += f"`, `{result.regime.claim_certificate}"
            claim = ("falls > 12 orders" if v.claimed_slope is None
                     else "plateau (slope 0)" if v.claimed_slope == 0.0 else f"slope {v.claimed_slope:g}")
            orders = result.fitted.get(f"{v.quantity.split('_')[0]}_orders_of_magnitude")
            measured = (f"fell {orders:.1f} orders" if v.fitted_slope is None and orders is not None
                        else _interval(v.fitted_slope))
            lines.append(
                f"| {result.regime.name} | {result.problem_name.split('(')[0]} | {v.quantity} | `{certificate}` | "
                f"{v.worst_ratio:.3g} | {measured} | {claim} | {'pass' if v.passed else '**fail**'} |"
            )
    lines += ["", "## Decreasing steps: which derivative bound is tight", "",
              "Both bounds are valid; the question is which has the measured rate. Over the fitting window "
              "(k ≥ 10·k0) each bound has its own log–log slope; a bound's rate matches when that slope lies in "
              "the measured slope's 95% interval.", "",
              "| regime | measured slope [95% CI] | O(1/k) bound slope | O(log²k/k) bound slope | rate matches | "
              "fitted k^(−a)·log(k)^b: a; b | O(log²k/k) bound holds (worst ratio) |",
              "|---|---|---|---|---|---|---|"]
    for result in results:
        f = result.fitted
        if "jacobian_power_log" not in f:
            continue
        slopes = list(f["jacobian_bound_slopes"].values())
        shown = ["—" if v is None else f"{v:.3f}" for v in slopes]
        power_log = f["jacobian_power_log"]
        lines.append(f"| {result.regime.name} | {_interval(f['jacobian_slope'])} | {shown[0]} | {shown[1]} | "
                     f"{', '.join(f'`{n}`' for n in f['jacobian_rate_matches']) or 'neither'} | "
                     f"{_interval(power_log['a'])}; {_interval(power_log['b'])} | "
                     f"{f['jacobian_log_bound_holds']} ({f['jacobian_log_bound_worst_ratio']:.3g}) |")
    lines += ["", "The free fit of `k^(−a)·log(k)^b` is shown for completeness: over a few decades a and b trade off, "
              "so its interval for b is wide; the slope comparison above is the sharper test.",
              "", "## Constant steps: plateau against step size", "",
              f"Problem `{sweep['problem']}`.", "",
              "| step size | iterate plateau | jacobian plateau |", "|---|---|---|"]
    for size, u, v in zip(sweep["step_sizes"], sweep["iterate_plateau"], sweep["jacobian_plateau"]):
        lines.append(f"| {size:.4g} | {u:.4g} | {v:.4g} |")
    lines += ["", f"Log–log slope of the plateau against α: iterates {_interval(sweep['iterate_plateau_slope'])}, "
              f"derivatives {_interval(sweep['jacobian_plateau_slope'])} (theory: 1).", "",
              "## Figures", "", "![Figure 1 regimes](figure1.png)", "", "![ridge and logistic](ridge_logistic.png)",
              "", "![plateau sweep](constant_step_sweep.png)", ""]
    return "\n".join(lines)


def sweep_passes(sweep: dict) -> bool:
    return all(lo <= 1.0 <= hi for lo, _, hi in (sweep["iterate_plateau_slope"], sweep["jacobian_plateau_slope"]))


def write_report(out: pathlib.Path, quick: bool, settings: Settings | None = None) -> bool:
    """Run every regime and the step-size sweep; write `report.md`, `results.json` and the
    figures to `out`. Returns whether every verdict passed."""
    settings = settings or (QUICK if quick else FULL)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    progress = Progress(len(REGIMES) + 1)
    results = []
    for regime in REGIMES:
        results.append(run_regime(regime, settings))
        progress.advance(regime.name)
    sweep = run_sweep(settings)
    progress.advance("constant_step_sweep")
    seconds = time.perf_counter() - start
    figures.regime_figure(results[:4], out / "figure1.png", "least squares: iterates and derivatives (paper's Figure 1)")
    figures.regime_figure(results[4:], out / "ridge_logistic.png", "ridge and logistic regression, θ = λ")
    figures.sweep_figure(sweep, out / "constant_step_sweep.png")
    payload = {"settings": dataclasses.asdict(settings),
               "regimes": {r.regime.name: regime_json(r) for r in results},
               "constant_step_sweep": sweep | {"verdict": "pass" if sweep_passes(sweep) else "fail"}}
    (out / "results.json").write_text(json.dumps(payload, indent=1))
    (out / "report.md").write_text(markdown(results, sweep, settings, seconds))
    passed = all(r.passed for r in results) and sweep_passes(sweep)
    print(f"{'regime':24s} verdict")
    for r in results:
        print(f"{r.regime.name:24s} {'pass' if r.passed else 'FAIL'}")
    print(f"{'constant_step_sweep':24s} {'pass' if sweep_passes(sweep) else 'FAIL'}")
    print(f"wrote {out / 'report.md'}, {out / 'results.json'} and 3 figures in {seconds:.0f} s")
    return passed

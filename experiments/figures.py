"""Figures of the reports, built on `matplotlib.figure.Figure` rather than pyplot: importing
this module changes no global state (no backend is chosen), and `save` works wherever the
figure was made. Each function returns its `Figure`; a notebook displays it (after
`%matplotlib inline`), a report passes it to `save`.

The regime figures follow the paper's Figure 1: one column per regime, the suboptimality
on top and the derivative error below, the certified bounds overlaid. Legends sit
outside the axes, in words; the certificates behind each bound are named in the report's
table. Every study shapes its figures with `new_figure` and writes them with `save`.
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from rates.bounds import RateKind

# PNGs for a report or a notebook: sharp enough on screen, a few hundred kB at most.
DPI = 100

MEASURED_STYLE = dict(lw=1.8)
BOUND_STYLE = dict(color="k", lw=1.2)
FLOOR_STYLE = dict(color="0.45", ls="-.", lw=1.0)
WINDOW_STYLE = dict(color="0.93", lw=0, zorder=0)


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of `width × height` inches at `DPI`, laid out by matplotlib's
    constrained layout (so that legends placed outside the axes get room)."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(figure: Figure | bytes, path) -> None:
    """Write `figure` to `path` (the format from its suffix), legends outside the axes
    included; `bytes`, a file `png` made, are written as they are."""
    if isinstance(figure, bytes):
        pathlib.Path(path).write_bytes(figure)
    else:
        figure.savefig(path, dpi=DPI, bbox_inches="tight")


def png(figure: Figure) -> bytes:
    """`figure` as the PNG file `save` writes: a task for a worker process, which receives
    the figure pickled and returns the file."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def regime_figure(results, title: str) -> Figure:
    """The paper's Figure 1 layout for a list of `rate_checks.RegimeResult`, one column each.

    Measured means over seeds with ±2 standard-error bands; certified bounds in black,
    further valid bounds dotted and named by their rate; the fit window of the verdicts
    shaded; every curve clipped at the float64 resolution of its quantity, drawn as a
    line where a curve reaches it. Steps run on a log axis, except where the bounds' rate
    is exponential.
    """
    columns = len(results)
    figure = new_figure(3.4 * columns + 2.6, 6.4)
    # A last, narrow column holds each row's legend, level with its row and off the data.
    grid = figure.subplots(2, columns + 1, squeeze=False, width_ratios=[1.0] * columns + [0.75])
    axes, legends = grid[:, :columns], grid[:, columns]
    for column, result in enumerate(results):
        curves, bounds, floors = result.curves, result.bounds, result.floors
        exponential = bounds.iterate.rate.kind is RateKind.EXPONENTIAL
        # A log axis has no k = 0: drop that checkpoint rather than move it.
        shown = slice(None) if exponential else slice(1, None)
        steps = curves.steps[shown]
        top, bottom = axes[0, column], axes[1, column]
        _panel(top, steps, curves.suboptimality[shown], curves.suboptimality_se[shown], "C0",
               "measured F(x_k) − F(x*)", [("certified bound", result.suboptimality_bound[shown], "--")],
               floors["suboptimality"], result.window_start)
        further = [(f"certified {e.rate.describe()} bound", e.values[shown], ":") for e in bounds.jacobian_alternatives]
        _panel(bottom, steps, curves.jacobian_error[shown], curves.jacobian_error_se[shown], "C3",
               "measured ‖J_k − J*‖²_F", [("certified bound", bounds.jacobian.values[shown], "--")] + further,
               floors["jacobian_error"], result.window_start)
        for axis in (top, bottom):
            _step_axis(axis, logarithmic=not exponential)
        verdict = "pass" if result.passed else "FAIL"
        top.set_title(f"{result.regime.name} (verdict: {verdict})\n{result.regime.describe_steps()}", fontsize=9)
    axes[0, 0].set_ylabel("suboptimality, mean over seeds")
    axes[1, 0].set_ylabel("derivative error, mean over seeds")
    for row, host in zip(axes, legends):
        host.axis("off")
        host.legend(*_unique_entries(row), loc="center left", fontsize=8, frameon=False, borderaxespad=0)
    figure.suptitle(title)
    return figure


def _panel(axis, steps, mean, standard_error, color, label, bounds, floor, window_start):
    """One quantity: its measured band, its bounds, its resolution floor and fit window."""
    def clipped(values):
        return np.maximum(values, floor)

    # The band's lower edge stays positive on a log axis.
    lower = np.maximum(mean - 2 * standard_error, mean * 1e-3)
    axis.fill_between(steps, clipped(lower), clipped(mean + 2 * standard_error), color=color, alpha=0.2, lw=0)
    axis.plot(steps, clipped(mean), color=color, label=label, **MEASURED_STYLE)
    for name, values, style in bounds:
        axis.plot(steps, clipped(values), ls=style, label=name, **BOUND_STYLE)
    lowest = min(np.min(mean), *(np.min(values) for _, values, _ in bounds))
    if lowest < 10 * floor:  # only where a curve gets there: else it would stretch the axis
        axis.axhline(floor, label="float64 resolution", **FLOOR_STYLE)
    if window_start <= steps[-1]:
        axis.axvspan(window_start, steps[-1], label="fit window (k past the transient)", **WINDOW_STYLE)
    axis.set_yscale("log")


def _step_axis(axis, logarithmic: bool) -> None:
    if logarithmic:
        axis.set_xscale("log")
    else:
        # Steps run to 10⁵ and beyond: "50k" where "50000" would run into its neighbour.
        axis.xaxis.set_major_locator(ticker.MaxNLocator(4))
        axis.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))
    axis.yaxis.set_major_locator(ticker.LogLocator(numticks=6))
    axis.yaxis.set_minor_formatter(ticker.NullFormatter())
    axis.grid(True, which="major", alpha=0.3)
    axis.set_xlabel("step k")


# Legend order: what was measured, what bounds it, then the landmarks.
LEGEND_ORDER = ("measured", "certified", "float64", "fit window")


def _unique_entries(axes):
    """The legend entries of `axes`, each label once, measurements before bounds before
    landmarks (`LEGEND_ORDER`), otherwise in order of first appearance."""
    entries = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    rank = {label: next((i for i, prefix in enumerate(LEGEND_ORDER) if label.startswith(prefix)), len(LEGEND_ORDER))
            for label in entries}
    labels = sorted(entries, key=rank.__getitem__)  # stable: ties keep their order
    return [entries[label] for label in labels], labels


def sweep_figure(sweep: dict) -> Figure:
    """Plateaus against the step size, log–log, with each bound at the last step."""
    figure = new_figure(6.0, 5.0)
    axis = figure.subplots()
    sizes = np.asarray(sweep["step_sizes"])
    for quantity, symbol, color in (("iterate", "‖x_k − x*‖²", "C0"), ("jacobian", "‖J_k − J*‖²_F", "C3")):
        slope = sweep[f"{quantity}_plateau_slope"]
        axis.errorbar(sizes, sweep[f"{quantity}_plateau"], yerr=2 * np.asarray(sweep[f"{quantity}_plateau_se"]),
                      fmt="o-", color=color, ms=5,
                      label=f"measured plateau of {symbol}: slope {slope[1]:.2f} [{slope[0]:.2f}, {slope[2]:.2f}]")
        axis.plot(sizes, sweep[f"{quantity}_plateau_bound"], "--", color=color, lw=1.2,
                  label=f"certified bound on {symbol} at the last step")
    axis.set_xscale("log")
    axis.set_yscale("log")
    # One tick per step size, named as a fraction of 1/L: the default log ticks of a
    # one-decade axis crowd their labels into each other.
    axis.xaxis.set_major_locator(ticker.FixedLocator(sizes))
    axis.xaxis.set_major_formatter(ticker.FixedFormatter(sweep["step_labels"]))
    axis.xaxis.set_minor_locator(ticker.NullLocator())
    axis.yaxis.set_minor_formatter(ticker.NullFormatter())
    axis.set_xlabel("step size α")
    axis.set_ylabel("mean squared error at the plateau")
    axis.set_title("Constant steps: the noise ball scales with α (theory: slope 1)", fontsize=10)
    axis.grid(True, alpha=0.3)
    figure.legend(*_unique_entries([axis]), loc="outside lower center", fontsize=8, frameon=False)
    return figure


# How each ratio of `bound_over_truth_figure` was obtained, its colour and its legend entry.
RATIO_KINDS = {
    "plateau": ("C0", "o", "plateau: bound as k → ∞ ÷ exact plateau"),
    "limit": ("C1", "s", "decreasing steps: lim k·bound ÷ lim k·E (exact)"),
    "log bound at K": ("C3", "v", "paper's O(log(k)²/k) bound: k·bound ÷ lim k·E at the run's K (grows like log²k)"),
    "decay rate": ("C2", "D", "exponential fall: truth's decay rate ÷ bound's"),
    "measured": ("0.5", "x", "no exact truth (logistic): bound ÷ measured, minimum over the fit window"),
}


def bound_over_truth_figure(entries) -> Figure:
    """How loose each certified bound is: one point per regime and bound, on a log axis.

    `entries`: dictionaries `{"regime", "bound", "ratio", "kind"}`, `kind` a key of
    `RATIO_KINDS` (what the ratio compares); a ratio of 1 would be a bound as tight as the
    truth, and is drawn as a line."""
    entries = [entry for entry in entries if entry["ratio"] is not None and entry["ratio"] > 0]
    figure = new_figure(8.0, 0.32 * len(entries) + 2.0)
    axis = figure.subplots()
    positions = np.arange(len(entries))[::-1]
    for kind, (color, marker, label) in RATIO_KINDS.items():
        chosen = [(y, entry) for y, entry in zip(positions, entries) if entry["kind"] == kind]
        if chosen:
            axis.hlines([y for y, _ in chosen], 1.0, [entry["ratio"] for _, entry in chosen], color=color, lw=2.5,
                        alpha=0.35)
            axis.plot([entry["ratio"] for _, entry in chosen], [y for y, _ in chosen], marker, color=color, ms=6,
                      ls="none", label=label)
    for y, entry in zip(positions, entries):
        axis.annotate(f"{entry['ratio']:.3g}", (entry["ratio"], y), xytext=(6, -3), textcoords="offset points",
                      fontsize=7)
    axis.axvline(1.0, color="k", lw=0.8)
    axis.set_xscale("log")
    axis.set_yticks(positions, [f"{entry['regime']}: {entry['bound']}" for entry in entries], fontsize=8)
    axis.set_ylim(-0.7, len(entries) - 0.3)
    lowest, highest = min(e["ratio"] for e in entries), max(e["ratio"] for e in entries)
    axis.set_xlim(min(0.5, lowest / 2), highest * 30)
    axis.xaxis.set_minor_formatter(ticker.NullFormatter())
    axis.grid(True, axis="x", which="major", alpha=0.3)
    axis.set_xlabel("certified bound ÷ exact truth (log scale; 1 = tight)")
    axis.set_title("How loose each certified bound is, as k → ∞", fontsize=10)
    figure.legend(*_unique_entries([axis]), loc="outside lower center", fontsize=8, frameon=False, ncol=1)
    return figure


def _model_grid(count: int):
    columns = min(3, count)
    rows = (count + columns - 1) // columns
    figure = new_figure(4.6 * columns, 3.9 * rows + 0.6)
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    return figure, list(axes.flat[:count])


ESTIMATOR_COLORS = {"Score": "C0", "Reparam": "C1", "LYY18": "C2", "Fixed": "C3", "DSGD": "C4"}


def dsgd_elbo(document: dict) -> Figure:
    """ELBO along training, one panel per model; Fixed and DSGD at the reference η only."""
    models = document["traces"]
    reference = f"@{document['reference_eta']:g}"
    figure, axes = _model_grid(len(models))
    for axis, (name, traces) in zip(axes, models.items()):
        for key, trace in traces.items():
            if "@" in key and not key.endswith(reference):
                continue
            axis.plot(trace["steps"], trace["elbo"], lw=1.4, label=key, color=ESTIMATOR_COLORS[key.split("@")[0]])
        axis.set_title(f"{name} (ℓ = {document['models'][name]['nesting_depth']})")
        axis.set_xlabel("iteration")
        axis.set_ylabel("crisp ELBO")
        values = np.abs(np.concatenate([np.asarray(t["elbo"]) for t in traces.values()]))
        if values.max() > 100 * max(values.min(), 10.0):  # spans decades: a signed log axis
            axis.set_yscale("symlog", linthresh=10.0)
    entries = _unique_entries(axes)
    figure.legend(*entries, loc="outside lower center", ncol=len(entries[1]), fontsize=8, frameon=False)
    return figure


def dsgd_variance(document: dict) -> Figure:
    """Variance of the smoothed estimator against η, one panel per program: the measured
    ladder with 2-standard-error bars, the fitted `A + B·η^(−s)`, the exact variance where
    it is known (synthetic chains) and the paper's grid (benchmark models); the title
    carries the exponent interval and the verdict."""
    studies = document["variance_vs_eta"]
    figure, axes = _model_grid(len(studies))
    for axis, (name, study) in zip(axes, studies.items()):
        eta, variance = np.asarray(study["eta"]), np.asarray(study["avg_variance"])
        axis.errorbar(eta, variance, yerr=2 * np.asarray(study["avg_variance_se"]), fmt="o", color="C0", ms=4,
                      label=f"measured ({study['stopped'].replace('_', ' ')})")
        if study["exponent_interval"] is not None and eta.size:
            lo, estimate, hi = study["exponent_interval"]
            grid = np.geomspace(eta.min(), eta.max(), 100)
            fitted = study["offset"] + study["scale"] * (grid / study["reference_eta"]) ** -estimate
            axis.plot(grid, fitted, "C0--", lw=1.0, label=f"A + B·η^(−s), s = {estimate:.2f} [{lo:.2f}, {hi:.2f}]")
        if "exact_variance" in study:
            axis.plot(eta, study["exact_variance"], "k-", lw=1.0, label="exact (quadrature)")
        if "paper_grid" in study:
            paper = study["paper_grid"]
            axis.errorbar(paper["eta"], paper["avg_variance"], yerr=2 * np.asarray(paper["avg_variance_se"]),
                          fmt="s", color="C1", ms=4, label=f"paper's grid: slope {paper['fitted_slope'][1]:.2f}")
        if eta.size or "paper_grid" in study:
            axis.set_xscale("log")
            axis.set_yscale("log")
        else:
            axis.text(0.5, 0.5, "no η kept: the first one's\nMonte Carlo error was too large", ha="center",
                      va="center", transform=axis.transAxes, fontsize=8)
        axis.set_xlabel("η")
        axis.set_ylabel("mean component variance")
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())  # short windows crowd the minor labels
        axis.set_title(f"{name} (ℓ = {study['nesting_depth']}): {study['eta_verdict']}", fontsize=9)
        # Each panel has its own fit, so its own legend, below its axes.
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return figure


def smoothing_heatmap(document: dict) -> Figure:
    """`log₁₀` of the variance relative to `none/plain/mc` of the same noise: one panel per
    noise, tasks × strategies (covariate/antithetic/sampling); blank where not applicable."""
    tasks = list(document)
    names = [name for results in document.values() for name in results]
    noises = list(dict.fromkeys(name.split("/")[0] for name in names))
    strategies = list(dict.fromkeys(name.split("/", 1)[1] for name in names))
    figure = new_figure(0.34 * len(strategies) + 2.5, 0.42 * len(tasks) * len(noises) + 1.4 * len(noises) + 0.6)
    axes = figure.subplots(len(noises), 1, squeeze=False)
    for axis, noise in zip(axes[:, 0], noises):
        grid = np.full((len(tasks), len(strategies)), np.nan)
        for row, task in enumerate(tasks):
            results = document[task]
            baseline = results.get(f"{noise}/none/plain/mc")
            for column, strategy in enumerate(strategies):
                entry = results.get(f"{noise}/{strategy}")
                if entry is not None and baseline is not None:
                    grid[row, column] = np.log10(entry["variance"] / baseline["variance"])
        limit = max(1.0, float(np.nanmax(np.abs(grid)))) if np.isfinite(grid).any() else 1.0
        image = axis.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        axis.set_yticks(range(len(tasks)), tasks, fontsize=8)
        axis.set_xticks(range(len(strategies)), strategies, rotation=90, fontsize=7)
        axis.set_title(f"{noise}: log₁₀ variance / variance of none/plain/mc", fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.02, pad=0.01)
    return figure

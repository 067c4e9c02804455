"""Figures of the rate report, in the layout of the paper's Figure 1: one column per
regime, suboptimality on top and the derivative error below, bounds overlaid."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TITLES = {
    "constant": "constant step",
    "decreasing": "decreasing step a/(k+k0)",
    "double_interpolation": "double interpolation",
    "simple_interpolation": "simple interpolation",
}


def _band(axis, steps, mean, standard_error, color, label):
    axis.plot(steps, mean, color=color, lw=1.8, label=label)
    lower = np.maximum(mean - 2 * standard_error, mean * 1e-3)
    axis.fill_between(steps, lower, mean + 2 * standard_error, color=color, alpha=0.2, lw=0)


def regime_figure(results, path, title: str) -> None:
    """`results`: a list of `RegimeResult`, one column each."""
    fig, axes = plt.subplots(2, len(results), figsize=(4.2 * len(results), 7.0), squeeze=False)
    for column, result in enumerate(results):
        curves, bounds = result.curves, result.bounds
        exponential = result.regime.kind.endswith("interpolation")
        # A log axis has no k = 0: drop that checkpoint rather than move it.
        shown = slice(None) if exponential else slice(1, None)
        steps = curves.steps[shown]
        top, bottom = axes[0, column], axes[1, column]
        _band(top, steps, curves.suboptimality[shown], curves.suboptimality_se[shown], "C0", "F(x_k) − F(x*)")
        top.plot(steps, result.suboptimality_bound[shown], "k--", lw=1.2, label=f"(L/2)·{bounds.iterate_certificate}")
        _band(bottom, steps, curves.jacobian_error[shown], curves.jacobian_error_se[shown], "C3", "E‖J_k − J*‖²_F")
        bottom.plot(steps, bounds.jacobian[shown], "k--", lw=1.2, label=bounds.jacobian_certificate)
        for name, values in bounds.jacobian_alternatives.items():
            bottom.plot(steps, values[shown], "k:", lw=1.2, label=name)
        if exponential:
            bottom.axhline(result.floors["jacobian_error"], color="0.5", ls=":", lw=1, label="float64 resolution")
        for axis in (top, bottom):
            axis.set_yscale("log")
            if not exponential:
                axis.set_xscale("log")
            axis.grid(True, which="major", alpha=0.3)
            axis.legend(fontsize=7, loc="lower left")
            axis.set_xlabel("k")
        verdict = "pass" if result.passed else "FAIL"
        top.set_title(f"{result.regime.name}\n{result.problem_name.split('(')[0]} · {verdict}", fontsize=10)
    axes[0, 0].set_ylabel("suboptimality (mean over seeds)")
    axes[1, 0].set_ylabel("derivative error (mean over seeds)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sweep_figure(sweep: dict, path) -> None:
    """Plateaus against the step size, log–log, with the bound's plateau."""
    fig, axis = plt.subplots(figsize=(5.5, 4.2))
    sizes = np.asarray(sweep["step_sizes"])
    for quantity, color in (("iterate", "C0"), ("jacobian", "C3")):
        slope = sweep[f"{quantity}_plateau_slope"]
        axis.errorbar(sizes, sweep[f"{quantity}_plateau"], yerr=2 * np.asarray(sweep[f"{quantity}_plateau_se"]),
                      fmt="o-", color=color, label=f"{quantity} plateau (slope {slope[1]:.2f} [{slope[0]:.2f}, {slope[2]:.2f}])")
        axis.plot(sizes, sweep[f"{quantity}_plateau_bound"], "--", color=color, lw=1, label=f"{quantity} bound at K")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("step size α")
    axis.set_ylabel("mean squared error at the plateau")
    axis.set_title("Constant steps: the noise ball scales with α")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _model_grid(count: int):
    columns = min(3, count)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat[count:]:
        axis.set_visible(False)
    return fig, axes.flat


ESTIMATOR_COLORS = {"Score": "C0", "Reparam": "C1", "LYY18": "C2", "Fixed": "C3", "DSGD": "C4"}


def dsgd_elbo(document: dict, path) -> None:
    """ELBO along training, one panel per model; Fixed and DSGD at the reference η only."""
    models = document["traces"]
    fig, axes = _model_grid(len(models))
    for axis, (name, traces) in zip(axes, models.items()):
        for key, trace in traces.items():
            if "@" in key and not key.endswith("@0.14"):
                continue
            axis.plot(trace["steps"], trace["elbo"], lw=1.4, label=key, color=ESTIMATOR_COLORS[key.split("@")[0]])
        axis.set_title(f"{name} (ℓ = {document['models'][name]['nesting_depth']})")
        axis.set_xlabel("iteration")
        axis.set_ylabel("crisp ELBO")
        values = np.abs(np.concatenate([np.asarray(t["elbo"]) for t in traces.values()]))
        if values.max() > 100 * max(values.min(), 10.0):  # spans decades: a signed log axis
            axis.set_yscale("symlog", linthresh=10.0)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dsgd_variance(document: dict, path) -> None:
    """Variance of the smoothed estimator against η, with the fitted slope and −ℓ."""
    studies = document["variance_vs_eta"]
    fig, axes = _model_grid(len(studies))
    for axis, (name, study) in zip(axes, studies.items()):
        for part, color, label in ((study, "C0", "asymptotic window"), (study["paper_grid"], "C1", "paper's grid")):
            eta, variance = np.asarray(part["eta"]), np.asarray(part["avg_variance"])
            axis.errorbar(eta, variance, yerr=2 * np.asarray(part["avg_variance_se"]), fmt="o", color=color,
                          ms=4, label=f"{label}: slope {part['fitted_slope'][1]:.2f}")
        eta = np.asarray(study["eta"])
        anchor = np.asarray(study["avg_variance"])[-1]
        depth = -study["bound_slope"]
        axis.plot(eta, anchor * (eta / eta[-1]) ** (-depth), "k--", lw=1.0, label=f"η^(−{depth}) (bound's rate)")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("η")
        axis.set_ylabel("mean component variance")
        axis.set_title(name)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def smoothing_heatmap(document: dict, path) -> None:
    """`log₁₀` of the variance relative to `none/plain/mc` of the same noise: one panel per
    noise, tasks × strategies (covariate/antithetic/sampling); blank where not applicable."""
    tasks = list(document)
    names = [name for results in document.values() for name in results]
    noises = list(dict.fromkeys(name.split("/")[0] for name in names))
    strategies = list(dict.fromkeys(name.split("/", 1)[1] for name in names))
    fig, axes = plt.subplots(len(noises), 1, figsize=(0.34 * len(strategies) + 2.5, 0.42 * len(tasks) * len(noises)
                                                      + 1.4 * len(noises) + 0.6), squeeze=False)
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
        fig.colorbar(image, ax=axis, fraction=0.02, pad=0.01)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""Statistical efficiency: the variance of the derivative error's estimate times the seconds it took.

What a user buys with compute is a standard error on `E‖J_K − J*‖²_F`. For each engine this
script measures, in one run, the work-normalised variance `SE² × seconds` of the
derivative error at the last checkpoint (`SE` its standard error over seeds) and its ratio
to the full-Jacobian engine's:

- **full**: `rates.error_curves` carrying the whole Jacobian (p products per step);
- **sketched**: `jacobian_probes="auto"`, m random Rademacher probes per seed with m from
  `rates.probes.default_probe_count(p)`;
- **fixed m**: the sketch at a few fixed m, to show where the chosen one sits;
- **hand-written baseline**: `vmap` of `jacfwd` through `lax.scan` (`error_curves.py`),
  whose estimate is the full engine's (checked to 1e-9), so its variance is the same.

Problem: `weighted_ridge`, n = 1000, d = p ∈ {64, 256}, batch size 1, constant step
1/(2L), K = 5,000 steps, 32 checkpoints. Seconds are the best of `--repeats` interleaved
calls after compilation. The variances are sample variances over the S seeds (relative
standard error about √(2/S): 9% at S = 256), so ratios move by about ±15% between runs.

Targets: sketched ÷ full at most 0.6 at p = 64 and at most 0.3 at p = 256.

Usage: python benchmarks/efficiency.py [--dims 64 256] [--seeds 256] [--steps 5000]
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)  # a script sets float64; the library leaves it to its caller
import numpy as np
from _timing import interleaved_best, machine
from error_curves import hand_written_baseline

import problems
from rates import probes as rate_probes
from rates.curves import seed_statistics

FIXED_PROBES = (4, 16)
TARGETS = {64: 0.6, 256: 0.3}


def measure(dim: int, num_seeds: int, num_steps: int, num_checkpoints: int, repeats: int, fixed: tuple[int, ...],
            with_baseline: bool) -> dict:
    problem = problems.weighted_ridge(1000, dim, seed=0)
    theta = problem.theta0
    alpha = 0.5 / float(problem.constants(theta).L)
    key = jax.random.key(0)
    options = dict(step_size=alpha, num_steps=num_steps, num_seeds=num_seeds, key=key,
                   num_checkpoints=num_checkpoints)

    def run(probes):
        return seed_statistics(problem, theta, jacobian_probes=probes, **options)

    count = rate_probes.default_probe_count(dim)
    runs = {"full": None, "sketched (auto)": count} | {f"m = {m}": m for m in fixed if m != count and m < dim}
    statistics = {name: run(probes) for name, probes in runs.items()}
    engines = {name: (lambda probes=probes: run(probes).values) for name, probes in runs.items()}
    full = statistics["full"]
    if with_baseline:
        # The baseline returns only J_K: its (S, C, d, p) Jacobians at every checkpoint
        # would take 4 GiB at p = 256 (the others reduce them as they go).
        baseline = hand_written_baseline(problem, theta, alpha, key, num_seeds, np.array([num_steps]))
        _, jacobians = baseline()
        jac_star = np.asarray(problem.solution_jacobian(theta))
        per_seed = np.sum((np.asarray(jacobians[:, -1]) - jac_star) ** 2, axis=(-2, -1))
        np.testing.assert_allclose(per_seed, full.statistic("jacobian_error")[:, -1], rtol=1e-9)
        del jacobians
        engines["hand-written baseline"] = lambda: baseline()[1]
        statistics["hand-written baseline"] = full   # the same estimates, checked above
    seconds = interleaved_best(engines, repeats)

    mean = float(full.curves().jacobian_error[-1])
    # σ_s² from the full Jacobian itself; σ_p² from the spread of each seed's own probes.
    seed_variance = float(np.var(full.statistic("jacobian_error")[:, -1], ddof=1))
    sketched = [s for s in statistics.values() if s.probes is not None and s.probes.count > 1]
    probe_variance = float(np.mean([np.mean(s.probe_variance[:, -1]) for s in sketched]))
    rows = {}
    for name, seconds_ in seconds.items():
        se_sq = float(np.var(statistics[name].statistic("jacobian_error")[:, -1], ddof=1)) / num_seeds
        rows[name] = {"seconds": seconds_, "se_sq": se_sq, "work": se_sq * seconds_}
    return {"dim": dim, "count": count, "mean": mean, "rows": rows,
            "seed_rel_var": seed_variance / mean**2, "probe_rel_var": probe_variance / mean**2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--checkpoints", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--probes", type=int, nargs="*", default=list(FIXED_PROBES), help="fixed m to time as well")
    parser.add_argument("--no-baseline", action="store_true", help="skip the hand-written baseline")
    args = parser.parse_args()
    print(f"efficiency: weighted_ridge n = 1000, d = p ∈ {args.dims}, S = {args.seeds} seeds, K = {args.steps} "
          f"steps, batch 1, step 1/(2L); auto: m = default_probe_count(p) with c = {rate_probes.STEP_COST:g}, "
          f"ρ = {rate_probes.NOISE_RATIO_PER_ROOT_P:g}·√p")
    print(machine())
    for dim in args.dims:
        start = time.perf_counter()
        result = measure(dim, args.seeds, args.steps, args.checkpoints, args.repeats, tuple(args.probes),
                         not args.no_baseline)
        full_work = result["rows"]["full"]["work"]
        rho = result["probe_rel_var"] / result["seed_rel_var"]
        print(f"\nd = p = {dim}: E‖J_K − J*‖²_F = {result['mean']:.4g}; relative variances: seeds "
              f"{result['seed_rel_var']:.2g}, one probe {result['probe_rel_var']:.2g} (ρ = {rho:.1f}, best m for it: "
              f"{rate_probes.default_probe_count(dim, noise_ratio=rho)}); auto chose m = {result['count'] or 'full'}"
              f"  ({time.perf_counter() - start:.0f} s)")
        print(f"  {'engine':24s}{'seconds':>10s}{'SE²':>12s}{'SE²×s':>12s}{'÷ full':>10s}")
        for name, row in result["rows"].items():
            print(f"  {name:24s}{row['seconds']:10.3f}{row['se_sq']:12.3g}{row['work']:12.3g}"
                  f"{row['work'] / full_work:10.2f}")
        ratio = result["rows"]["sketched (auto)"]["work"] / full_work
        print(f"RESULT sketched/full work-normalised variance at p = {dim} = {ratio:.3f} "
              f"(m = {result['count'] or 'full'}; target ≤ {TARGETS.get(dim, float('nan'))})")


if __name__ == "__main__":
    main()

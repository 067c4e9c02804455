"""Time `rates.exact_curves` at d = p = 20 against the Monte Carlo it replaces, in one run.

Problems (n = 200, d = 20, batch size 1, K = 100,000 steps, 32 log-spaced checkpoints,
constant step 1/(2L), float64):

- `least_squares(200, 20, param_dim=20)`: no coupling (the Hessians do not depend on θ),
  so the recursion carries the two d×d moments P and Q.
- `weighted_ridge(200, 20)` (θ ∈ R²⁰): coupling ∂θ∇²f ≠ 0, so the recursion also carries
  the p crossed moments Cⱼ, (p + 2)·d² numbers.

For each: `exact_curves` on its first call (compilation included, the figure of the target)
and the best of `--repeats` later calls; the baseline in the same run is `rates.error_curves`
with the same K on the same problem and S = `--seeds` seeds (64: a curve whose relative
standard error is still ~1/√64 at the end), timed the same way. The script checks that the
Monte Carlo curves agree with the exact ones (every |z| ≤ 5 where the seeds differ), prints
the relative standard error that S seeds reach at k = K, and how many seeds (and seconds of
`error_curves`, linear in S) a relative standard error of 0.1% would take.

Target: `exact_curves` at d = p = 20, n = 200, K = 1e5 under 60 s, compilation included.

Usage: python benchmarks/exact_curves.py [--quick] [--steps 100000] [--seeds 64] [--repeats 1]
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)  # a script sets float64; the library leaves it to its caller
import numpy as np
from _timing import best_time, machine

import problems
import rates
from rates.curves import STATISTICS

PROBLEMS = ("least_squares", "weighted_ridge")


def build(name: str, n: int, d: int):
    if name == "least_squares":
        return problems.least_squares(n, d, param_dim=d, seed=0)
    return problems.weighted_ridge(n, d, seed=0)


def largest_z(monte_carlo, exact) -> float:
    """The largest |MC mean − exact| / standard error over the checkpoints and statistics where
    the seeds differ. Where every seed has the same value (k = 0; the derivative of weighted
    ridge at k = 1, since ∂θ∇f = diag(x₀) = 0) the standard error is rounding (~1e-16 relative)
    and the mean must equal the exact value to 1e-9 relative instead (asserted)."""
    largest = 0.0
    for name in STATISTICS:
        mean, se, claimed = (getattr(monte_carlo, name), getattr(monte_carlo, f"{name}_se"), getattr(exact, name))
        deterministic = se <= 1e-12 * np.abs(mean)
        np.testing.assert_allclose(mean[deterministic], claimed[deterministic], rtol=1e-9, err_msg=name)
        largest = max(largest, float(np.max(np.abs(mean - claimed)[~deterministic] / se[~deterministic])))
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--checkpoints", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="timed calls after the first (at least 1)")
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    parser.add_argument("--quick", action="store_true", help="K = 20,000 steps")
    args = parser.parse_args()
    if args.quick:
        args.steps = 20_000
    d, n, K, S = args.dim, args.samples, args.steps, args.seeds
    print(f"exact_curves: d = p = {d}, n = {n}, K = {K:,} steps, {args.checkpoints} checkpoints, batch 1, "
          f"constant step 1/(2L); baseline error_curves with S = {S} seeds")
    print(machine(), "\n")

    repeats = max(args.repeats, 1)
    print(f"{'':16s}{'what':>14s}{'compile+run s':>15s}{'÷ MC':>8s}{'run s':>10s}{'÷ MC':>8s}   notes")
    first_seconds = {}
    for name in args.problems:
        problem = build(name, n, d)
        alpha = 0.5 / float(problem.smoothness())
        options = dict(step_size=alpha, num_steps=K, num_checkpoints=args.checkpoints)

        def exact(problem=problem, options=options):
            return rates.exact_curves(problem, **options)

        def monte_carlo(problem=problem, options=options):
            return rates.error_curves(problem, num_seeds=S, key=jax.random.key(0), **options)

        exact_first, exact_best = best_time(exact, repeats)
        mc_first, mc_best = best_time(monte_carlo, repeats)
        first_seconds[name] = exact_first
        exact_curves, mc_curves = exact(), monte_carlo()
        relative_se = max(float(getattr(mc_curves, f"{s}_se")[-1] / getattr(mc_curves, s)[-1]) for s in STATISTICS)
        z = largest_z(mc_curves, exact_curves)
        assert z <= 5, f"Monte Carlo disagrees with exact_curves: |z| = {z:.2f}"
        # Seeds for a relative standard error of 0.1% at k = K, and their run time (linear in S).
        needed = S * (relative_se / 1e-3) ** 2
        print(f"{name:16s}{'exact_curves':>14s}{exact_first:15.2f}{exact_first / mc_first:8.2f}{exact_best:10.2f}"
              f"{exact_best / mc_best:8.2f}   coupled: {rates.exact.affine_dynamics(problem).coupled}")
        print(f"{'':16s}{'error_curves':>14s}{mc_first:15.2f}{1:8.2f}{mc_best:10.2f}{1:8.2f}   "
              f"relative s.e. at k = K: {relative_se:.3f} (1/√S = {1 / np.sqrt(S):.3f}); "
              f"largest |z| against exact: {z:.2f}", flush=True)
        needed_seconds = mc_best * needed / S
        print(f"{'':30s}0.1% relative s.e. at k = K would take S ≈ {needed:,.0f} seeds, ≈ {needed_seconds:,.0f} s "
              f"of error_curves ({needed_seconds / exact_best:,.0f}× exact_curves)", flush=True)

    size = f"d = p = {d}, n = {n}, K = {K:,}"
    print("\nRESULT " + "; ".join(f"exact_curves {name} at {size} = {seconds:.2f} s"
                                  for name, seconds in first_seconds.items()))


if __name__ == "__main__":
    main()

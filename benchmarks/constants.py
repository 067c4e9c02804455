"""Time `Problem.constants()` at d = 1,000, against the dense method it replaced.

1. Scale: every generator at d = 1,000, n = 2,000 (quadratic with p = 2; `from_loss` wraps a
   log-cosh ridge loss on the ridge data). For each, seconds to build the problem, then
   `constants()` on its first call (compilation included) and the best of `--repeats` later
   calls, and the process's peak RSS afterwards. Target: ridge and weighted ridge under 10 s,
   compilation included.
2. Baseline, measured in the same run at d = 200, n = 400 (where it finishes quickly): the
   former computation, `L` by a dense `eigvalsh` of `aaᵀ + diag(w)` per sample and `σ_J²` by
   `jacfwd` through each per-sample gradient, against `constants()` of the same problem,
   after checking that both give the same constants. Best of `--repeats`, interleaved.

Usage: python benchmarks/constants.py [--quick] [--dim 1000] [--samples 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import functools
import resource
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
from _timing import best_time, interleaved_best, machine

import problems
from problems.strategies import log_cosh_ridge_loss

GENERATORS = ("ridge", "weighted_ridge", "least_squares", "logistic", "quadratic", "from_loss")


def build(name: str, n: int, d: int):
    if name == "ridge":
        return problems.ridge(n, d, seed=0)
    if name == "weighted_ridge":
        return problems.weighted_ridge(n, d, seed=0)
    if name == "least_squares":
        return problems.least_squares(n, d, seed=0)
    if name == "logistic":
        return problems.logistic(n, d, seed=0)
    if name == "quadratic":
        return problems.quadratic(d, 2, n_samples=n, seed=0)
    base = problems.ridge(n, d, seed=0)
    return problems.from_loss(log_cosh_ridge_loss, base.data, base.theta0, dim=d)


@jax.jit
def dense_constants(problem, theta):
    """μ, L, σ², σ_J² of a ridge problem as computed before: a d×d eigendecomposition per
    sample for L (O(n·d³)), and `jacfwd` of each per-sample gradient moved along J* for σ_J²."""
    penalty = problem._penalty(theta)
    x_star, jac_star = problem._solution(theta), problem._solution_jacobian(theta)
    per_sample_max = jax.vmap(lambda a: jnp.linalg.eigvalsh(jnp.outer(a, a) + jnp.diag(penalty))[-1])
    grad_x = jax.grad(problem.per_sample_loss)

    def noise(sample):
        def along_solution(theta_):
            return grad_x(x_star + jac_star @ (theta_ - theta), theta_, sample)

        return jnp.sum(grad_x(x_star, theta, sample) ** 2), jnp.sum(jax.jacfwd(along_solution)(theta) ** 2)

    grad_sq, jac_sq = jax.vmap(noise)(problem.data)
    return (jnp.linalg.eigvalsh(problem._hessian(theta))[0], jnp.max(per_sample_max(problem.data[0])),
            jnp.mean(grad_sq), jnp.mean(jac_sq))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale(names, n: int, d: int, repeats: int) -> dict[str, float]:
    print(f"{'':16s}{'build s':>10s}{'compile+run s':>15s}{'run s':>10s}   constants")
    first_seconds = {}
    for name in names:
        start = time.perf_counter()
        problem = build(name, n, d)
        jax.block_until_ready(problem.theta0)
        built = time.perf_counter() - start
        first, best = best_time(problem.constants, repeats)
        first_seconds[name] = first
        print(f"{name:16s}{built:10.2f}{first:15.2f}{best:10.2f}   {problem.constants()!r}", flush=True)
    print(f"peak RSS of the process: {peak_rss_mib():.0f} MiB")
    return first_seconds


def baseline(names, n: int, d: int, repeats: int) -> dict[str, float]:
    print(f"{'':16s}{'dense s':>10s}{'constants() s':>15s}{'ratio':>10s}   "
          "largest relative difference (μ, L, σ², σ_J²)")
    ratios = {}
    for name in names:
        problem = build(name, n, d)
        theta = problem.theta0
        ours = problem.constants(theta)
        theirs = dense_constants(problem, theta)
        values = (ours.mu, ours.L, ours.sigma2, ours.sigma2_jac)
        difference = max(abs(float(a) - float(b)) / abs(float(b)) for a, b in zip(values, theirs))
        times = interleaved_best(
            {"dense": functools.partial(dense_constants, problem, theta),
             "ours": functools.partial(problem.constants, theta)}, repeats
        )
        ratios[name] = times["dense"] / times["ours"]
        print(f"{name:16s}{times['dense']:10.3f}{times['ours']:15.3f}{ratios[name]:10.1f}   {difference:.1e}",
              flush=True)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--baseline-dim", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--generators", nargs="+", choices=GENERATORS, default=list(GENERATORS))
    parser.add_argument("--quick", action="store_true", help="ridge and weighted ridge only, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.generators, args.repeats = ["ridge", "weighted_ridge"], 1
    d, n = args.dim, args.samples
    print(f"constants: Problem.constants() at d = {d:,}, n = {n:,}; baseline at d = {args.baseline_dim}, "
          f"n = {2 * args.baseline_dim}; float64")
    print(machine(), "\n")

    first = scale(args.generators, n, d, args.repeats)
    print()
    ratios = baseline([g for g in ("ridge", "weighted_ridge") if g in args.generators],
                      2 * args.baseline_dim, args.baseline_dim, max(args.repeats, 3))
    size = f"d = {d:,}, n = {n:,}"
    print("\nRESULT " + "; ".join(f"constants() {name} at {size} = {first[name]:.2f} s"
                                   for name in ("ridge", "weighted_ridge") if name in first))
    print("RESULT " + "; ".join(f"dense {name} / constants() at d = {args.baseline_dim} = {ratio:.2f}"
                                for name, ratio in ratios.items()))


if __name__ == "__main__":
    main()

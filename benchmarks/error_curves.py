"""Time `rates.error_curves` against a hand-written JAX baseline and a Python loop, in one run.

Problem: `weighted_ridge` with d = p = 64 (n = 1000), batch size 1, S = 256 seeds,
K = 5,000 steps, 32 log-spaced checkpoints, constant step 1/(2L), float64.

- **Hand-written baseline**: `vmap` over seeds of `jacfwd` through a `lax.scan` over the
  checkpoint segments (a `fori_loop` of SGD steps inside each) that returns the iterates
  at the checkpoints; it returns iterates and Jacobians, nothing else.
- **`rates.error_curves`** does more: from the same minibatches it reduces the iterates and
  Jacobians at every checkpoint to three statistics and their standard errors over seeds.
  Before anything is timed, its curves are checked against errors computed from the
  baseline's output (relative 1e-9).
- **Python loop**: a loop over steps calling `jax.grad` (eager, and jitted), for one seed and
  `--loop-steps` steps, extrapolated to S·K steps. It computes the iterates only, so the
  ratio understates what the loop would cost to produce the same curves.

Prints seconds (best of `--repeats`, calls interleaved) and the ratios
error_curves/baseline (target ≤ 1.0) and loop/error_curves (target ≥ 1000).

Usage: python benchmarks/error_curves.py [--seeds 256] [--steps 5000] [--loop-steps 300]
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)  # a script sets float64; the library leaves it to its caller
import jax.numpy as jnp
import numpy as np
from _timing import interleaved_best, machine
from jax import lax

import problems
import rates
from rates.curves import checkpoints


def hand_written_baseline(problem, theta, alpha, key, num_seeds, steps):
    """Iterates `(S, C, d)` and Jacobians `(S, C, d, p)` at the checkpoints `steps`."""
    features, targets = problem.data
    segment_lengths = jnp.asarray(np.diff(steps, prepend=0))

    def trajectory(theta, key):
        def sgd(k, x):
            index = problems.uniform_indices(jax.random.fold_in(key, k), 1, features.shape[0])
            a, y = features[index], targets[index]
            gradient = jax.grad(lambda x: jnp.mean(0.5 * (a @ x - y) ** 2) + 0.5 * jnp.sum(theta * x**2))(x)
            return x - alpha * gradient

        def segment(carry, length):
            x, start = carry
            x = lax.fori_loop(start, start + length, sgd, x)
            return (x, start + length), x

        iterates = lax.scan(segment, (jnp.zeros(features.shape[1]), 0), segment_lengths)[1]
        return iterates, iterates

    @jax.jit
    def run(theta, key):
        keys = jax.random.split(key, num_seeds)
        jacobians, iterates = jax.vmap(lambda k: jax.jacfwd(trajectory, has_aux=True)(theta, k))(keys)
        return iterates, jacobians

    return lambda: run(theta, key)


def python_loop_seconds(problem, theta, alpha, key, gradient, num_steps, total_steps):
    """Seconds of `num_steps` Python-loop SGD steps with `gradient`, scaled to `total_steps`."""
    x = jnp.zeros(problem.dim)
    start = time.perf_counter()
    for k in range(num_steps):
        batch = problem.sample(jax.random.fold_in(key, k), 1)
        x = x - alpha * gradient(x, theta, batch)
    jax.block_until_ready(x)
    return (time.perf_counter() - start) / num_steps * total_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--checkpoints", type=int, default=32)
    parser.add_argument("--loop-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    problem = problems.weighted_ridge(1000, args.dim, seed=0)
    theta = problem.theta0
    alpha = 0.5 / float(problem.constants(theta).L)
    key = jax.random.key(0)
    steps = checkpoints(args.steps, args.checkpoints)
    print(f"error_curves: weighted_ridge d = p = {args.dim}, S = {args.seeds} seeds, K = {args.steps} steps, "
          f"{len(steps)} checkpoints, batch 1")
    print(machine(), "\n")

    baseline = hand_written_baseline(problem, theta, alpha, key, args.seeds, steps)

    def engine():
        return rates.error_curves(problem, theta, step_size=alpha, num_steps=args.steps, num_seeds=args.seeds,
                                  key=key, num_checkpoints=args.checkpoints)

    iterates, jacobians = baseline()
    curves = engine()
    x_star, jac_star = problem.solution(theta), problem.solution_jacobian(theta)
    np.testing.assert_allclose(curves.iterate_error, np.mean(np.sum((iterates - x_star) ** 2, -1), 0), rtol=1e-9)
    np.testing.assert_allclose(curves.jacobian_error, np.mean(np.sum((jacobians - jac_star) ** 2, (-2, -1)), 0),
                               rtol=1e-9)
    del iterates, jacobians

    times = interleaved_best({"baseline": baseline, "error_curves": engine}, args.repeats)
    total = args.seeds * args.steps
    python_loop_seconds(problem, theta, alpha, key, jax.jit(jax.grad(problem.loss)), 3, total)  # compile
    jitted_loop = python_loop_seconds(problem, theta, alpha, key, jax.jit(jax.grad(problem.loss)), args.loop_steps,
                                      total)
    eager_loop = python_loop_seconds(problem, theta, alpha, key, jax.grad(problem.loss), args.loop_steps, total)

    ratio = times["error_curves"] / times["baseline"]
    print(f"{'':58s}{'run s':>10s}{'ratio':>10s}")
    print(f"{'hand-written baseline (vmap of jacfwd through lax.scan)':58s}{times['baseline']:10.2f}{1:10.2f}")
    print(f"{'rates.error_curves (target ratio ≤ 1.0)':58s}{times['error_curves']:10.2f}{ratio:10.2f}")
    print(f"\nPython loop over {total:,} steps, extrapolated from {args.loop_steps}, iterates only:")
    for name, seconds in (("jitted jax.grad", jitted_loop), ("eager jax.grad", eager_loop)):
        print(f"  {name:16s}{seconds:10.0f} s, {seconds / times['error_curves']:8,.0f}× the time of error_curves "
              f"(target ≥ 1000)")
    print(f"\nRESULT error_curves/baseline = {ratio:.3f}; jitted loop/error_curves = "
          f"{jitted_loop / times['error_curves']:.0f}; "
          f"eager loop/error_curves = {eager_loop / times['error_curves']:.0f}")


if __name__ == "__main__":
    main()

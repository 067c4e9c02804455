"""Time derivatives through unrolled SGD, against baselines measured in the same run.

Problem: `weighted_ridge` with d = p = 64 (n = 1000), batch size 1, S = 256 seeds,
K = 5,000 steps, constant step 1/(2L), float64. Prints wall-clock seconds (after
compilation, best of `--repeats`) and ratios:

- primal SGD alone (vmap over seeds of a `lax.scan`), the reference;
- forward mode (`derivatives.unrolled(mode="forward")`), p tangents per seed;
- the Hessian-free tangent recursion (`mode="tangent"`, the method of `rates.error_curves`);
- the explicit recursion (`mode="recursion"`), a d×d Hessian per step.

The comparison with a Python loop of `jax.grad` calls is in `error_curves.py`.

Usage: python benchmarks/unrolled.py [--seeds 256] [--steps 5000] [--skip-recursion]
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)  # a script sets float64; the library leaves it to its caller
import jax.numpy as jnp
from _timing import best_time, machine

import derivatives
import problems
from derivatives.sgd import minibatch, sgd_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-recursion", action="store_true")
    args = parser.parse_args()

    problem = problems.weighted_ridge(1000, args.dim, seed=0)
    theta = problem.theta0
    alpha = 0.5 / float(problem.constants(theta).L)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    print(f"unrolled: weighted_ridge d = p = {args.dim}, S = {args.seeds} seeds, K = {args.steps} steps, batch 1, "
          f"float64")
    print(machine(), "\n")

    @jax.jit
    def primal(keys):
        def one_seed(key):
            def step(x, k):
                return sgd_step(problem, theta, minibatch(problem, key, k, 1), x, alpha), None
            return jax.lax.scan(step, jnp.zeros(problem.dim), jnp.arange(args.steps))[0]
        return jax.vmap(one_seed)(keys)

    def unrolled(mode):
        run = jax.jit(jax.vmap(lambda k: derivatives.unrolled(problem, theta, k, step_size=alpha,
                                                               num_steps=args.steps, mode=mode)))
        return lambda: run(keys)

    rows = [("primal SGD (reference)", best_time(lambda: primal(keys), args.repeats))]
    rows.append(("forward mode", best_time(unrolled("forward"), args.repeats)))
    rows.append(("tangent recursion", best_time(unrolled("tangent"), args.repeats)))
    if not args.skip_recursion:
        rows.append(("explicit recursion", best_time(unrolled("recursion"), args.repeats)))

    reference = rows[0][1][1]
    print(f"{'':34s}{'compile+run s':>14s}{'run s':>10s}{'÷ primal':>10s}")
    for name, (first, best) in rows:
        print(f"{name:34s}{first:14.2f}{best:10.2f}{best / reference:10.2f}")


if __name__ == "__main__":
    main()

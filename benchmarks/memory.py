"""Peak memory of `rates.error_curves` at K = 2,000 and K = 20,000 steps, each in its own process.

Problem: `weighted_ridge`, d = p = 64 (n = 1000), S = 256 seeds, batch size 1, 32
checkpoints. Each child process builds the problem, records its resident set size (RSS),
runs `error_curves` once, and reports

- its peak RSS (`getrusage`, which covers compilation and every buffer of the run),
- the growth of the peak over the RSS before the call,
- XLA's allocation plan for the computation (`rates.curves.compiled_memory`).

The ratio K = 20,000 / K = 2,000 of each must stay within 1.2. As a control, the same
processes run a scan that keeps every iterate (`vmap` over seeds of a `lax.scan` whose
outputs are all K iterates, without Jacobians): its memory grows with K, which shows the
measurement can see growth.

Usage: python benchmarks/memory.py [--seeds 256] [--dim 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

STEPS = (2_000, 20_000)


def child(kind: str, num_steps: int, num_seeds: int, dim: int) -> dict:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import problems
    import rates
    from derivatives.sgd import minibatch, sgd_step
    from rates.curves import compiled_memory

    problem = problems.weighted_ridge(1000, dim, seed=0)
    alpha = 0.5 / float(problem.constants().L)
    options = dict(step_size=alpha, num_steps=num_steps, num_seeds=num_seeds, key=jax.random.key(0))
    if kind == "error_curves":
        planned = compiled_memory(problem, **options)

        def work():
            return rates.error_curves(problem, **options).jacobian_error
    else:
        @jax.jit
        def every_iterate(keys):
            def one_seed(key):
                def step(x, k):
                    x = sgd_step(problem, problem.theta0, minibatch(problem, key, k, 1), x, alpha)
                    return x, x
                return jax.lax.scan(step, jnp.zeros(dim), jnp.arange(num_steps))[1]
            return jax.vmap(one_seed)(keys)

        keys = jax.random.split(jax.random.key(0), num_seeds)
        stats = every_iterate.lower(keys).compile().memory_analysis()
        planned = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes

        def work():
            return every_iterate(keys)[:, -1]

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    jax.block_until_ready(work())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mib": peak / 1024, "growth_mib": (peak - before) / 1024, "planned_mib": planned / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.seeds, args.dim)))
        return

    from _timing import machine

    print(f"memory: weighted_ridge d = p = {args.dim}, S = {args.seeds} seeds, 32 checkpoints, batch 1, "
          f"one process per row")
    print(machine(), "\n")
    print(f"{'':40s}{'K':>8s}{'peak RSS MiB':>14s}{'growth MiB':>12s}{'XLA plan MiB':>14s}")
    ratios = {}
    for kind, label in (("error_curves", "rates.error_curves"), ("every_iterate", "control: scan keeping iterates")):
        rows = []
        for num_steps in STEPS:
            command = [sys.executable, __file__, "--seeds", str(args.seeds), "--dim", str(args.dim),
                       "--child", kind, str(num_steps)]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{label:40s}{num_steps:8,d}{row['peak_mib']:14.0f}{row['growth_mib']:12.0f}"
                  f"{row['planned_mib']:14.1f}", flush=True)
        ratios[kind] = {key: rows[1][key] / rows[0][key] for key in rows[0]}
        print(f"{'':40s}{'ratio':>8s}{ratios[kind]['peak_mib']:14.2f}{ratios[kind]['growth_mib']:12.2f}"
              f"{ratios[kind]['planned_mib']:14.2f}")
    print(f"\nRESULT error_curves peak RSS K = 20,000 / K = 2,000 = {ratios['error_curves']['peak_mib']:.3f} "
          f"(target ≤ 1.2); control = {ratios['every_iterate']['peak_mib']:.2f}")


if __name__ == "__main__":
    main()

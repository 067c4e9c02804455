"""Time per optimisation step of each gradient estimator on the six DSGD benchmark models.

One step is what `rates.dsgd.train` does between logging points: draw 16 single-sample
gradient estimates at θ_k, average them, take an Adam step. Each estimator runs
`--steps` steps inside one compiled `fori_loop` (logging only at the start and the end,
with 2 samples); the figure is the best of `--repeats` runs after compilation, divided by
the number of steps. Ratios are against the score estimator on the same model, measured
in the same run. Fixed (constant η = 0.14) and DSGD (the paper's schedule from η = 0.14)
evaluate the same smoothed program; LYY18 runs where the guards are affine.

Usage: python benchmarks/dsgd.py [--steps 1000] [--repeats 3] [--models temperature walk]
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)  # a script sets float64; the library leaves it to its caller

from _timing import best_time, machine

from experiments.dsgd import PROTOCOL, REFERENCE_ETA, estimator_runs, models
from rates import dsgd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(PROTOCOL), choices=list(PROTOCOL))
    args = parser.parse_args()
    print(f"dsgd: time per Adam step with 16 samples, {args.steps} steps per timed run, best of {args.repeats}")
    print(machine(), "\n")
    print(f"{'model':<12}{'estimator':<10}{'µs / step':>12}{'÷ Score':>10}{'compile s':>11}")
    key = jax.random.key(0)
    for name in args.models:
        program = models()[name]()
        score = None
        for label, estimator, accuracies in estimator_runs(program, [REFERENCE_ETA]):
            accuracy = accuracies[0] if accuracies else None

            def run(program=program, estimator=estimator, accuracy=accuracy):
                return dsgd.train(program, estimator, key=key, accuracy=accuracy, num_steps=args.steps,
                                  log_every=args.steps, num_log_samples=2).theta

            first, best = best_time(run, args.repeats)
            per_step = best / args.steps
            score = per_step if label == "Score" else score
            print(f"{name:<12}{label:<10}{per_step * 1e6:12.1f}{per_step / score:10.2f}{first - best:11.1f}",
                  flush=True)


if __name__ == "__main__":
    main()

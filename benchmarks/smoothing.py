"""Throughput (samples per second) of the black-box smoothing estimators on sorting n = 5.

Task: `sort_permutation` (a 5 × 5 permutation matrix) at `sorting_task(5, 0)`, scale γ =
half the mean gap, as in `python -m rates smoothing`. Each call computes 64 independent
estimates (`vmap` over keys) of 1,024 samples each; the figure is samples per second,
best of `--repeats` calls after compilation (calls interleaved).

The baseline is the plainest hand-written estimator: `ε ~ N(0, I)` from
`jax.random.normal`, `Ĵ = (1/N) Σ f(x + γε) ⊗ ε/γ`. Ratios are throughput / baseline
throughput, measured in the same run (above 1 is faster). `derivatives.smoothed_gradient`
draws every density through its quantile function (so that QMC designs apply), which
costs more than a Box–Muller normal.

Usage: python benchmarks/smoothing.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)  # a script sets float64; the library leaves it to its caller
import jax.numpy as jnp
import numpy as np
from _timing import interleaved_best, machine

import derivatives
from experiments.smoothing import TASKS

ESTIMATES = 64
SAMPLES = 1024

CONFIGURATIONS = (  # (noise, covariate, sampling, antithetic, host)
    ("gaussian", "none", "mc", False, False),
    ("gaussian", "value", "mc", False, False),
    ("gaussian", "loo", "mc", False, False),
    ("gaussian", "none", "mc", True, False),
    ("gaussian", "none", "qmc", False, False),
    ("gaussian", "loo", "rqmc", False, False),
    ("gaussian", "none", "cartesian", False, False),
    ("cauchy", "none", "mc", False, False),
    ("gumbel", "none", "mc", False, False),
    ("gaussian", "none", "mc", False, True),
)


def host_sort(batch):
    """`sort_permutation` in NumPy for a batch `(B, n)`: row i of each matrix is the
    indicator of the i-th largest entry."""
    order = np.argsort(-batch, axis=1, kind="stable")
    return (order[:, :, None] == np.arange(batch.shape[1])).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    task = TASKS["sort5"]()
    keys = jax.random.split(jax.random.key(0), ESTIMATES)
    print(f"smoothing: sort_permutation, n = 5, γ = {task.scale:.3g}, {ESTIMATES} estimates × {SAMPLES} samples "
          f"per call, best of {args.repeats}")
    print(machine(), "\n")

    @jax.jit
    def baseline(keys):
        def one(key):
            epsilon = jax.random.normal(key, (SAMPLES, task.x.size))
            values = jax.vmap(task.f)(task.x + task.scale * epsilon)
            return jnp.einsum("nij,nk->ijk", values, epsilon) / (SAMPLES * task.scale)
        return jax.vmap(one)(keys)

    functions = {"hand-written baseline (gaussian, mc)": lambda: baseline(keys)}
    for noise, covariate, sampling, antithetic, host in CONFIGURATIONS:
        size = 4**5 if sampling == "cartesian" else SAMPLES
        f = host_sort if host else task.f
        estimate = jax.jit(jax.vmap(lambda key, f=f, noise=noise, covariate=covariate, sampling=sampling,
                                    antithetic=antithetic, host=host, size=size: derivatives.smoothed_gradient(
            f, task.x, key, noise, task.scale, size, covariate, sampling, antithetic, host=host)[1]))
        label = (f"{noise}, {covariate}, {sampling}{', antithetic' if antithetic else ''}"
                 f"{', host NumPy' if host else ''}")
        functions[label] = lambda estimate=estimate: estimate(keys)
    # The same key gives the same normal draws only for the baseline; check the estimator
    # of the plain configuration against it in distribution: both estimate one Jacobian.
    plain = np.asarray(functions["gaussian, none, mc"]()).mean(0)
    reference = np.asarray(baseline(keys)).mean(0)
    assert np.max(np.abs(plain - reference)) < 0.25 * np.max(np.abs(reference)), "estimators disagree"

    times = interleaved_best(functions, args.repeats)
    base = ESTIMATES * SAMPLES / times["hand-written baseline (gaussian, mc)"]
    print(f"{'noise, covariate, sampling':<44}{'samples/s':>14}{'÷ baseline':>12}")
    for label, seconds in times.items():
        samples = ESTIMATES * (SAMPLES + (1 if ", value," in label else 0))
        print(f"{label:<44}{samples / seconds:14,.0f}{samples / seconds / base:12.2f}")


if __name__ == "__main__":
    main()

"""Time the gradient estimators on programs written in the expression language against
straightforward JAX implementations of the same log-densities, measured in the same run.

For each model below, the baseline is the log-joint density written directly with
`jax.numpy` (Python loops over time steps unrolled at trace time, `jnp.where` for crisp
ifs, `jax.nn.sigmoid` for smoothed ones), differentiated by the same reparameterisation
code: `vmap` over samples of `grad` of `log p(T_θ(ε)) − log q_θ(T_θ(ε))`. The language
version is `derivatives.gradient_samples(program, θ, key, estimator, n, eta)`. Both are
compiled once; the figure is the best of `--repeats` calls, for a batch of `--samples`
single-sample estimates at θ₀, and the ratio language/baseline (≤ 1 is as fast or
faster). Before timing, the two log-densities are checked to agree at a random point.

Usage: python benchmarks/estimators.py [--samples 16000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import math

import jax

jax.config.update("jax_enable_x64", True)  # a script sets float64; the library leaves it to its caller
import jax.numpy as jnp
import numpy as np

import derivatives
from problems import programs

# The package exports the model functions under the modules' names; the modules hold the data.
temperature_module = importlib.import_module("problems.programs.temperature")
textmsg_module = importlib.import_module("problems.programs.textmsg")
walk_module = importlib.import_module("problems.programs.walk")

from _timing import best_time, machine


def _normal(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - jnp.log(std) - 0.5 * math.log(2 * math.pi)


def _branch(guard, then_, else_, eta):
    if eta is None:
        return jnp.where(guard >= 0, then_, else_)
    weight = jax.nn.sigmoid(guard / eta)
    return weight * then_ + (1 - weight) * else_


def textmsg_log_p(z, eta=None):
    x1, x2, w = z[0], z[1], z[2]
    counts = jnp.asarray(textmsg_module.OBSERVED, jnp.float64)
    thresholds = jnp.asarray(textmsg_module.THRESHOLDS, jnp.float64)
    rate = _branch(w - thresholds, jnp.exp(x1), jnp.exp(x2), eta)
    log_factorial = jax.scipy.special.gammaln(counts + 1.0)
    return (_normal(x1, textmsg_module.MEAN_LN, textmsg_module.SCALE_LN)
            + _normal(x2, textmsg_module.MEAN_LN, textmsg_module.SCALE_LN) + _normal(w, 0.0, 1.0)
            + jnp.sum(counts * jnp.log(rate) - rate - log_factorial))


def temperature_log_p(z, eta=None):
    t, switch = z[:21], z[21:]
    y = jnp.asarray(temperature_module.OBSERVATIONS, jnp.float64)
    total = _normal(t[0], 20.0, 0.001) + jnp.sum(_normal(y, t, 1.0))
    q_previous = 0.0
    for i in range(1, 21):
        upper = _branch(t[i - 1] - 22.0, 1.0, q_previous, eta)
        kappa = _branch(18.0 - t[i - 1], 0.0, upper, eta)
        q = _branch(switch[i - 1] - 0.5, 1.0, 0.0, eta)
        scale = _branch(switch[i - 1] - 0.5, 0.22, 0.2, eta)
        drift = (32.0 - (t[i - 1] + 21.0 * q)) / 15.0
        total += _normal(switch[i - 1], kappa, 0.001) + _normal(t[i], t[i - 1] + drift, scale + 2.0)
        q_previous = q
    return total


def walk_log_p(z, eta=None):
    penalty = walk_module.PENALTY

    def walk(i, position, distance):
        stop = _normal(walk_module.DISTANCE, distance, 1.0)
        if i == 16:
            return _branch(position, penalty, stop, eta)
        step = z[i]
        go_on = _normal(step, 0.0, 1.0) + walk(i + 1, position + step, distance + _branch(step, step, -step, eta))
        return _branch(position, go_on, stop, eta)

    return _normal(z[0], 3.0, 1.0) + walk(1, z[0], 0.0)


BASELINES = {"textmsg": textmsg_log_p, "temperature": temperature_log_p, "walk": walk_log_p}


def baseline_samples(program, log_p, theta, key, num_samples, eta):
    """Reparameterisation (crisp, or smoothed at `eta`) with a hand-written log p."""
    family = program.family
    epsilon = derivatives.base_noise(program, key, num_samples)

    def objective(theta, noise):
        z = family.sample(theta, noise)
        return log_p(z, eta) - family.log_density(theta, z)

    return jax.vmap(jax.grad(objective), (None, 0))(theta, epsilon)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"estimators: {args.samples} single-sample estimates per call, best of {args.repeats}")
    print(machine(), "\n")
    print(f"{'model':<12} {'estimator':<10} {'baseline (s)':>13} {'language (s)':>13} {'ratio':>7}")
    key = jax.random.PRNGKey(0)
    for name, log_p in BASELINES.items():
        program = getattr(programs, name)()
        point = program.family.sample(jnp.asarray(program.theta0), jax.random.normal(key, (program.dim,)))
        for eta in (None, 0.14):
            np.testing.assert_allclose(log_p(point, eta), program.log_p(point, eta), rtol=1e-10)
        theta = jnp.asarray(program.theta0)
        for estimator, eta in (("reparam", None), ("smoothed", 0.14)):
            baseline = jax.jit(functools.partial(baseline_samples, program, log_p, theta, key, args.samples, eta))
            language = jax.jit(functools.partial(derivatives.gradient_samples, program, theta, key, estimator,
                                                 args.samples, eta))
            np.testing.assert_allclose(baseline(), language(), rtol=1e-8, atol=1e-8)
            _, base = best_time(baseline, args.repeats)
            _, ours = best_time(language, args.repeats)
            print(f"{name:<12} {estimator:<10} {base:13.4f} {ours:13.4f} {ours / base:7.2f}", flush=True)


if __name__ == "__main__":
    main()

"""Error curves of SGD iterates and their derivatives, streamed over many seeds.

For S seeds (a `vmap` axis, sharded across devices when there are several) and K
steps, the mean and standard error over seeds of

- `‖x_k − x*‖²`           (`iterate_error`),
- `‖J_k − J*‖²_F`         (`jacobian_error`, `J_k = ∂θ x_k` by forward mode),
- `F(x_k) − F(x*)`        (`suboptimality`),

are recorded at log-spaced checkpoints. Between checkpoints a `fori_loop` runs the
steps, so memory holds S iterates and Jacobians and the C checkpoint statistics,
whatever K is.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, Float, Int

from derivatives._sgd import minibatch, tangent_step
from problems._validation import check_batch_size, check_count
from rates.schedules import as_schedule

STATISTICS = ("iterate_error", "jacobian_error", "suboptimality")


@dataclasses.dataclass(frozen=True)
class Curves:
    """Means over seeds (and their standard errors) at the checkpoints `steps`."""

    steps: Int[np.ndarray, " C"]
    iterate_error: Float[np.ndarray, " C"]
    jacobian_error: Float[np.ndarray, " C"]
    suboptimality: Float[np.ndarray, " C"]
    iterate_error_se: Float[np.ndarray, " C"]
    jacobian_error_se: Float[np.ndarray, " C"]
    suboptimality_se: Float[np.ndarray, " C"]
    num_seeds: int
    batch_size: int | None

    def as_dict(self) -> dict:
        return {
            field.name: (value.tolist() if isinstance(value, np.ndarray) else value)
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }


def checkpoints(num_steps: int, num_checkpoints: int) -> np.ndarray:
    """`0` and about `num_checkpoints − 1` distinct log-spaced steps in `[1, num_steps]`."""
    if num_steps == 0:
        return np.zeros(1, dtype=np.int64)
    spaced = np.unique(np.round(np.geomspace(1, num_steps, max(num_checkpoints - 1, 1))).astype(np.int64))
    return np.concatenate([[0], spaced])


def error_curves(
    problem,
    theta=None,
    *,
    step_size,
    num_steps: int,
    num_seeds: int,
    batch_size: int | None = 1,
    key=None,
    num_checkpoints: int = 32,
    x_init=None,
) -> Curves:
    """Run SGD and its forward-mode derivative from `num_seeds` seeds; return the curves.

    **Arguments:**

    - `problem`: a `problems.Problem`; `theta` defaults to `problem.theta0`.
    - `step_size`: a number, a `rates` schedule or a function `k ↦ α_k`.
    - `num_steps`: K; `num_seeds`: S; `batch_size`: b, or `None` for full batch.
    - `key`: the JAX key (default `jax.random.key(0)`); seed s uses `split(key, S)[s]`,
      the same minibatches as `derivatives.unrolled` with that key.
    - `num_checkpoints`: about how many log-spaced steps to record (k = 0 included).
    - `x_init`: the common starting point (default 0); `J_0 = 0`.

    **Returns:** a `Curves`.
    """
    theta = problem.check_theta(problem.theta0 if theta is None else theta)
    num_steps = check_count(num_steps, "num_steps", minimum=0)
    num_seeds = check_count(num_seeds, "num_seeds", minimum=2)
    check_count(num_checkpoints, "num_checkpoints", minimum=2)
    if batch_size is not None:
        check_batch_size(batch_size)
    schedule = as_schedule(step_size)
    x_init = jnp.zeros(problem.dim) if x_init is None else jnp.asarray(x_init, jnp.float64)
    if x_init.shape != (problem.dim,):
        raise ValueError(f"x_init must have shape ({problem.dim},), got {x_init.shape}")
    keys = _shard_seeds(jax.random.split(jax.random.key(0) if key is None else key, num_seeds))
    steps = checkpoints(num_steps, num_checkpoints)
    segment_lengths = jnp.asarray(np.diff(steps, prepend=0), dtype=jnp.int64)
    means, standard_errors = _curves(problem, theta, keys, schedule, x_init, segment_lengths, batch_size)
    means, standard_errors = np.asarray(means), np.asarray(standard_errors)
    return Curves(
        steps=steps,
        **{name: means[:, i] for i, name in enumerate(STATISTICS)},
        **{f"{name}_se": standard_errors[:, i] for i, name in enumerate(STATISTICS)},
        num_seeds=num_seeds,
        batch_size=batch_size,
    )


def _shard_seeds(keys):
    """Spread the seed axis over all devices when it divides evenly."""
    devices = jax.devices()
    if len(devices) == 1 or keys.shape[0] % len(devices):
        return keys
    mesh = Mesh(np.asarray(devices), ("seeds",))
    return jax.device_put(keys, NamedSharding(mesh, PartitionSpec("seeds")))


@functools.partial(jax.jit, static_argnames=("batch_size",))
def _curves(problem, theta, keys, schedule, x_init, segment_lengths, batch_size):
    x_star = problem.solution(theta)
    jac_star = problem.solution_jacobian(theta)
    value_star = problem.objective(x_star, theta)
    num_seeds = keys.shape[0]

    def advance(state, step):
        def one_seed(key, x, jac):
            batch = minibatch(problem, key, step, batch_size)
            return tangent_step(problem, theta, batch, x, jac, schedule(step))

        return jax.vmap(one_seed)(keys, *state)

    def statistics(x, jac):
        per_seed = jnp.stack(
            [
                jnp.sum((x - x_star) ** 2, axis=1),
                jnp.sum((jac - jac_star) ** 2, axis=(1, 2)),
                jax.vmap(problem.objective, in_axes=(0, None))(x, theta) - value_star,
            ],
            axis=1,
        )
        mean = jnp.mean(per_seed, axis=0)
        standard_error = jnp.std(per_seed, axis=0, ddof=1) / jnp.sqrt(num_seeds)
        return mean, standard_error

    def segment(carry, length):
        state, step = carry
        state = lax.fori_loop(0, length, lambda i, s: advance(s, step + i), state)
        return (state, step + length), statistics(*state)

    x = jnp.broadcast_to(x_init, (num_seeds, problem.dim))
    jac = jnp.zeros((num_seeds, problem.dim, theta.shape[0]))
    _, (means, standard_errors) = lax.scan(segment, ((x, jac), jnp.asarray(0, jnp.int64)), segment_lengths)
    return means, standard_errors

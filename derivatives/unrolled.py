"""Derivatives of SGD iterates with respect to θ, by differentiating through the unrolled loop."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, PRNGKeyArray

from derivatives._sgd import derivative_step, minibatch, sgd_step
from problems._validation import check_batch_size, check_count
from rates.schedules import as_schedule

MODES = ("forward", "reverse", "recursion")


def unrolled(
    problem,
    theta,
    key: PRNGKeyArray,
    *,
    step_size,
    num_steps: int,
    batch_size: int | None = 1,
    mode: str = "forward",
    x_init=None,
) -> tuple[Float[Array, " d"], Float[Array, "d p"]]:
    """Run `num_steps` of minibatch SGD from `x_init` and return `(x_K, ∂θ x_K)`.

    `x_{k+1} = x_k − α_k ∇ₓ f_{B_k}(x_k, θ)` with `B_k` drawn with `fold_in(key, k)`;
    `x_0 = x_init` (default 0) does not depend on θ, so `∂θ x_0 = 0`.

    **Arguments:**

    - `problem`: any object with the `problems.Problem` interface.
    - `theta`: shape `(p,)`. `key`: a JAX PRNG key.
    - `step_size`: a number > 0, a `rates` schedule, or a function `k ↦ α_k`.
    - `num_steps`: K ≥ 0. `batch_size`: minibatch size, or `None` for full-batch
      gradient descent.
    - `mode`:
        - `"forward"`: forward-mode autodiff (`jacfwd`) through a `lax.scan` of SGD steps;
          p tangents ride along, memory O(dp), independent of K.
        - `"reverse"`: reverse-mode autodiff (`jacrev`); the scan stores every iterate
          and minibatch for the backward pass, memory O(K(d + b·|ξ|)). Cheaper than
          forward only when p ≫ d.
        - `"recursion"`: the explicit recursion `J_{k+1} = J_k − α_k(∇²ₓₓf J_k + ∇²ₓθf)`
          at `x_k`, forming the d×d Hessian: O(d²p) per step.

      All three use the same minibatches for the same key.

    **Returns:** `(x_K, J_K)` with shapes `(d,)` and `(d, p)`.

    Works under `jit` and `vmap` (over keys, θ or initial points).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    num_steps = check_count(num_steps, "num_steps", minimum=0)
    if batch_size is not None:
        check_batch_size(batch_size)
    theta = problem.check_theta(theta)
    schedule = as_schedule(step_size)
    x_init = jnp.zeros(problem.dim) if x_init is None else jnp.asarray(x_init, jnp.float64)
    if x_init.shape != (problem.dim,):
        raise ValueError(f"x_init must have shape ({problem.dim},), got {x_init.shape}")
    return _unrolled(problem, theta, key, schedule, x_init, num_steps, batch_size, mode)


@functools.partial(jax.jit, static_argnames=("num_steps", "batch_size", "mode"))
def _unrolled(problem, theta, key, schedule, x_init, num_steps, batch_size, mode):
    if mode == "recursion":
        def step(carry, k):
            x, jac = carry
            batch = minibatch(problem, key, k, batch_size)
            alpha = schedule(k)
            return (sgd_step(problem, theta, batch, x, alpha),
                    derivative_step(problem, theta, batch, x, jac, alpha)), None

        jac_init = jnp.zeros((problem.dim, theta.shape[0]))
        (x, jac), _ = lax.scan(step, (x_init, jac_init), jnp.arange(num_steps))
        return x, jac

    def final_iterate(theta_):
        def step(x, k):
            return sgd_step(problem, theta_, minibatch(problem, key, k, batch_size), x, schedule(k)), None

        x, _ = lax.scan(step, x_init, jnp.arange(num_steps))
        return x, x

    differentiate = jax.jacfwd if mode == "forward" else jax.jacrev
    jac, x = differentiate(final_iterate, has_aux=True)(theta)
    return x, jac

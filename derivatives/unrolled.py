"""Derivatives of SGD iterates with respect to θ, by differentiating through the unrolled loop."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, PRNGKeyArray

from derivatives.sgd import (
    check_run,
    derivative_step,
    divergence_error,
    first_nonfinite_step,
    minibatch,
    sgd_step,
)

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
    - `theta`: shape `(p,)`. `key`: a JAX PRNG key, typed (`jax.random.key`) or legacy
      (`jax.random.PRNGKey`); both give the same minibatches.
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

    **Raises:** `ValueError` for bad arguments (a step size that is not finite and > 0 at
    some step k < K names that step), `TypeError` for a bad key, `DivergenceError` when
    the result is not finite (naming the first non-finite step, α_0 and 2/L); a step above
    2/L warns (`StepSizeWarning`). Values are checked only when concrete.

    Works under `jit` and `vmap` (over keys, θ or initial points).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    theta, key, schedule, x_init = check_run(problem, theta, key, step_size, num_steps, batch_size, x_init)
    x, jac, first_nonfinite = _unrolled(problem, theta, key, schedule, x_init, num_steps, batch_size, mode)
    if not isinstance(x, jax.core.Tracer):
        if int(first_nonfinite) >= 0:
            raise divergence_error(problem, theta, schedule, f"from step k = {int(first_nonfinite)} on")
        if not bool(jnp.all(jnp.isfinite(jac))):
            raise divergence_error(problem, theta, schedule, f"at the last step k = {num_steps}")
    return x, jac


@functools.partial(jax.jit, static_argnames=("num_steps", "batch_size", "mode"))
def _unrolled(problem, theta, key, schedule, x_init, num_steps, batch_size, mode):
    """`(x_K, J_K, k̂)` with k̂ the first step whose iterate is not finite (−1 if none)."""
    no_step = jnp.asarray(-1, jnp.int64)
    if mode == "recursion":
        def step(carry, k):
            x, jac, first = carry
            batch = minibatch(problem, key, k, batch_size)
            alpha = schedule(k)
            x_next = sgd_step(problem, theta, batch, x, alpha)
            return (x_next, derivative_step(problem, theta, batch, x, jac, alpha),
                    first_nonfinite_step(first, k + 1, x_next)), None

        jac_init = jnp.zeros((problem.dim, theta.shape[0]))
        (x, jac, first), _ = lax.scan(step, (x_init, jac_init, no_step), jnp.arange(num_steps))
        return x, jac, first

    def final_iterate(theta_):
        def step(carry, k):
            x, first = carry
            x_next = sgd_step(problem, theta_, minibatch(problem, key, k, batch_size), x, schedule(k))
            return (x_next, first_nonfinite_step(first, k + 1, x_next)), None

        (x, first), _ = lax.scan(step, (x_init, no_step), jnp.arange(num_steps))
        return x, (x, first)

    differentiate = jax.jacfwd if mode == "forward" else jax.jacrev
    jac, (x, first) = differentiate(final_iterate, has_aux=True)(theta)
    return x, jac, first

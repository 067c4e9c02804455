"""Damped Newton's method to machine precision, for the problems without a closed form."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

# Below this Newton decrement (relative to |F|) the full step is taken: backtracking
# on F itself cannot resolve decreases of the order of its rounding error.
_FULL_STEP_DECREMENT = 1e-10
_MIN_STEP = 2.0**-40
# A full step shorter than this relative to ‖x‖ ends the iteration: convergence is then
# quadratic, so what remains is of order (1e-10)² = 1e-20 relative, times the problem's
# nonlinearity, and later steps would only move x by its rounding.
_CONVERGED_STEP = 1e-10


def newton_minimise(
    objective: Callable[[Float[Array, " d"]], Float[Array, ""]],
    x0: Float[Array, " d"],
    num_steps: int = 60,
    hessian: Callable[[Float[Array, " d"]], Float[Array, "d d"]] | None = None,
) -> Float[Array, " d"]:
    """Minimise a smooth strongly convex `objective(x)` from `x0`.

    Each step solves `∇²F(x) s = ∇F(x)` (`O(d³)`, plus forming the Hessian) and backtracks
    `t ∈ {1, 1/2, …}` until the Armijo condition `F(x − t s) ≤ F(x) − t λ²/4` holds
    (`λ² = ∇Fᵀs`, the Newton decrement); once `λ²` is tiny the full step is taken, where
    convergence is quadratic. It stops after `num_steps` steps, or earlier after a full step
    of length at most `1e-10·‖x‖`. A `lax.while_loop`, so usable under `jit` and `vmap`
    (where it runs until every batch member stops).

    **Arguments:**

    - `objective`: `x -> F(x)`, a scalar.
    - `x0`: the starting point, shape `(d,)`.
    - `num_steps`: the most Newton steps taken.
    - `hessian`: `x -> ∇²F(x)`, shape `(d, d)`; by default `jax.hessian(objective)`. A
      closed form avoids differentiating the objective twice at every step.
    """
    gradient = jax.grad(objective)
    hessian = jax.hessian(objective) if hessian is None else hessian

    def step(state):
        k, x, _ = state
        value = objective(x)
        slope = gradient(x)
        direction = jnp.linalg.solve(hessian(x), slope)
        decrement2 = slope @ direction

        def insufficient(t):
            return (t > _MIN_STEP) & (objective(x - t * direction) > value - 0.25 * t * decrement2)

        def halve(search):
            t = 0.5 * search[0]
            return t, insufficient(t)

        # The test is computed once per step length and carried: evaluated separately in the
        # loop's condition and in its body, as a batched (vmapped) loop does, two compiled
        # copies of it can disagree when the decrease sits at rounding level, and the loop
        # then never ends.
        one = jnp.asarray(1.0, x.dtype)
        t, _ = lax.while_loop(lambda search: search[1], halve, (one, insufficient(one)))
        full = decrement2 <= _FULL_STEP_DECREMENT * (1.0 + jnp.abs(value))
        t = jnp.where(full, 1.0, t)
        moved = x - t * direction
        converged = (t == 1.0) & (jnp.linalg.norm(direction) <= _CONVERGED_STEP * jnp.linalg.norm(moved))
        return k + 1, moved, converged

    def running(state):
        k, _, converged = state
        return (k < num_steps) & ~converged

    _, x, _ = lax.while_loop(running, step, (jnp.asarray(0), x0, jnp.asarray(False)))
    return x

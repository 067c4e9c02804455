"""Damped Newton's method to machine precision, for the problems without a closed form."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

# Below this Newton decrement (relative to |F|) the full step is taken: backtracking
# on F itself cannot resolve decreases of the order of its rounding error.
_FULL_STEP_DECREMENT = 1e-10
_MIN_STEP = 2.0**-40


def newton_minimise(objective, x0, num_steps: int = 60):
    """Minimise a smooth strongly convex `objective(x)` from `x0`.

    Each step solves `∇²F(x) s = ∇F(x)` and backtracks `t ∈ {1, 1/2, …}` until the
    Armijo condition `F(x − t s) ≤ F(x) − t λ²/4` holds (`λ² = ∇Fᵀs`, the Newton
    decrement); once `λ²` is tiny the full step is taken, where convergence is
    quadratic. A fixed number of steps keeps it usable under `jit` and `vmap`.
    """
    gradient = jax.grad(objective)
    hessian = jax.hessian(objective)

    def step(x, _):
        value = objective(x)
        direction = jnp.linalg.solve(hessian(x), gradient(x))
        decrement2 = gradient(x) @ direction

        def insufficient(t):
            return (t > _MIN_STEP) & (objective(x - t * direction) > value - 0.25 * t * decrement2)

        t = lax.while_loop(insufficient, lambda t: 0.5 * t, jnp.asarray(1.0))
        t = jnp.where(decrement2 <= _FULL_STEP_DECREMENT * (1.0 + jnp.abs(value)), 1.0, t)
        return x - t * direction, None

    x, _ = lax.scan(step, x0, None, length=num_steps)
    return x

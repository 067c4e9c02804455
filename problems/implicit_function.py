"""The implicit function theorem, from an objective alone."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def implicit_function_jacobian(
    objective: Callable[[Float[Array, " d"], Float[Array, " p"]], Float[Array, ""]],
    x_star: Float[Array, " d"],
    theta: Float[Array, " p"],
) -> Float[Array, "d p"]:
    """`∂θ x*(θ) = −(∇²ₓₓ F)⁻¹ ∇²ₓθ F` at `(x*, θ)`.

    Valid when `∇ₓF(x*, θ) = 0` and `∇²ₓₓF(x*, θ)` is invertible (strong convexity).
    Both second derivatives come from autodiff of `objective(x, θ)`.
    """
    hessian = jax.hessian(objective, argnums=0)(x_star, theta)
    cross = jax.jacfwd(jax.grad(objective, argnums=0), argnums=1)(x_star, theta)
    return -jnp.linalg.solve(hessian, cross)

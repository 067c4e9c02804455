"""The implicit function theorem, from an objective alone."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def implicit_function_jacobian(objective, x_star, theta):
    """`∂θ x*(θ) = −(∇²ₓₓ F)⁻¹ ∇²ₓθ F` at `(x*, θ)`.

    Valid when `∇ₓF(x*, θ) = 0` and `∇²ₓₓF(x*, θ)` is invertible (strong convexity).
    Both second derivatives come from autodiff of `objective(x, θ)`.
    """
    hessian = jax.hessian(objective, argnums=0)(x_star, theta)
    cross = jax.jacfwd(jax.grad(objective, argnums=0), argnums=1)(x_star, theta)
    return -jnp.linalg.solve(hessian, cross)

"""The implicit derivative `∂θ x*(θ)`, computed from the objective alone."""

from __future__ import annotations

import jax
from jaxtyping import Array, Float

from problems.implicit_function import implicit_function_jacobian


def implicit_jacobian(problem, theta) -> Float[Array, "d p"]:
    """`∂θ x* = −(∇²ₓₓF)⁻¹ ∇²ₓθF` at `x* = problem.solution(θ)`.

    The implicit function theorem applies because `∇ₓF(x*, θ) = 0` and `F(·, θ)` is
    strongly convex. Only `problem.objective` (differentiated by autodiff) and
    `problem.solution` are used, so this is an independent check of each problem's
    closed-form `solution_jacobian`.
    """
    return _implicit_jacobian(problem, problem.check_theta(theta))


@jax.jit
def _implicit_jacobian(problem, theta):
    x_star = jax.lax.stop_gradient(problem.solution(theta))
    return implicit_function_jacobian(problem.objective, x_star, theta)

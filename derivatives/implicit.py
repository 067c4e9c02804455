"""The implicit derivative `∂θ x*(θ)`, computed from the objective and the solution alone."""

from __future__ import annotations

import jax
from jaxtyping import Array, Float, PyTree

from problems import Problem
from problems.implicit_function import implicit_function_jacobian
from problems.pytrees import ThetaLike, ravel_theta, unravel_jacobian


def implicit_jacobian(problem: Problem, theta: ThetaLike) -> Float[Array, "d p"] | PyTree:
    """`∂θ x* = −(∇²ₓₓF)⁻¹ ∇²ₓθF` at `x* = problem.solution(θ)`, by
    `problems.implicit_function.implicit_function_jacobian`.

    The implicit function theorem applies because `∇ₓF(x*, θ) = 0` and `F(·, θ)` is
    strongly convex. Only `problem.objective` (both second derivatives by autodiff) and
    `problem.solution` are used, never `problem.solution_jacobian`.

    What this checks: for a generator with a closed-form `solution_jacobian` (ridge,
    weighted ridge, least squares, logistic, quadratic) it is independent of that closed
    form, though not of `solution` (an error in `x*` moves both). For a `problems.from_loss`
    problem it is no check at all: its `solution_jacobian` is this same function at the
    same Newton point, so the two agree to rounding whatever the loss; compare those with
    central differences of `solution` (`central_difference_jacobian`) or a closed form.

    **Arguments:**

    - `problem`: a `problems.Problem`.
    - `theta`: shape `(p,)`, or a pytree of real arrays whose leaves hold p entries in all,
      flattened in JAX's order (`problems.pytrees.ravel_theta`: leaves in `jax.tree.leaves`
      order, a dict's keys sorted); the flat θ is checked by `problem.check_theta`.

    **Returns:** shape `(d, p)`. For a pytree θ, θ's structure, the leaf for a θ-leaf of
    shape `s` of shape `(d, *s)`: what `jax.jacfwd(lambda t: x*(t))(theta)` returns
    (`problems.pytrees.unravel_jacobian`); in an eager call, the numbers of the flattened θ
    bit for bit.

    Works under `jit` and `vmap` over θ, for a pytree θ too.
    """
    theta, unravel = ravel_theta(theta, problem.param_dim)
    return unravel_jacobian(_implicit_jacobian(problem, problem.check_theta(theta)), unravel)


@jax.jit
def _implicit_jacobian(problem, theta):
    x_star = jax.lax.stop_gradient(problem.solution(theta))
    return implicit_function_jacobian(problem.objective, x_star, theta)

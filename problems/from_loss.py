"""A problem from a user-supplied per-sample loss and data set.

The solution is found by Newton's method, its Jacobian by the implicit function
theorem. `σ²` and `σ_J²` are exact sums over the data set (up to the solver's
precision); `μ`, `L` and the Lipschitz constants are estimated near `x*` and are
labelled as estimated in `Constants.estimated`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from problems._base import FiniteSumProblem, problem_dataclass, static
from problems._implicit import implicit_function_jacobian
from problems._newton import newton_minimise
from problems._validation import check_count, check_finite_data

# Radius and number of random directions of the finite-difference Lipschitz estimates.
_LIPSCHITZ_RADIUS = 1e-2
_LIPSCHITZ_DIRECTIONS = 8


@problem_dataclass
class LossProblem(FiniteSumProblem):
    """`F(x, θ) = mean_i loss(x, θ, ξᵢ)` for a user loss; see `from_loss`."""

    data: PyTree
    theta0: Float[Array, " p"]
    x_init: Float[Array, " d"]
    per_sample: Callable = static()
    dim: int = static()
    newton_steps: int = static(default=60)
    name = "from_loss"

    def per_sample_loss(self, x, theta, sample):
        return self.per_sample(x, theta, sample)

    def _solution(self, theta):
        return newton_minimise(lambda x: self.objective(x, theta), self.x_init, self.newton_steps)

    def _solution_jacobian(self, theta):
        return implicit_function_jacobian(self.objective, self._solution(theta), theta)

    def _curvature(self, theta, x_star):
        hessian = jax.hessian(self.per_sample_loss, argnums=0)
        cross = jax.jacfwd(jax.grad(self.per_sample_loss, argnums=0), argnums=1)
        per_sample_hessians = jax.vmap(hessian, in_axes=(None, None, 0))(x_star, theta, self.data)
        directions = jax.random.normal(jax.random.key(0), (_LIPSCHITZ_DIRECTIONS, self.dim))
        directions = _LIPSCHITZ_RADIUS * directions / jnp.linalg.norm(directions, axis=1, keepdims=True)

        def difference_quotients(step):
            moved = x_star + step
            hess_change = jax.vmap(hessian, in_axes=(None, None, 0))(moved, theta, self.data) - per_sample_hessians
            cross_change = jax.vmap(lambda s: cross(moved, theta, s) - cross(x_star, theta, s))(self.data)
            return (
                jnp.max(jnp.linalg.norm(hess_change, ord=2, axis=(1, 2))) / _LIPSCHITZ_RADIUS,
                jnp.max(jnp.linalg.norm(cross_change, axis=(1, 2))) / _LIPSCHITZ_RADIUS,
            )

        hess_lip, cross_lip = jax.vmap(difference_quotients)(directions)
        return dict(
            mu=jnp.linalg.eigvalsh(jax.hessian(self.objective)(x_star, theta))[0],
            L=jnp.max(jnp.linalg.eigvalsh(per_sample_hessians)[:, -1]),
            hessian_lipschitz=jnp.max(hess_lip),
            cross_lipschitz=jnp.max(cross_lip),
            estimated=("mu", "L", "hessian_lipschitz", "cross_lipschitz"),
        )


def from_loss(
    loss: Callable[[Array, Array, PyTree], Array],
    data: PyTree,
    theta0,
    *,
    dim: int,
    x_init=None,
    newton_steps: int = 60,
) -> LossProblem:
    """Wrap a per-sample loss `loss(x, θ, ξ) -> scalar` and a data pytree as a problem.

    **Arguments:**

    - `loss`: a JAX function of `x` (shape `(dim,)`), `θ` (shape `(p,)`) and one sample
      `ξ` (a leaf of `data` without its leading axis); `F = mean_i loss(·, ·, ξᵢ)` must be
      strongly convex in `x` and twice differentiable.
    - `data`: a pytree whose leaves share a leading axis of `n` samples.
    - `theta0`: the default `θ`, shape `(p,)`.
    - `dim`: the dimension d of `x`; `x_init` the Newton starting point (default 0).

    `μ` and `L` are the local values at `x*` (`λ_min(∇²F(x*))` and `maxᵢ λ_max(∇²fᵢ(x*))`);
    the Lipschitz constants are the largest difference quotients over a few random
    directions of radius 1e-2 around `x*`. All four are estimates.
    """
    dim = check_count(dim, "dim")
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("data must be a pytree with at least one array leaf")
    data = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, jnp.float64), data)
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in jax.tree_util.tree_leaves(data)}
    if None in sizes or len(sizes) != 1:
        raise ValueError(f"every leaf of data must share a leading sample axis, got leading sizes {sizes}")
    check_finite_data(data)
    theta0 = jnp.atleast_1d(jnp.asarray(theta0, jnp.float64))
    if theta0.ndim != 1:
        raise ValueError(f"theta0 must be a vector of shape (p,), got shape {theta0.shape}")
    x_init = jnp.zeros(dim) if x_init is None else jnp.asarray(x_init, jnp.float64)
    if x_init.shape != (dim,):
        raise ValueError(f"x_init must have shape ({dim},), got {x_init.shape}")
    value = jnp.asarray(loss(x_init, theta0, jax.tree_util.tree_map(lambda leaf: leaf[0], data)))
    if value.shape != ():
        raise ValueError(f"loss must return a scalar for one sample, got shape {value.shape}")
    return LossProblem(
        data=data, theta0=theta0, x_init=x_init, per_sample=loss, dim=dim,
        newton_steps=check_count(newton_steps, "newton_steps"),
    )

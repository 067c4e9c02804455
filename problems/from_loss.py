"""A problem from a user-supplied per-sample loss and data set.

The solution is found by Newton's method, its Jacobian by the implicit function
theorem. `σ²` and `σ_J²` are exact sums over the data set (up to the solver's
precision); `μ`, `L` and the Lipschitz constants are estimated near `x*` and are
labelled as estimated in `Constants.estimated`.

`from_loss` checks what it promises before returning: the loss accepts `x` of shape
`(dim,)` (traced on abstract values, nothing compiled), and at `θ₀` Newton's method
reaches a finite point where the gradient vanishes and `F(·, θ₀)` is strongly convex.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, PyTree

from problems._base import FiniteSumProblem
from problems._newton import newton_minimise
from problems.implicit_function import implicit_function_jacobian
from problems.pytrees import pytree_dataclass, static
from problems.validation import check_count, check_finite_data, check_scalar_function, concrete, require_x64

# Radius and number of random directions of the finite-difference Lipschitz estimates.
_LIPSCHITZ_RADIUS = 1e-2
_LIPSCHITZ_DIRECTIONS = 8
# Dimension of the Krylov spaces behind the per-sample curvature estimates (capped at d,
# where they are exact up to rounding).
_KRYLOV_STEPS = 16
# A Krylov direction smaller than this, relative to the operator's image it came from, is
# replaced by a fresh random one: the space has become invariant.
_KRYLOV_BREAKDOWN = 1e-12

# The checks at construction. F(·, θ₀) counts as strongly convex at the Newton point when
# λ_min(∇²F) > 1e-10·‖∇²F‖₂, a condition number below 1e10. The eigenvalues of a d×d
# symmetric matrix are computed to an absolute accuracy of order d·eps·‖∇²F‖₂ (2e-13 at
# d = 1,000), so below this margin μ > 0 cannot be told apart from rounding; the bound is
# relative, so rescaling the loss does not change the verdict.
_CONVEXITY_MARGIN = 1e-10
# Newton has converged when ‖∇F(x*)‖ ≤ 1e-8·max(1, ‖∇F(x_init)‖). Converged, its quadratic
# phase leaves the gradient at the rounding level (about 1e-15 relative); the margin of
# a million absorbs rounding in the sum over samples, while a run stopped short by
# `newton_steps`, stalled, or diverging sits far above it.
_GRADIENT_TOLERANCE = 1e-8


@pytree_dataclass(repr=False)
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
        """Matrix-free estimates at `x*`; see `from_loss` for the method and its cost."""
        grad_x = jax.grad(self.per_sample_loss, argnums=0)
        num_steps = min(self.dim, _KRYLOV_STEPS)
        key_start, key_fresh = jax.random.split(jax.random.key(1))
        start = jax.random.normal(key_start, (self.dim,))
        fresh = jax.random.normal(key_fresh, (num_steps, self.dim))
        directions = jax.random.normal(jax.random.key(0), (_LIPSCHITZ_DIRECTIONS, self.dim))
        directions = _LIPSCHITZ_RADIUS * directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
        theta_tangents = jnp.eye(self.param_dim, dtype=theta.dtype)

        def per_sample(sample):
            def hessian_product(x):
                return jax.linearize(lambda x_: grad_x(x_, theta, sample), x)[1]

            def cross(x):
                # ∇²ₓθ f(x) as p rows: ∇ₓf pushed along each eⱼ in θ.
                push = jax.linearize(lambda theta_: grad_x(x, theta_, sample), theta)[1]
                return jax.vmap(push)(theta_tangents)

            at_solution, cross_at_solution = hessian_product(x_star), cross(x_star)
            largest = _ritz_extremes(at_solution, start, fresh)[1]

            def change_along(step):
                moved = hessian_product(x_star + step)
                lowest, highest = _ritz_extremes(lambda v: moved(v) - at_solution(v), start, fresh)
                return jnp.maximum(-lowest, highest), jnp.linalg.norm(cross(x_star + step) - cross_at_solution)

            hessian_change, cross_change = lax.map(change_along, directions)
            return largest, jnp.max(hessian_change), jnp.max(cross_change)

        # One sample at a time, like `noise_at_solution`: memory O(k·d), not O(n·k·d).
        largest, hessian_change, cross_change = lax.map(per_sample, self.data)
        return dict(
            mu=jnp.linalg.eigvalsh(jax.hessian(self.objective)(x_star, theta))[0],
            L=jnp.max(largest),
            hessian_lipschitz=jnp.max(hessian_change) / _LIPSCHITZ_RADIUS,
            cross_lipschitz=jnp.max(cross_change) / _LIPSCHITZ_RADIUS,
            estimated=("mu", "L", "hessian_lipschitz", "cross_lipschitz"),
        )


def _ritz_extremes(matvec, start, fresh):
    """The smallest and largest Ritz values of a symmetric operator `A` on a Krylov space.

    Builds an orthonormal basis `Q` of `span{v, Av, …, A^{k−1}v}` (`v = start`, `k` the
    number of rows of `fresh`), each new vector orthogonalised against all earlier ones
    twice (Lanczos with full reorthogonalisation), and returns the extreme eigenvalues of the
    Rayleigh–Ritz matrix `QᵀAQ`, formed from the stored products. Since `Q` is orthonormal
    they lie in `[λ_min(A), λ_max(A)]` (Cauchy interlacing), they approach its ends quickly
    (Kaniel–Paige), and with `k = d` they are its ends up to rounding. When the space turns
    invariant (`Aq` in the span of `Q`, as after two steps on `c·aaᵀ + λI`), the next vector
    is the next row of `fresh` orthogonalised instead, which keeps `Q` orthonormal.

    Cost: `k` products with `A` and `O(k²·d)`; memory `O(k·d)`.
    """
    num_steps, dim = fresh.shape

    def orthogonalise(basis, v):
        # Rows of `basis` not yet filled are zero and take no part.
        for _ in range(2):
            v = v - basis.T @ (basis @ v)
        return v

    def step(j, carry):
        basis, images, q = carry
        image = matvec(q)
        basis, images = basis.at[j].set(q), images.at[j].set(image)
        direction = orthogonalise(basis, image)
        invariant = jnp.linalg.norm(direction) <= _KRYLOV_BREAKDOWN * jnp.linalg.norm(image)
        direction = lax.cond(invariant, lambda: orthogonalise(basis, fresh[j]), lambda: direction)
        # After the last of d steps nothing is left to span; that vector is never used.
        return basis, images, direction / jnp.maximum(jnp.linalg.norm(direction), jnp.finfo(start.dtype).tiny)

    empty = jnp.zeros((num_steps, dim), start.dtype)
    basis, images, _ = lax.fori_loop(0, num_steps, step, (empty, empty, start / jnp.linalg.norm(start)))
    rayleigh = basis @ images.T
    ritz = jnp.linalg.eigvalsh(0.5 * (rayleigh + rayleigh.T))
    return ritz[0], ritz[-1]


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
    - `newton_steps`: the most Newton steps per solve.

    **Checks** (each failure raises `ValueError` with the numbers it decided on):

    - `loss` is traced once on abstract values, `x` of shape `(dim,)`, before anything is
      compiled; a shape error there is reported against `dim`. It must return a scalar.
    - At `θ₀` (when `data`, `θ₀` and `x_init` are concrete), Newton's method from `x_init`
      must reach a finite `x*` where `F(·, θ₀)` is strongly convex,
      `λ_min(∇²F(x*)) > 1e-10·‖∇²F(x*)‖₂`, and stationary,
      `‖∇F(x*)‖ ≤ 1e-8·max(1, ‖∇F(x_init)‖)`. This costs one solve and one d×d
      eigendecomposition, and rejects a loss that is concave (Newton finds its maximiser),
      flat in some direction (a ridge loss with λ = 0 and more features than samples), or
      for which `newton_steps` is too few.

    **Constants:** `σ²` and `σ_J²` are exact sums over the data. The rest are estimates at
    `x*` and are labelled so:

    - `μ = λ_min(∇²F(x*))`, from the d×d Hessian (`O(n·d²)` to form, `O(d³)` to decompose).
    - `L ≈ maxᵢ λ_max(∇²fᵢ(x*))`: for each sample, the largest Ritz value on a Krylov space of
      dimension `k = min(d, 16)` from Hessian-vector products (Lanczos with full
      reorthogonalisation). A lower bound of each per-sample maximum that converges quickly,
      and exact for d ≤ 16.
    - `hessian_lipschitz`, `cross_lipschitz`: the largest difference quotients
      `‖∇²ₓₓfᵢ(x* + s) − ∇²ₓₓfᵢ(x*)‖₂/‖s‖` and `‖∇²ₓθfᵢ(x* + s) − ∇²ₓθfᵢ(x*)‖_F/‖s‖` over 8
      random directions `s` of length 1e-2; the operator norm as the larger end of the same
      Krylov estimate, the cross term exactly from `p` Jacobian-vector products.

    Samples are processed one at a time: `O(n·k·(HVP + k·d))` time for `L`, 16 times that
    for the Lipschitz estimates, plus `O(n·p·HVP)`, and `O(k·d + p·d)` memory per sample.
    """
    require_x64()
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
    _check_loss_shapes(loss, data, theta0, dim)
    problem = LossProblem(
        data=data, theta0=theta0, x_init=x_init, per_sample=loss, dim=dim,
        newton_steps=check_count(newton_steps, "newton_steps"),
    )
    if all(concrete(leaf) is not None for leaf in jax.tree_util.tree_leaves((data, theta0, x_init))):
        _check_newton_point(problem)
    return problem


def _check_loss_shapes(loss, data, theta0, dim) -> None:
    """Trace `loss` on abstract `x`, `θ₀` and one sample; nothing is compiled or run."""
    sample = jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype), data)
    arguments = (jax.ShapeDtypeStruct((dim,), jnp.float64), jax.ShapeDtypeStruct(theta0.shape, theta0.dtype), sample)
    sample_shapes = jax.tree_util.tree_map(lambda leaf: leaf.shape, sample)
    check_scalar_function(
        loss, arguments,
        fails=f"loss(x, θ, ξ) fails for x of shape ({dim},) as given by dim={dim}, θ₀ of shape "
              f"{theta0.shape} and one sample ξ of shape {sample_shapes}",
        not_scalar="loss must return a scalar for one sample", hint=". Is dim the dimension of x that loss expects?")


@jax.jit
def _newton_report(problem):
    """What `_check_newton_point` decides on at the Newton point, in one compiled call."""
    theta = problem.theta0
    x_star = problem._solution(theta)
    gradient = jax.grad(problem.objective)
    eigenvalues = jnp.linalg.eigvalsh(jax.hessian(problem.objective)(x_star, theta))
    return dict(
        finite=jnp.all(jnp.isfinite(x_star)),
        gradient=jnp.linalg.norm(gradient(x_star, theta)),
        initial_gradient=jnp.linalg.norm(gradient(problem.x_init, theta)),
        smallest=eigenvalues[0],
        norm=jnp.max(jnp.abs(eigenvalues)),
    )


@jax.jit
def _curvature_at_start(problem):
    """`λ_min` and `‖·‖₂` of `∇²F(x_init, θ₀)`, to explain a Newton run that left the finite numbers."""
    eigenvalues = jnp.linalg.eigvalsh(jax.hessian(problem.objective)(problem.x_init, problem.theta0))
    return eigenvalues[0], jnp.max(jnp.abs(eigenvalues))


def _check_newton_point(problem: LossProblem) -> None:
    """Raise `ValueError` unless Newton reaches a stationary point of strong convexity at `θ₀`."""
    report = {name: float(value) for name, value in _newton_report(problem).items()}
    criterion = (f"strong convexity is accepted when λ_min > {_CONVEXITY_MARGIN:.0e}·‖∇²F‖₂, "
                 f"a condition number below {1 / _CONVEXITY_MARGIN:.0e}")
    advice = ("from_loss needs F(·, θ) = mean_i loss(·, θ, ξᵢ) strongly convex near its minimiser: "
              "check the sign of the loss, and add a penalty such as (λ/2)‖x‖² with λ > 0 if the "
              "data do not determine x")

    def not_convex(where, smallest, norm):
        return smallest <= _CONVEXITY_MARGIN * norm, (
            f"F(·, θ₀) is not strongly convex at {where}: λ_min(∇²F) = {smallest:.3g}, not above "
            f"{_CONVEXITY_MARGIN:.0e}·‖∇²F‖₂ = {_CONVEXITY_MARGIN * norm:.3g} ({criterion}). {advice}"
        )

    if not report["finite"]:
        smallest, norm = (float(v) for v in _curvature_at_start(problem))
        failed, message = not_convex("x_init", smallest, norm)
        if failed or not np.isfinite(smallest):
            raise ValueError(f"Newton's method from x_init reached non-finite values. {message}")
        raise ValueError(
            f"Newton's method from x_init reached non-finite values in newton_steps={problem.newton_steps} steps, "
            f"although ∇²F(x_init) has λ_min = {smallest:.3g} > 0. {advice}"
        )
    failed, message = not_convex("the Newton point x*", report["smallest"], report["norm"])
    if failed:
        raise ValueError(message)
    tolerance = _GRADIENT_TOLERANCE * max(1.0, report["initial_gradient"])
    if not report["gradient"] <= tolerance:
        raise ValueError(
            f"Newton's method did not converge in newton_steps={problem.newton_steps} steps: ‖∇F(x*)‖ = "
            f"{report['gradient']:.3g} > {_GRADIENT_TOLERANCE:.0e}·max(1, ‖∇F(x_init)‖) = {tolerance:.3g}. "
            f"Increase newton_steps or start nearer the minimiser (x_init)."
        )

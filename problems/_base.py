"""The interface every parametric problem implements, and the finite-sum machinery.

A parametric problem is `min_x F(x, θ) = E_ξ[f_ξ(x, θ)]` with `F(·, θ)` strongly convex.
Every generator in this package is a finite sum: the data set holds `n` samples and `ξ`
is drawn uniformly from them, so `F(x, θ) = (1/n) Σ_i f_i(x, θ)`. Minibatches of size
`b` are drawn i.i.d. with replacement, so the minibatch gradient at `x*` has
`E‖∇ₓ f_B(x*)‖² = σ²/b` exactly.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, Int, PyTree, Real

from problems import threefry
from problems.pytrees import pytree_dataclass, static
from problems.validation import KeyLike, as_key, as_theta, check_batch_size


def uniform_indices(key: KeyLike, batch_size: int, n: int) -> Int[Array, " b"]:
    """`batch_size` indices drawn uniformly from `{0, …, n − 1}`, with replacement: `⌊u·n⌋`
    for `u` uniform on the grid `j·2⁻⁵²` (`jax.random.uniform` in float64, drawn bit for bit
    by `problems.threefry.uniform`).

    One hash of the key per index, where `jax.random.randint` spends four (a split and two
    draws): in a loop of small SGD steps the draw is most of the work. The probability of
    each index is `1/n` up to `3·2⁻⁵²` in absolute terms (the `2⁵²` grid points split into
    `n` runs of `2⁵²/n` points up to one, and the rounding of `u·n` moves at most one point
    across each boundary of a run), far below anything a Monte Carlo check resolves.
    """
    return _index_of_uniform(threefry.uniform(as_key(key), (batch_size,)), n)


# Up to this length an inner product is written as a sum of products (`inner`).
INNER_AS_SUM_MAX = 16


def inner(a: Float[ArrayLike, "*batch n"], b: Float[ArrayLike, "*batch n"]) -> Float[Array, "*batch"]:
    """`a @ b` of two vectors. Short ones (n ≤ `INNER_AS_SUM_MAX`) are written as the sum of
    their products: under `vmap` over seeds the matrix product becomes a batched one, a
    library call of its own at every step that XLA:CPU does not fuse with the step around
    it, where the sum fuses (the rate report's Monte Carlo runs, d = 5 and 10: 11–17% less
    time). Longer ones stay a matrix product, which then pays: at d = 64 (`weighted_ridge`,
    256 seeds, one core) the sum made `rates.error_curves` 2.7 times slower (0.78 s → 2.13 s)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape[-1] <= INNER_AS_SUM_MAX:
        return jnp.sum(a * b, axis=-1)
    return jnp.einsum("...i,...i->...", a, b)


def _index_of_uniform(u: Float[Array, " b"], n: int) -> Int[Array, " b"]:
    # The clip guards the top of the grid, where u·n could round up to n.
    return jnp.minimum(jnp.floor(u * n).astype(jnp.int32), n - 1)


@pytree_dataclass(repr=False)
class Constants:
    """The constants of a parametric problem at `θ`, for minibatches of size one.

    - `mu`: strong convexity of `F(·, θ)` (global, unless listed in `estimated`).
    - `L`: smoothness of every per-sample loss: `sup_{x, i} λ_max(∇²ₓₓ f_i(x, θ))`.
    - `sigma2`: gradient noise at the solution, `σ² = E‖∇ₓ f_ξ(x*)‖²`.
    - `sigma2_jac`: Jacobian noise at the solution,
      `σ_J² = E‖∇²ₓₓ f_ξ(x*) J* + ∇²ₓθ f_ξ(x*)‖²_F` with `J* = ∂θ x*(θ)`.
      (Its mean over ξ is zero: that is the implicit function theorem.)
    - `hessian_lipschitz`: `sup_i` of the Lipschitz constant in `x` of
      `∇²ₓₓ f_i(·, θ)`, in the operator norm.
    - `cross_lipschitz`: `sup_i` of the Lipschitz constant in `x` of
      `∇²ₓθ f_i(·, θ)`, in the Frobenius norm.
    - `estimated`: the names of the constants that are estimates (for example
      local values at `x*`) rather than exact; empty when all are exact.

    For a minibatch of size `b` drawn with replacement, the noise terms are
    `σ²/b` and `σ_J²/b`.
    """

    mu: Float[ArrayLike, ""]
    L: Float[ArrayLike, ""]
    sigma2: Float[ArrayLike, ""]
    sigma2_jac: Float[ArrayLike, ""]
    hessian_lipschitz: Float[ArrayLike, ""]
    cross_lipschitz: Float[ArrayLike, ""]
    estimated: tuple[str, ...] = static(default=())

    def __repr__(self) -> str:
        names = ("mu", "L", "sigma2", "sigma2_jac", "hessian_lipschitz", "cross_lipschitz")
        body = ", ".join(
            f"{n}={float(getattr(self, n)):.4g}{'~' if n in self.estimated else ''}"
            for n in names
        )
        return f"Constants({body})"


@runtime_checkable
class Problem(Protocol):
    """What `derivatives` and `rates` use of a parametric problem `min_x F(x, θ) = E_ξ[f_ξ(x, θ)]`.

    Shapes: `x` is `(d,)`, `θ` is `(p,)`, a Jacobian `∂θ x` is `(d, p)`. Every
    `FiniteSumProblem` (every generator of this package, and `from_loss`) is one.
    `isinstance(obj, Problem)` checks that each attribute and method below is present
    (not their signatures).
    """

    dim: int
    """d, the dimension of `x`."""
    param_dim: int
    """p, the dimension of `θ`."""
    theta0: Float[Array, " p"]
    """The default `θ`."""
    data: PyTree
    """The whole data set as one batch (leading axis: samples): `loss(x, θ, data)` is
    `objective(x, θ)`, and the drivers pass it for full-batch gradient descent."""

    def check_theta(self, theta: Real[ArrayLike, ...]) -> Float[Array, " p"]:
        """`θ` as float64 of shape `(p,)`; raises `ValueError` naming `theta` if its shape is
        wrong or, when concrete, it is not finite or outside the problem's domain."""
        ...

    def sample(self, key: KeyLike, batch_size: int) -> PyTree:
        """A minibatch of `batch_size` samples ξ (leading batch axis), drawn with `key`."""
        ...

    def loss(self, x: Float[Array, " d"], theta: Float[Array, " p"], batch: PyTree) -> Float[Array, ""]:
        """The mean of `f_ξ(x, θ)` over a minibatch."""
        ...

    def objective(self, x: Float[Array, " d"], theta: Float[Array, " p"]) -> Float[Array, ""]:
        """`F(x, θ)`, strongly convex in `x`."""
        ...

    def solution(self, theta: Real[ArrayLike, ...]) -> Float[Array, " d"]:
        """The exact minimiser `x*(θ)`."""
        ...

    def solution_jacobian(self, theta: Real[ArrayLike, ...]) -> Float[Array, "d p"]:
        """The exact Jacobian `∂θ x*(θ)`."""
        ...

    def constants(self, theta: Real[ArrayLike, ...] | None = None) -> Constants:
        """μ, L, σ², σ_J² and the Lipschitz constants at `θ` (default `theta0`)."""
        ...

    def smoothness(self, theta: Real[ArrayLike, ...] | None = None) -> Float[Array, ""]:
        """`constants(θ).L` alone (default `θ = theta0`), without the cost of the noise
        constants: the step-size check `α ≤ 2/L` of the SGD drivers needs only it."""
        ...


class FiniteSumProblem(abc.ABC):
    """A problem whose data set is a pytree `data` with a leading axis of `n` samples.

    Subclasses define the per-sample loss, the exact solution and Jacobian, and
    the curvature constants; sampling, the minibatch loss, the objective and the
    noise constants `σ²`, `σ_J²` (exact sums over the data set) are shared.
    """

    data: PyTree
    theta0: Float[Array, " p"]
    dim: int
    name: str = "problem"

    @property
    def param_dim(self) -> int:
        return int(self.theta0.shape[0])

    @property
    def n_samples(self) -> int:
        return int(jax.tree_util.tree_leaves(self.data)[0].shape[0])

    # --- what each problem defines -------------------------------------------------

    @abc.abstractmethod
    def per_sample_loss(self, x: Float[Array, " d"], theta: Float[Array, " p"], sample: PyTree) -> Float[Array, ""]:
        """`f_ξ(x, θ)` for one sample `ξ` (a pytree without the batch axis)."""

    @abc.abstractmethod
    def _solution(self, theta: Float[Array, " p"]) -> Float[Array, " d"]: ...

    @abc.abstractmethod
    def _solution_jacobian(self, theta: Float[Array, " p"]) -> Float[Array, "d p"]: ...

    @abc.abstractmethod
    def _curvature(self, theta: Float[Array, " p"], x_star: Float[Array, " d"]) -> dict[str, Any]:
        """`mu`, `L`, `hessian_lipschitz`, `cross_lipschitz` and `estimated`."""

    def _check_theta_values(self, theta: np.ndarray) -> None:  # noqa: B027 (optional: most accept every θ)
        """Raise `ValueError` if a concrete `θ` is outside the problem's domain."""

    # --- shared ---------------------------------------------------------------------

    def check_theta(self, theta: Real[ArrayLike, ...]) -> Float[Array, " p"]:
        """`θ` as a float64 array of shape `(p,)`, with its domain checked when concrete."""
        return as_theta(theta, self.param_dim, self._check_theta_values)

    def sample(self, key: KeyLike, batch_size: int) -> PyTree:
        """A minibatch of `batch_size` samples drawn uniformly with replacement."""
        check_batch_size(batch_size)
        index = uniform_indices(key, batch_size, self.n_samples)
        return jax.tree_util.tree_map(lambda leaf: leaf[index], self.data)

    def loss(self, x: Float[Array, " d"], theta: Float[Array, " p"], batch: PyTree) -> Float[Array, ""]:
        """Mean of `f_ξ(x, θ)` over the minibatch `batch` (leading batch axis)."""
        return jnp.mean(jax.vmap(self.per_sample_loss, in_axes=(None, None, 0))(x, theta, batch))

    def objective(self, x: Float[Array, " d"], theta: Float[Array, " p"]) -> Float[Array, ""]:
        """`F(x, θ)`: the mean loss over the whole data set."""
        return self.loss(x, theta, self.data)

    def solution(self, theta: Real[ArrayLike, ...]) -> Float[Array, " d"]:
        """The exact minimiser `x*(θ)`."""
        return _solution(self, self.check_theta(theta))

    def solution_jacobian(self, theta: Real[ArrayLike, ...]) -> Float[Array, "d p"]:
        """The exact Jacobian `∂θ x*(θ)`, shape `(d, p)`."""
        return _solution_jacobian(self, self.check_theta(theta))

    def constants(self, theta: Real[ArrayLike, ...] | None = None) -> Constants:
        """The constants at `θ` (default `theta0`); see `Constants` for definitions."""
        return _constants(self, self.check_theta(self.theta0 if theta is None else theta))

    def smoothness(self, theta: Real[ArrayLike, ...] | None = None) -> Float[Array, ""]:
        """`constants(θ).L` alone, without the noise constants: what a step-size check needs
        (SGD's per-sample steps are stable for `α ≤ 2/L`)."""
        return _smoothness(self, self.check_theta(self.theta0 if theta is None else theta))

    def __repr__(self) -> str:
        return f"{self.name}(n_samples={self.n_samples}, dim={self.dim}, param_dim={self.param_dim})"


# Jitted once per problem class and shape: a problem is a pytree, so new data of the
# same shape reuses the compiled code.
@jax.jit
def _solution(problem, theta):
    return problem._solution(theta)


@jax.jit
def _solution_jacobian(problem, theta):
    return problem._solution_jacobian(theta)


@jax.jit
def _constants(problem, theta):
    x_star = problem._solution(theta)
    jac_star = problem._solution_jacobian(theta)
    sigma2, sigma2_jac = noise_at_solution(problem.per_sample_loss, problem.data, x_star, jac_star, theta)
    curvature = dict(problem._curvature(theta, x_star))
    estimated = tuple(curvature.pop("estimated", ()))
    return Constants(sigma2=sigma2, sigma2_jac=sigma2_jac, estimated=estimated, **curvature)


@jax.jit
def _smoothness(problem, theta):
    # What `L` does not use (μ, the Lipschitz estimates) is dead code, removed when compiled.
    return problem._curvature(theta, problem._solution(theta))["L"]


def noise_at_solution(per_sample_loss, data, x_star, jac_star, theta):
    """`σ²` and `σ_J²` at the solution, summed exactly over a finite data set.

    `σ² = mean_i ‖∇ₓ f_i(x*)‖²` and `σ_J² = mean_i ‖∇²ₓₓ f_i(x*) J* + ∇²ₓθ f_i(x*)‖²_F`.

    Column `j` of the matrix in `σ_J²` is the derivative of `(x, θ) ↦ ∇ₓ f_i(x, θ)` along
    the tangent `(J* eⱼ, eⱼ)`. Each sample's gradient is linearised once at `(x*, θ)` and
    the `p` tangents are pushed through it: `p` Jacobian-vector products of the gradient per
    sample, `O(n·p·d)` in all for the generalised linear models here, and no per-sample
    Hessian is formed. Samples go through one at a time, so memory is `O(p·d)`, not `O(n·p·d)`.
    """
    grad_x = jax.grad(per_sample_loss, argnums=0)
    # The tangent pairs (J* eⱼ, eⱼ), one per row.
    x_tangents = jac_star.T
    theta_tangents = jnp.eye(theta.shape[0], dtype=theta.dtype)

    def per_sample(sample):
        gradient, push = jax.linearize(lambda x, theta_: grad_x(x, theta_, sample), x_star, theta)
        jac_term = jax.vmap(push)(x_tangents, theta_tangents)
        return jnp.sum(gradient**2), jnp.sum(jac_term**2)

    # A scan over single samples rather than a vmap: besides the memory, batching samples
    # into matrix products that feed this reduction is miscompiled at some shapes by the
    # YNNPACK reduce fusion of XLA:CPU in jaxlib 0.10.2 (jax-ml/jax#39103).
    grad_sq, jac_sq = jax.lax.map(per_sample, data)
    return jnp.mean(grad_sq), jnp.mean(jac_sq)

"""A random quadratic with prescribed μ and L and separately controlled noises.

    f_i(x, θ) = ½ (1 + h rᵢ) xᵀ H̄ x − xᵀ(bᵢ + Bᵢθ),   rᵢ = ±1 (half each), h ∈ [0, 1)

`F(x, θ) = ½ xᵀH̄x − xᵀ(b̄ + B̄θ)`, so `x* = H̄⁻¹(b̄ + B̄θ)` and `J* = H̄⁻¹B̄`.
`H̄ = Q diag(μ, …, L/(1+h)) Qᵀ` with eigenvalues spread geometrically, so that
`λ_min(H̄) = μ` and `maxᵢ λ_max((1 + h rᵢ)H̄) = L` exactly.

The per-sample terms are centred so that, at `θ₀`,

- `∇ₓfᵢ(x*) = −g·zᵢ`: the gradient noise is `σ² = g² mean‖zᵢ‖²`, set by `grad_noise = g`;
- `∇²ₓₓfᵢJ* + ∇²ₓθfᵢ = h rᵢ H̄J* − j·Zᵢ`: the Jacobian noise comes from
  `hess_noise = h` and `jac_noise = j`.

All noises zero gives double interpolation; `grad_noise = 0` alone gives simple interpolation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from problems._base import FiniteSumProblem
from problems.pytrees import pytree_dataclass, static
from problems.validation import check_count, require_x64


@pytree_dataclass(repr=False)
class Quadratic(FiniteSumProblem):
    """A finite sum of quadratics; see the module docstring."""

    data: tuple[Float[Array, " n"], Float[Array, "n d"], Float[Array, "n d p"]]
    mean_hessian: Float[Array, "d d"]
    hess_noise: Float[Array, ""]
    theta0: Float[Array, " p"]
    dim: int = static()
    name = "quadratic"

    def per_sample_loss(self, x, theta, sample):
        sign, linear, linear_jac = sample
        curvature = 0.5 * (1.0 + self.hess_noise * sign) * (x @ self.mean_hessian @ x)
        return curvature - x @ (linear + linear_jac @ theta)

    def _solution(self, theta):
        _, linear, linear_jac = self.data
        return jnp.linalg.solve(self.mean_hessian, linear.mean(0) + linear_jac.mean(0) @ theta)

    def _solution_jacobian(self, theta):
        return jnp.linalg.solve(self.mean_hessian, self.data[2].mean(0))

    def _curvature(self, theta, x_star):
        eigenvalues = jnp.linalg.eigvalsh(self.mean_hessian)
        return dict(
            mu=eigenvalues[0],
            L=(1.0 + self.hess_noise) * eigenvalues[-1],
            hessian_lipschitz=jnp.asarray(0.0),
            cross_lipschitz=jnp.asarray(0.0),
        )


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _draw_quadratic(key, dim, param_dim, n_samples, mu, L, grad_noise, jac_noise, hess_noise):
    keys = jax.random.split(key, 5)
    basis, _ = jnp.linalg.qr(jax.random.normal(keys[0], (dim, dim)))
    spectrum = jnp.geomspace(mu, L / (1.0 + hess_noise), dim) if dim > 1 else jnp.array([mu])
    mean_hessian = (basis * spectrum) @ basis.T
    mean_hessian = 0.5 * (mean_hessian + mean_hessian.T)
    theta0 = jnp.ones(param_dim)
    sign = jnp.tile(jnp.array([1.0, -1.0]), n_samples // 2)

    def centred(key, shape):
        z = jax.random.normal(key, shape)
        return z - z.mean(0)

    mean_linear = jax.random.normal(keys[1], (dim,))
    mean_linear_jac = jax.random.normal(keys[2], (dim, param_dim))
    linear_jac = mean_linear_jac + jac_noise * centred(keys[3], (n_samples, dim, param_dim))
    x_star0 = jnp.linalg.solve(mean_hessian, mean_linear + mean_linear_jac @ theta0)
    # Cancel the θ₀- and Hessian-driven parts of ∇fᵢ(x*(θ₀)), leaving −g·zᵢ.
    linear = (
        mean_linear
        + grad_noise * centred(keys[4], (n_samples, dim))
        - (linear_jac - mean_linear_jac) @ theta0
        + hess_noise * sign[:, None] * (mean_hessian @ x_star0)
    )
    return (sign, linear, linear_jac), mean_hessian


def quadratic(
    dim: int = 10,
    param_dim: int = 2,
    *,
    mu: float = 0.1,
    L: float = 1.0,
    n_samples: int = 64,
    grad_noise: float = 0.1,
    jac_noise: float = 0.1,
    hess_noise: float = 0.1,
    seed: int = 0,
) -> Quadratic:
    """A random finite-sum quadratic; `θ₀ = 1`.

    **Arguments:**

    - `dim`, `param_dim`: d and p.
    - `mu`, `L`: strong convexity of F and smoothness of every fᵢ; need
      `0 < mu ≤ L/(1 + hess_noise)`.
    - `n_samples`: an even number of samples (the Hessian signs come in ± pairs).
    - `grad_noise`, `jac_noise`, `hess_noise`: the noise levels (module docstring);
      `hess_noise ∈ [0, 1)` keeps every fᵢ convex.
    """
    require_x64()
    dim = check_count(dim, "dim")
    param_dim = check_count(param_dim, "param_dim")
    n_samples = check_count(n_samples, "n_samples", minimum=2)
    if n_samples % 2:
        raise ValueError(f"n_samples must be even (Hessian noise comes in ± pairs), got {n_samples}")
    if not 0.0 <= hess_noise < 1.0:
        raise ValueError(f"hess_noise must be in [0, 1), got {hess_noise!r}")
    if not 0.0 < mu <= L / (1.0 + hess_noise):
        raise ValueError(f"need 0 < mu <= L / (1 + hess_noise) = {L / (1.0 + hess_noise):.6g}, got mu={mu!r}")
    if grad_noise < 0 or jac_noise < 0:
        raise ValueError("grad_noise and jac_noise must be >= 0")
    data, mean_hessian = _draw_quadratic(
        jax.random.key(seed), dim, param_dim, n_samples, mu, L, grad_noise, jac_noise, hess_noise
    )
    return Quadratic(
        data=data,
        mean_hessian=mean_hessian,
        hess_noise=jnp.asarray(hess_noise, jnp.float64),
        theta0=jnp.ones(param_dim),
        dim=dim,
    )

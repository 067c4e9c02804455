"""Least squares whose targets move with θ, with or without interpolation.

    f_i(x, θ) = ½ (aᵢᵀx − yᵢ(θ))²,   y(θ) = y₀ + Gθ   (G ∈ R^{n×p})

With `A` of full column rank, `F` is strongly convex with `H = AᵀA/n` and

    x*(θ) = H⁻¹ Aᵀ(y₀ + Gθ)/n,   J* = H⁻¹ AᵀG/n.

Per sample, `∇ₓfᵢ(x*) = aᵢ rᵢ` with residual `rᵢ = aᵢᵀx* − yᵢ(θ)`, and the Jacobian
noise term is `aᵢaᵢᵀJ* − aᵢgᵢᵀ = aᵢ(aᵢᵀJ* − gᵢᵀ)`. The three constructions:

- `"none"`: `y₀ = Aw + noise·ε`, `G` Gaussian. Neither noise vanishes.
- `"double"`: `y₀ = Aw`, `G = AW`. Then `y(θ) = A(w + Wθ)` is interpolated for every θ:
  `x*(θ) = w + Wθ`, every residual is zero (σ² = 0) and `aᵢᵀJ* = aᵢᵀW = gᵢᵀ` (σ_J² = 0).
- `"simple"`: `y(θ) = Aw + G(θ − θ₀)` with `G` Gaussian. At `θ₀` the targets are `Aw`,
  interpolated (σ² = 0), but `G` is not in the range of `A`, so `aᵢᵀJ* ≠ gᵢᵀ` (σ_J² > 0).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from problems._base import FiniteSumProblem, inner
from problems._design import check_conditioning, gaussian_design, gram, max_row_norm_squared
from problems.pytrees import pytree_dataclass, static
from problems.validation import check_count, require_x64

INTERPOLATION_MODES = ("none", "double", "simple")


@pytree_dataclass(repr=False)
class LeastSquares(FiniteSumProblem):
    """Least squares with targets `y₀ + Gθ`; see the module docstring."""

    data: tuple[Float[Array, "n d"], Float[Array, " n"], Float[Array, "n p"]]
    theta0: Float[Array, " p"]
    dim: int = static()
    interpolation: str = static(default="none")

    @property
    def name(self) -> str:
        return f"least_squares[{self.interpolation}]"

    def per_sample_loss(self, x, theta, sample):
        features, target0, target_jac = sample
        return 0.5 * (inner(features, x) - target0 - inner(target_jac, theta)) ** 2

    def _solution(self, theta):
        features, targets0, target_jac = self.data
        n = features.shape[0]
        return jnp.linalg.solve(gram(features), features.T @ (targets0 + target_jac @ theta) / n)

    def _solution_jacobian(self, theta):
        features, _, target_jac = self.data
        return jnp.linalg.solve(gram(features), features.T @ target_jac / features.shape[0])

    def _curvature(self, theta, x_star):
        features = self.data[0]
        return dict(
            mu=jnp.linalg.eigvalsh(gram(features))[0],
            L=max_row_norm_squared(features),
            hessian_lipschitz=jnp.asarray(0.0),
            cross_lipschitz=jnp.asarray(0.0),
        )


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _draw_least_squares(key, n_samples, n_features, param_dim, interpolation, noise, conditioning):
    keys = jax.random.split(key, 5)
    features = gaussian_design(keys[0], n_samples, n_features, conditioning)
    weights = jax.random.normal(keys[1], (n_features,))
    theta0 = jnp.ones(param_dim)
    generic_jac = jax.random.normal(keys[2], (n_samples, param_dim))
    if interpolation == "none":
        return features, features @ weights + noise * jax.random.normal(keys[3], (n_samples,)), generic_jac
    if interpolation == "double":
        return features, features @ weights, features @ jax.random.normal(keys[4], (n_features, param_dim))
    return features, features @ weights - generic_jac @ theta0, generic_jac


def least_squares(
    n_samples: int = 100,
    n_features: int = 5,
    interpolation: str = "none",
    *,
    param_dim: int = 2,
    noise: float = 0.5,
    conditioning: float = 1.0,
    seed: int = 0,
) -> LeastSquares:
    """Least squares with targets parameterised by θ ∈ R^p, `θ₀ = 1`.

    **Arguments:**

    - `n_samples`, `n_features`: the Gaussian design; `n_samples ≥ n_features` is needed
      for strong convexity (and for the design to interpolate a generic target).
    - `interpolation`: `"none"`, `"double"` or `"simple"` (module docstring).
    - `param_dim`: the dimension p of θ.
    - `noise`: target noise for `"none"`; `conditioning`: feature-scale ratio.
    """
    require_x64()
    n_samples = check_count(n_samples, "n_samples")
    n_features = check_count(n_features, "n_features")
    param_dim = check_count(param_dim, "param_dim")
    if interpolation not in INTERPOLATION_MODES:
        raise ValueError(f"interpolation must be one of {INTERPOLATION_MODES}, got {interpolation!r}")
    if n_features > n_samples:
        reason = (
            "the design cannot interpolate every θ identifiably" if interpolation == "double"
            else "AᵀA is singular, so the problem is not strongly convex"
        )
        raise ValueError(
            f"least_squares needs n_samples >= n_features ({reason}); got n_samples={n_samples}, "
            f"n_features={n_features} with interpolation={interpolation!r}"
        )
    data = _draw_least_squares(
        jax.random.key(seed), n_samples, n_features, param_dim, interpolation, noise, check_conditioning(conditioning)
    )
    if np.linalg.matrix_rank(np.asarray(data[0])) < n_features:
        raise ValueError("the drawn design is rank deficient; choose another seed or a smaller conditioning")
    return LeastSquares(
        data=data, theta0=jnp.ones(param_dim), dim=n_features, interpolation=interpolation
    )

"""Ridge regression, with one shared penalty (`ridge`) or one per feature (`weighted_ridge`).

    f_i(x, θ) = ½ (aᵢᵀx − yᵢ)² + ½ Σⱼ wⱼ(θ) xⱼ²,   w(θ) = θ₁·1 (ridge) or θ (weighted ridge)

`F(x, θ) = (1/2n)‖Ax − y‖² + ½ xᵀ diag(w) x`, so with `H(θ) = AᵀA/n + diag(w(θ))`:

    x*(θ) = H⁻¹ Aᵀy/n,   ∂θⱼ x* = −H⁻¹ eⱼ x*ⱼ  (weighted),   ∂λ x* = −H⁻¹ x*  (ridge).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from problems._base import FiniteSumProblem, problem_dataclass, static
from problems._design import check_conditioning, gaussian_design, gram
from problems._validation import as_matrix, check_count, check_positive


@problem_dataclass
class RidgeRegression(FiniteSumProblem):
    """Ridge regression; `tied=True` has θ = (λ,), `tied=False` has θ ∈ Rᵈ."""

    data: tuple[Float[Array, "n d"], Float[Array, " n"]]
    theta0: Float[Array, " p"]
    dim: int = static()
    tied: bool = static(default=True)

    @property
    def name(self) -> str:
        return "ridge" if self.tied else "weighted_ridge"

    def _penalty(self, theta):
        return jnp.full(self.dim, theta[0]) if self.tied else theta

    def per_sample_loss(self, x, theta, sample):
        features, target = sample
        return 0.5 * (features @ x - target) ** 2 + 0.5 * jnp.sum(self._penalty(theta) * x**2)

    def _hessian(self, theta):
        return gram(self.data[0]) + jnp.diag(self._penalty(theta))

    def _solution(self, theta):
        features, targets = self.data
        return jnp.linalg.solve(self._hessian(theta), features.T @ targets / features.shape[0])

    def _solution_jacobian(self, theta):
        x_star = self._solution(theta)
        per_feature = -jnp.linalg.solve(self._hessian(theta), jnp.diag(x_star))
        return per_feature.sum(axis=1, keepdims=True) if self.tied else per_feature

    def _curvature(self, theta, x_star):
        penalty = self._penalty(theta)
        features = self.data[0]
        # λ_max(aaᵀ + diag(w)) has no closed form for unequal w: take it per sample.
        per_sample_max = jax.vmap(
            lambda a: jnp.linalg.eigvalsh(jnp.outer(a, a) + jnp.diag(penalty))[-1]
        )(features)
        return dict(
            mu=jnp.linalg.eigvalsh(self._hessian(theta))[0],
            L=jnp.max(per_sample_max),
            hessian_lipschitz=jnp.asarray(0.0),
            # ∇²ₓθ f = x (ridge) or diag(x) (weighted): Frobenius-Lipschitz with constant 1.
            cross_lipschitz=jnp.asarray(1.0),
        )

    def _check_theta_values(self, theta):
        check_positive(theta, "theta (the ridge penalty λ)" if self.tied else "theta (the per-feature penalties)")


@functools.partial(jax.jit, static_argnums=(1, 2))
def _draw_regression(key, n_samples, n_features, noise, conditioning):
    key_design, key_weights, key_noise = jax.random.split(key, 3)
    features = gaussian_design(key_design, n_samples, n_features, conditioning)
    weights = jax.random.normal(key_weights, (n_features,))
    return features, features @ weights + noise * jax.random.normal(key_noise, (n_samples,))


def _regression_data(n_samples, n_features, noise, conditioning, seed, features, targets):
    if features is None:
        return _draw_regression(
            jax.random.key(seed), check_count(n_samples, "n_samples"), check_count(n_features, "n_features"),
            noise, check_conditioning(conditioning),
        )
    features = as_matrix(features, "features")
    targets = as_matrix(jnp.reshape(jnp.asarray(targets, jnp.float64), (-1, 1)), "targets", features.shape[0])[:, 0]
    return features, targets


def ridge(
    n_samples: int = 200,
    n_features: int = 10,
    *,
    regularisation: float = 0.1,
    noise: float = 0.5,
    conditioning: float = 1.0,
    seed: int = 0,
    features=None,
    targets=None,
    tied: bool = True,
) -> RidgeRegression:
    """Ridge regression with θ = (λ,), on a Gaussian design or on given data.

    **Arguments:**

    - `n_samples`, `n_features`: the size of the drawn design (ignored with `features`).
    - `regularisation`: `θ₀ = (λ₀,)`, which must be > 0.
    - `noise`: standard deviation of the target noise, `y = A w + noise·ε`.
    - `conditioning`: ratio of the largest to the smallest feature scale.
    - `features`, `targets`: an `(n, d)` design and `(n,)` targets to use instead.
    - `tied`: `False` gives `weighted_ridge`, one penalty per feature.

    **Returns:** a problem with `dim = d`, `param_dim = 1` (d when not tied).
    """
    features, targets = _regression_data(n_samples, n_features, noise, conditioning, seed, features, targets)
    d = features.shape[1]
    theta0 = jnp.full(1 if tied else d, regularisation, jnp.float64)
    problem = RidgeRegression(data=(features, targets), theta0=theta0, dim=d, tied=tied)
    problem.check_theta(problem.theta0)
    return problem


def weighted_ridge(n_samples: int = 200, n_features: int = 10, **options) -> RidgeRegression:
    """Ridge regression with one penalty per feature: θ ∈ Rᵈ, all entries > 0.

    The hypergradient setting with many hyperparameters. `options` are those of `ridge`
    (`regularisation`, `noise`, `conditioning`, `seed`, `features`, `targets`);
    `θ₀ = regularisation · 1`.
    """
    return ridge(n_samples, n_features, tied=False, **options)

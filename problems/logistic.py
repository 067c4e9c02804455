"""L2-regularised logistic regression, θ = (λ,).

    f_i(x, λ) = log(1 + exp(−yᵢ aᵢᵀx)) + (λ/2)‖x‖²,   yᵢ ∈ {−1, +1}

No closed form for `x*`: it is found by Newton's method to machine precision. With
`sᵢ = s(yᵢaᵢᵀx*)`, `s(m) = σ(m)(1 − σ(m))`, the Hessian is `H = Aᵀdiag(s)A/n + λI` and
the implicit function theorem gives `∂λ x* = −H⁻¹ x*`.

Constants (exact suprema):

- `μ = λ`: the data term's curvature `s(m)` tends to 0 as `|m| → ∞`.
- `L = maxᵢ ‖aᵢ‖²/4 + λ`, since `sup s = s(0) = 1/4`.
- `∇²ₓₓfᵢ = s(yᵢaᵢᵀx) aᵢaᵢᵀ + λI` is Lipschitz with `maxᵢ ‖aᵢ‖³ · sup|s'|`,
  `sup|s'| = 1/(6√3)` (attained where `σ(m) = ½ ± 1/(2√3)`).
- `∇²ₓλ fᵢ = x`, Lipschitz with constant 1.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from problems._base import FiniteSumProblem, inner
from problems._design import check_conditioning, gaussian_design, max_row_norm_squared
from problems._newton import newton_minimise
from problems.pytrees import pytree_dataclass, static
from problems.validation import as_matrix, check_count, check_positive, require_x64

# A Python float: an array made at import would be float32 when float64 is not yet on.
SUP_LOGISTIC_THIRD_DERIVATIVE = 1.0 / (6.0 * math.sqrt(3.0))


@pytree_dataclass(repr=False)
class LogisticRegression(FiniteSumProblem):
    """L2-regularised logistic regression; see the module docstring."""

    data: tuple[Float[Array, "n d"], Float[Array, " n"]]
    theta0: Float[Array, " 1"]
    dim: int = static()
    name = "logistic"

    def per_sample_loss(self, x, theta, sample):
        features, label = sample
        return jnp.logaddexp(0.0, -label * inner(features, x)) + 0.5 * theta[0] * inner(x, x)

    def _solution(self, theta):
        return newton_minimise(
            lambda x: self.objective(x, theta), jnp.zeros(self.dim), hessian=lambda x: self._hessian(theta, x)
        )

    def _hessian(self, theta, x):
        features, labels = self.data
        margin = labels * (features @ x)
        curvature = jax.nn.sigmoid(margin) * jax.nn.sigmoid(-margin)
        return (features.T * curvature) @ features / features.shape[0] + theta[0] * jnp.eye(self.dim)

    def _solution_jacobian(self, theta):
        x_star = self._solution(theta)
        return -jnp.linalg.solve(self._hessian(theta, x_star), x_star)[:, None]

    def _curvature(self, theta, x_star):
        row_norms_sq = max_row_norm_squared(self.data[0])
        return dict(
            mu=theta[0],
            L=row_norms_sq / 4.0 + theta[0],
            hessian_lipschitz=row_norms_sq**1.5 * SUP_LOGISTIC_THIRD_DERIVATIVE,
            cross_lipschitz=jnp.asarray(1.0),
        )

    def _check_theta_values(self, theta):
        check_positive(theta, "theta (the L2 penalty λ)")


@functools.partial(jax.jit, static_argnums=(1, 2))
def _draw_classification(key, n_samples, n_features, conditioning):
    key_design, key_weights, key_labels = jax.random.split(key, 3)
    features = gaussian_design(key_design, n_samples, n_features, conditioning)
    weights = jax.random.normal(key_weights, (n_features,))
    positive = jax.random.bernoulli(key_labels, jax.nn.sigmoid(features @ weights))
    return features, jnp.where(positive, 1.0, -1.0)


def logistic(
    n_samples: int = 200,
    n_features: int = 10,
    *,
    regularisation: float = 0.1,
    conditioning: float = 1.0,
    seed: int = 0,
    features=None,
    labels=None,
) -> LogisticRegression:
    """Logistic regression on a Gaussian design with labels drawn from a logistic model.

    **Arguments:**

    - `n_samples`, `n_features`, `conditioning`, `seed`: the drawn design (ignored
      when `features` and `labels` are given; labels must then be ±1).
    - `regularisation`: `θ₀ = (λ₀,)`, > 0.
    """
    require_x64()
    if features is None:
        features, labels = _draw_classification(
            jax.random.key(seed), check_count(n_samples, "n_samples"), check_count(n_features, "n_features"),
            check_conditioning(conditioning),
        )
    else:
        features = as_matrix(features, "features")
        labels = jnp.asarray(labels, jnp.float64)
        if labels.shape != (features.shape[0],) or not bool(jnp.all(jnp.abs(labels) == 1.0)):
            raise ValueError(f"labels must be ±1 with shape ({features.shape[0]},)")
    problem = LogisticRegression(
        data=(features, labels), theta0=jnp.array([regularisation], jnp.float64), dim=features.shape[1]
    )
    problem.check_theta(problem.theta0)
    return problem

"""Ridge regression, with one shared penalty (`ridge`) or one per feature (`weighted_ridge`).

    f_i(x, θ) = ½ (aᵢᵀx − yᵢ)² + ½ Σⱼ wⱼ(θ) xⱼ²,   w(θ) = θ₁·1 (ridge) or θ (weighted ridge)

`F(x, θ) = (1/2n)‖Ax − y‖² + ½ xᵀ diag(w) x`, so with `H(θ) = AᵀA/n + diag(w(θ))`:

    x*(θ) = H⁻¹ Aᵀy/n,   ∂θⱼ x* = −H⁻¹ eⱼ x*ⱼ  (weighted),   ∂λ x* = −H⁻¹ x*  (ridge).

Constants: `μ = λ_min(H)` (one d×d eigendecomposition); `L = maxᵢ λ_max(aᵢaᵢᵀ + diag(w))`,
which is `maxᵢ ‖aᵢ‖² + λ` for ridge and the largest root of a secular equation per sample
for weighted ridge (`largest_eigenvalue_diagonal_plus_rank_one`), `O(n·d)` either way.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from problems._base import FiniteSumProblem, inner
from problems._design import check_conditioning, gaussian_design, gram, max_row_norm_squared
from problems.pytrees import pytree_dataclass, static
from problems.validation import as_matrix, check_count, check_positive, require_x64

# Bisection steps of the secular equation: the bracket [0, ‖a‖²] shrinks to 2⁻⁶⁴‖a‖²,
# below float64's resolution of λ_max ≥ ‖a‖² (see `largest_eigenvalue_diagonal_plus_rank_one`).
SECULAR_BISECTION_STEPS = 64


@pytree_dataclass(repr=False)
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
        return 0.5 * (inner(features, x) - target) ** 2 + 0.5 * jnp.sum(self._penalty(theta) * x**2)

    def _hessian(self, theta):
        return gram(self.data[0]) + jnp.diag(self._penalty(theta))

    def _solution(self, theta):
        features, targets = self.data
        return jnp.linalg.solve(self._hessian(theta), features.T @ targets / features.shape[0])

    def _solution_jacobian(self, theta):
        x_star = self._solution(theta)
        if self.tied:
            return -jnp.linalg.solve(self._hessian(theta), x_star)[:, None]
        return -jnp.linalg.solve(self._hessian(theta), jnp.diag(x_star))

    def _curvature(self, theta, x_star):
        features = self.data[0]
        if self.tied:
            # aaᵀ + λI has eigenvalues ‖a‖² + λ and λ.
            largest = max_row_norm_squared(features) + theta[0]
        else:
            per_sample = jax.vmap(largest_eigenvalue_diagonal_plus_rank_one, in_axes=(None, 0))
            largest = jnp.max(per_sample(theta, features))
        return dict(
            mu=jnp.linalg.eigvalsh(self._hessian(theta))[0],
            L=largest,
            hessian_lipschitz=jnp.asarray(0.0),
            # ∇²ₓθ f = x (ridge) or diag(x) (weighted): Frobenius-Lipschitz with constant 1.
            cross_lipschitz=jnp.asarray(1.0),
        )

    def _check_theta_values(self, theta):
        check_positive(theta, "theta (the ridge penalty λ)" if self.tied else "theta (the per-feature penalties)")


def largest_eigenvalue_diagonal_plus_rank_one(
    diagonal: Float[Array, " d"], vector: Float[Array, " d"], num_steps: int = SECULAR_BISECTION_STEPS
) -> Float[Array, ""]:
    """`λ_max(diag(w) + aaᵀ)` for `w = diagonal`, `a = vector`, in `O(d)` per step.

    With `m = max w`, `δⱼ = m − wⱼ ≥ 0` and `λ = m + t`, an eigenvalue `λ > m` is a root of
    the secular equation `1 = Σⱼ aⱼ²/(λ − wⱼ)`, that is of

        φ(t) = Σⱼ aⱼ² / (t + δⱼ) = 1,   t > 0.

    `φ` decreases on `t > 0` and `φ(‖a‖²) ≤ Σⱼ aⱼ²/‖a‖² = 1`, so the largest eigenvalue is
    `m + t*` with `t*` in the bracket `[0, ‖a‖²]`: the root of `φ = 1` if `φ(0⁺) > 1`, and `m`
    itself otherwise. Degenerate cases need nothing special: a component with `aⱼ = 0`
    contributes no term (its `eⱼ` is an eigenvector with eigenvalue `wⱼ ≤ m`); equal weights
    merge their terms; `φ(0⁺) ≤ 1` happens only when every `aⱼ` at the largest weight is zero,
    and then `m` is the answer; `a = 0` gives the bracket `[0, 0]` and exactly `m`.

    The root is found by `num_steps` bisections of the bracket, each one `O(d)` pass, so the
    error in `t*` is at most `2^−(num_steps+1)·‖a‖²`. For `w ≥ 0`, `λ_max ≥ ‖a‖² + min w ≥ ‖a‖²`
    (the Rayleigh quotient at `a`), so 64 steps bring this below float64's resolution of `λ_max`.
    What remains is the rounding of `φ`: a relative error `ε ≤ d·eps` in `φ` near the root moves
    it by at most `ε‖a‖² ≤ d·eps·λ_max`, since `|φ'(t*)| ≥ 1/‖a‖²` (Cauchy–Schwarz).
    """
    top = jnp.max(diagonal)
    gaps = top - diagonal
    weights = vector**2
    active = weights > 0

    def secular(t):
        # A zero weight contributes nothing, even at t = 0 where its gap may vanish.
        return jnp.sum(jnp.where(active, weights / jnp.where(active, t + gaps, 1.0), 0.0))

    def bisect(_, bracket):
        low, high = bracket
        middle = low + 0.5 * (high - low)
        below_root = secular(middle) > 1.0
        return jnp.where(below_root, middle, low), jnp.where(below_root, high, middle)

    low, high = lax.fori_loop(0, num_steps, bisect, (jnp.zeros_like(top), jnp.sum(weights)))
    return top + (low + 0.5 * (high - low))


@functools.partial(jax.jit, static_argnums=(1, 2))
def draw_regression(key, n_samples, n_features, noise, conditioning):
    """`(A, y, w)`: a Gaussian design (feature scales from 1 to `1/conditioning`), a teacher
    `w ~ N(0, I)` and targets `y = Aw + noise·ε`."""
    key_design, key_weights, key_noise = jax.random.split(key, 3)
    features = gaussian_design(key_design, n_samples, n_features, conditioning)
    weights = jax.random.normal(key_weights, (n_features,))
    return features, features @ weights + noise * jax.random.normal(key_noise, (n_samples,)), weights


def _regression_data(n_samples, n_features, noise, conditioning, seed, features, targets):
    if features is None:
        return draw_regression(
            jax.random.key(seed), check_count(n_samples, "n_samples"), check_count(n_features, "n_features"),
            noise, check_conditioning(conditioning),
        )[:2]
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
    require_x64()
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
    require_x64()
    return ridge(n_samples, n_features, tied=False, **options)

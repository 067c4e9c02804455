"""Regression and classification with one weight per training sample, `θ ∈ Rⁿ`.

    fᵢ(x, θ) = σ(θᵢ)·ℓ(aᵢᵀx, yᵢ) + (ρ/2)‖x‖²,   σ the logistic sigmoid, ρ > 0

so `F(x, θ) = (1/n) Σᵢ σ(θᵢ) ℓ(aᵢᵀx, yᵢ) + (ρ/2)‖x‖²`: the inner problem of data hyper-cleaning
(`problems.bilevel.hyper_cleaning`), where the weights `σ(θᵢ) ∈ (0, 1)` are learnt. The penalty
`ρ > 0` keeps `F` strongly convex however close to 0 the weights come. Each sample carries its
own index, `ξᵢ = (aᵢ, yᵢ, i)`, so that its loss reads its own weight, and minibatches drawn by
`sample` (and minibatch SGD) need nothing special.

Losses, with `ℓ'`, `ℓ''` the derivatives in `z = aᵀx`:

- `"squared"`: `ℓ(z, y) = ½(z − y)²`, `ℓ' = z − y`, `ℓ'' = 1`.
- `"logistic"`: `ℓ(z, y) = log(1 + exp(−yz))`, `y ∈ {−1, +1}`, `ℓ' = −y σ(−yz)`,
  `ℓ'' = σ(z)σ(−z) ≤ ¼`.

With `w = σ(θ)`, `H = Aᵀ diag(w ∘ ℓ''(Ax*)) A / n + ρI` and the implicit function theorem on
`∇ₓF = Aᵀ diag(w) ℓ'(Ax) / n + ρx = 0`:

    ∂θ x* = −H⁻¹ Aᵀ diag(σ'(θ) ∘ ℓ'(Ax*)) / n,   σ' = σ(1 − σ).

Squared: `x* = H⁻¹ Aᵀ diag(w) y / n` in closed form. Logistic: `x*` by Newton's method to machine
precision, and the Jacobian by the formula above at that point.

Constants (`c = sup ℓ''`: 1 squared, ¼ logistic). All are exact; none is listed as estimated.

- `μ`: squared `λ_min(H)`, exact (the Hessian does not depend on `x`). Logistic `ρ`: the
  infimum over `x` of `λ_min(∇²ₓₓF)`, approached as every margin grows (`ℓ'' → 0`), so the
  exact global constant; the curvature at `x*` is larger.
- `L = maxᵢ c σ(θᵢ)‖aᵢ‖² + ρ`, since `∇²ₓₓfᵢ = σ(θᵢ) ℓ''(aᵢᵀx) aᵢaᵢᵀ + ρI`: attained at
  every `x` (squared) and at `x = 0` (logistic).
- `hessian_lipschitz`: 0 (squared); `maxᵢ σ(θᵢ)‖aᵢ‖³/(6√3)` (logistic, `sup|ℓ'''| = 1/(6√3)`),
  the supremum, approached along `aᵢ` where `σ(z) = ½ ± 1/(2√3)`.
- `cross_lipschitz`: `∇²ₓθ fᵢ = σ'(θᵢ) ℓ'(aᵢᵀx) aᵢeᵢᵀ`, whose change between `x₁` and `x₂` has
  Frobenius norm `σ'(θᵢ)‖aᵢ‖·|ℓ'(aᵢᵀx₁) − ℓ'(aᵢᵀx₂)| ≤ c σ'(θᵢ)‖aᵢ‖²‖x₁ − x₂‖`: the constant
  `maxᵢ c σ'(θᵢ)‖aᵢ‖²` (at most `c·maxᵢ‖aᵢ‖²/4`), attained along `aᵢ` (squared) and approached
  at margin 0 (logistic).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from problems._base import FiniteSumProblem
from problems._newton import newton_minimise
from problems.pytrees import pytree_dataclass, static
from problems.validation import ArrayInput, as_matrix, as_theta, require_x64

LOSSES = ("squared", "logistic")
# Python floats: an array made at import would be float32 when float64 is not yet on.
_SUP_CURVATURE = {"squared": 1.0, "logistic": 0.25}
_SUP_LOGISTIC_THIRD_DERIVATIVE = 1.0 / (6.0 * math.sqrt(3.0))


@pytree_dataclass(repr=False)
class SampleWeightedRegression(FiniteSumProblem):
    """`F(x, θ) = (1/n) Σᵢ σ(θᵢ) ℓ(aᵢᵀx, yᵢ) + (ρ/2)‖x‖²`; see the module docstring.

    `data = (features, targets, index)`, `regularisation = ρ` (a leaf, so a new ρ does not
    recompile), `loss` one of `LOSSES`.
    """

    data: tuple[Float[Array, "n d"], Float[Array, " n"], Int[Array, " n"]]
    theta0: Float[Array, " n"]
    regularisation: Float[Array, ""]
    dim: int = static()
    loss_name: str = static(default="squared")

    @property
    def name(self) -> str:
        return f"sample_weighted[{self.loss_name}]"

    def _pointwise(self, z, target):
        if self.loss_name == "squared":
            return 0.5 * (z - target) ** 2
        return jnp.logaddexp(0.0, -target * z)

    def _slope(self, z, target):
        """`ℓ'(z)`, elementwise."""
        if self.loss_name == "squared":
            return z - target
        return -target * jax.nn.sigmoid(-target * z)

    def _curvature_of_loss(self, z):
        """`ℓ''(z)`, elementwise."""
        if self.loss_name == "squared":
            return jnp.ones_like(z)
        return jax.nn.sigmoid(z) * jax.nn.sigmoid(-z)

    def per_sample_loss(self, x, theta, sample):
        features, target, index = sample
        weight = jax.nn.sigmoid(theta[index])
        return weight * self._pointwise(features @ x, target) + 0.5 * self.regularisation * (x @ x)

    def jacobian_step(self, theta: Float[Array, " n"], batch, x: Float[Array, " d"], jac: Float[Array, "d n"],
                      alpha: Float[ArrayLike, ""]) -> tuple[Float[Array, " d"], Float[Array, "d n"]]:
        """One SGD step on the minibatch `batch` and the derivative recursion, in closed form.

        On b samples `(A_B, y_B, B)` with `z = A_B x` and `w = σ(θ_B)`,

            ∇ₓf_B    = A_Bᵀ(w ∘ ℓ'(z))/b + ρx,
            ∇²ₓₓf_B  = A_Bᵀ diag(w ∘ ℓ''(z)) A_B / b + ρI           (rank b, plus ρI),
            ∇²ₓθ f_B = A_Bᵀ diag(σ'(θ_B) ∘ ℓ'(z)) E_Bᵀ / b          (b nonzero columns),

        with `E_B` the columns of the identity at the sampled indices (repeats add up). So

            J_{k+1} = (1 − αρ)J − (α/b) A_Bᵀ[(w ∘ ℓ''(z)) ∘ (A_B J)] − (α/b) A_Bᵀ diag(σ'(θ_B) ∘ ℓ'(z)) E_Bᵀ,

        `O(b·d·n)` a step, with `J` stored as `(d, n)` so that the long axis n is contiguous:
        the recursion of `derivatives.sgd.derivative_step`, which `derivatives.ClosedFormRecursion`
        carries (at d = 10, n = 200, 64 seeds on one CPU core, 2.2× faster than the n
        Jacobian-vector products of `TangentRecursion`). Returns `(x_{k+1}, J_{k+1})`.
        """
        features, targets, index = batch
        count = features.shape[0]
        z = features @ x
        sigmoid = jax.nn.sigmoid(theta[index])
        slope = self._slope(z, targets)
        x_next = x - alpha * (features.T @ (sigmoid * slope) / count + self.regularisation * x)
        curvature = (alpha / count) * sigmoid * self._curvature_of_loss(z)
        jac_next = (1.0 - alpha * self.regularisation) * jac - features.T @ (curvature[:, None] * (features @ jac))
        cross = (alpha / count) * sigmoid * (1.0 - sigmoid) * slope
        return x_next, jac_next.at[:, index].add(-features.T * cross)

    def _hessian(self, theta, x):
        features = self.data[0]
        curvature = jax.nn.sigmoid(theta) * self._curvature_of_loss(features @ x)
        return (features.T * curvature) @ features / features.shape[0] + self.regularisation * jnp.eye(self.dim)

    def _solution(self, theta):
        features, targets, _ = self.data
        if self.loss_name == "squared":
            rhs = features.T @ (jax.nn.sigmoid(theta) * targets) / features.shape[0]
            return jnp.linalg.solve(self._hessian(theta, jnp.zeros(self.dim)), rhs)
        return newton_minimise(
            lambda x: self.objective(x, theta), jnp.zeros(self.dim), hessian=lambda x: self._hessian(theta, x)
        )

    def _solution_jacobian(self, theta):
        features, targets, _ = self.data
        x_star = self._solution(theta)
        # ∇²ₓθ F = Aᵀ diag(σ'(θ) ∘ ℓ'(Ax*)) / n, one column per sample.
        sigmoid = jax.nn.sigmoid(theta)
        scale = sigmoid * (1.0 - sigmoid) * self._slope(features @ x_star, targets)
        return -jnp.linalg.solve(self._hessian(theta, x_star), features.T * scale) / features.shape[0]

    def _curvature(self, theta, x_star):
        features = self.data[0]
        row_norms_sq = jnp.sum(features**2, axis=1)
        sigmoid = jax.nn.sigmoid(theta)
        c = _SUP_CURVATURE[self.loss_name]
        if self.loss_name == "squared":
            mu = jnp.linalg.eigvalsh(self._hessian(theta, x_star))[0]
            hessian_lipschitz = jnp.asarray(0.0)
        else:
            mu = self.regularisation
            hessian_lipschitz = jnp.max(sigmoid * row_norms_sq**1.5) * _SUP_LOGISTIC_THIRD_DERIVATIVE
        return dict(
            mu=mu,
            L=c * jnp.max(sigmoid * row_norms_sq) + self.regularisation,
            hessian_lipschitz=hessian_lipschitz,
            cross_lipschitz=c * jnp.max(sigmoid * (1.0 - sigmoid) * row_norms_sq),
        )

    def __repr__(self) -> str:
        return f"{self.name}(n_samples={self.n_samples}, dim={self.dim}, param_dim={self.param_dim})"


def sample_weighted(
    features: ArrayInput,
    targets: ArrayInput,
    *,
    loss: str = "squared",
    regularisation: float | int = 0.1,
    theta0: ArrayInput = None,
) -> SampleWeightedRegression:
    """The sample-weighted problem on given data, `θ ∈ Rⁿ` (one weight logit per sample).

    **Arguments:**

    - `features`: the `(n, d)` design `A`; `targets`: `(n,)`, which must be ±1 for `"logistic"`.
    - `loss`: `"squared"` or `"logistic"`.
    - `regularisation`: `ρ > 0`.
    - `theta0`: the default `θ`, shape `(n,)`; default 0 (every weight `σ(0) = ½`).

    **Returns:** a problem with `dim = d` and `param_dim = n`.
    """
    require_x64()
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    regularisation = check_regularisation(regularisation)
    features = as_matrix(features, "features")
    n, d = features.shape
    targets = as_matrix(jnp.reshape(jnp.asarray(targets, jnp.float64), (-1, 1)), "targets", n)[:, 0]
    if loss == "logistic" and not bool(jnp.all(jnp.abs(targets) == 1.0)):
        raise ValueError("targets must be ±1 labels for loss='logistic'")
    theta0 = jnp.zeros(n) if theta0 is None else as_theta(theta0, n)
    return SampleWeightedRegression(
        data=(features, targets, jnp.arange(n)), theta0=theta0,
        regularisation=jnp.asarray(regularisation, jnp.float64), dim=d, loss_name=loss,
    )


def check_regularisation(regularisation: float | int) -> float:
    """`ρ` as a float; raises `ValueError` naming `regularisation` unless it is a finite number > 0."""
    try:
        value = float(regularisation)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(regularisation, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"regularisation must be a finite number > 0 (the problem is strongly convex only then), "
            f"got {regularisation!r}"
        )
    return value

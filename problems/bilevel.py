"""Bilevel problems with exact hypergradients.

An inner problem `x*(θ) = argmin_x F(x, θ)` (a `Problem`) and an outer objective `G(x, θ)`;
the value is `h(θ) = G(x*(θ), θ)` and its gradient, the hypergradient, is

    ∇h(θ) = ∇θG(x*, θ) + J*ᵀ ∇ₓG(x*, θ),   J* = ∂θ x*(θ) = inner.solution_jacobian(θ),

exact whenever the inner problem's Jacobian is (a closed form, or the implicit function
theorem at a Newton point, exact to machine precision).

    B = ridge_validation(200, 100, 10)           # θ = (λ,), or θ ∈ Rᵈ with per_feature=True
    B = hyper_cleaning(100, 100, 10, corruption=0.3, loss="squared" | "logistic")
    B = from_outer(inner, outer_loss, outer_data)   # any Problem and any smooth outer loss
    B.value(θ), B.hypergradient(θ), B.outer(x, θ), B.outer_gradients(x, θ)

The generators:

- `ridge_validation`: ridge regression on a training set, `G` the mean squared error on a
  validation set drawn from the same linear teacher, `G(x) = (1/2m)‖Bx − z‖²`, `∇θG = 0`. With
  `H = AᵀA/n + diag(w(θ))`, `∂λ x* = −H⁻¹x*` (one shared λ) and `∂θⱼ x* = −H⁻¹eⱼx*ⱼ` (one per
  feature), so the hypergradient is `−x*ᵀH⁻¹∇ₓG` and `−x* ∘ H⁻¹∇ₓG` respectively.
- `hyper_cleaning` (Franceschi et al., 2017): a training set whose labels are partly flipped,
  one weight `σ(θᵢ)` per training sample learnt so that the model fits the clean validation
  set. The inner problem is `problems.weighted_regression.SampleWeightedRegression`; with
  `ℓ'` the loss's derivative in `z = aᵀx`, the hypergradient is
  `hᵢ = −σ'(θᵢ) ℓ'(aᵢᵀx*, yᵢ) aᵢᵀH⁻¹∇ₓG / n`: the influence of sample i on the validation
  loss, positive (its weight should fall) when fitting it harms the validation fit.

**References:** L. Franceschi, M. Donini, P. Frasconi, M. Pontil, "Forward and Reverse
Gradient-Based Hyperparameter Optimization", ICML 2017 (data hyper-cleaning).
F. Pedregosa, "Hyperparameter optimization with approximate gradient", ICML 2016.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PyTree

from problems._base import Problem
from problems._design import check_conditioning, gaussian_design
from problems.pytrees import pytree_dataclass, static
from problems.ridge import draw_regression, ridge
from problems.validation import (
    ArrayInput,
    CountLike,
    FlagLike,
    check_count,
    check_finite_data,
    check_scalar_function,
    concrete,
    require_x64,
)
from problems.weighted_regression import LOSSES, check_regularisation, sample_weighted


@pytree_dataclass(repr=False)
class DataInfo:
    """How a generator drew its data; kept for inspection, unused by the computations.

    - `teacher`: the true weights shared by the training and the validation sets.
    - `corrupted`: for `hyper_cleaning`, which training labels were flipped (boolean, one
      per training sample); `None` otherwise.
    """

    teacher: Float[Array, " d"]
    corrupted: Bool[Array, " n"] | None = None

    def __repr__(self) -> str:
        flipped = "" if self.corrupted is None else f", corrupted={int(np.sum(np.asarray(self.corrupted)))}"
        return f"DataInfo(dim={self.teacher.shape[0]}{flipped})"


@pytree_dataclass(repr=False)
class Bilevel:
    """`min_θ h(θ) = G(x*(θ), θ)` with `x*(θ) = argmin_x F(x, θ)`; build one with `from_outer`
    or a generator of this module.

    A pytree: `inner`, `outer_data` and `info` are leaves, `outer_loss` and `name` metadata,
    so a `Bilevel` passes through `jit` as an argument and new data of the same shape does
    not recompile.

    - `inner`: the inner problem, a `Problem` (everything a problem offers works on it).
    - `outer_data`: the pytree the outer loss reads (for the generators, a validation set).
    - `outer_loss`: `(x, θ, outer_data) -> G`, a scalar, differentiable in `x` and `θ`.
    - `name`: shown by `repr`.
    - `info`: what the generator knows about its draw (`DataInfo`; `None` for `from_outer`),
      for example `info.corrupted`, the flipped training labels of `hyper_cleaning`.
    """

    inner: Problem
    outer_data: PyTree
    outer_loss: Callable = static()
    name: str = static(default="bilevel")
    info: DataInfo | None = None

    @property
    def theta0(self) -> Float[Array, " p"]:
        """The default `θ`: the inner problem's."""
        return self.inner.theta0

    @property
    def param_dim(self) -> int:
        """p, the dimension of `θ`."""
        return self.inner.param_dim

    @property
    def dim(self) -> int:
        """d, the dimension of the inner variable `x`."""
        return self.inner.dim

    def check_theta(self, theta: ArrayInput) -> Float[Array, " p"]:
        """`θ` as float64 of shape `(p,)`, checked by the inner problem."""
        return self.inner.check_theta(theta)

    def check_x(self, x: ArrayInput) -> Float[Array, " d"]:
        """`x` as float64 of shape `(d,)`; raises `ValueError` naming `x` otherwise."""
        require_x64()
        x = jnp.asarray(x, jnp.float64)
        if x.shape != (self.dim,):
            raise ValueError(f"x must have shape ({self.dim},) for this problem, got shape {x.shape}")
        return x

    def outer(self, x: ArrayInput, theta: ArrayInput) -> Float[Array, ""]:
        """`G(x, θ)`."""
        return _outer(self, self.check_x(x), self.check_theta(theta))

    def outer_gradients(
        self, x: ArrayInput, theta: ArrayInput
    ) -> tuple[Float[Array, " d"], Float[Array, " p"]]:
        """`(∇ₓG(x, θ), ∇θG(x, θ))`, by autodiff of `outer_loss`."""
        return _outer_gradients(self, self.check_x(x), self.check_theta(theta))

    def value(self, theta: ArrayInput) -> Float[Array, ""]:
        """`h(θ) = G(x*(θ), θ)`, at the inner problem's exact solution."""
        return _value(self, self.check_theta(theta))

    def outer_smoothness(self) -> OuterSmoothness:
        """The Lipschitz constants in x of `∇ₓG(·, θ)` and `∇θG(·, θ)`, for the outer losses of
        this module (`OUTER_SMOOTHNESS`); raises `ValueError` for another outer loss."""
        if self.outer_loss not in OUTER_SMOOTHNESS:
            raise ValueError(f"the smoothness of outer_loss {getattr(self.outer_loss, '__name__', self.outer_loss)!r} "
                             f"is not known; known: {[f.__name__ for f in OUTER_SMOOTHNESS]}")
        return OUTER_SMOOTHNESS[self.outer_loss](self.outer_data)

    def hypergradient(self, theta: ArrayInput) -> Float[Array, " p"]:
        """`∇h(θ) = ∇θG + J*ᵀ∇ₓG` at `x*(θ)`, with `J* = inner.solution_jacobian(θ)`: exact when
        `J*` is (for the generators of this module, to machine precision)."""
        return _hypergradient(self, self.check_theta(theta))

    def __repr__(self) -> str:
        leaves = jax.tree_util.tree_leaves(self.outer_data)
        n_val = f", n_val={leaves[0].shape[0]}" if leaves and np.ndim(leaves[0]) else ""
        return f"{self.name}(inner={self.inner!r}{n_val}, param_dim={self.param_dim})"


# Jitted once per bilevel class, outer loss and shape, like the problems' own solutions.
@jax.jit
def _outer(bilevel, x, theta):
    return bilevel.outer_loss(x, theta, bilevel.outer_data)


@jax.jit
def _outer_gradients(bilevel, x, theta):
    return jax.grad(bilevel.outer_loss, argnums=(0, 1))(x, theta, bilevel.outer_data)


@jax.jit
def _value(bilevel, theta):
    return bilevel.outer_loss(bilevel.inner.solution(theta), theta, bilevel.outer_data)


@jax.jit
def _hypergradient(bilevel, theta):
    x_star = bilevel.inner.solution(theta)
    jac_star = bilevel.inner.solution_jacobian(theta)
    outer_x, outer_theta = jax.grad(bilevel.outer_loss, argnums=(0, 1))(x_star, theta, bilevel.outer_data)
    return outer_theta + jac_star.T @ outer_x


# --- outer losses ----------------------------------------------------------------------


def validation_mean_squared_error(x: Float[Array, " d"], theta: Float[Array, " p"], data: PyTree) -> Float[Array, ""]:
    """`(1/2m)‖Bx − z‖²` on `data = (B, z)`; independent of `θ`."""
    features, targets = data
    return 0.5 * jnp.mean((features @ x - targets) ** 2)


def validation_logistic_loss(x: Float[Array, " d"], theta: Float[Array, " p"], data: PyTree) -> Float[Array, ""]:
    """`(1/m) Σⱼ log(1 + exp(−zⱼ bⱼᵀx))` on `data = (B, z)`, `z ∈ {−1, +1}ᵐ`; independent of `θ`."""
    features, labels = data
    return jnp.mean(jnp.logaddexp(0.0, -labels * (features @ x)))


class OuterSmoothness(NamedTuple):
    """`L_Gx` and `L_Gθ`: Lipschitz constants in x of `∇ₓG(·, θ)` and of `∇θG(·, θ)`."""

    gradient_x: float
    gradient_theta: float


def _gram_top(features) -> float:
    """`λ_max(BᵀB)/m` for the m rows of B."""
    features = np.asarray(features)
    return float(np.linalg.eigvalsh(features.T @ features)[-1] / features.shape[0])


# ∇²ₓG = BᵀB/m (squared error); BᵀDB/m with D = diag(σ'(·)) ≤ I/4 (logistic); neither reads θ.
OUTER_SMOOTHNESS: dict[Callable, Callable[[PyTree], OuterSmoothness]] = {
    validation_mean_squared_error: lambda data: OuterSmoothness(_gram_top(data[0]), 0.0),
    validation_logistic_loss: lambda data: OuterSmoothness(0.25 * _gram_top(data[0]), 0.0),
}


# --- constructors ----------------------------------------------------------------------


def from_outer(inner, outer_loss, outer_data: PyTree = None, name: str = "bilevel") -> Bilevel:
    """A bilevel problem from any inner problem and any smooth outer loss.

    The hypergradient `∇θG + J*ᵀ∇ₓG` takes `J*` from `inner.solution_jacobian`, so it is
    exactly as exact as that: to machine precision for the generators of this package,
    and for `problems.from_loss` as good as Newton's solution and the implicit function
    theorem at it. `∇ₓG` and `∇θG` come from autodiff of `outer_loss`.

    **Arguments:**

    - `inner`: a `Problem` that is a pytree (every problem of this package is).
    - `outer_loss`: `(x, θ, outer_data) -> scalar`, a JAX function; `x` of shape `(d,)`, `θ`
      of shape `(p,)`. A module-level function keeps compiled code reusable across instances.
    - `outer_data`: a pytree of arrays the outer loss reads (for example a validation set).
    - `name`: shown by `repr`.

    **Returns:** a `Bilevel`. `outer_loss` is traced once on abstract values (nothing is
    compiled) to check that it accepts these shapes and returns a scalar.
    """
    require_x64()
    if not isinstance(inner, Problem):
        raise TypeError(f"inner must be a problems.Problem (dim, param_dim, theta0, solution, ...), "
                        f"got {type(inner).__name__}")
    leaves = jax.tree_util.tree_leaves(inner)
    if any(not isinstance(leaf, (jax.Array, np.ndarray, np.generic)) for leaf in leaves):
        raise TypeError(f"inner must be a pytree whose leaves are arrays, so that the bilevel problem passes "
                        f"through jit (every problem of this package is), got {type(inner).__name__}")
    if not callable(outer_loss):
        raise TypeError(f"outer_loss must be a function (x, theta, outer_data) -> scalar, got {outer_loss!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    outer_data = jax.tree_util.tree_map(jnp.asarray, outer_data)
    check_finite_data(outer_data, "outer_data")
    _check_outer_shapes(outer_loss, outer_data, inner.dim, inner.param_dim)
    return Bilevel(inner=inner, outer_data=outer_data, outer_loss=outer_loss, name=name)


def _check_outer_shapes(outer_loss, outer_data, dim, param_dim) -> None:
    """Trace `outer_loss` on abstract `x`, `θ` and the data; nothing is compiled or run."""
    x = jax.ShapeDtypeStruct((dim,), jnp.float64)
    theta = jax.ShapeDtypeStruct((param_dim,), jnp.float64)
    check_scalar_function(
        outer_loss, (x, theta, outer_data),
        fails=f"outer_loss(x, θ, outer_data) fails for x of shape ({dim},) and θ of shape ({param_dim},), "
              f"the inner problem's",
        not_scalar="outer_loss must return a scalar")


def ridge_validation(
    n_train: CountLike = 200,
    n_val: CountLike = 100,
    n_features: CountLike = 10,
    *,
    per_feature: FlagLike = False,
    regularisation: float | int = 0.1,
    noise: float | int = 0.5,
    conditioning: float | int = 1.0,
    seed: CountLike = 0,
) -> Bilevel:
    """Ridge penalties tuned on a validation set.

    Training and validation rows are drawn together: Gaussian features (scales falling from 1
    to `1/conditioning`), one teacher `w ~ N(0, I)`, targets `y = Aw + noise·ε`. The inner
    problem is `problems.ridge` on the training rows (θ = (λ,)) or, with `per_feature=True`,
    `problems.weighted_ridge` (θ ∈ Rᵈ); the outer loss is the validation mean squared error
    `(1/2m)‖Bx − z‖²` (`validation_mean_squared_error`), which does not depend on θ.

    Hypergradient, exact: `−x*ᵀH⁻¹∇ₓG` (tied) or `−x* ∘ H⁻¹∇ₓG` (per feature), with
    `H = AᵀA/n + diag(w(θ))` and `∇ₓG = Bᵀ(Bx* − z)/m`, from `∂λ x* = −H⁻¹x*` and
    `∂θⱼ x* = −H⁻¹eⱼx*ⱼ`.

    **Arguments:**

    - `n_train`, `n_val`, `n_features`: the sizes n, m and d, each ≥ 1.
    - `per_feature`: one penalty per feature instead of one shared penalty.
    - `regularisation`: `θ₀`'s entries, > 0.
    - `noise`: the targets' noise standard deviation, ≥ 0.
    - `conditioning`: ratio of the largest to the smallest feature scale, ≥ 1.
    - `seed`: an integer ≥ 0.

    **Returns:** a `Bilevel` with `info.teacher` the true weights.
    """
    require_x64()
    n_train, n_val = check_count(n_train, "n_train"), check_count(n_val, "n_val")
    n_features = check_count(n_features, "n_features")
    if not isinstance(per_feature, bool):
        raise ValueError(f"per_feature must be True or False, got {per_feature!r}")
    regularisation = check_regularisation(regularisation)
    noise = _check_number(noise, "noise", "a finite number >= 0", lambda v: v >= 0)
    conditioning = check_conditioning(_check_number(conditioning, "conditioning", "a finite number >= 1",
                                                    lambda v: v >= 1))
    seed = check_count(seed, "seed", minimum=0)
    # Training and validation rows from one design and one teacher.
    features, targets, teacher = draw_regression(jax.random.key(seed), n_train + n_val, n_features, noise,
                                                 conditioning)
    validation = (features[n_train:], targets[n_train:])
    inner = ridge(features=features[:n_train], targets=targets[:n_train], regularisation=regularisation,
                  tied=not per_feature)
    name = "ridge_validation[per_feature]" if per_feature else "ridge_validation"
    return Bilevel(inner=inner, outer_data=validation, outer_loss=validation_mean_squared_error, name=name,
                   info=DataInfo(teacher=teacher))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _draw_cleaning(key, n_train, n_val, n_features, n_flipped):
    """Labels `sign(aᵀw)` of one teacher; `n_flipped` training labels, chosen at random, flipped."""
    key_design, key_teacher, key_flip = jax.random.split(key, 3)
    features = gaussian_design(key_design, n_train + n_val, n_features)
    teacher = jax.random.normal(key_teacher, (n_features,))
    labels = jnp.where(features @ teacher >= 0.0, 1.0, -1.0)
    # The first n_flipped samples of a random order; n_flipped is traced, so every count shares one program.
    order = jax.random.permutation(key_flip, n_train)
    corrupted = jnp.zeros(n_train, dtype=bool).at[order].set(jnp.arange(n_train) < n_flipped)
    train_labels = jnp.where(corrupted, -labels[:n_train], labels[:n_train])
    return (features[:n_train], train_labels), (features[n_train:], labels[n_train:]), teacher, corrupted


def hyper_cleaning(
    n_train: CountLike = 100,
    n_val: CountLike = 100,
    n_features: CountLike = 10,
    *,
    corruption: float | int = 0.3,
    loss: str = "squared",
    regularisation: float | int = 0.1,
    seed: CountLike = 0,
) -> Bilevel:
    """Data hyper-cleaning (Franceschi et al., 2017): learn one weight per training sample so
    that a model fitted to the weighted, partly corrupted training set fits a clean validation set.

    Gaussian features, labels `y = sign(aᵀw)` ∈ {−1, +1} of one teacher `w ~ N(0, I)`; exactly
    `round(corruption·n_train)` training labels (Python's `round`, half to even), chosen with the
    seed, are flipped, and the validation labels are clean. θ ∈ R^{n_train}, sample weight
    `σ(θᵢ)`, `θ₀ = 0`. Inner: `F(x, θ) = (1/n) Σᵢ σ(θᵢ)·ℓ(aᵢᵀx, yᵢ) + (ρ/2)‖x‖²`
    (`problems.weighted_regression`: closed form for `"squared"`, Newton's method for
    `"logistic"`). Outer: the unweighted validation loss of the same kind, mean squared error
    `(1/2m)‖Bx − z‖²` or mean logistic loss; it does not depend on θ.

    **Arguments:**

    - `n_train`, `n_val`, `n_features`: the sizes n, m and d, each ≥ 1.
    - `corruption`: the fraction of flipped training labels, `0 ≤ corruption < 1`.
    - `loss`: `"squared"` (`ℓ = ½(aᵀx − y)²`) or `"logistic"` (`ℓ = log(1 + exp(−y aᵀx))`).
    - `regularisation`: `ρ > 0`, which keeps the inner problem strongly convex as weights fall to 0.
    - `seed`: an integer ≥ 0.

    **Returns:** a `Bilevel`; `info.corrupted` marks the flipped training labels and
    `info.teacher` holds `w`.
    """
    require_x64()
    n_train, n_val = check_count(n_train, "n_train"), check_count(n_val, "n_val")
    n_features = check_count(n_features, "n_features")
    corruption = _check_number(corruption, "corruption", "a number with 0 <= corruption < 1",
                               lambda v: 0 <= v < 1)
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    regularisation = check_regularisation(regularisation)
    seed = check_count(seed, "seed", minimum=0)
    train, validation, teacher, corrupted = _draw_cleaning(
        jax.random.key(seed), n_train, n_val, n_features, round(corruption * n_train)
    )
    inner = sample_weighted(*train, loss=loss, regularisation=regularisation)
    outer_loss = validation_mean_squared_error if loss == "squared" else validation_logistic_loss
    return Bilevel(inner=inner, outer_data=validation, outer_loss=outer_loss, name=f"hyper_cleaning[{loss}]",
                   info=DataInfo(teacher=teacher, corrupted=corrupted))


def _check_number(value, name: str, valid: str, accept: Callable[[float], bool]) -> float:
    """`value` as a float; raises `ValueError` naming `name` and the valid range otherwise."""
    number = concrete(value) if not isinstance(value, (bool, str)) else None
    if number is None or number.shape != () or not np.issubdtype(number.dtype, np.number):
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    number = float(number)
    if not (math.isfinite(number) and accept(number)):
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    return number

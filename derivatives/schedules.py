"""Step-size schedules `k ↦ α_k`, for k = 0, 1, 2, …

Schedules live with the SGD step that uses them; `rates` re-exports them. They are
small pytrees: their parameters are leaves, so changing a step size does not recompile
a jitted driver, and a schedule can be `vmap`ped over. They validate concrete
arguments when built; a function `k ↦ α_k` is checked at the steps a driver uses.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, Real

from problems.pytrees import pytree_dataclass, static


def _positive(value, name: str):
    # A traced value (a schedule built inside jit or vmap) cannot be checked.
    if isinstance(value, jax.core.Tracer):
        return value
    array = np.asarray(value, dtype=np.float64)
    if array.shape != () or not np.isfinite(array) or array <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(array)


@pytree_dataclass
class Constant:
    """`α_k = alpha`."""

    alpha: Real[ArrayLike, ""]

    def __post_init__(self):
        object.__setattr__(self, "alpha", _positive(self.alpha, "alpha (the step size)"))

    def __call__(self, k: Int[ArrayLike, ""]) -> Float[Array, ""]:
        return jnp.asarray(self.alpha, jnp.float64)


@pytree_dataclass
class PolynomialDecay:
    """`α_k = a / (k + k0)^β` with `a > 0`, `k0 > 0`, `β ∈ (0, 1]`.

    `β = 1` is `inverse_time`; `Σα_k = ∞` for every admissible β and `Σα_k² < ∞` iff β > ½.
    """

    a: Real[ArrayLike, ""]
    k0: Real[ArrayLike, ""]
    beta: Real[ArrayLike, ""] = 1.0

    def __post_init__(self):
        object.__setattr__(self, "a", _positive(self.a, "a (the step-size scale)"))
        object.__setattr__(self, "k0", _positive(self.k0, "k0 (the step-size offset)"))
        beta = _positive(self.beta, "beta (the decay exponent)")
        if not isinstance(beta, jax.core.Tracer) and beta > 1.0:
            raise ValueError(f"beta (the decay exponent) must be in (0, 1], got {beta!r}")
        object.__setattr__(self, "beta", beta)

    def __call__(self, k: Int[ArrayLike, ""]) -> Float[Array, ""]:
        return self.a / (jnp.asarray(k, jnp.float64) + self.k0) ** self.beta


@pytree_dataclass
class FromFunction:
    """A user function `k ↦ α_k` as a schedule (recompiles when the function changes)."""

    function: Callable = static()

    def __call__(self, k: Int[ArrayLike, ""]) -> Float[Array, ""]:
        return jnp.asarray(self.function(k), jnp.float64)


Schedule = Constant | PolynomialDecay | FromFunction

# What a driver accepts as `step_size`: a number > 0 (constant), a schedule, or a function `k ↦ α_k`.
StepSize = numbers.Real | Float[ArrayLike, ""] | Schedule | Callable[[Int[Array, ""]], Float[ArrayLike, ""]]


def constant(alpha: Real[ArrayLike, ""]) -> Constant:
    """The constant schedule `α_k = alpha`, alpha > 0."""
    return Constant(alpha)


def inverse_time(a: Real[ArrayLike, ""], k0: Real[ArrayLike, ""] = 1.0) -> PolynomialDecay:
    """`α_k = a / (k + k0)`, the decreasing schedule of SGD's `O(1/k)` rate."""
    return PolynomialDecay(a, k0, 1.0)


def polynomial_decay(a: Real[ArrayLike, ""], k0: Real[ArrayLike, ""] = 1.0,
                     beta: Real[ArrayLike, ""] = 1.0) -> PolynomialDecay:
    """`α_k = a / (k + k0)^beta`, beta ∈ (0, 1]."""
    return PolynomialDecay(a, k0, beta)


def accuracy(eta0: Real[ArrayLike, ""], r: Real[ArrayLike, ""], scale: Real[ArrayLike, ""] = 1.0) -> PolynomialDecay:
    """The accuracy-coefficient schedule of smoothing, `η_k = η₀·(scale/(k + 1))^r`, r ∈ (0, 1].

    `scale = 1` gives `η₀ (k + 1)^(−r)`; `scale = 4000` is the schedule of the
    Diagonalisation SGD experiments, `η·(4000/(k + 1))^r`.
    """
    return PolynomialDecay(_positive(eta0, "eta0 (the initial accuracy coefficient)")
                           * _positive(scale, "scale") ** r, 1.0, r)


def as_schedule(step_size: object) -> Schedule:
    """A schedule from a number (constant), a schedule, or a function `k ↦ α_k` (a `StepSize`);
    anything else is a `TypeError` that says what is accepted."""
    if isinstance(step_size, (Constant, PolynomialDecay, FromFunction)):
        return step_size
    if isinstance(step_size, (numbers.Real, np.ndarray, jax.Array)) and not isinstance(step_size, bool):
        return Constant(step_size)
    if callable(step_size):
        return FromFunction(step_size)
    raise TypeError(f"step_size must be a number > 0, a schedule or a function k -> alpha_k, got {step_size!r}")

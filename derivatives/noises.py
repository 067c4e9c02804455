"""The six noise densities of black-box stochastic smoothing, as JAX functions.

Each density μ is standardised (location 0, scale 1) and carries what
`derivatives.smoothing` uses: the score `s(ε) = −μ'(ε)/μ(ε)` (defined almost everywhere,
0 where it is not), the quantile `F⁻¹(u)` for inverse-transform (quasi-)sampling, whether
μ is symmetric (antithetic pairs `(ε, −ε)` have the law of `(ε, ε')` only then), whether
`E|ε| < ∞`, and the Fisher information `E[s(ε)²]`:

| name | μ(ε) | s(ε) | F⁻¹(u) | E[s²] |
|---|---|---|---|---|
| gaussian | `exp(−ε²/2)/√(2π)` | `ε` | `Φ⁻¹(u)` | 1 |
| logistic | `1/(4cosh²(ε/2))` | `tanh(ε/2)` | `log(u/(1 − u))` | 1/3 |
| gumbel | `exp(−ε − e^(−ε))` (maxima) | `1 − e^(−ε)` | `−log(−log u)` | 1 |
| cauchy | `1/(π(1 + ε²))` | `2ε/(1 + ε²)` | `tan(π(u − ½))` | 1/2 |
| laplace | `e^(−|ε|)/2` | `sign ε` | `−sign(u − ½) log(1 − |2u − 1|)` | 1 |
| triangular | `max(0, 1 − |ε|)` | `sign ε/(1 − |ε|)` on (−1, 1) | `sign(u − ½)(1 − √(1 − |2u − 1|))` | ∞ |

These are the expressions certified symbolically in `proofs_check.densities` (`sμ + μ' = 0`,
`E[s] = 0`, the Fisher information, the quantile as the inverse of the CDF); the tests
compare every function here with them at 40 significant digits. The quantiles are written
so that no step cancels: every formula evaluates its tail probability `min(u, 1 − u)`
(exact in floating point for `u ≥ ¼`, and `2u − 1` for `u ≥ ¼` too) rather than `1 − u`
after `u` has been rounded near 0, so they are accurate to a few ulps relative over
`[2^(−53), 1 − 2^(−53)]`, except next to the zero of `F⁻¹` (the median; `u = 1/e` for the
Gumbel density), where an error of a few ulps of 1 is absolute rather than relative.

References: F. Petersen, C. Borgelt, A. Mishra, S. Ermon, *Generalizing Stochastic
Smoothing for Differentiation and Gradient Estimation*, arXiv:2410.08125.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax.numpy as jnp
from jax.scipy.special import ndtri
from jaxtyping import Array, Float


@dataclasses.dataclass(frozen=True)
class Noise:
    """A standardised noise density: its elementwise score and quantile, and its properties.

    - `name`: one of `NOISES`.
    - `score`: `ε ↦ s(ε) = −μ'(ε)/μ(ε)` elementwise on an array of any shape (0 where μ
      has no derivative or vanishes).
    - `quantile`: `u ↦ F⁻¹(u)` elementwise, for `u ∈ (0, 1)`.
    - `symmetric`: `μ(−ε) = μ(ε)`, so that `s` is odd and `F⁻¹(1 − u) = −F⁻¹(u)`.
    - `finite_mean`: `E|ε| < ∞` (false only for the Cauchy density).
    - `fisher_information`: `E[s(ε)²]`, `math.inf` where it diverges (triangular).
    """

    name: str
    score: Callable[[Float[Array, "*shape"]], Float[Array, "*shape"]]
    quantile: Callable[[Float[Array, "*shape"]], Float[Array, "*shape"]]
    symmetric: bool
    finite_mean: bool
    fisher_information: float


def _tail_and_sign(u):
    """`(min(u, 1 − u), sign(u − ½), |2u − 1|)`, each without cancellation."""
    return jnp.minimum(u, 1.0 - u), jnp.sign(u - 0.5), jnp.abs(2.0 * u - 1.0)


# --- scores ---------------------------------------------------------------------------------

def _gaussian_score(epsilon):
    return epsilon


def _logistic_score(epsilon):
    return jnp.tanh(epsilon / 2.0)


def _gumbel_score(epsilon):
    return -jnp.expm1(-epsilon)


def _cauchy_score(epsilon):
    # 2/(ε + 1/ε) for |ε| > 1: ε² would overflow long before the score underflows.
    small = jnp.abs(epsilon) <= 1.0
    safe = jnp.where(small, 1.0, epsilon)
    return jnp.where(small, 2.0 * epsilon / (1.0 + epsilon * epsilon), 2.0 / (safe + 1.0 / safe))


def _laplace_score(epsilon):
    return jnp.sign(epsilon)


def _triangular_score(epsilon):
    inside = jnp.abs(epsilon) < 1.0
    distance = jnp.where(inside, 1.0 - jnp.abs(epsilon), 1.0)     # no division by 0 at ±1
    return jnp.where(inside, jnp.sign(epsilon) / distance, 0.0)


# --- quantiles ------------------------------------------------------------------------------

def _gaussian_quantile(u):
    return ndtri(u)


def _logistic_quantile(u):
    # log(u/(1 − u)) = sign(u − ½) log1p(|2u − 1|/min(u, 1 − u)), accurate near the median too.
    tail, sign, distance = _tail_and_sign(u)
    return sign * jnp.log1p(distance / tail)


def _gumbel_quantile(u):
    return -jnp.log(-jnp.log(u))


def _cauchy_quantile(u):
    # tan(π(u − ½)) near the median; ±cot(π min(u, 1 − u)) in the tails, where π(u − ½) ≈ ±π/2
    # would leave too few digits of its distance to the pole.
    tail, sign, _ = _tail_and_sign(u)
    central = jnp.abs(u - 0.5) < 0.25
    return jnp.where(central, jnp.tan(jnp.pi * (u - 0.5)), sign / jnp.tan(jnp.pi * jnp.where(central, 0.25, tail)))


def _laplace_quantile(u):
    tail, sign, _ = _tail_and_sign(u)
    return -sign * jnp.log(2.0 * tail)


def _triangular_quantile(u):
    # 1 − √(1 − x) = x/(1 + √(1 − x)) with x = |2u − 1| and 1 − x = 2 min(u, 1 − u).
    tail, sign, distance = _tail_and_sign(u)
    return sign * distance / (1.0 + jnp.sqrt(2.0 * tail))


GAUSSIAN = Noise("gaussian", _gaussian_score, _gaussian_quantile, symmetric=True, finite_mean=True,
                 fisher_information=1.0)
LOGISTIC = Noise("logistic", _logistic_score, _logistic_quantile, symmetric=True, finite_mean=True,
                 fisher_information=1.0 / 3.0)
GUMBEL = Noise("gumbel", _gumbel_score, _gumbel_quantile, symmetric=False, finite_mean=True,
               fisher_information=1.0)
CAUCHY = Noise("cauchy", _cauchy_score, _cauchy_quantile, symmetric=True, finite_mean=False,
               fisher_information=0.5)
LAPLACE = Noise("laplace", _laplace_score, _laplace_quantile, symmetric=True, finite_mean=True,
                fisher_information=1.0)
TRIANGULAR = Noise("triangular", _triangular_score, _triangular_quantile, symmetric=True, finite_mean=True,
                   fisher_information=math.inf)

_ALL = (GAUSSIAN, LOGISTIC, GUMBEL, CAUCHY, LAPLACE, TRIANGULAR)
_BY_NAME = {noise.name: noise for noise in _ALL}

NOISES: tuple[str, ...] = tuple(_BY_NAME)
SYMMETRIC_NOISES: tuple[str, ...] = tuple(noise.name for noise in _ALL if noise.symmetric)
FINITE_MEAN_NOISES: tuple[str, ...] = tuple(noise.name for noise in _ALL if noise.finite_mean)


def by_name(name: str) -> Noise:
    """The `Noise` called `name`, one of `NOISES`; `ValueError` naming them otherwise."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"noise must be one of {NOISES}, got {name!r}") from None

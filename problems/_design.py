"""Random designs shared by the generators."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Key


def check_conditioning(conditioning: float) -> float:
    if not conditioning >= 1.0:
        raise ValueError(f"conditioning must be >= 1, got {conditioning!r}")
    return float(conditioning)


@functools.partial(jax.jit, static_argnums=(1, 2))
def gaussian_design(key: Key[Array, ""], n_samples: int, n_features: int,
                    conditioning: float | Float[Array, ""] = 1.0) -> Float[Array, "n_samples n_features"]:
    """Gaussian features whose scales fall geometrically from 1 to `1/conditioning`.

    The population covariance then has condition number `conditioning²`.
    """
    scales = jnp.geomspace(1.0, 1.0 / conditioning, n_features) if n_features > 1 else jnp.ones(1)
    return jax.random.normal(key, (n_samples, n_features)) * scales


def max_row_norm_squared(features: Float[Array, "n d"]) -> Float[Array, ""]:
    """`max_i ‖a_i‖²`: the smoothness of `x ↦ ½(aᵢᵀx − y)²` over the worst sample."""
    return jnp.max(jnp.sum(features**2, axis=1))


def gram(features: Float[Array, "n d"]) -> Float[Array, "d d"]:
    """`AᵀA / n`: the Hessian of the mean squared-error term."""
    return features.T @ features / features.shape[0]

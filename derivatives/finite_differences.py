"""Central finite differences: the reference of last resort."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jax.typing import ArrayLike
from jaxtyping import Array, Float, Real

from problems.validation import require_x64


def central_difference_jacobian(
    function: Callable[[Float[Array, " p"]], Float[Array, "*out"]],
    theta: Real[ArrayLike, " p"],
    step: float = 1e-5,
) -> Float[Array, "*out p"]:
    """`[f(θ + h eⱼ) − f(θ − h eⱼ)] / 2h` for each coordinate j, stacked last.

    The truncation error is `h²/6 · ‖∂³f‖`; with rounding error `ε‖f‖/h` the total
    is smallest near `h ≈ ε^(1/3) ≈ 6e-6` (relative to the scale of θ) in float64.
    For a stochastic `f`, keep its key fixed inside `function` so that both
    evaluations see the same randomness.
    """
    require_x64()
    theta = jnp.asarray(theta, jnp.float64)
    basis = jnp.eye(theta.shape[0]) * step
    columns = [(function(theta + e) - function(theta - e)) / (2.0 * step) for e in basis]
    return jnp.stack(columns, axis=-1)

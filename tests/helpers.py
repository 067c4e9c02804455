"""Comparisons and references shared by the tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def relative_error(actual, expected) -> float:
    """`‖actual − expected‖ / ‖expected‖` (Frobenius), absolute when `expected` is zero."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"shapes differ: {actual.shape} vs {expected.shape}")
    scale = np.linalg.norm(expected)
    return float(np.linalg.norm(actual - expected) / (scale if scale > 0 else 1.0))


def assert_relative_close(actual, expected, rtol: float, what: str = "value") -> None:
    error = relative_error(actual, expected)
    if not error <= rtol:
        raise AssertionError(f"{what}: relative error {error:.3e} exceeds {rtol:.1e}")


def assert_minimiser(problem, theta, x, rtol: float = 1e-10) -> None:
    """`x` minimises `F(·, θ)`: the gradient is small relative to its size at 0 (or to
    ‖x‖), and the Hessian is positive definite."""
    gradient_norm, scale, smallest = (float(v) for v in _stationarity(problem, theta, x))
    if not gradient_norm <= rtol * scale:
        raise AssertionError(f"not a minimiser: ‖∇F(x)‖ = {gradient_norm:.3e} > {rtol:.0e} × {scale:.3e}")
    if not smallest > 0:
        raise AssertionError(f"Hessian not positive definite: smallest eigenvalue {smallest:.3e}")


@jax.jit
def _stationarity(problem, theta, x):
    gradient = jax.grad(problem.objective)
    scale = jnp.maximum(jnp.linalg.norm(gradient(jnp.zeros_like(x), theta)), jnp.linalg.norm(x))
    smallest = jnp.linalg.eigvalsh(jax.hessian(problem.objective)(x, theta))[0]
    return jnp.linalg.norm(gradient(x, theta)), scale, smallest


def monte_carlo_agrees(samples, claimed, z: float = 5.0) -> tuple[bool, str]:
    """Is `claimed` within `z` standard errors of the mean of i.i.d. `samples`?

    Under the central limit theorem, a true claim fails with probability
    `2Φ(−z)`: 5.7e-7 at z = 5.
    """
    samples = np.asarray(samples, dtype=np.float64)
    mean = samples.mean()
    standard_error = samples.std(ddof=1) / np.sqrt(samples.size)
    ok = abs(mean - float(claimed)) <= z * standard_error
    return ok, f"MC mean {mean:.6g} ± {standard_error:.2g} (n={samples.size}) vs claimed {float(claimed):.6g}"

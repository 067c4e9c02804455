"""Comparisons and references shared by the tests."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats


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


@dataclasses.dataclass(frozen=True)
class Agreement:
    """The outcome of `monte_carlo_agrees`, per component of the claim.

    - `ok`: whether the claim lies within `z` standard errors (plus `rounding`) of the mean.
    - `mean`, `standard_error`, `claimed`: per component; `num_samples` the repetitions.
    - `false_failure`: the two-sided probability `P(|T| > z)` that a true claim fails one
      component, with T Student's t with `num_samples − 1` degrees of freedom (exact for
      normal samples; for large samples of finite variance, `2Φ(−z)` by the central limit
      theorem).
    """

    ok: np.ndarray
    mean: np.ndarray
    standard_error: np.ndarray
    claimed: np.ndarray
    z: float
    num_samples: int
    false_failure: float

    def __bool__(self) -> bool:
        return bool(np.all(self.ok))

    def failures(self, label: str = "") -> list[str]:
        """One line for each component whose claim was rejected."""
        return [f"{label}{list(index)}: MC mean {self.mean[index]:.6g} ± {self.standard_error[index]:.2g} "
                f"(n={self.num_samples}, z={self.z}) vs claimed {self.claimed[index]:.6g}"
                for index in map(tuple, np.argwhere(~self.ok))]

    def __str__(self) -> str:
        return (f"MC mean {self.mean} ± {self.standard_error} (n={self.num_samples}, z={self.z}) "
                f"vs claimed {self.claimed}")


def monte_carlo_agrees(samples, claimed, z: float, rounding: float = 0.0) -> Agreement:
    """Does each component of `claimed` lie within `z` standard errors of the mean of i.i.d.
    `samples` (leading axis: the repetitions), plus a rounding allowance
    `rounding · (1 + |claimed|)`?

    `claimed` broadcasts against one sample. The result is true when every component
    agrees; a true claim fails a component with probability `Agreement.false_failure`
    (two-sided; e.g. 6.8e-6 at z = 4.5, 5.7e-7 at z = 5 for large samples).
    """
    samples = np.asarray(samples, dtype=np.float64)
    num_samples = samples.shape[0]
    claimed = np.broadcast_to(np.asarray(claimed, dtype=np.float64), samples.shape[1:])
    mean = samples.mean(axis=0)
    standard_error = samples.std(axis=0, ddof=1) / np.sqrt(num_samples)
    ok = np.abs(mean - claimed) <= z * standard_error + rounding * (1.0 + np.abs(claimed))
    return Agreement(np.asarray(ok), np.asarray(mean), np.asarray(standard_error), claimed, z, num_samples,
                     false_failure_probability(z, num_samples))


def false_failure_probability(z: float, num_samples: int) -> float:
    """`P(|T| > z)`, T Student's t with `num_samples − 1` degrees of freedom: the chance that a
    true claim is rejected by one component of `monte_carlo_agrees`."""
    return float(2.0 * stats.t.sf(z, num_samples - 1))


def assert_calls_require_float64(setup: str, calls: str) -> None:
    """In a fresh process: run `setup` (source code), then every call of the dict literal
    `calls` (`{name: lambda: ...}`) with x64 off, each of which must raise `Float64Required`
    naming `jax_enable_x64`. `setup` may switch x64 on to build objects, and must leave it off."""
    check = textwrap.dedent("""
        import jax
        from problems.validation import Float64Required

        assert not jax.config.read("jax_enable_x64")
        for name, call in calls.items():
            try:
                call()
            except Float64Required as error:
                assert "jax_enable_x64" in str(error), name
            else:
                raise SystemExit(f"{name} ran with x64 off")
        print("ok")
    """)
    script = "\n".join([textwrap.dedent(setup), "calls = " + textwrap.dedent(calls).strip(), check])
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:] + result.stdout


@jax.jit
def lipschitz_quotients(problem, theta, x1, x2):
    """max over samples of ‖∇²ₓₓfᵢ(x1) − ∇²ₓₓfᵢ(x2)‖_op / ‖x1 − x2‖ and of the Frobenius
    norm of the change in ∇²ₓθfᵢ, over the same distance."""
    hessian = jax.hessian(problem.per_sample_loss)
    cross = jax.jacfwd(jax.grad(problem.per_sample_loss), argnums=1)
    distance = jnp.linalg.norm(x1 - x2)

    def per_sample(s):
        return (jnp.linalg.norm(hessian(x1, theta, s) - hessian(x2, theta, s), ord=2),
                jnp.linalg.norm(cross(x1, theta, s) - cross(x2, theta, s)))

    hess_change, cross_change = jax.vmap(per_sample)(problem.data)
    return jnp.max(hess_change) / distance, jnp.max(cross_change) / distance


@jax.jit
def largest_per_sample_curvature(problem, x, theta):
    """max over samples of λ_max(∇²ₓₓfᵢ(x, θ)): what L must bound."""
    hessian = jax.hessian(problem.per_sample_loss)
    return jnp.max(jax.vmap(lambda s: jnp.linalg.eigvalsh(hessian(x, theta, s))[-1])(problem.data))

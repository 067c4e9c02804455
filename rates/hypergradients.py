"""How fast hypergradient approximations converge to the exact hypergradient.

Two kinds of curves, both against `h = bilevel.hypergradient(θ)` (exact, `problems.bilevel`):

- `approximation_errors(bilevel, θ, method, iterations)`: for a deterministic method of
  `derivatives.hypergradients` whose iteration count is a pytree leaf (`ConjugateGradient`,
  `Neumann`, `FixedPoint`), `‖ĥ_k − h‖²` for every k of `iterations`, in one computation
  vmapped over k.
- `hypergradient_curves(bilevel, θ, **options)`: the unrolled hypergradient
  `∇θG(x_k) + J_kᵀ∇ₓG(x_k)` of minibatch SGD (the engine of `rates.error_curves`, the same
  seeds, keys and checkpoints), `E‖ĥ_k − h‖²` streamed over seeds, with the iterate and
  Jacobian curves of the same run.

`adjoint_constants` gives what the certified bounds of docs/theory.md ("Hypergradients")
need, and `neumann_bound` and `conjugate_gradient_bound` evaluate them at x*;
`unrolled_bound` and `truncation_bound` bound gradient-descent unrolling and its truncation
from the inner problem's global constants.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float, Int, Real

from derivatives import hypergradients
from rates.bounds import gradient_descent_bounds
from rates.curves import Curves, SeedStatistics, _error_curves_arguments, _seed_statistics, mean_and_standard_error


class AdjointConstants(NamedTuple):
    """At `(x*, θ)`: `‖C‖₂` (`C = ∇²ₓθF`), `‖v*‖` and `‖v*‖_H` (`v* = H⁻¹∇ₓG`), and the
    inner problem's `μ` and `L` (`inner.constants(θ)`)."""

    cross_norm: float
    adjoint_norm: float
    adjoint_energy_norm: float
    mu: float
    L: float


def adjoint_constants(bilevel, theta: Real[ArrayLike, " p"] | None = None) -> AdjointConstants:
    """The constants of the bounds, from the dense Hessian and cross derivative at x*
    (d × d and d × p: for the verification-sized problems of this toolkit)."""
    inner = bilevel.inner
    theta = inner.check_theta(inner.theta0 if theta is None else theta)
    x = inner.solution(theta)
    hessian = jax.hessian(inner.objective)(x, theta)
    cross = jax.jacfwd(jax.grad(inner.objective), argnums=1)(x, theta)
    outer_x, _ = bilevel.outer_gradients(x, theta)
    adjoint = jnp.linalg.solve(hessian, outer_x)
    constants = inner.constants(theta)
    return AdjointConstants(float(jnp.linalg.norm(cross, 2)), float(jnp.linalg.norm(adjoint)),
                            float(jnp.sqrt(adjoint @ hessian @ adjoint)), float(constants.mu), float(constants.L))


def neumann_bound(constants: AdjointConstants, iterations, step_size: float | None = None) -> Float[ArrayLike, ...]:
    """`‖C‖₂ (1 − αμ)^k ‖v*‖` for `Neumann(k, α)` and `FixedPoint(k, α)` at x*, α default
    `1/L` (certificates `neumann_remainder`, `gd_contraction`; needs `0 < α ≤ 1/L`)."""
    alpha = 1.0 / constants.L if step_size is None else float(step_size)
    if not 0 < alpha <= 1.0 / constants.L * (1 + 1e-12):
        raise ValueError(f"the Neumann bound needs 0 < α ≤ 1/L = {1 / constants.L:.6g}, got {alpha}")
    k = np.asarray(iterations, dtype=np.float64)
    return constants.cross_norm * (1 - alpha * constants.mu) ** k * constants.adjoint_norm


def conjugate_gradient_bound(constants: AdjointConstants, iterations) -> Float[ArrayLike, ...]:
    """`2‖C‖₂ ρ^k ‖v*‖_H / √μ`, `ρ = (√κ − 1)/(√κ + 1)`, κ = L/μ, for `ConjugateGradient(k)`
    at x* (certificate `chebyshev_conjugate_gradient`; the Krylov optimality of CG is assumed)."""
    root = np.sqrt(constants.L / constants.mu)
    k = np.asarray(iterations, dtype=np.float64)
    return 2 * constants.cross_norm * ((root - 1) / (root + 1)) ** k * constants.adjoint_energy_norm / np.sqrt(
        constants.mu)


class UnrollingConstants(NamedTuple):
    """What the bounds of gradient-descent unrolling need at θ: the inner problem's
    `Constants` (global μ, L, L_H, L_C), `‖J*‖_F`, `‖J*‖₂`, `‖∇ₓG*‖` and the outer
    smoothness `L_Gx`, `L_Gθ` (`Bilevel.outer_smoothness`)."""

    inner: Any
    jacobian_frobenius: float
    jacobian_norm: float
    outer_gradient_norm: float
    outer_lipschitz_x: float
    outer_lipschitz_theta: float


def unrolling_constants(bilevel, theta: Real[ArrayLike, " p"] | None = None) -> UnrollingConstants:
    """The constants of `unrolled_bound` and `truncation_bound` at θ (default θ₀)."""
    inner = bilevel.inner
    theta = inner.check_theta(inner.theta0 if theta is None else theta)
    jac_star = np.asarray(inner.solution_jacobian(theta))
    outer_x, _ = bilevel.outer_gradients(inner.solution(theta), theta)
    smoothness = bilevel.outer_smoothness()
    return UnrollingConstants(inner.constants(theta), float(np.linalg.norm(jac_star)),
                              float(np.linalg.norm(jac_star, 2)), float(jnp.linalg.norm(outer_x)),
                              smoothness.gradient_x, smoothness.gradient_theta)


def _gradient_descent_errors(constants: UnrollingConstants, step_size: float, x0_error: float, steps):
    """`e_x(k)`, `e_J(k)` of gradient descent from `J₀ = 0` (`rates.bounds.gradient_descent_bounds`)."""
    errors = gradient_descent_bounds(constants.inner, step_size, x0_error, constants.jacobian_frobenius,
                                     constants.jacobian_frobenius, steps)
    return errors["iterate"], errors["jacobian"]


def unrolled_bound(constants: UnrollingConstants, step_size: float, x0_error: float, steps) -> np.ndarray:
    """`‖ĥ_K − h‖ ≤ (L_Gθ + ‖J*‖₂L_Gx) e_x + (‖∇ₓG*‖ + L_Gx e_x) e_J` for `Unrolled(K, α, None)`
    (gradient descent, `J₀ = 0`) from `‖x₀ − x*‖ = x0_error`, at every K of `steps`;
    `e_x = q^K‖x₀ − x*‖`, `e_J = q^K‖J*‖_F + αMKq^(K−1)‖x₀ − x*‖`, `q = 1 − αμ`
    (certificates `gd_contraction`, `gd_jacobian_linear_rate`; the triangle inequality of
    docs/theory.md, "Hypergradients"). Needs `0 < α ≤ 1/L`: `ConditionError` otherwise."""
    e_x, e_j = _gradient_descent_errors(constants, step_size, x0_error, steps)
    lipschitz = constants.outer_lipschitz_x
    return ((constants.outer_lipschitz_theta + constants.jacobian_norm * lipschitz) * e_x
            + (constants.outer_gradient_norm + lipschitz * e_x) * e_j)


def truncation_bound(constants: UnrollingConstants, step_size: float, x0_error: float, num_steps: int,
                     truncations) -> np.ndarray:
    """`‖ĥ_T − ĥ_K‖ ≤ q^T (‖J*‖_F + e_J(K − T)) (‖∇ₓG*‖ + L_Gx e_x(K))`: how far
    `Truncated(K, T, α, None)` is from `Unrolled(K, α, None)` on the same gradient-descent
    trajectory, for every T of `truncations`. Both run the derivative recursion
    `J_{j+1} = (I − αH_j)J_j − αC_j` over the last T steps, from `J_{K−T}` and from 0; the
    difference `Π_j(I − αH_j)J_{K−T}` has norm at most `q^T‖J_{K−T}‖` (certificate
    `gd_contraction`, `‖I − αH_j‖₂ ≤ q` for `α ≤ 1/L`). Against the exact h, add
    `unrolled_bound` at K."""
    truncations = np.asarray(truncations, dtype=np.float64)
    e_x, _ = _gradient_descent_errors(constants, step_size, x0_error, np.asarray([num_steps]))
    _, e_j = _gradient_descent_errors(constants, step_size, x0_error, num_steps - truncations)
    q = 1.0 - step_size * float(constants.inner.mu)
    return q**truncations * (constants.jacobian_frobenius + e_j) * (constants.outer_gradient_norm
                                                                     + constants.outer_lipschitz_x * e_x[0])


def approximation_errors(bilevel, theta: Real[ArrayLike, " p"] | None, method, iterations: Int[ArrayLike, " n"],
                         x: Float[ArrayLike, " d"] | None = None) -> np.ndarray:
    """`‖ĥ_k − h‖²` for `method` with `num_iterations = k`, every k of `iterations` at once
    (in one pass where the method has `estimates`, as `Neumann` and `FixedPoint` do; else
    `jax.vmap` over the count, a pytree leaf of the method), at the inner point `x` (default
    x*). Deterministic methods only: a stochastic one gets no key here."""
    inner = bilevel.inner
    theta = inner.check_theta(inner.theta0 if theta is None else theta)
    if method.needs_key:
        raise ValueError(f"{type(method).__name__} is stochastic: average it over keys instead")
    exact = bilevel.hypergradient(theta)
    x = None if x is None else jnp.asarray(x, jnp.float64)
    if hasattr(method, "estimates"):
        # Every count from one pass (`at_counts`): the counts are concrete here.
        counts = np.asarray(iterations, dtype=np.int64)
        approximate = jax.jit(lambda theta_, x_: method.estimates(bilevel, theta_, None, x_, counts))(theta, x)
        return np.asarray(jnp.sum((approximate - exact) ** 2, axis=-1))

    def error(count):
        approximate = hypergradients.estimate(bilevel, theta, None, x, dataclasses.replace(method,
                                                                                          num_iterations=count))
        return jnp.sum((approximate - exact) ** 2)

    return np.asarray(jax.jit(jax.vmap(error))(jnp.asarray(iterations, jnp.int64)))


@dataclasses.dataclass(frozen=True)
class HypergradientCurves:
    """`E‖ĥ_k − h‖²` of the unrolled hypergradient at the checkpoints `steps` (mean over
    seeds and its standard error), with the iterate and Jacobian curves of the same run and
    every seed's statistics (`seeds.values[s, c, i]`: statistic i of `SEED_STATISTICS`, then
    the hypergradient error last)."""

    steps: Int[np.ndarray, " C"]
    hypergradient_error: Float[np.ndarray, " C"]
    hypergradient_error_se: Float[np.ndarray, " C"]
    curves: Curves
    seeds: SeedStatistics


def hypergradient_curves(bilevel, theta: Real[ArrayLike, " p"] | None = None, **options: Any) -> HypergradientCurves:
    """`rates.error_curves(bilevel.inner, θ, **options)` (the same arguments, defaults,
    seeds and checks) that also records, seed by seed, `‖∇θG(x_k) + J_kᵀ∇ₓG(x_k) − h‖²`,
    the error of the hypergradient of `Unrolled(k, step_size, batch_size)` in forward mode."""
    arguments = _error_curves_arguments("hypergradient_curves", bilevel.inner, theta, options)
    statistics = _seed_statistics(**arguments, bilevel=bilevel, stacklevel=4)
    mean, error = mean_and_standard_error(statistics.values[:, :, -1])
    return HypergradientCurves(steps=statistics.steps, hypergradient_error=mean, hypergradient_error_se=error,
                               curves=statistics.curves(), seeds=statistics)


__all__ = [
    "AdjointConstants",
    "HypergradientCurves",
    "UnrollingConstants",
    "adjoint_constants",
    "approximation_errors",
    "conjugate_gradient_bound",
    "hypergradient_curves",
    "neumann_bound",
    "truncation_bound",
    "unrolled_bound",
    "unrolling_constants",
]

"""Bounds as objects: a name, a statement, the certificate that proves it, and a numeric
evaluation of the very sympy expression that the certificate verifies."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import numpy as np
import sympy as sp

from derivatives.schedules import Constant, PolynomialDecay
from proofs_check import Certificate, gradient_descent, sgd


@dataclasses.dataclass(frozen=True)
class Bound:
    """A certified bound, evaluated numerically with `bound(**values)`.

    The keyword names are the names of the sympy symbols in `expression`; missing or
    extra names raise, so a call cannot silently drop a constant.
    """

    certificate: Certificate
    expression: sp.Expr

    @property
    def name(self) -> str:
        return self.certificate.name

    @property
    def statement(self) -> str:
        return self.certificate.statement

    @property
    def arguments(self) -> tuple[str, ...]:
        return tuple(sorted(str(symbol) for symbol in self.expression.free_symbols))

    def __call__(self, **values: float | np.ndarray) -> np.ndarray:
        if set(values) != set(self.arguments):
            raise TypeError(f"{self.name} takes exactly {self.arguments}, got {tuple(sorted(values))}")
        symbols = sorted(self.expression.free_symbols, key=str)
        function = _lambdified(self.expression, tuple(symbols))
        return np.asarray(function(*(np.asarray(values[str(s)], dtype=np.float64) for s in symbols)))


@functools.cache
def _lambdified(expression, symbols):
    return sp.lambdify(symbols, expression, modules="numpy")


def coupling(constants, jac_star_norm: float) -> float:
    """`M = L_H‖J*‖_F + L_C`: how fast the derivative recursion's fixed point moves with x.

    `‖(∇²ₓₓf(x) − ∇²ₓₓf(x*))J* + ∇²ₓθf(x) − ∇²ₓθf(x*)‖_F ≤ M‖x − x*‖` (docs/theory.md)."""
    return float(constants.hessian_lipschitz) * jac_star_norm + float(constants.cross_lipschitz)


GD_ITERATE = Bound(gradient_descent.GD_CONTRACTION, gradient_descent.ITERATE_BOUND)
GD_JACOBIAN = Bound(gradient_descent.JACOBIAN_RECURSION, gradient_descent.JACOBIAN_RECURSION.claim["bound"])


def gradient_descent_bounds(constants, step_size: float, x0_error: float, jac0_error: float,
                            jac_star_norm: float, steps) -> Mapping[str, np.ndarray]:
    """`‖x_k − x*‖` and `‖J_k − J*‖_F` bounds for full-batch gradient descent with
    constant `step_size ≤ 1/L` (certificates `gd_contraction`, `gd_jacobian_linear_rate`).

    `q = 1 − αμ`, `M = L_H ‖J*‖_F + L_C` from `constants`; `x0_error = ‖x₀ − x*‖`,
    `jac0_error = ‖J₀ − J*‖_F`, `jac_star_norm = ‖J*‖_F`.
    """
    L, mu = float(constants.L), float(constants.mu)
    if not 0 < step_size <= 1.0 / L:
        raise ValueError(f"step_size must be in (0, 1/L] = (0, {1.0 / L:.6g}] for these bounds, got {step_size}")
    q = 1.0 - step_size * mu
    M = coupling(constants, jac_star_norm)
    steps = np.asarray(steps, dtype=np.float64)
    return {
        "iterate": GD_ITERATE(q=q, e_x0=x0_error, k=steps),
        "jacobian": GD_JACOBIAN(q=q, alpha=step_size, M=M, e_J0=jac0_error, e_x0=x0_error, k=steps),
    }


# --- minibatch SGD (proofs_check/sgd.py, docs/theory.md) ---------------------------------

SGD_CONSTANT_ITERATE = Bound(sgd.CONSTANT_STEP_ITERATES, sgd.bound_expression(sgd.CONSTANT_STEP_ITERATES))
SGD_CONSTANT_JACOBIAN = Bound(sgd.CONSTANT_STEP_JACOBIAN, sgd.bound_expression(sgd.CONSTANT_STEP_JACOBIAN))
SGD_DECREASING_ITERATE = Bound(sgd.DECREASING_STEP_ITERATES, sgd.bound_expression(sgd.DECREASING_STEP_ITERATES))
SGD_DECREASING_JACOBIAN = Bound(sgd.DECREASING_STEP_JACOBIAN, sgd.bound_expression(sgd.DECREASING_STEP_JACOBIAN))
SGD_DECREASING_JACOBIAN_LOG = Bound(sgd.DECREASING_STEP_JACOBIAN_LOG,
                                    sgd.bound_expression(sgd.DECREASING_STEP_JACOBIAN_LOG))


# Step sizes computed as a/k0 with k0 = 2aL land on 1/(2L) up to rounding.
_ROUNDING = 1.0 + 1e-12


@dataclasses.dataclass(frozen=True)
class SGDBounds:
    """Bounds on `E‖x_k − x*‖²` and `E‖J_k − J*‖²_F` at the given steps, with the names of
    the certificates that prove them. `jacobian_alternatives` holds further valid bounds
    (for decreasing steps, the `O(log(k)²/k)` one next to the `O(1/k)` one)."""

    steps: np.ndarray
    iterate: np.ndarray
    jacobian: np.ndarray
    iterate_certificate: str
    jacobian_certificate: str
    jacobian_alternatives: Mapping[str, np.ndarray]
    conditions: str


def sgd_bounds(constants, schedule, *, batch_size: int, x0_error_sq: float, jac0_error_sq: float,
               jac_star_norm: float, steps) -> SGDBounds:
    """The certified bounds for minibatch SGD with a `rates` schedule.

    **Arguments:**

    - `constants`: `problem.constants(θ)` (μ, L, σ², σ_J², L_H, L_C).
    - `schedule`: `rates.constant(α)` with `α ≤ 1/(2L)`, or `rates.inverse_time(a, k0)` with
      `a/k0 ≤ 1/(2L)` and `aμ > 1`. Anything else raises `ValueError`.
    - `batch_size`: b; `x0_error_sq = ‖x₀ − x*‖²`; `jac0_error_sq = ‖J₀ − J*‖²_F`;
      `jac_star_norm = ‖J*‖_F` (for `M = L_H‖J*‖_F + L_C`).
    - `steps`: where to evaluate.

    The conditions also require every per-sample loss to be convex (true of every
    generator in `problems`; a user's `from_loss` problem must check it).
    """
    mu, L = float(constants.mu), float(constants.L)
    common = dict(mu=mu, sigma2=float(constants.sigma2), sigma2_jac=float(constants.sigma2_jac), b=float(batch_size),
                  M=coupling(constants, jac_star_norm),
                  u0=x0_error_sq, v0=jac0_error_sq)
    steps = np.asarray(steps, dtype=np.float64)
    if isinstance(schedule, Constant):
        alpha = float(schedule.alpha)
        if not alpha <= 0.5 / L * _ROUNDING:
            raise ValueError(f"step_size must be <= 1/(2L) = {0.5 / L:.6g} for the SGD bounds, got {alpha:.6g}")
        values = dict(common, alpha=alpha, k=steps)
        iterate = SGD_CONSTANT_ITERATE(**{n: values[n] for n in SGD_CONSTANT_ITERATE.arguments})
        jacobian = SGD_CONSTANT_JACOBIAN(**{n: values[n] for n in SGD_CONSTANT_JACOBIAN.arguments})
        return SGDBounds(steps, iterate, jacobian, SGD_CONSTANT_ITERATE.name, SGD_CONSTANT_JACOBIAN.name, {},
                         f"alpha = {alpha:.4g} <= 1/(2L) = {0.5 / L:.4g}")
    if isinstance(schedule, PolynomialDecay) and float(schedule.beta) == 1.0:
        a, k0 = float(schedule.a), float(schedule.k0)
        if not a / k0 <= 0.5 / L * _ROUNDING:
            raise ValueError(f"step_size a/k0 must be <= 1/(2L) = {0.5 / L:.6g} for the SGD bounds, got {a / k0:.6g}")
        if not a * mu > 1.0:
            raise ValueError(f"step_size needs a·mu > 1 for the decreasing-step bounds, got a·mu = {a * mu:.4g}")
        values = dict(common, a=a, k0=k0, k=steps)
        iterate = SGD_DECREASING_ITERATE(**{n: values[n] for n in SGD_DECREASING_ITERATE.arguments})
        values["C_u"] = float(SGD_DECREASING_ITERATE(**{n: dict(values, k=0.0)[n] for n in SGD_DECREASING_ITERATE.arguments})) * k0
        jacobian = SGD_DECREASING_JACOBIAN(**{n: values[n] for n in SGD_DECREASING_JACOBIAN.arguments})
        log_bound = SGD_DECREASING_JACOBIAN_LOG(**{n: values[n] for n in SGD_DECREASING_JACOBIAN_LOG.arguments})
        return SGDBounds(steps, iterate, jacobian, SGD_DECREASING_ITERATE.name, SGD_DECREASING_JACOBIAN.name,
                         {SGD_DECREASING_JACOBIAN_LOG.name: log_bound},
                         f"a·mu = {a * mu:.4g} > 1, a/k0 = {a / k0:.4g} <= 1/(2L) = {0.5 / L:.4g}")
    raise ValueError(f"no certified SGD bound for the schedule {schedule!r}; use rates.constant or rates.inverse_time")

"""Bounds as objects: a name, a statement, the certificate that proves it, and a numeric
evaluation of the very sympy expression that the certificate verifies."""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import sympy as sp

from proofs_check import Certificate, gradient_descent


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
        function = sp.lambdify(symbols, self.expression, modules="numpy")
        return np.asarray(function(*(np.asarray(values[str(s)], dtype=np.float64) for s in symbols)))


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
    M = float(constants.hessian_lipschitz) * jac_star_norm + float(constants.cross_lipschitz)
    steps = np.asarray(steps, dtype=np.float64)
    return {
        "iterate": GD_ITERATE(q=q, e_x0=x0_error, k=steps),
        "jacobian": GD_JACOBIAN(q=q, alpha=step_size, M=M, e_J0=jac0_error, e_x0=x0_error, k=steps),
    }

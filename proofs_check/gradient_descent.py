"""Full-batch gradient descent: linear convergence of the iterates and their derivatives.

**Setting.** `F(·, θ)` is μ-strongly convex and L-smooth; `∇²ₓₓF` is `L_H`-Lipschitz in x
(operator norm) and `∇²ₓθF` is `L_C`-Lipschitz in x (Frobenius norm). Gradient descent
`x_{k+1} = x_k − α∇ₓF(x_k, θ)` with `0 < α ≤ 1/L`, from `x₀` independent of θ, and its
derivative `J_{k+1} = J_k − α(H_k J_k + C_k)`, `J₀ = 0`.

**Claim.** With `q = 1 − αμ`, `e_x(k) = ‖x_k − x*‖`, `e_J(k) = ‖J_k − J*‖_F`:

    e_x(k) ≤ qᵏ e_x(0),    e_J(k) ≤ qᵏ e_J(0) + α M k q^(k−1) e_x(0),   M = L_H‖J*‖_F + L_C.

**Proof.**

1. *Contraction.* Every eigenvalue h of a Hessian lies in [μ, L], and for α ≤ 1/L,
   `|1 − αh| ≤ 1 − αμ`: `1 − αh ≤ 1 − αμ` as h ≥ μ, and `1 − αh ≥ −(1 − αμ)` iff
   `2 − α(h + μ) ≥ 0`. (Certified below with `L = μ + w`, `α = 1/(L + v)`, and
   `h = μ + (1 − r)w` or `h = μ + s w`; `w, v, r, s ≥ 0`.) The mean-value form of
   `x_{k+1} − x*` then gives the first inequality.
2. *Perturbed recursion.* Since `H*J* + C* = 0`,
   `J_{k+1} − J* = (I − αH_k)(J_k − J*) − α[(H_k − H*)J* + (C_k − C*)]`, so
   `e_J(k+1) ≤ q e_J(k) + αM e_x(k) ≤ q e_J(k) + αM qᵏ e_x(0)`.
3. *Closed form.* `B(k) = qᵏ e_J(0) + αMk q^(k−1) e_x(0)` satisfies `B(0) = e_J(0)` and
   `B(k+1) = q B(k) + αM qᵏ e_x(0)` exactly (certified), so `e_J(k) ≤ B(k)` by induction
   (the right side of step 2 is increasing in `e_J(k)` because `q ≥ 0`).
"""

from __future__ import annotations

import sympy as sp

from proofs_check._certificate import Certificate, is_zero, nonnegative_by_coefficients

k = sp.Symbol("k", integer=True, nonnegative=True)
q, alpha, M, e_jac0, e_x0 = sp.symbols("q alpha M e_J0 e_x0", nonnegative=True)
mu, w, v, r = sp.symbols("mu w v r", nonnegative=True)

JACOBIAN_BOUND = q**k * e_jac0 + alpha * M * k * q ** (k - 1) * e_x0
ITERATE_BOUND = q**k * e_x0


def _initial_value(claim):
    return is_zero(claim["bound"].subs(k, 0) - e_jac0)


def _one_step(claim):
    bound = claim["bound"]
    return is_zero(bound.subs(k, k + 1) - q * bound - alpha * M * q**k * e_x0)


JACOBIAN_RECURSION = Certificate(
    name="gd_jacobian_linear_rate",
    statement="e_J(k+1) <= q e_J(k) + alpha M q^k e_x(0), e_J(0) = e_J0  =>  "
              "e_J(k) <= q^k e_J0 + alpha M k q^(k-1) e_x0",
    claim={"bound": JACOBIAN_BOUND},
    steps=(_initial_value, _one_step),
    mutants=(
        ("k q^k instead of k q^(k-1)", {"bound": q**k * e_jac0 + alpha * M * k * q**k * e_x0}),
        ("noise term without the factor k", {"bound": q**k * e_jac0 + alpha * M * q ** (k - 1) * e_x0}),
        ("initial error dropped", {"bound": alpha * M * k * q ** (k - 1) * e_x0}),
    ),
)


L_symbol = sp.Symbol("L", positive=True)
s_symbol = sp.Symbol("s", nonnegative=True)


def _step_size(claim):
    return claim["step"].subs(L_symbol, mu + w)


def _contraction_lower_side(claim):
    """`2 − α(h + μ) ≥ 0` for h = μ + (1 − r)w ≤ L (r ≥ 0)."""
    h = mu + (1 - r) * w
    return nonnegative_by_coefficients(2 - _step_size(claim) * (h + mu), (mu, w, v, r))


def _contraction_upper_side(claim):
    """`(1 − αμ) − (1 − αh) = α(h − μ) ≥ 0` for h = μ + s w ≥ μ (s ≥ 0)."""
    h = mu + s_symbol * w
    return nonnegative_by_coefficients(_step_size(claim) * (h - mu), (mu, w, v, s_symbol))


GD_CONTRACTION = Certificate(
    name="gd_contraction",
    statement="mu <= h <= L and 0 < alpha <= 1/L  =>  |1 - alpha h| <= 1 - alpha mu",
    claim={"step": 1 / (L_symbol + v)},
    steps=(_contraction_lower_side, _contraction_upper_side),
    mutants=(
        ("step size up to 2/L", {"step": 2 / (L_symbol + v)}),
        ("negative step size", {"step": -1 / (L_symbol + v)}),
    ),
)

CERTIFICATES = (GD_CONTRACTION, JACOBIAN_RECURSION)

"""Hypergradients: the error of the truncated Neumann series at the exact inner solution.

**Setting.** `H = ∇²ₓₓF(x*, θ)` symmetric with spectrum in `[μ, L]`, `0 < α ≤ 1/L`,
`g = ∇ₓG(x*, θ)`, the adjoint `v* = H⁻¹g`, `C = ∇²ₓθF(x*, θ)`, and the hypergradient
`h = ∇θG − Cᵀv*`. The Neumann method (`derivatives.hypergradients.Neumann`) takes

    v_k = α Σ_{j<k} (I − αH)^j g,    ĥ_k = ∇θG − Cᵀv_k.

**Claim.** `v_k − v* = −(I − αH)^k v*`, hence with `q = 1 − αμ`

    ‖ĥ_k − h‖ = ‖Cᵀ(I − αH)^k v*‖ ≤ ‖C‖₂ q^k ‖v*‖.

**Proof.**

1. *Per eigenvalue.* In an eigenbasis of H, component i of `v_k` is `s_k(h_i) g_i` with
   `s_k(h) = α Σ_{j<k} r^j`, `r = 1 − αh`. For `h > 0` the geometric sum gives
   `h·s_k(h) − 1 = −r^k` (certified with k symbolic), so component i of `v_k − v*` is
   `(s_k(h_i) − 1/h_i) g_i = −r_i^k v*_i`.
2. *Contraction.* `|1 − αh| ≤ 1 − αμ` for `h ∈ [μ, L]`, `α ≤ 1/L`: certificate
   `gd_contraction`. So `‖(I − αH)^k v*‖ ≤ q^k‖v*‖`, and `‖Cᵀu‖ ≤ ‖C‖₂‖u‖`.

The same bound holds for `FixedPoint(k, α)`, whose `J_k = −α Σ_{j<k}(I − αH)^j C` gives
the same `ĥ_k` (`J_kᵀg = −Cᵀv_k`, H symmetric).
"""

from __future__ import annotations

import sympy as sp

from proofs_check._certificate import Certificate, is_zero

k = sp.Symbol("k", integer=True, nonnegative=True)
j = sp.Symbol("j", integer=True, nonnegative=True)
alpha, h = sp.symbols("alpha h", positive=True)

SERIES = alpha * sp.Sum((1 - alpha * h) ** j, (j, 0, k - 1))


def _geometric_sum(claim):
    """`h·s_k(h) − 1 = −(1 − αh)^k` for every k ≥ 0: the sum in closed form, on its branch
    for a ratio ≠ 1 (h > 0)."""
    closed = claim["series"].doit()
    if isinstance(closed, sp.Piecewise):
        closed = next(expression for expression, condition in closed.args if condition == sp.true)
    return is_zero(h * closed - 1 + (1 - alpha * h) ** k)


def _no_terms_at_zero(claim):
    """`s_0 = 0`: the series starts empty, `v₀ = 0`."""
    return is_zero(claim["series"].subs(k, 0).doit())


NEUMANN_REMAINDER = Certificate(
    name="neumann_remainder",
    statement="v_k = alpha sum_{j<k} (I - alpha H)^j g, v* = H^-1 g  =>  v_k - v* = -(I - alpha H)^k v*; "
              "with gd_contraction, ||h_k - h|| <= ||C|| (1 - alpha mu)^k ||v*||",
    claim={"series": SERIES},
    steps=(_geometric_sum, _no_terms_at_zero),
    mutants=(
        ("the sum runs to j = k", {"series": alpha * sp.Sum((1 - alpha * h) ** j, (j, 0, k))}),
        ("the factor alpha dropped", {"series": sp.Sum((1 - alpha * h) ** j, (j, 0, k - 1))}),
        ("terms (1 - 2 alpha h)^j", {"series": alpha * sp.Sum((1 - 2 * alpha * h) ** j, (j, 0, k - 1))}),
    ),
)

CERTIFICATES = (NEUMANN_REMAINDER,)

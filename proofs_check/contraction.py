"""One step of the SGD derivative recursion contracts in mean square.

**Setting.** Symmetric per-sample Hessians `H_ξ` with `0 ⪯ H_ξ ⪯ L·I`, mean
`H̄ = E H_ξ ⪰ μI`, a step `0 < α ≤ 1/L`, and any vector `Δ` independent of ξ (a
column of `J_k − J*`; the Frobenius case is the sum over columns).

**Claim.**

    E‖(I − αH_ξ)Δ‖² ≤ (1 − αμ)‖Δ‖².

**Proof.**

1. *Expansion.* For symmetric H, `‖(I − αH)Δ‖² = ‖Δ‖² − 2α⟨Δ, HΔ⟩ + α²‖HΔ‖²`
   (certified for a symbolic symmetric 3×3 matrix); taking expectations,
   `E‖(I − αH_ξ)Δ‖² = ‖Δ‖² − 2α m + α² q` with `m = ⟨Δ, H̄Δ⟩`, `q = E‖H_ξΔ‖²`.
2. *Eigenvalues.* In an eigenbasis of H, `L⟨Δ, HΔ⟩ − ‖HΔ‖² = Σᵢ hᵢ(L − hᵢ) cᵢ²`, and
   `h(L − h) ≥ 0` for every `h ∈ [0, L]` (certified with `h = L/(1 + r)` and
   `h = L r/(1 + r)`, `r ≥ 0`, which together cover [0, L]). Hence `q ≤ L m`.
3. *Chain.* Write `q = L m − e₁` and `m = μ‖Δ‖² + e₂` with `e₁, e₂ ≥ 0` (step 2 and
   `H̄ ⪰ μI`). Then, with `D = ‖Δ‖²`,

       (1 − αμ) D − (D − 2αm + α²q) = αμ(1 − αL) D + α(2 − αL) e₂ + α² e₁ ≥ 0

   exactly when the step respects `αL ≤ 1` (certified with `α = 1/(L + v)`, `v ≥ 0`,
   as non-negative coefficients in `D, μ, L, v, e₁, e₂`). The intermediate bound
   `1 − α(2 − αL)μ` is at most `1 − αμ` iff `αL ≤ 1`: the same coefficient `αμ(1 − αL)`.
"""

from __future__ import annotations

import sympy as sp

from proofs_check._certificate import Certificate, is_zero, nonnegative_by_coefficients

alpha = sp.Symbol("alpha", positive=True)
L, mu = sp.symbols("L mu", positive=True)
v, r, D, e1, e2 = sp.symbols("v r D e1 e2", nonnegative=True)

STEP = 1 / (L + v)            # every α ∈ (0, 1/L]
CONTRACTION = 1 - alpha * mu  # the claimed factor, in terms of α


def _expansion(claim):
    """`‖(I − αH)Δ‖² = ‖Δ‖² − 2α⟨Δ, HΔ⟩ + α²‖HΔ‖²` for a symmetric H."""
    h = sp.symbols("h11 h12 h13 h22 h23 h33", real=True)
    H = sp.Matrix([[h[0], h[1], h[2]], [h[1], h[3], h[4]], [h[2], h[4], h[5]]])
    delta = sp.Matrix(sp.symbols("d1:4", real=True))
    image = (sp.eye(3) - alpha * H) * delta
    expanded = delta.dot(delta) - 2 * alpha * delta.dot(H * delta) + alpha**2 * (H * delta).dot(H * delta)
    return is_zero(image.dot(image) - expanded)


def _eigenvalue_bound(claim):
    """`c·h − h² ≥ 0` for every eigenvalue `h ∈ [0, L]`, c the claimed curvature factor."""
    c = claim["curvature"]
    return all(
        nonnegative_by_coefficients(c * h - h**2, (L, r))
        for h in (L / (1 + r), L * r / (1 + r))
    )


def _chain(claim):
    """`(contraction)·D − (D − 2αm + α²q) ≥ 0` for `q = c·m − e₁`, `m = μD + e₂`."""
    m = mu * D + e2
    q = claim["curvature"] * m - e1
    gap = claim["contraction"] * D - (D - 2 * alpha * m + alpha**2 * q)
    return nonnegative_by_coefficients(gap.subs(alpha, claim["step"]), (D, mu, L, v, e1, e2))


ONE_STEP_CONTRACTION = Certificate(
    name="recursion_contraction",
    statement="0 <= H_xi <= L I, E H_xi >= mu I, 0 < alpha <= 1/L  =>  "
              "E||(I - alpha H_xi) Delta||^2 <= (1 - alpha mu) ||Delta||^2",
    claim={"step": STEP, "contraction": CONTRACTION, "curvature": L},
    steps=(_expansion, _eigenvalue_bound, _chain),
    mutants=(
        ("step size up to 2/L", {"step": 2 / (L + v), "contraction": CONTRACTION, "curvature": L}),
        ("contraction 1 - 2 alpha mu", {"step": STEP, "contraction": 1 - 2 * alpha * mu, "curvature": L}),
        ("||H Delta||^2 <= (L/2) <Delta, H Delta>", {"step": STEP, "contraction": CONTRACTION, "curvature": L / 2}),
    ),
)

CERTIFICATES = (ONE_STEP_CONTRACTION,)

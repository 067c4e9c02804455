"""Hypergradients: the errors of the truncated Neumann series (`neumann_remainder`) and of
conjugate gradients (`chebyshev_conjugate_gradient`) at the exact inner solution.

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

**Conjugate gradients: the Chebyshev rate** (`chebyshev_conjugate_gradient`).

**Setting.** As above, with `μ < L`, `κ = L/μ > 1`. `ConjugateGradient(k)`
(`derivatives.hypergradients.conjugate_gradient`) takes k steps of conjugate gradients on
`H v = g` from `v₀ = 0`, so the initial error is `e₀ = −v*`; `ĥ_k = ∇θG − Cᵀv_k`.

**Claim.** With `ρ = (√κ − 1)/(√κ + 1)` and `‖u‖_H = √(uᵀHu)`,

    ‖v_k − v*‖_H ≤ 2ρ^k ‖v*‖_H,    hence    ‖ĥ_k − h‖ ≤ 2‖C‖₂ ρ^k ‖v*‖_H/√μ.

**Proof.**

0. *Krylov optimality (assumed, not certified).* `v_k − v* = p_k(H)e₀` where `p_k`
   minimises `‖p(H)e₀‖_H` over polynomials p of degree ≤ k with `p(0) = 1` (Saad,
   *Iterative Methods for Sparse Linear Systems*, 2003, Lemma 6.28 and Thm 6.29;
   Greenbaum, *Iterative Methods for Solving Linear Systems*, 1997, §3.1). Expanding
   `e₀` in an eigenbasis of H, `‖p(H)e₀‖_H ≤ max_{λ∈[μ,L]} |p(λ)| ‖e₀‖_H` for every such p,
   so any one p bounds the error; steps 1–5 build one with `max |p| ≤ 2ρ^k`.
1. *Chebyshev polynomials in closed form.* `T_k(z) = ½(w^k + w^{−k})`, `w = z + √(z² − 1)`,
   satisfies `T_{k+1} = 2zT_k − T_{k−1}`, `T₀ = 1`, `T₁ = z` (certified with k symbolic,
   through `w + 1/w = 2z`). The recurrence defines a polynomial of degree k, so the closed
   form is the Chebyshev polynomial T_k at every z ≥ 1.
2. *Bounded on [−1, 1].* `cos(kφ)` satisfies the same recurrence at `z = cos φ` with the same
   `T₀, T₁` (certified, k symbolic, by the cosine addition formula), so
   `T_k(cos φ) = cos(kφ)` and `|T_k| ≤ 1` on [−1, 1].
3. *The shifted argument.* `t(λ) = (L + μ − 2λ)/(L − μ)` is affine in λ with `t(μ) = 1` and
   `t(L) = −1`, so it maps [μ, L] onto [−1, 1], and `t(0) = z := (κ + 1)/(κ − 1)` at
   `κ = L/μ`. So `p(λ) = T_k(t(λ))/T_k(z)` has degree k, `p(0) = 1`, and
   `max_{[μ,L]} |p| ≤ 1/T_k(z)` (step 2; `T_k(z) > 0` as `w > 0`).
4. *The rate.* At `z = (κ + 1)/(κ − 1)`: `z > 1`, `w = (√κ + 1)/(√κ − 1) = 1/ρ` and
   `0 ≤ ρ < 1` (certified with `√κ = 1 + τ`, τ > 0; each square root is taken of its
   factored radicand, so its sign is decided, not assumed).
5. *The factor 2.* So `1/T_k(z) = 2/(ρ^{−k} + ρ^k)`, and with `P = ρ^k ≥ 0`,
   `2P − 2/(1/P + P) = 2P³/(1 + P²) ≥ 0`: `1/T_k(z) ≤ 2ρ^k` (certified by non-negative
   coefficients in P, k symbolic).
6. *Energy to Euclidean norm.* `‖u‖² = Σ uᵢ² ≤ Σ (hᵢ/μ) uᵢ² = ‖u‖_H²/μ`, as every
   eigenvalue is `hᵢ = μ + δᵢ`, `δᵢ ≥ 0` (certified per eigenvalue). With `‖Cᵀu‖ ≤ ‖C‖₂‖u‖`
   and `‖e₀‖_H = ‖v*‖_H` this gives the claim; `conjugate_gradient_bound_expression` is the
   expression that `rates.hypergradients.conjugate_gradient_bound` evaluates (tested).

The bound is for exact arithmetic. In floating point CG loses orthogonality, which can delay
its convergence; tests/test_proofs_conjugate_gradient.py measures the bound on drawn matrices.
"""

from __future__ import annotations

import sympy as sp

from proofs_check._certificate import Certificate, is_zero, nonnegative_by_coefficients

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

# --- conjugate gradients: the Chebyshev rate ----------------------------------------------------------------------

z, w, power = sp.symbols("z w P", positive=True)  # power: w^k in step 1, rho^k in step 5
kappa, tau, delta = sp.symbols("kappa tau delta", positive=True)
rho = sp.Symbol("rho", nonnegative=True)
phi = sp.Symbol("phi", real=True)
lam, mu, L = sp.symbols("lambda mu L", positive=True)
cross_norm, adjoint_energy_norm = sp.symbols("cross_norm adjoint_energy_norm", nonnegative=True)

CHEBYSHEV_CLAIM = {
    "chebyshev": (w**k + w ** (-k)) / 2,          # T_k as a function of w
    "w": z + sp.sqrt(z**2 - 1),                    # w as a function of z
    "z": (kappa + 1) / (kappa - 1),                # T_k is evaluated at z(κ) = t(0)
    "rho": (sp.sqrt(kappa) - 1) / (sp.sqrt(kappa) + 1),
    "bound": 2 * rho**k,                           # 1/T_k(z) ≤ bound, as a function of ρ
    "argument": (L + mu - 2 * lam) / (L - mu),     # t(λ)
    "on_interval": sp.cos(k * phi),                # T_k(cos φ)
    "euclidean_per_energy": 1 / sp.sqrt(mu),       # ‖u‖ ≤ this · ‖u‖_H
}


def _roots_of_factored(expression):
    """Each square root taken of its factored radicand, so that sympy splits it into the roots of
    the (positive) factors: `√(4(τ + 1)²/τ²) = 2(τ + 1)/τ` for τ > 0, and no sign is guessed."""
    return expression.replace(lambda e: e.is_Pow and e.exp == sp.S.Half,
                              lambda e: sp.sqrt(sp.factor(sp.together(e.base))))


def _recurrence_residual(sequence, x):
    """`s_{k+1} − 2x s_k + s_{k−1}` for a sequence given as an expression in k."""
    return sequence.subs(k, k + 1) - 2 * x * sequence + sequence.subs(k, k - 1)


def _chebyshev_recurrence(claim):
    """Step 1: `T_k = ½(w^k + w^{−k})`, `w = z + √(z² − 1)`, satisfies `T_{k+1} − 2zT_k + T_{k−1} = 0`
    for symbolic k (the powers split off `w^k =: P ≠ 0`, leaving a rational identity in P, w, z),
    `T₀ = 1` and `T₁ = z`."""
    chebyshev, w_of_z = claim["chebyshev"], claim["w"]
    residual = sp.expand(sp.expand_power_exp(_recurrence_residual(chebyshev, z))).subs(w**k, power)
    if k in residual.free_symbols:
        return False
    return (is_zero(residual.subs(w, w_of_z)) and is_zero(chebyshev.subs(k, 0) - 1)
            and is_zero(chebyshev.subs(k, 1).subs(w, w_of_z) - z))


def _bounded_on_the_interval(claim):
    """Step 2: `cos(kφ)` satisfies the same recurrence at `z = cos φ` (k symbolic) with `T₀ = 1`,
    `T₁ = cos φ`, so it is `T_k(cos φ)`; and it is a cosine of a real angle, so `|T_k| ≤ 1` on [−1, 1]."""
    cosine = claim["on_interval"]
    residual = sp.expand_trig(sp.expand(_recurrence_residual(cosine, sp.cos(phi))))
    return (is_zero(residual) and is_zero(cosine.subs(k, 0) - 1) and is_zero(cosine.subs(k, 1) - sp.cos(phi))
            and isinstance(cosine, sp.cos) and bool(cosine.args[0].is_real))


def _shifted_argument(claim):
    """Step 3: `t(λ)` is affine in λ, `t(μ) = 1`, `t(L) = −1` (so [μ, L] → [−1, 1]), and
    `t(0) = z(κ)` at κ = L/μ (so `p(0) = T_k(t(0))/T_k(z) = 1`)."""
    argument = claim["argument"]
    return (sp.Poly(argument, lam).degree() == 1 and is_zero(argument.subs(lam, mu) - 1)
            and is_zero(argument.subs(lam, L) + 1)
            and is_zero(argument.subs(lam, 0) - claim["z"].subs(kappa, L / mu)))


def _rate_from_condition_number(claim):
    """Step 4: at `z = z(κ)`, `√κ = 1 + τ` (τ > 0): `z > 1`, `w·ρ = 1`, `ρ ≥ 0` and `1 − ρ > 0`.
    The roots are taken of factored radicands, so the sign of `±√(z² − 1)` is decided, not assumed."""
    at = {kappa: (1 + tau) ** 2}
    z_of_kappa = claim["z"].subs(at)
    w_at = _roots_of_factored(claim["w"].subs(z, claim["z"]).subs(at))
    rho_at = _roots_of_factored(claim["rho"].subs(at))
    return (nonnegative_by_coefficients(z_of_kappa - 1, (tau,)) and sp.simplify(z_of_kappa - 1) != 0
            and is_zero(w_at * rho_at - 1)
            and nonnegative_by_coefficients(rho_at, (tau,)) and nonnegative_by_coefficients(1 - rho_at, (tau,))
            and sp.simplify(1 - rho_at) != 0)


def _factor_two(claim):
    """Step 5: with `w = 1/ρ` (step 4), `1/T_k(z) = 2/(ρ^{−k} + ρ^k)`; with `P = ρ^k ≥ 0`,
    `bound − 1/T_k(z) ≥ 0` by non-negative coefficients in P (k symbolic)."""
    chebyshev = claim["chebyshev"].subs(w, 1 / rho)
    excess = (claim["bound"] - 1 / chebyshev).subs(rho**k, power)
    return k not in excess.free_symbols and rho not in excess.free_symbols and nonnegative_by_coefficients(
        excess, (power,))


def _energy_to_euclidean(claim):
    """Step 6: `uᵢ² ≤ c² hᵢ uᵢ²` for every eigenvalue `hᵢ = μ + δ ≥ μ`, i.e. `c²(μ + δ) − 1 ≥ 0`,
    with `c = claim["euclidean_per_energy"]`; summed over i, `‖u‖ ≤ c‖u‖_H`."""
    return nonnegative_by_coefficients(claim["euclidean_per_energy"] ** 2 * (mu + delta) - 1, (mu, delta))


def conjugate_gradient_bound_expression(claim=CHEBYSHEV_CLAIM):
    """`‖C‖₂ · bound(ρ(L/μ)) · ‖v*‖_H · c`: with the true claim, `2‖C‖₂ ρ^k ‖v*‖_H/√μ`."""
    rate = claim["rho"].subs(kappa, L / mu)
    return cross_norm * claim["bound"].subs(rho, rate) * adjoint_energy_norm * claim["euclidean_per_energy"]


def _chebyshev_mutant(**changes):
    return {**CHEBYSHEV_CLAIM, **changes}


CHEBYSHEV_CONJUGATE_GRADIENT = Certificate(
    name="chebyshev_conjugate_gradient",
    statement="CG on H v = g from 0, spec(H) in [mu, L], kappa = L/mu, rho = (sqrt(kappa) - 1)/(sqrt(kappa) + 1): "
              "min_{deg p <= k, p(0) = 1} max_[mu,L] |p| <= 1/T_k((kappa+1)/(kappa-1)) <= 2 rho^k; "
              "with Krylov optimality (assumed; Saad 2003 Thm 6.29), ||v_k - v*||_H <= 2 rho^k ||v*||_H and "
              "||h_k - h|| <= 2 ||C|| rho^k ||v*||_H / sqrt(mu)",
    claim=CHEBYSHEV_CLAIM,
    steps=(_chebyshev_recurrence, _bounded_on_the_interval, _shifted_argument, _rate_from_condition_number,
           _factor_two, _energy_to_euclidean),
    mutants=(
        ("gradient-descent rate rho = (kappa - 1)/(kappa + 1)", _chebyshev_mutant(rho=(kappa - 1) / (kappa + 1))),
        ("factor 2 dropped: bound rho^k", _chebyshev_mutant(bound=rho**k)),
        ("rho squared: bound 2 rho^(2k)", _chebyshev_mutant(bound=2 * rho ** (2 * k))),
        ("w = z + sqrt(z^2 + 1)", _chebyshev_mutant(w=z + sp.sqrt(z**2 + 1))),
        ("w = z - sqrt(z^2 - 1), the other root (= rho, not 1/rho)", _chebyshev_mutant(w=z - sp.sqrt(z**2 - 1))),
        ("argument (2 lambda - L - mu)/(L - mu): p(0) = (-1)^k",
         _chebyshev_mutant(argument=(2 * lam - L - mu) / (L - mu))),
        ("T_k(cos phi) = cos(phi)^k", _chebyshev_mutant(on_interval=sp.cos(phi) ** k)),
        ("1/sqrt(L) in place of 1/sqrt(mu)", _chebyshev_mutant(euclidean_per_energy=1 / sp.sqrt(L))),
    ),
)


CERTIFICATES = (NEUMANN_REMAINDER, CHEBYSHEV_CONJUGATE_GRADIENT)

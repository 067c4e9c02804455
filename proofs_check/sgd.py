"""Minibatch SGD and its derivative recursion: mean-square bounds for every regime.

**Setting** (docs/theory.md). `F = mean_i fᵢ`, each `fᵢ(·, θ)` convex with
`0 ⪯ ∇²ₓₓfᵢ ⪯ L`, `F` μ-strongly convex; `L_H`, `L_C` the Lipschitz constants of the
per-sample Hessians; minibatches of size `b` drawn with replacement; steps
`0 < α_k ≤ 1/(2L)`; `x₀` fixed, `J₀ = 0`. With `u_k = E‖x_k − x*‖²`, `v_k = E‖J_k − J*‖²_F`
and `M = L_H‖J*‖_F + L_C` (docs/theory.md derives both):

    u_{k+1} ≤ (1 − α_kμ) u_k + 2α_k² σ²/b                                      (U)
    v_{k+1} ≤ (1 − α_kμ) v_k + 2α_k M √(v_k u_k) + 4α_k²(M² u_k + σ_J²/b)        (V)

`sgd_one_step_iterates` and `sgd_one_step_jacobian` certify (U) and (V) themselves, from scalar
facts about Hessian eigenvalues chained by a linear certificate (the matrix-to-scalar reductions
are named, cited lemmas). Each other bound below solves (U) or (V) in closed form; its certificate checks the steps
that make the closed form an upper bound (identities, and polynomial inequalities
reduced to non-negative coefficients), and each has mutants the same steps reject.
"""

from __future__ import annotations

import sympy as sp

from proofs_check._certificate import Certificate, is_zero, nonnegative_by_coefficients

k = sp.Symbol("k", integer=True, nonnegative=True)
alpha, mu, sigma2, sigma2_jac, b, M, u0, v0, a, k0 = sp.symbols(
    "alpha mu sigma2 sigma2_jac b M u0 v0 a k0", positive=True
)
t, e, g, s_, w_ = sp.symbols("t e g s w", nonnegative=True)  # proof variables


def _starts_at(initial):
    def step(claim):
        return is_zero(claim["bound"].subs(k, 0) - initial)
    return step


def _solves(recursion):
    """The closed form `B(k)` satisfies `B(k+1) = recursion(B(k))` with equality."""
    def step(claim):
        return is_zero(claim["bound"].subs(k, k + 1) - recursion(claim["bound"]))
    return step


# --- constant steps ------------------------------------------------------------------

q = 1 - alpha * mu
rho = 1 - alpha * mu / 2


def constant_iterate(plateau=2 * alpha * sigma2 / (mu * b), contraction=q):
    return contraction**k * u0 + (1 - contraction**k) * plateau


def constant_jacobian(noise=4 * alpha**2 * sigma2_jac / b, contraction=rho,
                      cross=2 * alpha / mu + 4 * alpha**2):
    """Solution of v_{k+1} = ρ v_k + cross·M²·U(k) + noise, v_0 = v0, U = constant_iterate()."""
    plateau_u = 2 * alpha * sigma2 / (mu * b)
    return (
        contraction**k * v0
        + cross * M**2 * ((u0 - plateau_u) * (contraction**k - q**k) / (contraction - q)
                          + plateau_u * (1 - contraction**k) / (1 - contraction))
        + noise * (1 - contraction**k) / (1 - contraction)
    )


CONSTANT_ITERATE = constant_iterate()
CONSTANT_JACOBIAN = constant_jacobian()
ITERATE_PLATEAU = 2 * alpha * sigma2 / (mu * b)
JACOBIAN_PLATEAU = 8 * alpha / (mu * b) * ((1 / mu + 2 * alpha) * M**2 * sigma2 / mu + sigma2_jac)


def _plateau_is(plateau):
    def step(claim):
        return is_zero(claim["bound"].subs({q**k: 0, rho**k: 0}) - plateau)
    return step


CONSTANT_STEP_ITERATES = Certificate(
    name="sgd_constant_iterates",
    statement="(U), alpha_k = alpha: u_k <= q^k u0 + (1 - q^k) 2 alpha sigma2/(mu b), q = 1 - alpha mu",
    claim={"bound": CONSTANT_ITERATE},
    steps=(_starts_at(u0), _solves(lambda B: q * B + 2 * alpha**2 * sigma2 / b), _plateau_is(ITERATE_PLATEAU)),
    mutants=(
        ("noise ball halved", {"bound": constant_iterate(plateau=alpha * sigma2 / (mu * b))}),
        ("contraction 1 - 2 alpha mu", {"bound": constant_iterate(contraction=1 - 2 * alpha * mu)}),
    ),
)


def _young_split(claim):
    """2αM s t ≤ (αμ/2)s² + c·t² with c = 2αM²/μ: the difference is a square."""
    difference = (alpha * mu / 2) * s_**2 + claim["coefficient"] * w_**2 - 2 * alpha * M * s_ * w_
    return is_zero(difference - alpha / (2 * mu) * (mu * s_ - 2 * M * w_) ** 2)


YOUNG_SPLIT = Certificate(
    name="young_split",
    statement="2 alpha M sqrt(v u) <= (alpha mu/2) v + (2 alpha M^2/mu) u",
    claim={"coefficient": 2 * alpha * M**2 / mu},
    steps=(_young_split,),
    mutants=(("coefficient alpha M^2/mu", {"coefficient": alpha * M**2 / mu}),),
)

CONSTANT_STEP_JACOBIAN = Certificate(
    name="sgd_constant_jacobian",
    statement="(V) split by young_split: v_k <= rho^k v0 + ..., rho = 1 - alpha mu/2, with plateau "
              "(8 alpha/(mu b))((1/mu + 2 alpha) M^2 sigma2/mu + sigma2_jac)",
    claim={"bound": CONSTANT_JACOBIAN},
    steps=(
        _starts_at(v0),
        _solves(lambda B: rho * B + (2 * alpha / mu + 4 * alpha**2) * M**2 * CONSTANT_ITERATE
                + 4 * alpha**2 * sigma2_jac / b),
        _plateau_is(JACOBIAN_PLATEAU),
    ),
    mutants=(
        ("Jacobian noise halved", {"bound": constant_jacobian(noise=2 * alpha**2 * sigma2_jac / b)}),
        ("contraction 1 - 3 alpha mu/4", {"bound": constant_jacobian(contraction=q + alpha * mu / 4)}),
        ("cross term without 4 alpha^2", {"bound": constant_jacobian(cross=2 * alpha / mu)}),
    ),
)

# --- interpolation: the constant-step bounds when the noise vanishes at the solution ------
# Double interpolation (σ² = σ_J² = 0): both bounds fall exponentially, the iterates at rate
# q = 1 − αμ and the derivatives at rate ρ = 1 − αμ/2 (the Young split costs half the rate).
# Simple interpolation (σ² = 0 < σ_J²): the iterates still fall at rate q; the derivative
# bound tends to the floor 8ασ_J²/(μb), proportional to the step.

CROSS_OVER_GAP = (2 * alpha / mu + 4 * alpha**2) / (rho - q)  # = 4/μ² + 8α/μ
DOUBLE_ENVELOPE = rho**k * (v0 + (4 / mu**2 + 8 * alpha / mu) * M**2 * u0)
SIMPLE_FLOOR = 8 * alpha * sigma2_jac / (mu * b)


def interpolation(iterate_rate=q, envelope=DOUBLE_ENVELOPE, floor=SIMPLE_FLOOR):
    return {"iterate_rate": iterate_rate, "envelope": envelope, "floor": floor}


def _iterates_exponential(claim):
    """σ² = 0: the constant-step iterate bound is exactly `rate^k u0`."""
    return is_zero(CONSTANT_ITERATE.subs(sigma2, 0) - claim["iterate_rate"] ** k * u0)


def _jacobian_envelope(claim):
    """σ² = σ_J² = 0: `envelope − bound = q^k (4/μ² + 8α/μ) M² u0`, and that remainder is ≥ 0.
    The powers are named (`q^k = Q`, `ρ^k = R`) so that the remainder is linear in them."""
    Q, R = sp.symbols("Q R", positive=True)
    powers = {q**k: Q, rho**k: R}
    noiseless = CONSTANT_JACOBIAN.subs({sigma2: 0, sigma2_jac: 0})
    remainder = sp.expand(claim["envelope"].subs(powers) - noiseless.subs(powers))
    coefficient = sp.simplify(sp.diff(remainder, Q))
    return (not remainder.has(k)
            and is_zero(remainder - coefficient * Q)
            and is_zero(coefficient - CROSS_OVER_GAP * M**2 * u0)
            and nonnegative_by_coefficients(coefficient, (alpha, mu, M, u0)))


def _simple_floor(claim):
    """σ² = 0: the derivative bound tends to the claimed floor as q^k, ρ^k → 0, and the floor
    is not zero: the derivatives do not interpolate."""
    limit = CONSTANT_JACOBIAN.subs(sigma2, 0).subs({q**k: 0, rho**k: 0})
    return is_zero(limit - claim["floor"]) and claim["floor"].subs(sigma2_jac, 1) != 0


INTERPOLATION = Certificate(
    name="sgd_interpolation",
    statement="constant step: sigma2 = 0 => u_k <= q^k u0; sigma2 = sigma2_jac = 0 => v_k <= rho^k (v0 + "
              "(4/mu^2 + 8 alpha/mu) M^2 u0), rho = 1 - alpha mu/2; sigma2 = 0 < sigma2_jac => v_k -> floor "
              "8 alpha sigma2_jac/(mu b)",
    claim=interpolation(),
    steps=(_iterates_exponential, _jacobian_envelope, _simple_floor),
    mutants=(
        ("derivatives at the iterate rate q", interpolation(envelope=DOUBLE_ENVELOPE.subs(rho**k, q**k))),
        ("envelope without the coupling term", interpolation(envelope=rho**k * v0)),
        ("derivatives interpolate too: floor 0", interpolation(floor=sp.Integer(0))),
        ("floor halved", interpolation(floor=SIMPLE_FLOOR / 2)),
        ("iterates at rate rho", interpolation(iterate_rate=rho)),
    ),
)

# --- decreasing steps α_k = a/(k + k0), with aμ = 1 + g > 1 and a/k0 ≤ 1/(2L) --------------
# Each bound is built by a function of the claim its certificate verifies, so that the
# expression `rates` evaluates is traceable to the certified claim (tests/test_proofs_check.py).

NOISE_U = 2 * a**2 * sigma2 / b


def decreasing_iterate(noise_constant):
    """`max(k0 u0, noise_constant)/(k + k0)`; certified for `noise_constant = 2a²σ²/(b(aμ − 1))`."""
    return sp.Max(k0 * u0, noise_constant) / (k + k0)



def _iterate_induction(claim):
    """With C = claim + e (any C ≥ the claimed constant) and t = k + k0:
    C/(t+1) − [(1 − aμ/t) C/t + D/t²] ≥ 0, D = 2a²σ²/b."""
    C = claim["noise_constant"].subs(mu, (1 + g) / a) + e
    gap = C / (t + 1) - ((1 - (1 + g) / t) * C / t + NOISE_U / t**2)
    return nonnegative_by_coefficients(gap, (e, t, g, a, sigma2, b))


DECREASING_STEP_ITERATES = Certificate(
    name="sgd_decreasing_iterates",
    statement="(U), alpha_k = a/(k+k0), a mu > 1: u_k <= max(k0 u0, 2 a^2 sigma2/(b (a mu - 1)))/(k + k0)",
    claim={"noise_constant": NOISE_U / (a * mu - 1)},
    steps=(_iterate_induction,),
    mutants=(("constant halved", {"noise_constant": NOISE_U / (2 * (a * mu - 1))}),
             ("a mu instead of a mu - 1", {"noise_constant": NOISE_U / (a * mu)})),
)

# (V) at rate 1/k: v_k ≤ C_v/(k + k0) with C_v = max(k0 v0, s*²), s* the positive root of
#   Q(s) = (aμ − 1)s² − 2aM√C_u s − K,   K = 4a²(M²C_u/k0 + σ_J²/b).
C_u = sp.Symbol("C_u", positive=True)
K_JAC = 4 * a**2 * (M**2 * C_u / k0 + sigma2_jac / b)
ROOT = (a * M * sp.sqrt(C_u) + sp.sqrt(a**2 * M**2 * C_u + (a * mu - 1) * K_JAC)) / (a * mu - 1)


def _root(claim):
    s = claim["root"]
    return is_zero(sp.expand((a * mu - 1) * s**2 - 2 * a * M * sp.sqrt(C_u) * s - K_JAC))


def _above_root(claim):
    """Q(root + e) = e·(2·√(a²M²C_u + (aμ−1)K) + (aμ − 1)e) ≥ 0: Q grows past its root."""
    s = claim["root"] + e
    Q = (a * mu - 1) * s**2 - 2 * a * M * sp.sqrt(C_u) * s - K_JAC
    return is_zero(Q - e * (2 * sp.sqrt(a**2 * M**2 * C_u + (a * mu - 1) * K_JAC) + (a * mu - 1) * e))


def _jacobian_induction(claim):
    """For c = s², t ≥ k0: t²(t+1)[c/(t+1) − (1 − aμ/t)c/t − 2aM√(C_u c)/t² − 4a²(M²C_u/t + σ_J²/b)/t²]
    = (t+1)Q(s) + c + (t+1)·4a²M²C_u(1/k0 − 1/t), every term ≥ 0 once Q(s) ≥ 0."""
    c = s_**2
    gap = c / (t + 1) - (1 - a * mu / t) * c / t - 2 * a * M * sp.sqrt(C_u) * s_ / t**2 \
        - 4 * a**2 * (M**2 * C_u / t + sigma2_jac / b) / t**2
    Q = (a * mu - 1) * s_**2 - 2 * a * M * sp.sqrt(C_u) * s_ - K_JAC
    decomposition = (t + 1) * Q + c + (t + 1) * 4 * a**2 * M**2 * C_u * (1 / k0 - 1 / t)
    return is_zero(sp.expand(gap * t**2 * (t + 1) - decomposition))




def decreasing_jacobian(root):
    """`max(k0 v0, root²)/(k + k0)`; certified for `root = s*`."""
    return sp.Max(k0 * v0, root**2) / (k + k0)


DECREASING_STEP_JACOBIAN = Certificate(
    name="sgd_decreasing_jacobian",
    statement="(V), alpha_k = a/(k+k0), a mu > 1, u_k <= C_u/(k+k0): v_k <= max(k0 v0, s*^2)/(k+k0), "
              "s* = (a M sqrt(C_u) + sqrt(a^2 M^2 C_u + (a mu - 1) K))/(a mu - 1), K = 4a^2(M^2 C_u/k0 + sigma2_jac/b)",
    claim={"root": ROOT},
    steps=(_root, _above_root, _jacobian_induction),
    mutants=(
        ("root without the cross term", {"root": sp.sqrt(K_JAC / (a * mu - 1))}),
        ("root halved", {"root": ROOT / 2}),
    ),
)

# (V) at rate log(k)²/k. Write t = k + k0 and w_k = t v_k. With aμ ≥ 1 (used only as 1 − α_kμ ≤ 1 − 1/t)
# and u_k ≤ C_u/t, (V) gives the one-step recursion
#   w_{k+1} ≤ (√w_k + β_k)² + γ_k,   β_k = B/t,  γ_k = Γ/t,
#   B = aM√C_u(1 + 1/k0),  Γ = 4a²(1 + 1/k0)(M²C_u/k0 + σ_J²/b)
# (B = aM√C_u already suffices: `_cross_term_closes_a_square`); by induction
# √w_k ≤ S_k = √(k0 v0) + Σ_{j<k}β_j + √(Σ_{j<k}γ_j), and Σ_{j<k} 1/(j + k0) ≤ ℓ_k = 1/k0 + log((k + k0)/k0).
# The claim holds the condition (aμ written as 1 + g, g ≥ 0), B, Γ, the root that accumulates the
# noise and ℓ_k; each step below checks one link of this chain.
ELL = 1 / k0 + sp.log((k + k0) / k0)
BETA = a * M * sp.sqrt(C_u) * (1 + 1 / k0)
GAMMA = 4 * a**2 * (1 + 1 / k0) * (M**2 * C_u / k0 + sigma2_jac / b)


def decreasing_jacobian_log(noise_root=sp.sqrt, ell=ELL, beta=BETA, Gamma=GAMMA):
    """`(√(k0 v0) + B ℓ_k + noise_root(Γ ℓ_k))²/(k + k0)`, with `β_k = B/(k + k0)`, `γ_k = Γ/(k + k0)`;
    certified for the defaults."""
    return (sp.sqrt(k0 * v0) + beta * ell + noise_root(Gamma * ell)) ** 2 / (k + k0)


def log_claim(**changes):
    """The claim of `sgd_decreasing_jacobian_log`, with some entries changed (a variant or a mutant)."""
    return {"a_mu": 1 + g, "beta": BETA, "Gamma": GAMMA, "noise_root": sp.sqrt, "ell": ELL, **changes}


_c = sp.Symbol("c", positive=True)          # √C_u
_t = sp.Symbol("t_pos", positive=True)      # t = k + k0, any t > 0
_t_past_k0 = k0 + e                         # t ≥ k0 (e ≥ 0)
_kappa = sp.Symbol("kappa", nonnegative=True)  # k as a real variable


def _v_right_side(a_mu, t_, w, u):
    """(V)'s right side at α_k = a/t, aμ = a_mu, v_k = w/t, u_k = u."""
    v = w / t_
    return (1 - a_mu / t_) * v + 2 * (a / t_) * M * sp.sqrt(v * u) + 4 * (a / t_) ** 2 * (M**2 * u + sigma2_jac / b)


def _iterate_bound_enters_increasingly(claim):
    """(V)'s right side is nondecreasing in u_k (∂/∂u = αM√(v/u) + 4α²M² ≥ 0), so u_k ≤ C_u/t may be
    substituted for u_k."""
    u, w, a_mu = sp.symbols("u w a_mu", positive=True)
    return sp.simplify(sp.diff(_v_right_side(a_mu, _t, w, u), u)).is_nonnegative is True


def _one_step_expansion(claim):
    """The identity, for s = √w_k and c = √C_u, any aμ and t > 0:
    (t+1)·(V)[v = s²/t, u = c²/t] = (1 − 1/t²)s² − (aμ − 1)(t+1)s²/t² + 2s·aMc(t+1)/t²
                                     + 4a²(t+1)(M²c²/t + σ_J²/b)/t²."""
    a_mu = sp.Symbol("a_mu", positive=True)
    left = (_t + 1) * _v_right_side(a_mu, _t, s_**2, _c**2 / _t)
    right = ((1 - 1 / _t**2) * s_**2 - (a_mu - 1) * (_t + 1) * s_**2 / _t**2 + 2 * s_ * a * M * _c * (_t + 1) / _t**2
             + 4 * a**2 * (_t + 1) * (M**2 * _c**2 / _t + sigma2_jac / b) / _t**2)
    return is_zero(left - right)


def _contraction_from_condition(claim):
    """Under the claimed condition (aμ = claim["a_mu"]), the term −(aμ − 1)(t+1)s²/t² of the expansion is ≤ 0,
    i.e. 1 − α_kμ ≤ 1 − 1/t: (aμ − 1)(t+1)s²/t² ≥ 0 by non-negative coefficients. Fails for aμ < 1."""
    return nonnegative_by_coefficients((claim["a_mu"] - 1) * (t + 1) * s_**2 / t**2, (g, t, s_))


def _cross_term_closes_a_square(claim):
    """(1 − 1/t²)s² + 2s·aMc(t+1)/t² = (s + aMc/t)² − (s − aMc)²/t² (an identity), so the first and third
    terms are ≤ (s + aMc/t)² ≤ (s + B/t)² once B ≥ aM√C_u (non-negative coefficients): the claimed β_k = B/t
    covers the cross term."""
    x = a * M * _c
    square = is_zero((1 - 1 / _t**2) * s_**2 + 2 * s_ * x * (_t + 1) / _t**2 - (s_ + x / _t) ** 2
                     + (s_ - x) ** 2 / _t**2)
    covered = nonnegative_by_coefficients(claim["beta"].subs(C_u, _c**2) - x, (a, M, _c, k0))
    return square and covered


def _noise_term(claim):
    """For t = k0 + e ≥ k0: (t+1)/t ≤ 1 + 1/k0 and 1/t ≤ 1/k0, hence the last term of the expansion
    4a²(t+1)(M²C_u/t + σ_J²/b)/t² ≤ Γ/t = γ_k, each by non-negative coefficients in e, k0, …"""
    tt = _t_past_k0
    ratio = nonnegative_by_coefficients(1 + 1 / k0 - (tt + 1) / tt, (e, k0))
    inverse = nonnegative_by_coefficients(1 / k0 - 1 / tt, (e, k0))
    gap = claim["Gamma"].subs(C_u, _c**2) / tt - 4 * a**2 * (tt + 1) * (M**2 * _c**2 / tt + sigma2_jac / b) / tt**2
    return ratio and inverse and nonnegative_by_coefficients(gap, (e, k0, a, M, _c, sigma2_jac, b))


def _square_root_induction(claim):
    """With R = claim["noise_root"], S_k = A + R(G), A = √(k0 v0) + Σ_{j<k}β_j ≥ 0, G = Σ_{j<k}γ_j:
    base: R(0) = 0, so √w_0 = √(k0 v0) = S_0;
    step: from √w_k = P ≤ S_k = P + d and w_{k+1} ≤ (P + β)² + γ, √w_{k+1} ≤ S_{k+1} = A + β + R(G + γ), as
      (i)  (P + d + β)² − (P + β)² ≥ 0 (the recursion is increasing in √w_k), and
      (ii) (A + β + R(G + γ))² − (A + β + R(G))² − γ ≥ 0, i.e. 2(A + β)(√(G+γ) − √G) ≥ 0 for R = √,
      both by non-negative coefficients, with G = p², G + γ = (p + h)² (p, h ≥ 0: every G ≥ 0, γ ≥ 0);
    and R is nondecreasing, so R(Σγ_j) ≤ R(Γ ℓ_k) once Σγ_j ≤ Γ ℓ_k."""
    R = claim["noise_root"]
    A, beta_, P, d, p, h = sp.symbols("A beta P d p h", nonnegative=True)
    base = is_zero(R(sp.Integer(0)))
    increasing_in_w = nonnegative_by_coefficients((P + d + beta_) ** 2 - (P + beta_) ** 2, (P, d, beta_))
    gamma_ = (p + h) ** 2 - p**2
    step = nonnegative_by_coefficients((A + beta_ + R((p + h) ** 2)) ** 2 - (A + beta_ + R(p**2)) ** 2 - gamma_,
                                       (A, beta_, p, h))
    monotone = nonnegative_by_coefficients(R((p + h) ** 2) - R(p**2), (p, h))
    return base and increasing_in_w and step and monotone


def _unit_integral(j):
    return sp.integrate(1 / (t + k0), (t, j - 1, j))


def _integral_comparison(claim):
    """For j ≥ 1: 1/(j + k0) ≤ ∫_{j−1}^{j} dt/(t + k0) = log(m + 1) − log(m), m = j − 1 + k0 > 0. The
    difference f(m) = log(m + 1) − log(m) − 1/(m + 1) has f′(m) = −1/(m(m + 1)²) < 0 and f → 0 as m → ∞,
    so f ≥ 0."""
    j, m = sp.symbols("j m", positive=True)
    f = sp.expand_log(_unit_integral(j) - 1 / (j + k0), force=True).subs(j, m + 1 - k0)
    return sp.simplify(sp.diff(f, m)).is_negative is True and sp.limit(f, m, sp.oo) == 0


def _telescoping_sum(claim):
    """T(k) = ∫_0^{k−1} dt/(t + k0) = log((k − 1 + k0)/k0) satisfies T(1) = 0 and T(k+1) − T(k) = ∫_{k−1}^{k}, so
    Σ_{1≤j<k} ∫_{j−1}^{j} = T(k); and T(k) ≤ log((k + k0)/k0), the ratio of the arguments being
    1 + 1/(k − 1 + k0) > 1 for k ≥ 1. With the j = 0 term 1/k0 and `_integral_comparison`:
    Σ_{j<k} 1/(j + k0) ≤ L_k := 1/k0 + log((k + k0)/k0) for k ≥ 1 (and for k = 0, an empty sum ≤ 1/k0)."""
    T = sp.integrate(1 / (t + k0), (t, 0, _kappa - 1))
    starts = is_zero(T.subs(_kappa, 1))
    telescopes = is_zero(sp.expand_log(T.subs(_kappa, _kappa + 1) - T - _unit_integral(_kappa), force=True))
    closed = is_zero(sp.expand_log(T - sp.log((_kappa - 1 + k0) / k0), force=True))
    excess = sp.simplify((_kappa + k0) / (_kappa - 1 + k0) - 1).subs(_kappa, 1 + e)
    return starts and telescopes and closed and sp.simplify(excess).is_positive is True


def _nonnegative_on_half_line(expression, x):
    """expression(x) ≥ 0 for all x ≥ 0: it starts ≥ 0 and never decreases, or never increases towards a
    limit ≥ 0 (each sign decided by sympy under the symbols' assumptions; a sufficient test)."""
    slope = sp.simplify(sp.diff(expression, x))
    if slope.is_nonnegative and sp.simplify(expression.subs(x, 0)).is_nonnegative:
        return True
    return bool(slope.is_nonpositive and sp.simplify(sp.limit(expression, x, sp.oo)).is_nonnegative)


def _harmonic_sum(claim):
    """The claimed ℓ_k bounds the harmonic sum: ℓ_k − L_k ≥ 0 for every real k ≥ 0 (L_k from
    `_telescoping_sum`), by `_nonnegative_on_half_line`. A looser true ℓ (2/k0 + log(…)) passes; ℓ without
    the j = 0 term (false at k = 1) or with half of it (false as k → ∞: Σ − log → 1/(2k0) + 1/(12k0²) − …)
    does not."""
    return _nonnegative_on_half_line(claim["ell"].subs(k, _kappa) - ELL.subs(k, _kappa), _kappa)


DECREASING_STEP_JACOBIAN_LOG = Certificate(
    name="sgd_decreasing_jacobian_log",
    statement="(V), alpha_k = a/(k+k0) <= 1/(2L), a mu >= 1, u_k <= C_u/(k+k0): v_k <= (sqrt(k0 v0) + B l_k "
              "+ sqrt(Gamma l_k))^2/(k+k0), B = a M sqrt(C_u)(1+1/k0), Gamma = 4a^2(1+1/k0)(M^2 C_u/k0 "
              "+ sigma2_jac/b), l_k = 1/k0 + log((k+k0)/k0) >= sum_{j<k} 1/(j+k0): O(log(k)^2/k)",
    claim=log_claim(),
    steps=(_iterate_bound_enters_increasingly, _one_step_expansion, _contraction_from_condition,
           _cross_term_closes_a_square, _noise_term, _square_root_induction, _integral_comparison,
           _telescoping_sum, _harmonic_sum),
    mutants=(
        ("condition a mu >= 1 dropped (a mu > 0 only)", log_claim(a_mu=g)),
        ("beta halved", log_claim(beta=BETA / 2)),
        ("Gamma without (1 + 1/k0)", log_claim(Gamma=GAMMA / (1 + 1 / k0))),
        ("Gamma without the coupling M^2 C_u/k0", log_claim(Gamma=4 * a**2 * (1 + 1 / k0) * sigma2_jac / b)),
        ("noise accumulated linearly, not in root", log_claim(noise_root=lambda x: x)),
        ("noise root halved", log_claim(noise_root=lambda x: sp.sqrt(x) / 2)),
        ("harmonic sum without its first term", log_claim(ell=sp.log((k + k0) / k0))),
        ("harmonic sum with half its first term", log_claim(ell=1 / (2 * k0) + sp.log((k + k0) / k0))),
    ),
)

# --- the one-step inequalities (U) and (V), from scalar facts ---------------------------------
# Each step below is a symbolic fact about scalars: an eigenvalue h of a per-sample Hessian in
# [sample_low, L] (sample_low = 0 is (A1)'s per-sample convexity), an eigenvalue of the mean Hessian in
# [μ, L], Young/Cauchy–Schwarz as polynomial non-negativity, the variance of a mean of b i.i.d. terms.
# The matrix-to-scalar reductions sympy cannot do are named, cited lemmas (in the docstrings):
#   [spectral]  a symmetric 0 ⪯ H ⪯ L·I has H² ⪯ L·H (same eigenvectors, h² ≤ Lh per eigenvalue), so
#               ‖HD‖²_F ≤ L⟨D, HD⟩; and ∇²F ⪰ μI gives ⟨D, ∇²F D⟩ ≥ μ‖D‖².
#   [co-coercivity]  Nesterov (2004), Thm 2.1.5: f convex and L-smooth ⇒
#               ‖∇f(x) − ∇f(y)‖² ≤ 2L(f(x) − f(y) − ⟨∇f(y), x − y⟩); equality for the 1-d quadratic
#               instance along x − y, which is what `_co_coercivity_instance` checks.
#   [strong convexity]  Nesterov (2004), Thm 2.1.10/(2.1.19): ⟨∇F(x), x − x*⟩ ≥ F(x) − F* + (μ/2)‖x − x*‖².
#   [Jensen]    ‖(1/b)Σ zⱼ‖² ≤ (1/b)Σ‖zⱼ‖², so the minibatch does no worse than one sample.
#   [IFT + (A3)]  ∇²F(x*)J* + ∇²ₓθF(x*) = 0, and each ∇²ₓₓfᵢ J* + ∇²ₓθfᵢ is (L_H‖J*‖_F + L_C)-Lipschitz in x.
#   [Cauchy–Schwarz]  −⟨D, G⟩ ≤ ‖D‖‖G‖, and E[‖D‖‖e‖] ≤ √(E‖D‖² E‖e‖²) when taking total expectations.
# The chain is a linear certificate: with symbols for the norms and inner products, the claimed right side
# minus the exact expansion of E_k‖·‖² equals a combination of the hypotheses' slacks (each ≥ 0) with
# multipliers that are ≥ 0 exactly under the step condition.

L_smooth = sp.Symbol("L", positive=True)
L_H, L_C, J_star = sp.symbols("L_H L_C J_star", positive=True)  # (A3) constants, ‖J*‖_F
_x, _y, _v, _r1, _r2 = sp.symbols("x_ y_ v_ r1 r2", nonnegative=True)  # slack variables of the scalar facts
_err = sp.Symbol("err", real=True)  # a coordinate of x − x* along an eigenvector
# symbols of the chains (all norms, inner products and gaps: real numbers the hypotheses relate)
_E2, _Gap, _P, _S, _C = sp.symbols("E2 Gap P S C", real=True)
_D2, _e2, _De, _Q, _HD2, _R, _EE, _T = sp.symbols("D2 e2 De Q HD2 R EE T", real=True)

M_CONSTANT = L_H * J_star + L_C


def _smoothness_and_step(claim):
    """α = 1/(1/step_bound + v), v ≥ 0: every α in (0, step_bound], as an expression in L and v."""
    return 1 / (1 / claim["step_bound"] + _v)


def _sample_eigenvalue(claim):
    """(h, L) with h ∈ [sample_low, L]: h = L − y and L = sample_low(L) + x + y, solved for L (x, y ≥ 0)."""
    L_value = sp.solve(sp.Eq(L_smooth, claim["sample_low"] + _x + _y), L_smooth)[0]
    return L_value - _y, L_value


def _co_coercivity_instance(claim):
    """(a) [co-coercivity], scalar quadratic instance: f(z) = (h/2)(z − z*)² + c(z − z*) with h an eigenvalue
    of a per-sample Hessian in [sample_low, L]. ‖f′(z) − f′(z*)‖² = h²err², the Bregman gap is h err²/2, and
    2L·gap − ‖·‖² = err²·h(L − h) ≥ 0 by non-negative coefficients. Fails for h < 0 (convexity dropped)."""
    z, z_star, c, h_ = sp.symbols("z z_star c h_", real=True)
    f = h_ / 2 * (z - z_star) ** 2 + c * (z - z_star)
    grad = sp.diff(f, z)
    squared = (grad - grad.subs(z, z_star)) ** 2
    bregman = f - f.subs(z, z_star) - grad.subs(z, z_star) * (z - z_star)
    h, L_value = _sample_eigenvalue(claim)
    slack = (2 * L_smooth * bregman - squared).subs(z, z_star + _err).subs({h_: h, L_smooth: L_value})
    return is_zero(slack - _err**2 * h * (L_value - h)) and nonnegative_by_coefficients(h * (L_value - h), (_x, _y))


def _mean_of_iid(size):
    """E(Σⱼ ξⱼ / size)² for independent mean-zero ξⱼ with Eξⱼ² = σ²: expand, then E ξᵢξⱼ = 0 (i ≠ j),
    E ξⱼ² = σ²."""
    xi = sp.symbols(f"xi0:{size}", real=True)
    square = sp.Poly(sp.expand((sum(xi) / size) ** 2), *xi)
    return sum(coefficient * (sigma2 if max(powers) == 2 else 0)
               for powers, coefficient in zip(square.monoms(), square.coeffs()))


def _variance_of_a_mean(key, variance):
    def step(claim):
        """(b) the second moment of a mean of b i.i.d. mean-zero terms is (variance)/b (coordinatewise):
        E‖∇f_B(x*)‖² = σ²/b for (U), E‖E(x*)‖² = σ_J²/b for (V); checked for b = 1, 2, 3 with symbolic terms;
        and [Jensen] ((p₁ + p₂)/2)² ≤ (p₁² + p₂²)/2, the difference being ((p₁ − p₂)/2)²."""
        p1, p2 = sp.symbols("p1 p2", real=True)
        jensen = is_zero((p1**2 + p2**2) / 2 - ((p1 + p2) / 2) ** 2 - ((p1 - p2) / 2) ** 2)
        return jensen and all(is_zero(_mean_of_iid(size) - claim[key].subs({variance: sigma2, b: size}))
                              for size in (1, 2, 3))
    step.__name__ = "_variance_of_a_mean"
    return step


def _split(claim):
    """(p + q)² ≤ 2p² + 2q²: the difference is (p − q)² (also for vectors, coordinatewise)."""
    p, q_ = sp.symbols("p q_", real=True)
    return is_zero(2 * p**2 + 2 * q_**2 - (p + q_) ** 2 - (p - q_) ** 2)


def _strong_convexity_instance(claim):
    """(c) [strong convexity], scalar quadratic instance: F(z) − F* = h err²/2, ⟨F′, z − z*⟩ = h err², h ≥ μ:
    h err² − h err²/2 − (μ/2)err² = (h − μ)err²/2 ≥ 0 (h = μ + x)."""
    h = mu + _x
    slack = h * _err**2 - h * _err**2 / 2 - mu / 2 * _err**2
    return is_zero(slack - _x * _err**2 / 2)


# (U): u = ‖x_k − x*‖² (E2), Gap = F(x_k) − F* ≥ 0, P = ⟨∇F(x_k), x_k − x*⟩, S = E_k‖g‖²,
# C = E_k‖∇f_B(x_k) − ∇f_B(x*)‖², and E_k‖∇f_B(x*)‖² = claim["variance"].
def _iterate_slacks(claim):
    return {
        "strong_convexity": _P - _Gap - mu / 2 * _E2,                  # (c)
        "co_coercivity": 2 * L_smooth * _Gap - _C,                     # (a) + [Jensen], ∇F(x*) = 0
        "split": 2 * _C + 2 * claim["variance"] - _S,                  # (b): (p + q)² ≤ 2p² + 2q², N = σ²/b
        "gap": _Gap,                                                   # F(x_k) ≥ F*
    }


def _iterate_multipliers(step):
    return {"strong_convexity": 2 * step, "co_coercivity": 2 * step**2, "split": step**2,
            "gap": 2 * step * (1 - 2 * step * L_smooth)}


def _iterate_chain(claim):
    """(d) E_k‖x_{k+1} − x*‖² = E2 − 2αP + α²S; the claimed right side contraction·E2 + noise minus it equals
    Σ multiplier·slack exactly (an identity in E2, Gap, P, S, C, α, L, …)."""
    expansion = _E2 - 2 * alpha * _P + alpha**2 * _S
    right = claim["contraction"] * _E2 + claim["noise"]
    slacks, multipliers = _iterate_slacks(claim), _iterate_multipliers(alpha)
    return is_zero(right - expansion - sum(multipliers[name] * slacks[name] for name in slacks))


def _iterate_multipliers_nonnegative(claim):
    """(e) every multiplier of `_iterate_chain` is ≥ 0 for α ≤ step_bound: the middle term −2α(1 − 2αL)Gap
    is dropped only when 1 − 2αL ≥ 0. Fails for α ≤ 1/L."""
    step = _smoothness_and_step(claim)
    return all(nonnegative_by_coefficients(multiplier.subs(alpha, step), (L_smooth, _v))
               for multiplier in _iterate_multipliers(step).values())


def one_step_iterates(**changes):
    """The claim of `sgd_one_step_iterates`, with some entries changed (a mutant)."""
    return {"contraction": 1 - alpha * mu, "noise": 2 * alpha**2 * sigma2 / b, "variance": sigma2 / b,
            "step_bound": 1 / (2 * L_smooth), "sample_low": sp.Integer(0), **changes}


SGD_ONE_STEP_ITERATES = Certificate(
    name="sgd_one_step_iterates",
    statement="(U): per-sample 0 <= h <= L, mean mu <= h, alpha <= 1/(2L): E_k||x_{k+1} - x*||^2 <= "
              "(1 - alpha mu)||x_k - x*||^2 + 2 alpha^2 sigma2/b",
    claim=one_step_iterates(),
    steps=(_co_coercivity_instance, _variance_of_a_mean("variance", sigma2), _split, _strong_convexity_instance,
           _iterate_chain, _iterate_multipliers_nonnegative),
    mutants=(
        ("step condition relaxed to alpha <= 1/L", one_step_iterates(step_bound=1 / L_smooth)),
        ("per-sample convexity dropped (h in [-L, L])", one_step_iterates(sample_low=-L_smooth)),
        ("noise sigma2/b^2", one_step_iterates(variance=sigma2 / b**2, noise=2 * alpha**2 * sigma2 / b**2)),
        ("contraction 1 - 2 alpha mu", one_step_iterates(contraction=1 - 2 * alpha * mu)),
    ),
)


# (V): D = J_k − J*, e = x_k − x*; D2 = ‖D‖², e2 = ‖e‖², De = ‖D‖‖e‖, Q = ⟨D, ∇²F D⟩ = E_k⟨D, HD⟩,
# HD2 = E_k‖HD‖², R = ⟨D, G⟩, EE = E_k‖E‖², T = E_k‖HD + E‖².
def _spectral_instance(claim):
    """[spectral], per eigenvalue: h² ≤ Lh for h ∈ [sample_low, L], i.e. h(L − h) ≥ 0 by non-negative
    coefficients. Fails for h < 0 (convexity dropped)."""
    h, L_value = _sample_eigenvalue(claim)
    return nonnegative_by_coefficients(L_value * h - h**2, (_x, _y))


def _curvature_under_step(claim):
    """2α(1 − αL)h ≥ αμ for a mean-Hessian eigenvalue h ∈ [μ, L] (h = μ + x, L = μ + x + y) and α ≤ step_bound:
    the H-terms −2α(1 − αL)⟨D, ∇²F D⟩ ≤ −αμ‖D‖². Fails for α ≤ 1/L."""
    h, L_value = mu + _x, mu + _x + _y
    step = _smoothness_and_step(claim).subs(L_smooth, L_value)
    return nonnegative_by_coefficients(2 * step * (1 - step * L_value) * h - step * mu, (mu, _x, _y, _v))


def _jacobian_drift_lemma(claim):
    """[IFT + (A3)]: with G(x) = h(x)J + c(x) (a coordinate of ∇²F(x)J* + ∇²ₓθF(x)) and h*J + c* = 0,
    G(x) = (h(x) − h*)J + (c(x) − c*) (identity), |h(x) − h*| = t₁L_H|e|, |c(x) − c*| = t₂L_C|e|, t ∈ [0, 1]
    (t = 1/(1 + r)), so |G| ≤ (L_H t₁J + L_C t₂)|e| ≤ M|e|: M − L_H t₁J − L_C t₂ ≥ 0 by non-negative
    coefficients. The same bound holds per sample for E − E(x*). Fails for M = 0."""
    h_x, h_star, c_x = sp.symbols("h_x h_star c_x", real=True)
    c_star = -h_star * J_star
    identity = is_zero(h_x * J_star + c_x - ((h_x - h_star) * J_star + (c_x - c_star)))
    bound = claim["M"] - L_H * J_star / (1 + _r1) - L_C / (1 + _r2)
    return identity and nonnegative_by_coefficients(bound, (L_H, L_C, J_star, _r1, _r2))


def _cauchy_schwarz(claim):
    """[Cauchy–Schwarz], Lagrange's identity in two coordinates: ‖d‖²‖g‖² − ⟨d, g⟩² = (d₁g₂ − d₂g₁)² ≥ 0."""
    d1, d2, g1, g2 = sp.symbols("d1 d2 g1 g2", real=True)
    return is_zero((d1**2 + d2**2) * (g1**2 + g2**2) - (d1 * g1 + d2 * g2) ** 2 - (d1 * g2 - d2 * g1) ** 2)


def _jacobian_slacks(claim):
    return {
        "split": 2 * _HD2 + 2 * _EE - _T,                                        # (p + q)² ≤ 2p² + 2q²
        "spectral": L_smooth * _Q - _HD2,                                        # ‖HD‖² ≤ L⟨D, HD⟩, averaged
        "curvature": _Q - mu * _D2,                                              # ∇²F ⪰ μ
        "cross": claim["M"] * _De + _R,                                          # −⟨D, G⟩ ≤ ‖D‖ M‖e‖
        "noise": 2 * claim["jacobian_variance"] + 2 * claim["M"] ** 2 * _e2 - _EE,  # split of E around E(x*)
        "norm": _D2,
    }


def _jacobian_multipliers(step):
    return {"split": step**2, "spectral": 2 * step**2, "curvature": 2 * step * (1 - step * L_smooth),
            "cross": 2 * step, "noise": 2 * step**2, "norm": step * mu * (1 - 2 * step * L_smooth)}


def _jacobian_chain(claim):
    """E_k‖D − α(HD + E)‖² = D2 − 2αQ − 2αR + α²T; the claimed right side
    contraction·D2 + cross·De + coupling·e2 + noise minus it equals Σ multiplier·slack exactly."""
    expansion = _D2 - 2 * alpha * _Q - 2 * alpha * _R + alpha**2 * _T
    right = claim["contraction"] * _D2 + claim["cross"] * _De + claim["coupling"] * _e2 + claim["noise"]
    slacks, multipliers = _jacobian_slacks(claim), _jacobian_multipliers(alpha)
    return is_zero(right - expansion - sum(multipliers[name] * slacks[name] for name in slacks))


def _jacobian_multipliers_nonnegative(claim):
    """Every multiplier of `_jacobian_chain` is ≥ 0 for α ≤ step_bound (1 − αL ≥ 0 and 1 − 2αL ≥ 0)."""
    step = _smoothness_and_step(claim)
    return all(nonnegative_by_coefficients(multiplier.subs(alpha, step), (L_smooth, _v, mu))
               for multiplier in _jacobian_multipliers(step).values())


def one_step_jacobian(**changes):
    """The claim of `sgd_one_step_jacobian`, with some entries changed (a mutant)."""
    return {"contraction": 1 - alpha * mu, "cross": 2 * alpha * M_CONSTANT, "coupling": 4 * alpha**2 * M_CONSTANT**2,
            "noise": 4 * alpha**2 * sigma2_jac / b, "M": M_CONSTANT, "jacobian_variance": sigma2_jac / b,
            "step_bound": 1 / (2 * L_smooth), "sample_low": sp.Integer(0), **changes}


SGD_ONE_STEP_JACOBIAN = Certificate(
    name="sgd_one_step_jacobian",
    statement="(V): per-sample 0 <= h <= L, mean mu <= h, alpha <= 1/(2L), M = L_H ||J*|| + L_C: E_k||J_{k+1} - J*||^2 "
              "<= (1 - alpha mu)||D||^2 + 2 alpha M ||D|| ||x_k - x*|| + 4 alpha^2 (M^2 ||x_k - x*||^2 + sigma2_jac/b)",
    claim=one_step_jacobian(),
    steps=(_split, _spectral_instance, _curvature_under_step, _jacobian_drift_lemma, _cauchy_schwarz,
           _variance_of_a_mean("jacobian_variance", sigma2_jac), _jacobian_chain, _jacobian_multipliers_nonnegative),
    mutants=(
        ("step condition relaxed to alpha <= 1/L", one_step_jacobian(step_bound=1 / L_smooth)),
        ("per-sample convexity dropped (h in [-L, L])", one_step_jacobian(sample_low=-L_smooth)),
        ("M set to 0", one_step_jacobian(M=sp.Integer(0), cross=sp.Integer(0), coupling=sp.Integer(0))),
        ("Jacobian noise sigma2_jac/b^2", one_step_jacobian(jacobian_variance=sigma2_jac / b**2,
                                                            noise=4 * alpha**2 * sigma2_jac / b**2)),
        ("contraction 1 - 2 alpha mu", one_step_jacobian(contraction=1 - 2 * alpha * mu)),
    ),
)


CERTIFICATES = (
    SGD_ONE_STEP_ITERATES,
    SGD_ONE_STEP_JACOBIAN,
    CONSTANT_STEP_ITERATES,
    YOUNG_SPLIT,
    CONSTANT_STEP_JACOBIAN,
    INTERPOLATION,
    DECREASING_STEP_ITERATES,
    DECREASING_STEP_JACOBIAN,
    DECREASING_STEP_JACOBIAN_LOG,
)

_BOUND_OF_CLAIM = {
    CONSTANT_STEP_ITERATES.name: lambda claim: claim["bound"],
    CONSTANT_STEP_JACOBIAN.name: lambda claim: claim["bound"],
    DECREASING_STEP_ITERATES.name: lambda claim: decreasing_iterate(claim["noise_constant"]),
    DECREASING_STEP_JACOBIAN.name: lambda claim: decreasing_jacobian(claim["root"]),
    DECREASING_STEP_JACOBIAN_LOG.name: lambda claim: decreasing_jacobian_log(
        claim["noise_root"], claim["ell"], claim["beta"], claim["Gamma"]),
}


def bound_expression(certificate: Certificate, claim=None) -> sp.Expr:
    """The bound, as a function of k, that a certificate's claim defines (or that `claim`,
    e.g. one of its mutants, would define): what `rates` evaluates numerically."""
    if certificate.name not in _BOUND_OF_CLAIM:
        raise ValueError(f"{certificate.name} does not certify a bound in k; those that do: {sorted(_BOUND_OF_CLAIM)}")
    return _BOUND_OF_CLAIM[certificate.name](certificate.claim if claim is None else claim)

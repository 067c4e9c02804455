"""Minibatch SGD and its derivative recursion: mean-square bounds for every regime.

**Setting** (docs/theory.md). `F = mean_i fᵢ`, each `fᵢ(·, θ)` convex with
`0 ⪯ ∇²ₓₓfᵢ ⪯ L`, `F` μ-strongly convex; `L_H`, `L_C` the Lipschitz constants of the
per-sample Hessians; minibatches of size `b` drawn with replacement; steps
`0 < α_k ≤ 1/(2L)`; `x₀` fixed, `J₀ = 0`. With `u_k = E‖x_k − x*‖²`, `v_k = E‖J_k − J*‖²_F`
and `M = L_H‖J*‖_F + L_C` (docs/theory.md derives both):

    u_{k+1} ≤ (1 − α_kμ) u_k + 2α_k² σ²/b                                      (U)
    v_{k+1} ≤ (1 − α_kμ) v_k + 2α_k M √(v_k u_k) + 4α_k²(M² u_k + σ_J²/b)        (V)

Each bound below solves (U) or (V) in closed form; its certificate checks the steps
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

# (V) at rate log(k)²/k: with w_k = (k + k0) v_k and aμ ≥ 1 used only as (1 − α_kμ) ≤ 1 − 1/t,
#   w_{k+1} ≤ (√w_k + β_k)² + γ_k,  β_k = aM√C_u(1 + 1/k0)/t_k,  γ_k = Γ/t_k,
#   Γ = 4a²(1 + 1/k0)(M²C_u/k0 + σ_J²/b),
# so √w_k ≤ √(k0 v0) + Σβ + √(Σγ), and Σ_{j<k} 1/(j + k0) ≤ ℓ_k = 1/k0 + log((k + k0)/k0).
ELL = 1 / k0 + sp.log((k + k0) / k0)
GAMMA = 4 * a**2 * (1 + 1 / k0) * (M**2 * C_u / k0 + sigma2_jac / b)


def decreasing_jacobian_log(noise_root, ell):
    """`(√(k0 v0) + aM√C_u(1 + 1/k0)ℓ_k + noise_root(Γℓ_k))²/(k + k0)`; certified for
    `noise_root = √` and `ell = ℓ_k`."""
    return (sp.sqrt(k0 * v0) + a * M * sp.sqrt(C_u) * (1 + 1 / k0) * ell + noise_root(GAMMA * ell)) ** 2 / (k + k0)



def _square_root_induction(claim):
    """If P ≥ √G and δ = √(G + γ) − √G, then (P + δ)² − P² − γ = 2Pδ + δ² − γ ≥ 2(P − √G)δ ≥ 0:
    the identity 2√G δ + δ² = γ is what the claimed √(Σγ) term must satisfy."""
    G, gamma_ = sp.symbols("G gamma", nonnegative=True)
    delta = claim["noise_root"](G + gamma_) - claim["noise_root"](G)
    return is_zero(2 * claim["noise_root"](G) * delta + delta**2 - gamma_)


def _harmonic_sum(claim):
    """Σ_{j=0}^{k−1} 1/(j + k0) ≤ 1/k0 + ∫_{k0}^{k+k0} dt/t, checked against the claimed ℓ_k."""
    integral = sp.integrate(1 / t, (t, k0, k + k0))
    return is_zero(sp.expand_log(claim["ell"] - 1 / k0 - integral, force=True))


DECREASING_STEP_JACOBIAN_LOG = Certificate(
    name="sgd_decreasing_jacobian_log",
    statement="(V), alpha_k = a/(k+k0), a mu >= 1, u_k <= C_u/(k+k0): v_k <= (sqrt(k0 v0) + a M sqrt(C_u)(1+1/k0) l_k "
              "+ sqrt(Gamma l_k))^2/(k+k0), l_k = 1/k0 + log((k+k0)/k0): O(log(k)^2/k)",
    claim={"noise_root": sp.sqrt, "ell": ELL},
    steps=(_square_root_induction, _harmonic_sum),
    mutants=(
        ("noise accumulated linearly, not in root", {"noise_root": lambda x: x, "ell": ELL}),
        ("harmonic sum without its first term", {"noise_root": sp.sqrt, "ell": sp.log((k + k0) / k0)}),
    ),
)

CERTIFICATES = (
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
    DECREASING_STEP_JACOBIAN_LOG.name: lambda claim: decreasing_jacobian_log(claim["noise_root"], claim["ell"]),
}


def bound_expression(certificate: Certificate, claim=None) -> sp.Expr:
    """The bound, as a function of k, that a certificate's claim defines (or that `claim`,
    e.g. one of its mutants, would define): what `rates` evaluates numerically."""
    if certificate.name not in _BOUND_OF_CLAIM:
        raise ValueError(f"{certificate.name} does not certify a bound in k; those that do: {sorted(_BOUND_OF_CLAIM)}")
    return _BOUND_OF_CLAIM[certificate.name](certificate.claim if claim is None else claim)

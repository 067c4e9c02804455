"""Sigmoid smoothing of if-statements, and the schedules of Diagonalisation SGD.

**Setting.** `σ(y) = 1/(1 + e^(−y))` and `σ_η(x) = σ(x/η)`, η > 0. An if-statement
`if z ≥ 0 then a else b` is smoothed as `σ_η(z)a + (1 − σ_η(z))b`, and its guard is
reparameterised, `z = θ + ε` with `ε ~ N(0, 1)`; φ is the standard normal density.

**Claims and proofs** (one certificate each).

1. `sigmoid_derivative_sup`: `σ_η' = σ_η(1 − σ_η)/η` and `sup|σ_η'| = 1/(4η)`, attained at 0,
   because `1/4 − u(1 − u) = (u − 1/2)²`.
2. `sigmoid_derivative_energy`: `∫_R σ_η'(x)² dx = 1/(6η)`. With `x = ηy` the integral is
   `(1/η)∫σ'(y)² dy`; with `y = log p` the integrand becomes `p/(1 + p)⁴` on `(0, ∞)`,
   whose integral is 1/6.
3. `if_statement_variance`: the reparameterisation gradient is `g = (a − b)σ_η'(θ + ε)` and

       E[g²] = (a − b)² ∫ σ_η'(x)² φ(x − θ) dx ≤ (a − b)² φ(0)/(6η) = (a − b)²/(6η√(2π)).

   The order 1/η is exact: `η E[g²] = (a − b)² ∫ σ'(y)² φ(ηy − θ) dy → (a − b)² φ(θ)/6` as
   η → 0 (dominated convergence, with dominating function `φ(0)σ'(y)²`; the pointwise limit
   and the constant are certified, the exchange of limit and integral is the theorem). So
   the bound is attained asymptotically at θ = 0. For `0 < η ≤ 1` there is also the
   explicit lower bound `E[g²] ≥ (a − b)² φ(|θ| + 1) C₁/η`, from restricting the integral
   to `|x| ≤ η`, where `|x − θ| ≤ |θ| + 1` (so φ(x − θ) ≥ φ(|θ| + 1): φ decreases in |·|),
   and `C₁ = ∫_{−1}^{1} σ'(y)² dy = tanh(1/2)(1 + 2e/(1 + e)²)/6 ≈ 0.107` (the constant is
   certified; the two elementary inequalities are not).
4. `nested_if_variance`: nesting depth ℓ. With `v₀ = 0`, guards `gᵢ = θ + εᵢ + v_{i−1}` and
   `vᵢ = σ_η(gᵢ)aᵢ + (1 − σ_η(gᵢ))bᵢ`, `εᵢ` i.i.d. N(0, 1), constants with `|aᵢ − bᵢ| ≤ D`,
   the chain rule gives `dᵢ = ∂θ vᵢ = (aᵢ − bᵢ)σ_η'(gᵢ)(1 + d_{i−1})` (certified). Conditioning on
   `ε₁…ε_{i−1}` and applying claim 3 to the Gaussian guard `gᵢ` (mean `θ + v_{i−1}`),
   `E[dᵢ²] ≤ κ E[(1 + d_{i−1})²]`, `κ = D²/(6η√(2π))`; Minkowski gives
   `√E[(1 + d)²] ≤ 1 + √E[d²]`. So `√E[d_ℓ²] ≤ s_ℓ` with `s_i = √κ(1 + s_{i−1})`, `s₀ = 0`,
   solved by `s_ℓ = t(t^ℓ − 1)/(t − 1)`, `t = √κ` (certified), and `s_ℓ² = Θ(η^(−ℓ))` as
   η → 0, precisely `η^ℓ s_ℓ² → (D²/(6√(2π)))^ℓ` (certified for ℓ = 1…4); for
   `0 < η ≤ 1`, `s_ℓ² ≤ η^(−ℓ)(Σ_{j≤ℓ} K^(j/2))²` with `K = D²/(6√(2π))`. Certified by
   sympy: the chain rule, the closed form and its order; argued here and not by sympy: the
   conditioning (Fubini, independence of εᵢ from ε₁…ε_{i−1}) and Minkowski's inequality.
   This is an upper bound; its tightness is certified only for ℓ = 1 (claim 3). Independent
   noise in every guard is assumed: the pointwise bound `|σ_η'| ≤ 1/(4η)` alone would give
   η^(−2ℓ) for the second moment.
5. `p_series`: `Σ_{k≥1} k^(−p) < ∞` iff `p > 1`, for every real p, with p a sympy symbol
   (no grid). For p ≠ 1, `∫_1^N t^(−p) dt = F(N) = (N^(1−p) − 1)/(1 − p)` (`F' = N^(−p)`,
   `F(1) = 0`, and sympy's integral with symbolic p is `F` for p ≠ 1 and `log N` for p = 1).
   By cases, each an assumption-bearing parametrisation: `p = 1 + q` (q > 0) gives
   `F(N) → 1/q`; `p = 1` gives `log N → ∞`; `p = q/(1 + q)` (q ≥ 0, so 0 ≤ p < 1) gives
   `F(N) → ∞`; in these three `t^(−p)` is non-increasing (`d/dt t^(−p) ≤ 0` is decided), so
   `∫_k^{k+1} t^(−p) ≤ k^(−p) ≤ ∫_{k−1}^{k} t^(−p)` and, summed,
   `∫_1^{N+1} t^(−p) ≤ Σ_{k≤N} k^(−p) ≤ 1 + ∫_1^N t^(−p)`: the integral test. For `p = −q`
   (q > 0) the terms `k^q → ∞` do not tend to 0. The four cases partition R (sympy's sets
   of the parametrisations), and the claim holds, as a set of p, exactly on the convergent
   ones. Certified by sympy: the primitive, the limits, the monotonicity, the partition and
   the claim on each case; argued here: the comparison of a monotone integrand with its
   integral and the term test. `tests/test_proofs_smoothing.py` compares the claim with
   sympy's own series and integral tests on a table of exponents.
6. `dsgd_schedule`: for `γ_k = c k^(−a)`, `η_k = η₀ k^(−r)` and depth ℓ, with a, r, ℓ symbols
   (a, r real, ℓ a non-negative integer), `γ_k² η_k^(−ℓ) = c²η₀^(−ℓ) k^(−(2a − rℓ))`, a positive
   constant times a p-series term with the real exponent `2a − rℓ`. So, by claim 5:
   `Σγ_k² η_k^(−ℓ) < ∞` iff `2a − rℓ > 1`, and `Σγ_k = ∞` iff `a ≤ 1` (claim 5 at p = a,
   negated); each claimed condition is checked to be that p-series condition, as an
   inequality, up to a positive factor. `η_k → 0` iff `r > 0`: the limit of `η₀k^(−r)` is
   0, η₀ and ∞ on the cases `r > 0`, `r = 0`, `r < 0` (a partition of R).
   `rates.bounds.DSGD_SCHEDULE` decides the three conditions on a run's exponents in exact
   rational arithmetic; `tests/test_proofs_smoothing.py` also compares them with sympy's
   series tests on a grid of (a, r, ℓ).

   **What the conditions feed, and what is assumed.** They are the schedule hypotheses of
   the convergence theorem for Diagonalisation SGD of Wagner, Khajwal & Ong
   (arXiv:2402.11752; paraphrased here, the exact statement is the paper's): SGD on the
   smoothed objectives `f_{η_k}`, with the reparameterisation estimator (unbiased for
   `∇f_{η_k}`) and accuracy `η_k → 0`, reaches stationary points of the crisp objective when
   `Σγ_k = ∞`, `Σγ_k² V_k < ∞` for the estimator's variance `V_k` at `η_k`, and `η_k → 0`.
   Certified here is only the translation of those three conditions into `a ≤ 1`,
   `2a − rℓ > 1`, `r > 0` for power schedules. Assumed, not certified: (i) the theorem
   itself and its hypotheses on the program and the smoothed objectives (its regularity
   conditions, which this module does not restate); (ii) `V_k = O(η_k^(−ℓ))`: claim 4
   gives a bound of order η^(−ℓ) on the second moment only for guards
   `θ + εᵢ + v_{i−1}` with independent N(0, 1) noise and bounded branch gaps, a program's
   variance is only bounded by it, and a program outside that form needs its own bound
   (only the order of the bound enters: a variance bound of a smaller order only weakens
   the requirement, so with r > 0 `2a − rℓ > 1` stays sufficient); (iii) `c, η₀ > 0`.

References: D. Wagner, B. Khajwal and C.-H. L. Ong, *Diagonalisation SGD: Fast &
Convergent SGD for Non-Differentiable Models via Reparameterisation and Smoothing*,
arXiv:2402.11752.
"""

from __future__ import annotations

import functools

import sympy as sp

from proofs_check._certificate import Certificate, is_zero

x, y, theta, epsilon = sp.symbols("x y theta epsilon", real=True)
a, b = sp.symbols("a b", real=True)
eta = sp.Symbol("eta", positive=True)
p_chart = sp.Symbol("p", positive=True)  # y = log p


def sigmoid(z, accuracy=1):
    """`σ_η(z) = 1/(1 + exp(−z/η))` with η = `accuracy`."""
    return 1 / (1 + sp.exp(-z / accuracy))


def sigmoid_derivative(z, accuracy=eta):
    """`σ_η'(z)`, as a sympy expression."""
    return sp.diff(sigmoid(x, accuracy), x).subs(x, z)


GAUSSIAN = sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)
SMOOTHED_IF = sigmoid(theta + epsilon, eta) * a + (1 - sigmoid(theta + epsilon, eta)) * b
SUP = 1 / (4 * eta)
ENERGY = 1 / (6 * eta)
IF_GRADIENT = (a - b) * sigmoid_derivative(theta + epsilon)
IF_BOUND = (a - b) ** 2 / (6 * eta * sp.sqrt(2 * sp.pi))
IF_LIMIT = (a - b) ** 2 * GAUSSIAN.subs(x, theta) / 6
WINDOW = sp.tanh(sp.Rational(1, 2)) * (1 + 2 * sp.E / (1 + sp.E) ** 2) / 6


@functools.cache
def _unit_energy(lower, upper):
    """`∫_lower^upper σ'(y)² dy`, through `y = log p` (a rational integrand)."""
    integrand = sp.factor(sp.simplify(sigmoid_derivative(y, 1).subs(y, sp.log(p_chart)) ** 2 / p_chart))
    if not integrand.is_rational_function(p_chart):
        return sp.nan
    return sp.integrate(integrand, (p_chart, sp.exp(lower), sp.exp(upper)))


# --- 1. the supremum of σ_η' -------------------------------------------------------------

u = sp.Symbol("u", positive=True)  # u = σ_η(x) ∈ (0, 1)


def _logistic_product(claim):
    return is_zero(sigmoid_derivative(x) - sigmoid(x, eta) * (1 - sigmoid(x, eta)) / eta)


def _sup_bounds(claim):
    """`η·sup − u(1 − u) = (u − 1/2)² + c` with a constant `c ≥ 0`."""
    remainder = sp.expand(eta * claim["sup"] - u * (1 - u) - (u - sp.Rational(1, 2)) ** 2)
    return not remainder.has(u) and remainder.is_nonnegative is True


def _sup_attained(claim):
    return is_zero(claim["sup"] - sigmoid_derivative(0))


SIGMOID_SUP = Certificate(
    name="sigmoid_derivative_sup",
    statement="sigma_eta' = sigma_eta (1 - sigma_eta)/eta and sup_x |sigma_eta'(x)| = 1/(4 eta), attained at x = 0",
    claim={"sup": SUP},
    steps=(_logistic_product, _sup_bounds, _sup_attained),
    mutants=(("sup 1/(8 eta)", {"sup": 1 / (8 * eta)}), ("sup 1/(2 eta)", {"sup": 1 / (2 * eta)})),
)


# --- 2. ∫ σ_η'² = 1/(6η) -----------------------------------------------------------------

def _rescaling(claim):
    """`σ_η'(ηy)² · η = σ'(y)²/η`: the substitution x = ηy."""
    return is_zero(sigmoid_derivative(eta * y) ** 2 * eta - sigmoid_derivative(y, 1) ** 2 / eta)


def _energy(claim):
    return is_zero(claim["energy"] - _unit_energy(-sp.oo, sp.oo) / eta)


SIGMOID_ENERGY = Certificate(
    name="sigmoid_derivative_energy",
    statement="int_R sigma_eta'(x)^2 dx = 1/(6 eta)",
    claim={"energy": ENERGY},
    steps=(_rescaling, _energy),
    mutants=(("1/(6 eta^2): no substitution", {"energy": 1 / (6 * eta**2)}),
             ("1/(4 eta)", {"energy": 1 / (4 * eta)})),
)


# --- 3. one if-statement ----------------------------------------------------------------

def _reparameterisation_gradient(claim):
    return is_zero(sp.diff(SMOOTHED_IF, theta) - claim["gradient"])


def _gaussian_peak(claim):
    return is_zero(sp.maximum(GAUSSIAN, x) - GAUSSIAN.subs(x, 0))


def _coefficient(claim):
    """The gradient as `coefficient · σ_η'(θ + ε)`, or None if it is not of that form."""
    coefficient = sp.simplify(claim["gradient"] / sigmoid_derivative(theta + epsilon))
    return None if coefficient.has(theta, epsilon, eta) else coefficient


def _upper_bound(claim):
    """`E[g²] ≤ coefficient² · φ(0) · ∫σ_η'²`."""
    coefficient = _coefficient(claim)
    return coefficient is not None and is_zero(
        claim["bound"] - coefficient**2 * GAUSSIAN.subs(x, 0) * _unit_energy(-sp.oo, sp.oo) / eta
    )


def _order_is_exact(claim):
    """`ηE[g²] = c²∫σ'(y)²φ(ηy − θ)dy → c²φ(θ)∫σ'²`, and `η·bound` reaches it at θ = 0."""
    coefficient = _coefficient(claim)
    if coefficient is None:
        return False
    pointwise = sp.limit(GAUSSIAN.subs(x, eta * y - theta), eta, 0, "+")
    limit = coefficient**2 * pointwise * _unit_energy(-sp.oo, sp.oo)
    tight = sp.limit(eta * claim["bound"], eta, 0, "+") - claim["limit"].subs(theta, 0)
    return is_zero(claim["limit"] - limit) and is_zero(tight)


def _window(claim):
    """`C₁ = ∫_{−1}^{1} σ'(y)² dy` in closed form."""
    return is_zero((claim["window"] - _unit_energy(-1, 1)).rewrite(sp.exp))


IF_CLAIM = {"gradient": IF_GRADIENT, "bound": IF_BOUND, "limit": IF_LIMIT, "window": WINDOW}

IF_STATEMENT_VARIANCE = Certificate(
    name="if_statement_variance",
    statement="z = theta + N(0,1), g = d/dtheta[sigma_eta(z) a + (1 - sigma_eta(z)) b] = (a-b) sigma_eta'(z): "
              "E[g^2] <= (a-b)^2/(6 eta sqrt(2 pi)); eta E[g^2] -> (a-b)^2 phi(theta)/6; "
              "E[g^2] >= (a-b)^2 phi(|theta|+1) C1/eta for eta <= 1, C1 = tanh(1/2)(1 + 2e/(1+e)^2)/6",
    claim=IF_CLAIM,
    steps=(_reparameterisation_gradient, _gaussian_peak, _upper_bound, _order_is_exact, _window),
    mutants=(
        ("bound halved", {**IF_CLAIM, "bound": IF_BOUND / 2}),
        ("bound of order eta^(-1/2)", {**IF_CLAIM, "bound": IF_BOUND * sp.sqrt(eta)}),
        ("limit phi(0)(a-b)^2/6, uniform in theta", {**IF_CLAIM, "limit": IF_LIMIT.subs(theta, 0)}),
        ("gradient without the factor a - b", {**IF_CLAIM, "gradient": sigmoid_derivative(theta + epsilon)}),
        ("window constant 1/6, the whole line", {**IF_CLAIM, "window": sp.Rational(1, 6)}),
    ),
)


# --- 4. nesting depth ℓ -----------------------------------------------------------------

ell = sp.Symbol("ell", integer=True, nonnegative=True)
t, K = sp.symbols("t K", positive=True)  # t = √κ, κ = K/η, K = D²/(6√(2π))
NESTED_ROOT = t * (t**ell - 1) / (t - 1)
NESTED_BOUND = NESTED_ROOT**2  # bound on E[(∂θ v_ℓ)²]


def _chain_rule(claim):
    inner = sp.Function("V")(theta)
    guard = theta + epsilon + inner
    level = sigmoid(guard, eta) * a + (1 - sigmoid(guard, eta)) * b
    return is_zero(sp.diff(level, theta) - (a - b) * sigmoid_derivative(guard) * (1 + sp.diff(inner, theta)))


def _nested_start(claim):
    return is_zero(claim["root"].subs(ell, 0))


def _nested_recursion(claim):
    return is_zero(claim["root"].subs(ell, ell + 1) - t * (1 + claim["root"]))


def _nested_order(claim):
    """`η^order · s_ℓ²` has a finite positive limit as η → 0, for ℓ = 1…4."""
    for depth in range(1, 5):
        root = claim["root"].subs(ell, depth).subs(t, sp.sqrt(K / eta))
        limit = sp.limit(eta ** claim["order"].subs(ell, depth) * root**2, eta, 0, "+")
        if not (limit.is_finite and limit.is_positive):
            return False
    return True


NESTED_IF_VARIANCE = Certificate(
    name="nested_if_variance",
    statement="depth l, guards theta + eps_i + v_(i-1), eps_i iid N(0,1), |a_i - b_i| <= D: "
              "E[(d/dtheta v_l)^2] <= (t (t^l - 1)/(t - 1))^2, t^2 = D^2/(6 eta sqrt(2 pi)); Theta(eta^-l) as eta -> 0",
    claim={"root": NESTED_ROOT, "order": ell},
    steps=(_chain_rule, _nested_start, _nested_recursion, _nested_order),
    mutants=(
        ("root t^l: inner guards independent of theta", {"root": t**ell, "order": ell}),
        ("variance recursion with kappa, not sqrt(kappa)",
         {"root": t**2 * (t ** (2 * ell) - 1) / (t**2 - 1), "order": ell}),
        ("order eta^-(l-1)", {"root": NESTED_ROOT, "order": ell - 1}),
    ),
)


# --- 5. p-series and 6. the DSGD schedules ------------------------------------------------

k = sp.Symbol("k", integer=True, positive=True)
p = sp.Symbol("p", real=True)
t_var = sp.Symbol("t", positive=True)  # the integration variable of the integral test
N_upper = sp.Symbol("N", positive=True)  # the upper limit of the partial integrals
q_pos = sp.Symbol("q", positive=True)  # parameters of the cases: every real p is one of them
q_nonneg = sp.Symbol("q", nonnegative=True)
P_PRIMITIVE = (N_upper ** (1 - p) - 1) / (1 - p)  # ∫_1^N t^(−p) dt for p ≠ 1


def _case(name, parameter, domain, value):
    """A case of a by-cases argument: the values `value(parameter)`, `parameter ∈ domain`,
    whose image is the set the case covers."""
    return name, value, sp.imageset(sp.Lambda(parameter, value), domain)


# The integral test needs a non-increasing integrand, so p ≥ 0; for p < 0 the terms grow.
P_INTEGRAL_CASES = (
    _case("p > 1", q_pos, sp.Interval.open(0, sp.oo), 1 + q_pos),
    _case("p = 1", q_nonneg, sp.FiniteSet(0), sp.Integer(1)),
    _case("0 <= p < 1", q_nonneg, sp.Interval(0, sp.oo), q_nonneg / (1 + q_nonneg)),
)
P_TERM_CASES = (_case("p < 0", q_pos, sp.Interval.open(0, sp.oo), -q_pos),)


def _relation_value(relation, point):
    """The relation at `point`, decided by sympy from the case's assumptions: True, False or
    None (undecided: a relation that does not split the case decides nothing)."""
    value = relation.subs(p, point)
    return True if value is sp.true else False if value is sp.false else None


def _p_primitive(claim):
    """`F(N) = (N^(1−p) − 1)/(1 − p)`: `F' = N^(−p)` and `F(1) = 0` for symbolic p, and sympy's
    `∫_1^N t^(−p) dt` is `F` for p ≠ 1 and `log N` for p = 1."""
    integral = sp.integrate(t_var ** (-p), (t_var, 1, N_upper))
    if not isinstance(integral, sp.Piecewise):
        return False
    branches = {condition: expression for expression, condition in integral.args}
    generic = branches.get(sp.Ne(p, 1))
    return (
        is_zero(sp.diff(P_PRIMITIVE, N_upper) - N_upper ** (-p)) and is_zero(P_PRIMITIVE.subs(N_upper, 1))
        and generic is not None and is_zero(generic - P_PRIMITIVE)
        and is_zero(branches.get(sp.true, sp.nan) - sp.log(N_upper))
    )


@functools.cache
def _integral_is_finite(point):
    """`lim_{N→∞} ∫_1^N t^(−p) dt < ∞` at `p = point`: the closed form's limit, for p ≠ 1, and
    `log N → ∞` for p = 1; None if sympy cannot decide."""
    primitive = sp.log(N_upper) if point == 1 else P_PRIMITIVE.subs(p, point)
    try:
        return sp.limit(primitive, N_upper, sp.oo).is_finite
    except NotImplementedError:  # the sign of the exponent is not decided by the case
        return None


def _p_integral_test(claim):
    """For p ≥ 0 (each integral case): `t^(−p)` is non-increasing, so
    `∫_k^{k+1} t^(−p) ≤ k^(−p) ≤ ∫_{k−1}^{k} t^(−p)` and `Σk^(−p)` converges iff `∫_1^∞ t^(−p)` is
    finite; the claim holds exactly where the integral is finite."""
    for _, point, _ in P_INTEGRAL_CASES:
        if sp.diff(t_var ** (-point), t_var).is_nonpositive is not True:
            return False
        finite = _integral_is_finite(point)
        if finite is None or _relation_value(claim["converges"], point) is not finite:
            return False
    return True


def _p_terms(claim):
    """For p < 0: `k^(−p) → ∞`, the terms do not tend to 0, and the series diverges."""
    for _, point, _ in P_TERM_CASES:
        if sp.limit(k ** (-point), k, sp.oo) != sp.oo or _relation_value(claim["converges"], point) is not False:
            return False
    return True


def _cases_decide(claim_relation, symbol, cases, verdict):
    """The cases' sets are disjoint and cover R, and the claim, as a set of `symbol`, is the
    union of the cases whose verdict is True."""
    sets = [covered for _, _, covered in cases]
    disjoint = all(left.intersect(right) is sp.S.EmptySet for i, left in enumerate(sets) for right in sets[i + 1:])
    holds = sp.Union(*[covered for (name, _, covered) in cases if verdict(name)])
    return disjoint and sp.Union(*sets) == sp.S.Reals and claim_relation.as_set() == holds and (
        claim_relation.free_symbols == {symbol})


def _p_cases_cover(claim):
    """The four cases partition the real line, and the claim is `p ∈` the union of the
    convergent ones."""
    convergent = {name for name, point, _ in P_INTEGRAL_CASES if _integral_is_finite(point)}
    return _cases_decide(claim["converges"], p, P_INTEGRAL_CASES + P_TERM_CASES, convergent.__contains__)


P_SERIES = Certificate(
    name="p_series",
    statement="sum_k k^(-p) < oo iff p > 1, for every real p (integral test with symbolic p for p >= 0; "
              "terms not -> 0 for p < 0)",
    claim={"converges": p > 1},
    steps=(_p_primitive, _p_integral_test, _p_terms, _p_cases_cover),
    mutants=(
        ("p >= 1", {"converges": p >= 1}),
        ("p > 1/2", {"converges": p > sp.Rational(1, 2)}),
        ("p > 0 (terms tending to 0)", {"converges": p > 0}),
        ("p > 1 or p < 0 (the term test ignored)", {"converges": (p > 1) | (p < 0)}),
    ),
)

a_exp, r_exp = sp.symbols("a r", real=True)  # real, not positive: the conditions are decided by value
c_step, eta0 = sp.symbols("c eta0", positive=True)
depth = sp.Symbol("ell", integer=True, nonnegative=True)
STEP_SIZE = c_step * k ** (-a_exp)
ACCURACY = eta0 * k ** (-r_exp)
DSGD_CONDITIONS = {
    "steps_diverge": a_exp <= 1,
    "noise_summable": 2 * a_exp - r_exp * depth > 1,
    "accuracy_vanishes": r_exp > 0,
}
ACCURACY_CASES = (
    _case("r > 0", q_pos, sp.Interval.open(0, sp.oo), q_pos),
    _case("r = 0", q_nonneg, sp.FiniteSet(0), sp.Integer(0)),
    _case("r < 0", q_pos, sp.Interval.open(0, sp.oo), -q_pos),
)


def _exponent(term):
    """The p with `term = const · k^(−p)`."""
    return sp.simplify(-k * sp.diff(sp.expand_log(sp.log(term), force=True), k))


def _power_term(term):
    """`(constant, exponent)` with `term = constant · k^(−exponent)`, the constant positive and
    free of k and the exponent real (so that the p-series lemma applies); None otherwise."""
    exponent = _exponent(term)
    constant = sp.simplify(term * k**exponent)
    if exponent.has(k) or constant.has(k) or exponent.is_real is not True or constant.is_positive is not True:
        return None
    return constant, exponent


def _normal_form(relation):
    """`(strict, e)` with the relation equivalent to `e > 0` (strict) or `e ≥ 0`; None if it is
    not an inequality."""
    if isinstance(relation, (sp.StrictGreaterThan, sp.GreaterThan)):
        return isinstance(relation, sp.StrictGreaterThan), relation.lhs - relation.rhs
    if isinstance(relation, (sp.StrictLessThan, sp.LessThan)):
        return isinstance(relation, sp.StrictLessThan), relation.rhs - relation.lhs
    return None


def _same_condition(claimed, derived):
    """The two inequalities are the same after canonicalisation: both `e > 0` (or both
    `e ≥ 0`), the two `e` a positive constant multiple of each other (so the same set of
    parameters, whatever their values); a sufficient test of equivalence."""
    claimed_form, derived_form = _normal_form(claimed), _normal_form(derived)
    if claimed_form is None or derived_form is None or claimed_form[0] != derived_form[0]:
        return False
    ratio = sp.simplify(claimed_form[1] / derived_form[1])
    return bool(ratio.is_number and ratio.is_positive)


def _p_series_condition(exponent):
    """The certified p-series condition `Σk^(−p) < ∞ ⟺ p > 1` at `p = exponent`."""
    return P_SERIES.claim["converges"].subs(p, exponent)


def _noise_series(claim):
    """`γ_k² η_k^(−ℓ) = c² η₀^(−ℓ) k^(−(2a − rℓ))`, and the claim is the p-series condition at
    that exponent: `2a − rℓ > 1`."""
    term = STEP_SIZE**2 * ACCURACY ** (-depth)
    power = _power_term(term)
    if power is None:
        return False
    constant, exponent = power
    return (
        is_zero(constant - c_step**2 * eta0 ** (-depth)) and is_zero(exponent - (2 * a_exp - r_exp * depth))
        and _same_condition(claim["noise_summable"], _p_series_condition(exponent))
    )


def _step_series(claim):
    """`γ_k = c k^(−a)`, and the claim is the negated p-series condition at a: `a ≤ 1`."""
    power = _power_term(STEP_SIZE)
    if power is None or not is_zero(power[1] - a_exp):
        return False
    return _same_condition(claim["steps_diverge"], sp.Not(_p_series_condition(power[1])))


@functools.cache
def _accuracy_limit(point):
    return sp.limit(ACCURACY.subs(r_exp, point), k, sp.oo)


def _accuracy(claim):
    """`lim η₀k^(−r)` is 0 for r > 0, η₀ for r = 0 and ∞ for r < 0 (cases with assumption-bearing
    symbols, which partition R), and the claim holds exactly on the case with limit 0."""
    limits = {name: _accuracy_limit(point) for name, point, _ in ACCURACY_CASES}
    if limits != {"r > 0": 0, "r = 0": eta0, "r < 0": sp.oo}:
        return False
    relation = claim["accuracy_vanishes"]
    decided = all(
        relation.subs(r_exp, point) is (sp.true if limits[name] == 0 else sp.false)
        for name, point, _ in ACCURACY_CASES
    )
    return decided and _cases_decide(relation, r_exp, ACCURACY_CASES, lambda name: limits[name] == 0)


DSGD_SCHEDULE = Certificate(
    name="dsgd_schedule",
    statement="gamma_k = c k^-a, eta_k = eta0 k^-r, variance O(eta^-l), a, r, l symbolic: sum gamma_k = oo iff "
              "a <= 1; sum gamma_k^2 eta_k^-l < oo iff 2a - r l > 1 (p-series lemma); eta_k -> 0 iff r > 0",
    claim=DSGD_CONDITIONS,
    steps=(_noise_series, _step_series, _accuracy),
    mutants=(
        ("2a > 1 (the variance growth ignored)", {**DSGD_CONDITIONS, "noise_summable": 2 * a_exp > 1}),
        ("2a - r l >= 1 (harmonic noise allowed)",
         {**DSGD_CONDITIONS, "noise_summable": 2 * a_exp - r_exp * depth >= 1}),
        ("a < 1 (harmonic steps excluded)", {**DSGD_CONDITIONS, "steps_diverge": a_exp < 1}),
        ("r >= 0 (constant accuracy allowed)", {**DSGD_CONDITIONS, "accuracy_vanishes": r_exp >= 0}),
    ),
)


CERTIFICATES = (SIGMOID_SUP, SIGMOID_ENERGY, IF_STATEMENT_VARIANCE, NESTED_IF_VARIANCE, P_SERIES, DSGD_SCHEDULE)

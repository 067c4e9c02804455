"""The certificates of `proofs_check.contraction`, `.smoothing` and `.densities`: they are
registered (and so verified, with their mutants, by `tests/test_proofs_check.py`);
the conditions of `rates.bounds.DSGD_SCHEDULE` agree with cases decided by hand; the
symbolic `p_series` and `dsgd_schedule` claims agree with sympy's own series and integral
tests on grids of exponents (spot checks, not their evidence); and property tests check the
certified bounds against quadrature (scipy `quad`, a relative tolerance of 1e-7 or better
unless stated) of the exact quantities, each with a negative check that the same comparison
rejects the mutated claim.

Nothing here is random beyond hypothesis' draws: every check is deterministic given
the drawn constants.
"""

import functools
import itertools
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, example, given
from hypothesis import strategies as st
from scipy import integrate, special

import proofs_check
from proofs_check import contraction, densities, smoothing
from rates.bounds import DSGD_SCHEDULE, ConditionError

NEW = contraction.CERTIFICATES + smoothing.CERTIFICATES + densities.CERTIFICATES


def test_every_certificate_here_is_registered():
    """`tests/test_proofs_check.py` verifies every registered certificate and its mutants."""
    assert all(certificate in proofs_check.CERTIFICATES for certificate in NEW)
    assert all(len(certificate.mutants) >= 2 for certificate in NEW)


def test_certificate_names_are_unique():
    names = [c.name for c in proofs_check.CERTIFICATES]
    assert len(names) == len(set(names))


# --- DSGD schedules ---------------------------------------------------------------------

SCHEDULES = [  # (a, r, ell, admissible): decided by hand from a <= 1, 2a - r*ell > 1, r > 0
    (1, 0.5, 1, True),                       # 2 - 1/2 = 3/2
    (0.75, 0.5, 1, False),                   # 3/2 - 1/2 = 1: the noise series is harmonic
    (0.75, 0.25, 1, True),                   # 5/4
    (1, 0.5, 2, False),                      # 2 - 1 = 1
    (1, 0.25, 3, True),                      # 2 - 3/4 = 5/4
    (1, 0, 1, False),                        # eta_k constant
    (1, -0.25, 1, False),                    # eta_k grows
    (1.25, 0.125, 1, False),                 # sum gamma_k < oo
    (0.5, 0.125, 1, False),                  # 1 - 1/8 < 1
    (0.9, 0.8, 1, False),                    # exactly 1 (in floats 1.8 - 0.8 = 1.0000000000000002 > 1)
    (0.9, 0.5, 1, True),                     # 1.3
    ("2/3", "1/3", 1, False),                # 4/3 - 1/3 = 1
    (Fraction(2, 3), Fraction(1, 6), 1, True),  # 7/6
    (1, 0.5, 0, True),                       # no if-statement: 2a > 1
    (0.6, 0.05, 4, False),                   # 1.2 - 0.2 = 1
    (0.6, 0.04, 4, True),                    # 1.2 - 0.16 = 1.04
]


def admissible(a, r, ell) -> bool:
    return all(condition.holds for condition in DSGD_SCHEDULE.conditions_at(a=a, r=r, ell=ell))


def holds(a, r, ell) -> dict[str, bool]:
    return {condition.name: condition.holds for condition in DSGD_SCHEDULE.conditions_at(a=a, r=r, ell=ell)}


@pytest.mark.parametrize(("a", "r", "ell", "expected"), SCHEDULES)
def test_dsgd_schedule_conditions_match_hand_decisions(a, r, ell, expected):
    assert admissible(a, r, ell) is expected


def test_dsgd_schedule_conditions_name_the_failing_condition():
    assert holds(0.75, 0.5, 1) == {"depth_is_a_count": True, "depth_nonnegative": True,
                                   "steps_diverge": True, "noise_summable": False, "accuracy_vanishes": True}
    assert holds(1.25, 0.125, 1)["steps_diverge"] is False
    assert holds(1, 0, 1)["accuracy_vanishes"] is False
    with pytest.raises(ConditionError, match=r"noise_summable: needs 2\*a - ell\*r > 1, got 2\*a - ell\*r = 1$"):
        DSGD_SCHEDULE.require(a=0.75, r=0.5, ell=1)


def test_the_mutated_noise_condition_accepts_a_divergent_schedule():
    """With `2a > 1` in place of `2a − rℓ > 1`, a = 3/4, r = 1/2, ℓ = 1 passes, although
    Σ γ_k² η_k^(−1) = Σ k^(−1) diverges."""
    mutant = dict(smoothing.DSGD_SCHEDULE.mutants)["2a > 1 (the variance growth ignored)"]
    point = {smoothing.a_exp: sp.Rational(3, 4), smoothing.r_exp: sp.Rational(1, 2), smoothing.depth: 1}
    assert bool(mutant["noise_summable"].subs(point))
    assert not sp.Sum(1 / smoothing.k, (smoothing.k, 1, sp.oo)).is_convergent()
    assert not admissible(0.75, 0.5, 1)


@pytest.mark.parametrize(("args", "error"), [
    ((1, 0.5, 1.5), ConditionError), ((1, 0.5, -1), ConditionError), ((1, 0.5, True), TypeError),
    ((float("nan"), 0.5, 1), ValueError), ((1, float("inf"), 1), ValueError), ((None, 0.5, 1), TypeError),
])
def test_dsgd_schedule_conditions_reject_bad_arguments(args, error):
    with pytest.raises(error, match=r"\b(a|r|ell)\b"):
        DSGD_SCHEDULE.require(**dict(zip(("a", "r", "ell"), args)))


# The certificates `p_series` and `dsgd_schedule` are symbolic; these spot checks compare
# their claims with sympy's own series and integral tests, and with limits, on grids.

P_TABLE = tuple(sp.Rational(n, 4) for n in (-2, 0, 1, 2, 3, 4, 5, 6, 8, 12))
SCHEDULE_TABLE = tuple(
    (sp.Rational(an, 4), sp.Rational(rn, 8), ln)
    for an in (1, 2, 3, 4, 5, 6) for rn in (-2, 0, 1, 2, 4) for ln in (0, 1, 2, 4)
)


@functools.cache
def _p_series_converges(exponent):
    return bool(sp.Sum(smoothing.k ** (-exponent), (smoothing.k, 1, sp.oo)).is_convergent())


@functools.cache
def _p_integral_finite(exponent):
    t = sp.Symbol("t", positive=True)
    return bool(sp.integrate(t ** (-exponent), (t, 1, sp.oo)).is_finite)


@pytest.mark.parametrize("exponent", P_TABLE, ids=str)
def test_p_series_claim_agrees_with_sympy_series_and_integral_tests(exponent):
    claimed = bool(smoothing.P_SERIES.claim["converges"].subs(smoothing.p, exponent))
    assert claimed is _p_series_converges(exponent)
    if exponent >= 0:  # the integral test needs a non-increasing integrand
        assert claimed is _p_integral_finite(exponent)


def test_p_series_mutants_disagree_with_sympy_somewhere_on_the_table():
    for description, mutant in smoothing.P_SERIES.mutants:
        decided = [bool(mutant["converges"].subs(smoothing.p, q)) for q in P_TABLE]
        assert decided != [_p_series_converges(q) for q in P_TABLE], description


def _at(relation, point):
    a, r, ell = point
    return bool(relation.subs({smoothing.a_exp: a, smoothing.r_exp: r, smoothing.depth: ell}))


def _grid_decisions(point):
    """The three series facts at a point, by sympy's series test and limit."""
    a, r, ell = point
    return {
        "steps_diverge": not _p_series_converges(a),
        "noise_summable": _p_series_converges(2 * a - r * ell),
        "accuracy_vanishes": sp.limit(smoothing.ACCURACY.subs(smoothing.r_exp, r), smoothing.k, sp.oo) == 0,
    }


def test_dsgd_conditions_agree_with_sympy_on_the_grid():
    """120 points (a, r, ℓ) on both sides of every boundary; the certified conditions and
    `rates.bounds.DSGD_SCHEDULE` agree with sympy's series tests."""
    for point in SCHEDULE_TABLE:
        expected = _grid_decisions(point)
        assert {key: _at(smoothing.DSGD_CONDITIONS[key], point) for key in expected} == expected, point
        assert admissible(*point) is all(expected.values()), point


def test_dsgd_mutants_disagree_with_sympy_on_the_grid():
    decisions = [_grid_decisions(point) for point in SCHEDULE_TABLE]
    for description, mutant in smoothing.DSGD_SCHEDULE.mutants:
        assert any({key: _at(mutant[key], point) for key in expected} != expected
                   for point, expected in zip(SCHEDULE_TABLE, decisions, strict=True)), description


def test_dsgd_conditions_are_the_p_series_condition_at_the_symbolic_exponent():
    """The noise condition is `P_SERIES`'s claim at `p = 2a − rℓ`, literally."""
    exponent = 2 * smoothing.a_exp - smoothing.r_exp * smoothing.depth
    assert smoothing.P_SERIES.claim["converges"].subs(smoothing.p, exponent) == smoothing.DSGD_CONDITIONS[
        "noise_summable"]
    assert sp.Not(smoothing.P_SERIES.claim["converges"].subs(smoothing.p, smoothing.a_exp)) == (
        smoothing.DSGD_CONDITIONS["steps_diverge"])


def test_p_series_cases_partition_the_real_line():
    cases = smoothing.P_INTEGRAL_CASES + smoothing.P_TERM_CASES
    assert sp.Union(*[covered for _, _, covered in cases]) == sp.S.Reals
    assert sum(1 for _, _, covered in cases if covered.contains(sp.Integer(1)) is sp.true) == 1


# --- contraction ------------------------------------------------------------------------

def _mean_square_image(hessians, alpha, delta):
    return float(np.mean([np.sum((delta - alpha * H @ delta) ** 2) for H in hessians]))


@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 4),
       st.floats(0.1, 10.0), st.floats(0.01, 1.0))
def test_contraction_holds_for_random_hessians(seed, dim, samples, L, fraction):
    """`0 ⪯ H_ξ ⪯ L·I`, μ = λ_min(H̄), α = fraction/L:
    E‖(I − αH_ξ)Δ‖² ≤ (1 − αμ)‖Δ‖² (exact average over the samples)."""
    rng = np.random.default_rng(seed)
    hessians = []
    for _ in range(samples):
        Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        hessians.append(Q @ np.diag(rng.uniform(0.0, L, dim)) @ Q.T)
    mu = float(np.linalg.eigvalsh(np.mean(hessians, axis=0))[0])
    alpha, delta = fraction / L, rng.standard_normal(dim)
    bound = _lambdify(contraction.CONTRACTION, contraction.alpha, contraction.mu)(alpha, mu) * np.sum(delta**2)
    assert _mean_square_image(hessians, alpha, delta) <= bound * (1 + 1e-12) + 1e-14


@given(st.floats(0.1, 10.0), st.integers(1, 4))
def test_contraction_mutants_fail_on_the_constant_hessian(L, dim):
    """`H_ξ = L·I` (so μ = L): at α = 1.5/L the image is (1/4)‖Δ‖² > (1 − αμ)‖Δ‖² < 0, and at
    α = 1/L the image is 0 > (1 − 2αμ)‖Δ‖² = −‖Δ‖²."""
    delta, hessians = np.ones(dim), [L * np.eye(dim)]
    assert _mean_square_image(hessians, 1.5 / L, delta) > (1 - 1.5) * dim
    assert _mean_square_image(hessians, 1.0 / L, delta) > (1 - 2.0) * dim


# --- one smoothed if-statement ----------------------------------------------------------

def _phi(z):
    return np.exp(-z * z / 2) / np.sqrt(2 * np.pi)


def _sigmoid_derivative(x, eta):
    return special.expit(x / eta) * special.expit(-x / eta) / eta


def _quad(f, lo, hi, points=(), epsabs=0.0):
    """`∫_lo^hi f`, split at the `points` inside (kinks, narrow peaks), to a relative 1e-11
    or the absolute `epsabs`, whichever is looser. A purely relative tolerance is out of
    reach where a piece is 0 or cancels (a sign change, or a subnormal integrand), and quad
    warns; tests that compare with an absolute tolerance pass a smaller `epsabs`."""
    edges = [lo, *sorted(float(q) for q in points if lo < q < hi), hi]
    return sum(integrate.quad(f, left, right, limit=400, epsabs=epsabs, epsrel=1e-11)[0]
               for left, right in itertools.pairwise(edges))


def _gaussian_energy(mean, eta):
    """`∫ σ_η'(x)² φ(x − mean) dx`, the Gaussian factor negligible beyond 12 (e^(−72))."""
    return _quad(lambda x: _sigmoid_derivative(x, eta) ** 2 * _phi(x - mean), mean - 12, mean + 12, points=(0.0,))


def _lambdify(expression, *symbols):
    return sp.lambdify(symbols, expression, ["scipy", "numpy"])


IF_BOUND = _lambdify(smoothing.IF_BOUND, smoothing.a, smoothing.b, smoothing.eta)
IF_LIMIT = _lambdify(smoothing.IF_LIMIT, smoothing.a, smoothing.b, smoothing.theta)
IF_MUTANTS = dict(smoothing.IF_STATEMENT_VARIANCE.mutants)
coefficients = st.floats(-2.0, 2.0)


@given(st.floats(0.02, 2.0), st.floats(-3.0, 3.0), coefficients, coefficients)
def test_if_statement_second_moment_is_within_its_certified_bounds(eta, theta, a, b):
    """`E[((a − b)σ_η'(θ + ε))²]` by quadrature lies below the certified bound and, for
    η ≤ 1, above `(a − b)² φ(|θ| + 1) C₁/η`."""
    second_moment = (a - b) ** 2 * _gaussian_energy(theta, eta)
    assert second_moment <= IF_BOUND(a, b, eta) * (1 + 1e-9)
    if eta <= 1:
        window = float(smoothing.WINDOW)
        assert second_moment >= (a - b) ** 2 * _phi(abs(theta) + 1) * window / eta * (1 - 1e-9)


@given(st.floats(1e-3, 1e-2), st.floats(-2.0, 2.0), st.floats(0.5, 2.0))
def test_if_statement_second_moment_is_of_exact_order_one_over_eta(eta, theta, gap):
    """`η E[g²] → (a − b)² φ(θ)/6`; the relative error is O(η²(1 + θ²)), below 1e-3 here."""
    scaled = eta * gap**2 * _gaussian_energy(theta, eta)
    assert scaled == pytest.approx(IF_LIMIT(gap, 0.0, theta), rel=1e-3)


@given(st.floats(0.01, 0.2), st.floats(-0.5, 0.5), st.floats(0.5, 2.0))
def test_if_statement_mutated_bounds_are_exceeded(eta, theta, gap):
    """Near θ = 0 and for small η the true second moment exceeds the halved bound and the
    bound of order η^(−1/2): the quadrature rejects both mutants."""
    second_moment = gap**2 * _gaussian_energy(theta, eta)
    for name in ("bound halved", "bound of order eta^(-1/2)"):
        mutated = _lambdify(IF_MUTANTS[name]["bound"], smoothing.a, smoothing.b, smoothing.eta)
        assert second_moment > mutated(gap, 0.0, eta) * 1.05, name


def test_sigmoid_energy_and_supremum_by_quadrature():
    for eta in (0.05, 0.3, 2.0):
        energy = _quad(lambda x, eta=eta: _sigmoid_derivative(x, eta) ** 2, -80 * eta, 80 * eta, points=(0.0,))
        assert energy == pytest.approx(float(smoothing.ENERGY.subs(smoothing.eta, eta)), rel=1e-9)
        grid = np.linspace(-5 * eta, 5 * eta, 2001)
        assert np.max(_sigmoid_derivative(grid, eta)) == pytest.approx(float(smoothing.SUP.subs(smoothing.eta, eta)))
    assert float(smoothing.WINDOW) == pytest.approx(_quad(lambda y: _sigmoid_derivative(y, 1.0) ** 2, -1, 1), rel=1e-10)


# --- nesting depth 2 --------------------------------------------------------------------

def _nested_second_moment(theta, eta, a1, b1, a2, b2):
    """`E[(∂θ v₂)²]` for `v₂ = if θ + ε₂ + v₁ ≥ 0 then a₂ else b₂`, `v₁ = if θ + ε₁ ≥ 0 then
    a₁ else b₁`, both smoothed: the inner ε₂-integral is `_gaussian_energy(θ + v₁)`."""
    def outer(e1):
        guard = theta + e1
        v1 = special.expit(guard / eta) * (a1 - b1) + b1
        d1 = (a1 - b1) * _sigmoid_derivative(guard, eta)
        return (a2 - b2) ** 2 * (1 + d1) ** 2 * _gaussian_energy(theta + v1, eta) * _phi(e1)
    value, _ = integrate.quad(outer, -theta - 12, -theta + 12, points=[-theta], limit=200, epsabs=0.0, epsrel=1e-8)
    return value


def _nested_bound(root, eta, D, depth):
    t = np.sqrt(D**2 / (6 * eta * np.sqrt(2 * np.pi)))
    return float(root.subs({smoothing.ell: depth, smoothing.t: t}) ** 2)


@given(st.floats(0.05, 1.0), st.floats(-2.0, 2.0), coefficients, coefficients, coefficients, coefficients)
def test_nested_if_second_moment_is_below_the_certified_bound(eta, theta, a1, b1, a2, b2):
    D = max(abs(a1 - b1), abs(a2 - b2))
    assume(D > 1e-3)
    bound = _nested_bound(smoothing.NESTED_ROOT, eta, D, 2)
    assert _nested_second_moment(theta, eta, a1, b1, a2, b2) <= bound * (1 + 1e-7)


@given(st.floats(0.05, 1.0), st.floats(-0.5, 0.5), st.floats(0.5, 1.5))
def test_nested_if_mutated_root_is_exceeded(eta, theta, D):
    """The mutant `s_ℓ = t^ℓ` (θ only in the innermost guard) bounds the second moment by
    κ², which the depth-2 program with a = D/2, b = −D/2 exceeds."""
    mutant = dict(smoothing.NESTED_IF_VARIANCE.mutants)["root t^l: inner guards independent of theta"]["root"]
    second_moment = _nested_second_moment(theta, eta, D / 2, -D / 2, D / 2, -D / 2)
    assert second_moment > _nested_bound(mutant, eta, D, 2) * 1.05


# --- noise densities --------------------------------------------------------------------

DENSITY = {name: {field: _lambdify(getattr(d, field), d.symbol) for field in ("density", "score")}
           for name, d in densities.DENSITIES.items()}
WINDOWS = {  # integration ranges outside of which the integrands are below 1e-20
    "gaussian": (-40.0, 40.0), "logistic": (-80.0, 80.0), "gumbel": (-6.0, 70.0),
    "laplace": (-80.0, 80.0), "triangular": (-1.0, 1.0), "cauchy": (-np.inf, np.inf),
}
POLYNOMIAL = sorted(name for name, d in densities.DENSITIES.items() if d.test_functions == "polynomial")


def _expect(name, g, lo=None, epsabs=0.0):
    """`E[g(ε)]` under the density `name`, on its window (from `lo` when given)."""
    window_lo, hi = WINDOWS[name]
    lo = window_lo if lo is None else max(lo, window_lo)
    if lo >= hi:
        return 0.0
    mu = DENSITY[name]["density"]
    return _quad(lambda e: g(e) * mu(e), lo, hi, points=(0.0,), epsabs=epsabs)


def _expect_scored(name, g, lo=None, epsabs=0.0):
    score = DENSITY[name]["score"]
    return _expect(name, lambda e: g(e) * score(e), lo, epsabs)


# For the estimator-against-derivative checks, whose expectations may be 0 or cancel
# (x = ±1, γ = 2 for f = 1/(1 + y²) under Cauchy noise; any subnormal coefficient):
# 1e-13 absolute, four orders below the smallest `abs` these tests compare with.
EPSABS = 1e-13


def _poly(coefficients):
    f = np.polynomial.Polynomial(coefficients)
    return f, f.deriv()


cubic = st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4)


@given(st.sampled_from(POLYNOMIAL), cubic, st.floats(-1.0, 1.0), st.floats(0.2, 2.0))
@example("laplace", [0.0, 0.0, 1e-300, 0.0], -1.0, 1.0)  # a tiny quadratic: relative accuracy out of reach
def test_score_estimator_is_the_derivative_of_the_smoothed_polynomial(name, coefficients, x, gamma):
    """`E[f(x + γε)s(ε)]/γ = E[f'(x + γε)] = d/dx E[f(x + γε)]` for a cubic f."""
    f, df = _poly(coefficients)
    estimator = _expect_scored(name, lambda e: f(x + gamma * e), epsabs=EPSABS) / gamma
    derivative = _expect(name, lambda e: df(x + gamma * e), epsabs=EPSABS)
    assert estimator == pytest.approx(derivative, rel=1e-7, abs=1e-9)


@given(st.sampled_from(POLYNOMIAL), cubic, st.floats(-1.0, 1.0),
       st.one_of(st.floats(0.2, 0.6), st.floats(1.6, 3.0)))
def test_score_estimator_mutants_miss_the_derivative(name, coefficients, x, gamma):
    """The wrong-sign score and the estimator without 1/γ are off by a factor −1 and γ."""
    f, df = _poly(coefficients)
    derivative = _expect(name, lambda e: df(x + gamma * e), epsabs=EPSABS)
    assume(abs(derivative) > 1e-2)
    scored = _expect_scored(name, lambda e: f(x + gamma * e), epsabs=EPSABS)
    assert abs(-scored / gamma - derivative) > 1e-3 * abs(derivative)    # wrong sign
    assert abs(scored - derivative) > 1e-3 * abs(derivative)             # without 1/γ


@given(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(0.2, 2.0))
@example(2.2e-313, 0.0, 0.5, 0.2)  # a subnormal integrand
@example(0.0, 1.0, -1.0, 2.0)      # E[f'] over ε > 0 nearly cancels, to 9e-5
def test_cauchy_score_estimator_on_a_bounded_function(c1, c2, x, gamma):
    """Cauchy noise has no mean, so f is bounded: `f(y) = c₁tanh(y) + c₂/(1 + y²)`."""
    f = lambda y: c1 * np.tanh(y) + c2 / (1 + y * y)  # noqa: E731
    df = lambda y: c1 * (1 - np.tanh(y) ** 2) - 2 * c2 * y / (1 + y * y) ** 2  # noqa: E731
    estimator = _expect_scored("cauchy", lambda e: f(x + gamma * e), epsabs=EPSABS) / gamma
    derivative = _expect("cauchy", lambda e: df(x + gamma * e), epsabs=EPSABS)
    assert estimator == pytest.approx(derivative, rel=1e-6, abs=1e-8)


@given(st.sampled_from(sorted(densities.DENSITIES)), st.floats(-1.5, 1.5), st.floats(0.2, 2.0))
def test_score_estimator_of_the_step_function_is_the_density(name, x, gamma):
    """`E[1[x + γε ≥ 0] s(ε)]/γ = μ(−x/γ)/γ`; without 1/γ it is off by the factor γ."""
    t = -x / gamma
    estimator = _expect_scored(name, lambda e: np.ones_like(e), lo=t) / gamma
    expected = float(DENSITY[name]["density"](t)) / gamma
    assert estimator == pytest.approx(expected, rel=1e-7, abs=1e-10)
    if expected > 1e-2 and abs(gamma - 1) > 0.1:
        assert abs(estimator * gamma - expected) > 1e-3 * expected


@pytest.mark.parametrize("name", sorted(densities.DENSITIES))
def test_fisher_information_by_quadrature(name):
    """Finite Fisher informations match, and not their doubles; the triangular one grows
    like 2 log(1/δ) on [−1 + δ, 1 − δ]."""
    claimed = densities.DENSITIES[name].fisher_information
    score = DENSITY[name]["score"]
    if claimed is sp.oo:
        mu = DENSITY[name]["density"]
        truncated = [2 * _quad(lambda e: score(e) ** 2 * mu(e), 0.0, 1 - delta) for delta in (1e-2, 1e-4, 1e-6)]
        assert truncated == pytest.approx([2 * np.log(1 / d) for d in (1e-2, 1e-4, 1e-6)], rel=1e-6)
        return
    fisher = _expect(name, lambda e: score(e) ** 2)
    assert fisher == pytest.approx(float(claimed), rel=1e-8)
    assert abs(fisher - 2 * float(claimed)) > 0.1


def test_logistic_density_is_the_textbook_form():
    e = densities.epsilon
    exported = densities.DENSITIES["logistic"].density
    assert sp.simplify((exported - sp.exp(-e) / (1 + sp.exp(-e)) ** 2).rewrite(sp.exp)) == 0


@pytest.mark.parametrize("name", sorted(densities.DENSITIES))
def test_exported_expressions_agree_with_each_other(name):
    """μ integrates to 1, the score is −(log μ)' (central differences), the CDF integrates μ
    and the quantile inverts the CDF."""
    d = densities.DENSITIES[name]
    mu, score = DENSITY[name]["density"], DENSITY[name]["score"]
    cdf = _lambdify(d.cdf, d.symbol)
    quantile = _lambdify(d.quantile, d.probability)
    assert _expect(name, lambda e: np.ones_like(e)) == pytest.approx(1.0, rel=1e-10)
    points = np.array([-0.7, -0.2, 0.3, 0.8])
    h = 1e-6
    log_derivative = (np.log(mu(points + h)) - np.log(mu(points - h))) / (2 * h)
    np.testing.assert_allclose(score(points), -log_derivative, rtol=1e-6, atol=1e-8)
    for e in points:
        lo = WINDOWS[name][0]
        assert float(cdf(e)) == pytest.approx(_quad(mu, lo, e, points=(0.0,)), rel=1e-9)
    probabilities = np.array([0.05, 0.3, 0.5, 0.7, 0.95])
    np.testing.assert_allclose(cdf(quantile(probabilities)), probabilities, rtol=1e-12)

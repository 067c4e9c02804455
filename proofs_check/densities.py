"""Black-box stochastic smoothing: the six noise densities and their score functions.

**Setting.** `f_γ(x) = E[f(x + γε)]`, `ε ~ μ`, `γ > 0`. For an absolutely continuous
density μ with score `s = −(log μ)' = −μ'/μ` (defined almost everywhere), integration by
parts gives the score-function estimator

    d/dx E[f(x + γε)] = E[f(x + γε) s(ε)] / γ,

without differentiating f: `∫ f(x + γε)(−μ'(ε)) dε = [−f μ] + γ∫ f'(x + γε) μ(ε) dε`,
and the boundary terms vanish when μ is continuous and `f(x + γε)μ(ε) → 0` at the ends
of the support. For the step function `f = 1[· ≥ 0]`, `f_γ(x) = 1 − F(−x/γ)` and the
derivative is `μ(−x/γ)/γ`.

**The densities** (location 0, scale 1; `DENSITIES[name]`):

| name | μ(ε) | score s(ε) | Fisher E[s²] |
|---|---|---|---|
| gaussian | `exp(−ε²/2)/√(2π)` | `ε` | 1 |
| logistic | `e^(−ε)/(1 + e^(−ε))² = 1/(4cosh²(ε/2))` | `tanh(ε/2)` | 1/3 |
| gumbel | `exp(−ε − e^(−ε))` (maxima; mean Euler's γ) | `1 − e^(−ε)` | 1 |
| cauchy | `1/(π(1 + ε²))` | `2ε/(1 + ε²)` | 1/2 |
| laplace | `e^(−|ε|)/2` | `sign(ε)`, except at 0 | 1 |
| triangular | `max(0, 1 − |ε|)` on [−1, 1] | `sign(ε)/(1 − |ε|)` on (−1, 1) \\ {0} | ∞ |

The Laplace score has no value at 0 and the triangular one none at 0, ±1 or outside
[−1, 1]; the expressions return 0 there (a null set under μ; the triangular score
divides by zero at exactly ±1 when a lambdified `Piecewise` evaluates every branch).
The expressions lambdify with `modules=["scipy", "numpy"]`, or for JAX with
`[{"erf": jax.scipy.special.erf, "erfinv": jax.scipy.special.erfinv}, "jax"]`.

The triangular Fisher information diverges (`∫_0^1 dε/(1 − ε) = ∞`): its score-function estimator is unbiased
but has infinite variance for any f that is not 0 near ±1. Each `Density` also carries
the CDF and the quantile `F⁻¹(u)`, `u ∈ (0, 1)`, for inverse-transform (quasi-)sampling.

**Proof** (one certificate per density, `<name>_score`): on each chart (a substitution
`ε = ε(p)` that turns the integrals into elementary ones, e.g. `ε = log p` for the
logistic and `ε = −log p` for the Gumbel density), sympy checks that μ integrates to 1;
that `s μ + μ' = 0`; the boundary terms (μ continuous at junctions, `εʲμ → 0` and
`εʲ s μ → 0` at infinite ends for j ≤ 5 when polynomials are tested, which also makes
`|ε|³μ` and `|ε|³|s|μ` integrable; μ → 0 and `sμ` bounded at finite ends); `E[s] = 0`;
the Fisher information; the estimator on test functions with symbolic coefficients
(cubic polynomials; for the Cauchy density, where `E|ε| = ∞`, the bounded
`c₁cos(ωy) + c₂sin(ωy)` instead); the step function at a location in every chart; the
CDF against the integral of μ, and the quantile as its inverse. For the logistic and
Gumbel densities the polynomial moments `E[εⁿ]`, `E[εⁿ s(ε)]` are evaluated by mpmath
quadrature at 30 digits and the identity is accepted to 1e-20 (sympy's closed forms
take tens of seconds or fail); every other step is exact.

References: F. Petersen, C. Borgelt, A. Mishra, S. Ermon, *Generalizing Stochastic
Smoothing for Differentiation and Gradient Estimation*, arXiv:2410.08125.
"""

from __future__ import annotations

import dataclasses
import functools

import mpmath
import sympy as sp

from proofs_check._certificate import Certificate, is_zero

epsilon = sp.Symbol("epsilon", real=True)
u = sp.Symbol("u", positive=True)            # a probability in (0, 1), argument of the quantile
x = sp.Symbol("x", real=True)
gamma = sp.Symbol("gamma", positive=True)    # the noise scale
p = sp.Symbol("p", positive=True)            # chart variable on a half-line
c = sp.symbols("c0:4", real=True)            # test-function coefficients
omega = sp.Symbol("omega", positive=True)
QUADRATURE_DIGITS = 30
QUADRATURE_TOLERANCE = 1e-20


@dataclasses.dataclass(frozen=True)
class Chart:
    """One piece of the support, `ε = epsilon_of(variable)`, the variable running from
    `start` to `end` as ε increases through the piece (`end < start` when ε decreases in it)."""

    variable: sp.Symbol
    epsilon_of: sp.Expr
    start: sp.Expr
    end: sp.Expr


@dataclasses.dataclass(frozen=True)
class Density:
    """A standardised noise density and its certified expressions, all in `symbol` (ε);
    `quantile` is in `probability` (u)."""

    name: str
    parameterisation: str
    symbol: sp.Symbol
    density: sp.Expr
    score: sp.Expr
    fisher_information: sp.Expr
    cdf: sp.Expr
    quantile: sp.Expr
    probability: sp.Symbol
    charts: tuple[Chart, ...]
    test_functions: str        # "polynomial" or "trigonometric"
    moments: str               # "exact" or "quadrature" (polynomial moments)


_whole_line = (Chart(epsilon, epsilon, -sp.oo, sp.oo),)
_abs, _sign = sp.Abs(epsilon), sp.sign(epsilon)

DENSITIES = {
    density.name: density
    for density in (
        Density(
            "gaussian", "standard normal N(0, 1)", epsilon,
            sp.exp(-(epsilon**2) / 2) / sp.sqrt(2 * sp.pi), epsilon, sp.Integer(1),
            (1 + sp.erf(epsilon / sp.sqrt(2))) / 2, sp.sqrt(2) * sp.erfinv(2 * u - 1), u,
            _whole_line, "polynomial", "exact",
        ),
        Density(
            "logistic", "standard logistic, location 0, scale 1 (variance pi^2/3)", epsilon,
            1 / (4 * sp.cosh(epsilon / 2) ** 2), sp.tanh(epsilon / 2), sp.Rational(1, 3),
            (1 + sp.tanh(epsilon / 2)) / 2, sp.log(u / (1 - u)), u,
            (Chart(p, sp.log(p), 0, sp.oo),), "polynomial", "quadrature",
        ),
        Density(
            "gumbel", "standard Gumbel (maxima), location 0, scale 1 (mean Euler's gamma)", epsilon,
            sp.exp(-epsilon - sp.exp(-epsilon)), 1 - sp.exp(-epsilon), sp.Integer(1),
            sp.exp(-sp.exp(-epsilon)), -sp.log(-sp.log(u)), u,
            (Chart(p, -sp.log(p), sp.oo, 0),), "polynomial", "quadrature",
        ),
        Density(
            "cauchy", "standard Cauchy, location 0, scale 1", epsilon,
            1 / (sp.pi * (1 + epsilon**2)), 2 * epsilon / (1 + epsilon**2), sp.Rational(1, 2),
            sp.Rational(1, 2) + sp.atan(epsilon) / sp.pi, sp.tan(sp.pi * (u - sp.Rational(1, 2))), u,
            _whole_line, "trigonometric", "exact",
        ),
        Density(
            "laplace", "standard Laplace, location 0, scale 1 (variance 2)", epsilon,
            sp.exp(-_abs) / 2, _sign, sp.Integer(1),
            sp.Rational(1, 2) + _sign * (1 - sp.exp(-_abs)) / 2,
            -sp.sign(u - sp.Rational(1, 2)) * sp.log(1 - sp.Abs(2 * u - 1)), u,
            (Chart(p, -p, sp.oo, 0), Chart(p, p, 0, sp.oo)), "polynomial", "exact",
        ),
        Density(
            "triangular", "symmetric triangular on [-1, 1], mode 0 (variance 1/6)", epsilon,
            sp.Max(0, 1 - _abs), sp.Piecewise((_sign / (1 - _abs), _abs < 1), (0, True)), sp.oo,
            sp.Piecewise((0, epsilon < -1), ((1 + epsilon) ** 2 / 2, epsilon < 0),
                         (1 - (1 - epsilon) ** 2 / 2, epsilon < 1), (1, True)),
            sp.sign(u - sp.Rational(1, 2)) * (1 - sp.sqrt(1 - sp.Abs(2 * u - 1))), u,
            (Chart(p, -1 / (1 + p), 0, sp.oo), Chart(p, p / (1 + p), 0, sp.oo)), "polynomial", "exact",
        ),
    )
}


# --- integrals over charts ------------------------------------------------------------

def _on(expression, chart, at=None):
    """The expression at `ε = ε(variable)` (or at `ε = ε(at)`), simplified."""
    point = chart.epsilon_of if at is None else chart.epsilon_of.subs(chart.variable, at)
    return sp.simplify(expression.subs(epsilon, point).rewrite(sp.exp))


@functools.cache
def _chart_integral(integrand, chart, start=None):
    """`∫ integrand dε` over the chart's piece, from `ε(start)` when given."""
    jacobian = sp.diff(chart.epsilon_of, chart.variable)
    restricted = sp.simplify(_on(integrand, chart) * jacobian)
    return sp.integrate(restricted, (chart.variable, chart.start if start is None else start, chart.end))


def _expectation(g, density, charts):
    return sp.simplify(sum(_chart_integral(g * density, chart) for chart in charts))


def _limit(expression, chart, where):
    return sp.limit(_on(expression, chart), chart.variable, where)


def _epsilon_at(chart, where):
    return sp.limit(chart.epsilon_of, chart.variable, where)


def _location(chart):
    """A symbol for a point of the chart's variable, with the variable's assumptions."""
    return sp.Symbol("t", **({"positive": True} if chart.variable.is_positive else {"real": True}))


# --- proof steps; the claim holds one density's expressions -----------------------------

def _normalised(claim):
    return is_zero(_expectation(sp.Integer(1), claim["density"], claim["charts"]) - 1)


def _score_is_log_derivative(claim):
    """`s μ + dμ/dε = 0` on every chart, `dμ/dε = (d/dp μ(ε(p)))/ε'(p)`."""
    for chart in claim["charts"]:
        derivative = sp.diff(_on(claim["density"], chart), chart.variable) / sp.diff(chart.epsilon_of, chart.variable)
        if not is_zero(_on(claim["score"] * claim["density"], chart) + derivative):
            return False
    return True


def _boundary_terms(claim):
    """Integration by parts has no boundary terms, and the test functions are integrable."""
    mu, score, charts = claim["density"], claim["score"], claim["charts"]
    powers = range(6) if claim["test_functions"] == "polynomial" else range(1)
    junctions: dict = {}
    for chart in charts:
        for where in (chart.start, chart.end):
            at = _epsilon_at(chart, where)
            if at.is_finite and any(_epsilon_at(other, end) == at for other in charts if other is not chart
                                    for end in (other.start, other.end)):
                junctions.setdefault(at, set()).add(sp.simplify(_limit(mu, chart, where)))
            elif at.is_finite:  # an end of a bounded support
                if _limit(mu, chart, where) != 0 or not _limit(score * mu, chart, where).is_finite:
                    return False
            elif any(_limit(epsilon**j * mu, chart, where) != 0 or _limit(epsilon**j * score * mu, chart, where) != 0
                     for j in powers):
                return False
    return all(len(values) == 1 for values in junctions.values())


def _score_mean_zero(claim):
    return is_zero(_expectation(claim["score"], claim["density"], claim["charts"]))


def _fisher(claim):
    fisher = _expectation(claim["score"] ** 2, claim["density"], claim["charts"])
    if fisher is sp.oo or claim["fisher"] is sp.oo:
        return fisher == claim["fisher"]
    return is_zero(fisher - claim["fisher"])


@functools.cache
def _quadrature(integrand, chart):
    """`∫ integrand dε` over the chart by mpmath (tanh-sinh), in the chart variable."""
    restricted = sp.simplify(_on(integrand, chart) * sp.diff(chart.epsilon_of, chart.variable))
    f = sp.lambdify(chart.variable, restricted, "mpmath")
    with mpmath.workdps(QUADRATURE_DIGITS):
        ends = [mpmath.mpf(sp.sympify(end).evalf(QUADRATURE_DIGITS)) if sp.sympify(end).is_finite
                else (mpmath.inf if end > 0 else -mpmath.inf) for end in (chart.start, chart.end)]
        return sp.Float(mpmath.quad(f, ends), QUADRATURE_DIGITS)


def _moment(g, claim):
    if claim["moments"] == "exact":
        return _expectation(g, claim["density"], claim["charts"])
    return sum(_quadrature(g * claim["density"], chart) for chart in claim["charts"])


def _polynomial_identity(claim):
    """`scale·E[f(x + γε)s(ε)] = d/dx E[f(x + γε)]` for `f = Σ cⱼ yʲ`, j ≤ 3."""
    plain = [_moment(epsilon**n, claim) for n in range(4)]
    scored = [_moment(epsilon**n * claim["score"], claim) for n in range(4)]

    def smoothed(moments):  # E[Σ cⱼ (x + γε)ʲ] from the moments of ε
        return sum(c[j] * sp.binomial(j, n) * x ** (j - n) * gamma**n * moments[n]
                   for j in range(4) for n in range(j + 1))

    difference = sp.expand(gamma * (claim["scale"] * smoothed(scored) - sp.diff(smoothed(plain), x)))
    if claim["moments"] == "exact":
        return is_zero(difference)
    coefficients = sp.Poly(difference, x, gamma, *c).coeffs()
    return all(abs(float(coefficient)) < QUADRATURE_TOLERANCE for coefficient in coefficients)


def _trigonometric_identity(claim):
    """The same for `f = c₁cos(ωy) + c₂sin(ωy)`, where polynomials are not integrable."""
    mu, score, charts = claim["density"], claim["score"], claim["charts"]
    if sp.integrate(epsilon * mu, (epsilon, 0, sp.oo)) is not sp.oo:
        return False  # E|ε| = ∞ is why polynomials are replaced
    k = omega * gamma
    C, S = (_expectation(g(k * epsilon), mu, charts) for g in (sp.cos, sp.sin))
    Cs, Ss = (_expectation(g(k * epsilon) * score, mu, charts) for g in (sp.cos, sp.sin))

    def smoothed(cos_mean, sin_mean):  # cos(ωx + kε) = cos(ωx)cos(kε) − sin(ωx)sin(kε), etc.
        return (c[1] * (sp.cos(omega * x) * cos_mean - sp.sin(omega * x) * sin_mean)
                + c[2] * (sp.sin(omega * x) * cos_mean + sp.cos(omega * x) * sin_mean))

    return is_zero((claim["scale"] * smoothed(Cs, Ss) - sp.diff(smoothed(C, S), x)).rewrite(sp.exp))


def _test_functions(claim):
    if claim["test_functions"] == "polynomial":
        return _polynomial_identity(claim)
    return _trigonometric_identity(claim)


def _tail(integrand, charts, index, location):
    """`∫_{ε(location)}^∞ integrand dε` when ε(location) lies in chart `index`."""
    chart = charts[index]
    return (_chart_integral(integrand, chart, location)
            + sum(_chart_integral(integrand, later) for later in charts[index + 1:]))


def _step_function(claim):
    """`scale·E[1[x + γε ≥ 0] s(ε)] = d/dx(1 − F(−x/γ))`, at `x = −γ ε(t)` in every chart."""
    mu, charts = claim["density"], claim["charts"]
    for index, chart in enumerate(charts):
        t = _location(chart)
        survival = _tail(mu, charts, index, t)                    # P(ε ≥ ε(t)) = E 1[x + γε ≥ 0]
        d_epsilon = sp.diff(chart.epsilon_of, chart.variable).subs(chart.variable, t)
        derivative = -sp.diff(survival, t) / d_epsilon / gamma     # d/dx, with ε(t) = −x/γ
        estimator = claim["scale"] * _tail(claim["score"] * mu, charts, index, t)
        if not is_zero((estimator - derivative).rewrite(sp.exp)):
            return False
    return True


def _cdf(claim):
    """`F(ε(t)) = 1 − ∫_{ε(t)}^∞ μ` on every chart."""
    for index, chart in enumerate(claim["charts"]):
        t = _location(chart)
        difference = _on(claim["cdf"], chart, t) - 1 + _tail(claim["density"], claim["charts"], index, t)
        if not is_zero(difference.rewrite(sp.erf)):
            return False
    return True


def _quantile(claim):
    """`F(Q(u)) = u` on (0, 1/2] and [1/2, 1), or `Q(F(ε)) = ε` on every chart; either makes
    Q the inverse of the increasing bijection F: R → (0, 1)."""
    w = sp.Symbol("w", positive=True)
    halves = (1 / (2 + 2 * w), 1 - 1 / (2 + 2 * w))
    if all(is_zero(claim["cdf"].subs(epsilon, claim["quantile"].subs(u, half)) - half) for half in halves):
        return True
    return all(is_zero(_on(claim["quantile"].subs(u, claim["cdf"]), chart) - chart.epsilon_of)
               for chart in claim["charts"])


def _claim(density, **changes):
    claim = {
        "density": density.density, "score": density.score, "fisher": density.fisher_information,
        "scale": 1 / gamma, "cdf": density.cdf, "quantile": density.quantile, "charts": density.charts,
        "test_functions": density.test_functions, "moments": density.moments,
    }
    return {**claim, **changes}


def _certificate(density):
    fisher = "infinite" if density.fisher_information is sp.oo else str(density.fisher_information)
    tests = ("cubic polynomials" if density.test_functions == "polynomial"
             else "c1 cos(w y) + c2 sin(w y) (E|eps| = oo: no polynomials)")
    moments = "; polynomial moments by 30-digit mpmath quadrature, tol 1e-20" if density.moments == "quadrature" else ""
    wrong_fisher = (("finite Fisher information (2) claimed", 2) if density.fisher_information is sp.oo
                    else ("Fisher information doubled", 2 * density.fisher_information))
    return Certificate(
        name=f"{density.name}_score",
        statement=f"{density.name}: int mu = 1, s = -(log mu)' a.e., E[s] = 0, E[s^2] = {fisher}; "
                  f"d/dx E f(x + gamma eps) = E[f(x + gamma eps) s(eps)]/gamma for {tests} and f = 1[. >= 0]; "
                  f"CDF and quantile{moments}",
        claim=_claim(density),
        steps=(_normalised, _score_is_log_derivative, _boundary_terms, _score_mean_zero, _fisher,
               _test_functions, _step_function, _cdf, _quantile),
        mutants=(
            ("score with the wrong sign", _claim(density, score=-density.score)),
            ("estimator without the factor 1/gamma", _claim(density, scale=sp.Integer(1))),
            (wrong_fisher[0], _claim(density, fisher=wrong_fisher[1])),
        ),
    )


SCORE_CERTIFICATES = {name: _certificate(density) for name, density in DENSITIES.items()}
CERTIFICATES = tuple(SCORE_CERTIFICATES.values())

__all__ = ["CERTIFICATES", "DENSITIES", "SCORE_CERTIFICATES", "Chart", "Density", "epsilon", "gamma", "u"]

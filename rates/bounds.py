"""Bounds as objects that carry their theorem.

A `Theorem` is a certificate of `proofs_check` together with the conditions under which
it applies, each a sympy relation between named constants, evaluated on the numbers of a
run: `theorem.conditions_at(alpha=…, L=…)` says which hold, and `theorem.require(…)` raises
`ConditionError` naming every violated one. A `Bound` is a theorem whose claim is an
inequality `quantity ≤ expression`: it also evaluates that very sympy expression (the one
the certificate verifies), and knows its asymptotic `Rate` and whether that rate is claimed
*tight* (attained, and tested as an equality of slopes) or only an *upper bound* (tested
one-sidedly: the measurement must fall at least as fast). Constants are never claimed
tight: how loose a bound is, is measured and reported, not assumed.

The bounds here:

- full-batch gradient descent: `GD_ITERATE`, `GD_JACOBIAN` (`proofs_check.gradient_descent`);
- minibatch SGD, constant and decreasing steps (`proofs_check.sgd`, `docs/theory.md`):
  `SGD_CONSTANT_ITERATE`, `SGD_CONSTANT_JACOBIAN`, `SGD_DECREASING_ITERATE`,
  `SGD_DECREASING_JACOBIAN`, `SGD_DECREASING_JACOBIAN_LOG`; `sgd_bounds` picks and evaluates
  those that apply to a schedule;
- the variance of the sigmoid-smoothed estimator at nesting depth ℓ, `O(η^(−ℓ))` as η → 0:
  `SMOOTHED_VARIANCE` (`proofs_check.smoothing`, certificate `nested_if_variance`);
- the conditions on DSGD's schedules `γ_k = c k^(−a)`, `η_k = η₀ k^(−r)`:
  `DSGD_SCHEDULE` (certificate `dsgd_schedule`), a theorem without a bound.
"""

from __future__ import annotations

import dataclasses
import enum
import fractions
import functools
import numbers
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import sympy as sp

from derivatives.schedules import Constant, PolynomialDecay
from proofs_check import Certificate, gradient_descent, sgd
from proofs_check import smoothing as smoothing_certificates

# Conditions `x ≤ y` on floating-point constants hold up to this relative rounding: a step
# computed as a/k0 with k0 = 2aL lands on 1/(2L) only up to the last bit.
ROUNDING = 1e-12


# --- conditions ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Condition:
    """One hypothesis of a theorem, evaluated on the constants of a run."""

    name: str
    statement: str      # the relation, in the notation of the certificate, e.g. "alpha <= 1/(2*L)"
    holds: bool
    detail: str         # both sides in numbers, e.g. "alpha = 0.01, 1/(2*L) = 0.005"

    def __str__(self) -> str:
        return f"{self.name}: {self.statement} ({self.detail}){'' if self.holds else ' FAILS'}"


class ConditionError(ValueError):
    """A theorem was applied where one of its conditions fails."""

    def __init__(self, theorem: str, failed: tuple[Condition, ...]):
        self.theorem = theorem
        self.failed = failed
        listed = "; ".join(f"{c.name}: needs {c.statement}, got {c.detail}" for c in failed)
        super().__init__(f"{theorem} does not apply: {listed}")


def _number(value, exact: bool, name: str):
    if exact:
        return _rational(value, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray | np.generic):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not np.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return sp.Float(float(value), 17)


def _rational(value, name: str) -> sp.Rational:
    """An exact rational: ints, `Fraction`s and strings as they are, floats by their
    shortest decimal representation (0.9 is 9/10, not the nearest binary fraction)."""
    if isinstance(value, sp.Basic) and value.is_Rational:
        return sp.Rational(value)
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise TypeError(f"{name} must be a real number (int, Fraction, float or str), got {value!r}")
    try:
        if isinstance(value, numbers.Rational):
            exact = fractions.Fraction(int(value.numerator), int(value.denominator))
        elif isinstance(value, str):
            exact = fractions.Fraction(value)
        else:
            exact = fractions.Fraction(repr(float(value)))
    except (ValueError, ZeroDivisionError, OverflowError) as error:
        raise ValueError(f"{name} must be a finite number, got {value!r}") from error
    return sp.Rational(exact.numerator, exact.denominator)


def _decide(relation: sp.Basic, point: Mapping[sp.Symbol, sp.Expr], exact: bool) -> tuple[bool, str]:
    """Whether `relation` holds at `point`, and both sides in numbers."""
    lhs, rhs = (sp.sympify(side).subs(point) for side in (relation.lhs, relation.rhs))
    detail = ", ".join(f"{side} = {_shown(value)}" for side, value in ((relation.lhs, lhs), (relation.rhs, rhs))
                       if sp.sympify(side).free_symbols)
    if exact:
        return bool(relation.func(lhs, rhs)), detail
    lhs, rhs = float(lhs), float(rhs)
    slack = ROUNDING * max(abs(lhs), abs(rhs))
    if isinstance(relation, sp.LessThan):
        return lhs <= rhs + slack, detail
    if isinstance(relation, sp.GreaterThan):
        return lhs >= rhs - slack, detail
    return bool(relation.func(sp.Float(lhs), sp.Float(rhs))), detail


def _shown(value) -> str:
    value = sp.sympify(value)
    return str(value) if value.is_Rational else f"{float(value):.6g}"


@dataclasses.dataclass(frozen=True)
class Theorem:
    """A certificate and the conditions under which its claim holds.

    **Fields:**

    - `certificate`: the `proofs_check.Certificate` whose claim this is.
    - `conditions`: `name -> sympy relation` between named constants (`alpha <= 1/(2*L)`).
    - `exact`: decide the conditions in exact rational arithmetic (exponents of a
      schedule, where `2a − rℓ > 1` must not be decided by rounding); otherwise in floats,
      non-strict relations holding up to a relative `ROUNDING`.
    - `assumptions`: hypotheses that no number of a run can decide (every per-sample loss
      convex, …), stated so that a report can repeat them.
    """

    certificate: Certificate
    conditions: Mapping[str, sp.Basic] = dataclasses.field(default_factory=dict, kw_only=True)
    exact: bool = dataclasses.field(default=False, kw_only=True)
    assumptions: tuple[str, ...] = dataclasses.field(default=(), kw_only=True)

    @property
    def name(self) -> str:
        return self.certificate.name

    @property
    def statement(self) -> str:
        return self.certificate.statement

    @property
    def condition_arguments(self) -> tuple[str, ...]:
        symbols = set().union(*(relation.free_symbols for relation in self.conditions.values()))
        return tuple(sorted(str(symbol) for symbol in symbols))

    def conditions_at(self, **values) -> tuple[Condition, ...]:
        """Every condition, evaluated at `values` (the names of `condition_arguments`;
        extra names are ignored, so one dictionary of constants serves every theorem)."""
        missing = set(self.condition_arguments) - set(values)
        if missing:
            raise TypeError(f"the conditions of {self.name} need {sorted(missing)}")
        numbers_ = {name: _number(values[name], self.exact, name) for name in self.condition_arguments}
        found = []
        for name, relation in self.conditions.items():
            holds, detail = _decide(relation, {s: numbers_[str(s)] for s in relation.free_symbols}, self.exact)
            found.append(Condition(name, str(relation), holds, detail))
        return tuple(found)

    def require(self, **values) -> tuple[Condition, ...]:
        """`conditions_at(**values)`, raising `ConditionError` if any fails."""
        conditions = self.conditions_at(**values)
        failed = tuple(c for c in conditions if not c.holds)
        if failed:
            raise ConditionError(self.name, failed)
        return conditions


# --- rates -------------------------------------------------------------------------------

class RateKind(enum.Enum):
    POWER = "power"              # variable^power · log(variable)^log_power
    PLATEAU = "plateau"          # a level that does not change (a noise ball, a floor)
    EXPONENTIAL = "exponential"  # falls geometrically: a fixed factor per step


@dataclasses.dataclass(frozen=True)
class Rate:
    """How a bound behaves in the limit of its variable: `k → ∞` for errors against the
    step count, `η → 0` for variances against the accuracy coefficient.

    `tight`: the rate is attained (a measurement is tested for the same log–log slope);
    otherwise it is an upper bound (a measurement must fall at least as fast as it as
    `k → ∞`, or grow no faster as `η → 0`). `certificate` names the certificate of the
    rate where it is not the bound's own (the interpolation specialisations)."""

    kind: RateKind
    power: float = 0.0
    log_power: float = 0.0
    variable: str = "k"
    tight: bool = True
    certificate: str | None = None

    @property
    def slope(self) -> float | None:
        """The log–log slope that a measurement is compared with (`None`: exponential)."""
        return {RateKind.POWER: self.power, RateKind.PLATEAU: 0.0, RateKind.EXPONENTIAL: None}[self.kind]

    def describe(self) -> str:
        if self.kind is RateKind.PLATEAU:
            return "plateau"
        if self.kind is RateKind.EXPONENTIAL:
            return "exponential"
        v = self.variable
        power = f"{v}^({self.power:g})" if self.power != -1 else f"1/{v}"
        log = "" if self.log_power == 0 else f"·log({v})^{self.log_power:g}"
        return f"O({power}{log})"


# --- bounds ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Bound(Theorem):
    """A theorem `quantity ≤ expression`, evaluated numerically with `bound(**values)`.

    The keyword names of `bound(**values)` are the names of the sympy symbols in
    `expression`; missing or extra names raise, so a call cannot silently drop a
    constant. `rate(**constants)` is the asymptotic rate at those constants (a
    constant-step bound has a plateau, or falls exponentially when the gradient noise
    vanishes).
    """

    expression: sp.Expr
    quantity: str = dataclasses.field(default="", kw_only=True)
    # Constants -> the asymptotic rate there; a bound built without one claims nothing about its rate.
    rate_rule: Callable[[Mapping[str, float]], Rate] | None = dataclasses.field(default=None, kw_only=True)

    @property
    def arguments(self) -> tuple[str, ...]:
        return tuple(sorted(str(symbol) for symbol in self.expression.free_symbols))

    def __call__(self, **values: float | int | np.ndarray) -> np.ndarray:
        if set(values) != set(self.arguments):
            raise TypeError(f"{self.name} takes exactly {self.arguments}, got {tuple(sorted(values))}")
        symbols = sorted(self.expression.free_symbols, key=str)
        function = _lambdified(self.expression, tuple(symbols))
        return np.asarray(function(*(np.asarray(values[str(s)], dtype=np.float64) for s in symbols)))

    def evaluate(self, values: Mapping[str, float | np.ndarray]) -> np.ndarray:
        """`bound(**values)` with only the names the expression uses taken from `values`."""
        return self(**{name: values[name] for name in self.arguments})

    def rate(self, **values) -> Rate:
        """The asymptotic rate at these constants, and whether it is claimed tight
        (`Rate.tight`): the constants decide it, e.g. a constant-step bound's plateau is
        attained under gradient noise and becomes an exponential upper bound without."""
        if self.rate_rule is None:
            raise ValueError(f"{self.name}: this bound states no asymptotic rate")
        return self.rate_rule(values)


@functools.cache
def _lambdified(expression, symbols):
    return sp.lambdify(symbols, expression, modules="numpy")


def _fixed(rate: Rate) -> Callable[[Mapping[str, float]], Rate]:
    return lambda values: rate


L = sp.Symbol("L", positive=True)
_ASSUMED_CONVEX = ("every per-sample loss f_i(., theta) is convex with 0 <= Hessian <= L",)

GD_ITERATE = Bound(
    gradient_descent.GD_CONTRACTION, gradient_descent.ITERATE_BOUND,
    conditions={"step_positive": sp.Gt(gradient_descent.alpha, 0, evaluate=False),
                "step_at_most_inverse_smoothness": gradient_descent.alpha <= 1 / L},
    assumptions=("F(., theta) is mu-strongly convex and L-smooth",), quantity="‖x_k − x*‖",
    rate_rule=_fixed(Rate(RateKind.EXPONENTIAL, tight=False)),
)
GD_JACOBIAN = Bound(
    gradient_descent.JACOBIAN_RECURSION, gradient_descent.JACOBIAN_RECURSION.claim["bound"],
    conditions=GD_ITERATE.conditions, assumptions=GD_ITERATE.assumptions, quantity="‖J_k − J*‖_F",
    rate_rule=_fixed(Rate(RateKind.EXPONENTIAL, tight=False)),
)


def coupling(constants, jac_star_norm: float) -> float:
    """`M = L_H‖J*‖_F + L_C`: how fast the derivative recursion's fixed point moves with x.

    `‖(∇²ₓₓf(x) − ∇²ₓₓf(x*))J* + ∇²ₓθf(x) − ∇²ₓθf(x*)‖_F ≤ M‖x − x*‖` (docs/theory.md)."""
    return float(constants.hessian_lipschitz) * jac_star_norm + float(constants.cross_lipschitz)


def gradient_descent_bounds(constants, step_size: float, x0_error: float, jac0_error: float,
                            jac_star_norm: float, steps) -> Mapping[str, np.ndarray]:
    """`‖x_k − x*‖` and `‖J_k − J*‖_F` bounds for full-batch gradient descent with
    constant `step_size ≤ 1/L` (certificates `gd_contraction`, `gd_jacobian_linear_rate`).

    `q = 1 − αμ`, `M = L_H ‖J*‖_F + L_C` from `constants`; `x0_error = ‖x₀ − x*‖`,
    `jac0_error = ‖J₀ − J*‖_F`, `jac_star_norm = ‖J*‖_F`. Raises `ConditionError` (a
    `ValueError`) naming the violated condition on the step.
    """
    GD_ITERATE.require(alpha=step_size, L=float(constants.L))
    q = 1.0 - step_size * float(constants.mu)
    M = coupling(constants, jac_star_norm)
    steps = np.asarray(steps, dtype=np.float64)
    return {
        "iterate": GD_ITERATE(q=q, e_x0=x0_error, k=steps),
        "jacobian": GD_JACOBIAN(q=q, alpha=step_size, M=M, e_J0=jac0_error, e_x0=x0_error, k=steps),
    }


# --- minibatch SGD (proofs_check/sgd.py, docs/theory.md) ---------------------------------

_CONSTANT_STEP = {"step_at_most_half_inverse_smoothness": sgd.alpha <= 1 / (2 * L)}
_DECREASING_STEP = {"first_step_at_most_half_inverse_smoothness": sgd.a / sgd.k0 <= 1 / (2 * L),
                    "a_mu_above_one": sgd.a * sgd.mu > 1}


def _constant_iterate_rate(values) -> Rate:
    if float(values["sigma2"]) == 0.0:  # interpolation: the plateau 2ασ²/(μb) vanishes
        return Rate(RateKind.EXPONENTIAL, tight=False, certificate=sgd.INTERPOLATION.name)
    return Rate(RateKind.PLATEAU)


def _constant_jacobian_rate(values) -> Rate:
    if float(values["sigma2"]) == 0.0 and float(values["sigma2_jac"]) == 0.0:
        return Rate(RateKind.EXPONENTIAL, tight=False, certificate=sgd.INTERPOLATION.name)
    if float(values["sigma2"]) == 0.0:  # simple interpolation: the floor 8ασ_J²/(μb)
        return Rate(RateKind.PLATEAU, certificate=sgd.INTERPOLATION.name)
    return Rate(RateKind.PLATEAU)


SGD_CONSTANT_ITERATE = Bound(
    sgd.CONSTANT_STEP_ITERATES, sgd.bound_expression(sgd.CONSTANT_STEP_ITERATES),
    conditions=_CONSTANT_STEP, assumptions=_ASSUMED_CONVEX, quantity="E‖x_k − x*‖²",
    rate_rule=_constant_iterate_rate,
)
SGD_CONSTANT_JACOBIAN = Bound(
    sgd.CONSTANT_STEP_JACOBIAN, sgd.bound_expression(sgd.CONSTANT_STEP_JACOBIAN),
    conditions=_CONSTANT_STEP, assumptions=_ASSUMED_CONVEX, quantity="E‖J_k − J*‖²_F",
    rate_rule=_constant_jacobian_rate,
)
SGD_DECREASING_ITERATE = Bound(
    sgd.DECREASING_STEP_ITERATES, sgd.bound_expression(sgd.DECREASING_STEP_ITERATES),
    conditions=_DECREASING_STEP, assumptions=_ASSUMED_CONVEX, quantity="E‖x_k − x*‖²",
    rate_rule=_fixed(Rate(RateKind.POWER, power=-1.0)),
)
SGD_DECREASING_JACOBIAN = Bound(
    sgd.DECREASING_STEP_JACOBIAN, sgd.bound_expression(sgd.DECREASING_STEP_JACOBIAN),
    conditions=_DECREASING_STEP, assumptions=_ASSUMED_CONVEX, quantity="E‖J_k − J*‖²_F",
    rate_rule=_fixed(Rate(RateKind.POWER, power=-1.0)),
)
# The paper's rate: valid, but log(k)² above the O(1/k) one that the measurements attain.
SGD_DECREASING_JACOBIAN_LOG = Bound(
    sgd.DECREASING_STEP_JACOBIAN_LOG, sgd.bound_expression(sgd.DECREASING_STEP_JACOBIAN_LOG),
    conditions=_DECREASING_STEP, assumptions=_ASSUMED_CONVEX, quantity="E‖J_k − J*‖²_F",
    rate_rule=_fixed(Rate(RateKind.POWER, power=-1.0, log_power=2.0, tight=False)),
)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A bound evaluated at `steps` on the constants of one run: its values, its conditions
    (all holding) and the rate that applies to those constants."""

    bound: Bound
    steps: np.ndarray
    values: np.ndarray
    conditions: tuple[Condition, ...]
    rate: Rate

    @property
    def certificate(self) -> str:
        return self.bound.name

    @property
    def claim_certificates(self) -> tuple[str, ...]:
        """The certificates behind this evaluation: the bound's, and its rate's where distinct."""
        return (self.bound.name,) + ((self.rate.certificate,) if self.rate.certificate else ())


@dataclasses.dataclass(frozen=True)
class SGDBounds:
    """The certified bounds on `E‖x_k − x*‖²` and `E‖J_k − J*‖²_F` for one run.
    `jacobian_alternatives` holds further valid bounds (for decreasing steps, the
    `O(log(k)²/k)` one next to the `O(1/k)` one)."""

    iterate: Evaluation
    jacobian: Evaluation
    jacobian_alternatives: tuple[Evaluation, ...] = ()

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.iterate.conditions


class EstimatedConstantsWarning(UserWarning):
    """Bounds evaluated on estimated constants: the certificates' assumptions are not verified."""


def sgd_bounds(constants, schedule, *, batch_size: int, x0_error_sq: float, jac0_error_sq: float,
               jac_star_norm: float, steps) -> SGDBounds:
    """The certified bounds for minibatch SGD with a `rates` schedule.

    **Arguments:**

    - `constants`: `problem.constants(θ)` (μ, L, σ², σ_J², L_H, L_C).
    - `schedule`: `rates.constant(α)` (conditions: `α ≤ 1/(2L)`), or
      `rates.inverse_time(a, k0)` (conditions: `a/k0 ≤ 1/(2L)`, `aμ > 1`).
    - `batch_size`: b; `x0_error_sq = ‖x₀ − x*‖²`; `jac0_error_sq = ‖J₀ − J*‖²_F`;
      `jac_star_norm = ‖J*‖_F` (for `M = L_H‖J*‖_F + L_C`).
    - `steps`: where to evaluate.

    **Raises:** `ConditionError` (a `ValueError`) naming each violated condition;
    `ValueError` for a schedule no certificate covers.

    The bounds also assume every per-sample loss convex (`Theorem.assumptions`): true of
    every generator in `problems`; a user's `from_loss` problem must check it.

    **Warns:** `EstimatedConstantsWarning` when some constants are estimates
    (`constants.estimated`, e.g. `from_loss`'s local values near x*): the certificates assume
    the global constants, so the values returned are then not certified bounds.
    """
    estimated = tuple(getattr(constants, "estimated", ()))
    if estimated:
        warnings.warn(f"the constants {', '.join(estimated)} are estimates (local values near x*), not the global "
                      "constants the certificates assume: these bounds are not certified for this problem",
                      EstimatedConstantsWarning, stacklevel=2)
    values = dict(mu=float(constants.mu), L=float(constants.L), sigma2=float(constants.sigma2),
                  sigma2_jac=float(constants.sigma2_jac), b=float(batch_size),
                  M=coupling(constants, jac_star_norm), u0=x0_error_sq, v0=jac0_error_sq,
                  k=np.asarray(steps, dtype=np.float64))
    if isinstance(schedule, Constant):
        values["alpha"] = float(schedule.alpha)
        return SGDBounds(_evaluate(SGD_CONSTANT_ITERATE, values), _evaluate(SGD_CONSTANT_JACOBIAN, values))
    if isinstance(schedule, PolynomialDecay) and float(schedule.beta) == 1.0:
        values |= dict(a=float(schedule.a), k0=float(schedule.k0))
        iterate = _evaluate(SGD_DECREASING_ITERATE, values)
        values["C_u"] = decreasing_iterate_constant(values)
        return SGDBounds(iterate, _evaluate(SGD_DECREASING_JACOBIAN, values),
                         (_evaluate(SGD_DECREASING_JACOBIAN_LOG, values),))
    raise ValueError(f"no certified SGD bound for the schedule {schedule!r}; use rates.constant or rates.inverse_time")


def decreasing_iterate_constant(values: Mapping[str, float]) -> float:
    """`C_u = max(k0·u0, 2a²σ²/(b(aμ − 1)))`: the constant of `SGD_DECREASING_ITERATE`,
    `E‖x_k − x*‖² ≤ C_u/(k + k0)`, which the decreasing-step derivative bounds take."""
    return float(SGD_DECREASING_ITERATE.evaluate(dict(values) | {"k": 0.0})) * float(values["k0"])


def _evaluate(bound: Bound, values) -> Evaluation:
    conditions = bound.require(**values)
    return Evaluation(bound, values["k"], bound.evaluate(values), conditions, bound.rate(**values))


# --- the variance of sigmoid smoothing, and DSGD's schedules -------------------------------

_eta = smoothing_certificates.eta
_ell = smoothing_certificates.ell
SMOOTHED_VARIANCE = Bound(
    smoothing_certificates.NESTED_IF_VARIANCE,
    # t² = K/η, K = D²/(6√(2π)): the certified bound on E[(∂θ v_ℓ)²] as a function of η.
    smoothing_certificates.NESTED_BOUND.subs(smoothing_certificates.t, sp.sqrt(smoothing_certificates.K / _eta)),
    # Unevaluated: the symbols are declared positive and integer, the numbers of a run need not be.
    conditions={"accuracy_positive": sp.Gt(_eta, 0, evaluate=False),
                "depth_nonnegative": sp.Ge(_ell, 0, evaluate=False)},
    assumptions=("the guards are theta + eps_i + v_(i-1) with eps_i iid N(0, 1) and |a_i - b_i| <= D",),
    quantity="E[(∂θ v_ℓ)²]",
    # Θ(η^−ℓ) for the bound itself; a program's variance is only bounded by it.
    rate_rule=lambda values: Rate(RateKind.POWER, power=-float(values["ell"]), variable="eta", tight=False),
)

# The certified conditions take ℓ for a count; a number of a run is checked to be one.
_depth = sp.Symbol("ell")
DSGD_SCHEDULE = Theorem(
    smoothing_certificates.DSGD_SCHEDULE,
    conditions={"depth_is_a_count": sp.Eq(sp.floor(_depth), _depth),
                "depth_nonnegative": sp.Ge(_depth, 0, evaluate=False),
                **smoothing_certificates.DSGD_CONDITIONS},
    exact=True,
    assumptions=("the estimator's variance is O(eta^-l) at nesting depth l (SMOOTHED_VARIANCE)",
                 "the DSGD convergence theorem (Wagner, Khajwal & Ong, arXiv:2402.11752) and its hypotheses on the "
                 "smoothed objectives"),
)

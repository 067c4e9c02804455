"""A researcher's bound on SGD's error curves, and a search for a counterexample to it.

A `Claim` is data: a quantity (`iterate_error` E‖x_k − x*‖², `jacobian_error`
E‖J_k − J*‖²_F, `suboptimality` E[F(x_k) − F*]), a bound on it as a sympy expression in the
symbols of `SYMBOLS`, a schedule family and conditions (sympy relations over the same
symbols). It claims

    quantity(k) ≤ bound(k)   for every step k ≥ 0,

for minibatch SGD (batches of b samples drawn with replacement, x₀ = 0, J₀ = 0) on every
problem of a family, every θ, every batch size and every schedule of the family whose
constants satisfy the conditions.

`falsify` searches that space with hypothesis for a counterexample: it draws problems (the
generator, its size, conditioning, interpolation mode and data seed), θ, the batch size and
the schedule's parameters, keeps the draws that satisfy the conditions, and compares the
bound with the quantity at every step up to `num_steps`. On the quadratic family the
quantity is **exact** (`rates.exact_curves`, no statistical noise): a violation is a proof by
example, up to float64 rounding, which the comparison allows for explicitly
(`ROUNDING_ALLOWANCE`). On other families it is a Monte Carlo mean, and a violation needs a
one-sided z-test to reject at the Bonferroni level `false_alarm / (max_examples · C)` over
the C checkpoints of every example tried. The search steers towards tight cases with
`hypothesis.target` on the largest value ÷ bound of each example, and shrinks a violation to
the smallest example hypothesis can find.

`implied_by` is the symbolic side: a claim is implied by one of the toolkit's certified
bounds (`rates.bounds`, verified in `proofs_check.sgd`) when sympy shows that every condition
of the certificate follows from one of the claim's, and that the claim's bound is at least
the certificate's.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from hypothesis import HealthCheck, Phase, Verbosity, assume, given, settings, target
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from scipy import stats

import problems as problem_generators
from derivatives.schedules import Constant, constant, polynomial_decay
from proofs_check import sgd as sgd_symbols
from rates import bounds
from rates.curves import STATISTICS, checkpoints, error_curves
from rates.exact import exact_curves

QUANTITIES = STATISTICS  # ("iterate_error", "jacobian_error", "suboptimality")
SCHEDULES = ("constant", "inverse_time", "polynomial_decay")
FAMILIES = ("quadratic", "logistic")

# The symbols a bound and its conditions may use. The certified bounds use the same objects
# (positive, k a non-negative integer), so that sympy compares like with like.
_k, _alpha, _a, _k0 = sgd_symbols.k, sgd_symbols.alpha, sgd_symbols.a, sgd_symbols.k0
SYMBOLS: dict[str, sp.Symbol] = {
    "k": _k, "alpha": _alpha, "a": _a, "k0": _k0, "beta": sp.Symbol("beta", positive=True),
    "mu": sgd_symbols.mu, "L": bounds.L, "sigma2": sgd_symbols.sigma2, "sigma2_jac": sgd_symbols.sigma2_jac,
    "M": sgd_symbols.M, "b": sgd_symbols.b, "d": sp.Symbol("d", positive=True, integer=True),
    "p": sp.Symbol("p", positive=True, integer=True), "n": sp.Symbol("n", positive=True, integer=True),
    "u0": sgd_symbols.u0, "v0": sgd_symbols.v0, "C_u": sgd_symbols.C_u,
}
MEANINGS = {
    "k": "the step, 0, 1, …, num_steps",
    "alpha": "the step size at k: α for constant steps, a/(k + k0)^β for decreasing ones",
    "a": "the scale of a decreasing schedule a/(k + k0)^β",
    "k0": "the offset of a decreasing schedule",
    "beta": "the exponent of polynomial_decay (1 for inverse_time)",
    "mu": "μ, the strong convexity of F(·, θ)",
    "L": "the smoothness of every per-sample loss",
    "sigma2": "σ² = mean‖∇ₓfᵢ(x*)‖², the gradient noise at x*",
    "sigma2_jac": "σ_J² = mean‖∇²ₓₓfᵢ J* + ∇²ₓθfᵢ‖²_F, the Jacobian noise at x*",
    "M": "L_H‖J*‖_F + L_C, how fast the derivative's fixed point moves with x",
    "b": "the batch size",
    "d": "the dimension of x",
    "p": "the dimension of θ",
    "n": "the number of samples of the problem",
    "u0": "‖x₀ − x*‖² (x₀ = 0)",
    "v0": "‖J₀ − J*‖²_F (J₀ = 0)",
    "C_u": "max(k0·u0, 2a²σ²/(b(aμ − 1))), the constant of the certified decreasing-step iterate bound",
}
_SCHEDULE_SYMBOLS = {"constant": set(), "inverse_time": {"a", "k0"}, "polynomial_decay": {"a", "k0", "beta"}}
_DECREASING_ONLY = {"a", "k0", "beta", "C_u"}

# A violation counts where value > bound + ROUNDING_ALLOWANCE · max(|value|, |bound|). The exact
# recursion and the bound's float64 evaluation each round at ~1e-16 relative per operation:
# computed step by step and by matrix powers, the exact curves of weighted ridge agree to 3e-15
# relative over 3,000 steps (tests/test_claims.py asserts below 1e-12), far inside this allowance.
ROUNDING_ALLOWANCE = 1e-9

# The search space of the quadratic family: few shapes, so that each compiles once.
SAMPLES = 16
DIMENSIONS = (2, 3)
PARAM_DIMS = (1, 2)
BATCH_SIZES = (1, 2, 4, 8)
QUADRATIC_GENERATORS = ("least_squares", "ridge", "weighted_ridge", "quadratic")
MONTE_CARLO_SEEDS = 64


@dataclasses.dataclass(frozen=True)
class Claim:
    """`quantity(k) ≤ bound` for every k, under `conditions`, for SGD with a `schedule`.

    Build one with `claim(...)` (which parses strings and checks the symbols)."""

    quantity: str
    bound: sp.Expr
    schedule: str
    conditions: tuple[sp.Basic, ...] = ()

    def __str__(self) -> str:
        given_ = f" given {', '.join(map(str, self.conditions))}" if self.conditions else ""
        return f"{self.quantity} <= {self.bound} with {self.schedule} steps{given_}"


def claim(quantity: str, bound: str | sp.Expr, *, schedule: str, conditions: Iterable[str | sp.Basic] = (),
          where: Mapping[str, str | sp.Expr] | None = None) -> Claim:
    """A `Claim`, from strings that sympy parses or from sympy expressions.

    `where` names constants of the bound by expressions in `SYMBOLS`
    (`bound="C/(k + k0)", where={"C": "k0*u0"}`); they are substituted before anything else.

    **Raises:** `ValueError` naming an unknown quantity, schedule or symbol, a condition that is
    not a relation, or one that uses k, or the step α of a decreasing schedule.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    definitions = {name: _parse(value, f"the definition of {name}") for name, value in (where or {}).items()}
    clashes = set(definitions) & set(SYMBOLS)
    if clashes:
        raise ValueError(f"`where` cannot redefine the symbols {sorted(clashes)}")
    local = {name: sp.Symbol(name) for name in definitions}

    def parsed(text, what):
        expression = _parse(text, what, local)
        return expression.subs({local[name]: value for name, value in definitions.items()})

    bound_expression = parsed(bound, "the bound")
    if not isinstance(bound_expression, sp.Expr) or isinstance(bound_expression, sp.core.relational.Relational):
        raise ValueError(f"the bound must be an expression, got {bound!r}")
    _check_symbols(bound_expression, schedule, "the bound")
    relations = []
    for condition in conditions:
        relation = parsed(condition, f"the condition {condition!r}")
        if not isinstance(relation, sp.core.relational.Relational):
            raise ValueError(f"a condition must be a relation such as 'a*mu > 1', got {condition!r}")
        _check_symbols(relation, schedule, f"the condition {condition!r}")
        if _k in relation.free_symbols:
            raise ValueError(f"a condition holds for the whole run and cannot use k: {condition!r}")
        if schedule != "constant" and _alpha in relation.free_symbols:
            raise ValueError(f"with {schedule} steps α changes with k: state a condition on a, k0 "
                             f"(the first step is a/k0**beta), got {condition!r}")
        relations.append(relation)
    return Claim(quantity, bound_expression, schedule, tuple(relations))


def _parse(text, what: str, local: Mapping[str, sp.Symbol] | None = None) -> sp.Basic:
    if isinstance(text, sp.Basic):
        return text
    try:
        return sp.sympify(text, locals={**SYMBOLS, **(local or {})})
    except (sp.SympifyError, SyntaxError, TypeError) as error:
        raise ValueError(f"cannot parse {what}: {text!r} ({error})") from None


def _check_symbols(expression: sp.Basic, schedule: str, what: str) -> None:
    names = {str(symbol) for symbol in expression.free_symbols}
    unknown = names - set(SYMBOLS)
    if unknown:
        raise ValueError(f"{what} uses unknown symbols {sorted(unknown)}: use {sorted(SYMBOLS)}, or name a constant "
                         "with `where`")
    foreign = (names & _DECREASING_ONLY) - _SCHEDULE_SYMBOLS[schedule] - ({"C_u"} if schedule != "constant" else set())
    if foreign:
        raise ValueError(f"{what} uses {sorted(foreign)}, which {schedule} steps do not have")
    for symbol in expression.free_symbols:
        if str(symbol) in SYMBOLS and symbol != SYMBOLS[str(symbol)]:
            raise ValueError(f"{what} uses a symbol {symbol} with assumptions other than the toolkit's; "
                             "build expressions from rates.claims.SYMBOLS or from strings")


# --- the toolkit's own bounds, as claims ---------------------------------------------------

_CERTIFIED = (
    (bounds.SGD_CONSTANT_ITERATE, "iterate_error", "constant"),
    (bounds.SGD_CONSTANT_JACOBIAN, "jacobian_error", "constant"),
    (bounds.SGD_DECREASING_ITERATE, "iterate_error", "inverse_time"),
    (bounds.SGD_DECREASING_JACOBIAN, "jacobian_error", "inverse_time"),
    (bounds.SGD_DECREASING_JACOBIAN_LOG, "jacobian_error", "inverse_time"),
)


def certified_claims() -> dict[str, Claim]:
    """The certified SGD bounds of `rates.bounds` as claims, by certificate name."""
    return {bound.name: Claim(quantity, bound.expression, schedule, tuple(bound.conditions.values()))
            for bound, quantity, schedule in _CERTIFIED}


def implied_by(claim_: Claim) -> tuple[str, ...]:
    """The certificates that imply `claim_`, as far as sympy can show it.

    A certified bound `quantity ≤ B` under conditions `c₁, …` implies the claim
    `quantity ≤ B′` under conditions `g₁, …` (same quantity and schedule) when

    - every cᵢ follows from some gⱼ: written as `f ⋈ 0` and `g ⋈ 0`, sympy shows `f − g ≥ 0`
      or `f/g > 0` (a strict cᵢ needs a strict gⱼ, or `f − g > 0`);
    - `B′ ≥ B`: sympy shows `B′ − B ≥ 0`, or `B′/B − 1 ≥ 0` (the certificate gives
      `B ≥ quantity ≥ 0` under its conditions).

    Symbols are positive (k a non-negative integer), as in `proofs_check.sgd`; α is replaced
    by `a/(k + k0)` for `inverse_time` claims. The bounds are compared on the range the
    certificate's conditions allow, written so that sympy sees its signs (`_CERTIFIED_RANGES`):
    `α = 1/(μ(2 + s))`, s ≥ 0, under `α ≤ 1/(2L)` (μ ≤ L for every problem), so that
    `1 − αμ > 0`; `a = (1 + s)/μ`, s > 0, under `aμ > 1`. Not finding an implication proves
    nothing."""
    found = []
    claimed = claim_.bound.subs(_alpha, _a / (_k + _k0)) if claim_.schedule == "inverse_time" else claim_.bound
    for name, certified in certified_claims().items():
        if (certified.quantity, certified.schedule) != (claim_.quantity, claim_.schedule):
            continue
        if not all(any(_implies(given_, needed) for given_ in claim_.conditions) for needed in certified.conditions):
            continue
        ranged = _CERTIFIED_RANGES[certified.schedule]
        if _at_least(claimed, certified.bound) or _at_least(claimed.subs(ranged), certified.bound.subs(ranged)):
            found.append(name)
    return tuple(found)


# sympy's simplify takes seconds on the larger bounds (a comparison that fails tries it on
# every branch of a Max): it is tried only on expressions of at most this many operations.
SIMPLIFY_MAX_OPS = 30


def _nonnegative(expression: sp.Expr) -> bool:
    """Whether sympy shows `expression ≥ 0`: by the assumptions on the symbols, after
    cancelling, and (for small expressions) after simplifying."""
    for simpler in (lambda e: e, sp.cancel):
        if simpler(expression).is_nonnegative:
            return True
    return sp.count_ops(expression) <= SIMPLIFY_MAX_OPS and bool(sp.simplify(expression).is_nonnegative)


# Each certified schedule's range, parameterised by a sign-definite s.
_s_nonnegative, _s_positive = sp.Symbol("s", nonnegative=True), sp.Symbol("s", positive=True)
_CERTIFIED_RANGES = {"constant": {_alpha: 1 / (SYMBOLS["mu"] * (2 + _s_nonnegative))},
                     "inverse_time": {_a: (1 + _s_positive) / SYMBOLS["mu"]}}


def _normal(relation: sp.Basic) -> tuple[sp.Expr, bool] | None:
    """`relation` as `expression > 0` (strict) or `≥ 0`, or `None` for an (in)equality sympy
    cannot orient."""
    if isinstance(relation, sp.StrictGreaterThan | sp.GreaterThan):
        return relation.lhs - relation.rhs, isinstance(relation, sp.StrictGreaterThan)
    if isinstance(relation, sp.StrictLessThan | sp.LessThan):
        return relation.rhs - relation.lhs, isinstance(relation, sp.StrictLessThan)
    return None


def _implies(given_: sp.Basic, needed: sp.Basic) -> bool:
    given_form, needed_form = _normal(given_), _normal(needed)
    if given_form is None or needed_form is None:
        return False
    (g, g_strict), (f, f_strict) = given_form, needed_form
    difference = sp.simplify(f - g)
    if difference.is_positive or (difference.is_nonnegative and (g_strict or not f_strict)):
        return True
    return bool(sp.simplify(f / g).is_positive) and (g_strict or not f_strict)


def _at_least(claimed: sp.Expr, certified: sp.Expr) -> bool:
    """Whether sympy shows `claimed ≥ certified`. A `Max` or `Min` in `certified` equals one of
    its arguments at every point, so it suffices to show the inequality with each in its place."""
    for expression in (claimed - certified, claimed / certified - 1):
        if _nonnegative(expression):
            return True
    choice = next(iter(certified.atoms(sp.Max, sp.Min)), None)
    return choice is not None and all(_at_least(claimed, certified.subs(choice, argument))
                                      for argument in choice.args)


# --- where the search looks -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of the search: a problem (a generator of `problems` and its arguments), θ, a
    batch size, a schedule, and for Monte Carlo the key of the seeds."""

    generator: str
    arguments: tuple
    options: tuple[tuple[str, object], ...]
    theta: tuple[float, ...]
    batch_size: int
    schedule: tuple[tuple[str, float], ...]  # ("alpha", α) or ("a", a), ("k0", k0), ("beta", β)
    key: int | None = None

    @property
    def seed(self) -> int:
        """The data seed of the problem."""
        return int(dict(self.options)["seed"])

    def problem(self):
        return getattr(problem_generators, self.generator)(*self.arguments, **dict(self.options))

    def problem_source(self) -> str:
        listed = [repr(value) for value in self.arguments] + [f"{name}={value!r}" for name, value in self.options]
        return f"problems.{self.generator}({', '.join(listed)})"

    def step_size(self):
        values = dict(self.schedule)
        if "alpha" in values:
            return constant(values["alpha"])
        return polynomial_decay(values["a"], values["k0"], values["beta"])

    def schedule_source(self) -> str:
        values = dict(self.schedule)
        if "alpha" in values:
            return f"rates.constant({values['alpha']!r})"
        return f"rates.polynomial_decay({values['a']!r}, {values['k0']!r}, {values['beta']!r})"

    def describe(self) -> str:
        schedule = ", ".join(f"{name}={value:.6g}" for name, value in self.schedule)
        theta = ", ".join(f"{value:.6g}" for value in self.theta)
        return f"{self.problem_source()}, θ = ({theta}), b = {self.batch_size}, {schedule}"


@dataclasses.dataclass(frozen=True)
class Example:
    """The claim at one setting and one step k: `value` (the quantity), `bound`, the
    constants the bound was evaluated with, and `reproduce`, a line of Python (with
    `import jax, problems, rates`) whose value is `value`, up to rounding."""

    setting: Setting
    k: int
    value: float
    bound: float
    standard_error: float | None  # of a Monte Carlo value; None: exact
    constants: Mapping[str, float]
    reproduce: str

    @property
    def ratio(self) -> float:
        return _ratio(self.value, self.bound)

    @property
    def problem(self) -> str:
        return self.setting.problem_source()

    @property
    def seed(self) -> int:
        return self.setting.seed

    @property
    def theta(self) -> tuple[float, ...]:
        return self.setting.theta

    @property
    def schedule(self) -> dict[str, float]:
        return dict(self.setting.schedule)

    def __str__(self) -> str:
        se = "" if self.standard_error is None else f" ± {self.standard_error:.3g} (standard error)"
        return (f"{self.setting.describe()}\n  at k = {self.k}: value {self.value:.6g}{se}, bound {self.bound:.6g} "
                f"(ratio {self.ratio:.4g})\n  reproduce: {self.reproduce}")


def _ratio(value: float, bound: float) -> float:
    if bound > 0:
        return value / bound
    return math.inf if value > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class Falsification:
    """What `falsify` found.

    - `refuted`: a counterexample was found (`counterexample`, shrunk; `None` otherwise).
    - `max_ratio`, `max_ratio_at`: the largest value ÷ bound over every example and step tried,
      and where (how close to tight the bound came; above 1 only if refuted).
    - `implied_by`: the certificates that imply the claim symbolically (`implied_by`).
    - `method`: `"exact"` or `"monte carlo"` (with `false_alarm`, the probability of refuting a
      true claim); `examples`: settings tried that satisfied the conditions; `seconds`.
    """

    claim: Claim
    refuted: bool
    counterexample: Example | None
    max_ratio: float
    max_ratio_at: Example | None
    implied_by: tuple[str, ...]
    method: str
    false_alarm: float
    examples: int
    num_steps: int
    seconds: float

    def __str__(self) -> str:
        lines = [f"claim: {self.claim}",
                 f"verdict: {'REFUTED' if self.refuted else 'not refuted'} after {self.examples} settings "
                 f"({self.method} curves, k = 0 … {self.num_steps}"
                 + (f", false-alarm probability ≤ {self.false_alarm:g}" if self.method != "exact" else "")
                 + f", {self.seconds:.1f} s)"]
        if self.counterexample is not None:
            lines.append(f"counterexample: {self.counterexample}")
        if self.max_ratio_at is not None:
            lines.append(f"largest value/bound: {self.max_ratio:.4g} at {self.max_ratio_at.setting.describe()}, "
                         f"k = {self.max_ratio_at.k}")
        lines.append("implied by the certificates: " + (", ".join(self.implied_by) if self.implied_by else
                                                        "none that sympy could show"))
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class _Draw:
    """What hypothesis draws: a generator and its arguments, θ as factors of `theta0`, the
    batch size, and the schedule relative to the problem's constants (the first step f/L;
    aμ = r; β). `_resolve` turns it into a `Setting` (strategies must not compute: JAX's
    compilation touches the global random state, which hypothesis forbids while drawing)."""

    generator: str
    arguments: tuple
    options: tuple[tuple[str, object], ...]
    theta_factors: tuple[float, ...]
    batch_size: int
    first_step: float
    a_mu: float
    beta: float
    key: int | None


@st.composite
def _draws(draw, generators: tuple, schedule: str, monte_carlo: bool) -> tuple:
    """The fields of a `_Draw`. Hypothesis forbids touching the global random state while
    drawing, and a run-time type checker (beartype, in the tests) checks a random item of an
    annotated container with it: hence no item types here, and the dataclass is built by
    the test function."""
    generator = draw(st.sampled_from(tuple(generators)))
    seed = draw(st.integers(0, 2**16))
    d = draw(st.sampled_from(DIMENSIONS))
    if generator == "least_squares":
        p = draw(st.sampled_from(PARAM_DIMS))
        arguments = (SAMPLES, d, draw(st.sampled_from(problem_generators.INTERPOLATION_MODES)))
        options = {"param_dim": p, "conditioning": draw(st.sampled_from((1.0, 3.0, 10.0))), "seed": seed}
    elif generator in ("ridge", "weighted_ridge", "logistic"):
        p = d if generator == "weighted_ridge" else 1
        arguments = (SAMPLES, d)
        options = {"regularisation": draw(st.sampled_from((0.05, 0.3, 1.0))),
                   "conditioning": draw(st.sampled_from((1.0, 3.0, 10.0))), "seed": seed}
    else:
        p = draw(st.sampled_from(PARAM_DIMS))
        arguments = (d, p)
        options = {"mu": draw(st.sampled_from((0.05, 0.2))), "L": draw(st.sampled_from((1.0, 4.0))),
                   "n_samples": SAMPLES, "grad_noise": draw(st.sampled_from((0.0, 0.3))),
                   "jac_noise": draw(st.sampled_from((0.0, 0.3))), "hess_noise": draw(st.sampled_from((0.0, 0.5))),
                   "seed": seed}
    factors = tuple(draw(st.lists(st.sampled_from((1.0, 0.5, 2.0)), min_size=p, max_size=p)))
    return (generator, arguments, tuple(options.items()), factors, draw(st.sampled_from(BATCH_SIZES)),
            # log-uniform: every octave of the first step and of aμ is searched alike
            2.0 ** draw(st.floats(-6.0, 0.0)), 1.0 if schedule == "constant" else 2.0 ** draw(st.floats(-2.0, 2.0)),
            draw(st.floats(0.5, 1.0)) if schedule == "polynomial_decay" else 1.0,
            draw(st.integers(0, 2**16)) if monte_carlo else None)


def _resolve(drawn: _Draw, schedule: str):
    """The `Setting` of a draw, and its problem."""
    problem = getattr(problem_generators, drawn.generator)(*drawn.arguments, **dict(drawn.options))
    theta = tuple(float(value) * factor for value, factor in zip(problem.theta0, drawn.theta_factors))
    constants = problem.constants(jnp.asarray(theta))
    mu, L = float(constants.mu), float(constants.L)
    # Steps up to 1/L: every per-sample step x − α∇fᵢ(x) is then non-expansive.
    first_step = drawn.first_step / L
    if schedule == "constant":
        steps = (("alpha", first_step),)
    else:
        a = drawn.a_mu / mu
        steps = (("a", a), ("k0", (a / first_step) ** (1.0 / drawn.beta)), ("beta", drawn.beta))
    setting = Setting(drawn.generator, drawn.arguments, drawn.options, theta, drawn.batch_size, steps, key=drawn.key)
    return setting, problem


def _constants_of(setting: Setting, problem, steps: np.ndarray) -> dict[str, float | np.ndarray]:
    theta = jnp.asarray(setting.theta)
    constants = problem.constants(theta)
    jac_star = problem.solution_jacobian(theta)
    jac_star_norm = float(jnp.linalg.norm(jac_star))
    values = dict(mu=float(constants.mu), L=float(constants.L), sigma2=float(constants.sigma2),
                  sigma2_jac=float(constants.sigma2_jac), M=bounds.coupling(constants, jac_star_norm),
                  b=float(setting.batch_size), d=float(problem.dim), p=float(problem.param_dim),
                  n=float(problem.n_samples), u0=float(jnp.sum(problem.solution(theta) ** 2)),
                  v0=jac_star_norm**2)
    schedule = setting.step_size()
    values["alpha"] = np.asarray(jax.vmap(schedule)(jnp.asarray(steps)), dtype=np.float64)
    if not isinstance(schedule, Constant):
        values |= dict(a=float(schedule.a), k0=float(schedule.k0), beta=float(schedule.beta))
        with np.errstate(divide="ignore", invalid="ignore"):  # aμ = 1: C_u is infinite
            values["C_u"] = bounds.decreasing_iterate_constant(values)
    return values


def _conditions_hold(claim_: Claim, values: Mapping[str, float | np.ndarray]) -> bool:
    scalar = {name: value for name, value in values.items() if np.ndim(value) == 0}
    if claim_.schedule == "constant":
        scalar["alpha"] = float(np.asarray(values["alpha"])[0])
    for relation in claim_.conditions:
        point = {symbol: bounds._number(scalar[str(symbol)], False, str(symbol)) for symbol in relation.free_symbols}
        if not bounds._decide(relation, point, False)[0]:
            return False
    return True


def _bound_values(claim_: Claim, values: Mapping[str, float | np.ndarray], steps: np.ndarray) -> np.ndarray:
    symbols = tuple(sorted(claim_.bound.free_symbols, key=str))
    arguments = {**values, "k": steps.astype(np.float64)}
    function = bounds._lambdified(claim_.bound, symbols)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        result = function(*(np.asarray(arguments[str(symbol)], dtype=np.float64) for symbol in symbols))
    return np.broadcast_to(np.asarray(result, dtype=np.float64), steps.shape)


class _Refuted(Exception):
    def __init__(self, example: Example):
        super().__init__(str(example))
        self.example = example


def falsify(
    quantity: str,
    bound: str | sp.Expr,
    *,
    schedule: str,
    conditions: Iterable[str | sp.Basic] = (),
    where: Mapping[str, str | sp.Expr] | None = None,
    family: str = "quadratic",
    generators: Sequence[str] | None = None,
    max_examples: int = 100,
    num_steps: int = 5000,
    seed: int = 0,
    false_alarm: float = 0.01,
    num_seeds: int = MONTE_CARLO_SEEDS,
    progress: Callable[[str], None] | None = None,
) -> Falsification:
    """Search for a counterexample to `quantity(k) ≤ bound` (the module docstring).

    **Arguments:**

    - `quantity`, `bound`, `schedule`, `conditions`, `where`: the claim (`claim`); the
      symbols are those of `SYMBOLS` (`MEANINGS` says what each is).
    - `family`: `"quadratic"` (least squares in its three interpolation modes, ridge,
      weighted ridge and random finite-sum quadratics; exact curves), or `"logistic"`
      (Monte Carlo curves over `num_seeds` seeds, tested one-sidedly at `false_alarm`).
      `generators` restricts the quadratic family to some of `QUADRATIC_GENERATORS`.
    - `max_examples`: settings that satisfy the conditions, tried before giving up (the
      shrinking of a counterexample comes on top).
    - `num_steps`: the steps k = 0 … num_steps compared (exact: every one; Monte Carlo: 32
      log-spaced checkpoints).
    - `seed`: hypothesis's seed; the same seed gives the same search.
    - `progress`: called with a line when the search starts and ends.

    Every setting has x₀ = 0 and J₀ = 0; steps are at most 1/L at k = 0 (α = f/L,
    f ∈ [1/64, 1]; decreasing: aμ ∈ [¼, 4] and a/k0^β = f/L, β ∈ [½, 1] for
    `polynomial_decay`).

    **Returns:** a `Falsification`. **Raises:** `ValueError` for an ill-formed claim.
    """
    claim_ = claim(quantity, bound, schedule=schedule, conditions=conditions, where=where)
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if family == "logistic" and generators is not None:
        raise ValueError("generators restricts the quadratic family only")
    chosen = tuple(generators) if generators is not None else QUADRATIC_GENERATORS
    unknown = set(chosen) - set(QUADRATIC_GENERATORS)
    if unknown or not chosen:
        raise ValueError(f"generators must be a non-empty subset of {QUADRATIC_GENERATORS}, got {generators!r}")
    counts = (("max_examples", max_examples, 1), ("num_steps", num_steps, 1), ("num_seeds", num_seeds, 2))
    for name, value, low in counts:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0.0 < false_alarm < 1.0:
        raise ValueError(f"false_alarm must be in (0, 1), got {false_alarm!r}")
    exact = family == "quadratic"
    steps = np.arange(num_steps + 1) if exact else checkpoints(num_steps, 32)
    # One-sided z-test, Bonferroni over every checkpoint of every example the search may try.
    critical = None if exact else float(stats.norm.isf(false_alarm / (max_examples * len(steps))))
    implications = implied_by(claim_)
    seen = {"examples": 0, "best": None}
    started = time.perf_counter()
    if progress is not None:
        progress(f"searching for a counterexample to {claim_} ({max_examples} settings)")

    def run(drawn: tuple) -> None:
        setting, problem = _resolve(_Draw(*drawn), claim_.schedule)
        values = _constants_of(setting, problem, steps)
        assume(_conditions_hold(claim_, values))
        seen["examples"] += 1
        measured, errors = _measure(claim_.quantity, setting, problem, steps, exact, num_seeds)
        limits = _bound_values(claim_, values, steps)
        ratios = np.array([_ratio(v, limit) for v, limit in zip(measured, limits)])
        rounding = ROUNDING_ALLOWANCE * np.maximum(np.abs(measured), np.abs(limits))
        if exact:
            violated = measured - limits > rounding
        else:
            # The z-test, and beyond rounding: at k = 0 every seed has the same value, up to its last bit.
            violated = measured - limits > np.maximum(critical * errors, rounding)
        violated |= np.isnan(limits)  # a bound must be a number wherever its conditions hold

        def example(index: int) -> Example:
            scalars = {name: float(np.asarray(value).reshape(-1)[index if np.ndim(value) else 0])
                       for name, value in values.items()}
            return Example(setting, int(steps[index]), float(measured[index]), float(limits[index]),
                           None if exact else float(errors[index]), scalars,
                           _reproduce(claim_.quantity, setting, int(steps[index]), exact, num_seeds))

        # At k = 0 a bound that starts from u0 (or v0) is met with equality: tightness is measured after.
        later = np.where(np.isnan(ratios) | (steps == 0), -np.inf, ratios)
        tightest = int(np.argmax(later))
        best = seen["best"]
        if best is None or ratios[tightest] > best.ratio:
            seen["best"] = example(tightest)
        largest = float(ratios[tightest])
        target(min(largest, 1e6) if not math.isnan(largest) else 1e6, label="value / bound")
        if violated.any():
            raise _Refuted(example(int(np.argmax(violated))))

    search = settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                      phases=(Phase.generate, Phase.target, Phase.shrink), verbosity=Verbosity.quiet,
                      suppress_health_check=list(HealthCheck), report_multiple_bugs=False, print_blob=False)
    strategy = _draws(chosen if exact else ("logistic",), schedule, not exact)
    test = hypothesis_seed(seed)(search(given(strategy)(run)))
    counterexample = None
    try:
        test()
    except _Refuted as refuted:
        counterexample = refuted.example
    except Unsatisfiable:
        raise ValueError(f"no setting of the search satisfies the conditions {[str(c) for c in claim_.conditions]}; "
                         "see rates.falsify's docstring for the ranges searched") from None
    best = seen["best"]
    result = Falsification(claim_, counterexample is not None, counterexample,
                           best.ratio if best is not None else math.nan, best, implications,
                           "exact" if exact else "monte carlo", 0.0 if exact else false_alarm, seen["examples"],
                           num_steps, time.perf_counter() - started)
    if progress is not None:
        progress(f"{'refuted' if result.refuted else 'not refuted'} after {result.examples} settings "
                 f"({result.seconds:.1f} s)")
    return result


def evaluate(claim_: Claim, setting: Setting, *, num_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(steps, values, bound)`: the claim's quantity, exactly, and its bound at every step
    `0 … num_steps` of a setting of the quadratic family (a `counterexample.setting` or a
    `max_ratio_at.setting`), to plot one against the other."""
    problem = setting.problem()
    steps = np.arange(num_steps + 1)
    values = _constants_of(setting, problem, steps)
    measured, _ = _measure(claim_.quantity, setting, problem, steps, True, MONTE_CARLO_SEEDS)
    return steps, measured, _bound_values(claim_, values, steps)


def _measure(quantity: str, setting: Setting, problem, steps: np.ndarray, exact: bool, num_seeds: int,
             ) -> tuple[np.ndarray, np.ndarray | None]:
    theta = jnp.asarray(setting.theta)
    num_steps = int(steps[-1])
    if exact:
        try:
            curves = exact_curves(problem, theta, step_size=setting.step_size(), num_steps=num_steps,
                                  batch_size=setting.batch_size, every_step=True)
        except FloatingPointError:  # the moments diverged: the quantity is unbounded
            return np.full(steps.shape, np.inf), None
        return np.asarray(getattr(curves, quantity)), None
    curves = error_curves(problem, theta, step_size=setting.step_size(), num_steps=num_steps, num_seeds=num_seeds,
                          batch_size=setting.batch_size, key=jax.random.key(setting.key))
    return np.asarray(getattr(curves, quantity)), np.asarray(getattr(curves, f"{quantity}_se"))


def _reproduce(quantity: str, setting: Setting, k: int, exact: bool, num_seeds: int) -> str:
    """A line whose value is the quantity at step k (`import jax, problems, rates` first)."""
    common = (f"{setting.problem_source()}, jax.numpy.asarray({list(setting.theta)!r}), "
              f"step_size={setting.schedule_source()}, num_steps={k}, batch_size={setting.batch_size}")
    if exact:
        return f"rates.exact_curves({common}, num_checkpoints=2).{quantity}[-1]"
    return (f"rates.error_curves({common}, num_seeds={num_seeds}, key=jax.random.key({setting.key}), "
            f"num_checkpoints=2).{quantity}[-1]")

"""The regimes of the rate report: a problem, a step rule and a figure to appear in.

What a regime claims is not written here: it is read from the certified bounds that
apply to its run (`rates.bounds.sgd_bounds`), each an `Evaluation` carrying its
certificate, its conditions evaluated on the run's constants and its `Rate` (tight or
an upper bound), and it is judged by `rates.verdict.judge`. Figure 1 of the paper, on
`least_squares`:

- `constant`: constant step, no interpolation: both errors settle in a noise ball
  (a tight plateau) whose size is proportional to the step (checked by a sweep over
  step sizes, from 1/(2L) down);
- `decreasing`: `α_k = a/(k + k0)` with `aμ = 2`: iterates and derivatives `O(1/k)`,
  tight (certificates `sgd_decreasing_iterates`, `sgd_decreasing_jacobian`), and the
  paper's `O(log(k)²/k)`, an upper bound (`sgd_decreasing_jacobian_log`);
- `double_interpolation`: σ² = σ_J² = 0: both errors fall exponentially;
- `simple_interpolation`: σ² = 0 < σ_J²: iterates fall exponentially, derivatives stop
  at a floor proportional to the step.

The interpolation rates are those of the certificate `sgd_interpolation`, a
specialisation of the constant-step bounds that the bounds' rates name.

Figure 1's `constant` and `simple_interpolation` columns use `α = 1/(64L)`, not the
largest certified step `1/(2L)`: at `1/(2L)` the derivative noise ball of this problem
(0.12, measured) is as large as the initial error `‖J*‖²_F = 0.12`, so the column would
show no convergence at all. At `1/(64L)` both the noise ball and the floor sit about 30
times below the initial error. Every certified bound holds for any `α ≤ 1/(2L)`.

Then `ridge` and `logistic` with θ = λ, constant and decreasing steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction
from typing import Protocol, runtime_checkable

import problems
from derivatives.schedules import Constant, PolynomialDecay, constant, inverse_time
from experiments import hypergradients, phase
from experiments.hypergradients import HypergradientSettings
from experiments.phase import PhaseSettings

# α = FIGURE1_STEP_FRACTION/L in Figure 1's constant-step columns (module docstring).
FIGURE1_STEP_FRACTION = 1 / 64
SWEEP_FRACTIONS = (0.5, 0.25, 0.125, 0.0625)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Seeds and run lengths. Constant-step runs are counted at `α = 1/(2L)` and scaled
    for smaller steps (`ConstantStep.num_steps`). `phase`: the settings of the phase diagram
    of decreasing steps (`experiments.phase`), or `None` to leave it out of the report;
    `hypergradients`: the same for the hypergradient checks (`experiments.hypergradients`)."""

    num_seeds: int
    constant_steps: int
    decreasing_steps: int
    interpolation_steps: int
    num_checkpoints: int = 40
    seed: int = 0
    phase: PhaseSettings | None = None   # the phase diagram's settings; None: not run
    hypergradients: HypergradientSettings | None = None   # the hypergradient checks' settings; None: not run


QUICK = Settings(num_seeds=32, constant_steps=20_000, decreasing_steps=100_000, interpolation_steps=5_000,
                 phase=phase.QUICK, hypergradients=hypergradients.QUICK)
FULL = Settings(num_seeds=128, constant_steps=100_000, decreasing_steps=2_000_000, interpolation_steps=10_000,
                phase=phase.FULL, hypergradients=hypergradients.FULL)


def step_label(fraction: float) -> str:
    """`fraction/L` as a fraction of `1/L`, e.g. `1/(64L)`."""
    value = Fraction(fraction).limit_denominator(1 << 12)
    return f"{value.numerator}/({value.denominator}L)"


@runtime_checkable
class StepRule(Protocol):
    """How a regime picks its steps from the constants of its problem."""

    @property
    def fraction(self) -> float:
        """The largest step, as a fraction of `1/L` (it sets the float64 resolution)."""

    def schedule(self, constants) -> Constant | PolynomialDecay: ...

    def num_steps(self, settings: Settings, constants) -> int: ...

    def fit_window_start(self, constants, schedule) -> float:
        """The first step of the window the claims are tested on, past the transient."""

    def describe(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class ConstantStep:
    """`α = fraction/L`; the bounds need `fraction ≤ 1/2`."""

    fraction: float = 0.5

    def schedule(self, constants) -> Constant:
        return constant(self.fraction / float(constants.L))

    def num_steps(self, settings: Settings, constants) -> int:
        """`settings` count steps at `α = 1/(2L)`; a smaller step runs proportionally
        longer (`α·K` fixed), so that its plateau, floor or exponential fall lasts as many
        time constants `1/(αμ)` past the transient. Without gradient noise (σ² = 0) the
        errors fall exponentially or to a floor, and `interpolation_steps` suffice."""
        interpolating = float(constants.sigma2) == 0.0
        base = settings.interpolation_steps if interpolating else settings.constant_steps
        return round(base * 0.5 / self.fraction)

    def fit_window_start(self, constants, schedule) -> float:
        """`10/(αμ)`: the initial error has contracted by `e^−10` (iterates) or `e^−5`
        (derivatives, at the bound's rate `1 − αμ/2`)."""
        return 10.0 / (float(schedule.alpha) * float(constants.mu))

    def describe(self) -> str:
        return f"α = {step_label(self.fraction)}"


@dataclasses.dataclass(frozen=True)
class DecreasingStep:
    """`α_k = a/(k + k0)` with `aμ = a_mu` (the bounds need `aμ > 1`) and a first step
    `a/k0 = fraction/L` (they need `fraction ≤ 1/2`)."""

    a_mu: float = 2.0
    fraction: float = 0.5

    def schedule(self, constants) -> PolynomialDecay:
        a = self.a_mu / float(constants.mu)
        return inverse_time(a, a * float(constants.L) / self.fraction)

    def num_steps(self, settings: Settings, constants) -> int:
        return settings.decreasing_steps

    def fit_window_start(self, constants, schedule) -> float:
        """`10·k0`, where `α_k` has fallen tenfold."""
        return 10.0 * float(schedule.k0)

    def describe(self) -> str:
        return f"α_k = a/(k + k0), aμ = {self.a_mu:g}, a/k0 = {step_label(self.fraction)}"


@dataclasses.dataclass(frozen=True)
class FigureGroup:
    """Regimes drawn side by side in one figure, `file` (a PNG), under `title`."""

    file: str
    title: str


FIGURE1 = FigureGroup("figure1.png", "least squares: iterates and derivatives (the paper's Figure 1)")
RIDGE_LOGISTIC = FigureGroup("ridge_logistic.png", "ridge and logistic regression, θ = λ")


@dataclasses.dataclass(frozen=True)
class Regime:
    """A problem (built by `make_problem`, at its `theta0`), the rule of its steps, and
    the figure it is drawn in."""

    name: str
    make_problem: Callable[[], object]
    steps: StepRule
    group: FigureGroup

    def schedule(self, constants):
        return self.steps.schedule(constants)

    def describe_steps(self) -> str:
        """The step sizes in words, e.g. `α = 1/(64L)`."""
        return self.steps.describe()


def figure1_problem(interpolation: str):
    return lambda: problems.least_squares(100, 5, interpolation, param_dim=2, seed=0)


def _ridge():
    return problems.ridge(200, 10, seed=0)


def _logistic():
    return problems.logistic(200, 10, seed=0)


CONSTANT = Regime("constant", figure1_problem("none"), ConstantStep(FIGURE1_STEP_FRACTION), FIGURE1)
DECREASING = Regime("decreasing", figure1_problem("none"), DecreasingStep(), FIGURE1)
DOUBLE_INTERPOLATION = Regime("double_interpolation", figure1_problem("double"), ConstantStep(), FIGURE1)
SIMPLE_INTERPOLATION = Regime("simple_interpolation", figure1_problem("simple"),
                              ConstantStep(FIGURE1_STEP_FRACTION), FIGURE1)
REGIMES = (
    CONSTANT,
    DECREASING,
    DOUBLE_INTERPOLATION,
    SIMPLE_INTERPOLATION,
    Regime("ridge_constant", _ridge, ConstantStep(), RIDGE_LOGISTIC),
    Regime("ridge_decreasing", _ridge, DecreasingStep(), RIDGE_LOGISTIC),
    Regime("logistic_constant", _logistic, ConstantStep(), RIDGE_LOGISTIC),
    Regime("logistic_decreasing", _logistic, DecreasingStep(), RIDGE_LOGISTIC),
)
# The step-size sweep runs the `constant` problem at each of SWEEP_FRACTIONS.
SWEEP_REGIME = CONSTANT


def in_group(group: FigureGroup, regimes=REGIMES) -> tuple[Regime, ...]:
    """The regimes drawn in `group`, in order."""
    return tuple(regime for regime in regimes if regime.group == group)


def groups(regimes=REGIMES) -> tuple[FigureGroup, ...]:
    """The figure groups of `regimes`, in order of first appearance."""
    return tuple(dict.fromkeys(regime.group for regime in regimes))


def named(name: str, regimes=REGIMES) -> Regime:
    """The regime called `name`."""
    for regime in regimes:
        if regime.name == name:
            return regime
    raise ValueError(f"no regime named {name!r}; the regimes are {[r.name for r in regimes]}")

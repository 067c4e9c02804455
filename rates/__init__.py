"""How fast SGD iterates and their derivatives converge: schedules, curves, bounds, verdicts."""

from derivatives.schedules import (
    Constant,
    FromFunction,
    PolynomialDecay,
    Schedule,
    accuracy,
    as_schedule,
    constant,
    inverse_time,
    polynomial_decay,
)
from rates import bounds, claims, exact, fit, verdict
from rates.claims import falsify
from rates.curves import Curves, error_curves
from rates.exact import exact_curves
from rates.verdict import check

__all__ = [
    "Constant",
    "Curves",
    "FromFunction",
    "PolynomialDecay",
    "Schedule",
    "accuracy",
    "as_schedule",
    "bounds",
    "check",
    "claims",
    "constant",
    "error_curves",
    "exact",
    "exact_curves",
    "falsify",
    "fit",
    "inverse_time",
    "polynomial_decay",
    "verdict",
]

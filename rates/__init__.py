"""How fast SGD iterates and their derivatives converge: schedules, curves, bounds, verdicts."""

import jax

jax.config.update("jax_enable_x64", True)

from rates import bounds, fit, verdict  # noqa: E402
from rates.curves import Curves, error_curves  # noqa: E402
from rates.verdict import check  # noqa: E402
from rates.schedules import (  # noqa: E402
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

__all__ = [
    "Curves",
    "bounds",
    "error_curves",
    "fit",
    "verdict",
    "check",
    "Constant",
    "FromFunction",
    "PolynomialDecay",
    "Schedule",
    "accuracy",
    "as_schedule",
    "constant",
    "inverse_time",
    "polynomial_decay",
]

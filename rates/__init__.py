"""How fast SGD iterates and their derivatives converge: schedules, curves, bounds, verdicts."""

import jax

jax.config.update("jax_enable_x64", True)

from rates import bounds  # noqa: E402
from rates.schedules import (  # noqa: E402
    Constant,
    FromFunction,
    PolynomialDecay,
    Schedule,
    as_schedule,
    constant,
    inverse_time,
    polynomial_decay,
)

__all__ = [
    "bounds",
    "Constant",
    "FromFunction",
    "PolynomialDecay",
    "Schedule",
    "as_schedule",
    "constant",
    "inverse_time",
    "polynomial_decay",
]

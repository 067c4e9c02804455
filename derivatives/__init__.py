"""How a derivative is obtained: through unrolled SGD, by the implicit function theorem,
or by finite differences.

Through SGD, the method is an object (`ForwardMode`, `ReverseMode`, `ExplicitRecursion`,
`TangentRecursion`, `ClosedFormRecursion`; `derivatives.sgd` holds the step and the loop
they share) or its name in `MODES`, passed to `unrolled(..., mode=...)`. Hypergradients of
bilevel problems are `hypergradient(bilevel, θ, key, method=...)`, the methods in
`derivatives.hypergradients`.
"""

from derivatives import hypergradients, noises, schedules
from derivatives.estimators import (
    BOUNDARY_VARIANTS,
    ESTIMATORS,
    base_noise,
    estimate_gradient,
    gradient_samples,
)
from derivatives.finite_differences import central_difference_jacobian
from derivatives.hypergradients import hypergradient
from derivatives.implicit import implicit_jacobian
from derivatives.noises import SYMMETRIC_NOISES
from derivatives.sgd import (
    ClosedFormRecursion,
    DerivativeMethod,
    DivergenceError,
    ExplicitRecursion,
    ForwardMode,
    ReverseMode,
    StepSizeWarning,
    TangentRecursion,
)
from derivatives.smoothing import COVARIATES, NOISES, SAMPLINGS, smoothed_gradient
from derivatives.unrolled import MODES, unrolled

__all__ = [
    "BOUNDARY_VARIANTS",
    "COVARIATES",
    "ESTIMATORS",
    "MODES",
    "NOISES",
    "SAMPLINGS",
    "SYMMETRIC_NOISES",
    "ClosedFormRecursion",
    "DerivativeMethod",
    "DivergenceError",
    "ExplicitRecursion",
    "ForwardMode",
    "ReverseMode",
    "StepSizeWarning",
    "TangentRecursion",
    "base_noise",
    "central_difference_jacobian",
    "estimate_gradient",
    "gradient_samples",
    "hypergradient",
    "hypergradients",
    "implicit_jacobian",
    "noises",
    "schedules",
    "smoothed_gradient",
    "unrolled",
]

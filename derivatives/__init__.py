"""How a derivative is obtained: through unrolled SGD, by the implicit function theorem,
or by finite differences."""

from derivatives import schedules
from derivatives.sgd import DivergenceError, StepSizeWarning
from derivatives.estimators import (
    BOUNDARY_VARIANTS, ESTIMATORS, base_noise, estimate_gradient, gradient_samples,
)
from derivatives.finite_differences import central_difference_jacobian
from derivatives.implicit import implicit_jacobian
from derivatives.smoothing import COVARIATES, NOISES, SAMPLINGS, smoothed_gradient
from derivatives.unrolled import MODES, unrolled

__all__ = [
    "BOUNDARY_VARIANTS", "COVARIATES", "DivergenceError", "ESTIMATORS", "MODES", "NOISES", "SAMPLINGS",
    "StepSizeWarning", "base_noise", "schedules",
    "central_difference_jacobian", "estimate_gradient", "gradient_samples", "implicit_jacobian",
    "smoothed_gradient", "unrolled",
]

"""How a derivative is obtained: through unrolled SGD, by the implicit function theorem,
or by finite differences."""

import jax

jax.config.update("jax_enable_x64", True)

from derivatives.estimators import (  # noqa: E402
    BOUNDARY_VARIANTS, ESTIMATORS, base_noise, estimate_gradient, gradient_samples,
)
from derivatives.finite_differences import central_difference_jacobian  # noqa: E402
from derivatives.implicit import implicit_jacobian  # noqa: E402
from derivatives.smoothing import COVARIATES, NOISES, SAMPLINGS, smoothed_gradient  # noqa: E402
from derivatives.unrolled import MODES, unrolled  # noqa: E402

__all__ = [
    "BOUNDARY_VARIANTS", "COVARIATES", "ESTIMATORS", "MODES", "NOISES", "SAMPLINGS", "base_noise",
    "central_difference_jacobian", "estimate_gradient", "gradient_samples", "implicit_jacobian",
    "smoothed_gradient", "unrolled",
]

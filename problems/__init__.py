"""Parametric strongly convex problems with exact solutions, Jacobians and constants.

Every generator returns an object with the `Problem` interface: `dim`, `param_dim`,
`theta0`, `sample`, `loss`, `objective`, `solution`, `solution_jacobian`, `constants`.
Importing this package turns on float64 in JAX: rates are checked far below float32's
resolution.
"""

import jax

jax.config.update("jax_enable_x64", True)

from problems._base import Constants, FiniteSumProblem, Problem  # noqa: E402
from problems.blackbox import (  # noqa: E402
    heaviside_sum,
    rank,
    shortest_path,
    shortest_path_distances,
    shortest_path_task,
    sort_permutation,
    sorting_task,
    step,
)
from problems.from_loss import from_loss  # noqa: E402
from problems.least_squares import INTERPOLATION_MODES, least_squares  # noqa: E402
from problems.logistic import logistic  # noqa: E402
from problems.quadratic import quadratic  # noqa: E402
from problems.ridge import ridge, weighted_ridge  # noqa: E402
from problems import programs  # noqa: E402

__all__ = [
    "Constants",
    "FiniteSumProblem",
    "INTERPOLATION_MODES",
    "Problem",
    "from_loss",
    "heaviside_sum",
    "least_squares",
    "logistic",
    "programs",
    "quadratic",
    "rank",
    "ridge",
    "shortest_path",
    "shortest_path_distances",
    "shortest_path_task",
    "sort_permutation",
    "sorting_task",
    "step",
    "weighted_ridge",
]

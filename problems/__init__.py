"""Parametric strongly convex problems with exact solutions, Jacobians and constants.

Every generator returns an object with the `Problem` interface: `dim`, `param_dim`,
`theta0`, `sample`, `loss`, `objective`, `solution`, `solution_jacobian`, `constants`.
Everything computes in float64 (rates are checked far below float32's resolution); importing
the package changes no global state, so enable it first: `jax.config.update("jax_enable_x64", True)`.
"""

from problems import bilevel, programs
from problems._base import Constants, FiniteSumProblem, Problem, uniform_indices
from problems.blackbox import (
    heaviside_sum,
    rank,
    shortest_path,
    shortest_path_distances,
    shortest_path_task,
    sort_permutation,
    sorting_task,
    step,
)
from problems.from_loss import from_loss
from problems.least_squares import INTERPOLATION_MODES, least_squares
from problems.logistic import logistic
from problems.quadratic import quadratic
from problems.ridge import ridge, weighted_ridge

__all__ = [
    "INTERPOLATION_MODES",
    "Constants",
    "FiniteSumProblem",
    "Problem",
    "bilevel",
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
    "uniform_indices",
    "weighted_ridge",
]

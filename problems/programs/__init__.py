"""Non-differentiable probabilistic programs: an expression language with if-statements
(`expressions`), programs with a mean-field Gaussian variational family (`Program`), and
the benchmark models."""

from problems.programs import expressions
from problems.programs.expressions import ProgramError
from problems.programs.mixture1d import mixture1d, mixture1d_elbo, mixture1d_elbo_gradient
from problems.programs.program import MeanField, Program, softplus_inverse

__all__ = [
    "MeanField", "Program", "ProgramError", "expressions", "mixture1d", "mixture1d_elbo",
    "mixture1d_elbo_gradient", "softplus_inverse",
]

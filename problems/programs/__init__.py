"""Non-differentiable probabilistic programs: an expression language with if-statements
(`expressions`), programs with a mean-field Gaussian variational family (`Program`), and
the benchmark models."""

from problems.programs import expressions
from problems.programs.cheating import cheating
from problems.programs.expressions import ProgramError
from problems.programs.influenza import influenza
from problems.programs.mixture1d import mixture1d, mixture1d_elbo, mixture1d_elbo_gradient
from problems.programs.program import MeanField, Program, softplus_inverse
from problems.programs.temperature import temperature
from problems.programs.textmsg import textmsg
from problems.programs.walk import walk
from problems.programs.xornet import xornet

__all__ = [
    "MeanField", "Program", "ProgramError", "cheating", "expressions", "influenza", "mixture1d",
    "mixture1d_elbo", "mixture1d_elbo_gradient", "softplus_inverse", "temperature", "textmsg", "walk",
    "xornet",
]

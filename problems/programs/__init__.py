"""Non-differentiable probabilistic programs: an expression language with if-statements
(`expressions`), programs with a mean-field Gaussian variational family (`Program`), and
the benchmark models."""

from problems.programs import expressions
from problems.programs.chains import (
    CHAIN_KINDS,
    ChainMoments,
    chain_exponent,
    chain_limit_constant,
    chain_variance,
    chain_variances,
    guard_chain,
    noise_overlap,
    smoothed_chain,
)
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
    "CHAIN_KINDS", "ChainMoments", "MeanField", "Program", "ProgramError", "chain_exponent", "chain_limit_constant",
    "chain_variance", "chain_variances", "cheating", "expressions", "guard_chain", "influenza", "mixture1d",
    "mixture1d_elbo", "mixture1d_elbo_gradient", "noise_overlap", "smoothed_chain", "softplus_inverse",
    "temperature", "textmsg", "walk", "xornet",
]

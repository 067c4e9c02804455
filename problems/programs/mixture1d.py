"""The one-dimensional example of LYY18: a prior N(0, 1) on z and the observation x = 0
with likelihood N(x; 5, 1) where z ≥ 0, N(x; −2, 1) otherwise; q_θ = N(θ, 1).

Its ELBO has a closed form, so every gradient estimator can be checked exactly:

    ELBO(θ) = −(θ² + 1)/2 − ½log(2π) + Φ(θ)·ℓ₊ + (1 − Φ(θ))·ℓ₋ + ½log(2π) + ½,
    ELBO'(θ) = −θ + φ(θ)(ℓ₊ − ℓ₋),      ℓ± = log N(0; 5, 1), log N(0; −2, 1).

The second term of the gradient is the boundary term that reparameterisation misses.
"""

from __future__ import annotations

import math

import numpy as np
from jax.scipy import stats

from problems.programs import expressions as ex
from problems.programs.program import MeanField, Program

THEN_MEAN, ELSE_MEAN = 5.0, -2.0


def _log_likelihood(mean):
    return -0.5 * mean**2 - 0.5 * math.log(2 * math.pi)


def mixture1d(theta0: float = 0.0) -> Program:
    z = ex.latent(1)
    log_joint = ex.normal_logpdf(z[0], 0.0, 1.0) + ex.if_(
        z[0], ex.normal_logpdf(0.0, THEN_MEAN, 1.0), ex.normal_logpdf(0.0, ELSE_MEAN, 1.0))
    family = MeanField(1, mean_slots=np.array([0]), scale_slots=np.array([], dtype=np.int64),
                       fixed_mean=np.zeros(1), fixed_scale=np.ones(1))
    return Program("mixture1d", log_joint, family, np.array([theta0]))


def mixture1d_elbo(theta):
    """The exact ELBO of `mixture1d` at θ (shape (1,))."""
    t = theta[0]
    jump = stats.norm.cdf(t) * _log_likelihood(THEN_MEAN) + (1 - stats.norm.cdf(t)) * _log_likelihood(ELSE_MEAN)
    return -0.5 * (t**2 + 1) + jump + 0.5


def mixture1d_elbo_gradient(theta):
    """The exact `∇θ ELBO` of `mixture1d`, shape (1,)."""
    t = theta[0]
    return (-t + stats.norm.pdf(t) * (_log_likelihood(THEN_MEAN) - _log_likelihood(ELSE_MEAN)))[None]

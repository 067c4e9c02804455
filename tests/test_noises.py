"""`derivatives.noises` against the certified sympy densities of `proofs_check.densities`.

The references are the sympy expressions lambdified for mpmath and evaluated at 40
significant digits at the very floating-point arguments the JAX functions receive, so
the comparison measures the JAX functions' own error. Deterministic: no random draws.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy as sp

from derivatives import noises
from derivatives.noises import FINITE_MEAN_NOISES, NOISES, SYMMETRIC_NOISES
from proofs_check.densities import DENSITIES

DIGITS = 40
RTOL = 1e-12
# Next to a zero of F⁻¹ (the median; u = 1/e for the Gumbel density) a relative error is
# not meaningful: the argument u is itself rounded to 1.1e-16, which F⁻¹ maps to about
# 1/μ(0) · 1.1e-16 ≤ 4e-16 (μ(0) ≥ 1/π here).
QUANTILE_ATOL = 4e-16
EDGE = 2.0**-53                           # the smallest uniform the estimators use (and 1 − EDGE)

# Uniforms: log-spaced from the edge to ½ on each side (the tails), and a uniform grid.
_TAIL = np.geomspace(EDGE, 0.5, 160)
UNIFORMS = np.unique(np.concatenate([_TAIL, 1.0 - _TAIL, np.linspace(0.005, 0.995, 199)]))


def _reference(expression, symbol, points):
    function = sp.lambdify(symbol, expression, "mpmath")
    with mpmath.workdps(DIGITS):
        return np.array([float(function(mpmath.mpf(float(point)))) for point in points])


def _noise_points(name):
    """Noise values where the score is compared: ±10⁻⁸ … 40 (past every quantile's range
    but the Cauchy one), the quantiles of `UNIFORMS`, and Cauchy values out to 10¹⁵⁰;
    the triangular density only inside its support (−1, 1), where its score is defined."""
    magnitudes = np.geomspace(1e-8, 1e150 if name == "cauchy" else 40.0, 300)
    points = np.concatenate([-magnitudes, magnitudes, [0.0], np.asarray(noises.by_name(name).quantile(UNIFORMS))])
    return points[np.abs(points) < 1.0] if name == "triangular" else points


def _relative_errors(actual, expected, atol=0.0):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert np.all(np.isfinite(actual))
    return np.abs(actual - expected) / np.maximum(np.abs(expected), atol / RTOL if atol else np.finfo(float).tiny)


@pytest.mark.parametrize("name", NOISES)
def test_score_matches_the_certified_expression(name):
    """`s(ε)` at about 900 points (both tails included) within 1e-12 relative of the sympy
    score (0 where sympy's is 0: at ε = 0 for Laplace, triangular, and at 0 exactly)."""
    density = DENSITIES[name]
    points = _noise_points(name)
    expected = _reference(density.score, density.symbol, points)
    actual = noises.by_name(name).score(jnp.asarray(points))
    errors = _relative_errors(actual, expected)
    assert errors.max() <= RTOL, (name, points[np.argmax(errors)], float(errors.max()))


@pytest.mark.parametrize("name", NOISES)
def test_quantile_matches_the_certified_expression(name):
    """`F⁻¹(u)` at 519 uniforms from 2⁻⁵³ to 1 − 2⁻⁵³ within 1e-12 relative of the sympy
    quantile, or 4e-16 absolute next to its zero."""
    density = DENSITIES[name]
    expected = _reference(density.quantile, density.probability, UNIFORMS)
    actual = noises.by_name(name).quantile(jnp.asarray(UNIFORMS))
    errors = _relative_errors(actual, expected, QUANTILE_ATOL)
    assert errors.max() <= RTOL, (name, UNIFORMS[np.argmax(errors)], float(errors.max()))


def _symmetric_symbolically(name):
    density = DENSITIES[name]
    return sp.simplify(density.density.subs(density.symbol, -density.symbol) - density.density) == 0


@pytest.mark.parametrize("name", NOISES)
def test_properties_match_the_certified_density(name):
    """The symmetric flag is the symmetry of the sympy density; `finite_mean` is whether the
    certificate tests polynomials (it uses bounded test functions where `E|ε| = ∞`); the
    Fisher information is the certified one. The public tuples are read from the flags."""
    noise, density = noises.by_name(name), DENSITIES[name]
    assert noise.name == name
    assert noise.symmetric == _symmetric_symbolically(name)
    assert noise.finite_mean == (density.test_functions == "polynomial")
    assert noise.fisher_information == float(density.fisher_information)       # inf for triangular
    assert (name in SYMMETRIC_NOISES) == noise.symmetric
    assert (name in FINITE_MEAN_NOISES) == noise.finite_mean


def test_the_noises_are_those_certified():
    assert set(NOISES) == set(DENSITIES)
    assert SYMMETRIC_NOISES == tuple(name for name in NOISES if _symmetric_symbolically(name))
    with pytest.raises(ValueError, match=r"noise must be one of \('gaussian'"):
        noises.by_name("uniform")


def test_the_comparison_detects_a_wrong_score_quantile_and_flag():
    """Negative checks: the same comparisons reject the logistic score `tanh(ε)` (the scale
    halved), the Gumbel quantile of minima `log(−log(1 − u))`, a relative error of 1e-11,
    and the Gumbel density declared symmetric."""
    logistic, gumbel = DENSITIES["logistic"], DENSITIES["gumbel"]
    points = _noise_points("logistic")
    errors = _relative_errors(jnp.tanh(jnp.asarray(points)), _reference(logistic.score, logistic.symbol, points))
    assert errors.max() > RTOL
    expected = _reference(gumbel.quantile, gumbel.probability, UNIFORMS)
    minima = jnp.log(-jnp.log1p(-jnp.asarray(UNIFORMS)))
    assert _relative_errors(minima, expected, QUANTILE_ATOL).max() > RTOL
    perturbed = noises.by_name("gumbel").quantile(jnp.asarray(UNIFORMS)) * (1 + 1e-11)
    assert _relative_errors(perturbed, expected, QUANTILE_ATOL).max() > RTOL
    wrong = dataclasses.replace(noises.by_name("gumbel"), symmetric=True)
    assert wrong.symmetric != _symmetric_symbolically("gumbel")

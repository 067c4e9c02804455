"""The chain programs of `problems.programs.chains` and their exact smoothed-gradient variance.

- The programs: nesting depth, arguments, and log p under smoothing (value and z₁-derivative)
  against the closed-form NumPy chain `smoothed_chain`, which pins the quadrature reference
  to the expression evaluator.
- The reference against a second quadrature: adaptive `scipy.integrate.quad` (aligned,
  separated) and a nested trapezoidal rule evaluated at its nodes, without interpolation
  (independent). Achieved: below 1e-13 relative; asserted: 1e-12.
- Monte Carlo: `derivatives.gradient_samples(…, "smoothed", …)` against `chain_variance`.
  Each comparison is a z-score, `(sample statistic − exact)/SE`; for the variance the
  standard error is the delta-method one of the sample variance, `sqrt(Var((G − Ḡ)²)/n)`,
  for the mean `sqrt(Var G/n)`. With n = 200 000 samples (relative standard errors of the
  variance 0.2% to 4%) the normal approximation applies; a true claim fails `|z| ≤ 4.5`
  with probability `2Φ(−4.5) = 6.8e-6`, and the file makes 36 such comparisons, so a false
  failure has probability below 2.5e-4 (the keys are fixed: a run is deterministic).
  Negative check: the same samples reject the variance of a weight 5% too large and of an
  η 10% too large.
- The asymptotics: `η^s Var → chain_limit_constant`, with an error that shrinks as η does,
  and local log–log slopes `−chain_exponent` (−1 for the separated chains whatever their
  depth).
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import derivatives
from problems.programs import chains

Z = 4.5                    # false failure 6.8e-6 per comparison
NUM_SAMPLES = 200_000
WEIGHT, THETA = 2.0, 0.3   # v_ℓ' carries most of the variance; θ ≠ 0 breaks the symmetry of the aligned chain
MONTE_CARLO_ETAS = {"aligned": (0.1, 0.05), "separated": (0.1, 0.05), "independent": (0.2, 0.1)}
DEPTHS = (1, 2, 3)
CASES = list(itertools.product(chains.CHAIN_KINDS, DEPTHS))


def _ids(cases):
    return [f"{kind}{depth}" for kind, depth in cases]


# --- the programs ---------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "depth"), CASES, ids=_ids(CASES))
def test_programs_have_the_nesting_depth_of_their_chain(kind, depth):
    program = chains.guard_chain(depth, kind, weight=WEIGHT, theta0=THETA)
    assert program.nesting_depth == depth
    assert program.num_ifs == depth
    assert program.name == f"chain{depth}_{kind}"
    assert program.num_params == 1 and program.theta0.tolist() == [THETA]
    assert program.dim == (depth if kind == "independent" else 1)
    assert program.family.variational.tolist() == [0]   # z₂ … z_ℓ are auxiliary
    assert chains.chain_exponent(depth, kind) == (1 if kind == "separated" else depth)


def test_arguments_are_checked():
    for depth in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="depth"):
            chains.guard_chain(depth)
        with pytest.raises(ValueError, match="depth"):
            chains.chain_variance(depth, 0.1)
    for call in (chains.guard_chain, chains.chain_exponent, chains.chain_limit_constant,
                 lambda d, k: chains.chain_variance(d, 0.1, k)):
        with pytest.raises(ValueError, match="kind"):
            call(2, "nested")
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError, match="weight"):
            chains.guard_chain(2, weight=bad)
        with pytest.raises(ValueError, match="theta0"):
            chains.guard_chain(2, theta0=bad)
        with pytest.raises(ValueError, match="theta"):
            chains.chain_variance(2, 0.1, theta=bad)
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="noise_scale"):
            chains.guard_chain(2, "independent", noise_scale=bad)
        with pytest.raises(ValueError, match="eta"):
            chains.chain_variance(2, bad)
    with pytest.raises(ValueError, match="etas"):
        chains.chain_variances(2, [[0.1, 0.2]])
    with pytest.raises(ValueError, match="z must have shape"):
        chains.smoothed_chain(3, np.zeros((4, 1)), 0.1, "independent")
    with pytest.raises(ValueError, match="noise_scale"):
        chains.chain_variance(2, 1.0, "independent", noise_scale=1e-5)


POINTS = (-0.4, -0.01, 0.03, 0.6, 0.98, 1.04, 2.02)   # near the spikes at 0, 1, 2 of the separated chains


@pytest.mark.parametrize(("kind", "depth"), CASES, ids=_ids(CASES))
def test_smoothed_log_p_matches_the_closed_form_chain(kind, depth):
    """`program.log_p(z, η)` and its z₁-derivative (JAX) equal `log N(z₁; 0, 1) + w v_ℓ`
    and `−z₁ + w ∂v_ℓ/∂z₁` of the NumPy chain to 1e-12 relative (the derivative relative to
    `|z₁| + |w ∂v_ℓ/∂z₁|`)."""
    program = chains.guard_chain(depth, kind, weight=WEIGHT)
    auxiliary = np.random.default_rng(depth).normal(size=(len(POINTS), depth - 1))
    z = np.column_stack([POINTS, auxiliary]) if kind == "independent" else np.array(POINTS)[:, None]
    log_p = jax.jit(jax.vmap(program.log_p, (0, None)))
    gradient = jax.jit(jax.vmap(jax.grad(program.log_p), (0, None)))
    for eta in (0.1, 0.05):
        value, derivative = chains.smoothed_chain(depth, z, eta, kind)
        prior = -0.5 * z[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
        np.testing.assert_allclose(np.asarray(log_p(jnp.asarray(z), eta)), prior + WEIGHT * value, rtol=1e-12)
        # relative to the size of the terms: the gradient −z₁ + w ∂v_ℓ may cancel
        error = np.asarray(gradient(jnp.asarray(z), eta))[:, 0] - (-z[:, 0] + WEIGHT * derivative)
        assert np.all(np.abs(error) <= 1e-12 * (np.abs(z[:, 0]) + np.abs(WEIGHT * derivative))), error
        # the points sample the spikes: the derivative of v_ℓ is not negligible at all of them
        assert np.max(np.abs(WEIGHT * derivative)) > 0.1


def test_depth_one_chains_coincide():
    moments = [chains.chain_variance(1, 0.07, kind, weight=WEIGHT, theta=THETA) for kind in chains.CHAIN_KINDS]
    for other in moments[1:]:
        np.testing.assert_allclose([other.mean, other.variance], [moments[0].mean, moments[0].variance], rtol=1e-13)
    assert moments[0].second_moment == pytest.approx(moments[0].variance + moments[0].mean ** 2, rel=1e-15)


# --- the reference against a second quadrature ---------------------------------------------

def _quad_moments(depth, eta, kind, theta):
    """`(M₁, M_ε, M₂)` by adaptive Gauss–Kronrod (`scipy.integrate.quad`) in z₁ over θ ± 40,
    split at each spike and at geometric offsets from it (relative tolerance 1e-13 per piece)."""
    if kind == "aligned":
        width = min(4.0 ** (t - 1) * eta**t for t in range(1, depth + 1))
        points = {0.0} | {sign * width * 2.0**j for sign in (-1, 1) for j in range(64) if width * 2.0**j < 3}
    else:
        points = {t + sign * eta * 2.0**j for t in range(depth) for sign in (-1, 0, 1) for j in range(-2, 8)}
    edges = [theta - 40.0] + sorted(p for p in points if abs(p - theta) < 40.0) + [theta + 40.0]

    def derivative(z):
        return float(chains.smoothed_chain(depth, np.array([z]), eta, kind)[1])

    def density(z):
        return math.exp(-0.5 * (z - theta) ** 2) / math.sqrt(2 * math.pi)

    integrands = (lambda z: density(z) * derivative(z), lambda z: density(z) * (z - theta) * derivative(z),
                  lambda z: density(z) * derivative(z) ** 2)
    return [sum(integrate.quad(f, a, b, epsabs=1e-16, epsrel=1e-13, limit=200)[0]
                for a, b in itertools.pairwise(edges)) for f in integrands]


def _trapezoid_moments(depth, eta, theta, noise_scale, step=0.4):
    """`(M₁, M_ε, M₂)` of the independent chain by nested trapezoidal rules in `u` (z = ηu at
    every link; step 0.4, |u| ≤ 46/k), each inner sum evaluated at the outer nodes: the
    error of the rule is of order `e^(−2π²/step)` (the integrands are analytic in the strip
    |Im u| < π) plus the truncation, `e^(−46)`."""
    moments = []
    for power in (1, 2):
        u = np.arange(-46.0 / power, 46.0 / power + step / 2, step)
        sigma_prime = np.exp(-np.abs(u)) / (1 + np.exp(-np.abs(u))) ** 2
        base = step * sigma_prime**power * eta ** (1 - power)
        centred = 0.5 * np.tanh(u / 2)   # v_t − ½ at v_t = σ(u)
        inner = np.ones_like(u)
        for _ in range(depth - 1):
            kernel = np.exp(-0.5 * ((eta * u[None, :] - centred[:, None]) / noise_scale) ** 2)
            inner = kernel @ (base * inner) / (noise_scale * math.sqrt(2 * math.pi))
        epsilon = eta * u - theta
        terms = base * inner * np.exp(-0.5 * epsilon**2) / math.sqrt(2 * math.pi)
        moments.append((terms.sum(), terms @ epsilon))
    return moments[0][0], moments[0][1], moments[1][0]


def _moments_from(first, first_epsilon, second, weight, theta):
    mean = -theta + weight * first
    variance = 1 - 2 * weight * first_epsilon + weight**2 * (second - first**2)
    return np.array([mean, variance + mean**2, variance])


QUADRATURE_CASES = [("aligned", 1, 1e-4), ("aligned", 2, 0.05), ("aligned", 3, 3e-3), ("aligned", 3, 0.3),
                    ("separated", 2, 1e-3), ("separated", 3, 0.05), ("independent", 2, 1e-3),
                    ("independent", 3, 0.01), ("independent", 3, 0.3)]


@pytest.mark.parametrize(("kind", "depth", "eta"), QUADRATURE_CASES,
                         ids=[f"{kind}{depth}-{eta}" for kind, depth, eta in QUADRATURE_CASES])
def test_reference_agrees_with_a_second_quadrature(kind, depth, eta):
    """Mean, second moment and variance to 1e-12 relative (achieved: below 1e-13)."""
    for theta, noise_scale in ((0.0, 1.0), (0.7, 0.5)):
        exact = chains.chain_variance(depth, eta, kind, weight=WEIGHT, theta=theta, noise_scale=noise_scale)
        if kind == "independent":
            raw = _trapezoid_moments(depth, eta, theta, noise_scale)
        else:
            raw = _quad_moments(depth, eta, kind, theta)
        second = _moments_from(*raw, WEIGHT, theta)
        np.testing.assert_allclose([exact.mean, exact.second_moment, exact.variance], second, rtol=1e-12)


def test_variances_over_a_grid_match_the_pointwise_ones():
    etas = np.geomspace(3e-3, 0.3, 12)
    for kind in chains.CHAIN_KINDS:
        grid = chains.chain_variances(3, etas, kind, weight=WEIGHT, theta=THETA)
        assert grid.shape == (12,)
        pointwise = [chains.chain_variance(3, float(eta), kind, weight=WEIGHT, theta=THETA).variance for eta in etas]
        np.testing.assert_array_equal(grid, pointwise)
    assert isinstance(chains.chain_variance(2, 0.1), chains.ChainMoments)


# --- Monte Carlo against the reference ------------------------------------------------------

def _z_scores(samples, mean, variance):
    """`(z of the mean, z of the variance)`; the variance's standard error by the delta method."""
    n = len(samples)
    squared = (samples - samples.mean()) ** 2
    return ((samples.mean() - mean) / math.sqrt(samples.var() / n),
            (squared.mean() - variance) / math.sqrt(squared.var() / n))


def _gradient_samples(program, eta, seed):
    return np.asarray(derivatives.gradient_samples(program, jnp.array([THETA]), jax.random.key(seed), "smoothed",
                                                   NUM_SAMPLES, eta))[:, 0]


@pytest.mark.parametrize(("kind", "depth"), CASES, ids=_ids(CASES))
def test_monte_carlo_matches_the_exact_moments(kind, depth):
    """Sample mean and variance of the smoothed estimator (n = 200 000, two η) within
    Z = 4.5 standard errors of `chains.chain_variance` (false failure 6.8e-6 each)."""
    program = chains.guard_chain(depth, kind, weight=WEIGHT)
    for seed, eta in enumerate(MONTE_CARLO_ETAS[kind]):
        samples = _gradient_samples(program, eta, 10 * depth + seed)
        exact = chains.chain_variance(depth, eta, kind, weight=WEIGHT, theta=THETA)
        z_mean, z_variance = _z_scores(samples, exact.mean, exact.variance)
        assert abs(z_mean) <= Z and abs(z_variance) <= Z, (kind, depth, eta, z_mean, z_variance)


@pytest.mark.parametrize(("kind", "depth", "eta"), [("aligned", 3, 0.1), ("separated", 3, 0.1),
                                                    ("independent", 2, 0.1)])
def test_monte_carlo_rejects_a_misstated_variance(kind, depth, eta):
    """Negative check: the samples of the test above reject the variance of the chain with
    its weight 5% too large, and at an η 10% too large (|z| from 5.9 to 25 with these keys;
    at depth 3 the independent chain's tails make the standard error 2%, too wide to
    resolve the 5% weight, so depth 2 stands for it)."""
    seed = 10 * depth + MONTE_CARLO_ETAS[kind].index(eta)
    samples = _gradient_samples(chains.guard_chain(depth, kind, weight=WEIGHT), eta, seed)
    for wrong in (chains.chain_variance(depth, eta, kind, weight=1.05 * WEIGHT, theta=THETA),
                  chains.chain_variance(depth, 1.1 * eta, kind, weight=WEIGHT, theta=THETA)):
        _, z_variance = _z_scores(samples, wrong.mean, wrong.variance)
        assert abs(z_variance) > Z, (kind, depth, z_variance)


# --- the asymptotics --------------------------------------------------------------------------

# Small η per chain, where the finite-η error of η^s Var is below 1e-3 (it is O(η) where the
# O(1) part of Var matters, depth 1 and separated; O(η²) otherwise).
SMALL_ETAS = {("aligned", 1): 1e-5, ("aligned", 2): 1e-3, ("aligned", 3): 3e-3,
              ("separated", 1): 1e-5, ("separated", 2): 1e-5, ("separated", 3): 1e-5,
              ("independent", 1): 1e-5, ("independent", 2): 1e-3, ("independent", 3): 3e-3}


def _local_slope(depth, eta, kind, factor=1.01):
    """`d log Var / d log η` by a central difference of the exact variance."""
    upper = chains.chain_variance(depth, eta * factor, kind).variance
    lower = chains.chain_variance(depth, eta / factor, kind).variance
    return math.log(upper / lower) / (2 * math.log(factor))


@pytest.mark.parametrize(("kind", "depth"), CASES, ids=_ids(CASES))
def test_variance_approaches_the_limit_constant_and_slope(kind, depth):
    """At the η of `SMALL_ETAS`: `η^s Var` within 2e-3 of `chains.chain_limit_constant`, and ten
    times closer at η/10 (at least five times: the error is O(η) or O(η²)); the local
    log–log slope within 2e-3 of `−chains.chain_exponent`."""
    eta, exponent = SMALL_ETAS[kind, depth], chains.chain_exponent(depth, kind)
    limit = chains.chain_limit_constant(depth, kind)
    errors = [abs(e**exponent * chains.chain_variance(depth, e, kind).variance / limit - 1) for e in (eta, eta / 10)]
    assert errors[0] <= 2e-3, errors
    assert errors[1] <= errors[0] / 5, errors
    assert abs(_local_slope(depth, eta, kind) + exponent) <= 2e-3


@pytest.mark.parametrize("depth", (2, 3))
def test_separated_chains_have_slope_minus_one_not_minus_depth(depth):
    """The point of the construction: nesting depth ℓ, variance Θ(1/η). Negative check: the
    aligned chain of the same depth has slope −ℓ at the same η, and η^ℓ Var of the
    separated chain vanishes instead of converging."""
    eta = 1e-4
    assert abs(_local_slope(depth, eta, "separated") + 1) <= 0.01
    assert abs(_local_slope(depth, eta, "aligned") + depth) <= 0.01
    separated = chains.chain_variance(depth, eta, "separated").variance
    assert eta**depth * separated < 1e-3 * chains.chain_limit_constant(depth, "separated")


def test_limit_constants_in_closed_form():
    """The formulas of the module docstring at a few arguments; `chains.noise_overlap` against
    quadrature, and its limits ¼ (no noise: the aligned factor) and 0 (s → ∞)."""
    phi = math.exp(-0.5 * 0.3**2) / math.sqrt(2 * math.pi)
    assert chains.chain_limit_constant(3, "aligned", weight=2.0, theta=0.3) == pytest.approx(4 * phi / 96, rel=1e-15)
    assert chains.chain_limit_constant(3, "separated", theta=2.3) == pytest.approx(phi / 6, rel=1e-15)
    for scale in (0.05, 0.5, 1.0, 3.0):
        overlap, _ = integrate.quad(lambda y, s=scale: (0.25 - y * y) * math.exp(-0.5 * (y / s) ** 2)
                                    / (s * math.sqrt(2 * math.pi)), -0.5, 0.5, epsabs=0, epsrel=1e-13)
        assert chains.noise_overlap(scale) == pytest.approx(overlap, rel=1e-12)
        assert chains.chain_limit_constant(3, "independent", weight=2.0, noise_scale=scale) == pytest.approx(
            4 * math.exp(0) / math.sqrt(2 * math.pi) * overlap**2 / 6, rel=1e-12)
    assert chains.noise_overlap(1e-4) == pytest.approx(0.25, rel=1e-6)
    assert chains.noise_overlap(1e4) < 1e-4

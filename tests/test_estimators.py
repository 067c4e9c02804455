"""The gradient estimators of `derivatives.estimators` on programs with exact ELBO gradients.

Statistical comparisons (`helpers.monte_carlo_agrees` at `Z = 4.5`) accept a claimed value
when it lies within 4.5 standard errors of a Monte Carlo mean: a true claim fails with
probability `2Φ(−4.5) = 6.8e-6` per component (the means are over ≥ 4000 i.i.d. samples,
so the normal approximation applies; `P(|t₃₉₉₉| > 4.5) = 7.0e-6`), and the file makes
fewer than 40 such comparisons, so a false failure has probability below 3e-4 (the keys
are fixed, so a run is deterministic). Each statistical test has a negative check: the
same comparison rejects a broken estimator or a wrong claim.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import monte_carlo_agrees
from hypothesis import given
from hypothesis import strategies as st
from jax import lax
from jax.scipy import stats as jstats
from scipy import integrate, special
from scipy import stats as sstats

import derivatives
from problems.programs import MeanField, Program, mixture1d, softplus_inverse
from problems.programs import expressions as ex
from problems.programs.mixture1d import ELSE_MEAN, THEN_MEAN, mixture1d_elbo_gradient

Z = 4.5            # false failure 6.8e-6 per component (7.0e-6 at n = 4000 by Student's t)
MIXTURE = mixture1d()
MIXTURE_THETAS = (-0.5, 0.0, 0.8)
JUMP = -0.5 * THEN_MEAN**2 + 0.5 * ELSE_MEAN**2  # log N(0; 5, 1) − log N(0; −2, 1) = −10.5


def _samples(program, theta, estimator, num_samples, seed, eta=None, boundary="sample"):
    return np.asarray(derivatives.gradient_samples(program, jnp.asarray(theta), jax.random.key(seed), estimator,
                                                   num_samples, eta, boundary=boundary))


class _FlippedJump(Program):
    """A program whose forced evaluation swaps the branches: the LYY18 jump with the wrong
    sign."""

    def log_p_forced(self, z, index, then):
        return super().log_p_forced(z, index, jnp.logical_not(then))


# --- mixture1d: the exact gradient ------------------------------------------------------

def _smoothed_mixture_gradient(theta, eta):
    """`∇θ E[f_η]` for mixture1d by quadrature: `−θ + Δ ∫ σ'(y) φ(ηy − θ) dy` (z = ηy;
    σ'(y) < e^(−60) beyond |y| = 60)."""
    value, _ = integrate.quad(lambda y: special.expit(y) * special.expit(-y) * sstats.norm.pdf(eta * y - theta),
                              -60.0, 60.0, points=[0.0], epsabs=1e-14, epsrel=1e-12, limit=200)
    return -theta + JUMP * value


MIXTURE_SIZES = {"score": 40_000, "lyy18": 4_000, "smoothed": 200_000, "reparam": 4_000}
SMALL_ETA = 1e-3


@pytest.mark.parametrize("theta", MIXTURE_THETAS)
def test_mixture1d_unbiased_estimators_match_the_exact_gradient(theta):
    """score, lyy18 (both variants) and smoothed at η = 1e-3 match `mixture1d_elbo_gradient`
    within Z = 4.5 standard errors (sample sizes `MIXTURE_SIZES`; false failure 6.8e-6
    each). The smoothing bias at η = 1e-3, computed by quadrature, is below 1% of a
    standard error, so it does not move the test. Negative checks: lyy18 with the jump's
    sign flipped, and lyy18 without its boundary term (= reparam), are rejected."""
    exact = float(mixture1d_elbo_gradient(jnp.array([theta]))[0])
    for estimator, boundary in (("score", "sample"), ("lyy18", "sample"), ("lyy18", "projected"),
                                ("smoothed", "sample")):
        samples = _samples(MIXTURE, [theta], estimator, MIXTURE_SIZES[estimator], 1, SMALL_ETA, boundary)
        agreement = monte_carlo_agrees(samples, [exact], Z)
        assert agreement, f"{estimator}/{boundary} at θ={theta}: {agreement}"
        if estimator == "smoothed":
            bias = _smoothed_mixture_gradient(theta, SMALL_ETA) - exact
            standard_error = agreement.standard_error[0]
            assert abs(bias) < 0.01 * standard_error, f"smoothing bias {bias:.2e}, standard error {standard_error:.2e}"

    flipped = _FlippedJump("mixture1d-flipped", MIXTURE.log_joint, MIXTURE.family, MIXTURE.theta0)
    agreement = monte_carlo_agrees(_samples(flipped, [theta], "lyy18", MIXTURE_SIZES["lyy18"], 1), [exact], Z)
    assert not agreement.ok.any(), f"lyy18 with the jump flipped was accepted: {agreement}"
    agreement = monte_carlo_agrees(_samples(MIXTURE, [theta], "reparam", MIXTURE_SIZES["lyy18"], 1), [exact], Z)
    assert not agreement.ok.any(), f"lyy18 without its boundary term was accepted: {agreement}"


@pytest.mark.parametrize("theta", MIXTURE_THETAS)
def test_mixture1d_reparam_is_biased(theta):
    """reparam misses the boundary term `φ(θ)Δ`: its mean is more than 20 standard errors
    from the exact gradient, and matches its own exact expectation `−θ` within Z = 4.5
    (n = 4000, false failure 6.8e-6). The first check is the negative check of the second
    (the same comparison rejects the exact ELBO gradient)."""
    samples = _samples(MIXTURE, [theta], "reparam", MIXTURE_SIZES["reparam"], 2)
    exact = float(mixture1d_elbo_gradient(jnp.array([theta]))[0])
    agreement = monte_carlo_agrees(samples, [-theta], Z)
    assert agreement, f"reparam at θ={theta}: {agreement} (−θ)"
    assert abs(agreement.mean[0] - exact) > 20 * agreement.standard_error[0], f"{agreement}: not far from {exact}"
    assert not monte_carlo_agrees(samples, [exact], Z).ok.any()


@pytest.mark.parametrize("theta", MIXTURE_THETAS)
def test_mixture1d_samples_in_closed_form(theta):
    """Deterministic identities on mixture1d (q = N(θ, 1), one if with guard z):
    reparam is `−(θ + ε)` with ε from `base_noise`, and lyy18 minus reparam with the same
    key is the boundary term `K·t_0 = Δ φ(θ)` (z* = 0, w = φ(θ), K = 1) for both variants."""
    key, n = jax.random.key(5), MIXTURE_SIZES["reparam"]
    epsilon = np.asarray(derivatives.base_noise(MIXTURE, key, n))
    reparam = np.asarray(derivatives.gradient_samples(MIXTURE, jnp.array([theta]), key, "reparam", n))
    np.testing.assert_allclose(reparam, -(theta + epsilon), rtol=0, atol=1e-12)
    for boundary in derivatives.BOUNDARY_VARIANTS:
        lyy18 = np.asarray(derivatives.gradient_samples(MIXTURE, jnp.array([theta]), key, "lyy18", n,
                                                        boundary=boundary))
        np.testing.assert_allclose(lyy18 - reparam, JUMP * sstats.norm.pdf(theta), rtol=0, atol=1e-12)


def test_smoothed_mean_converges_to_the_exact_gradient():
    """The smoothed estimator is unbiased for `∇θ E[f_η]` (computed by quadrature), and
    `∇θ E[f_η]` tends to the crisp gradient as η → 0 with bias `Δ φ''(θ) π² η²/6 + O(η⁴)`.

    At θ = 0.3 and η ∈ {0.4, 0.2, 0.1, 0.05}: the Monte Carlo mean of n = 200 000 samples
    matches the quadrature within Z = 4.5 standard errors (false failure 6.8e-6 each). The
    quadrature's bias shrinks monotonically, matches its second-order term to a relative
    4η² at η ≤ 0.1 (the fourth-order term is ≈ 3η² of it at θ = 0.3), and is below 1e-5 at
    η = 1e-3. Negative checks: at η = 0.4 and 0.2 the same
    comparison rejects the crisp gradient (the bias is real) and the smoothed gradient of
    η/2 (the comparison resolves η)."""
    theta = 0.3
    exact = float(mixture1d_elbo_gradient(jnp.array([theta]))[0])
    phi_second = (theta**2 - 1) * sstats.norm.pdf(theta)
    etas = (0.4, 0.2, 0.1, 0.05)
    biases = []
    for index, eta in enumerate(etas):
        smoothed = _smoothed_mixture_gradient(theta, eta)
        samples = _samples(MIXTURE, [theta], "smoothed", MIXTURE_SIZES["smoothed"], 10 + index, eta)
        agreement = monte_carlo_agrees(samples, [smoothed], Z)
        assert agreement, f"η={eta}: {agreement} (quadrature)"
        if eta >= 0.2:
            crisp = monte_carlo_agrees(samples, [exact], Z)
            assert not crisp.ok.any(), f"η={eta}: the smoothing bias was not resolved: {crisp}"
            assert not monte_carlo_agrees(samples, [_smoothed_mixture_gradient(theta, eta / 2)], Z).ok.any()
        biases.append(smoothed - exact)
        if eta <= 0.1:
            leading = JUMP * phi_second * math.pi**2 * eta**2 / 6
            assert abs(biases[-1] / leading - 1) < 4 * eta**2, f"η={eta}: bias {biases[-1]} vs {leading}"
    assert np.all(np.diff(np.abs(biases)) < 0), biases
    assert abs(_smoothed_mixture_gradient(theta, SMALL_ETA) - exact) < 1e-5


# --- score: the closed form -------------------------------------------------------------

def _score_program():
    """Three latents: z0 with a variational mean and scale, z1 with a variational mean and a
    fixed scale 0.7, z2 auxiliary (fixed N(0.5, 2), outside log p and log q)."""
    z = ex.latent(3)
    log_joint = (ex.normal_logpdf(z[0], 0.0, 1.0) + ex.normal_logpdf(z[1], 0.0, 1.0)
                 + ex.if_(z[0] * z[1] - 0.3, 1.5, -0.5) + ex.if_(z[1] - z[0], 0.0, 0.8))
    family = MeanField(3, np.array([0, 1]), np.array([0]), np.array([0.0, 0.0, 0.5]), np.array([1.0, 0.7, 2.0]))
    return Program("score-closed-form", log_joint, family, np.array([0.4, -0.3, 0.2]))


def test_score_equals_its_closed_form():
    """The jax.grad-based score estimate equals `(f − 1)·∇θ log q` with the spec's
    `∂m_i = ε_i/σ_i`, `∂ρ_i = (ε_i² − 1)s(ρ_i)/σ_i`, to 1e-10, on 64 samples of a program
    with a fixed-scale and an auxiliary coordinate (which have no ρ, resp. no θ, entries).
    Negative check: without the `− 1` (dropping `∇θ f|_z`) the same comparison fails."""
    program = _score_program()
    theta = jnp.array([0.4, -0.3, 0.2])
    key = jax.random.key(7)
    score = np.asarray(derivatives.gradient_samples(program, theta, key, "score", 64))
    epsilon = np.asarray(derivatives.base_noise(program, key, 64))
    sigma = np.array([np.logaddexp(0.0, 0.2), 0.7])
    z = np.asarray(theta[:2]) + sigma * epsilon[:, :2]
    z_full = np.concatenate([z, 0.5 + 2.0 * epsilon[:, 2:]], axis=1)
    log_p = np.asarray(jax.vmap(program.log_p)(jnp.asarray(z_full)))
    log_q = np.sum(-0.5 * epsilon[:, :2] ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi), axis=1)
    f = log_p - log_q
    grad_log_q = np.stack([epsilon[:, 0] / sigma[0], epsilon[:, 1] / sigma[1],
                           (epsilon[:, 0] ** 2 - 1) * special.expit(0.2) / sigma[0]], axis=1)
    np.testing.assert_allclose(score, (f - 1)[:, None] * grad_log_q, rtol=0, atol=1e-10)
    assert np.max(np.abs(score - f[:, None] * grad_log_q)) > 1e-3


# --- LYY18 on a two-coordinate affine guard ---------------------------------------------

PLANE_A, PLANE_C, PLANE_THEN, PLANE_ELSE = np.array([1.0, -0.7]), 0.8, 1.0, -2.0
AUX_MEAN, AUX_SCALE = 0.5, 1.5


@functools.cache
def _plane(case, cls=Program):
    """`log p = prior + if(a·z − c, 1, −2)` in two latents, solved for z1 (the default: the
    last coordinate in the guard). `"full"`: both coordinates variational, θ = (m0, m1,
    ρ0, ρ1), prior N(0, 1) on each. `"auxiliary"`: z1 auxiliary with fixed N(0.5, 1.5), so
    w uses that density; θ = (m0, ρ0)."""
    z = ex.latent(2)
    branch = ex.if_(PLANE_A[0] * z[0] + PLANE_A[1] * z[1] - PLANE_C, PLANE_THEN, PLANE_ELSE)
    if case == "full":
        log_joint = ex.normal_logpdf(z[0], 0.0, 1.0) + ex.normal_logpdf(z[1], 0.0, 1.0) + branch
        family = MeanField.full(2)
        theta = np.concatenate([[0.3, -0.2], softplus_inverse([0.8, 1.3])])
    else:
        log_joint = ex.normal_logpdf(z[0], 0.0, 1.0) + branch
        family = MeanField(2, np.array([0]), np.array([0]), np.array([0.0, AUX_MEAN]), np.array([1.0, AUX_SCALE]))
        theta = np.concatenate([[0.3], softplus_inverse([0.8])])
    return cls(f"plane-{case}", log_joint, family, theta)


def _plane_elbo(theta, case, with_if=True):
    """The exact ELBO: Gaussian prior and entropy terms, plus `B + (A − B)Φ((a·m − c)/s)`,
    `s² = Σ a_i² σ_i²` (the guard is Gaussian under q)."""
    if case == "full":
        m, sigma = theta[:2], jax.nn.softplus(theta[2:])
        m_var, sigma_var = m, sigma
    else:
        m, sigma = jnp.stack([theta[0], AUX_MEAN]), jnp.stack([jax.nn.softplus(theta[1]), AUX_SCALE])
        m_var, sigma_var = m[:1], sigma[:1]
    smooth = jnp.sum(-(m_var**2 + sigma_var**2) / 2 + jnp.log(sigma_var) + 0.5)
    if not with_if:
        return smooth
    probability = jstats.norm.cdf((jnp.dot(PLANE_A, m) - PLANE_C) / jnp.sqrt(jnp.sum(PLANE_A**2 * sigma**2)))
    return smooth + PLANE_ELSE + (PLANE_THEN - PLANE_ELSE) * probability


PLANE_SAMPLES = 20_000


@pytest.mark.parametrize("case", ["full", "auxiliary"])
def test_lyy18_boundary_term_on_a_plane(case):
    """lyy18 against the exact gradient of `_plane_elbo` (n = 20 000, Z = 4.5, false
    failure 6.8e-6 per component).

    - `"projected"`: every component matches.
    - `"sample"` (the default): the m components and `ρ0` (not the solved coordinate)
      match; in `"full"` the `ρ1` component (ρ_j, j = 1 solved) is biased as documented:
      its mean is that of reparam alone, `∂ρ1` of the ELBO without the if, and the exact
      value is rejected.
    - Negative check: with the jump's sign flipped the m components are rejected.
    """
    program = _plane(case)
    theta = jnp.asarray(program.theta0)
    exact = np.asarray(jax.grad(_plane_elbo)(theta, case))
    reparam_mean = np.asarray(jax.grad(_plane_elbo)(theta, case, False))
    num_means = len(program.family.mean_slots)
    solved = {"full": num_means + 1, "auxiliary": None}[case]  # the index of ρ_j in θ, if any

    projected = _samples(program, theta, "lyy18", PLANE_SAMPLES, 20, boundary="projected")
    agreement = monte_carlo_agrees(projected, exact, Z)
    assert agreement, f"projected: {agreement}"

    sample = _samples(program, theta, "lyy18", PLANE_SAMPLES, 21)
    agreement = monte_carlo_agrees(sample, exact, Z)
    unbiased = [i for i in range(program.num_params) if i != solved]
    assert agreement.ok[unbiased].all(), f"sample: {agreement}"
    if solved is not None:
        assert not agreement.ok[solved], f"the ρ_j bias was not resolved: {agreement.failures()}"
        biased = monte_carlo_agrees(sample[:, [solved]], reparam_mean[[solved]], Z)
        assert biased, f"ρ_j: {agreement.mean[solved]} vs the predicted biased mean {reparam_mean[solved]}"

    flipped = _samples(_plane(case, _FlippedJump), theta, "lyy18", PLANE_SAMPLES, 21)
    agreement = monte_carlo_agrees(flipped, exact, Z)
    assert not agreement.ok[:num_means].any(), f"flipped jump accepted: {agreement}"


# --- variance of the smoothed estimator and the nesting depth ---------------------------

def _chain(depth, offsets, jumps, elses, weights, cls=Program):
    """`v_1 = if(z_0 − c_1, a_1, b_1)`, `v_i = if(z_{i−1} + w_i v_{i−1} − c_i, a_i, b_i)`,
    `log p = v_ℓ`. Only z_0 is variational (θ = its mean, σ = 1); z_1 … z_{ℓ−1} are
    auxiliary N(0, 1), so each guard has its own independent noise (the setting of
    `nested_if_variance`). `c_i = w_i (a_{i−1} + b_{i−1})/2 + u_i` puts the middle of the
    threshold that z_{i−1} meets at `u_i`."""
    z = ex.latent(depth)
    then_values = [b + jump for b, jump in zip(elses, jumps)]
    value = ex.if_(z[0] - offsets[0], then_values[0], elses[0])
    for i in range(1, depth):
        threshold = weights[i] * (then_values[i - 1] + elses[i - 1]) / 2 + offsets[i]
        value = ex.if_(z[i] + weights[i] * value - threshold, then_values[i], elses[i])
    family = MeanField(depth, np.array([0]), np.array([], dtype=np.int64), np.zeros(depth), np.ones(depth))
    return cls(f"chain-{depth}", value, family, np.zeros(1))


class _HiddenChain(Program):
    """A program that reports nesting depth 1 whatever its guards do."""

    @property
    def nesting_depth(self):
        return 1


# The window of η (a decade, 4 log-spaced values from `eta_min`) and the sample size per
# η, by the depth ℓ of the chain. With unit guard noise, a guard density q ≤ 0.4 at the
# threshold and x = qη: the relative variance of the variance estimate at the smallest η
# is about (0.257/x)^ℓ/n, and the squared mean, subtracted from E[g²] ≈ Cη^(−ℓ), is a
# fraction r ≈ (6x)^ℓ of it (≤ 0.014 at the largest η here): small enough that the
# asymptotics hold, large enough that n samples resolve the variance.
VARIANCE_WINDOWS = {1: (5e-4, 200_000), 2: (5e-3, 500_000), 3: (1e-2, 1_000_000)}
Z_SLOPE = 4.0


def _variance_slope(program, depth, key):
    """The fitted log–log slope of the smoothed estimator's variance over the window of
    `VARIANCE_WINDOWS[depth]`, and the tolerance below `−ℓ` that it is allowed.

    At each η: the sample variance `v` of n independent estimates (independent keys),
    its delta-method standard error `√((m₄ − v²)/n)`, and `r = ḡ²/mean(g²)`. The slope is
    a weighted least-squares fit of `log v` on `log η` with weights `(v/se)²`; its standard
    error is scaled by `√max(1, χ²/(k − 2))` for misfit. (Not `rates.fit.fit_power_law`:
    its interval uses Student's t with k − 2 = 2 degrees of freedom, right for a scale
    estimated from the residuals; here the scale is known from the delta method.)

    Tolerance: `Z_SLOPE = 4` standard errors (one-sided false failure Φ(−4) = 3.2e-5 per
    program) plus `ℓr/(1 − r)` at the largest η, by which subtracting the squared mean
    steepens the local slope of the variance relative to that of E[g²] ∝ η^(−ℓ)."""
    eta_min, num_samples = VARIANCE_WINDOWS[depth]
    etas = np.geomspace(eta_min, 10 * eta_min, 4)
    variances, errors, ratios = [], [], []
    for index, eta in enumerate(etas):
        g = np.asarray(derivatives.gradient_samples(program, program.theta0, jax.random.fold_in(key, index),
                                                    "smoothed", num_samples, eta))[:, 0]
        centred = g - g.mean()
        variance = centred.var(ddof=1)
        variances.append(variance)
        errors.append(math.sqrt(max(np.mean(centred**4) - variance**2, 0.0) / num_samples))
        ratios.append(g.mean() ** 2 / np.mean(g**2))
    x, y, s = np.log(etas), np.log(variances), np.array(errors) / np.array(variances)
    design = np.stack([np.ones_like(x), x], axis=1)
    covariance = np.linalg.inv(design.T @ (design / s[:, None] ** 2))
    coefficients = covariance @ (design.T @ (y / s**2))
    residuals = (y - design @ coefficients) / s
    reduced_chi2 = float(residuals @ residuals / (len(x) - 2))
    standard_error = math.sqrt(covariance[1, 1] * max(1.0, reduced_chi2))
    steepening = depth * ratios[-1] / (1 - ratios[-1])
    return float(coefficients[1]), Z_SLOPE * standard_error + steepening, standard_error


@st.composite
def chains(draw):
    depth = draw(st.integers(1, 3))
    unit = st.floats(-1.0, 1.0)
    sign = st.sampled_from([-1.0, 1.0])
    offsets = [draw(unit) for _ in range(depth)]
    jumps = [draw(sign) * draw(st.floats(0.5, 2.0)) for _ in range(depth)]
    elses = [draw(unit) for _ in range(depth)]
    weights = [draw(sign) * draw(st.floats(0.5, 1.5)) for _ in range(depth)]
    return depth, offsets, jumps, elses, weights


@given(chains())
def test_smoothed_variance_grows_no_faster_than_eta_to_the_minus_depth(chain):
    """For random chains of ifs (depth 1–3), `nesting_depth` is the depth by construction,
    and the measured variance of the smoothed estimator over a decade of small η has
    log–log slope ≥ −ℓ − tolerance (`_variance_slope`: 4 standard errors plus the
    squared-mean allowance; false failure ≤ 3.2e-5 per program). The bound is tight here
    (the slope is −ℓ asymptotically), so the check has power: see the negative check."""
    depth = chain[0]
    program = _chain(*chain)
    assert program.nesting_depth == depth and program.num_ifs == depth
    assert program.affine == (depth == 1)
    slope, tolerance, se = _variance_slope(program, depth, jax.random.key(30))
    assert slope >= -program.nesting_depth - tolerance, f"ℓ={depth}: slope {slope:.3f} (se {se:.3f})"


def test_hidden_chain_violates_the_depth_one_claim():
    """Negative check of the variance test: a chain of two ifs that reports depth 1 has a
    measured slope steeper than −1 − tolerance (it is ≈ −2), and satisfies the true depth-2
    claim."""
    program = _chain(2, [0.2, -0.3], [1.5, -1.2], [0.0, 0.4], [0.0, 1.0], cls=_HiddenChain)
    assert program.nesting_depth == 1
    slope, tolerance, se = _variance_slope(program, 2, jax.random.key(31))
    assert slope < -1 - tolerance, f"slope {slope:.3f} (se {se:.3f}) accepted for depth 1"
    assert slope >= -2 - tolerance, f"slope {slope:.3f} (se {se:.3f}) rejected for depth 2"


# --- jit, vmap, scan --------------------------------------------------------------------

def test_estimators_under_jit_and_vmap():
    """With `program`, `estimator` and `num_samples` static and θ, key and η traced, `jit`
    gives the eager values; `vmap` over keys, θ and η gives the stacked single calls.
    (The sample sizes are those of the tests above, so the eager calls reuse their
    compilations.)"""
    theta, key = jnp.array([0.3]), jax.random.key(40)
    jitted = jax.jit(derivatives.estimate_gradient, static_argnums=(0, 3, 4), static_argnames=("boundary",))
    for estimator, boundary in (("score", "sample"), ("reparam", "sample"), ("lyy18", "sample"),
                                ("lyy18", "projected"), ("smoothed", "sample")):
        n = MIXTURE_SIZES[estimator]
        eager = derivatives.estimate_gradient(MIXTURE, theta, key, estimator, n, 0.1, boundary=boundary)
        assert eager.shape == theta.shape
        np.testing.assert_allclose(jitted(MIXTURE, theta, key, estimator, n, jnp.float64(0.1), boundary=boundary),
                                   eager, rtol=1e-12, atol=1e-12)

    plane = _plane("full")
    keys = jax.random.split(key, 3)
    by_key = jax.vmap(lambda k: derivatives.estimate_gradient(plane, plane.theta0, k, "lyy18", PLANE_SAMPLES))(keys)
    thetas = theta + jnp.array([[0.0], [0.1], [-0.2]])
    n_score = MIXTURE_SIZES["score"]
    by_theta = jax.vmap(lambda t: derivatives.estimate_gradient(MIXTURE, t, key, "score", n_score))(thetas)
    etas = jnp.array([0.3, 0.1, 0.05])
    n_smoothed = MIXTURE_SIZES["smoothed"]
    by_eta = jax.vmap(lambda e: derivatives.estimate_gradient(MIXTURE, theta, key, "smoothed", n_smoothed, e))(etas)
    for i in range(3):
        np.testing.assert_allclose(by_key[i], derivatives.estimate_gradient(plane, plane.theta0, keys[i], "lyy18",
                                                                            PLANE_SAMPLES), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(by_theta[i], derivatives.estimate_gradient(MIXTURE, thetas[i], key, "score",
                                                                              n_score), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(by_eta[i], derivatives.estimate_gradient(MIXTURE, theta, key, "smoothed",
                                                                            n_smoothed, float(etas[i])),
                                   rtol=1e-12, atol=1e-12)


def test_smoothed_with_a_traced_accuracy_schedule():
    """DSGD: `η_k = η (4000/(k + 1))^r` computed inside `lax.scan` under `jit` gives the
    directions of eager calls with the concrete `η_k`; the same key gives the same result."""
    program = _plane("full")
    theta = jnp.asarray(program.theta0)

    @jax.jit
    def directions(theta, key):
        def step(carry, k):
            eta_k = 0.14 * (4000.0 / (k.astype(jnp.float64) + 1.0)) ** 0.5
            key_k = jax.random.fold_in(key, k)
            return carry, derivatives.estimate_gradient(program, theta, key_k, "smoothed", 16, eta_k)

        return lax.scan(step, 0.0, jnp.arange(4))[1]

    key = jax.random.key(41)
    scanned = directions(theta, key)
    np.testing.assert_array_equal(scanned, directions(theta, key))
    for k in range(4):
        eager = derivatives.estimate_gradient(program, theta, jax.random.fold_in(key, k), "smoothed", 16,
                                              0.14 * (4000.0 / (k + 1)) ** 0.5)
        np.testing.assert_allclose(scanned[k], eager, rtol=1e-12, atol=1e-12)


def test_gradient_samples_shape_and_programs_without_ifs():
    """Shapes `(n, |θ|)`; with no if-statement lyy18 is reparam and smoothed is reparam."""
    z = ex.latent(2)
    program = Program("smooth", ex.normal_logpdf(z, 0.0, 1.0).sum(), MeanField.full(2), np.zeros(4))
    theta, key = jnp.array([0.1, -0.2, 0.3, 0.0]), jax.random.key(42)
    reparam = derivatives.gradient_samples(program, theta, key, "reparam", 5)
    assert reparam.shape == (5, 4)
    np.testing.assert_array_equal(derivatives.gradient_samples(program, theta, key, "lyy18", 5), reparam)
    np.testing.assert_allclose(derivatives.gradient_samples(program, theta, key, "smoothed", 5, 0.1), reparam,
                               rtol=1e-14, atol=1e-14)
    assert derivatives.estimate_gradient(program, theta, key).shape == (4,)


# --- bad arguments ----------------------------------------------------------------------

THETA = jnp.array([0.2])
KEY = jax.random.key(0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"estimator": "sgd"}, "estimator must be one of"),
        ({"num_samples": 0}, "num_samples must be an integer >= 1"),
        ({"num_samples": 2.5}, "num_samples"),
        ({"num_samples": True}, "num_samples"),
        ({"estimator": "smoothed"}, "eta must be given"),
        ({"estimator": "smoothed", "eta": 0.0}, "eta must be a finite scalar > 0"),
        ({"estimator": "smoothed", "eta": -0.1}, "eta must be a finite scalar > 0"),
        ({"estimator": "smoothed", "eta": float("nan")}, "eta must be a finite scalar > 0"),
        ({"estimator": "smoothed", "eta": float("inf")}, "eta must be a finite scalar > 0"),
        ({"estimator": "smoothed", "eta": jnp.array([0.1, 0.2])}, "eta must be a real scalar"),
        ({"theta": jnp.array([0.1, 0.2])}, r"theta must have shape \(1,\) for program 'mixture1d'"),
        ({"theta": jnp.array([jnp.nan])}, "theta must be finite"),
        ({"boundary": "middle"}, "boundary must be one of"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    arguments = {"theta": THETA, "key": KEY, "estimator": "score", "num_samples": 4, "eta": None, **kwargs}
    with pytest.raises(ValueError, match=match):
        derivatives.estimate_gradient(MIXTURE, arguments.pop("theta"), arguments.pop("key"), **arguments)


def test_eta_is_ignored_by_estimators_that_do_not_smooth():
    for estimator in ("score", "reparam", "lyy18"):
        n = MIXTURE_SIZES[estimator]
        a = derivatives.estimate_gradient(MIXTURE, THETA, KEY, estimator, n, eta=-1.0)
        np.testing.assert_array_equal(a, derivatives.estimate_gradient(MIXTURE, THETA, KEY, estimator, n))


def test_program_argument_must_be_a_program():
    with pytest.raises(TypeError, match="program must be"):
        derivatives.estimate_gradient(lambda z: z, THETA, KEY)


def test_lyy18_needs_affine_guards():
    """A guard computed from an if's value (a chain) is not affine: lyy18 refuses and
    names the program; score and smoothed still run."""
    program = _chain(2, [0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0])
    assert not program.affine
    with pytest.raises(ValueError, match=r"'chain-2'.*not affine"):
        derivatives.estimate_gradient(program, program.theta0, KEY, "lyy18")
    assert derivatives.estimate_gradient(program, program.theta0, KEY, "smoothed", eta=0.1).shape == (1,)

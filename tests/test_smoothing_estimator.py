"""`derivatives.smoothed_gradient`: black-box stochastic smoothing against closed forms,
quadrature and finite differences.

Statistical comparisons (`helpers.monte_carlo_agrees` at `K = 6`) accept a reference when
it lies within 6 standard errors of the mean of `R` independent estimates (vmapped over
fixed keys), plus a rounding allowance of `1e-9 (1 + |reference|)`. With `R − 1 = 63` degrees of freedom a
true claim fails with probability `P(|t₆₃| > 6) = 1.1e-7` per entry; the file makes about
2600 such comparisons (many of them correlated), so by the union bound a false failure
has probability below 3e-4 (the keys are fixed, so a run is deterministic). The
triangular density has infinite Fisher information: its estimators have infinite variance
(diverging only logarithmically, so means are still nearly normal), and its comparisons
are heuristic. Every statistical test has a negative check: the same comparison rejects a
broken estimator or a wrong claim.

The references come from `proofs_check.densities` (the sympy density and CDF, lambdified
for NumPy/SciPy; never the score), by closed forms or `scipy.integrate.quad`.
"""

# Every lambda defined in a loop here is called (traced or evaluated) in the same iteration.
# ruff: noqa: B023

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from helpers import monte_carlo_agrees
from scipy import integrate

import derivatives
from derivatives import noises, smoothing
from derivatives.noises import FINITE_MEAN_NOISES, NOISES, SYMMETRIC_NOISES
from derivatives.smoothing import COVARIATES, SAMPLINGS, smoothed_gradient
from proofs_check.densities import DENSITIES
from rates.fit import fit_power_law

K = 6.0        # false failure P(|t₆₃| > 6) = 1.1e-7 per entry at R = 64, 2e-9 at R = 2000 or 20000
ATOL = 1e-9
R = 64                                    # repetitions of every estimate
# The graphs are many and small; compiling them without LLVM optimisation is 3x faster.
_FAST = {"xla_backend_optimization_level": 0}


def _fast_jit(function):
    return jax.jit(function, compiler_options=_FAST)


def _keys(seed, count=R):
    return jax.random.split(jax.random.key(seed), count)


# --- references from the sympy densities ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Reference:
    density: object
    cdf: object
    support: tuple[float, float]
    mean: float | None                    # E[ε], None where it does not exist
    second_moment: float | None

    def expect(self, g):
        """`E[g(ε)]` for a continuous g, by adaptive quadrature over the support (the
        overflow of e.g. `cosh` far out in the tails only produces the limit 0)."""
        with np.errstate(over="ignore", under="ignore"):
            return integrate.quad(lambda e: g(e) * self.density(e), *self.support, epsabs=1e-13, epsrel=1e-13,
                                  limit=400)[0]


@functools.cache
def reference(noise) -> Reference:
    d = DENSITIES[noise]
    density = sp.lambdify(d.symbol, d.density, modules=["scipy", "numpy"])
    cdf = sp.lambdify(d.symbol, d.cdf, modules=["scipy", "numpy"])
    support = tuple(float(sp.limit(d.quantile, d.probability, end, direction)) for end, direction in
                    ((0, "+"), (1, "-")))
    partial = Reference(density, cdf, support, None, None)
    if noise not in FINITE_MEAN_NOISES:
        return partial
    return dataclasses.replace(partial, mean=partial.expect(lambda e: e),
                               second_moment=partial.expect(lambda e: e * e))


def test_references_from_the_densities():
    """The quadrature references: normalised, and the Gumbel mean is Euler's constant."""
    for noise in NOISES:
        assert abs(reference(noise).expect(lambda e: 1.0) - 1.0) < 1e-10, noise
    assert abs(reference("gumbel").mean - float(sp.EulerGamma)) < 1e-10
    assert abs(reference("gumbel").second_moment - float(sp.pi**2 / 6 + sp.EulerGamma**2)) < 1e-9
    assert abs(reference("laplace").second_moment - 2.0) < 1e-10
    assert reference("triangular").support == (-1.0, 1.0)


# --- closed forms: linear, quadratic and step outputs of one function ----------------------

A = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]])
C = np.array([0.1, -0.2, 0.3])
Q = np.array([[2.0, 0.5], [0.5, 1.0]])
B = np.array([0.3, -0.1])
X = np.array([0.15, -0.3])
GAMMA = 0.5                                 # x/γ = (0.3, −0.6): both edges inside every support


def _closed_form_function():
    """A fresh `f: ℝ² → ℝ⁵` (a new object, so it is traced anew): `A y + c`,
    `½ yᵀQy + bᵀy` and the quadrant indicator `1[y₀ ≥ 0, y₁ ≥ 0]` (not a half-space in
    one coordinate, whose count of points is nearly fixed under stratified designs, so
    that the standard error over repetitions would be unreliable)."""
    a, c, q, b = (jnp.asarray(v) for v in (A, C, Q, B))

    def f(y):
        quadrant = jnp.all(y >= 0).astype(jnp.float64)
        return jnp.concatenate([a @ y + c, (0.5 * y @ q @ y + b @ y)[None], quadrant[None]])

    return f


def _closed_forms(noise, x=X, gamma=GAMMA):
    """`(value, jacobian, scale derivative, mask)` of `E[f(x + γε)]`; the mask marks the
    entries that exist (for the Cauchy density only those of the step output)."""
    ref = reference(noise)
    value, jacobian, d_gamma = np.zeros(5), np.zeros((5, 2)), np.zeros(5)
    mask = {"value": np.ones(5, bool), "jacobian": np.ones((5, 2), bool), "scale": np.ones(5, bool)}
    if ref.mean is None:
        # E|f| = ∞ for the linear and quadratic outputs: only the step output is checked
        mask["value"][:4] = mask["scale"][:4] = mask["jacobian"][:4] = False
        m1 = m2 = 0.0
    else:
        m1, m2 = ref.mean, ref.second_moment
    mean = m1 * np.ones(2)
    quadratic_moment = m2 * np.trace(Q) + m1**2 * (Q.sum() - np.trace(Q))      # E[εᵀQε]
    value[:3], jacobian[:3], d_gamma[:3] = A @ (x + gamma * mean) + C, A, A @ mean
    value[3] = 0.5 * x @ Q @ x + B @ x + gamma * (Q @ x + B) @ mean + 0.5 * gamma**2 * quadratic_moment
    jacobian[3] = Q @ (x + gamma * mean) + B
    d_gamma[3] = (Q @ x + B) @ mean + gamma * quadratic_moment
    at = -x / gamma
    tail = np.array([1.0 - ref.cdf(a) for a in at])                   # P((x + γε)ᵢ ≥ 0)
    d_tail = np.array([ref.density(a) for a in at]) / gamma            # ∂/∂xᵢ
    value[4] = tail.prod()
    jacobian[4] = d_tail * tail[::-1]
    d_gamma[4] = -(d_tail * x / gamma) @ tail[::-1]
    return value, jacobian, d_gamma, mask


def _combinations(noise):
    return [(covariate, sampling, antithetic) for covariate in COVARIATES for sampling in SAMPLINGS
            for antithetic in (False, True) if not (antithetic and noise not in SYMMETRIC_NOISES)]


def _num_samples(sampling, antithetic):
    return 288 if (sampling == "cartesian" and antithetic) else 256     # 16², 2·12²


def _closed_form_failures(noise, combinations, seed):
    """Run every combination `R` times (one compilation) and compare with the closed forms."""
    f = _closed_form_function()

    @_fast_jit
    def run(keys):
        return [jax.vmap(lambda key: smoothed_gradient(
            f, jnp.asarray(X), key, noise, GAMMA, _num_samples(sampling, antithetic), covariate, sampling,
            antithetic, wrt_scale=True))(keys) for covariate, sampling, antithetic in combinations]

    value, jacobian, d_gamma, mask = _closed_forms(noise)
    failures = {}
    for combination, (v, j, g) in zip(combinations, run(_keys(seed))):
        found = []
        for label, samples, ref in (("value", v, value), ("jacobian", j, jacobian), ("scale", g, d_gamma)):
            agreement = monte_carlo_agrees(np.asarray(samples)[:, mask[label]], ref[mask[label]], K, ATOL)
            found += agreement.failures(label)
        if found:
            failures[combination] = found
    return failures


@pytest.mark.parametrize("noise", NOISES)
def test_every_combination_is_unbiased_on_closed_forms(noise):
    """Linear, quadratic and step outputs at once, for every covariate × sampling ×
    antithetic choice that applies: value, Jacobian and scale derivative are unbiased.
    R = 64 estimates of N = 256 samples (288 for antithetic cartesian); 24 combinations
    × 20 comparisons per symmetric density (12 for gumbel; the step output only for
    cauchy) at K = 6 standard errors. `"loo"` under the dependent designs has a
    second-order bias (module docstring), below 1e-4 of the Jacobian at N = 256 and
    invisible at this resolution."""
    failures = _closed_form_failures(noise, _combinations(noise), seed=1)
    assert not failures, failures


def test_closed_form_check_rejects_a_wrong_score(monkeypatch):
    """Negative check: the same comparison, with every score multiplied by 1.25 (a wrong
    density), fails for every density and for each of a few combinations."""
    original = noises.by_name

    def wrong(noise):
        functions = original(noise)
        return dataclasses.replace(functions, score=lambda e: 1.25 * functions.score(e))

    monkeypatch.setattr(noises, "by_name", wrong)
    for noise in NOISES:
        combinations = [("value", "mc", False), ("loo", "rqmc", noise in SYMMETRIC_NOISES), ("none", "qmc", False)]
        failures = _closed_form_failures(noise, combinations, seed=1)
        assert set(failures) == set(combinations), (noise, sorted(failures))


def test_antithetic_pairs_bias_an_asymmetric_density():
    """Negative check for the rejection of antithetic Gumbel noise: forced past the check,
    pairs (ε, −ε) centre the noise (E[ε] = Euler's γ is lost), and the same comparison
    fails for the value of the linear output."""
    f = _closed_form_function()

    @_fast_jit
    def run(keys):
        return jax.vmap(lambda key: smoothing._estimate(
            f, jnp.asarray(X), key, jnp.asarray(GAMMA), noise="gumbel", num_samples=256, covariate="value",
            sampling="mc", antithetic=True, wrt_scale=False, scale_kind="scalar", host_shape=None))(keys)

    value, _, _, _ = _closed_forms("gumbel")
    estimates, _ = run(_keys(2))
    assert monte_carlo_agrees(np.asarray(estimates)[:, :3], value[:3], K, ATOL).failures("value")
    with pytest.raises(ValueError, match="antithetic=True needs a symmetric density"):
        smoothed_gradient(f, X, jax.random.key(0), "gumbel", GAMMA, 256, antithetic=True)


# --- the identity: the value covariate ------------------------------------------------------

def test_identity_jacobian_and_the_value_covariate():
    """`f(y) = y` far from 0 with a small scale (x/γ = 60): the Jacobian is the identity in
    expectation under every covariate, and the value covariate removes the `f(x)/γ` part
    of the noise, `Ĵ = mean(ε s(ε)ᵀ)`, independent of x and γ: its RMS error is below 0.1
    under MC, over 20 times below that of no covariate (negative check: no covariate
    misses the threshold), and below 0.03 under randomised QMC. R = 64, N = 256, K = 6.
    Cauchy excluded (`E|f| = ∞`: `E|εᵢ s(εⱼ)| = ∞`), triangular too (`E[(εs)²] = ∞`)."""
    x, gamma, noises = jnp.array([3.0, -2.0]), 0.05, ("gaussian", "logistic", "gumbel", "laplace")
    settings = [(noise, covariate, sampling) for noise in noises for covariate in COVARIATES
                for sampling in ("mc", "rqmc")]

    @_fast_jit
    def run(keys):
        return [jax.vmap(lambda key: smoothed_gradient(lambda y: y, x, key, noise, gamma, 256, covariate,
                                                       sampling)[1])(keys) for noise, covariate, sampling in settings]

    results = dict(zip(settings, (np.asarray(j) for j in run(_keys(3)))))
    failures = [line for s, j in results.items() for line in monte_carlo_agrees(j, np.eye(2), K, ATOL).failures(str(s))]
    assert not failures, failures

    def rms(setting):
        return float(np.sqrt(np.mean((results[setting] - np.eye(2)) ** 2)))

    for noise in noises:
        assert rms((noise, "value", "mc")) < min(0.1, rms((noise, "none", "mc")) / 20), noise
        assert not rms((noise, "none", "mc")) < 0.1, noise
        assert rms((noise, "value", "rqmc")) < 0.03, noise


# --- leave-one-out -------------------------------------------------------------------------------

def _step(y):
    return (y[0] >= 0).astype(jnp.float64)[None]


STEP_X, STEP_GAMMA = 0.05, 0.2


def _step_samples(key, num_samples, design):
    """The test's own copy of the Gaussian samples the estimator draws: `ε = F⁻¹(u)` with
    the uniforms of `"mc"` (i.i.d.) or, in one dimension, `"rqmc"` (the shifted grid)."""
    quantile = sp.lambdify(DENSITIES["gaussian"].probability, DENSITIES["gaussian"].quantile,
                           modules=[{"erfinv": jax.scipy.special.erfinv}, "jax"])
    if design == "mc":
        u = jax.random.uniform(key, (num_samples, 1), jnp.float64)
    else:
        u = (jnp.arange(num_samples, dtype=jnp.float64)[:, None] / num_samples
             + jax.random.uniform(key, (1,), jnp.float64)) % 1.0
    return quantile(jnp.clip(u, 2.0**-53, 1 - 2.0**-53))[:, 0]


def _covariate_estimates(key, num_samples, design, antithetic=False):
    """`(Jacobian, scale derivative)` estimates with the covariates the test compares, on
    the same samples: leave one sample out, leave one pair out, the batch mean (including
    the sample itself). Gaussian score ε; scale weights `ε² − 1`."""
    epsilon = _step_samples(key, num_samples // 2 if antithetic else num_samples, design)
    if antithetic:
        epsilon = jnp.concatenate([epsilon, -epsilon])
    f = (STEP_X + STEP_GAMMA * epsilon >= 0).astype(jnp.float64)
    total = jnp.sum(f)
    loo = (total - f) / (num_samples - 1)
    pairs = f[: num_samples // 2] + f[num_samples // 2:]
    lopo = jnp.tile((total - pairs) / (num_samples - 2), 2) if antithetic else loo
    return {name: (jnp.mean((f - b) * epsilon) / STEP_GAMMA, jnp.mean((f - b) * (epsilon**2 - 1)) / STEP_GAMMA)
            for name, b in (("loo", loo), ("pairs", lopo), ("batch mean", total / num_samples))}


def test_leave_one_out_is_unbiased_and_the_batch_mean_is_not():
    """Gaussian noise, the step `1[y ≥ 0]` at x = 0.05, γ = 0.2: Jacobian `φ(x/γ)/γ = 1.933`,
    scale derivative `−φ(x/γ)x/γ² = −0.483`. K = 6 standard errors.

    - i.i.d. samples, N = 4, R = 20000: `"loo"` (the library; equal to the test's own
      leave-one-out on the same samples) is unbiased; the batch mean including the sample
      itself is biased by the factor (N − 1)/N = 3/4 (negative check, about 70 standard
      errors off).
    - antithetic i.i.d. pairs, N = 4: `"loo"` leaves out the pair and is unbiased. The
      pair's x-weights sum to zero, so there it only matters for the scale derivative:
      leaving out only the sample keeps its partner, which depends on it, and biases both
      (negative check).
    - randomised QMC, N = 256, R = 2000: `"loo"` uses the design mean, whose second-order
      bias (about 3e-5 of the Jacobian here, measured with 200000 repetitions) is far
      below the resolution of the test; the plain leave-one-out mean inflates by
      N/(N − 1) (negative check, over 50 standard errors off)."""
    density = reference("gaussian").density(STEP_X / STEP_GAMMA)
    target = np.array([density / STEP_GAMMA, -density * STEP_X / STEP_GAMMA**2])
    x = jnp.array([STEP_X])

    def library(key, num_samples, sampling, antithetic):
        _, jacobian, d_gamma = smoothed_gradient(_step, x, key, "gaussian", STEP_GAMMA, num_samples, "loo", sampling,
                                                 antithetic, wrt_scale=True)
        return jnp.stack([jacobian[0, 0], d_gamma[0]])

    @_fast_jit
    def run(mc_keys, rqmc_keys):
        return {
            "mc": jax.vmap(lambda k: (library(k, 4, "mc", False), _covariate_estimates(k, 4, "mc")))(mc_keys),
            "antithetic": jax.vmap(lambda k: (library(k, 4, "mc", True),
                                              _covariate_estimates(k, 4, "mc", True)))(mc_keys),
            "rqmc": jax.vmap(lambda k: (library(k, 256, "rqmc", False),
                                        _covariate_estimates(k, 256, "rqmc")))(rqmc_keys),
        }

    results = run(_keys(4, 20000), _keys(5, 2000))
    for design, own_name in (("mc", "loo"), ("antithetic", "pairs"), ("rqmc", "batch mean")):
        estimates, own = results[design]
        np.testing.assert_allclose(estimates, jnp.stack(own[own_name], axis=1), rtol=1e-12, atol=1e-12)
        assert not monte_carlo_agrees(estimates, target, K, ATOL).failures(f"{design} loo")
    assert monte_carlo_agrees(results["mc"][1]["batch mean"][0], target[0], K, ATOL).failures("mc batch mean")
    assert monte_carlo_agrees(results["mc"][1]["batch mean"][1], target[1], K, ATOL).failures("mc batch mean")
    assert monte_carlo_agrees(results["antithetic"][1]["loo"][1], target[1], K, ATOL).failures(
        "antithetic, leave one sample out")
    assert monte_carlo_agrees(results["rqmc"][1]["loo"][0], target[0], K, ATOL).failures("rqmc plain leave-one-out")


# --- convergence: randomised QMC against MC ---------------------------------------------------

def test_randomised_qmc_error_decays_faster_than_mc():
    """Gaussian noise, the smooth bounded `f(y) = tanh(2y)` at x = 0.3, γ = 0.5, value
    covariate, N = 64 … 4096 (7 sizes, R = 64 independent estimates each, fresh keys per
    size). The mean squared error of the Jacobian is fitted by `rates.fit.fit_power_law`
    (95% intervals, allowing for correlation): MC's slope is −1 (RMS error `N^(−1/2)`),
    randomised QMC's (the shifted grid in one dimension) at least −1.6 (RMS steeper than
    `N^(−0.8)`), and cartesian (stratified) sampling's as well. Negative check: MC's
    interval excludes −1.6."""
    x, gamma, sizes = jnp.array([0.3]), 0.5, [64 * 2**i for i in range(7)]
    ref = reference("gaussian")
    target = ref.expect(lambda e: 2.0 / np.cosh(2.0 * (0.3 + gamma * e)) ** 2)      # E[f'(x + γε)]

    @_fast_jit
    def run(keys):
        return {(sampling, n): jax.vmap(lambda key: smoothed_gradient(
            lambda y: jnp.tanh(2.0 * y), x, key, "gaussian", gamma, n, "value", sampling)[1][0, 0])(keys[i])
            for i, n in enumerate(sizes) for sampling in ("mc", "rqmc", "cartesian")}

    results = run(jax.random.split(jax.random.key(6), (len(sizes), R)))
    slopes = {}
    for sampling in ("mc", "rqmc", "cartesian"):
        squared = np.stack([(np.asarray(results[sampling, n]) - target) ** 2 for n in sizes])
        fit = fit_power_law(sizes, squared.mean(axis=1), squared.std(axis=1, ddof=1) / math.sqrt(R), start=sizes[0])
        slopes[sampling] = fit.slope
    assert slopes["mc"][0] <= -1.0 <= slopes["mc"][2], slopes
    assert slopes["mc"][0] > -1.6, slopes
    assert slopes["rqmc"][2] < -1.6, slopes
    assert slopes["cartesian"][2] < -1.6, slopes


# --- derivatives with respect to the scale -----------------------------------------------------

def _bounded(y):
    return (y >= 0).astype(jnp.float64) + 0.5 * jnp.tanh(y)


def test_scale_derivative_against_quadrature():
    """One dimension, `f(y) = 1[y ≥ 0] + tanh(y)/2` at x = 0.15: `∂γ E[f(x + γε)]` at γ = 0.5
    against the central difference (h = 1e-4) of `f_γ` by quadrature (split at the
    step; error about 1e-8), for every density, with three covariate/sampling choices;
    R = 64, N = 256, K = 6. Negative check: the formula without the `− n` term
    (`E[f εs]/γ`, recovered from the outputs of the covariate-free estimate as
    `∂̂γ + value/γ`) fails."""
    x0, gamma, h = 0.15, 0.5, 1e-4
    choices = [("none", "mc"), ("value", "rqmc"), ("loo", "qmc")]

    @_fast_jit
    def run(keys):
        return {(noise, c, s): jax.vmap(lambda key: smoothed_gradient(
            _bounded, jnp.array(x0), key, noise, gamma, 256, c, s, wrt_scale=True))(keys)
            for noise in NOISES for c, s in choices}

    results = run(_keys(7))
    for noise in NOISES:
        ref = reference(noise)

        def smoothed(g):
            step = 1.0 - ref.cdf(-x0 / g)
            return step + ref.expect(lambda e: 0.5 * np.tanh(x0 + g * e))

        target = (smoothed(gamma + h) - smoothed(gamma - h)) / (2 * h)
        for c, s in choices:
            value, _, d_gamma = (np.asarray(r) for r in results[noise, c, s])
            assert not monte_carlo_agrees(d_gamma, target, K, ATOL).failures(f"{noise} {c} {s}"), (noise, c, s)
        value, _, d_gamma = (np.asarray(r) for r in results[noise, "none", "mc"])
        assert monte_carlo_agrees(d_gamma + value / gamma, target, K, ATOL).failures(f"{noise} without − n"), noise


L_MATRIX = np.array([[0.5, 0.2], [-0.1, 0.4]])
X2 = np.array([0.1, -0.05])


def _smoothed_steps(ref, x, scale):
    """`E[1[(x + Lε)ᵢ ≥ 0]]`, i = 0, 1, as one-dimensional quadratures over the other
    coordinate: `P(L_ii εᵢ + L_ij εⱼ ≥ −xᵢ) = ∫ μ(e)(1 − F((−xᵢ − L_ij e)/L_ii)) de`,
    `L_ii > 0`."""
    return np.array([ref.expect(lambda e, i=i: 1.0 - ref.cdf((-x[i] - scale[i, 1 - i] * e) / scale[i, i]))
                     for i in range(2)])


def _finite_differences(function, point, h=1e-4):
    point = np.asarray(point, dtype=np.float64)
    columns = []
    for index in np.ndindex(point.shape):
        step = np.zeros_like(point)
        step[index] = h
        columns.append((function(point + step) - function(point - step)) / (2 * h))
    return np.stack(columns, axis=-1).reshape(columns[0].shape + point.shape)


def test_matrix_and_diagonal_scales_against_quadrature():
    """Two dimensions, `f(y) = (1[y₀ ≥ 0], 1[y₁ ≥ 0])`, `x + Lε` with a full matrix L and
    with `L = diag(σ)`: the Jacobians in x and in the scale against central differences
    (h = 1e-4) of one-dimensional quadratures (`_smoothed_steps`); every density with a
    finite mean (the Cauchy density: the x-Jacobian only). `"loo"`/`"mc"` and
    `"value"`/`"rqmc"`; R = 64, N = 256, K = 6. Negative check: `L^(−1)` in place of
    `L^(−T)` in the x-Jacobian fails."""
    two_steps = lambda y: (y >= 0).astype(jnp.float64)     # noqa: E731
    sigma = np.diag(L_MATRIX).copy()
    settings = [(noise, kind, c, s) for noise in NOISES for kind in ("matrix", "diagonal")
                for c, s in (("loo", "mc"), ("value", "rqmc"))]

    @_fast_jit
    def run(keys):
        return {(noise, kind, c, s): jax.vmap(lambda key: smoothed_gradient(
            two_steps, jnp.asarray(X2), key, noise, jnp.asarray(L_MATRIX if kind == "matrix" else sigma), 256, c, s,
            wrt_scale=noise in FINITE_MEAN_NOISES))(keys) for noise, kind, c, s in settings}

    results = run(_keys(8))
    for noise in NOISES:
        ref = reference(noise)
        d_x = _finite_differences(lambda p: _smoothed_steps(ref, p, L_MATRIX), X2)
        d_l = _finite_differences(lambda p: _smoothed_steps(ref, X2, p), L_MATRIX)
        d_x_diagonal = _finite_differences(lambda p: _smoothed_steps(ref, p, np.diag(sigma)), X2)
        d_sigma = _finite_differences(lambda p: _smoothed_steps(ref, X2, np.diag(p)), sigma)
        value = _smoothed_steps(ref, X2, L_MATRIX)
        for _, kind, c, s in (t for t in settings if t[0] == noise):
            outputs = [np.asarray(r) for r in results[noise, kind, c, s]]
            expected = ([value, d_x, d_l] if kind == "matrix"
                        else [_smoothed_steps(ref, X2, np.diag(sigma)), d_x_diagonal, d_sigma])
            for label, samples, target in zip(("value", "x", "scale"), outputs, expected):
                # The value of a diagonal scale counts points in {εᵢ ≥ c}, which stratified
                # designs fix up to one point: its standard error is unreliable (and it is
                # checked on the quadrant in the closed-form test).
                if not (label == "value" and kind == "diagonal" and s != "mc"):
                    assert not monte_carlo_agrees(samples, target, K, ATOL).failures(f"{noise} {kind} {c} {s} {label}")
        if noise == "gaussian":
            # Each row of Ĵ is (L^(−T) s)ᵀ averaged; with L^(−1) s it would be Ĵ L L^(−T).
            jacobian = np.asarray(results[noise, "matrix", "value", "rqmc"][1])
            wrong = jacobian @ L_MATRIX @ np.linalg.inv(L_MATRIX).T
            assert monte_carlo_agrees(wrong, d_x, K, ATOL).failures("L^(-1) in place of L^(-T)")


def test_scale_forms_agree_on_the_same_samples():
    """Deterministic: with one key (the same ε), `γ`, `σ = γ·1` and `L = γI` give the same
    value and x-Jacobian, `∂γ = Σⱼ ∂σⱼ = tr ∂L`, and `∂σ` is the diagonal of `∂L`."""
    f = _closed_form_function()
    x, key, gamma = jnp.asarray(X), jax.random.key(9), 0.3

    @_fast_jit
    def run(key):
        return [smoothed_gradient(f, x, key, "logistic", scale, 64, "loo", "qmc", wrt_scale=True)
                for scale in (jnp.asarray(gamma), gamma * jnp.ones(2), gamma * jnp.eye(2))]

    scalar, diagonal, matrix = run(key)
    for a, b in ((scalar, diagonal), (scalar, matrix)):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scalar[2], diagonal[2].sum(axis=-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scalar[2], jnp.trace(matrix[2], axis1=-2, axis2=-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(diagonal[2], jnp.diagonal(matrix[2], axis1=-2, axis2=-1), rtol=1e-12, atol=1e-12)


# --- designs, jit, vmap, host functions ------------------------------------------------------------

def test_designs_are_stratified():
    """Latin hypercube: one point per stratum in each coordinate; cartesian: one point per
    cell of the k × k grid; rqmc: a shifted lattice, every coordinate a shifted grid (the
    multiplier is coprime to N). The points are recorded by a host function and mapped
    back to uniforms by the Laplace CDF."""
    seen = []

    def record(points):
        seen.append(np.array(points))
        return points

    x = jnp.zeros(2)
    for sampling, n in (("qmc", 64), ("cartesian", 64), ("rqmc", 64)):
        seen.clear()
        jax.block_until_ready(smoothed_gradient(record, x, jax.random.key(10), "laplace", 1.0, n, "none",
                                                sampling, host=True))
        epsilon = seen[-1]
        u = reference("laplace").cdf(epsilon)
        if sampling == "cartesian":
            cells = {tuple(c) for c in np.floor(u * 8).astype(int)}
            assert len(cells) == 64
        else:
            for column in u.T:
                assert sorted(np.floor(column * n).astype(int)) == list(range(n)), sampling
    generator = smoothing.korobov_generator(64, 2)
    assert generator[0] == 1 and math.gcd(int(generator[1]), 64) == 1


def test_jit_vmap_and_host_function_agree():
    """Under `jit` (x, key, scale traced) and `vmap` (over x and the scale) the estimates
    equal the eager ones; a NumPy function through `host=True` gives the same numbers as
    the same function in JAX, also under `vmap`."""
    f = _closed_form_function()
    a, c = np.asarray(A), np.asarray(C)

    def host_linear(points):
        return points @ a.T + c

    def jax_linear(y):
        return jnp.asarray(a) @ y + jnp.asarray(c)

    key, x = jax.random.key(11), jnp.asarray(X)
    eager = smoothed_gradient(f, x, key, "gaussian", 0.2, 64, "value", "rqmc", wrt_scale=True)
    jitted = _fast_jit(lambda x_, k, s: smoothed_gradient(f, x_, k, "gaussian", s, 64, "value", "rqmc",
                                                          wrt_scale=True))(x, key, 0.2)
    for e, j in zip(eager, jitted):
        np.testing.assert_allclose(e, j, rtol=1e-12, atol=1e-12)
    xs, scales = jnp.stack([x, x + 1.0]), jnp.array([0.2, 0.4])
    mapped = _fast_jit(jax.vmap(lambda x_, s: smoothed_gradient(f, x_, key, "laplace", s, 64, "loo",
                                                                "cartesian")))(xs, scales)
    singles = _fast_jit(lambda: [smoothed_gradient(f, xs[i], key, "laplace", scales[i], 64, "loo", "cartesian")
                                 for i in range(2)])()
    for i in range(2):
        np.testing.assert_allclose(mapped[1][i], singles[i][1], rtol=1e-12, atol=1e-12)
    on_host = smoothed_gradient(host_linear, x, key, "cauchy", 0.3, 32, "value", "qmc", host=True)
    in_jax = _fast_jit(lambda: smoothed_gradient(jax_linear, x, key, "cauchy", 0.3, 32, "value", "qmc"))()
    for h, j in zip(on_host, in_jax):
        np.testing.assert_allclose(h, j, rtol=1e-10, atol=1e-12)
    keys = jax.random.split(key, 3)
    host_mapped = _fast_jit(jax.vmap(lambda k: smoothed_gradient(host_linear, x, k, "gaussian", 0.3, 32, "loo",
                                                                 "mc", host=True)[1]))(keys)
    jax_mapped = _fast_jit(jax.vmap(lambda k: smoothed_gradient(jax_linear, x, k, "gaussian", 0.3, 32, "loo",
                                                                "mc")[1]))(keys)
    np.testing.assert_allclose(host_mapped, jax_mapped, rtol=1e-10, atol=1e-12)
    assert "smoothed_gradient" in derivatives.__all__ and derivatives.smoothed_gradient is smoothed_gradient


# --- validation ---------------------------------------------------------------------------------

def _linear(y):
    return 2.0 * y


@pytest.mark.parametrize("arguments, message", [
    (dict(noise="uniform"), r"noise must be one of \('gaussian'"),
    (dict(covariate="mean"), r"covariate must be one of \('none', 'value', 'loo'\)"),
    (dict(sampling="sobol"), r"sampling must be one of \('mc', 'qmc', 'rqmc', 'cartesian'\)"),
    (dict(scale=0.0), r"scale must be > 0"),
    (dict(scale=-1.0), r"scale must be > 0"),
    (dict(scale=np.array([0.1, -0.1])), r"scale must be > 0"),
    (dict(scale=np.nan), r"scale must be finite"),
    (dict(scale=np.ones((2, 2))), r"scale, as a matrix L .* must be invertible"),
    (dict(scale=np.ones(3)), r"scale must be a scalar, an array of the shape of x \(2,\) .* \(2, 2\)"),
    (dict(num_samples=1), r"num_samples must be an integer >= 2, got 1"),
    (dict(num_samples=2.0), r"num_samples must be an integer >= 2"),
    (dict(antithetic=True, noise="gumbel"), r"antithetic=True needs a symmetric density .* 'gumbel'"),
    (dict(antithetic=True, num_samples=7), r"num_samples must be even with antithetic=True"),
    (dict(antithetic=True, num_samples=2, covariate="loo"), r"num_samples must be >= 4 with covariate='loo'"),
    (dict(sampling="cartesian", num_samples=250), r"nearest feasible values: \[225, 256\], got 250"),
    (dict(sampling="cartesian", num_samples=256, antithetic=True), r"2 k\*\*n .* \[242, 288\], got 256"),
    (dict(wrt_scale=True, noise="cauchy", scale=np.eye(2)), r"wrt_scale=True with a matrix scale needs E\|ε\|"),
    (dict(x=np.array([np.inf, 0.0])), r"x must be finite"),
    (dict(x=np.zeros(0)), r"x must have at least one entry"),
    (dict(antithetic=1), r"antithetic must be True or False"),
    (dict(f=lambda y: "text"), r"f must return one real"),
])
def test_invalid_arguments_are_rejected(arguments, message):
    call = dict(f=_linear, x=np.array([0.1, 0.2]), key=jax.random.key(0), noise="gaussian", scale=0.1,
                num_samples=16, covariate="none", sampling="mc", antithetic=False)
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        smoothed_gradient(**call)


def test_non_callable_and_host_shape_errors():
    with pytest.raises(TypeError, match="f must be callable"):
        smoothed_gradient(3.0, np.zeros(2), jax.random.key(0))
    with pytest.raises(ValueError, match=r"f \(host=True\) must map a batch"):
        smoothed_gradient(lambda points: np.float64(1.0), np.zeros(2), jax.random.key(0), host=True)

"""Sketched Jacobian errors (`rates.error_curves(..., jacobian_probes=m)`, `rates.probes`).

- The probe variances of `rates.probes.probe_variance` against the exact variance over all
  2ᵖ Rademacher sign vectors, and against Gaussian Monte Carlo.
- Unbiasedness: each seed's sketch minus the same seed's full `‖J_k − J*‖²_F` (the same
  minibatches) has mean zero at every checkpoint, by a z-test on the paired differences;
  the sketched mean agrees with `rates.exact_curves` on quadratic problems; probes that are
  not isotropic (too small, or correlated) are rejected by the same tests.
- Seed by seed: the recorded sketch equals `(1/m)Σᵢ‖(J_k − J*)vᵢ‖²` computed from
  `derivatives.unrolled` with the seed's probes drawn as documented, and the iterates are
  those of the full run.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import monte_carlo_agrees

import derivatives
import problems
import rates
from derivatives.sgd import DirectionalTangents
from experiments.rate_checks import setup
from experiments.regimes import QUICK, REGIMES
from rates.curves import seed_statistics
from rates.probes import PROBE_FOLD, Probes, optimal_probe_count, probe_variance, work_normalised_variance

# z-tests: |z| ≤ Z at every checkpoint. Per checkpoint, a true claim fails with probability
# 2·P(t₆₃ > 5) ≈ 4.6e-6 (2·P(t₃₁ > 5) ≈ 2.2e-5 for the report's 32 seeds); with Bonferroni
# over at most 12 checkpoints, 6 tested runs and 8 regimes, the file's false-failure
# probability is below 2.5e-3 (the keys are fixed, so a run either always passes or always
# fails).
Z = 5.0
SEEDS = 64
CHECKPOINTS = 10


def _problem():
    return problems.weighted_ridge(60, 8, seed=3)


def _options(problem, **extra):
    step = 0.5 / float(problem.constants(problem.theta0).L)
    return dict(step_size=step, num_steps=600, num_seeds=SEEDS, key=jax.random.key(7),
                num_checkpoints=CHECKPOINTS) | extra


@pytest.fixture(scope="module")
def full_run():
    problem = _problem()
    return problem, seed_statistics(problem, **_options(problem))


# --- the variance of one probe ---------------------------------------------------------------

def test_rademacher_variance_is_exact_over_all_sign_vectors():
    error = np.random.default_rng(0).normal(size=(5, 6))
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=6)))
    values = np.sum((signs @ error.T) ** 2, axis=1)
    np.testing.assert_allclose(values.mean(), np.sum(error**2), rtol=1e-12)
    np.testing.assert_allclose(values.var(), probe_variance(error, "rademacher"), rtol=1e-12)


def test_gaussian_variance_against_monte_carlo():
    # 200,000 probes: the sample variance has relative standard error about
    # sqrt((κ − 1)/N) ≈ 0.01 for these quadratic forms; 6% is 5 of them or more.
    error = np.random.default_rng(1).normal(size=(4, 5))
    probes_ = np.asarray(jax.random.normal(jax.random.key(0), (200_000, 5), dtype=jnp.float64))
    values = np.sum((probes_ @ error.T) ** 2, axis=1)
    np.testing.assert_allclose(values.var(), probe_variance(error, "gaussian"), rtol=0.06)
    assert probe_variance(error, "rademacher") < probe_variance(error, "gaussian")


def test_rademacher_is_exact_on_a_diagonal_gram_matrix():
    assert probe_variance(np.diag([1.0, 2.0, 3.0]), "rademacher") == 0.0


# --- unbiasedness ----------------------------------------------------------------------------

@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
@pytest.mark.parametrize("count", [1, 3])
def test_sketch_minus_full_has_mean_zero(full_run, distribution, count):
    problem, full = full_run
    sketched = seed_statistics(problem, **_options(problem, jacobian_probes=count,
                                                   probe_distribution=distribution))
    differences = sketched.statistic("jacobian_error") - full.statistic("jacobian_error")
    agreement = monte_carlo_agrees(differences, 0.0, Z)
    assert agreement.ok.all(), agreement
    assert np.all(np.std(differences, axis=0) > 0)   # the probes do add noise, from k = 0 on
    np.testing.assert_allclose(sketched.statistic("iterate_error"), full.statistic("iterate_error"), rtol=1e-12)
    assert sketched.curves().jacobian_probes == count


def uniform(key, shape):
    """Entries uniform on [−1, 1]: E[vvᵀ] = I/3."""
    return jax.random.uniform(key, shape, dtype=jnp.float64, minval=-1.0, maxval=1.0)


def correlated(key, shape):
    """Unit variances, but every pair of entries correlated 0.5: E[vvᵀ] = (I + 11ᵀ)/2."""
    common_key, own_key = jax.random.split(key)
    common = jax.random.normal(common_key, (*shape[:-1], 1), dtype=jnp.float64)
    return jnp.sqrt(0.5) * (common + jax.random.normal(own_key, shape, dtype=jnp.float64))


def unbalanced(key, shape):
    """Rademacher signs scaled by √1.5 on the first half of θ's coordinates and √0.5 on the
    rest: E[vvᵀ] diagonal with trace p, but not I."""
    half = shape[-1] // 2
    scale = jnp.where(jnp.arange(shape[-1]) < half, jnp.sqrt(1.5), jnp.sqrt(0.5))
    return scale * jax.random.rademacher(key, shape, dtype=jnp.float64)


@pytest.mark.parametrize("distribution", [uniform, unbalanced])
def test_probes_that_are_not_isotropic_are_caught(full_run, distribution):
    # Correlated probes bias the sketch by half the off-diagonal sum of (J_k − J*)ᵀ(J_k − J*),
    # which on this weighted ridge is 7% of the trace at k = 0: 64 seeds do not resolve it
    # (|z| ≈ 1). They are caught on least squares below, where that sum is 76% of the trace.
    problem, full = full_run
    sketched = seed_statistics(problem, **_options(problem, jacobian_probes=3, probe_distribution=distribution))
    differences = sketched.statistic("jacobian_error") - full.statistic("jacobian_error")
    assert not monte_carlo_agrees(differences, 0.0, Z).ok.all()


def test_sketched_mean_agrees_with_the_exact_curves():
    problem = problems.least_squares(40, 4, "none", param_dim=6, seed=2)
    options = _options(problem, jacobian_probes=2)
    exact = rates.exact_curves(problem, step_size=options["step_size"], num_steps=options["num_steps"],
                               num_checkpoints=CHECKPOINTS)
    sketched = seed_statistics(problem, **options)
    agreement = monte_carlo_agrees(sketched.statistic("jacobian_error"), exact.jacobian_error, Z, rounding=1e-10)
    assert agreement.ok.all(), agreement
    # The negative check: correlated probes on the same problem are rejected.
    wrong = seed_statistics(problem, **(options | {"probe_distribution": correlated}))
    assert not monte_carlo_agrees(wrong.statistic("jacobian_error"), exact.jacobian_error, Z).ok.all()


# --- seed by seed ----------------------------------------------------------------------------

def test_each_seed_records_its_probes_sketch_of_the_unrolled_jacobian(full_run):
    # Recomputed from derivatives.unrolled (J_k itself) and the probes drawn as documented:
    # the sketch, its probe variance, the sketch of ‖J*‖² and the error of (1 + δ)J_k.
    problem, _ = full_run
    options = _options(problem, jacobian_probes=3, num_seeds=4, num_steps=200, num_checkpoints=4)
    sketched = seed_statistics(problem, **options)
    delta = 0.3
    scaled = sketched.scaled_jacobian_error(delta)
    jac_star = np.asarray(problem.solution_jacobian(problem.theta0))
    for seed, seed_key in enumerate(jax.random.split(options["key"], options["num_seeds"])):
        directions = np.asarray(Probes(3).draw(seed_key, problem.param_dim))
        np.testing.assert_allclose(sketched.jac_star_sq[seed], np.mean(np.sum((jac_star @ directions.T) ** 2, 0)),
                                   rtol=1e-12)
        for c, k in enumerate(sketched.steps):
            _, jac = derivatives.unrolled(problem, problem.theta0, seed_key, step_size=options["step_size"],
                                          num_steps=int(k), mode="tangent")
            per_probe = np.sum(((np.asarray(jac) - jac_star) @ directions.T) ** 2, axis=0)
            np.testing.assert_allclose(sketched.statistic("jacobian_error")[seed, c], per_probe.mean(), rtol=1e-9)
            np.testing.assert_allclose(sketched.probe_variance[seed, c], per_probe.var(ddof=1), rtol=1e-7)
            scaled_direct = np.sum((((1 + delta) * np.asarray(jac) - jac_star) @ directions.T) ** 2, axis=0).mean()
            np.testing.assert_allclose(scaled[seed, c], scaled_direct, rtol=1e-9)


def test_the_recorded_probe_variance_is_the_probe_noise(full_run):
    """Each seed's sketch Y differs from its full error X (the same minibatches) by probe
    noise of variance σ_p,s²/m given the seed's J_k, and the recorded spread `probe_variance`
    estimates σ_p,s² without bias; so D = (Y − X)² − probe_variance/m has mean zero at every
    checkpoint past k = 0 (z-test over the 64 seeds, |z| ≤ Z). This is what
    `variance_components` rests on. A spread without its 1/m (4× too large: |z| ≈ 11 at
    these keys, against at most 2.2 for the true one) must be caught."""
    problem, full = full_run
    count = 4
    sketched = seed_statistics(problem, **_options(problem, jacobian_probes=count))
    noise = (sketched.statistic("jacobian_error") - full.statistic("jacobian_error"))[:, 1:] ** 2
    spread = sketched.probe_variance[:, 1:] / count
    agreement = monte_carlo_agrees(noise - spread, 0.0, Z)
    assert agreement, agreement.failures("checkpoint ")
    assert not monte_carlo_agrees(noise - count * spread, 0.0, Z)
    _, probe_part = sketched.variance_components()
    np.testing.assert_allclose(probe_part, sketched.probe_variance.mean(axis=0), rtol=1e-12)


def test_directional_tangents_with_a_square_basis_give_the_jacobian(full_run):
    problem, _ = full_run
    basis = jax.random.normal(jax.random.key(1), (problem.param_dim, problem.param_dim), dtype=jnp.float64)
    sgd = derivatives.sgd.MinibatchSGD(problem, rates.constant(0.01), 1)
    method = DirectionalTangents(basis)
    _, jac, _ = derivatives.sgd.solve_stepwise(method, sgd, problem.theta0, jnp.zeros(problem.dim),
                                               jax.random.key(2), 30)
    _, reference = derivatives.unrolled(problem, problem.theta0, jax.random.key(2), step_size=0.01, num_steps=30,
                                        mode="tangent")
    np.testing.assert_allclose(jac, reference, rtol=1e-9, atol=1e-13)
    with pytest.raises(ValueError, match="do not determine"):
        DirectionalTangents(basis[:2]).jacobian(jnp.zeros((2, problem.dim)))


# --- the choice of m -------------------------------------------------------------------------

def test_the_optimal_count_minimises_the_work_normalised_variance():
    for seed_var, probe_var, p, cost in [(0.0026, 0.036, 64, 2.0), (0.0003, 0.0093, 256, 2.0), (1.0, 0.01, 64, 1.0)]:
        best = optimal_probe_count(seed_var, probe_var, p, cost)
        works = {m: work_normalised_variance(seed_var, probe_var, m, p, cost) for m in range(1, p)}
        full = work_normalised_variance(seed_var, probe_var, None, p, cost)
        if best is None:
            assert full <= min(works.values())
        else:
            assert works[best] == min(works.values()) and works[best] < full
    assert optimal_probe_count(1.0, 1.0, 2, 0.0) is None   # p ≤ 2: the full Jacobian


# --- errors ----------------------------------------------------------------------------------

def test_errors():
    problem = _problem()
    with pytest.raises(ValueError, match="probe distribution"):
        rates.error_curves(problem, **_options(problem, jacobian_probes=2, probe_distribution="cauchy"))
    with pytest.raises(ValueError, match="jacobian_probes"):
        rates.error_curves(problem, **_options(problem, jacobian_probes=0))
    with pytest.raises(ValueError, match="below"):
        rates.error_curves(problem, **_options(problem, jacobian_probes=1, num_steps=PROBE_FOLD))
    bilevel = problems.bilevel.ridge_validation(30, 10, 4)
    from rates.hypergradients import hypergradient_curves
    with pytest.raises(ValueError, match="full Jacobian"):
        hypergradient_curves(bilevel, step_size=0.01, num_steps=10, num_seeds=2, jacobian_probes=2)


# --- the rate report's regimes ---------------------------------------------------------------

@pytest.mark.parametrize("regime", REGIMES, ids=lambda regime: regime.name)
def test_sketched_and_full_errors_agree_on_every_regime_of_the_report(regime):
    # The report's problems have p = 1 or 2, so "auto" carries the full Jacobian there (the
    # same numbers); one probe per seed is still unbiased, and its paired differences
    # from the full run have mean zero within Z standard errors at every checkpoint (for
    # p = 1 a Rademacher probe is exact: ‖±A‖² = ‖A‖²). The regimes run at most 20,000 steps.
    run = setup(regime, QUICK)
    options = dict(step_size=run.schedule, num_steps=min(run.num_steps, 20_000), num_seeds=QUICK.num_seeds,
                   key=jax.random.key(QUICK.seed), num_checkpoints=12)
    full = seed_statistics(run.problem, run.theta, **options)
    auto = seed_statistics(run.problem, run.theta, jacobian_probes="auto", **options)
    assert auto.probes is None
    np.testing.assert_array_equal(auto.values, full.values)
    sketched = seed_statistics(run.problem, run.theta, jacobian_probes=1, **options)
    differences = sketched.statistic("jacobian_error") - full.statistic("jacobian_error")
    agreement = monte_carlo_agrees(differences, 0.0, Z, rounding=1e-12)
    assert agreement.ok.all(), agreement
    if run.problem.param_dim == 1:
        np.testing.assert_allclose(sketched.statistic("jacobian_error"), full.statistic("jacobian_error"),
                                   rtol=1e-12, atol=1e-300)

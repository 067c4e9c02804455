"""Diagonalisation SGD: the driver's Adam update, its schedules and their certified
conditions, the trace it records, and convergence on mixture1d, where the crisp ELBO's
maximiser is known: θ* solves `θ + 10.5·φ(θ) = 0` (θ* ≈ −1.4553)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

import derivatives
from problems import programs
from rates import dsgd

THETA_STAR = optimize.brentq(lambda t: t + 10.5 * stats.norm.pdf(t), -3.0, 0.0)


def test_adam_step_matches_the_formula_of_the_protocol():
    rng = np.random.default_rng(0)
    theta, first, second = rng.normal(size=3), np.zeros(3), np.zeros(3)
    reference_theta, m, s = theta.copy(), np.zeros(3), np.zeros(3)
    for k in range(5):
        gradient = rng.normal(size=3)
        theta, first, second = dsgd.adam_step(theta, first, second, gradient, k, 0.01)
        m = 0.9 * m + 0.1 * gradient
        s = 0.999 * s + 0.001 * gradient**2
        reference_theta = reference_theta - 0.01 * (m / (1 - 0.9 ** (k + 1))) / (np.sqrt(s / (1 - 0.999 ** (k + 1))) + 1e-8)
    np.testing.assert_allclose(theta, reference_theta, rtol=1e-13)


def test_paper_accuracy_schedule():
    schedule = dsgd.paper_accuracy(0.14, 0.5)
    assert float(schedule(3999)) == pytest.approx(0.14, rel=1e-12)
    assert float(schedule(0)) == pytest.approx(0.14 * 4000**0.5, rel=1e-12)


def test_theory_schedules_meet_the_certified_conditions():
    for depth in (0, 1, 2, 3, 5):
        steps, accuracy = dsgd.theory_schedules(depth, c=0.5, eta0=1.0)
        a, r = 0.9, float(accuracy.beta)
        assert a <= 1 and r > 0 and 2 * a - r * max(depth, 0) > 1
        assert float(steps(0)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="noise_summable"):
        dsgd.theory_schedules(3, c=0.5, eta0=1.0, a=1.0, r=0.5)  # 2 − 1.5 < 1
    with pytest.raises(ValueError, match="steps_diverge"):
        dsgd.theory_schedules(1, c=0.5, eta0=1.0, a=1.2, r=0.5)


def test_trace_records_the_elbo_and_the_variance_at_each_logging_point():
    program = programs.mixture1d()
    trace = dsgd.train(program, "smoothed", key=jax.random.PRNGKey(0), accuracy=0.3, num_steps=200, log_every=50,
                       num_samples=4, num_log_samples=500)
    np.testing.assert_array_equal(trace.steps, [0, 50, 100, 150, 200])
    assert trace.elbo.shape == trace.avg_variance.shape == trace.norm_variance.shape == (5,)
    np.testing.assert_allclose(trace.eta, 0.3)
    # The first point is θ₀ = 0: its ELBO is within 5 standard errors of the exact one
    # (500 samples, sd of f ≈ 5.3; false failure ≈ 6e-7).
    exact = float(programs.mixture1d_elbo(jnp.zeros(1)))
    assert abs(trace.elbo[0] - exact) < 5 * 5.3 / np.sqrt(500)
    # For one parameter the two variance statistics are the same thing, up to the sign of ĝ.
    assert np.all(trace.avg_variance > 0) and np.all(trace.norm_variance > 0)
    assert np.all(trace.norm_variance <= trace.avg_variance * (1 + 1e-12))


def test_variance_statistics():
    samples = jnp.asarray(np.random.default_rng(1).normal(size=(50, 3)) * [1.0, 2.0, 3.0])
    component, norm = dsgd.variance_statistics(samples)
    assert float(component) == pytest.approx(np.mean(np.var(np.asarray(samples), axis=0, ddof=1)), rel=1e-12)
    assert float(norm) == pytest.approx(np.var(np.linalg.norm(np.asarray(samples), axis=1), ddof=1), rel=1e-12)


def test_dsgd_with_certified_schedules_finds_the_crisp_optimum_and_reparam_does_not():
    """SGD, 3000 steps of 16 samples. DSGD (γ_k = 0.5(k+1)^−0.9, η_k = 0.5(k+1)^−0.4, admissible
    for ℓ = 1) ends within 0.1 of θ*; Reparam, whose expectation is −θ (it misses the boundary
    term), ends near 0, more than 1 away. Fixed keys: deterministic."""
    program = programs.mixture1d()
    steps, accuracy = dsgd.theory_schedules(program.nesting_depth, c=0.5, eta0=0.5)
    key = jax.random.PRNGKey(3)
    smoothed = dsgd.train(program, "smoothed", key=key, accuracy=accuracy, optimizer="sgd", step_size=steps,
                          num_steps=3000, log_every=1000, num_log_samples=100)
    reparam = dsgd.train(program, "reparam", key=key, optimizer="sgd", step_size=steps, num_steps=3000,
                         log_every=1000, num_log_samples=100)
    assert abs(smoothed.theta[0] - THETA_STAR) < 0.1
    assert abs(reparam.theta[0]) < 0.2 and abs(reparam.theta[0] - THETA_STAR) > 1.0
    # ... and the crisp ELBO shows it.
    exact = programs.mixture1d_elbo
    assert float(exact(jnp.asarray(smoothed.theta))) > float(exact(jnp.asarray(reparam.theta))) + 1.0


def test_bad_arguments_are_rejected():
    program = programs.mixture1d()
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="accuracy"):
        dsgd.train(program, "smoothed", key=key)
    with pytest.raises(ValueError, match="estimator"):
        dsgd.train(program, "magic", key=key)
    with pytest.raises(ValueError, match="optimizer"):
        dsgd.train(program, "score", key=key, optimizer="lbfgs")
    with pytest.raises(ValueError, match="multiple"):
        dsgd.train(program, "score", key=key, num_steps=150, log_every=100)
    with pytest.raises(ValueError, match="theta0"):
        dsgd.train(program, "score", key=key, theta0=jnp.zeros(2))
    assert derivatives.ESTIMATORS


def test_a_grid_of_accuracies_runs_as_one_computation_with_the_same_random_numbers():
    program = programs.mixture1d()
    options = dict(key=jax.random.PRNGKey(2), num_steps=100, log_every=50, num_samples=4, num_log_samples=50)
    grid = dsgd.train_grid(program, [dsgd.paper_accuracy(eta, 0.5) for eta in (0.1, 0.2)], **options)
    for eta, trace in zip((0.1, 0.2), grid):
        single = dsgd.train(program, "smoothed", accuracy=dsgd.paper_accuracy(eta, 0.5), **options)
        np.testing.assert_allclose(trace.theta, single.theta, rtol=1e-12)
        np.testing.assert_allclose(trace.elbo, single.elbo, rtol=1e-12)
        np.testing.assert_allclose(trace.eta, single.eta, rtol=1e-12)
    with pytest.raises(ValueError, match="one kind"):
        dsgd.train_grid(program, [0.1, dsgd.paper_accuracy(0.1, 0.5)], **options)

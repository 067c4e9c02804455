"""Bad input raises an error that names the argument, before anything is compiled."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import derivatives
import problems
import rates
from problems.strategies import log_cosh_ridge_loss


@pytest.mark.parametrize("make", [problems.ridge, problems.logistic])
@pytest.mark.parametrize("lam", [0.0, -1.0])
def test_nonpositive_regularisation_is_rejected(make, lam):
    with pytest.raises(ValueError, match="must be > 0"):
        make(20, 3, regularisation=lam)
    problem = make(20, 3)
    with pytest.raises(ValueError, match=r"theta .*must be > 0"):
        problem.solution(jnp.array([lam]))


def test_weighted_ridge_rejects_one_nonpositive_penalty():
    problem = problems.weighted_ridge(20, 3)
    with pytest.raises(ValueError, match="per-feature penalties"):
        problem.solution_jacobian(jnp.array([0.1, -0.1, 0.1]))


@pytest.mark.parametrize("theta", [jnp.array([0.1, 0.2]), jnp.array(0.1), jnp.ones((1, 1))])
def test_theta_of_the_wrong_shape_is_rejected(theta):
    problem = problems.ridge(20, 3)
    with pytest.raises(ValueError, match=r"theta must have shape \(1,\)"):
        problem.solution(theta)
    with pytest.raises(ValueError, match=r"theta must have shape \(1,\)"):
        derivatives.unrolled(problem, theta, jax.random.key(0), step_size=0.1, num_steps=3)


def test_nan_theta_is_rejected():
    with pytest.raises(ValueError, match="theta must be finite"):
        problems.least_squares(20, 3).constants(jnp.array([np.nan, 1.0]))


def test_nan_in_data_is_rejected():
    features = np.random.default_rng(0).normal(size=(20, 3))
    targets = features.sum(1)
    bad = features.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="features contains NaN"):
        problems.ridge(features=bad, targets=targets)
    with pytest.raises(ValueError, match=r"data\[0\] contains NaN"):
        problems.from_loss(log_cosh_ridge_loss, (bad, targets), jnp.array([0.1]), dim=3)
    with pytest.raises(ValueError, match="features contains NaN"):
        problems.logistic(features=bad, labels=np.where(targets > 0, 1.0, -1.0))
    with pytest.raises(ValueError, match="targets contains NaN"):
        problems.ridge(features=features, targets=np.where(targets > 0, np.nan, 1.0))


def test_double_interpolation_with_more_features_than_samples_is_rejected():
    with pytest.raises(ValueError, match=r"n_samples >= n_features.*interpolate"):
        problems.least_squares(5, 8, "double")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        problems.least_squares(20, 3, "triple")


@pytest.mark.parametrize("step_size", [0.0, -0.1, float("nan")])
def test_nonpositive_step_size_is_rejected(step_size):
    problem = problems.ridge(20, 3)
    with pytest.raises(ValueError, match=r"step size.*> 0"):
        derivatives.unrolled(problem, problem.theta0, jax.random.key(0), step_size=step_size, num_steps=3)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: rates.inverse_time(-1.0, 1.0), "a .*> 0"),
        (lambda: rates.inverse_time(1.0, 0.0), "k0 .*> 0"),
        (lambda: rates.polynomial_decay(1.0, 1.0, 1.5), r"beta .*\(0, 1\]"),
        (lambda: rates.as_schedule("fast"), "step_size must be"),
        (lambda: rates.accuracy(0.0, 0.5), "eta0 .*> 0"),
        (lambda: rates.accuracy(1.0, 1.5), r"beta .*\(0, 1\]"),
    ],
)
def test_bad_schedules_are_rejected(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="sideways"), "mode must be one of"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(num_steps=-1), "num_steps must be an integer >= 0"),
        (dict(x_init=jnp.zeros(4)), r"x_init must have shape \(3,\)"),
    ],
)
def test_bad_unrolled_arguments_are_rejected(kwargs, match):
    problem = problems.ridge(20, 3)
    settings = dict(step_size=0.1, num_steps=3) | kwargs
    with pytest.raises(ValueError, match=match):
        derivatives.unrolled(problem, problem.theta0, jax.random.key(0), **settings)


def test_bad_quadratic_and_from_loss_arguments_are_rejected():
    with pytest.raises(ValueError, match="mu <= L"):
        problems.quadratic(3, 1, mu=2.0, L=1.0)
    with pytest.raises(ValueError, match="hess_noise"):
        problems.quadratic(3, 1, hess_noise=1.0)
    with pytest.raises(ValueError, match="n_samples must be even"):
        problems.quadratic(3, 1, n_samples=7)
    with pytest.raises(ValueError, match="leading sample axis"):
        problems.from_loss(log_cosh_ridge_loss, (np.ones((4, 3)), np.ones(5)), jnp.array([0.1]), dim=3)
    with pytest.raises(ValueError, match="scalar"):
        problems.from_loss(lambda x, t, s: x, (np.ones((4, 3)), np.ones(4)), jnp.array([0.1]), dim=3)


def test_schedules_evaluate_inside_jit_without_recompiling():
    traces = []

    @jax.jit
    def first_steps(schedule):
        traces.append(1)
        return jax.vmap(schedule)(jnp.arange(3))

    np.testing.assert_allclose(first_steps(rates.inverse_time(2.0, 4.0)), [0.5, 0.4, 2.0 / 6.0], rtol=1e-15)
    np.testing.assert_allclose(first_steps(rates.inverse_time(3.0, 3.0)), [1.0, 0.75, 0.6], rtol=1e-15)
    np.testing.assert_allclose(first_steps(rates.constant(0.3)), [0.3] * 3, rtol=1e-15)
    assert len(traces) == 2  # one trace per schedule class, not per value
    np.testing.assert_allclose(first_steps(rates.accuracy(0.1, 0.5, scale=4000.0)),
                               0.1 * (4000.0 / np.arange(1, 4)) ** 0.5, rtol=1e-14)


# --- divergence, schedules and starting points: errors, not NaN --------------------------------

RIDGE = problems.ridge(50, 4, seed=0)
TWO_OVER_L = 2.0 / float(RIDGE.constants().L)


@pytest.mark.parametrize("mode", derivatives.MODES)
def test_a_diverging_run_is_an_error_naming_the_step_and_two_over_L(mode):
    with pytest.warns(derivatives.StepSizeWarning, match=r"step size 1e\+06 exceeds 2/L = "):
        with pytest.raises(derivatives.DivergenceError,
                           match=rf"not finite from step k = \d+ on, with step size α_0 = 1e\+06 .* against "
                                 rf"2/L = {TWO_OVER_L:.6g}"):
            derivatives.unrolled(RIDGE, RIDGE.theta0, jax.random.key(0), step_size=1e6, num_steps=100, mode=mode)


def test_diverging_curves_are_an_error_naming_the_first_checkpoint():
    with pytest.warns(derivatives.StepSizeWarning):
        with pytest.raises(derivatives.DivergenceError, match=r"from the checkpoint k = \d+ on .* 2/L = "):
            rates.error_curves(RIDGE, step_size=1e6, num_steps=100, num_seeds=4)


def test_a_step_above_two_over_L_warns_but_runs():
    """Above 2/L is what a study of instability wants: a warning, and the run goes on."""
    with pytest.warns(derivatives.StepSizeWarning, match="SGD may diverge"):
        x, _ = derivatives.unrolled(RIDGE, RIDGE.theta0, jax.random.key(0), step_size=1.05 * TWO_OVER_L,
                                    num_steps=3)
    assert np.all(np.isfinite(x))
    derivatives.unrolled(RIDGE, RIDGE.theta0, jax.random.key(0), step_size=0.95 * TWO_OVER_L, num_steps=3)


@pytest.mark.parametrize(
    "schedule, match",
    [
        (lambda k: -0.1, r"α_0 = -0.1"),  # gradient ascent
        (lambda k: jnp.where(k == 7, jnp.nan, 0.01), r"α_7 = nan"),
        (lambda k: jnp.where(k >= 20, 0.0, 0.01), r"α_20 = 0.0"),
    ],
)
def test_a_schedule_that_is_not_positive_and_finite_where_it_is_used_is_rejected(schedule, match):
    with pytest.raises(ValueError, match=r"step_size must be finite and > 0 at every step it is used .*" + match):
        derivatives.unrolled(RIDGE, RIDGE.theta0, jax.random.key(0), step_size=schedule, num_steps=30)
    with pytest.raises(ValueError, match=match):
        rates.error_curves(RIDGE, step_size=schedule, num_steps=30, num_seeds=2)


def test_a_schedule_is_checked_only_at_the_steps_used():
    negative_late = lambda k: jnp.where(k >= 20, -1.0, 0.01)  # noqa: E731
    derivatives.unrolled(RIDGE, RIDGE.theta0, jax.random.key(0), step_size=negative_late, num_steps=20)


def test_traced_step_sizes_are_not_inspected():
    """Under `vmap` over step sizes nothing concrete exists to check; the run is as asked."""
    run = lambda alpha: derivatives.unrolled(RIDGE, RIDGE.theta0, jax.random.key(0),  # noqa: E731
                                             step_size=rates.constant(alpha), num_steps=5)[0]
    assert jax.vmap(run)(jnp.array([0.01, 0.02])).shape == (2, RIDGE.dim)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_starting_point_is_rejected(bad):
    x_init = np.zeros(RIDGE.dim)
    x_init[1] = bad
    with pytest.raises(ValueError, match="x_init must be finite"):
        derivatives.unrolled(RIDGE, RIDGE.theta0, jax.random.key(0), step_size=0.01, num_steps=3, x_init=x_init)
    with pytest.raises(ValueError, match="x_init must be finite"):
        rates.error_curves(RIDGE, step_size=0.01, num_steps=3, num_seeds=2, x_init=x_init)

"""Derivatives through unrolled SGD: four modes (forward, reverse, the explicit recursion and
the Hessian-free tangent recursion), finite differences, an explicit NumPy reference,
transformations, and the linear rate of full-batch gradient descent."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_relative_close, relative_error
from hypothesis import given
from hypothesis import strategies as st

import derivatives
import problems
import rates
from problems.strategies import EXACT_KINDS, problems_and_thetas

NUM_STEPS = 60


def stable_schedule(problem, theta, decreasing: bool):
    """α = 1/(2L) constant, or a/(k + k0) with a = 1/μ and α_0 = 1/(2L)."""
    constants = problem.constants(theta)
    L, mu = float(constants.L), float(constants.mu)
    return rates.inverse_time(1.0 / mu, 2.0 * L / mu) if decreasing else rates.constant(0.5 / L)


@given(problems_and_thetas(), st.sampled_from((1, 3)), st.booleans())
def test_reverse_recursion_and_tangent_modes_agree_with_forward_mode(drawn, batch_size, decreasing):
    """Four ways to one derivative, on the same minibatches: x_K to 1e-12 and J_K to 1e-10
    relative (rounding, amplified at most by the conditioning of the drawn problems)."""
    problem, theta = drawn
    schedule = stable_schedule(problem, theta, decreasing)
    results = {
        mode: derivatives.unrolled(problem, theta, jax.random.key(4), step_size=schedule,
                                   num_steps=NUM_STEPS, batch_size=batch_size, mode=mode)
        for mode in derivatives.MODES
    }
    x_forward, jac_forward = results["forward"]
    assert set(results) == {"forward", "reverse", "recursion", "tangent"}
    for mode in ("reverse", "recursion", "tangent"):
        assert_relative_close(results[mode][0], x_forward, 1e-12, f"x_K {mode} vs forward")
        assert_relative_close(results[mode][1], jac_forward, 1e-10, f"J_K {mode} vs forward")


@given(problems_and_thetas())
def test_forward_matches_same_key_finite_differences(drawn):
    """Central differences of θ ↦ x_K(θ) with the key held fixed; a different key for
    the differences is far off, so the comparison can fail."""
    problem, theta = drawn
    schedule = stable_schedule(problem, theta, decreasing=False)

    def final_iterate(key):
        return lambda t: derivatives.unrolled(problem, t, key, step_size=schedule, num_steps=NUM_STEPS)[0]

    key = jax.random.key(5)
    _, jac = derivatives.unrolled(problem, theta, key, step_size=schedule, num_steps=NUM_STEPS)
    step = 1e-5 * float(jnp.max(jnp.abs(theta)))
    assert_relative_close(jac, derivatives.central_difference_jacobian(final_iterate(key), theta, step), 1e-6,
                          "forward vs same-key central differences")
    other = derivatives.central_difference_jacobian(final_iterate(jax.random.key(6)), theta, step)
    assert relative_error(jac, other) > 1e-6 or float(problem.constants(theta).sigma2_jac) < 1e-20


def numpy_reference(problem, theta, key, alpha, num_steps, batch_size):
    """SGD and the derivative recursion for least squares, written out in NumPy with the
    closed-form per-sample derivatives ∇²ₓₓfᵢ = aᵢaᵢᵀ and ∇²ₓθfᵢ = −aᵢgᵢᵀ."""
    features, targets0, target_jac = (np.asarray(a) for a in problem.data)
    theta = np.asarray(theta)
    x = np.zeros(problem.dim)
    jac = np.zeros((problem.dim, theta.size))
    for k in range(num_steps):
        # The documented sampling contract: indices from fold_in(key, k), uniform with replacement.
        index = np.asarray(problems.uniform_indices(jax.random.fold_in(key, k), batch_size, features.shape[0]))
        a, y, g = features[index], targets0[index] + target_jac[index] @ theta, target_jac[index]
        gradient = a.T @ (a @ x - y) / batch_size
        jac_step = (a.T @ a @ jac - a.T @ g) / batch_size
        x, jac = x - alpha * gradient, jac - alpha * jac_step
    return x, jac


@pytest.mark.parametrize("mode", derivatives.MODES)
@pytest.mark.parametrize("interpolation", problems.INTERPOLATION_MODES)
def test_unrolled_matches_explicit_numpy_recursion(mode, interpolation):
    problem = problems.least_squares(30, 4, interpolation, param_dim=3, seed=2)
    alpha = 0.5 / float(problem.constants().L)
    key = jax.random.key(7)
    x, jac = derivatives.unrolled(problem, problem.theta0, key, step_size=alpha, num_steps=40, batch_size=2, mode=mode)
    x_ref, jac_ref = numpy_reference(problem, problem.theta0, key, alpha, 40, 2)
    assert_relative_close(x, x_ref, 1e-12, "x_K")
    assert_relative_close(jac, jac_ref, 1e-12, "J_K")


def test_same_key_gives_bit_identical_results_and_other_keys_differ():
    problem = problems.logistic(30, 3)
    def run(key):
        return derivatives.unrolled(problem, problem.theta0, key, step_size=0.1, num_steps=30)

    first, again, other = run(jax.random.key(0)), run(jax.random.key(0)), run(jax.random.key(1))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])


def test_unrolled_under_jit_and_vmap_over_keys_and_thetas():
    problem = problems.weighted_ridge(30, 3)
    settings = dict(step_size=rates.inverse_time(2.0, 20.0), num_steps=25, batch_size=2)
    keys = jax.random.split(jax.random.key(8), 3)
    thetas = problem.theta0 * jnp.array([[0.5], [1.0], [2.0]])

    over_keys = jax.vmap(lambda k: derivatives.unrolled(problem, problem.theta0, k, **settings))(keys)
    over_thetas = jax.jit(jax.vmap(lambda t: derivatives.unrolled(problem, t, keys[0], **settings)))(thetas)
    for i in range(3):
        _, jac = derivatives.unrolled(problem, problem.theta0, keys[i], **settings)
        assert_relative_close(over_keys[1][i], jac, 1e-13, "vmap over keys")
        _, jac = derivatives.unrolled(problem, thetas[i], keys[0], **settings)
        assert_relative_close(over_thetas[1][i], jac, 1e-13, "vmap over θ")
    assert over_keys[1].shape == (3, 3, 3)


def test_zero_steps_return_the_initial_point_and_a_zero_jacobian():
    problem = problems.ridge(20, 3)
    x, jac = derivatives.unrolled(problem, problem.theta0, jax.random.key(0), step_size=0.1, num_steps=0)
    assert np.array_equal(x, np.zeros(3)) and np.array_equal(jac, np.zeros((3, 1)))


@given(problems_and_thetas(EXACT_KINDS))
def test_full_batch_gradient_descent_jacobian_converges_linearly(drawn):
    """Gradient descent with α = 1/L from x₀ = 0, J₀ = 0. With q = 1 − αμ,

        ‖x_k − x*‖ ≤ qᵏ ‖x*‖,
        ‖J_k − J*‖_F ≤ qᵏ ‖J*‖_F + α M k q^(k−1) ‖x*‖,   M = L_H ‖J*‖_F + L_C

    (certificates `gd_contraction` and `gd_jacobian_linear_rate`). The bound tends to
    zero linearly; the measured errors must stay under it at every checked k, up to a
    relative rounding allowance of 1e-9."""
    problem, theta = drawn
    c = problem.constants(theta)
    alpha = 1.0 / float(c.L)
    x_star, jac_star = problem.solution(theta), problem.solution_jacobian(theta)
    x0_error, jac0_error = float(jnp.linalg.norm(x_star)), float(jnp.linalg.norm(jac_star))
    # Enough steps for q^K ≤ e^(−30), checked at a quarter, half and all of them. The step
    # count is static under jit, so it is rounded up to a power of two: the examples then
    # share a few compiled programs instead of compiling three new ones each.
    final = 2 ** int(np.ceil(np.log2(30.0 * float(c.L) / float(c.mu))))
    steps = (final // 4, final // 2, final)
    bounds = rates.bounds.gradient_descent_bounds(c, alpha, x0_error, jac0_error, jac0_error, steps)
    assert bounds["jacobian"][-1] < 1e-6 * jac0_error
    slack = 1e-12 * (x0_error + jac0_error)
    for k, x_bound, jac_bound in zip(steps, bounds["iterate"], bounds["jacobian"]):
        x, jac = derivatives.unrolled(problem, theta, jax.random.key(0), step_size=alpha, num_steps=k,
                                      batch_size=None)
        assert float(jnp.linalg.norm(x - x_star)) <= x_bound * (1 + 1e-9) + slack
        assert float(jnp.linalg.norm(jac - jac_star)) <= jac_bound * (1 + 1e-9) + slack


def test_linear_rate_bound_is_violated_when_its_contraction_is_overstated():
    """Negative check for the test above: the same bound with μ doubled (a contraction
    factor 1 − 2αμ claimed) is exceeded by the measured derivative error."""
    problem = problems.ridge(40, 3, regularisation=0.5)
    c = problem.constants()
    overstated = dataclasses.replace(c, mu=2.0 * c.mu)
    x_star, jac_star = problem.solution(problem.theta0), problem.solution_jacobian(problem.theta0)
    norms = float(jnp.linalg.norm(x_star)), float(jnp.linalg.norm(jac_star))
    alpha = 1.0 / float(c.L)
    bound = rates.bounds.gradient_descent_bounds(overstated, alpha, norms[0], norms[1], norms[1], [80])
    _, jac = derivatives.unrolled(problem, problem.theta0, jax.random.key(0), step_size=alpha, num_steps=80,
                                  batch_size=None)
    assert float(jnp.linalg.norm(jac - jac_star)) > float(bound["jacobian"][0])


def test_implicit_jacobian_under_jit_and_vmap_over_thetas():
    problem = problems.logistic(30, 3, seed=4)
    thetas = problem.theta0 * jnp.array([[0.5], [1.0], [3.0]])
    batched = jax.jit(jax.vmap(lambda t: derivatives.implicit_jacobian(problem, t)))(thetas)
    for i in range(3):
        assert_relative_close(batched[i], problem.solution_jacobian(thetas[i]), 1e-10, "vmapped IFT")

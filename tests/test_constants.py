"""The constants that scale: closed forms and matrix-free estimates against dense references.

References are computed with NumPy's dense `eigvalsh`, independently of the code under test.
The tolerance on `L` is a relative 1e-12: the secular solver and `eigvalsh` are both accurate
to a few multiples of eps·λ_max here, so 1e-12 leaves room for rounding while a solver that
stops short or lands on the wrong root misses by far more (checked below).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import problems
from problems.from_loss import _ritz_extremes
from problems.ridge import largest_eigenvalue_diagonal_plus_rank_one
from problems.strategies import problems_and_thetas

L_RTOL = 1e-12


def dense_largest(penalty, features):
    """`max_i λ_max(aᵢaᵢᵀ + diag(w))` by dense eigendecompositions."""
    penalty, features = np.asarray(penalty), np.asarray(features)
    return max(np.linalg.eigvalsh(np.outer(a, a) + np.diag(penalty))[-1] for a in features)


secular_solver = jax.jit(
    jax.vmap(largest_eigenvalue_diagonal_plus_rank_one, in_axes=(None, 0, None)), static_argnums=2
)


def solve(penalty, features, num_steps=64):
    return np.asarray(secular_solver(jnp.asarray(penalty, jnp.float64), jnp.asarray(features, jnp.float64), num_steps))


# --- ridge and weighted ridge: L ----------------------------------------------------


@given(problems_and_thetas(("weighted_ridge",)))
def test_weighted_ridge_L_is_the_largest_per_sample_eigenvalue(drawn):
    problem, theta = drawn
    L = float(problem.constants(theta).L)
    assert L == pytest.approx(dense_largest(theta, problem.data[0]), rel=L_RTOL)


@given(problems_and_thetas(("ridge",)))
def test_ridge_L_is_the_closed_form(drawn):
    """L = maxᵢ‖aᵢ‖² + λ, which is also the dense per-sample maximum."""
    problem, theta = drawn
    features = np.asarray(problem.data[0])
    L = float(problem.constants(theta).L)
    assert L == pytest.approx(np.max(np.sum(features**2, axis=1)) + float(theta[0]), rel=1e-15)
    assert L == pytest.approx(dense_largest(np.full(problem.dim, float(theta[0])), features), rel=L_RTOL)


@st.composite
def penalties_and_features(draw):
    """Penalties with repeats and features with zeros, the cases the secular equation must handle."""
    dim = draw(st.sampled_from((1, 2, 3, 5, 8)))
    entries = st.one_of(st.sampled_from((0.0, 0.0, 1e-3, -0.5, 1.0, 3.0)), st.floats(-3.0, 3.0))
    penalty = draw(st.lists(st.sampled_from((0.05, 0.3, 1.0, 2.0)), min_size=dim, max_size=dim))
    features = draw(st.lists(entries, min_size=6 * dim, max_size=6 * dim))
    return np.array(penalty), np.array(features).reshape(6, dim)


@given(penalties_and_features())
def test_secular_solver_matches_dense_eigenvalues(drawn):
    penalty, features = drawn
    reference = [np.linalg.eigvalsh(np.outer(a, a) + np.diag(penalty))[-1] for a in features]
    np.testing.assert_allclose(solve(penalty, features), reference, rtol=L_RTOL, atol=0)


DEGENERATE = {
    # a = 0: the answer is max w, exactly.
    "zero vector": ([0.3, 2.0, 1.0], [0.0, 0.0, 0.0]),
    # The component at the largest penalty is zero, and the others do not lift past it.
    "zero at the largest penalty, below it": ([0.1, 2.0, 0.2], [0.3, 0.0, 0.4]),
    # The same, but the others lift past it.
    "zero at the largest penalty, above it": ([0.1, 2.0, 0.2], [1.5, 0.0, 1.2]),
    # All penalties equal: λ_max = w + ‖a‖².
    "equal penalties": ([0.7, 0.7, 0.7, 0.7], [1.0, -2.0, 0.5, 0.0]),
    # The largest penalty repeated, one of its components zero.
    "tied largest penalty": ([1.0, 3.0, 3.0, 0.5], [0.2, 0.0, 0.9, -1.1]),
    "one feature": ([0.4], [2.5]),
    "tiny vector": ([0.5, 0.25], [1e-9, -3e-9]),
    "huge vector": ([0.5, 0.25], [1e4, -3e3]),
}


@pytest.mark.parametrize("case", DEGENERATE, ids=list(DEGENERATE))
def test_secular_solver_on_degenerate_cases(case):
    penalty, vector = (np.array(v) for v in DEGENERATE[case])
    (value,) = solve(penalty, vector[None, :])
    reference = np.linalg.eigvalsh(np.outer(vector, vector) + np.diag(penalty))[-1]
    assert value == pytest.approx(reference, rel=L_RTOL)
    if not np.any(vector):
        assert value == np.max(penalty)
    if np.ptp(penalty) == 0:
        assert value == pytest.approx(penalty[0] + vector @ vector, rel=1e-15)


def test_weighted_ridge_L_on_a_degenerate_design():
    """A zero column, a zero row and tied penalties, through `weighted_ridge` itself."""
    rng = np.random.default_rng(4)
    features = rng.normal(size=(12, 5))
    features[:, 2] = 0.0
    features[7] = 0.0
    problem = problems.weighted_ridge(features=features, targets=rng.normal(size=12))
    theta = jnp.array([0.2, 0.5, 9.0, 0.5, 0.1])
    assert float(problem.constants(theta).L) == pytest.approx(dense_largest(theta, features), rel=L_RTOL)


# --- negative checks: the comparison catches a wrong solver ---------------------------


def generic_case():
    rng = np.random.default_rng(0)
    return rng.uniform(0.1, 2.0, size=6), rng.normal(size=(4, 6))


def test_too_few_bisection_steps_are_caught():
    penalty, features = generic_case()
    reference = [np.linalg.eigvalsh(np.outer(a, a) + np.diag(penalty))[-1] for a in features]
    np.testing.assert_allclose(solve(penalty, features), reference, rtol=L_RTOL, atol=0)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(solve(penalty, features, num_steps=24), reference, rtol=L_RTOL, atol=0)


def test_the_smallest_root_and_the_bracket_ends_are_caught():
    """The smallest eigenvalue also solves the secular equation; neither it nor an end of the
    bracket [max w, max w + ‖a‖²] passes for the largest."""
    penalty, features = generic_case()
    a = features[0]
    eigenvalues = np.linalg.eigvalsh(np.outer(a, a) + np.diag(penalty))
    smallest, largest = eigenvalues[0], eigenvalues[-1]
    assert np.sum(a**2 / (smallest - penalty)) == pytest.approx(1.0, rel=1e-9)
    for wrong in (smallest, np.max(penalty), np.max(penalty) + a @ a):
        assert wrong != pytest.approx(largest, rel=L_RTOL)


# --- the Jacobian noise at sizes where the per-sample matrices are large --------------


@pytest.mark.parametrize("n_samples, n_features", [(100, 200), (400, 200)])
def test_weighted_ridge_jacobian_noise_matches_its_closed_form(n_samples, n_features):
    """σ_J² = mean_i ‖(aᵢaᵢᵀ + diag(w))J* + diag(x*)‖²_F, summed in NumPy. With jaxlib 0.10.2,
    XLA:CPU miscompiles some batched forms of this sum (a vmap over the samples is off by 0.3%
    at (100, 200), and chunks of 104 samples by up to 15% at (400, 200) on other draws); the
    one-sample scan is not."""
    problem = problems.weighted_ridge(n_samples, n_features, seed=0)
    theta = problem.theta0 * (1.0 + jnp.arange(n_features) / n_features)
    x_star, jac = np.asarray(problem.solution(theta)), np.asarray(problem.solution_jacobian(theta))
    shared = np.asarray(theta)[:, None] * jac + np.diag(x_star)
    features = np.asarray(problem.data[0])
    reference = np.mean([np.sum((np.outer(a, a @ jac) + shared) ** 2) for a in features])
    assert float(problem.constants(theta).sigma2_jac) == pytest.approx(reference, rel=1e-12)


# --- from_loss: the Krylov estimates ---------------------------------------------------


def random_symmetric(dim, seed, spread=1.0):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    spectrum = np.sort(rng.normal(size=dim)) * spread
    return (basis * spectrum) @ basis.T, spectrum


def ritz(matrix, num_steps, seed=0):
    keys = jax.random.split(jax.random.key(seed))
    dim = matrix.shape[0]
    start = jax.random.normal(keys[0], (dim,))
    fresh = jax.random.normal(keys[1], (num_steps, dim))
    return tuple(float(v) for v in _ritz_extremes(lambda v: jnp.asarray(matrix) @ v, start, fresh))


@pytest.mark.parametrize("dim", [1, 3, 12])
def test_krylov_extremes_are_exact_with_a_full_space(dim):
    matrix, spectrum = random_symmetric(dim, seed=dim)
    lowest, highest = ritz(matrix, dim)
    scale = np.max(np.abs(spectrum))
    assert abs(lowest - spectrum[0]) <= 1e-12 * scale
    assert abs(highest - spectrum[-1]) <= 1e-12 * scale


def test_krylov_restarts_on_an_invariant_space():
    """c·aaᵀ + λI: the Krylov space is invariant after two steps; the fresh directions keep
    the basis orthonormal, so the extremes stay exact and nothing turns NaN."""
    a = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    matrix = 0.3 * np.outer(a, a) + 0.1 * np.eye(5)
    lowest, highest = ritz(matrix, 5)
    assert highest == pytest.approx(0.3 * a @ a + 0.1, rel=1e-12)
    assert lowest == pytest.approx(0.1, rel=1e-12)
    assert ritz(np.zeros((4, 4)), 4) == (0.0, 0.0)


def test_krylov_extremes_are_inner_bounds_with_a_partial_space():
    """With k < d the Ritz values lie inside the spectrum (never above λ_max), and on a
    spread spectrum they are close to its ends; a two-step space is visibly short."""
    matrix, spectrum = random_symmetric(200, seed=1)
    lowest, highest = ritz(matrix, 16)
    scale = np.max(np.abs(spectrum))
    assert spectrum[0] - 1e-12 * scale <= lowest and highest <= spectrum[-1] + 1e-12 * scale
    assert highest >= spectrum[-1] - 0.2 * (spectrum[-1] - spectrum[0])
    assert ritz(matrix, 2)[1] < spectrum[-1] - 1e-3 * scale


def coupled_loss(x, theta, sample):
    """A per-sample loss with a dense, x-dependent Hessian: log cosh of a small linear map."""
    matrix, target = sample
    residual = matrix @ x - target
    return jnp.sum(jnp.logaddexp(residual, -residual)) + 0.5 * theta[0] * (x @ x) + 0.01 * jnp.sum(x**4)


@jax.jit
def dense_curvature(problem, x, theta):
    hessian = jax.hessian(problem.per_sample_loss)
    return jnp.max(jax.lax.map(lambda s: jnp.linalg.eigvalsh(hessian(x, theta, s))[-1], problem.data))


def test_from_loss_L_is_the_dense_per_sample_maximum_for_small_d():
    """d = 16: the Krylov space is the whole space, so the estimate is the local maximum."""
    dim = 16
    rng = np.random.default_rng(dim)
    data = (rng.normal(size=(30, 4, dim)), rng.normal(size=(30, 4)))
    problem = problems.from_loss(coupled_loss, data, jnp.array([0.2]), dim=dim)
    x_star = problem.solution(problem.theta0)
    reference = float(dense_curvature(problem, x_star, problem.theta0))
    assert float(problem.constants().L) == pytest.approx(reference, rel=1e-10)


def test_from_loss_L_estimate_is_a_close_lower_bound_for_larger_d():
    rng = np.random.default_rng(5)
    data = (rng.normal(size=(20, 40, 60)) / np.sqrt(60), rng.normal(size=(20, 40)))
    problem = problems.from_loss(coupled_loss, data, jnp.array([0.2]), dim=60)
    x_star = problem.solution(problem.theta0)
    reference = float(dense_curvature(problem, x_star, problem.theta0))
    estimate = float(problem.constants().L)
    assert reference * (1 - 0.05) <= estimate <= reference * (1 + 1e-12)


@given(problems_and_thetas())
def test_smoothness_is_the_L_of_constants(problem_and_theta):
    """`smoothness(θ)`, which the step-size check calls, is `constants(θ).L` without the
    noise constants: the same compiled arithmetic for L, so equal to rounding."""
    problem, theta = problem_and_theta
    np.testing.assert_allclose(float(problem.smoothness(theta)), float(problem.constants(theta).L), rtol=1e-12)

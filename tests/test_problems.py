"""Every generator: its solution, its Jacobian and its constants, each checked another way."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    assert_calls_require_float64,
    assert_minimiser,
    assert_relative_close,
    largest_per_sample_curvature,
    lipschitz_quotients,
    monte_carlo_agrees,
    relative_error,
)
from hypothesis import given

import derivatives
import problems
from problems.strategies import EXACT_KINDS, log_cosh_ridge_loss, problems_and_thetas


def default_problems():
    base = problems.ridge(40, 4, seed=3)
    return [
        base,
        problems.weighted_ridge(40, 4, seed=3),
        problems.least_squares(40, 4, "none"),
        problems.least_squares(40, 4, "double"),
        problems.least_squares(40, 4, "simple"),
        problems.logistic(40, 4, seed=3),
        problems.quadratic(4, 2, n_samples=40),
        problems.from_loss(log_cosh_ridge_loss, base.data, base.theta0, dim=4),
    ]


DEFAULTS = default_problems()
IDS = [repr(p) for p in DEFAULTS]


@given(problems_and_thetas())
def test_solution_is_a_minimiser(drawn):
    problem, theta = drawn
    assert_minimiser(problem, theta, problem.solution(theta))


@given(problems_and_thetas(EXACT_KINDS))
def test_solution_jacobian_matches_implicit_function_theorem(drawn):
    """The closed forms against the IFT from autodiff of the objective. Not for `from_loss`,
    whose `solution_jacobian` is that same computation (`test_from_loss_jacobian_*` below)."""
    problem, theta = drawn
    assert_relative_close(
        problem.solution_jacobian(theta), derivatives.implicit_jacobian(problem, theta), 1e-8, "J* vs IFT"
    )


def _scaled_target_ridge_loss(x, theta, sample):
    """`½(aᵀx − θ₁y)² + (θ₀/2)‖x‖²`: quadratic in x, with θ in the penalty and in the target."""
    features, target = sample
    return 0.5 * (features @ x - theta[1] * target) ** 2 + 0.5 * theta[0] * (x @ x)


def _scaled_target_ridge_closed_form(features, targets, theta):
    """`x* = θ₁ H⁻¹Aᵀy/n` and `∂θ x* = (−H⁻¹x*, H⁻¹Aᵀy/n)`, `H = AᵀA/n + θ₀I`, in NumPy."""
    features, targets, theta = (np.asarray(v, dtype=np.float64) for v in (features, targets, theta))
    n, d = features.shape
    hessian = features.T @ features / n + theta[0] * np.eye(d)
    direction = np.linalg.solve(hessian, features.T @ targets / n)
    solution = theta[1] * direction
    return solution, np.stack([-np.linalg.solve(hessian, solution), direction], axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_from_loss_jacobian_matches_a_closed_form(seed):
    """`from_loss` on a quadratic loss, θ = (λ, target scale) ∈ R²: Newton's solution and the
    IFT Jacobian equal the closed forms computed in NumPy (1e-10). Negative check: the
    closed-form Jacobian with the target column dropped (as if θ₁ only scaled x*) is rejected."""
    base = problems.ridge(30, 4, seed=seed)
    theta = jnp.array([0.3, 1.7])
    problem = problems.from_loss(_scaled_target_ridge_loss, base.data, theta, dim=4)
    solution, jacobian = _scaled_target_ridge_closed_form(*base.data, theta)
    assert_relative_close(problem.solution(theta), solution, 1e-12, "x*")
    assert_relative_close(problem.solution_jacobian(theta), jacobian, 1e-10, "J*")
    assert relative_error(problem.solution_jacobian(theta), jacobian * np.array([1.0, 0.0])) > 0.1


def test_problems_satisfy_the_problem_protocol():
    """Every generator and `from_loss` is a `problems.Problem` (the attributes and methods
    the drivers use, `check_theta`, `data` and `smoothness` among them), and they work:
    `loss` on `data` is the objective, `smoothness` is `constants().L`. Negative check: an
    object with all but `smoothness` is not a `Problem`."""
    for problem in DEFAULTS:
        assert isinstance(problem, problems.Problem), problem
        theta = problem.check_theta(problem.theta0)
        x = jnp.ones(problem.dim)
        assert float(problem.loss(x, theta, problem.data)) == pytest.approx(float(problem.objective(x, theta)),
                                                                             rel=1e-14)
        assert float(problem.smoothness()) == pytest.approx(float(problem.constants().L), rel=1e-12)

    class WithoutSmoothness:
        def __init__(self, problem):
            for name in ("dim", "param_dim", "theta0", "data", "check_theta", "sample", "loss", "objective",
                         "solution", "solution_jacobian", "constants"):
                setattr(self, name, getattr(problem, name))

    assert not isinstance(WithoutSmoothness(DEFAULTS[0]), problems.Problem)


@given(problems_and_thetas())
def test_solution_jacobian_matches_finite_differences(drawn):
    problem, theta = drawn
    step = 1e-5 * float(jnp.max(jnp.abs(theta)))
    reference = derivatives.central_difference_jacobian(problem.solution, theta, step)
    assert_relative_close(problem.solution_jacobian(theta), reference, 1e-6, "J* vs central differences")


@jax.jit
def smallest_curvature(problem, x, theta):
    return jnp.linalg.eigvalsh(jax.hessian(problem.objective)(x, theta))[0]


@given(problems_and_thetas(EXACT_KINDS))
def test_mu_is_the_smallest_curvature(drawn):
    """μ = λ_min(∇²F) at x* for quadratic objectives; for logistic μ = λ is the infimum
    of the curvature, approached far from the origin."""
    problem, theta = drawn
    mu = float(problem.constants(theta).mu)
    at_solution = float(smallest_curvature(problem, problem.solution(theta), theta))
    if problem.name == "logistic":
        assert mu <= at_solution
        far = float(smallest_curvature(problem, 1e6 * jnp.ones(problem.dim), theta))
        assert far == pytest.approx(mu, rel=1e-6)
    else:
        assert at_solution == pytest.approx(mu, rel=1e-9)


@given(problems_and_thetas(EXACT_KINDS))
def test_L_is_the_largest_per_sample_curvature(drawn):
    """L = sup over samples and x of λ_max(∇²f_i); attained anywhere for quadratic losses
    and at x = 0 (zero margins) for logistic."""
    problem, theta = drawn
    L = float(problem.constants(theta).L)
    attained = float(largest_per_sample_curvature(problem, jnp.zeros(problem.dim), theta))
    assert attained == pytest.approx(L, rel=1e-9)
    at_solution = float(largest_per_sample_curvature(problem, problem.solution(theta), theta))
    assert at_solution <= L * (1 + 1e-12)


def single_sample_noise(problem, theta, key, num_draws, batch_size=1):
    """Draws of ‖∇ₓf_B(x*)‖² and ‖∇²ₓₓf_B(x*)J* + ∇²ₓθf_B(x*)‖²_F through `sample` and `loss`."""
    x_star, jac_star = problem.solution(theta), problem.solution_jacobian(theta)
    grad = jax.grad(problem.loss)

    def draw(k):
        batch = problem.sample(k, batch_size)
        hessian = jax.hessian(problem.loss)(x_star, theta, batch)
        cross = jax.jacfwd(grad, argnums=1)(x_star, theta, batch)
        return jnp.sum(grad(x_star, theta, batch) ** 2), jnp.sum((hessian @ jac_star + cross) ** 2)

    return jax.jit(jax.vmap(draw))(jax.random.split(key, num_draws))


NUM_DRAWS = 4000
Z = 5.0            # false failure P(|t₃₉₉₉| > 5) = 6.0e-7 per claim


@pytest.mark.parametrize("problem", DEFAULTS, ids=IDS)
def test_noise_constants_match_monte_carlo(problem):
    """σ² and σ_J² against 4000 single-sample draws; each claim must lie within Z = 5
    standard errors (false failure `P(|t₃₉₉₉| > 5)` = 6.0e-7 per claim), and the same draws
    reject the claim × 1.5."""
    constants = problem.constants(problem.theta0)
    grad_sq, jac_sq = single_sample_noise(problem, problem.theta0, jax.random.key(11), NUM_DRAWS)
    for draws, claimed, name in ((grad_sq, constants.sigma2, "σ²"), (jac_sq, constants.sigma2_jac, "σ_J²")):
        if float(claimed) < 1e-20:
            assert float(jnp.max(draws)) < 1e-20, f"{name} claimed zero but draws are not"
            continue
        agreement = monte_carlo_agrees(draws, claimed, Z)
        assert agreement, f"{name}: {agreement}"
        wrong = monte_carlo_agrees(draws, 1.5 * claimed, Z)
        assert not wrong, f"{name} × 1.5 was not rejected: {wrong}"


def test_minibatch_noise_scales_as_one_over_batch_size():
    """With replacement, E‖∇f_B(x*)‖² = σ²/b exactly; checked at b = 4 with 4000 draws at
    Z = 5 (false failure 6.0e-7 per claim); negative check: σ² itself is rejected."""
    problem = problems.ridge(40, 4, seed=3)
    constants = problem.constants()
    grad_sq, jac_sq = single_sample_noise(problem, problem.theta0, jax.random.key(12), NUM_DRAWS, batch_size=4)
    assert monte_carlo_agrees(grad_sq, constants.sigma2 / 4, Z)
    assert monte_carlo_agrees(jac_sq, constants.sigma2_jac / 4, Z)
    assert not monte_carlo_agrees(grad_sq, constants.sigma2, Z)


@given(problems_and_thetas(("least_squares",)))
def test_interpolation_modes_have_the_noise_they_claim(drawn):
    problem, _ = drawn
    constants = problem.constants(problem.theta0)
    scale = float(constants.L) * float(jnp.sum(problem.solution(problem.theta0) ** 2) + 1.0)
    scale_jac = float(constants.L) * float(jnp.sum(problem.solution_jacobian(problem.theta0) ** 2) + 1.0)
    vanishes = {"none": (False, False), "double": (True, True), "simple": (True, False)}[problem.interpolation]
    for value, reference, zero in zip((constants.sigma2, constants.sigma2_jac), (scale, scale_jac), vanishes):
        if zero:
            assert float(value) <= 1e-24 * reference**2 + 1e-28
        else:
            assert float(value) >= 1e-4 * reference


def test_double_interpolation_holds_for_every_theta():
    problem = problems.least_squares(30, 3, "double", param_dim=2)
    for theta in (jnp.array([-2.0, 0.5]), jnp.array([10.0, 3.0])):
        assert float(problem.constants(theta).sigma2) < 1e-24


def test_simple_interpolation_loses_gradient_interpolation_away_from_theta0():
    problem = problems.least_squares(30, 3, "simple", param_dim=2)
    assert float(problem.constants(problem.theta0).sigma2) < 1e-24
    assert float(problem.constants(problem.theta0 + 1.0).sigma2) > 1e-3


def test_quadratic_has_the_prescribed_constants_and_noise_controls():
    problem = problems.quadratic(6, 2, mu=0.05, L=3.0, hess_noise=0.5, grad_noise=0.0, jac_noise=0.2)
    constants = problem.constants()
    assert float(constants.mu) == pytest.approx(0.05, rel=1e-10)
    assert float(constants.L) == pytest.approx(3.0, rel=1e-10)
    assert float(constants.sigma2) < 1e-24
    assert float(constants.sigma2_jac) > 1e-3
    silent = problems.quadratic(6, 2, grad_noise=0.0, jac_noise=0.0, hess_noise=0.0).constants()
    assert float(silent.sigma2) < 1e-24 and float(silent.sigma2_jac) < 1e-24


def test_from_loss_labels_its_estimates():
    problem = DEFAULTS[-1]
    constants = problem.constants()
    assert set(constants.estimated) == {"mu", "L", "hessian_lipschitz", "cross_lipschitz"}
    assert "~" in repr(constants)
    assert problems.ridge().constants().estimated == ()


def test_from_loss_reproduces_a_closed_form_problem():
    """Ridge written as a user loss: Newton + IFT agree with the closed forms."""
    ridge = problems.ridge(40, 4, seed=5)
    wrapped = problems.from_loss(ridge.per_sample_loss, ridge.data, ridge.theta0, dim=4)
    assert_relative_close(wrapped.solution(ridge.theta0), ridge.solution(ridge.theta0), 1e-12, "x*")
    assert_relative_close(wrapped.solution_jacobian(ridge.theta0), ridge.solution_jacobian(ridge.theta0), 1e-10, "J*")
    ours, theirs = wrapped.constants(), ridge.constants()
    for name in ("mu", "sigma2", "sigma2_jac"):
        assert float(getattr(ours, name)) == pytest.approx(float(getattr(theirs, name)), rel=1e-9)


def test_problems_are_pytrees_that_jit_without_recompiling_for_new_data():
    traces = []

    @jax.jit
    def solve(problem):
        traces.append(1)
        return problem.solution(problem.theta0)

    solve(problems.ridge(20, 3, seed=0))
    solve(problems.ridge(20, 3, seed=1))
    assert len(traces) == 1


# --- negative checks: the comparison helpers catch what they must --------------------


def test_helpers_catch_a_jacobian_with_one_sign_flipped():
    problem = problems.weighted_ridge(40, 4, seed=3)
    jac = problem.solution_jacobian(problem.theta0)
    flipped = jac.at[0, 0].multiply(-1.0)
    assert relative_error(flipped, derivatives.implicit_jacobian(problem, problem.theta0)) > 1e-3
    with pytest.raises(AssertionError, match="relative error"):
        assert_relative_close(flipped, derivatives.implicit_jacobian(problem, problem.theta0), 1e-8)


@pytest.mark.parametrize("problem", DEFAULTS, ids=IDS)
def test_helpers_catch_a_solution_perturbed_by_1e_6(problem):
    x_star = problem.solution(problem.theta0)
    with pytest.raises(AssertionError, match="not a minimiser"):
        assert_minimiser(problem, problem.theta0, x_star + 1e-6)


@given(problems_and_thetas(EXACT_KINDS))
def test_lipschitz_constants_bound_every_difference_quotient(drawn):
    problem, theta = drawn
    c = problem.constants(theta)
    points = jax.random.normal(jax.random.key(9), (4, 2, problem.dim)) * jnp.array([0.1, 1.0, 3.0, 10.0])[:, None, None]
    for x1, x2 in points:
        hess_quotient, cross_quotient = (float(v) for v in lipschitz_quotients(problem, theta, x1, x2))
        assert hess_quotient <= float(c.hessian_lipschitz) * (1 + 1e-9) + 1e-12
        assert cross_quotient <= float(c.cross_lipschitz) * (1 + 1e-9) + 1e-12


def test_logistic_hessian_lipschitz_constant_is_attained():
    """The supremum is approached along aᵢ for the sample of largest norm, at the margin
    m* with σ(m*) = ½ + 1/(2√3), where |s'| is largest."""
    problem = problems.logistic(30, 3, seed=1)
    c = problem.constants()
    features, labels = problem.data
    i = int(jnp.argmax(jnp.sum(features**2, axis=1)))
    a, y = features[i], labels[i]
    m_star = float(jnp.log((0.5 + 0.5 / jnp.sqrt(3.0)) / (0.5 - 0.5 / jnp.sqrt(3.0))))
    x = y * m_star * a / (a @ a)
    step = 1e-6 * a / jnp.linalg.norm(a)
    hess_quotient, _ = lipschitz_quotients(problem, problem.theta0, x + step, x - step)
    assert float(hess_quotient) == pytest.approx(float(c.hessian_lipschitz), rel=1e-6)


def test_ridge_cross_lipschitz_constant_is_attained():
    problem = problems.weighted_ridge(20, 3)
    _, cross_quotient = lipschitz_quotients(problem, problem.theta0, jnp.zeros(3), jnp.array([1.0, -2.0, 0.5]))
    assert float(cross_quotient) == pytest.approx(float(problem.constants().cross_lipschitz), rel=1e-12)


# --- from_loss checks what it promises ------------------------------------------------


def test_from_loss_rejects_a_dim_that_does_not_fit_the_loss():
    base = problems.ridge(20, 4, seed=0)
    with pytest.raises(ValueError, match=r"x of shape \(5,\) as given by dim=5.*contracting dimensions"):
        problems.from_loss(log_cosh_ridge_loss, base.data, base.theta0, dim=5)


@pytest.mark.parametrize("loss", [log_cosh_ridge_loss, problems.ridge(10, 30, seed=0).per_sample_loss],
                         ids=["log_cosh", "squared"])
def test_from_loss_rejects_a_ridge_loss_without_penalty_and_more_features_than_samples(loss):
    """λ = 0 with d = 30 > n = 10: F is flat along the null space of A, λ_min(∇²F) is
    rounding (about 1e-15), whether Newton stays finite (log cosh) or not (squared)."""
    base = problems.ridge(10, 30, seed=0)
    with pytest.raises(ValueError, match=r"not strongly convex at .*λ_min\(∇²F\) = \S+, not above 1e-10·‖∇²F‖₂"):
        problems.from_loss(loss, base.data, jnp.array([0.0]), dim=30)


def test_from_loss_rejects_a_concave_loss():
    """Newton on −log cosh converges to the maximiser; the Hessian there is negative definite."""
    base = problems.ridge(20, 4, seed=0)
    with pytest.raises(ValueError, match=r"not strongly convex at the Newton point x\*: λ_min\(∇²F\) = -"):
        problems.from_loss(lambda x, t, s: -log_cosh_ridge_loss(x, t, s), base.data, base.theta0, dim=4)


def test_from_loss_rejects_a_newton_run_that_has_not_converged():
    base = problems.ridge(20, 4, seed=0)
    with pytest.raises(ValueError, match=r"did not converge in newton_steps=1 steps: ‖∇F\(x\*\)‖ = "):
        problems.from_loss(log_cosh_ridge_loss, base.data, base.theta0, dim=4, newton_steps=1)


def test_from_loss_accepts_a_strongly_convex_loss():
    base = problems.ridge(10, 30, seed=0)
    problem = problems.from_loss(log_cosh_ridge_loss, base.data, base.theta0, dim=30)
    assert_minimiser(problem, problem.theta0, problem.solution(problem.theta0))


# --- float64 is required, and importing turns nothing on -------------------------------


def test_generators_require_float64():
    """In a fresh process with x64 off, every generator raises `Float64Required` before
    creating an array."""
    assert_calls_require_float64("""
        import problems
        from problems.strategies import log_cosh_ridge_loss
    """, """
        {
            "ridge": lambda: problems.ridge(20, 3),
            "weighted_ridge": lambda: problems.weighted_ridge(20, 3),
            "least_squares": lambda: problems.least_squares(20, 3),
            "logistic": lambda: problems.logistic(20, 3),
            "quadratic": lambda: problems.quadratic(3, 2),
            "from_loss": lambda: problems.from_loss(log_cosh_ridge_loss, ([[1.0]], [1.0]), [0.1], dim=1),
        }
    """)


# The minibatch draw: uniform indices, one hash of the key each.
INDEX_RANGE = 10
INDEX_DRAWS = 200_000
# False failure P(χ²₉ > 40.9) = 1e-5 for a uniform draw.
INDEX_CHI2 = 40.9


def index_chi2(indices) -> float:
    counts = np.bincount(np.asarray(indices), minlength=INDEX_RANGE)
    assert counts.size == INDEX_RANGE, "an index outside {0, …, n − 1}"
    expected = INDEX_DRAWS / INDEX_RANGE
    return float(np.sum((counts - expected) ** 2 / expected))


def test_uniform_indices_are_uniform_and_a_biased_draw_is_caught():
    """200,000 indices over n = 10: Pearson's χ² (9 degrees of freedom) below 40.9, a false
    failure of 1e-5. The same test rejects a draw that returns index 0 one time in a hundred
    instead (P(0) = 0.109: χ² about 180 in expectation)."""
    key = jax.random.key(12)
    indices = problems.uniform_indices(key, INDEX_DRAWS, INDEX_RANGE)
    assert indices.dtype == jnp.int32
    assert index_chi2(indices) < INDEX_CHI2
    replaced = jax.random.uniform(jax.random.key(13), (INDEX_DRAWS,)) < 0.01
    assert index_chi2(jnp.where(replaced, 0, indices)) > INDEX_CHI2


def test_uniform_indices_stay_in_range_at_the_top_of_the_grid():
    """The grid's ends: u = 0 maps to 0 and u = 1 − 2⁻⁵², the largest draw, to n − 1, for
    n up to the int32 limit (no index n)."""
    from problems._base import _index_of_uniform

    ends = jnp.asarray([0.0, 1.0 - 2.0**-52])
    for n in (1, 3, 10, 1000, 2**31 - 1):
        assert _index_of_uniform(ends, n).tolist() == [0, n - 1]

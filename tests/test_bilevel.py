"""Bilevel problems: the exact hypergradient against two other routes, the hyper-cleaning inner
problems checked like every problem, the corruption they are built to find, and the checks."""

import itertools
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

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
)
from hypothesis import given, settings
from hypothesis import strategies as st

import problems
from problems.bilevel import from_outer, hyper_cleaning, ridge_validation
from problems.strategies import BILEVEL_KINDS, bilevel_problems, bilevel_thetas
from problems.weighted_regression import sample_weighted

# One example of each shape pays for compiling the value, the hypergradient and both
# references; later examples of the same shape reuse them.
PROPERTY = settings(deadline=timedelta(seconds=60))

# Central differences: step h_j = 1e-5·max(|θ_j|, 0.1) per coordinate. Truncation is
# (h_j²/6)·|∂³h| and rounding about eps·|h(θ)|/h_j; both are far below the tolerance
# 1e-6·‖∇h‖ + 1e3·eps·|h(θ)|/min_j h_j (the second term: the rounding of the differences).
FD_RELATIVE_STEP, FD_FLOOR, FD_RTOL = 1e-5, 0.1, 1e-6
EPS = float(np.finfo(np.float64).eps)
# (n_train, n_val, d): the shape of the strategies' problems, so that compiled code is shared.
SMALL = (12, 10, 3)
# Exact against autodiff through the solution: two routes to the same number.
AUTODIFF_RTOL = 1e-8


def solved_by_newton(problem) -> bool:
    """Reverse-mode autodiff cannot go through the `lax.while_loop` of Newton's method; forward
    mode can, and converges with the iterates (the Newton map's derivative in x vanishes at x*)."""
    return problem.name in ("logistic", "from_loss", "sample_weighted[logistic]")


def central_differences(function, theta):
    """Central differences of `function` at `θ`, with steps `h_j` above, one coordinate at a time
    (a few coordinates: a Python loop keeps each evaluation the plain unbatched solve)."""
    steps = FD_RELATIVE_STEP * np.maximum(np.abs(np.asarray(theta)), FD_FLOOR)
    columns = []
    for j, step in enumerate(steps):
        plus, minus = theta.at[j].add(step), theta.at[j].add(-step)
        columns.append((function(plus) - function(minus)) / (plus[j] - minus[j]))
    return jnp.stack(columns, axis=-1), steps


def through_solution(bilevel):
    return lambda theta: bilevel.outer(bilevel.inner._solution(theta), theta)


@jax.jit
def reverse_through_solution(bilevel, theta):
    return jax.grad(through_solution(bilevel))(theta)


@jax.jit
def forward_through_solution(bilevel, theta):
    return jax.jacfwd(through_solution(bilevel))(theta)


def autodiff_hypergradient(bilevel, theta):
    route = forward_through_solution if solved_by_newton(bilevel.inner) else reverse_through_solution
    return route(bilevel, theta)


def assert_matches_central_differences(bilevel, theta, hypergradient):
    reference, steps = central_differences(bilevel.value, theta)
    error = float(jnp.linalg.norm(hypergradient - reference))
    scale = abs(float(bilevel.value(theta)))
    tolerance = FD_RTOL * float(jnp.linalg.norm(reference)) + 1e3 * EPS * scale / float(np.min(steps))
    assert error <= tolerance, f"{bilevel!r}: ‖h − FD‖ = {error:.3e} > {tolerance:.3e}"


def assert_exact_hypergradient(bilevel, theta):
    exact = bilevel.hypergradient(theta)
    assert exact.shape == (bilevel.param_dim,)
    assert_relative_close(exact, autodiff_hypergradient(bilevel, theta), AUTODIFF_RTOL, f"{bilevel!r}: h vs autodiff")
    assert_matches_central_differences(bilevel, theta, exact)


def outer_with_theta(x, theta, data):
    """Validation error plus `½ Σ log(θⱼ)²`, which pulls penalties towards 1: `∇θG ≠ 0`."""
    features, targets = data
    return 0.5 * jnp.mean((features @ x - targets) ** 2) + 0.5 * jnp.sum(jnp.log(theta) ** 2)


def logistic_outer_with_theta(x, theta, data):
    """Validation logistic loss plus `mean(θ)·‖x‖²`, coupling θ and x."""
    features, labels = data
    return jnp.mean(jnp.logaddexp(0.0, -labels * (features @ x))) + jnp.mean(theta) * (x @ x)


@pytest.mark.parametrize("inner_kind", ["weighted_ridge", "sample_weighted_logistic"])
def test_from_outer_with_an_outer_loss_that_depends_on_theta(inner_kind):
    """A user's bilevel problem whose outer loss depends on θ: the ∇θG term is included
    (exact, autodiff and central differences agree), and the same checks reject the
    hypergradient with that term dropped."""
    if inner_kind == "weighted_ridge":
        base, outer = ridge_validation(*SMALL, per_feature=True, seed=1), outer_with_theta
        theta = base.theta0 * jnp.array([0.5, 1.5, 3.0])
    else:
        base, outer = hyper_cleaning(*SMALL, loss="logistic", seed=1), logistic_outer_with_theta
        theta = jnp.linspace(-1.0, 1.0, 12)
    inner = base.inner
    bilevel = from_outer(inner, outer, base.outer_data, name="custom")
    assert_exact_hypergradient(bilevel, theta)
    outer_x, outer_theta = bilevel.outer_gradients(inner.solution(theta), theta)
    assert float(jnp.linalg.norm(outer_theta)) > 0.1 * float(jnp.linalg.norm(bilevel.hypergradient(theta)))
    without = bilevel.hypergradient(theta) - outer_theta
    with pytest.raises(AssertionError, match="FD"):
        assert_matches_central_differences(bilevel, theta, without)
    assert_relative_close(without, inner.solution_jacobian(theta).T @ outer_x, 1e-12, "J*ᵀ∇ₓG")


# --- closed forms, written out in NumPy ----------------------------------------------------


def test_ridge_validation_hypergradient_is_the_documented_closed_form():
    """`h = −x*ᵀH⁻¹∇ₓG` (tied) and `−x* ∘ H⁻¹∇ₓG` (per feature), `∇ₓG = Bᵀ(Bx* − z)/m`."""
    for per_feature in (False, True):
        bilevel = ridge_validation(*SMALL, per_feature=per_feature, seed=3)
        theta = bilevel.theta0 * np.linspace(0.5, 2.0, bilevel.param_dim)
        (A, y), (B, z) = (tuple(np.asarray(v) for v in pair) for pair in (bilevel.inner.data, bilevel.outer_data))
        penalties = np.asarray(theta) if per_feature else np.full(3, float(theta[0]))
        H = A.T @ A / len(y) + np.diag(penalties)
        x_star = np.linalg.solve(H, A.T @ y / len(y))
        adjoint = np.linalg.solve(H, B.T @ (B @ x_star - z) / len(z))
        expected = -x_star * adjoint if per_feature else np.array([-x_star @ adjoint])
        assert_relative_close(bilevel.inner.solution(theta), x_star, 1e-12, "x*")
        assert_relative_close(bilevel.hypergradient(theta), expected, 1e-11, "h")
        assert float(bilevel.value(theta)) == pytest.approx(0.5 * np.mean((B @ x_star - z) ** 2), rel=1e-12)


def test_hyper_cleaning_squared_is_the_documented_closed_form():
    """`x* = H⁻¹AᵀWy/n`, `J* = −H⁻¹Aᵀdiag(σ'(θ)∘r)/n`, `H = AᵀWA/n + ρI`, `r = Ax* − y`."""
    bilevel = hyper_cleaning(*SMALL, corruption=0.25, regularisation=0.3, seed=4)
    theta = jnp.linspace(-1.0, 1.0, 12)
    A, y, index = (np.asarray(v) for v in bilevel.inner.data)
    np.testing.assert_array_equal(index, np.arange(12))
    w = 1.0 / (1.0 + np.exp(-np.asarray(theta)))
    H = (A.T * w) @ A / 12 + 0.3 * np.eye(3)
    x_star = np.linalg.solve(H, A.T @ (w * y) / 12)
    jac = -np.linalg.solve(H, A.T * (w * (1 - w) * (A @ x_star - y))) / 12
    assert_relative_close(bilevel.inner.solution(theta), x_star, 1e-12, "x*")
    assert_relative_close(bilevel.inner.solution_jacobian(theta), jac, 1e-11, "J*")


# --- the hyper-cleaning inner problems, checked like every problem -------------------------


@jax.jit
def smallest_curvature(problem, x, theta):
    return jnp.linalg.eigvalsh(jax.hessian(problem.objective)(x, theta))[0]


def explicit_loss_and_slope(z, y, loss):
    if loss == "squared":
        return 0.5 * (z - y) ** 2, z - y
    return np.logaddexp(0.0, -y * z), -y / (1.0 + np.exp(y * z))


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_minibatches_carry_their_index_and_give_exact_per_sample_gradients(loss):
    """A minibatch from `sample` holds each sample's own index, so its loss and both gradients
    equal the formulas with weight σ(θᵢ) of the sample drawn (NumPy, 1e-12); the mean of the
    single-sample gradients over the data set is ∇F (unbiased minibatch gradients)."""
    inner = hyper_cleaning(*SMALL, loss=loss, corruption=0.25, seed=5).inner
    theta = jnp.linspace(-1.0, 1.5, 12)
    x = jnp.array([0.3, -0.7, 1.1])
    batch = inner.sample(jax.random.key(3), 7)
    features, targets, index = (np.asarray(v) for v in batch)
    np.testing.assert_array_equal(features, np.asarray(inner.data[0])[index])
    np.testing.assert_array_equal(targets, np.asarray(inner.data[1])[index])
    rho, w = float(inner.regularisation), 1.0 / (1.0 + np.exp(-np.asarray(theta)))
    values, slopes = explicit_loss_and_slope(features @ np.asarray(x), targets, loss)
    x_np = np.asarray(x)
    expected_loss = np.mean(w[index] * values) + 0.5 * rho * x_np @ x_np
    expected_grad_x = np.mean((w[index] * slopes)[:, None] * features, axis=0) + rho * x_np
    expected_grad_theta = np.zeros(12)
    np.add.at(expected_grad_theta, index, w[index] * (1 - w[index]) * values / 7)
    assert float(inner.loss(x, theta, batch)) == pytest.approx(expected_loss, rel=1e-12)
    grad_x, grad_theta = jax.grad(inner.loss, argnums=(0, 1))(x, theta, batch)
    assert_relative_close(grad_x, expected_grad_x, 1e-12, "∇ₓ")
    assert_relative_close(grad_theta, expected_grad_theta, 1e-12, "∇θ")
    singles = jax.tree_util.tree_map(lambda leaf: leaf[:, None], inner.data)
    per_sample = jax.vmap(jax.grad(inner.loss), in_axes=(None, None, 0))(x, theta, singles)
    assert_relative_close(jnp.mean(per_sample, axis=0), jax.grad(inner.objective)(x, theta), 1e-12, "mean ∇fᵢ")


# --- the data --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_train", "corruption"), [(12, 0.25), (10, 0.25), (10, 0.35), (12, 0.0), (10, 0.9)])
def test_exactly_round_corruption_times_n_training_labels_are_flipped(n_train, corruption):
    """Against the teacher's labels `sign(aᵀw)`: the flipped training labels are exactly the
    `corrupted` mask, `round(corruption·n)` of them (10·0.25 → 2 and 10·0.35 → 4: half to even);
    every validation label is clean; another seed flips as many."""
    bilevel = hyper_cleaning(n_train, 10, 3, corruption=corruption, seed=1)
    teacher, corrupted = np.asarray(bilevel.info.teacher), np.asarray(bilevel.info.corrupted)
    features, labels, _ = (np.asarray(v) for v in bilevel.inner.data)
    clean = np.where(features @ teacher >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(labels != clean, corrupted)
    assert corrupted.sum() == round(corruption * n_train)
    val_features, val_labels = (np.asarray(v) for v in bilevel.outer_data)
    np.testing.assert_array_equal(val_labels, np.where(val_features @ teacher >= 0, 1.0, -1.0))
    if 0 < corrupted.sum() < n_train:
        other = np.asarray(hyper_cleaning(n_train, 10, 3, corruption=corruption, seed=2).info.corrupted)
        assert corrupted.sum() == other.sum()


def test_corrupted_samples_differ_between_seeds():
    masks = {tuple(np.asarray(hyper_cleaning(*SMALL, seed=s).info.corrupted)) for s in range(4)}
    assert len(masks) == 4


def test_ridge_validation_draws_both_sets_from_one_teacher():
    """With noise 0 every training and validation target is `aᵀw` for the same teacher `w`;
    the two sets are different rows."""
    bilevel = ridge_validation(*SMALL, noise=0.0, seed=6)
    teacher = np.asarray(bilevel.info.teacher)
    (A, y), (B, z) = (tuple(np.asarray(v) for v in pair) for pair in (bilevel.inner.data, bilevel.outer_data))
    np.testing.assert_allclose(y, A @ teacher, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z, B @ teacher, rtol=1e-12, atol=1e-12)
    assert A.shape == (12, 3) and B.shape == (10, 3) and not np.any(np.isin(B, A))
    noisy = ridge_validation(*SMALL, noise=0.5, seed=6)
    residual = np.asarray(noisy.outer_data[1]) - np.asarray(noisy.outer_data[0]) @ np.asarray(noisy.info.teacher)
    assert 0.2 < np.std(residual) < 1.0


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("seed", range(5))
def test_the_hypergradient_finds_the_corrupted_samples(loss, seed):
    """Typical, not a theorem, so checked on fixed seeds (0 to 4; n = 100, m = 100, d = 10, 30 %
    corrupted): at θ₀ the mean hypergradient over corrupted samples is positive and above the
    mean over clean ones (their weights should fall), and five steps `θ ← θ − 100·∇h(θ)` lower
    the validation loss at every step and lower the mean weight of corrupted samples below that
    of clean ones."""
    bilevel = hyper_cleaning(100, 100, 10, corruption=0.3, loss=loss, seed=seed)
    corrupted = bilevel.info.corrupted
    theta = bilevel.theta0
    gradient = bilevel.hypergradient(theta)
    assert float(jnp.mean(gradient[corrupted])) > 0 > float(jnp.mean(gradient[~corrupted]))
    values = [float(bilevel.value(theta))]
    for _ in range(5):
        theta = theta - 100.0 * bilevel.hypergradient(theta)
        values.append(float(bilevel.value(theta)))
    assert all(later < earlier for earlier, later in itertools.pairwise(values)), values
    weights = jax.nn.sigmoid(theta)
    assert float(jnp.mean(weights[corrupted])) < float(jnp.mean(weights[~corrupted]))


# --- the interface -----------------------------------------------------------------------------


def test_bilevel_interface():
    """`theta0`, `param_dim`, `dim` and `check_theta` are the inner problem's; `outer` and
    `outer_gradients` at any x are the validation error and its gradients (∇θG = 0)."""
    bilevel = hyper_cleaning(*SMALL, loss="squared", seed=0)
    assert isinstance(bilevel.inner, problems.Problem)
    assert bilevel.param_dim == 12 and bilevel.dim == 3
    np.testing.assert_array_equal(bilevel.theta0, np.zeros(12))
    assert repr(bilevel) == ("hyper_cleaning[squared](inner=sample_weighted[squared](n_samples=12, dim=3, "
                             "param_dim=12), n_val=10, param_dim=12)")
    x = jnp.array([0.5, -1.0, 2.0])
    B, z = bilevel.outer_data
    assert float(bilevel.outer(x, bilevel.theta0)) == pytest.approx(0.5 * float(jnp.mean((B @ x - z) ** 2)),
                                                                   rel=1e-14)
    outer_x, outer_theta = bilevel.outer_gradients(x, [0.0] * 12)
    assert_relative_close(outer_x, B.T @ (B @ x - z) / 10, 1e-13, "∇ₓG")
    assert float(jnp.max(jnp.abs(outer_theta))) == 0.0
    ridge = ridge_validation(*SMALL)
    assert (ridge.param_dim, ridge.dim) == (1, 3) and "n_val=10" in repr(ridge)
    assert ridge_validation(*SMALL, per_feature=True).param_dim == 3


def test_bilevel_passes_through_jit_without_recompiling_for_new_data():
    """A jitted function of (bilevel, θ) gives the eager value and hypergradient; a second
    instance of the same shapes (another seed) reuses the compiled code."""
    traces = []

    @jax.jit
    def value_and_hypergradient(bilevel, theta):
        traces.append(1)
        return bilevel.value(theta), bilevel.hypergradient(theta)

    for seed in (0, 1):
        bilevel = hyper_cleaning(*SMALL, loss="logistic", seed=seed)
        theta = jnp.linspace(-0.5, 0.5, 12)
        value, gradient = value_and_hypergradient(bilevel, theta)
        assert float(value) == pytest.approx(float(bilevel.value(theta)), rel=1e-12)
        assert_relative_close(gradient, bilevel.hypergradient(theta), 1e-10, "jitted h")
    assert len(traces) == 1
    ridge_traces = len(traces)
    for seed in (0, 1):
        value_and_hypergradient(ridge_validation(*SMALL, seed=seed), jnp.array([0.2]))
    assert len(traces) == ridge_traces + 1


def _vector_outer(x, theta, data):
    return x


def _mismatched_outer(x, theta, data):
    return jnp.sum(data @ x)


BAD_ARGUMENTS = [
    (ridge_validation, dict(n_train=0), "n_train"),
    (ridge_validation, dict(n_val=1.5), "n_val"),
    (ridge_validation, dict(n_features=-1), "n_features"),
    (ridge_validation, dict(per_feature=1), "per_feature"),
    (ridge_validation, dict(regularisation=0.0), "regularisation"),
    (ridge_validation, dict(regularisation=float("nan")), "regularisation"),
    (ridge_validation, dict(noise=-0.1), "noise"),
    (ridge_validation, dict(conditioning=0.5), "conditioning"),
    (ridge_validation, dict(seed=-1), "seed"),
    (hyper_cleaning, dict(n_train=0), "n_train"),
    (hyper_cleaning, dict(n_val=0), "n_val"),
    (hyper_cleaning, dict(corruption=1.0), "corruption"),
    (hyper_cleaning, dict(corruption=-0.1), "corruption"),
    (hyper_cleaning, dict(corruption=float("nan")), "corruption"),
    (hyper_cleaning, dict(loss="hinge"), "loss"),
    (hyper_cleaning, dict(regularisation=-1), "regularisation"),
    (hyper_cleaning, dict(regularisation=0), "regularisation"),
]


@pytest.mark.parametrize(("generator", "options", "name"), BAD_ARGUMENTS,
                         ids=[f"{g.__name__}-{n}-{v!r}" for g, o, n in BAD_ARGUMENTS for v in o.values()])
def test_generators_reject_bad_arguments_by_name(generator, options, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        generator(**{"n_train": 10, "n_val": 5, "n_features": 2, **options})


def test_bad_theta_x_and_outer_losses_are_rejected_by_name():
    ridge = ridge_validation(*SMALL)
    cleaning = hyper_cleaning(*SMALL)
    with pytest.raises(ValueError, match=r"theta must have shape \(1,\)"):
        ridge.value([0.1, 0.2])
    with pytest.raises(ValueError, match=r"theta .* must be > 0"):
        ridge.hypergradient([-0.1])
    with pytest.raises(ValueError, match=r"theta must be finite"):
        cleaning.value(jnp.full(12, jnp.nan))
    with pytest.raises(ValueError, match=r"x must have shape \(3,\)"):
        cleaning.outer(jnp.zeros(2), cleaning.theta0)
    with pytest.raises(TypeError, match=r"inner must be a problems.Problem"):
        from_outer(object(), outer_with_theta)
    with pytest.raises(TypeError, match=r"outer_loss must be a function"):
        from_outer(ridge.inner, "mean squared error")
    with pytest.raises(ValueError, match=r"outer_loss must return a scalar, got \(3,\)"):
        from_outer(ridge.inner, _vector_outer)
    with pytest.raises(ValueError, match=r"outer_loss\(x, θ, outer_data\) fails for x of shape \(3,\)"):
        from_outer(ridge.inner, _mismatched_outer, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match=r"outer_data.* contains NaN"):
        from_outer(ridge.inner, _mismatched_outer, jnp.full((4, 3), jnp.nan))
    with pytest.raises(ValueError, match=r"targets must be ±1"):
        sample_weighted(jnp.ones((3, 2)), jnp.array([1.0, 0.5, -1.0]), loss="logistic")


def test_generators_require_float64():
    """In a fresh process with x64 off, the generators, `from_outer` and the methods of a
    bilevel problem made with x64 on raise `Float64Required`."""
    assert_calls_require_float64("""
        import jax
        import problems

        jax.config.update("jax_enable_x64", True)
        B = problems.bilevel.ridge_validation(10, 5, 2)
        jax.config.update("jax_enable_x64", False)
    """, """
        {
            "ridge_validation": lambda: problems.bilevel.ridge_validation(10, 5, 2),
            "hyper_cleaning": lambda: problems.bilevel.hyper_cleaning(10, 5, 2),
            "from_outer": lambda: problems.bilevel.from_outer(B.inner, B.outer_loss, B.outer_data),
            "value": lambda: B.value([0.1]),
            "hypergradient": lambda: B.hypergradient([0.1]),
            "outer": lambda: B.outer([0.0, 0.0], [0.1]),
        }
    """)


# --- property tests, last: each releases the compiled programs that the tests above share -----


@pytest.mark.parametrize("kind", BILEVEL_KINDS)
@PROPERTY
@given(data=st.data())
def test_hypergradient_matches_autodiff_through_the_solution_and_central_differences(kind, data):
    """Drawn problems of each family and loss, at θ near θ₀: the exact hypergradient equals
    autodiff of `θ ↦ G(x*(θ), θ)` through the solution (reverse mode through closed forms,
    forward mode through Newton's iterations) to 1e-8, and central differences of the value
    (steps and tolerance above)."""
    bilevel = data.draw(bilevel_problems((kind,)), label="bilevel")
    theta = data.draw(bilevel_thetas(bilevel), label="theta")
    assert_exact_hypergradient(bilevel, theta)


CLEANING = ("hyper_cleaning_squared", "hyper_cleaning_logistic")


@PROPERTY
@given(data=st.data())
def test_hyper_cleaning_inner_problems_are_exact(data):
    """The solution is a minimiser; its Jacobian matches central differences (1e-6); μ is
    λ_min(∇²F) at x* (squared) or its infimum ρ, approached far away (logistic); L is attained
    at x = 0 and bounds the per-sample curvature at x*; the Lipschitz constants bound the
    difference quotients at random pairs of points and are attained (below)."""
    bilevel = data.draw(bilevel_problems(CLEANING), label="bilevel")
    theta = data.draw(bilevel_thetas(bilevel), label="theta")
    inner = bilevel.inner
    x_star = inner.solution(theta)
    assert_minimiser(inner, theta, x_star)
    assert_relative_close(inner.solution_jacobian(theta), central_differences(inner.solution, theta)[0], 1e-6,
                          "J* vs central differences")
    constants = inner.constants(theta)
    assert constants.estimated == ()
    mu, L = float(constants.mu), float(constants.L)
    at_solution = float(smallest_curvature(inner, x_star, theta))
    if inner.loss_name == "squared":
        assert at_solution == pytest.approx(mu, rel=1e-9)
    else:
        assert mu == float(inner.regularisation) <= at_solution
        far = float(smallest_curvature(inner, 1e6 * jnp.arange(1.0, inner.dim + 1.0), theta))
        assert far == pytest.approx(mu, rel=1e-6)
    assert float(largest_per_sample_curvature(inner, jnp.zeros(inner.dim), theta)) == pytest.approx(L, rel=1e-9)
    assert float(largest_per_sample_curvature(inner, x_star, theta)) <= L * (1 + 1e-12)
    points = jax.random.normal(jax.random.key(9), (3, 2, inner.dim)) * jnp.array([0.1, 1.0, 3.0])[:, None, None]
    for x1, x2 in points:
        hess_quotient, cross_quotient = (float(v) for v in lipschitz_quotients(inner, theta, x1, x2))
        assert hess_quotient <= float(constants.hessian_lipschitz) * (1 + 1e-9) + 1e-12
        assert cross_quotient <= float(constants.cross_lipschitz) * (1 + 1e-9) + 1e-12
    assert_lipschitz_constants_are_attained(inner, theta, constants)


def assert_lipschitz_constants_are_attained(inner, theta, constants):
    """The cross constant `c·maxᵢσ'(θᵢ)‖aᵢ‖²` is attained along aᵢ from zero margin (exactly for
    squared, in the limit for logistic); logistic's Hessian constant at the margin where |ℓ‴|
    is largest, `σ(z) = ½ + 1/(2√3)`; squared's is 0."""
    features = inner.data[0]
    sigmoid = jax.nn.sigmoid(theta)
    a = features[int(jnp.argmax(sigmoid * (1 - sigmoid) * jnp.sum(features**2, axis=1)))]
    step = 1e-6 * a / jnp.linalg.norm(a)
    _, cross_quotient = lipschitz_quotients(inner, theta, step, -step)
    assert float(cross_quotient) == pytest.approx(float(constants.cross_lipschitz), rel=1e-6)
    if inner.loss_name == "squared":
        assert float(constants.hessian_lipschitz) == 0.0
        return
    a = features[int(jnp.argmax(sigmoid * jnp.sum(features**2, axis=1) ** 1.5))]
    margin = float(np.log((0.5 + 0.5 / np.sqrt(3.0)) / (0.5 - 0.5 / np.sqrt(3.0))))
    x = margin * a / (a @ a)
    step = 1e-6 * a / jnp.linalg.norm(a)
    hess_quotient, _ = lipschitz_quotients(inner, theta, x + step, x - step)
    assert float(hess_quotient) == pytest.approx(float(constants.hessian_lipschitz), rel=1e-6)


def test_newtons_method_terminates_under_vmap():
    """Regression: batched (vmapped) Newton solves of a logistic inner problem once looped
    forever, the backtracking test computed in two compiled copies that disagreed at rounding
    level; the test is now carried in the loop's state. Run in a subprocess with a 300 s
    limit, so that a regression fails instead of hanging the suite. It also checks the
    batched solutions against one-by-one solves (1e-12 relative)."""
    script = textwrap.dedent("""
        import jax
        jax.config.update("jax_enable_x64", True)
        import numpy as np
        import problems
        B = problems.bilevel.hyper_cleaning(12, 10, 2, loss="logistic")
        thetas = B.theta0 + 0.5 + 0.1 * jax.random.normal(jax.random.key(0), (2, 12))
        batched = np.asarray(jax.jit(jax.vmap(B.inner._solution))(thetas))
        single = np.stack([np.asarray(B.inner._solution(t)) for t in thetas])
        assert np.allclose(batched, single, rtol=1e-12, atol=0), (batched, single)
        print("finished")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0 and "finished" in result.stdout, result.stderr[-2000:]

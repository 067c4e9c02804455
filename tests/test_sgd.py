"""The SGD step, the loop every driver shares, and the Hessian-free tangent recursion.

The tangent recursion against the other three derivative methods on drawn problems is in
`test_unrolled.py` (every mode against forward mode); here it meets same-key central
differences, a broken copy of itself, and the two drivers built on it.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_relative_close, relative_error
from hypothesis import given

import derivatives
import problems
import rates
from derivatives.sgd import (
    ClosedFormRecursion,
    TangentRecursion,
    derivative_step,
    has_closed_form_step,
    iterate,
    iterate_segments,
    sgd_step,
    solve_stepwise,
    tangent_step,
)
from derivatives.unrolled import METHODS
from problems import bilevel
from problems.strategies import problems_and_thetas
from rates.curves import seed_statistics

NUM_STEPS = 60


def half_of_two_over_L(problem, theta):
    return rates.constant(0.5 / float(problem.constants(theta).L))


@given(problems_and_thetas())
def test_tangent_recursion_matches_same_key_central_differences(drawn):
    """Central differences of θ ↦ x_K(θ) with the key held fixed (step 1e-5·max|θ|, relative
    tolerance 1e-6, the truncation and rounding error of the differences); with another key
    the differences are far off, so the comparison can fail."""
    problem, theta = drawn
    schedule = half_of_two_over_L(problem, theta)

    def final_iterate(key):
        return lambda t: derivatives.unrolled(problem, t, key, step_size=schedule, num_steps=NUM_STEPS,
                                              mode="tangent")[0]

    key = jax.random.key(5)
    _, jac = derivatives.unrolled(problem, theta, key, step_size=schedule, num_steps=NUM_STEPS, mode="tangent")
    step = 1e-5 * float(jnp.max(jnp.abs(theta)))
    assert_relative_close(jac, derivatives.central_difference_jacobian(final_iterate(key), theta, step), 1e-6,
                          "tangent recursion vs same-key central differences")
    other = derivatives.central_difference_jacobian(final_iterate(jax.random.key(6)), theta, step)
    assert relative_error(jac, other) > 1e-6 or float(problem.constants(theta).sigma2_jac) < 1e-20


@dataclasses.dataclass(frozen=True)
class HalvedCrossTerm:
    """The tangent recursion with its ∂θ term (the cross derivative ∇²ₓθf) halved: a bug of
    the kind the comparisons must catch."""

    def init(self, x_init, theta):
        return TangentRecursion().init(x_init, theta)

    def step(self, problem, theta, batch, x, tangents, alpha):
        x_next, push_forward = jax.linearize(lambda x_, t_: sgd_step(problem, t_, batch, x_, alpha), x, theta)
        return x_next, jax.vmap(push_forward)(tangents, 0.5 * jnp.eye(theta.shape[0]))

    def jacobian(self, tangents):
        return tangents.T

    def solve(self, sgd, theta, x_init, key, num_steps):
        return solve_stepwise(self, sgd, theta, x_init, key, num_steps)


@pytest.mark.parametrize("make", [lambda: problems.weighted_ridge(40, 4, seed=1), lambda: problems.logistic(30, 3)])
def test_a_tangent_step_with_a_wrong_cross_term_is_caught(make):
    """Negative check: the same comparisons (forward mode at 1e-10, central differences at
    1e-6) reject a recursion whose cross term is halved, and accept the correct one."""
    problem = make()
    theta, key = problem.theta0, jax.random.key(5)
    settings = dict(step_size=half_of_two_over_L(problem, theta), num_steps=NUM_STEPS)
    _, forward = derivatives.unrolled(problem, theta, key, **settings, mode="forward")
    _, tangent = derivatives.unrolled(problem, theta, key, **settings, mode=TangentRecursion())
    x_broken, broken = derivatives.unrolled(problem, theta, key, **settings, mode=HalvedCrossTerm())
    assert_relative_close(tangent, forward, 1e-10, "tangent vs forward")
    assert relative_error(broken, forward) > 1e-2
    differences = derivatives.central_difference_jacobian(
        lambda t: derivatives.unrolled(problem, t, key, **settings)[0], theta, 1e-5 * float(jnp.max(theta)))
    assert relative_error(broken, differences) > 1e-2
    # The iterates themselves are untouched: only the derivative is wrong.
    assert_relative_close(x_broken, derivatives.unrolled(problem, theta, key, **settings)[0], 1e-15, "x_K")


def test_a_mode_name_and_its_method_object_give_the_same_bits():
    problem = problems.logistic(30, 3, seed=2)
    settings = dict(step_size=0.1, num_steps=20, batch_size=2)
    for name, method in METHODS.items():
        by_name = derivatives.unrolled(problem, problem.theta0, jax.random.key(1), mode=name, **settings)
        by_object = derivatives.unrolled(problem, problem.theta0, jax.random.key(1), mode=method, **settings)
        assert all(np.array_equal(a, b) for a, b in zip(by_name, by_object)), name
    assert derivatives.MODES == ("forward", "reverse", "recursion", "tangent")
    with pytest.raises(ValueError, match=r"mode must be one of .* or a derivative method"):
        derivatives.unrolled(problem, problem.theta0, jax.random.key(1), mode=object(), **settings)


def test_error_curves_run_the_steps_of_unrolled_tangent_mode():
    """Seed s of `error_curves` is `unrolled(..., mode="tangent")` with key `split(key, S)[s]`:
    the final checkpoint's means over seeds agree to rounding (relative 1e-12)."""
    problem = problems.weighted_ridge(40, 4, seed=2)
    key, num_seeds, num_steps = jax.random.key(3), 3, 50
    settings = dict(step_size=rates.inverse_time(1.0, 20.0), num_steps=num_steps, batch_size=2)
    curves = rates.error_curves(problem, key=key, num_seeds=num_seeds, num_checkpoints=4, **settings)
    assert curves.steps[-1] == num_steps
    x_star, jac_star = problem.solution(problem.theta0), problem.solution_jacobian(problem.theta0)
    runs = [derivatives.unrolled(problem, problem.theta0, seed_key, mode="tangent", **settings)
            for seed_key in jax.random.split(key, num_seeds)]
    iterate_error = np.mean([float(jnp.sum((x - x_star) ** 2)) for x, _ in runs])
    jacobian_error = np.mean([float(jnp.sum((jac - jac_star) ** 2)) for _, jac in runs])
    assert curves.iterate_error[-1] == pytest.approx(iterate_error, rel=1e-12)
    assert curves.jacobian_error[-1] == pytest.approx(jacobian_error, rel=1e-12)


def _sample_weighted(loss):
    """A small sample-weighted problem at a θ away from 0, so that every σ(θᵢ) differs."""
    problem = bilevel.hyper_cleaning(12, 5, 3, loss=loss, seed=4).inner
    return problem, jax.random.normal(jax.random.key(1), (problem.param_dim,))


def _closed_form_discrepancy(step, problem, theta, batch):
    """The relative error of `step`'s increments `x_{k+1} − x_k` and `J_{k+1} − J_k` against
    the tangent recursion's from the same random `x_k`, `J_k`, α = 0.3/L (the larger one)."""
    x = jax.random.normal(jax.random.key(2), (problem.dim,))
    jac = jax.random.normal(jax.random.key(3), (problem.dim, problem.param_dim))
    alpha = 0.3 / float(problem.smoothness(theta))
    x_next, jac_next = step(theta, batch, x, jac, alpha)
    x_tangent, tangents = tangent_step(problem, theta, batch, x, jac.T, alpha)
    return max(relative_error(x_next - x, x_tangent - x), relative_error(jac_next - jac, tangents.T - jac))


BATCHES = {"one sample": np.array([7]), "a repeated sample": np.array([2, 9, 2, 5]), "every sample": None}


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("rows", list(BATCHES.values()), ids=list(BATCHES))
def test_the_closed_form_step_is_the_tangent_step(loss, rows):
    """`SampleWeightedRegression.jacobian_step` is the step of `TangentRecursion` (and of the
    explicit recursion with the Hessian formed) to 1e-12 relative, repeated samples included.
    Negative check: the same comparison rejects it without its cross term (by linearity in J,
    the step at J = 0 is that term alone) and with a repeated sample's cross term counted once."""
    problem, theta = _sample_weighted(loss)
    batch = problem.data if rows is None else jax.tree.map(lambda leaf: leaf[rows], problem.data)
    assert has_closed_form_step(problem) and not has_closed_form_step(problems.weighted_ridge(10, 2))
    assert _closed_form_discrepancy(problem.jacobian_step, problem, theta, batch) < 1e-12
    explicit = derivative_step(problem, theta, batch, jnp.ones(3), jnp.eye(3, problem.param_dim), 0.1)
    assert_relative_close(problem.jacobian_step(theta, batch, jnp.ones(3), jnp.eye(3, problem.param_dim), 0.1)[1],
                          explicit, 1e-12, "closed form vs explicit recursion")

    def without_cross_term(theta, batch, x, jac, alpha):
        x_next, jac_next = problem.jacobian_step(theta, batch, x, jac, alpha)
        return x_next, jac_next - problem.jacobian_step(theta, batch, x, jnp.zeros_like(jac), alpha)[1]

    assert _closed_form_discrepancy(without_cross_term, problem, theta, batch) > 1e-3
    if rows is not None and len(set(rows.tolist())) < len(rows):
        def counting_a_repeat_once(theta, batch, x, jac, alpha):
            # Minus one copy's share (1/b of its own one-sample cross term): what a scatter
            # that overwrites, instead of adding, leaves of a repeated column.
            x_next, jac_next = problem.jacobian_step(theta, batch, x, jac, alpha)
            first = jax.tree.map(lambda leaf: leaf[:1], batch)
            cross = problem.jacobian_step(theta, first, x, jnp.zeros_like(jac), alpha)[1]
            return x_next, jac_next - cross / len(rows)

        assert _closed_form_discrepancy(counting_a_repeat_once, problem, theta, batch) > 1e-3


def test_error_curves_take_the_closed_form_and_match_unrolled_tangent_mode():
    """On a problem with a `jacobian_step`, `error_curves` runs `ClosedFormRecursion`; seed s
    is still `unrolled(..., mode="tangent")` with key `split(key, S)[s]`, to 1e-10 relative
    (the two recursions round differently). The closed form run through `unrolled` agrees too."""
    problem, theta = _sample_weighted("logistic")
    key, num_seeds, num_steps = jax.random.key(3), 3, 50
    settings = dict(step_size=rates.inverse_time(1.0, 20.0), num_steps=num_steps, batch_size=2)
    seeds = seed_statistics(problem, theta, key=key, num_seeds=num_seeds, num_checkpoints=4, **settings)
    x_star, jac_star = problem.solution(theta), problem.solution_jacobian(theta)
    for s, seed_key in enumerate(jax.random.split(key, num_seeds)):
        x, jac = derivatives.unrolled(problem, theta, seed_key, mode="tangent", **settings)
        closed = derivatives.unrolled(problem, theta, seed_key, mode=ClosedFormRecursion(), **settings)[1]
        assert_relative_close(closed, jac, 1e-12, "closed form vs tangent through unrolled")
        assert seeds.values[s, -1, 0] == pytest.approx(float(jnp.sum((x - x_star) ** 2)), rel=1e-10)
        assert seeds.values[s, -1, 1] == pytest.approx(float(jnp.sum((jac - jac_star) ** 2)), rel=1e-10)
    with pytest.raises(TypeError, match="no jacobian_step"):
        ridge = problems.weighted_ridge(10, 2)
        derivatives.unrolled(ridge, ridge.theta0, key, mode=ClosedFormRecursion(), **settings)


def test_the_loop_hands_each_step_its_key_and_tracks_the_first_nonfinite_state():
    key = jax.random.key(9)

    def advance(state, k, step_key):  # a sum of one uniform draw per step, and infinity at step 5
        total, x = state
        return total + jax.random.uniform(step_key), x + jnp.where(k == 5, jnp.inf, 1.0)

    start = (jnp.asarray(0.0), jnp.zeros(2))
    (total, _), first = iterate(advance, start, key, 8, watch=lambda state: state[1])
    expected = sum(float(jax.random.uniform(jax.random.fold_in(key, k))) for k in range(8))
    assert float(total) == pytest.approx(expected, rel=1e-15)
    assert int(first) == 6  # x_6, the state after step 5, is the first that is not finite
    assert int(iterate(advance, start, key, 8)[1]) == -1  # nothing watched
    assert int(iterate(advance, start, key, 5, watch=lambda state: state[1])[1]) == -1


def test_segments_record_after_each_segment_and_continue_the_same_run():
    key = jax.random.key(9)

    def advance(total, k, step_key):
        return total + jax.random.uniform(step_key)

    lengths = jnp.asarray([0, 2, 3, 3], jnp.int64)
    final, (steps, indices, totals) = iterate_segments(advance, jnp.asarray(0.0), key, lengths,
                                                       lambda total, k, index: (k, index, total))
    np.testing.assert_array_equal(steps, [0, 2, 5, 8])
    np.testing.assert_array_equal(indices, [0, 1, 2, 3])
    whole, _ = iterate(advance, jnp.asarray(0.0), key, 8)
    assert float(totals[-1]) == float(final) == pytest.approx(float(whole), rel=1e-15)
    assert float(totals[0]) == 0.0

"""The expression language: the three semantics, the analysis of ifs (numbering, affine
guards, nesting depth) on hand-built and on randomly drawn programs, and the errors
for ill-formed programs. Everything here is deterministic."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from problems.programs import MeanField, Program, ProgramError, mixture1d, softplus_inverse
from problems.programs import expressions as ex


def test_crisp_smoothed_and_forced_semantics_of_one_if():
    z = ex.latent(2)
    program = ex.if_(z[0] - 1.0, z[1] * 2.0, -z[1])
    analysis = ex.analyse(program)
    point = jnp.array([1.5, 3.0])
    assert float(ex.evaluate(program, point)) == 6.0
    assert float(ex.evaluate(program, jnp.array([1.0, 3.0]))) == 6.0  # guard 0 takes the then-branch
    weight = 1 / (1 + math.exp(-0.5 / 0.25))
    smoothed = float(ex.evaluate(program, point, ex.Smoothed(0.25)))
    assert smoothed == pytest.approx(weight * 6.0 + (1 - weight) * -3.0, rel=1e-14)
    forced = ex.evaluate(program, point, ex.Forced(0, False), analysis.offsets)
    assert float(forced) == -3.0


def test_vector_ifs_are_numbered_consecutively_and_forced_one_element_at_a_time():
    z = ex.latent(3)
    first = ex.step(z - 0.5)            # scalar ifs 0, 1, 2
    second = ex.if_(z[0], 10.0, 20.0)   # scalar if 3
    total = first.sum() + second
    analysis = ex.analyse(total)
    assert analysis.num_ifs == 4
    assert analysis.offsets[first] == 0 and analysis.offsets[second] == 3
    point = jnp.array([1.0, 0.0, 1.0])  # steps (1, 0, 1), second → 10
    assert float(ex.evaluate(total, point)) == 12.0
    values = [float(ex.evaluate(total, point, ex.Forced(k, True), analysis.offsets)) for k in range(4)]
    assert values == [12.0, 13.0, 12.0, 12.0]
    jitted = jax.jit(lambda k: ex.evaluate(total, point, ex.Forced(k, False), analysis.offsets))
    assert [float(jitted(k)) for k in range(4)] == [11.0, 12.0, 11.0, 22.0]
    np.testing.assert_array_equal(ex.guard_values(total, point, analysis), [0.5, -0.5, 0.5, 1.0])


def test_smoothed_program_tends_to_the_crisp_one_away_from_the_boundaries():
    z = ex.latent(2)
    program = ex.if_(z[0], ex.if_(z[1] - 0.3, z[0] * z[1], 2.0), ex.exp(z[1]))
    point = jnp.array([0.1, 0.2])  # guards 0.1 and -0.1: near, but not on, both boundaries
    crisp = float(ex.evaluate(program, point))
    gaps = [abs(float(ex.evaluate(program, point, ex.Smoothed(eta))) - crisp) for eta in (1e-1, 3e-2, 1e-2)]
    assert gaps[0] > gaps[1] > gaps[2] > 0.0
    # Each if is off by at most σ(−|g|/η) times its branch gap (≤ 2.1 here), and the errors add.
    assert gaps[2] <= 2 * 2.1 / (1 + math.exp(0.1 / 1e-2))


def test_affine_guards_and_their_coefficients():
    z = ex.latent(3)
    guard = 2.0 * z[0] - z[2] / 4.0 + 1.5
    program = ex.if_(guard, 1.0, 0.0) + ex.if_(ex.stack([z[1], -z[0]]) - 3.0, 1.0, 2.0).sum()
    analysis = ex.analyse(program)
    assert analysis.affine and analysis.num_ifs == 3
    np.testing.assert_array_equal(analysis.coefficients, [[2.0, 0.0, -0.25], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(analysis.constants, [-1.5, 3.0, 3.0])  # guard = a·z − c
    np.testing.assert_array_equal(analysis.solve_for, [2, 1, 0])  # last involved coordinate by default


def test_a_guard_computed_from_an_if_is_not_affine_and_adds_to_the_depth():
    z = ex.latent(2)
    inner = ex.step(z[0])
    outer = ex.if_(z[1] + inner, 1.0, 0.0)
    analysis = ex.analyse(outer)
    assert not analysis.affine and analysis.coefficients is None
    assert analysis.nesting_depth == 2


def test_branch_values_do_not_add_to_the_depth():
    """An if inside another's branch multiplies sigmoid values, not their derivatives."""
    z = ex.latent(2)
    program = ex.if_(z[0], ex.if_(z[1], ex.step(z[0] - z[1]), 0.0), 1.0)
    analysis = ex.analyse(program)
    assert analysis.nesting_depth == 1 and analysis.affine


def test_mixture1d_program():
    program = mixture1d()
    counts = (program.dim, program.num_params, program.num_ifs, program.nesting_depth, program.affine)
    assert counts == (1, 1, 1, 1, True)
    a, c, j = program.boundaries
    np.testing.assert_array_equal(a, [[1.0]])
    np.testing.assert_array_equal(c, [0.0])
    np.testing.assert_array_equal(j, [0])
    assert "ℓ=1" in repr(program)


# --- random nestings --------------------------------------------------------------------

@st.composite
def guard_chains(draw):
    """A chain of `depth` ifs, each guard reading the previous if's value, plus
    decoys: ifs in branches, which must not add to the depth."""
    depth = draw(st.integers(1, 5))
    z = ex.latent(depth)
    value = ex.const(0.0)
    for i in range(depth):
        weight = draw(st.floats(0.5, 2.0))
        then_ = draw(st.floats(-3.0, 3.0))
        decoy = ex.if_(z[i] - draw(st.floats(-1.0, 1.0)), then_, 0.0) if draw(st.booleans()) else then_
        value = ex.if_(z[i] + weight * value, decoy, draw(st.floats(-3.0, 3.0)))
    return depth, value


@given(guard_chains())
def test_nesting_depth_of_random_guard_chains(chain):
    depth, program = chain
    analysis = ex.analyse(program)
    assert analysis.nesting_depth == depth
    assert analysis.affine == (depth == 1)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=6))
def test_nesting_depth_is_the_longest_chain_of_a_sum_of_chains(depths):
    """Independent chains added together: the program's depth is the longest one."""
    z = ex.latent(4)
    total = ex.const(0.0)
    for length in depths:
        value = ex.const(0.0)
        for i in range(length):
            value = ex.step(z[i] + value)
        total = total + value
    assert ex.analyse(total).nesting_depth == max(depths)


# --- programs and their errors ------------------------------------------------------------

def test_program_objective_and_family():
    z = ex.latent(2)
    family = MeanField.full(2)
    theta = jnp.array([0.1, -0.2, 0.3, 0.4])
    program = Program("pair", ex.normal_logpdf(z, 0.0, 1.0).sum(), family, np.asarray(theta))
    m, sigma = family.unpack(theta)
    np.testing.assert_allclose(m, [0.1, -0.2])
    np.testing.assert_allclose(sigma, np.log1p(np.exp([0.3, 0.4])), rtol=1e-14)
    point = jnp.array([0.5, 1.0])
    expected = float(-0.5 * (point**2).sum() - math.log(2 * math.pi)
                - float(jax.scipy.stats.norm.logpdf(point, m, sigma).sum()))
    assert float(program.objective(theta, point)) == pytest.approx(expected, rel=1e-13)
    assert softplus_inverse(np.log1p(np.exp(0.3))) == pytest.approx(0.3, rel=1e-12)


@pytest.mark.parametrize("build, message", [
    (lambda z: z[0] + ex.const([1.0, 2.0, 3.0]) + z, "do not broadcast"),
    (lambda z: z[5], "does not apply"),
    (lambda z: ex.if_(z[0], ex.const([1.0, 2.0]), 0.0), "guard of an if"),
    (lambda z: z[0] ** 3, "only squares"),
    (lambda z: z[0] + "1", "expected an expression or a number"),
    (lambda z: z[0] + float("nan"), "finite"),
    (lambda z: ex.poisson_logpmf(2.5, z[0]), "non-negative integers"),
    (lambda z: z.reshape(3, 3), "cannot reshape"),
    (lambda z: 1.0 if z[0] else 0.0, "truth value"),
])
def test_ill_formed_programs_are_rejected(build, message):
    with pytest.raises(ProgramError, match=message):
        build(ex.latent(4))


def test_program_level_errors():
    z = ex.latent(2)
    family = MeanField.full(2)
    with pytest.raises(ProgramError, match="scalar"):
        Program("vector", z, family, np.zeros(4))
    with pytest.raises(ProgramError, match="theta0"):
        Program("short", z.sum(), family, np.zeros(3))
    with pytest.raises(ProgramError, match="latent dimension"):
        Program("reads too far", ex.latent(3).sum(), family, np.zeros(4))
    with pytest.raises(ProgramError, match="does not depend on z"):
        ex.analyse(ex.if_(ex.const(1.0), z[0], z[1]))
    with pytest.raises(ProgramError, match="solve_for"):
        ex.analyse(ex.if_(z[0], 1.0, 0.0, solve_for=1))
    with pytest.raises(ValueError, match="not affine"):
        _ = Program("nonaffine", ex.step(z[0] + ex.step(z[1])), family, np.zeros(4)).boundaries
    with pytest.raises(ValueError, match="offsets"):
        ex.evaluate(z.sum(), jnp.zeros(2), ex.Forced(0, True))


def test_matrix_vector_products_numpy_operands_and_poisson_counts():
    z = ex.latent(6)
    weights = z[:4].reshape(2, 2)
    hidden = ex.dot(weights, np.array([1.0, -2.0])) + z[4:6]
    analysis = ex.analyse(ex.step(hidden).sum())
    np.testing.assert_array_equal(analysis.coefficients, [[1, -2, 0, 0, 1, 0], [0, 0, 1, -2, 0, 1]])
    point = jnp.arange(6.0)
    np.testing.assert_allclose(ex.evaluate(hidden, point), [0 - 2 + 4, 2 - 6 + 5])
    left = np.array([2.0, 3.0]) * z[:2]  # NumPy on the left defers to the expression
    assert isinstance(left, ex.Expr) and left.shape == (2,)
    counts = ex.poisson_logpmf([1, 2], ex.exp(z[:2]))
    assert isinstance(counts, ex.Expr) and counts.shape == (2,)
    rates_ = np.exp(np.array([0.0, 1.0]))
    np.testing.assert_allclose(ex.evaluate(counts, point), [0.0 - 1.0, 2.0 * 1.0 - rates_[1] - math.log(2.0)],
                               rtol=1e-14)
    with pytest.raises(ProgramError, match="dot takes"):
        ex.dot(z, z)

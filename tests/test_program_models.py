"""The six DSGD benchmark models against their specification: spot values of log p, the
facts (d, |θ|, K, ℓ, affine), initial parameters, boundary tables, forced and smoothed
evaluation, and jit/vmap."""

import functools
import importlib
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import ndtri

import problems  # noqa: F401  (turns on float64)
from problems import programs
from problems.programs import cheating, influenza, temperature, textmsg, walk, xornet

# The package exports the model functions under the modules' names; the modules hold the data.
temperature_module = importlib.import_module("problems.programs.temperature")
textmsg_module = importlib.import_module("problems.programs.textmsg")
walk_module = importlib.import_module("problems.programs.walk")
xornet_module = importlib.import_module("problems.programs.xornet")

SOFTPLUS_1 = 1.3132616875182228
LN_2 = 0.6931471805599453
RHO_OF = {0.001: -6.9072552373154705, 0.4: -0.709632931588928, 1.0: 0.541324854612918,
          0.8325546111576977: 0.261736965776246}

PROGRAMS = {
    "temperature": temperature(), "textmsg": textmsg(), "influenza": influenza(),
    "cheating": cheating(), "xornet": xornet(), "walk": walk(),
}
NAMES = list(PROGRAMS)
AFFINE = [name for name in NAMES if name != "xornet"]


@functools.partial(jax.jit, static_argnums=0)
def crisp(program, z):
    return program.log_p(z)


@functools.partial(jax.jit, static_argnums=0)
def smoothed(program, z, eta):
    return program.log_p(z, eta)


@functools.partial(jax.jit, static_argnums=0)
def forced_all(program, z):
    """log p with each if forced to its then-branch, and to its else-branch: two (K,) arrays."""
    numbers = jnp.arange(program.num_ifs)
    forced = jax.vmap(program.log_p_forced, (None, 0, None))
    return forced(z, numbers, True), forced(z, numbers, False)


# --- the specification's initial parameters, written out ----------------------------

def initial(name):
    """`(m, σ, θ0)` from the tables of the specification."""
    if name == "temperature":
        y = np.asarray(temperature_module.OBSERVATIONS)
        m = np.concatenate([[20.0], y[:20], np.full(20, 0.5)])
        sigma = np.concatenate([[0.001], np.full(20, 0.4), np.full(20, 0.001)])
        rho = np.array([RHO_OF[s] for s in sigma])
        return m, sigma, np.concatenate([m, rho])
    if name == "textmsg":
        m = np.array([2.636237728266557, 2.636237728266557, 0.0])
        sigma = np.array([0.8325546111576977, 0.8325546111576977, SOFTPLUS_1])
        return m, sigma, np.concatenate([m, [0.261736965776246, 0.261736965776246, 1.0]])
    if name == "influenza":
        return np.zeros(37), np.full(37, LN_2), np.zeros(74)
    if name == "cheating":
        sigma = np.ones(301)
        sigma[0] = SOFTPLUS_1
        return np.zeros(301), sigma, np.array([0.0, 1.0])
    if name == "xornet":
        m = np.asarray(xornet_module.INITIAL_MEANS)
        return m, np.ones(25), np.concatenate([m, np.full(25, 0.541324854612918)])
    if name == "walk":
        m = np.zeros(16)
        m[0] = 5.0
        return m, np.full(16, SOFTPLUS_1), np.concatenate([m, np.ones(16)])
    raise KeyError(name)


def point_s(name):
    m, sigma, _ = initial(name)
    return jnp.asarray(m + sigma * np.sin(np.arange(len(m)) + 1.0))


POINT_H = jnp.array([1.0, -0.5, 0.3, -1.2] + [0.0] * 12)

# Appendix D: (model, point, crisp log p, smoothed log p at η = 0.1).
SPOT_VALUES = [
    ("temperature", "S", -2498368.658214634, -916419.69922859),
    ("temperature", "M", -2499963.5458188457, -915558.0289827127),
    ("textmsg", "S", -337.37844643160355, -338.57098309684073),
    ("influenza", "S", -1418833.8591160388, -1441982.410800375),
    ("cheating", "S", -87.4389117725503, -81.3295218026574),
    ("xornet", "S", -10031.28362674263, -10026.882217345823),
    ("walk", "S", -492554.81513129646, -492554.81513129646),
    ("walk", "H", -9.015942666023363, -9.102703966299893),
]


def spot_point(name, point):
    if point == "S":
        return point_s(name)
    if point == "M":
        return jnp.asarray(initial(name)[0])
    return POINT_H


@pytest.mark.parametrize("name, point, crisp_value, smoothed_value", SPOT_VALUES,
                         ids=[f"{row[0]}-{row[1]}" for row in SPOT_VALUES])
def test_spot_values(name, point, crisp_value, smoothed_value):
    program, z = PROGRAMS[name], spot_point(name, point)
    np.testing.assert_allclose(float(crisp(program, z)), crisp_value, rtol=1e-11, atol=0)
    np.testing.assert_allclose(float(smoothed(program, z, 0.1)), smoothed_value, rtol=1e-11, atol=0)


# --- facts and initial parameters -----------------------------------------------------

FACTS = {  # d, |θ|, K, ℓ_guard, affine
    "temperature": (41, 82, 80, 1, True),
    "textmsg": (3, 6, 37, 1, True),
    "influenza": (37, 74, 24, 1, True),
    "cheating": (301, 2, 300, 1, True),
    "xornet": (25, 50, 28, 3, False),
    "walk": (16, 32, 31, 1, True),
}


@pytest.mark.parametrize("name", NAMES)
def test_facts(name):
    program = PROGRAMS[name]
    assert (program.dim, program.num_params, program.num_ifs, program.nesting_depth,
            program.affine) == FACTS[name]
    assert program.name == name


@pytest.mark.parametrize("name", NAMES)
def test_initial_parameters(name):
    program = PROGRAMS[name]
    m, sigma, theta0 = initial(name)
    np.testing.assert_allclose(program.theta0, theta0, rtol=1e-13, atol=1e-15)
    mean, scale = program.family.unpack(jnp.asarray(program.theta0))
    np.testing.assert_allclose(mean, m, rtol=1e-13, atol=0)
    np.testing.assert_allclose(scale, sigma, rtol=1e-13, atol=0)


def test_cheating_has_one_variational_coordinate():
    family = PROGRAMS["cheating"].family
    np.testing.assert_array_equal(family.variational, [0])
    z = point_s("cheating")
    # log q is N(τ; 0, softplus(1)) alone: the auxiliary coordinates are left out.
    expected = -0.5 * (float(z[0]) / SOFTPLUS_1) ** 2 - math.log(SOFTPLUS_1) - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(float(family.log_density(jnp.asarray(PROGRAMS["cheating"].theta0), z)),
                               expected, rtol=1e-13)


def test_xornet_initial_means_are_the_threefry_draw_at_key_0():
    with jax.threefry_partitionable(False):
        draw = jax.random.normal(jax.random.PRNGKey(0), (25,), dtype=jnp.float32)
    np.testing.assert_array_equal(np.asarray(draw, dtype=np.float64), xornet_module.INITIAL_MEANS)


def test_textmsg_constants():
    np.testing.assert_allclose(textmsg_module.MEAN_COUNT, 19.743243243243242, rtol=1e-15)
    np.testing.assert_allclose(textmsg_module.SCALE_LN, 0.8325546111576977, rtol=1e-15)
    np.testing.assert_allclose(textmsg_module.MEAN_LN, 2.636237728266557, rtol=1e-15)
    assert textmsg_module.OBSERVED == (24, 24, 35, 11, 11, 22, 57, 19, 6, 12, 12, 72, 9, 13, 23, 20, 17,
                                       10, 6, 15, 2, 15, 70, 7, 22, 31, 11, 20, 35, 23, 4, 31, 13, 0, 37,
                                       14, 22)
    days = jnp.arange(2, 75, 2, dtype=jnp.float64)
    np.testing.assert_allclose(textmsg_module.THRESHOLDS, ndtri(days / 75.0), rtol=1e-14, atol=1e-15)


def test_walk_penalty():
    np.testing.assert_allclose(walk_module.PENALTY, -492529.0439385332, rtol=1e-15)


def test_variants():
    product = temperature(transition="product")
    assert (product.num_ifs, product.nesting_depth, product.affine) == (80, 1, True)
    # The variants differ only in the transition std: s_i + 2 against s_i · 2.
    z = point_s("temperature")
    t, switch = np.asarray(z[:21]), np.asarray(z[21:])
    heater = (switch >= 0.5).astype(np.float64)
    scale = np.where(switch >= 0.5, 0.22, 0.2)
    mean = t[:-1] + (32.0 - (t[:-1] + 21.0 * heater)) / 15.0

    def transition(std):
        return np.sum(-0.5 * ((t[1:] - mean) / std) ** 2 - np.log(std))

    expected = transition(scale + 2.0) - transition(scale * 2.0)
    difference = float(PROGRAMS["temperature"].log_p(z)) - float(product.log_p(z))
    np.testing.assert_allclose(difference, expected, rtol=1e-9)
    with pytest.raises(ValueError):
        temperature(transition="power")
    lyy18 = textmsg(init="lyy18")
    np.testing.assert_allclose(lyy18.theta0[5], 0.541324854612918, rtol=1e-13)
    np.testing.assert_array_equal(lyy18.theta0[:5], PROGRAMS["textmsg"].theta0[:5])


# --- boundary tables ------------------------------------------------------------------

def unit(d, *indices, signs=None):
    a = np.zeros(d)
    for index, sign in zip(indices, signs or [1.0] * len(indices)):
        a[index] = sign
    return a


def expected_table(name):
    """The rows (a, c, j) of the specification's if table, in the specification's order."""
    rows = []
    if name == "temperature":
        for i in range(1, 21):
            rows += [(unit(41, i - 1, signs=[-1.0]), -18.0, i - 1), (unit(41, i - 1), 22.0, i - 1),
                     (unit(41, 20 + i), 0.5, 20 + i), (unit(41, 20 + i), 0.5, 20 + i)]
    elif name == "textmsg":
        rows = [(unit(3, 2), float(ndtri(k / 75.0)), 2) for k in range(2, 75, 2)]
    elif name == "influenza":
        for i in range(1, 13):
            rows += [(unit(37, i - 1), 0.0, i - 1), (unit(37, i), 0.0, i)]
    elif name == "cheating":
        rows = [(unit(301, 0, j, signs=[-1.0, 1.0]), 0.0, j) for j in range(1, 101)]
        rows += [(unit(301, 100 + j), 0.0, 100 + j) for j in range(1, 101)]
        rows += [(unit(301, 200 + j), 0.0, 200 + j) for j in range(1, 101)]
    elif name == "walk":
        rows = [(unit(16, *range(k + 1)), 0.0, 0) for k in range(16)]
        rows += [(unit(16, i), 0.0, i) for i in range(1, 16)]
    return rows


def canonical(rows):
    return sorted(rows, key=lambda row: (row[2], tuple(row[0]), row[1]))


@pytest.mark.parametrize("name", AFFINE)
def test_boundary_table(name):
    a, c, j = PROGRAMS[name].boundaries
    assert a.shape == (PROGRAMS[name].num_ifs, PROGRAMS[name].dim)
    actual = canonical(list(zip(a, c, j)))
    expected = canonical(expected_table(name))
    assert len(actual) == len(expected)
    for (a_actual, c_actual, j_actual), (a_expected, c_expected, j_expected) in zip(actual, expected):
        np.testing.assert_array_equal(a_actual, a_expected)
        assert j_actual == j_expected
        np.testing.assert_allclose(c_actual, c_expected, rtol=1e-14, atol=1e-15)


def test_xornet_has_no_boundary_table():
    with pytest.raises(ValueError):
        _ = PROGRAMS["xornet"].boundaries


# --- forced evaluation ----------------------------------------------------------------

def forced_at(name, z):
    program = PROGRAMS[name]
    then_values, else_values = forced_all(program, z)
    return float(crisp(program, z)), np.asarray(then_values), np.asarray(else_values)


@pytest.mark.parametrize("name", NAMES)
def test_forcing_the_selected_branch_changes_nothing(name):
    z = point_s(name)
    value, then_values, else_values = forced_at(name, z)
    if name == "xornet":
        # The guards of layers 2 and 3 depend on earlier ifs: one of the two forcings is crisp.
        closest = np.minimum(np.abs(then_values - value), np.abs(else_values - value))
        np.testing.assert_array_less(closest, 1e-12 * abs(value))
        return
    a, c, _ = PROGRAMS[name].boundaries
    selected = np.where(a @ np.asarray(z) - c >= 0, then_values, else_values)
    np.testing.assert_allclose(selected, value, rtol=1e-13, atol=0)


def rows_where(name, predicate):
    """The if numbers whose table row (a, c, j) satisfies `predicate`."""
    a, c, j = PROGRAMS[name].boundaries
    return np.array([k for k in range(len(c)) if predicate(a[k], c[k], j[k])], dtype=np.int64)


def other_branch(name, z):
    """`(value, forced, guard)`: log p with each if forced to the branch its guard rejects."""
    value, then_values, else_values = forced_at(name, z)
    a, c, _ = PROGRAMS[name].boundaries
    guard = a @ np.asarray(z) - c
    return value, np.where(guard >= 0, else_values, then_values), guard


def test_forcing_temperature():
    z = point_s("temperature")
    value, forced, _ = other_branch("temperature", z)
    cold = np.asarray(z[:20]) <= 18.0       # t_{i−1} ≤ 18: A_i takes its then-branch
    assert cold.any() and not cold.all()
    upper = rows_where("temperature", lambda a, c, j: c == 22.0)
    switches = rows_where("temperature", lambda a, c, j: c == 0.5)
    assert len(upper) == 20 and len(switches) == 40
    # B_i lies in the else-branch of A_i: forcing it matters only where t_{i−1} > 18.
    upper_cold = [k for k in upper if cold[PROGRAMS["temperature"].boundaries[2][k]]]
    assert upper_cold
    np.testing.assert_allclose(forced[upper_cold], value, rtol=1e-13)
    assert np.all(forced[switches] != value)


@pytest.mark.parametrize("name", ["textmsg", "influenza"])
def test_forcing_changes_every_if_on_the_path(name):
    value, forced, _ = other_branch(name, point_s(name))
    assert np.all(np.abs(forced - value) > 1e-9 * abs(value))


def test_forcing_cheating():
    z = point_s("cheating")
    value, forced, _ = other_branch("cheating", z)
    first_heads = np.asarray(z[101:201]) >= 0.0
    cheat = rows_where("cheating", lambda a, c, j: 1 <= j <= 100)
    second = rows_where("cheating", lambda a, c, j: 201 <= j <= 300)
    js = PROGRAMS["cheating"].boundaries[2]
    # ans_j is cheat_j when s_j ≥ 0 and coin2_j otherwise; the other one is off the path.
    off = [k for k in cheat if not first_heads[js[k] - 1]] + [k for k in second if first_heads[js[k] - 201]]
    on = [k for k in cheat if first_heads[js[k] - 1]] + [k for k in second if not first_heads[js[k] - 201]]
    assert len(off) == len(on) == 100
    np.testing.assert_allclose(forced[off], value, rtol=1e-13)
    assert np.all(forced[on] != value)


def test_forcing_walk():
    positions = rows_where("walk", lambda a, c, j: j == 0)
    steps = rows_where("walk", lambda a, c, j: j > 0)
    # At S the walk never stops: every position if is on the path, and the distance, built
    # by the absolute-value ifs, is only read in branches that are not taken.
    value, forced, guard = other_branch("walk", point_s("walk"))
    assert np.all(guard[positions] >= 0)
    assert np.all(forced[positions] != value)
    np.testing.assert_allclose(forced[steps], value, rtol=1e-13)
    # Here the walk stops after 3 steps (positions 1, 0.5, 0.8, −0.4); later ifs are off the path.
    z = jnp.array([1.0, -0.5, 0.3, -1.2, 0.5, 0.9, -0.3, 0.2, 0.7, -0.4, 0.6, 0.1, -0.8, 0.3, 0.5, -0.2])
    value, forced, _ = other_branch("walk", z)
    a, _, j = PROGRAMS["walk"].boundaries
    depth = a.sum(axis=1) - 1                    # P_k has k + 1 ones; A_i has one, at z[i]
    taken_position = [k for k in positions if depth[k] <= 3]
    taken_step = [k for k in steps if j[k] <= 3]
    assert len(taken_position) == 4 and len(taken_step) == 3
    assert np.all(forced[taken_position + taken_step] != value)
    untaken = [k for k in range(31) if k not in taken_position + taken_step]
    np.testing.assert_allclose(forced[untaken], value, rtol=1e-13)
    _, then_values, else_values = forced_at("walk", z)
    np.testing.assert_allclose(then_values[untaken], value, rtol=1e-13)
    np.testing.assert_allclose(else_values[untaken], value, rtol=1e-13)


def test_forcing_xornet_output():
    program = PROGRAMS["xornet"]
    z = point_s("xornet")
    value, then_values, else_values = forced_at("xornet", z)
    output = [node for node in program.analysis.ifs if node.shape == (4, 1)]
    assert len(output) == 1
    numbers = program.analysis.offsets[output[0]] + np.arange(4)
    # The output unit's value is observed directly: its other branch always changes log p.
    change = np.maximum(np.abs(then_values[numbers] - value), np.abs(else_values[numbers] - value))
    assert np.all(change > 1.0)


# --- smoothing, jit and vmap ----------------------------------------------------------

@pytest.mark.parametrize("name, point", [(name, "S") for name in NAMES] + [("walk", "H")])
def test_smoothed_tends_to_crisp(name, point):
    program, z = PROGRAMS[name], spot_point(name, point)
    value = float(crisp(program, z))
    gaps = [abs(float(smoothed(program, z, eta)) - value) for eta in (1e-1, 1e-2, 1e-4, 1e-6, 1e-8, 1e-10)]
    tolerance = 1e-13 * abs(value)
    assert all(later <= earlier + tolerance for earlier, later in itertools.pairwise(gaps)), gaps
    assert gaps[-1] <= tolerance, gaps
    if not (name == "walk" and point == "S"):       # there every guard is far from 0
        assert gaps[0] > 1e-6 * abs(value), gaps


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_vmap(name):
    program = PROGRAMS[name]
    noise = jax.random.normal(jax.random.PRNGKey(3), (4, program.dim))
    batch = point_s(name)[None, :] + 0.05 * noise
    crisp_batch = jax.jit(jax.vmap(program.log_p))(batch)
    smoothed_batch = jax.jit(jax.vmap(program.log_p, (0, None)))(batch, 0.1)
    assert crisp_batch.shape == smoothed_batch.shape == (4,)
    assert crisp_batch.dtype == jnp.float64
    for row, crisp_value, smoothed_value in zip(batch, crisp_batch, smoothed_batch):
        np.testing.assert_allclose(crisp_value, crisp(program, row), rtol=1e-13)
        np.testing.assert_allclose(smoothed_value, smoothed(program, row, 0.1), rtol=1e-13)
    assert np.all(np.isfinite(crisp_batch)) and np.all(np.isfinite(smoothed_batch))


def test_exported():
    for name in NAMES:
        assert name in programs.__all__

"""Sorting, ranking, shortest paths and steps, each against an independent reference."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph
import scipy.stats
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import problems
from problems import blackbox

# ---------------------------------------------------------------------------- strategies

SORT_SIZES = (1, 2, 3, 5, 8)
GRID_SIZES = (2, 3, 5)


@st.composite
def vectors(draw, sizes=SORT_SIZES, tied: bool | None = None):
    """Float vectors; tied ones take few distinct (exactly representable) values."""
    n = draw(st.sampled_from(sizes))
    if tied is None:
        tied = draw(st.booleans())
    if tied:
        elements = st.sampled_from((-1.5, -0.0, 0.0, 0.25, 2.0))
    else:
        elements = st.floats(allow_nan=False, width=64)
    return draw(arrays(np.float64, (n,), elements=elements))


@st.composite
def cost_grids(draw, sizes=GRID_SIZES):
    """Positive cost grids: integer costs (many exact ties) or floats spanning 10⁴."""
    k = draw(st.sampled_from(sizes))
    if draw(st.booleans()):
        elements = st.sampled_from((1.0, 2.0, 3.0))
    else:
        elements = st.floats(0.01, 100.0)
    return draw(arrays(np.float64, (k, k), elements=elements))


# ----------------------------------------------------------------------------- sorting


def reference_order(x):
    """Indices from the largest to the smallest value, equal values by index."""
    return np.argsort(-np.asarray(x), kind="stable")


def assert_permutation_matrix(matrix):
    matrix = np.asarray(matrix)
    assert matrix.dtype == np.float64
    assert np.all((matrix == 0) | (matrix == 1))
    assert np.all(matrix.sum(0) == 1) and np.all(matrix.sum(1) == 1)


EDGE_VECTORS = [
    # equal infinities are ties, which the sorted check must not difference
    np.array([np.inf, np.inf]), np.array([-np.inf, -np.inf]), np.array([-np.inf, np.inf]),
    np.array([np.inf, -np.inf, np.inf, 1.0, -np.inf]), np.array([-0.0, np.inf, 0.0, -np.inf, -0.0]),
    # subnormals, which XLA on the CPU compares as zeros
    np.array([0.0, 2.225073858507201e-309]), np.array([-5e-324, 0.0, 5e-324, -0.0, -1e-310]),
]


def edge_examples(test):
    """`test` also run on each of `EDGE_VECTORS`, in every profile."""
    for x in reversed(EDGE_VECTORS):
        test = example(x)(test)
    return test


@given(vectors())
@edge_examples
def test_sort_permutation_sorts_descending_with_stable_ties(x):
    matrix = problems.sort_permutation(x)
    assert matrix.shape == (x.size, x.size)
    assert_permutation_matrix(matrix)
    order = reference_order(x)
    np.testing.assert_array_equal(matrix, np.eye(x.size)[order])
    finite = np.where(np.isfinite(x), x, 0.0)
    np.testing.assert_array_equal(np.asarray(matrix) @ finite, finite[order])
    # compared, not differenced: inf − inf is NaN
    assert np.all(x[order][:-1] >= x[order][1:])


@given(vectors())
@edge_examples
def test_rank_is_the_inverse_of_the_sorting_order(x):
    ranks = problems.rank(x)
    assert ranks.dtype == jnp.float64 and ranks.shape == x.shape
    expected = np.empty(x.size)
    expected[reference_order(x)] = np.arange(x.size)
    np.testing.assert_array_equal(ranks, expected)
    np.testing.assert_array_equal(ranks, np.asarray(problems.sort_permutation(x)).T @ np.arange(x.size))


@given(vectors(sizes=(1, 2, 3, 4, 5), tied=True))
def test_sort_permutation_maximises_the_rearrangement_objective(x):
    """Over all n! orders: the largest `Σ_r (n − 1 − r) x[σ(r)]` (a descending order),
    and among equal objectives (ties) the lexicographically smallest order."""
    n = x.size
    weights = np.arange(n - 1, -1, -1)
    best = min(itertools.permutations(range(n)), key=lambda order: (-(weights @ x[list(order)]), order))
    np.testing.assert_array_equal(problems.sort_permutation(x), np.eye(n)[list(best)])


def test_sort_permutation_examples():
    x = jnp.array([1.0, 3.0, 2.0, 3.0])
    np.testing.assert_array_equal(problems.sort_permutation(x) @ x, [3.0, 3.0, 2.0, 1.0])
    np.testing.assert_array_equal(problems.rank(x), [3.0, 0.0, 2.0, 1.0])
    np.testing.assert_array_equal(problems.rank([-jnp.inf, 0.0, jnp.inf]), [2.0, 1.0, 0.0])
    np.testing.assert_array_equal(problems.rank([7.0]), [0.0])


def test_sorting_under_jit_and_vmap():
    batch = jax.random.normal(jax.random.key(0), (16, 6))
    batch = batch.at[3, 1].set(batch[3, 4])
    expected = np.stack([np.eye(6)[reference_order(row)] for row in np.asarray(batch)])
    np.testing.assert_array_equal(jax.vmap(problems.sort_permutation)(batch), expected)
    np.testing.assert_array_equal(jax.jit(jax.vmap(problems.sort_permutation))(batch), expected)
    np.testing.assert_array_equal(jax.jit(problems.rank)(batch[3]), problems.rank(batch[3]))
    np.testing.assert_array_equal(jax.vmap(problems.rank)(batch), expected.transpose(0, 2, 1) @ np.arange(6))


@pytest.mark.parametrize("function", [problems.sort_permutation, problems.rank])
def test_sorting_rejects_invalid_inputs(function):
    for bad in (jnp.float64(1.0), jnp.zeros((2, 2)), jnp.zeros(0)):
        with pytest.raises(ValueError, match=r"x must have shape \(n,\)"):
            function(bad)
    with pytest.raises(ValueError, match="NaN"):
        function(jnp.array([1.0, jnp.nan]))


def test_traced_nan_is_sorted_after_minus_infinity():
    """Under `jit` NaN cannot be rejected; it ranks last (ties by index), so the result is
    still a permutation, in the order of a stable `argsort(−x)`."""
    x = jnp.array([jnp.nan, 1.0, -jnp.inf, jnp.nan, jnp.inf, 1.0])
    ranks = jax.jit(problems.rank)(x)
    np.testing.assert_array_equal(ranks, [4.0, 1.0, 3.0, 5.0, 0.0, 2.0])
    expected = np.eye(x.size)[reference_order(x)]
    np.testing.assert_array_equal(jax.jit(problems.sort_permutation)(x), expected)
    np.testing.assert_array_equal(jax.vmap(problems.rank)(jnp.stack([x, jnp.full(6, jnp.nan)])),
                                  [ranks, np.arange(6.0)])


# ----------------------------------------------------------------------- shortest path

NEIGHBOURS = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]


def neighbours(k, i, j):
    """The 8-neighbours of cell (i, j), in row-major order."""
    return [(i + di, j + dj) for di, dj in NEIGHBOURS if 0 <= i + di < k and 0 <= j + dj < k]


def dijkstra_distances(costs):
    """Cheapest path costs from the top-left cell, both ends counted, by scipy's Dijkstra.

    A virtual node reaches the top-left cell at the cost of that cell; every move into a
    cell costs that cell, so the sums are formed in the same order as along the path."""
    k = costs.shape[0]
    rows, cols, weights = [k * k], [0], [costs[0, 0]]
    for i, j in itertools.product(range(k), repeat=2):
        for a, b in neighbours(k, i, j):
            rows.append(i * k + j)
            cols.append(a * k + b)
            weights.append(costs[a, b])
    graph = scipy.sparse.csr_matrix((weights, (rows, cols)), shape=(k * k + 1, k * k + 1))
    return scipy.sparse.csgraph.dijkstra(graph, directed=True, indices=k * k)[: k * k].reshape(k, k)


def backtracked_path(distances):
    """Walk back from the bottom-right cell to the nearest neighbour, first in row-major order."""
    k = distances.shape[0]
    cell, path = (k - 1, k - 1), np.zeros((k, k))
    path[cell] = 1.0
    while cell != (0, 0):
        cell = min(neighbours(k, *cell), key=lambda c: distances[c])  # min keeps the first minimum
        path[cell] = 1.0
    return path


def assert_corner_to_corner_path(path):
    """The visited cells form one simple 8-neighbour path from (0, 0) to (k − 1, k − 1)."""
    path = np.asarray(path)
    k = path.shape[0]
    assert path.dtype == np.float64
    assert np.all((path == 0) | (path == 1))
    visited = {tuple(int(v) for v in c) for c in np.argwhere(path == 1)}
    ends = {(0, 0), (k - 1, k - 1)}
    assert ends <= visited
    for cell in visited:
        degree = sum(c in visited for c in neighbours(k, *cell))
        assert degree == (1 if cell in ends else 2), f"cell {cell} has {degree} visited neighbours"
    reached, frontier = {(0, 0)}, [(0, 0)]
    while frontier:
        for c in neighbours(k, *frontier.pop()):
            if c in visited and c not in reached:
                reached.add(c)
                frontier.append(c)
    assert reached == visited, "the visited cells are not connected"


@functools.cache
def simple_paths(k):
    """Every simple 8-neighbour path from (0, 0) to (k − 1, k − 1), as tuples of cells."""
    found = []

    def extend(path):
        if path[-1] == (k - 1, k - 1):
            found.append(tuple(path))
            return
        for c in neighbours(k, *path[-1]):
            if c not in path:
                extend(path + [c])

    extend([(0, 0)])
    return found


def indicator(k, cells):
    path = np.zeros((k, k))
    path[tuple(np.array(cells).T)] = 1.0
    return path


@given(cost_grids())
def test_distances_match_dijkstra(costs):
    np.testing.assert_array_equal(problems.shortest_path_distances(costs), dijkstra_distances(costs))


@given(cost_grids())
def test_shortest_path_is_a_minimal_corner_to_corner_path(costs):
    path = problems.shortest_path(costs)
    assert path.shape == costs.shape
    assert_corner_to_corner_path(path)
    optimum = dijkstra_distances(costs)[-1, -1]
    np.testing.assert_allclose(np.sum(costs * np.asarray(path)), optimum, rtol=1e-13)
    np.testing.assert_array_equal(path, backtracked_path(dijkstra_distances(costs)))


@given(cost_grids(sizes=(2, 3)))
def test_shortest_path_against_all_paths(costs):
    """Brute force over every simple path; a path that is minimal by a clear margin is the answer."""
    k = costs.shape[0]
    totals = np.array([sum(costs[c] for c in cells) for cells in simple_paths(k)])
    path = np.asarray(problems.shortest_path(costs))
    np.testing.assert_allclose(np.sum(costs * path), totals.min(), rtol=1e-13)
    first, second = np.sort(totals)[:2]
    if second - first > 1e-9 * first:
        np.testing.assert_array_equal(path, indicator(k, simple_paths(k)[np.argmin(totals)]))


def test_simple_path_counts():
    """The brute force sees every path: 5 on 2×2 and 235 on 3×3."""
    assert len(simple_paths(2)) == 5
    assert len(simple_paths(3)) == 235


def test_shortest_path_unique_cases():
    # Equal costs: the diagonal is the only path with k cells.
    np.testing.assert_array_equal(problems.shortest_path(jnp.ones((6, 6))), np.eye(6))
    # A cheap corridor without shortcuts along the top row and down the right column.
    corridor = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4), (4, 4)]
    costs = np.full((5, 5), 10.0)
    costs[tuple(np.array(corridor).T)] = 1.0
    np.testing.assert_array_equal(problems.shortest_path(costs), indicator(5, corridor))
    np.testing.assert_array_equal(problems.shortest_path_distances(costs)[-1, -1], 8.0)


def test_shortest_path_tie_break():
    """Around an expensive centre two paths cost 4; walking back, the first neighbour in
    row-major order wins: (1, 2) before (2, 1), so the path through the upper right."""
    costs = jnp.array([[1.0, 1.0, 1.0], [1.0, 9.0, 1.0], [1.0, 1.0, 1.0]])
    expected = [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    np.testing.assert_array_equal(problems.shortest_path(costs), expected)
    np.testing.assert_array_equal(problems.shortest_path(jnp.ones((2, 2))), np.eye(2))


def test_shortest_path_under_jit_and_vmap():
    batch = jax.random.uniform(jax.random.key(1), (16, 5, 5), jnp.float64, 0.5, 2.0)
    batch = batch.at[0].set(jnp.ones((5, 5)))
    expected = np.stack([backtracked_path(dijkstra_distances(c)) for c in np.asarray(batch)])
    np.testing.assert_array_equal(jax.vmap(problems.shortest_path)(batch), expected)
    np.testing.assert_array_equal(jax.jit(jax.vmap(problems.shortest_path))(batch), expected)
    np.testing.assert_array_equal(jax.jit(problems.shortest_path)(batch[5]), expected[5])
    distances = jax.vmap(problems.shortest_path_distances)(batch)
    np.testing.assert_array_equal(distances[7], dijkstra_distances(np.asarray(batch[7])))


def test_shortest_path_on_a_winding_corridor():
    """A cheap induced path winding through expensive cells is the unique answer."""
    k = 5
    snake = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 4), (2, 3), (2, 2), (2, 1), (3, 0)]
    snake += [(4, 1), (4, 2), (4, 3), (4, 4)]
    costs = np.full((k, k), 1e3)
    costs[tuple(np.array(snake).T)] = 1.0
    np.testing.assert_array_equal(problems.shortest_path(costs), indicator(k, snake))


def test_derivatives_of_the_path_cost():
    """The minimal cost is piecewise linear in the costs: its gradient is the path."""
    costs = problems.shortest_path_task(6, 4)
    path = problems.shortest_path(costs)
    optimum = jax.jacfwd(lambda c: problems.shortest_path_distances(c)[-1, -1])(costs)
    np.testing.assert_array_equal(optimum, path)
    np.testing.assert_array_equal(jax.grad(lambda c: jnp.sum(c * problems.shortest_path(c)))(costs), path)


def test_piecewise_constant_operators_have_zero_derivatives():
    x = jnp.array([0.3, -1.0, 2.0])
    np.testing.assert_array_equal(jax.jacrev(problems.rank)(x), np.zeros((3, 3)))
    np.testing.assert_array_equal(jax.jacrev(problems.sort_permutation)(x), np.zeros((3, 3, 3)))
    np.testing.assert_array_equal(jax.grad(problems.heaviside_sum)(x), np.zeros(3))
    np.testing.assert_array_equal(jax.jacrev(problems.shortest_path)(jnp.ones((2, 2))), np.zeros((2, 2, 2, 2)))


def test_traced_invalid_costs_still_terminate():
    """Values are not checked under jit; a negative cycle still ends after k² sweeps."""
    costs = -jnp.ones((3, 3))
    path = jax.jit(problems.shortest_path)(costs)
    assert path.shape == (3, 3)


@pytest.mark.parametrize("function", [problems.shortest_path, problems.shortest_path_distances])
def test_shortest_path_rejects_invalid_costs(function):
    for shape in ((3,), (2, 3), (1, 1), (0, 0), (2, 2, 2)):
        with pytest.raises(ValueError, match=r"costs must have shape \(k, k\) with k >= 2"):
            function(jnp.ones(shape))
    for value, message in ((0.0, "> 0"), (-1.0, "> 0"), (jnp.nan, "finite"), (jnp.inf, "finite")):
        with pytest.raises(ValueError, match=message):
            function(jnp.ones((3, 3)).at[1, 2].set(value))


# ----------------------------------------------------------------------- step functions


def test_step_values():
    x = jnp.array([[-1.0, -0.0, 0.0], [1e-300, -1e-300, jnp.inf]])
    expected = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]
    # subnormals keep their sign, although XLA on the CPU compares them as zeros
    np.testing.assert_array_equal(problems.step(jnp.array([-5e-324, 5e-324, -1e-310])), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(problems.step(x), expected)
    assert problems.step(x).dtype == jnp.float64
    assert problems.heaviside_sum(x).shape == ()
    assert problems.heaviside_sum(x) == 4.0
    np.testing.assert_array_equal(jax.vmap(problems.heaviside_sum)(x), [2.0, 2.0])
    np.testing.assert_array_equal(jax.jit(problems.step)(x), expected)
    with pytest.raises(ValueError, match="NaN"):
        problems.step(jnp.array([0.0, jnp.nan]))
    with pytest.raises(ValueError, match="NaN"):
        problems.heaviside_sum(jnp.array([jnp.nan]))


def test_smoothed_heaviside_sum_is_the_noise_cdf():
    """`E[Σ 1[xᵢ + γεᵢ ≥ 0]] = Σ Φ(xᵢ/γ)` for Gaussian ε (Monte Carlo, 5 standard errors)."""
    x, gamma, samples = jnp.array([-0.3, 0.1, 0.8]), 0.5, 20_000
    noise = jax.random.normal(jax.random.key(2), (samples, 3))
    values = np.asarray(jax.vmap(problems.heaviside_sum)(x + gamma * noise))
    expected = scipy.stats.norm.cdf(np.asarray(x) / gamma).sum()
    assert abs(values.mean() - expected) < 5 * values.std() / np.sqrt(samples)


# ------------------------------------------------------------------------------- tasks


@given(st.sampled_from((1, 2, 7, 20)), st.integers(0, 2**16))
def test_sorting_task(n, seed):
    x = np.asarray(problems.sorting_task(n, seed))
    assert x.shape == (n,) and x.dtype == np.float64
    np.testing.assert_array_equal(x, problems.sorting_task(n, seed))
    np.testing.assert_array_equal(np.sort(np.floor(x)), np.arange(n))
    fractions = x - np.floor(x)
    assert np.all((fractions >= 0.1) & (fractions <= 0.9))
    gaps = np.diff(np.sort(x))
    assert np.all((gaps >= 0.2) & (gaps <= 1.8))


def test_sorting_task_depends_on_the_seed():
    assert not np.array_equal(problems.sorting_task(10, 0), problems.sorting_task(10, 1))


@given(st.sampled_from((2, 5, 12)), st.integers(0, 2**16), st.sampled_from(blackbox.SHORTEST_PATH_STYLES))
def test_shortest_path_task(k, seed, style):
    costs = np.asarray(problems.shortest_path_task(k, seed, style))
    assert costs.shape == (k, k) and costs.dtype == np.float64
    assert np.all((costs >= 0.5) & (costs <= 2.0))
    np.testing.assert_array_equal(costs, problems.shortest_path_task(k, seed, style))
    if style == "terrain":
        np.testing.assert_allclose([costs.min(), costs.max()], [0.5, 2.0], rtol=1e-15)
    assert_corner_to_corner_path(problems.shortest_path(costs))


def test_terrain_is_smoother_than_uniform_costs():
    def roughness(costs):
        return np.mean(np.abs(np.diff(costs, axis=0))) + np.mean(np.abs(np.diff(costs, axis=1)))

    for seed in range(3):
        terrain = np.asarray(problems.shortest_path_task(24, seed, "terrain"))
        uniform = np.asarray(problems.shortest_path_task(24, seed, "uniform"))
        assert roughness(terrain) < 0.5 * roughness(uniform)
    assert not np.array_equal(problems.shortest_path_task(6, 0), problems.shortest_path_task(6, 1))


def test_tasks_reject_invalid_arguments():
    for n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            problems.sorting_task(n)
    for k in (1, 0, 3.0):
        with pytest.raises(ValueError, match="k must be an integer >= 2"):
            problems.shortest_path_task(k)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        problems.sorting_task(3, seed=-1)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        problems.shortest_path_task(3, seed=-1)
    with pytest.raises(ValueError, match="style must be one of"):
        problems.shortest_path_task(3, style="mountains")

"""Piecewise-constant operators for stochastic smoothing, and inputs to apply them to.

Stochastic smoothing replaces a discontinuous `f` by `f_γ(x) = E[f(x + γε)]` and
estimates its gradient from values of `f` at perturbed inputs only. The operators here
are such black boxes: pure float64 JAX functions, usable under `jit` and `vmap`, and
(all but `shortest_path_distances`) piecewise constant, with zero derivative almost
everywhere.

- `sort_permutation`, `rank`: sorting in descending order (largest value first).
- `shortest_path`: the cells of a minimal path on a grid of cell costs;
  `shortest_path_distances`, the minimal costs themselves (piecewise linear, not constant).
- `step`, `heaviside_sum`: the unit step and a sum of steps.
- `sorting_task`, `shortest_path_task`: inputs drawn from a seed.

Argument checks: shapes are always checked; values (NaN, non-positive costs) are
checked only when concrete, not while traced under `jit` or `vmap`. `sort_permutation`
and `rank` still return a permutation for traced NaN: they order NaN after `-inf`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from problems.validation import ArrayInput, CountLike, check_count, concrete

SHORTEST_PATH_STYLES = ("uniform", "terrain")
_MIN_COST, _MAX_COST = 0.5, 2.0


# --------------------------------------------------------------------------- sorting


def _as_vector(x, name: str = "x") -> Float[Array, " n"]:
    x = jnp.asarray(x, dtype=jnp.float64)
    if x.ndim != 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n,) with n >= 1, got shape {x.shape}")
    _check_no_nan(x, name)
    return x


def _check_no_nan(x, name: str) -> None:
    values = concrete(x)
    if values is not None and np.any(np.isnan(values)):
        raise ValueError(f"{name} must not contain NaN, got {values}")


def _order_key(x: Float[Array, ...]) -> Array:
    """Integers in the order of `x`: `+inf > … > −inf > NaN`, with `−0.0 = 0.0` and all NaN
    equal.

    Compared as integers, not floats: XLA on the CPU treats subnormal floats as zero in
    comparisons (`1e-310 > 0` is false there), and a NaN compares false with everything.
    """
    int_type = jnp.int64 if x.dtype == jnp.float64 else jnp.int32
    bits = lax.bitcast_convert_type(lax.stop_gradient(x), int_type)
    magnitude = bits & jnp.iinfo(int_type).max  # |x|, whose bits grow with it
    inf_bits = lax.bitcast_convert_type(jnp.asarray(jnp.inf, x.dtype), int_type)
    key = jnp.where(bits < 0, -magnitude, magnitude)
    return jnp.where(magnitude > inf_bits, jnp.iinfo(int_type).min, key)


@jax.jit
def _rank(x: Float[Array, " n"]) -> Array:
    # rank[j] = #{i : x_i > x_j} + #{i < j : x_i = x_j} in the order of _order_key, so that
    # a NaN that reaches here (traced, hence unchecked) still gives a permutation.
    key = _order_key(x)
    before = key[:, None] > key[None, :]
    index = jnp.arange(x.shape[0])
    tied = (key[:, None] == key[None, :]) & (index[:, None] < index[None, :])
    return jnp.sum(before | tied, axis=0)


def rank(x: ArrayInput) -> Float[Array, " n"]:
    """The 0-based descending ranks: `rank(x)[j] = r` when `x[j]` is the `r`-th largest.

    The largest entry has rank 0, the smallest rank `n − 1`. Ties: equal values are
    ranked in the order of their indices (the earlier index gets the smaller rank), as a
    stable sort of `−x` would order them. `±inf` are ordered as usual (`+inf` first,
    `−inf` last, equal infinities tied like any equal values); `−0.0` and `0.0` are equal;
    subnormal values are ordered exactly, not as zeros.

    NaN has no place in a descending order: a concrete NaN raises `ValueError`. Under
    `jit` or `vmap`, where values cannot be checked, NaN ranks after `−inf` (NaNs tied by
    index), so the result is still a permutation: the order of `numpy.argsort(−x,
    kind="stable")`.

    **Arguments:**

    - `x`: `Float[Array, "n"]`, `n ≥ 1`, without NaN (see above for traced NaN).

    **Returns:** `Float[Array, "n"]`, a permutation of `0, …, n − 1` as float64;
    `rank(x) = sort_permutation(x).T @ arange(n)`.
    """
    return _rank(_as_vector(x)).astype(jnp.float64)


def sort_permutation(x: ArrayInput) -> Float[Array, "n n"]:
    """The permutation matrix that sorts `x` in descending order.

    `P[r, j] = 1` when `x[j]` is the `r`-th largest entry (`rank(x)[j] = r`), else 0, so
    that `P @ x` is `x` sorted from the largest to the smallest entry (for finite `x`:
    with infinities, `0 · inf` makes NaN in the product). Ties, `±inf` and
    NaN follow `rank`: equal values keep the order of their indices, and a concrete NaN
    raises `ValueError` (traced, it is sorted after `−inf`).

    **Arguments:**

    - `x`: `Float[Array, "n"]`, `n ≥ 1`, without NaN (see `rank` for traced NaN).

    **Returns:** `Float[Array, "n n"]` with entries 0 and 1, one 1 per row and column.
    """
    x = _as_vector(x)
    ranks = _rank(x)
    return (ranks[None, :] == jnp.arange(x.shape[0])[:, None]).astype(jnp.float64)


# ---------------------------------------------------------------------- shortest path


def _as_costs(costs) -> Float[Array, "k k"]:
    costs = jnp.asarray(costs, dtype=jnp.float64)
    if costs.ndim != 2 or costs.shape[0] != costs.shape[1] or costs.shape[0] < 2:
        raise ValueError(f"costs must have shape (k, k) with k >= 2, got shape {costs.shape}")
    values = concrete(costs)
    if values is not None:
        if not np.all(np.isfinite(values)):
            raise ValueError("costs must be finite, got NaN or infinite entries")
        if not np.all(values > 0):
            raise ValueError(f"costs must be > 0, got a smallest cost of {values.min()}")
    return costs


def _neighbourhood_min(values: Array) -> Array:
    """Minimum over each cell's 3×3 neighbourhood (itself included), `inf` outside."""
    return lax.reduce_window(
        values, jnp.inf, lax.min, window_dimensions=(3, 3), window_strides=(1, 1), padding=((1, 1), (1, 1))
    )


@jax.jit
def _distances(costs: Float[Array, "k k"]) -> Float[Array, "k k"]:
    k = costs.shape[0]
    start = jnp.full((k, k), jnp.inf).at[0, 0].set(costs[0, 0])

    def improving(state):
        _, changed, sweeps = state
        return changed & (sweeps < k * k)

    def relax(state):
        distances, _, sweeps = state
        relaxed = jnp.minimum(distances, costs + _neighbourhood_min(distances))
        return relaxed, jnp.any(relaxed != distances), sweeps + 1

    # After t sweeps every cell holds the cheapest cost over paths of at most t moves;
    # a minimal path visits each cell at most once, so k² sweeps always suffice.
    distances, _, _ = lax.while_loop(improving, relax, (start, jnp.asarray(True), jnp.asarray(0)))
    return distances


@jax.jit
def _backtrack(distances: Float[Array, "k k"]) -> Float[Array, "k k"]:
    k = distances.shape[0]
    padded = jnp.pad(distances, 1, constant_values=jnp.inf)
    last = jnp.asarray(k - 1)
    path = jnp.zeros((k, k), jnp.float64).at[k - 1, k - 1].set(1.0)

    def walking(state):
        row, col, _, moves = state
        return ((row != 0) | (col != 0)) & (moves < k * k)

    def move(state):
        row, col, path, moves = state
        # the 3×3 neighbourhood of (row, col); jnp.argmin keeps the first (row-major) minimum
        block = lax.dynamic_slice(padded, (row, col), (3, 3)).at[1, 1].set(jnp.inf)
        best = jnp.argmin(block.ravel())
        row, col = row + best // 3 - 1, col + best % 3 - 1
        return row, col, path.at[row, col].set(1.0), moves + 1

    _, _, path, _ = lax.while_loop(walking, move, (last, last, path, jnp.asarray(0)))
    return path


def shortest_path_distances(costs: ArrayInput) -> Float[Array, "k k"]:
    """The cost of the cheapest path from the top-left cell to every cell.

    Paths move between 8-neighbour cells (edges and corners); a path costs the sum of
    the costs of its cells, both ends included, so `distances[0, 0] = costs[0, 0]`.
    Computed by Bellman–Ford sweeps over the grid until nothing changes (at most `k²`).

    **Arguments:**

    - `costs`: `Float[Array, "k k"]`, `k ≥ 2`, all entries finite and > 0.

    **Returns:** `Float[Array, "k k"]`; `distances[k − 1, k − 1]` is the cost of a
    minimal path of `shortest_path`.

    Differentiable in forward mode only (`jax.jvp`, `jax.jacfwd`): where the minimal path
    is unique, the derivative of `distances[k − 1, k − 1]` is `shortest_path(costs)`.
    `jnp.sum(costs * shortest_path(costs))` has the same value and gradient in reverse mode.
    """
    return _distances(_as_costs(costs))


def shortest_path(costs: ArrayInput) -> Float[Array, "k k"]:
    """The cells of a minimal path from the top-left to the bottom-right cell.

    Paths move between 8-neighbour cells; a path costs the sum of the costs of the cells
    it visits, both corners included (see `shortest_path_distances`). The path is walked
    back from the bottom-right cell, each step to the neighbour with the smallest
    distance; among neighbours at equal distance the first in row-major order (smallest
    row, then smallest column) is taken. This fixes one path when several are minimal;
    distances are compared as computed in float64, so ties are exact only for costs whose
    sums are exact (e.g. integers).

    **Arguments:**

    - `costs`: `Float[Array, "k k"]`, `k ≥ 2`, all entries finite and > 0.

    **Returns:** `Float[Array, "k k"]`, 1 on the visited cells and 0 elsewhere;
    `sum(costs * path)` is the minimal path cost.
    """
    return _backtrack(_distances(_as_costs(costs)))


# ---------------------------------------------------------------------- step functions


def step(x: ArrayInput) -> Float[Array, "*shape"]:
    """The unit step `1[x ≥ 0]`, elementwise (so `step(0) = step(−0.0) = 1`, and
    `step(−1e-310) = 0`).

    For noise `ε` symmetric about 0 with CDF `F`, `E[step(x + γε)] = F(x / γ)`.

    **Arguments:**

    - `x`: `Float[Array, "..."]`, any shape, without NaN.

    **Returns:** `Float[Array, "..."]` of 0s and 1s, the shape of `x`.
    """
    x = jnp.asarray(x, dtype=jnp.float64)
    _check_no_nan(x, "x")
    return (_order_key(x) >= 0).astype(jnp.float64)  # exact for subnormal x


def heaviside_sum(x: ArrayInput) -> Float[Array, ""]:
    """The number of non-negative entries, `Σᵢ 1[xᵢ ≥ 0]`, a piecewise-constant scalar.

    For noise `ε` with i.i.d. entries symmetric about 0 with CDF `F` and density `p`, the
    smoothed value is `Σᵢ F(xᵢ / γ)` and its gradient `p(xᵢ / γ) / γ` per entry.

    **Arguments:**

    - `x`: `Float[Array, "..."]`, any shape, without NaN.

    **Returns:** `Float[Array, ""]`, a whole number as float64.
    """
    return jnp.sum(step(x))


# ------------------------------------------------------------------------------ tasks


def sorting_task(n: CountLike, seed: CountLike = 0) -> Float[Array, " n"]:
    """`n` distinct values in a random order, with gaps between sorted neighbours in [0.2, 1.8].

    The values are `πᵢ + uᵢ` for a uniformly random permutation `π` of `0, …, n − 1` and
    `uᵢ` uniform on [0.1, 0.9]: exactly one value in each interval `(m + 0.1, m + 0.9)`,
    `m = 0, …, n − 1`. The same `(n, seed)` always gives the same values.

    **Arguments:**

    - `n`: the number of values, ≥ 1.
    - `seed`: an integer ≥ 0.

    **Returns:** `Float[Array, "n"]`.
    """
    n = check_count(n, "n")
    seed = check_count(seed, "seed", minimum=0)
    return _sorting_task(jax.random.key(seed), n)


@functools.partial(jax.jit, static_argnums=1)
def _sorting_task(key, n):
    order_key, offset_key = jax.random.split(key)
    order = jax.random.permutation(order_key, n).astype(jnp.float64)
    return order + jax.random.uniform(offset_key, (n,), jnp.float64, minval=0.1, maxval=0.9)


def shortest_path_task(k: CountLike, seed: CountLike = 0, style: str = "uniform") -> Float[Array, "k k"]:
    """A `k × k` grid of cell costs in [0.5, 2] for `shortest_path`.

    - `style="uniform"`: independent costs, uniform on [0.5, 2].
    - `style="terrain"`: a smooth landscape: Gaussian noise blurred by a Gaussian kernel
      of width `max(1, k / 6)` cells, rescaled so that its minimum is 0.5 and its
      maximum 2 (up to rounding).
      Neighbouring cells have similar costs, so competing paths are close in cost.

    The same `(k, seed, style)` always gives the same grid.

    **Arguments:**

    - `k`: the grid size, ≥ 2.
    - `seed`: an integer ≥ 0.
    - `style`: `"uniform"` or `"terrain"`.

    **Returns:** `Float[Array, "k k"]`, all entries in [0.5, 2].
    """
    k = check_count(k, "k", minimum=2)
    seed = check_count(seed, "seed", minimum=0)
    if style not in SHORTEST_PATH_STYLES:
        raise ValueError(f"style must be one of {SHORTEST_PATH_STYLES}, got {style!r}")
    return _shortest_path_task(jax.random.key(seed), k, style)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _shortest_path_task(key, k, style):
    if style == "uniform":
        return jax.random.uniform(key, (k, k), jnp.float64, minval=_MIN_COST, maxval=_MAX_COST)
    cells = jnp.arange(k, dtype=jnp.float64)
    width = max(1.0, k / 6.0)
    blur = jnp.exp(-0.5 * ((cells[:, None] - cells[None, :]) / width) ** 2)
    field = blur @ jax.random.normal(key, (k, k), jnp.float64) @ blur.T
    field = (field - field.min()) / (field.max() - field.min())
    return jnp.clip(_MIN_COST + (_MAX_COST - _MIN_COST) * field, _MIN_COST, _MAX_COST)

"""Argument checks that run before anything is compiled.

Each error names the argument and its valid range. Values that are traced (under
`jit` or `vmap`) cannot be inspected; their shapes are still checked.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def concrete(value):
    """`value` as a NumPy array, or `None` if it is a tracer."""
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value)


def as_theta(theta, param_dim: int, check_values=None):
    """`θ` as float64 of shape `(param_dim,)`; `check_values` runs on concrete values."""
    theta = jnp.asarray(theta, dtype=jnp.float64)
    if theta.shape != (param_dim,):
        raise ValueError(
            f"theta must have shape ({param_dim},) for this problem, got shape {theta.shape}"
        )
    values = concrete(theta)
    if values is not None:
        if not np.all(np.isfinite(values)):
            raise ValueError(f"theta must be finite, got {values}")
        if check_values is not None:
            check_values(values)
    return theta


def check_positive(value, name: str) -> None:
    """Raise unless every entry of a concrete `value` is > 0."""
    values = concrete(value)
    if values is not None and not np.all(values > 0):
        raise ValueError(f"{name} must be > 0 (the problem is strongly convex only then), got {values}")


def check_batch_size(batch_size) -> None:
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def check_count(value, name: str, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_finite_data(data, name: str = "data") -> None:
    """Raise if any leaf of a concrete data pytree holds NaN or infinity."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(data):
        values = concrete(leaf)
        if values is not None and not np.all(np.isfinite(values)):
            where = jax.tree_util.keystr(path)
            raise ValueError(f"{name}{where} contains NaN or infinite values")


def as_matrix(array, name: str, n_rows: int | None = None):
    array = jnp.asarray(array, dtype=jnp.float64)
    if array.ndim != 2 or (n_rows is not None and array.shape[0] != n_rows):
        expected = f"({n_rows}, d)" if n_rows is not None else "(n, d)"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    check_finite_data(array, name)
    return array

"""Argument checks that run before anything is compiled.

Each error names the argument and its valid range. Values that are traced (under
`jit` or `vmap`) cannot be inspected; their shapes are still checked.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, Key, PRNGKeyArray, PyTree, Real

X64_HELP = (
    "this toolkit computes in float64 (rates are checked far below float32's resolution), "
    "and JAX's float64 mode is off. Enable it once, before creating any array: "
    "`jax.config.update(\"jax_enable_x64\", True)`, or set the environment variable JAX_ENABLE_X64=1"
)


class Float64Required(RuntimeError):
    """Raised when a library function is called while JAX's float64 mode is off."""


def require_x64() -> None:
    """Raise `Float64Required` unless JAX's float64 mode is on.

    Importing the packages leaves JAX's configuration alone (a user's float32 model in the
    same program keeps its dtype); the public entry points call this instead.
    """
    if not jax.config.read("jax_enable_x64"):
        raise Float64Required(X64_HELP)


def concrete(value: Any) -> np.ndarray | None:
    """`value` as a NumPy array, or `None` if it is a tracer."""
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value)


def as_theta(
    theta: Real[ArrayLike, ...],
    param_dim: int,
    check_values: Callable[[np.ndarray], None] | None = None,
) -> Float[Array, " p"]:
    """`θ` as float64 of shape `(param_dim,)`; `check_values` runs on concrete values."""
    require_x64()
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


def check_positive(value: Real[ArrayLike, ...], name: str) -> None:
    """Raise unless every entry of a concrete `value` is > 0."""
    values = concrete(value)
    if values is not None and not np.all(values > 0):
        raise ValueError(f"{name} must be > 0 (the problem is strongly convex only then), got {values}")


def check_batch_size(batch_size: Any) -> None:
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_finite_data(data: PyTree, name: str = "data") -> None:
    """Raise if any leaf of a concrete data pytree holds NaN or infinity."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(data):
        values = concrete(leaf)
        if values is not None and not np.all(np.isfinite(values)):
            where = jax.tree_util.keystr(path)
            raise ValueError(f"{name}{where} contains NaN or infinite values")


def check_scalar_function(function: Callable, arguments: tuple, *, fails: str, not_scalar: str,
                          hint: str = "") -> None:
    """Trace `function(*arguments)` on abstract arguments (`jax.ShapeDtypeStruct`s; nothing is
    compiled or run) and check that it returns a scalar. A call that fails raises `ValueError`
    with `fails`, the error and `hint`; a non-scalar result `ValueError` with `not_scalar`."""
    try:
        value = jax.eval_shape(function, *arguments)
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"{fails}: {str(error).rstrip('.')}{hint}") from error
    shape = getattr(value, "shape", None)
    if shape != ():
        raise ValueError(f"{not_scalar}, got {shape if shape is not None else value}")


def as_matrix(array: Real[ArrayLike, ...], name: str, n_rows: int | None = None) -> Float[Array, "n d"]:
    array = jnp.asarray(array, dtype=jnp.float64)
    if array.ndim != 2 or (n_rows is not None and array.shape[0] != n_rows):
        expected = f"({n_rows}, d)" if n_rows is not None else "(n, d)"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    check_finite_data(array, name)
    return array


@functools.cache
def _legacy_key_shape() -> tuple[int, ...]:
    return jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))).shape


KEY_HELP = "a single JAX PRNG key: jax.random.key(seed) or a legacy jax.random.PRNGKey(seed) array"

# Annotations of arguments that a public function checks itself. Each names what is
# accepted; `Any` is in the union so that a runtime type checker lets every other value
# through to the function's check, whose error names the argument and its valid range.
KeyLike: TypeAlias = PRNGKeyArray | Any
"""A typed key or a legacy uint32 key array, checked by `as_key`."""
CountLike: TypeAlias = int | Any
"""An integer, checked by `check_count` (or `check_batch_size`)."""
FlagLike: TypeAlias = bool | Any
"""`True` or `False`, checked by the function (an integer 1 is refused)."""
ArrayInput: TypeAlias = Real[ArrayLike, "..."] | Sequence[Any] | Any
"""Anything `jnp.asarray` turns into a real array (nested lists included); the function
checks its shape and values."""


def as_key(key: KeyLike, name: str = "key") -> Key[Array, ""]:
    """`key` as a typed PRNG key; legacy `PRNGKey` arrays are wrapped, anything else is refused.

    A legacy key is the raw data of a typed key of the default implementation
    (`jax.random.PRNGKey(s)` holds `key_data(jax.random.key(s))`), so wrapping it gives the
    same draws. Works on traced keys too (under `vmap` over keys, each call sees one key).

    **Raises:** `TypeError` naming `name` and what is accepted.
    """
    if key is None or isinstance(key, (bool, numbers.Number, str)):
        raise TypeError(f"{name} must be {KEY_HELP}, got {key!r}")
    try:
        array = key if isinstance(key, jax.Array) else jnp.asarray(key)
    except TypeError:
        raise TypeError(f"{name} must be {KEY_HELP}, got {type(key).__name__}") from None
    if jnp.issubdtype(array.dtype, jax.dtypes.prng_key):
        if array.ndim != 0:
            raise TypeError(f"{name} must be {KEY_HELP}, got an array of {array.shape} typed keys; "
                            f"pass one key, or vmap over the keys")
        return array
    legacy_shape = _legacy_key_shape()
    if array.dtype == jnp.uint32 and array.shape == legacy_shape:
        return jax.random.wrap_key_data(array)
    if array.dtype == jnp.uint32 and array.shape[-len(legacy_shape):] == legacy_shape:
        raise TypeError(f"{name} must be {KEY_HELP}, got an array of {array.shape[:-len(legacy_shape)]} legacy "
                        f"keys; pass one key, or vmap over the keys")
    raise TypeError(f"{name} must be {KEY_HELP}, got an array of dtype {array.dtype} and shape {array.shape}")

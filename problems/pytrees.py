"""Pytrees: frozen dataclasses that are JAX pytrees, and θ given as a pytree.

Frozen dataclasses (`pytree_dataclass`): array fields are leaves, `static` fields metadata.
Problems and step-size schedules are such dataclasses, so they pass through `jit` and
`vmap` as arguments (new data of the same shape does not recompile). JAX rebuilds a pytree
from tracers, and when lowering from abstract placeholders; the rebuilt object bypasses
`__init__`, so the constructor's checks and the fields' annotations concern what a user
passes, never those placeholders.

θ as a pytree (`ravel_theta`, `unravel_jacobian`): problems are defined on a flat θ of
shape `(p,)`; the public functions of `derivatives` also accept a pytree of arrays (a dict
of hyperparameters, say), flatten it at their boundary and return derivatives in its
structure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PyTree, Real

from problems.validation import require_x64


def static(**kwargs):
    """A field that is pytree metadata (a size, a name, a function), not a leaf."""
    return dataclasses.field(metadata=dict(static=True), **kwargs)


def pytree_dataclass(cls=None, *, repr: bool = True):
    """Make `cls` a frozen dataclass registered as a pytree (usable as `@pytree_dataclass`
    or `@pytree_dataclass(repr=False)`)."""
    if cls is None:
        return lambda cls: pytree_dataclass(cls, repr=repr)
    cls = dataclasses.dataclass(frozen=True, repr=repr)(cls)
    fields = dataclasses.fields(cls)
    leaves = tuple(field.name for field in fields if not field.metadata.get("static", False))
    metadata = tuple(field.name for field in fields if field.metadata.get("static", False))

    def flatten_with_keys(instance):
        children = [(jax.tree_util.GetAttrKey(name), getattr(instance, name)) for name in leaves]
        return children, tuple(getattr(instance, name) for name in metadata)

    def flatten(instance):
        return [getattr(instance, name) for name in leaves], tuple(getattr(instance, name) for name in metadata)

    def unflatten(static_values, children):
        instance = object.__new__(cls)
        for name, value in (*zip(leaves, children), *zip(metadata, static_values)):
            object.__setattr__(instance, name, value)
        return instance

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


# --- θ as a pytree at the public boundary ---------------------------------------------------

ThetaLike: TypeAlias = Real[ArrayLike, "..."] | PyTree
"""What the public functions accept as θ: an array of shape `(p,)` (anything `jnp.asarray`
reads as one) or a pytree of real arrays with p entries in total; see `ravel_theta`."""

Unravel: TypeAlias = Callable[[Float[Array, " p"]], Any]
"""Maps a flat vector of shape `(p,)` back to θ's structure (see `ravel_theta`)."""


def keep_flat(vector: Float[Array, " p"]) -> Float[Array, " p"]:
    """The `unravel` that `ravel_theta` returns for an array θ: the vector itself."""
    return vector


def is_flat_theta(theta: ThetaLike) -> bool:
    """Whether `ravel_theta` reads `theta` as one array rather than as a pytree.

    Flat: anything JAX treats as a single leaf (a JAX or NumPy array, a tracer, a Python or
    NumPy scalar, or an unsupported object, left for `check_theta` to refuse), `None`, and a
    plain `list` or `tuple`, nested to any depth, of scalars and 0-d arrays with a rectangular
    shape, e.g. `[0.1, 0.2]`. Such input is passed on unchanged, so that it gives what it did
    before pytrees were accepted, errors included.

    A pytree: a dict, a namedtuple or any other registered pytree node, and a list or tuple
    that holds an array of ndim ≥ 1, a container or `None`, or is ragged, e.g.
    `[jnp.zeros(3), 1.0]`. (`jnp.asarray` refuses the ragged ones; those holding arrays of
    ndim ≥ 1 it reads with ndim ≥ 2, never a valid θ; so no θ accepted before changes meaning.)
    """
    if type(theta) in (list, tuple):
        return _scalar_sequence_shape(theta) is not None
    return theta is None or jax.tree_util.all_leaves([theta])


def ravel_theta(theta: ThetaLike, param_dim: int | None = None) -> tuple[Any, Unravel]:
    """`θ` as a flat vector, and the function that maps a vector of that length back to θ's structure.

    - An array θ (see `is_flat_theta`) is returned as it is, not converted, with
      `unravel = keep_flat`: the caller's `problem.check_theta` sees exactly what it saw
      before, so results are bit-identical and its errors (naming `theta`) unchanged.
    - A pytree θ: every leaf is converted to float64 (ints and bools included; a leaf that is
      not a real number or array raises `TypeError` naming its path, e.g. `theta['w']`), and
      the leaves are concatenated in JAX's order, `jax.flatten_util.ravel_pytree`'s: the
      order of `jax.tree.leaves`, which sorts a dict's keys whatever their insertion order.
      `unravel` maps a vector of shape `(p,)` back to θ's structure, every leaf float64 of
      its leaf's shape: a gradient in θ is returned as `unravel(gradient)`, a Jacobian with
      `unravel_jacobian`.

    With `param_dim`, a pytree whose leaves do not hold exactly `param_dim` entries in all
    raises `ValueError` naming `theta`; a pytree with no leaves (`{}`, `{"a": None}`)
    always raises `ValueError`. Values are not checked here (finiteness and the problem's
    domain are `check_theta`'s).

    Traced leaves are fine (flattening is reshapes and a concatenation), so a pytree θ works
    under `jit`, `grad` and `vmap`; under `vmap` each call sees one θ, its leaves without
    the batch axis.

    **Raises:** `Float64Required` when JAX's float64 mode is off.
    """
    require_x64()
    if is_flat_theta(theta):
        return theta, keep_flat
    leaves = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(theta):
        leaves.append(_real_leaf(leaf, f"theta{jax.tree_util.keystr(path)}"))
    if not leaves:
        raise ValueError(f"theta must be an array of shape (p,) or a pytree of real arrays with p entries "
                         f"in all; got a pytree without leaves: {theta!r}")
    structure = jax.tree_util.tree_structure(theta)
    flat, unravel = ravel_pytree(jax.tree_util.tree_unflatten(structure, leaves))
    if param_dim is not None and flat.shape != (param_dim,):
        shapes = jax.tree_util.tree_map(lambda leaf: tuple(leaf.shape), jax.tree_util.tree_unflatten(structure, leaves))
        raise ValueError(f"theta must hold {param_dim} entries in all for this problem (p = {param_dim}), "
                         f"got a pytree with {flat.shape[0]}: leaf shapes {shapes}")
    return flat, unravel


def unravel_jacobian(jacobian: Float[Array, "d p"], unravel: Unravel) -> Any:
    """A Jacobian `∂θ x` of shape `(d, p)` in θ's structure, `unravel` from `ravel_theta`.

    For an array θ (`unravel = keep_flat`) it is `jacobian` itself. For a pytree θ it is a
    pytree of θ's structure whose leaf for a θ-leaf of shape `s` has shape `(d, *s)` and
    holds `∂x/∂leaf`: the columns of `jacobian` for that leaf's entries, in row-major order.
    That is `jax.jacfwd`'s (and `jax.jacrev`'s) convention for a function from a pytree to a
    vector of shape `(d,)`. A gradient of shape `(p,)` is `unravel(gradient)` instead.
    """
    if unravel is keep_flat:
        return jacobian
    return jax.vmap(unravel)(jacobian)


def _scalar_sequence_shape(sequence: list | tuple) -> tuple[int, ...] | None:
    """The shape `jnp.asarray` gives a nested list or tuple of scalars, or `None` if it is not one."""
    shapes = set()
    for item in sequence:
        if type(item) in (list, tuple):
            shape = _scalar_sequence_shape(item)
        elif item is not None and jax.tree_util.all_leaves([item]) and np.ndim(item) == 0:
            shape = ()
        else:
            shape = None
        if shape is None:
            return None
        shapes.add(shape)
    if len(shapes) > 1:
        return None
    return (len(sequence), *next(iter(shapes), ()))


def _real_leaf(leaf: Any, name: str) -> Float[Array, ...]:
    """A leaf of a pytree θ as a float64 array; `TypeError` naming it if it is not real."""
    try:
        array = leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number or array, got {type(leaf).__name__}: {leaf!r}") from None
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)
            or jnp.issubdtype(array.dtype, jnp.bool_)):
        raise TypeError(f"{name} must be a real number or array, got an array of dtype {array.dtype}")
    return jnp.asarray(array, dtype=jnp.float64)

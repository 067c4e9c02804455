"""Frozen dataclasses that are JAX pytrees: array fields are leaves, `static` fields metadata.

Problems and step-size schedules are such dataclasses, so they pass through `jit` and
`vmap` as arguments (new data of the same shape does not recompile). JAX rebuilds a pytree
from tracers, and when lowering from abstract placeholders; the rebuilt object bypasses
`__init__`, so the constructor's checks and the fields' annotations concern what a user
passes, never those placeholders.
"""

from __future__ import annotations

import dataclasses

import jax


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

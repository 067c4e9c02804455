"""A small expression language for programs with if-statements.

A program's log-density is built once, as an immutable graph of `Expr` nodes, by
ordinary Python code (loops unroll at construction), and is then evaluated in one of
three semantics:

- **crisp**: `if g then A else B` is `A` where `g ≥ 0`, else `B` (the true density);
- **smoothed** with accuracy η > 0: `σ_η(g)·A + (1 − σ_η(g))·B`, `σ_η(x) = 1/(1 + e^(−x/η))`,
  every if, elementwise for vector ifs, the fractional value flowing on;
- **forced**: crisp, except that scalar if number `k` takes a chosen branch whatever its
  guard says (the boundary term of LYY18). `k` may be a traced integer.

The graph is analysed, not annotated: `analyse(root)` numbers the scalar ifs, decides
whether each guard is affine in the latent vector `z` (and returns its coefficients,
`g = a·z − c`), and computes the nesting depth ℓ: the length of the longest chain of ifs
`I₁ → I₂ → … → I_ℓ` in which the guard of `I_{t+1}` is computed from the value of `I_t`.
Smoothing multiplies one factor `σ_η' = O(1/η)` per link of such a chain, which is where
the `O(η^(−ℓ))` variance bound comes from (`proofs_check.smoothing`, `nested_if_variance`).

Expressions are built with the functions of this module and Python's arithmetic
operators; nothing is ever parsed or passed to `eval`. Shapes follow NumPy broadcasting
and are checked at construction.

    z = latent(1)
    log_p = normal_logpdf(z[0], 0.0, 1.0) + if_(z[0], normal_logpdf(0.0, 5.0, 1.0),
                                                 normal_logpdf(0.0, -2.0, 1.0))
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

_SERIAL = itertools.count()


class ProgramError(ValueError):
    """An ill-formed program: a shape mismatch, a non-finite constant, a latent index out of
    range, an operand that is not an expression or a number."""


# --- nodes ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class Expr:
    """A node of the expression graph. Identity is object identity, so shared
    subexpressions are evaluated once."""

    shape: tuple[int, ...] = dataclasses.field(init=False)
    # NumPy arrays on the left of an operator defer to the expression's own operator.
    __array_ufunc__ = None

    @property
    def children(self) -> tuple[Expr, ...]:
        return ()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    # arithmetic ---------------------------------------------------------------------
    def __add__(self, other): return Binary("add", self, as_expr(other))
    def __radd__(self, other): return Binary("add", as_expr(other), self)
    def __sub__(self, other): return Binary("sub", self, as_expr(other))
    def __rsub__(self, other): return Binary("sub", as_expr(other), self)
    def __mul__(self, other): return Binary("mul", self, as_expr(other))
    def __rmul__(self, other): return Binary("mul", as_expr(other), self)
    def __truediv__(self, other): return Binary("div", self, as_expr(other))
    def __rtruediv__(self, other): return Binary("div", as_expr(other), self)
    def __neg__(self): return Unary("neg", self)

    def __pow__(self, exponent):
        if exponent != 2:
            raise ProgramError(f"only squares are supported as powers, got ** {exponent!r}; use exp/log")
        return Unary("square", self)

    def __getitem__(self, index):
        return Index(self, index)

    def __bool__(self):
        raise ProgramError("an expression has no truth value: use if_(guard, then, else_) for a branch")

    def __hash__(self):
        return id(self)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        return Reshape(self, tuple(int(s) for s in shape))

    def sum(self, axis=None):
        return Sum(self, axis)


@dataclasses.dataclass(frozen=True, eq=False)
class Const(Expr):
    value: np.ndarray

    def __post_init__(self):
        value = np.asarray(self.value, dtype=np.float64)
        if not np.all(np.isfinite(value)):
            raise ProgramError(f"constants must be finite, got {self.value!r}")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "shape", value.shape)


@dataclasses.dataclass(frozen=True, eq=False)
class Latent(Expr):
    """`z[indices]` of the latent vector `z`, with `indices` an integer array."""

    indices: np.ndarray

    def __post_init__(self):
        indices = np.asarray(self.indices)
        if indices.dtype.kind not in "iu" or np.any(indices < 0):
            raise ProgramError(f"latent indices must be non-negative integers, got {self.indices!r}")
        object.__setattr__(self, "indices", indices.astype(np.int64))
        object.__setattr__(self, "shape", indices.shape)

    @property
    def contiguous(self) -> slice | None:
        """The indices as a slice when they are consecutive (read without a gather)."""
        flat = self.indices
        if flat.ndim == 1 and flat.size and np.array_equal(flat, np.arange(flat[0], flat[0] + flat.size)):
            return slice(int(flat[0]), int(flat[0]) + flat.size)
        return None


UNARY = {
    "neg": jnp.negative, "exp": jnp.exp, "log": jnp.log, "square": jnp.square, "sqrt": jnp.sqrt,
    "softplus": jax.nn.softplus, "log1p": jnp.log1p,
}
BINARY = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": jnp.divide}


@dataclasses.dataclass(frozen=True, eq=False)
class Unary(Expr):
    op: str
    x: Expr

    def __post_init__(self):
        if self.op not in UNARY:
            raise ProgramError(f"unknown unary operation {self.op!r}; known: {sorted(UNARY)}")
        object.__setattr__(self, "shape", self.x.shape)

    @property
    def children(self):
        return (self.x,)


@dataclasses.dataclass(frozen=True, eq=False)
class Binary(Expr):
    op: str
    x: Expr
    y: Expr

    def __post_init__(self):
        if self.op not in BINARY:
            raise ProgramError(f"unknown binary operation {self.op!r}; known: {sorted(BINARY)}")
        object.__setattr__(self, "shape", _broadcast(self.x.shape, self.y.shape, self.op))

    @property
    def children(self):
        return (self.x, self.y)


@dataclasses.dataclass(frozen=True, eq=False)
class Sum(Expr):
    x: Expr
    axis: int | None = None

    def __post_init__(self):
        if self.axis is None:
            shape = ()
        else:
            if not -self.x.ndim <= self.axis < self.x.ndim:
                raise ProgramError(f"sum over axis {self.axis} of an expression of shape {self.x.shape}")
            axis = self.axis % self.x.ndim
            object.__setattr__(self, "axis", axis)
            shape = self.x.shape[:axis] + self.x.shape[axis + 1:]
        object.__setattr__(self, "shape", shape)

    @property
    def children(self):
        return (self.x,)


@dataclasses.dataclass(frozen=True, eq=False)
class MatVec(Expr):
    """`matrix @ vector`, shapes (m, n) and (n,)."""

    matrix: Expr
    vector: Expr

    def __post_init__(self):
        if self.matrix.ndim != 2 or self.vector.ndim != 1 or self.matrix.shape[1] != self.vector.shape[0]:
            raise ProgramError(f"dot takes a matrix (m, n) and a vector (n,), got {self.matrix.shape} and "
                               f"{self.vector.shape}")
        object.__setattr__(self, "shape", (self.matrix.shape[0],))

    @property
    def children(self):
        return (self.matrix, self.vector)


@dataclasses.dataclass(frozen=True, eq=False)
class Index(Expr):
    """Static NumPy indexing (integers, slices, integer arrays)."""

    x: Expr
    index: object

    def __post_init__(self):
        try:
            shape = np.empty(self.x.shape)[self.index].shape
        except (IndexError, TypeError) as error:
            raise ProgramError(f"index {self.index!r} does not apply to shape {self.x.shape}: {error}") from None
        object.__setattr__(self, "shape", shape)

    @property
    def children(self):
        return (self.x,)


@dataclasses.dataclass(frozen=True, eq=False)
class Reshape(Expr):
    x: Expr
    new_shape: tuple[int, ...]

    def __post_init__(self):
        if math.prod(self.new_shape) != self.x.size:
            raise ProgramError(f"cannot reshape {self.x.shape} to {self.new_shape}")
        object.__setattr__(self, "shape", self.new_shape)

    @property
    def children(self):
        return (self.x,)


@dataclasses.dataclass(frozen=True, eq=False)
class Stack(Expr):
    """Concatenation along the first axis of 0-d or 1-d expressions (0-d ones count as length 1)."""

    parts: tuple[Expr, ...]

    def __post_init__(self):
        if not self.parts or any(part.ndim > 1 for part in self.parts):
            raise ProgramError("stack takes one or more scalar or one-dimensional expressions")
        object.__setattr__(self, "shape", (sum(max(part.size, 1) if part.ndim else 1 for part in self.parts),))

    @property
    def children(self):
        return self.parts


@dataclasses.dataclass(frozen=True, eq=False)
class If(Expr):
    """`if guard then then_ else else_`, elementwise, the then-branch where `guard ≥ 0`.

    `solve_for`: the latent coordinate that LYY18 solves each boundary `guard = 0` for
    (a coordinate index, or one per element); by default the last coordinate with a
    nonzero coefficient in the guard.
    """

    guard: Expr
    then_: Expr
    else_: Expr
    solve_for: object = None
    serial: int = dataclasses.field(init=False)

    def __post_init__(self):
        shape = _broadcast(_broadcast(self.guard.shape, self.then_.shape, "if"), self.else_.shape, "if")
        if shape != self.guard.shape:
            raise ProgramError(f"the guard of an if must have the if's shape {shape}, got {self.guard.shape}: "
                               "write one guard per scalar if")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "serial", next(_SERIAL))

    @property
    def children(self):
        return (self.guard, self.then_, self.else_)


# --- constructors -------------------------------------------------------------------

def as_expr(value) -> Expr:
    if isinstance(value, Expr):
        return value
    if isinstance(value, (numbers.Real, np.ndarray, list, tuple)) and not isinstance(value, bool):
        return Const(np.asarray(value, dtype=np.float64))
    raise ProgramError(f"expected an expression or a number, got {type(value).__name__}: {value!r}")


def latent(dim: int) -> Latent:
    """The latent vector `z` of dimension `dim`, as an expression of shape `(dim,)`."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
        raise ProgramError(f"dim must be a positive integer, got {dim!r}")
    return Latent(np.arange(dim))


def const(value) -> Const:
    return Const(np.asarray(value, dtype=np.float64))


def if_(guard, then_, else_, *, solve_for=None) -> If:
    """`if guard then then_ else else_` (then-branch where `guard ≥ 0`)."""
    return If(as_expr(guard), as_expr(then_), as_expr(else_), solve_for)


def step(guard) -> If:
    """The Heaviside unit `if guard then 1 else 0`."""
    return if_(guard, 1.0, 0.0)


def exp(x): return Unary("exp", as_expr(x))
def log(x): return Unary("log", as_expr(x))
def sqrt(x): return Unary("sqrt", as_expr(x))
def softplus(x): return Unary("softplus", as_expr(x))
def log1p(x): return Unary("log1p", as_expr(x))


def stack(parts) -> Stack:
    return Stack(tuple(as_expr(part) for part in parts))


def dot(matrix, vector) -> MatVec:
    """`matrix @ vector` for a matrix of shape (m, n) and a vector of shape (n,)."""
    return MatVec(as_expr(matrix), as_expr(vector))


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def normal_logpdf(x, mean, std) -> Expr:
    """`log N(x; mean, std)`, `std` a standard deviation."""
    x, mean, std = as_expr(x), as_expr(mean), as_expr(std)
    return -0.5 * ((x - mean) / std) ** 2 - log(std) - _HALF_LOG_2PI


def poisson_logpmf(count, rate) -> Expr:
    """`log Pois(count; rate)` for observed (constant) counts."""
    count = np.asarray(count, dtype=np.float64)
    if np.any(count < 0) or np.any(count != np.round(count)):
        raise ProgramError(f"Poisson counts must be non-negative integers, got {count!r}")
    log_factorial = np.vectorize(math.lgamma)(count + 1.0)
    return const(count) * log(rate) - rate - const(log_factorial)


# Unannotated: beartype checks a `tuple[int, ...]` at a random item, and Hypothesis rejects
# the use of `random` while the strategies of the tests build expressions.
def _broadcast(a, b, op):
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ProgramError(f"shapes {a} and {b} do not broadcast in {op!r}") from None


# --- evaluation -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Crisp:
    """The true program: the then-branch where the guard is ≥ 0."""


@dataclasses.dataclass(frozen=True)
class Smoothed:
    """Every if replaced by `σ_η(g)·A + (1 − σ_η(g))·B`."""

    eta: object  # a positive float or a traced scalar


@dataclasses.dataclass(frozen=True)
class Forced:
    """Crisp, except that scalar if number `index` takes the then-branch if `then` else
    the else-branch; `index` and `then` may be traced."""

    index: object
    then: object


def evaluate(root: Expr, z, semantics=Crisp(), offsets: dict | None = None):
    """The value of `root` at the latent vector `z` (shape `(d,)`) under `semantics`.

    `offsets` maps each `If` to the number of its first scalar if (needed by `Forced`;
    `analyse(root).offsets`). Traceable: use it under `jit`, `grad` and `vmap`.
    """
    if isinstance(semantics, Forced) and offsets is None:
        raise ValueError("forced evaluation needs the if numbering: pass offsets=analyse(root).offsets")
    return _values(root, z, semantics, offsets)[id(root)]


def guard_values(root: Expr, z, analysis: Analysis, semantics=Crisp()):
    """The guards of every scalar if below `root` at `z`, shape (K,), in if-number order
    (the guards of later ifs may read earlier ifs' values, which depend on `semantics`)."""
    values = _values(root, z, semantics, analysis.offsets)
    if not analysis.ifs:
        return jnp.zeros((0,))
    return jnp.concatenate([jnp.reshape(values[id(node.guard)], (-1,)) for node in analysis.ifs])


def _values(root, z, semantics, offsets) -> dict[int, jax.Array]:
    values: dict[int, jax.Array] = {}
    for node in _topological(root):
        values[id(node)] = _evaluate_node(node, [values[id(child)] for child in node.children], z, semantics, offsets)
    return values


def _evaluate_node(node, args, z, semantics, offsets):
    if isinstance(node, Const):
        return jnp.asarray(node.value)
    if isinstance(node, Latent):
        window = node.contiguous
        return z[window] if window is not None else z[node.indices]
    if isinstance(node, MatVec):
        return jnp.matmul(args[0], args[1])
    if isinstance(node, Unary):
        return UNARY[node.op](args[0])
    if isinstance(node, Binary):
        return BINARY[node.op](args[0], args[1])
    if isinstance(node, Sum):
        return jnp.sum(args[0], axis=node.axis)
    if isinstance(node, Index):
        return args[0][node.index]
    if isinstance(node, Reshape):
        return jnp.reshape(args[0], node.new_shape)
    if isinstance(node, Stack):
        return jnp.concatenate([jnp.reshape(a, (-1,)) for a in args])
    if isinstance(node, If):
        guard, then_, else_ = args
        if isinstance(semantics, Smoothed):
            weight = jax.nn.sigmoid(guard / semantics.eta)
            return weight * then_ + (1 - weight) * else_
        crisp = jnp.where(guard >= 0, then_, else_)
        if isinstance(semantics, Forced):
            numbers_ = offsets[node] + jnp.arange(node.size).reshape(node.shape)
            forced = jnp.where(semantics.then, then_, else_)
            return jnp.where(numbers_ == semantics.index, forced, crisp)
        return crisp
    raise ProgramError(f"unknown node {type(node).__name__}")


def _topological(root: Expr) -> list[Expr]:
    """Every node below `root`, children before parents, each once (iterative: programs
    unrolled over many steps are deep)."""
    order, seen, stack_ = [], set(), [(root, False)]
    while stack_:
        node, expanded = stack_.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack_.append((node, True))
        stack_.extend((child, False) for child in reversed(node.children) if id(child) not in seen)
    return order


# --- analysis -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Analysis:
    """What the graph below a root says about its ifs.

    - `ifs`: the `If` nodes in construction order; `offsets[node]` the number of its first
      scalar if; `num_ifs` (K) the number of scalar ifs.
    - `nesting_depth`: ℓ, the longest chain of ifs each of whose guards is computed from
      the previous one's value (0 without ifs).
    - `affine`: whether every guard is affine in z; if so `coefficients` (K, d) and
      `constants` (K,) with guard number k equal to `coefficients[k]·z − constants[k]`, and
      `solve_for` (K,) the coordinate LYY18 solves for.
    """

    ifs: tuple[If, ...]
    offsets: dict
    num_ifs: int
    nesting_depth: int
    affine: bool
    coefficients: np.ndarray | None
    constants: np.ndarray | None
    solve_for: np.ndarray | None


def analyse(root: Expr, dim: int | None = None) -> Analysis:
    nodes = _topological(root)
    used = [int(node.indices.max()) for node in nodes if isinstance(node, Latent) and node.indices.size]
    dim = (max(used) + 1 if used else 0) if dim is None else dim
    if used and max(used) >= dim:
        raise ProgramError(f"the program reads z[{max(used)}] but the latent dimension is {dim}")
    ifs = tuple(sorted((node for node in nodes if isinstance(node, If)), key=lambda node: node.serial))
    offsets, total = {}, 0
    for node in ifs:
        offsets[node] = total
        total += node.size
    depth = _nesting_depths(nodes)
    forms = _affine_forms(nodes, dim)
    affine = all(forms[id(node.guard)] is not None for node in ifs)
    coefficients = constants = solve_for = None
    if affine and ifs:
        coefficients = np.concatenate([forms[id(node.guard)][0].reshape(-1, dim) for node in ifs])
        constants = np.concatenate([-forms[id(node.guard)][1].reshape(-1) for node in ifs])
        solve_for = np.concatenate([_solved_coordinates(node, forms[id(node.guard)][0].reshape(-1, dim))
                                    for node in ifs])
    return Analysis(ifs, offsets, total, max((depth[id(node.guard)] + 1 for node in ifs), default=0), affine,
                    coefficients, constants, solve_for)


def _nesting_depths(nodes) -> dict[int, int]:
    """`depth(node)`: the longest if-chain whose last value flows into `node`. An if adds a
    link to its guard's chain; its branch values pass their chains through unchanged."""
    depth: dict[int, int] = {}
    for node in nodes:
        children = [depth[id(child)] for child in node.children]
        if isinstance(node, If):
            depth[id(node)] = max(children[0] + 1, children[1], children[2])
        else:
            depth[id(node)] = max(children, default=0)
    return depth


def _affine_forms(nodes, dim) -> dict[int, tuple[np.ndarray, np.ndarray] | None]:
    """`(A, b)` with `node = A·z + b` (A of shape node.shape + (dim,)), or None if the node
    is not affine in z."""
    forms: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
    for node in nodes:
        args = [forms[id(child)] for child in node.children]
        forms[id(node)] = None if any(a is None for a in args) else _affine_form(node, args, dim)
    return forms


def _affine_form(node, args, dim):
    if isinstance(node, Const):
        return np.zeros(node.shape + (dim,)), node.value
    if isinstance(node, Latent):
        return np.eye(dim)[node.indices], np.zeros(node.shape)
    if isinstance(node, Unary):
        (A, b), = args
        return (-A, -b) if node.op == "neg" else None
    if isinstance(node, Binary):
        (A, b), (C, e) = args
        shape = node.shape
        if node.op in ("add", "sub"):
            sign = 1.0 if node.op == "add" else -1.0
            return (np.broadcast_to(A, shape + (dim,)) + sign * np.broadcast_to(C, shape + (dim,)),
                    np.broadcast_to(b + sign * e, shape))
        if node.op == "mul" and not C.any():  # affine × constant
            return np.broadcast_to(A * e[..., None], shape + (dim,)), np.broadcast_to(b * e, shape)
        if node.op == "mul" and not A.any():
            return np.broadcast_to(C * b[..., None], shape + (dim,)), np.broadcast_to(b * e, shape)
        if node.op == "div" and not C.any():
            return np.broadcast_to(A / e[..., None], shape + (dim,)), np.broadcast_to(b / e, shape)
        return None
    if isinstance(node, MatVec):
        (A, b), (C, e) = args
        if not C.any():  # affine matrix, constant vector
            return np.einsum("mnd,n->md", A, e), b @ e
        if not A.any():
            return np.einsum("mn,nd->md", b, C), b @ e
        return None
    if isinstance(node, Sum):
        (A, b), = args
        return (A.sum(axis=tuple(range(A.ndim - 1))), b.sum()) if node.axis is None else \
            (A.sum(axis=node.axis), b.sum(axis=node.axis))
    if isinstance(node, Index):
        (A, b), = args
        return A[node.index], b[node.index]
    if isinstance(node, Reshape):
        (A, b), = args
        return A.reshape(node.new_shape + (dim,)), b.reshape(node.new_shape)
    if isinstance(node, Stack):
        return (np.concatenate([A.reshape(-1, dim) for A, _ in args]),
                np.concatenate([np.reshape(b, -1) for _, b in args]))
    return None  # an if's value is piecewise constant or piecewise smooth, not affine


def _solved_coordinates(node: If, coefficients: np.ndarray) -> np.ndarray:
    nonzero = coefficients != 0
    if not nonzero.any(axis=1).all():
        raise ProgramError("a guard does not depend on z: its if is constant, write the branch directly")
    if node.solve_for is None:
        return coefficients.shape[1] - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    chosen = np.broadcast_to(np.asarray(node.solve_for, dtype=np.int64), (coefficients.shape[0],))
    if not nonzero[np.arange(len(chosen)), chosen].all():
        raise ProgramError(f"solve_for={node.solve_for!r} names a coordinate that the guard does not involve")
    return np.array(chosen)


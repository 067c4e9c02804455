"""Hypergradients of bilevel problems: the exact one, and the approximations papers compare.

A bilevel problem (`problems.bilevel`) has an inner solution `x*(θ) = argmin_x F(x, θ)`
and an outer objective `G(x, θ)`. Its hypergradient is

    h(θ) = ∇θ[G(x*(θ), θ)] = ∇θG + J*ᵀ∇ₓG = ∇θG − Cᵀ H⁻¹ ∇ₓG,

everything at `(x*(θ), θ)`, with `H = ∇²ₓₓF`, `C = ∇²ₓθF` (d × p) and `J* = −H⁻¹C` (the
implicit function theorem). The adjoint `v* = H⁻¹∇ₓG` is one linear solve, whatever p.

Every method replaces `x*` by an approximation `x` and/or the solve by an approximation
`v`, and returns `ĥ = ∇θG(x, θ) − C(x)ᵀ v` (the approximate implicit methods), or
differentiates an approximation `x_K(θ)` of `x*(θ)` itself (the iterative ones):

| method | what it computes | HVPs | memory |
|---|---|---|---|
| `Implicit()` | `v = H⁻¹∇ₓG`, dense solve at `x` (default `x*`) | d, + O(d³) | O(d²) |
| `ConjugateGradient(k)` | k CG iterations on `Hv = ∇ₓG` from `v₀ = 0` | k | O(d) |
| `Neumann(k, α)` | `v = α Σ_{j<k} (I − αH)^j ∇ₓG` | k | O(d) |
| `FixedPoint(k, α)` | `J_{j+1} = J_j − α(HJ_j + C)`, `J₀ = 0`, at `x`; `∇θG + J_kᵀ∇ₓG` | k·p | O(dp) |
| `StochasticNeumann(k, α, b)` | Neumann, the Hessian of a fresh minibatch per term | k (of b) | O(d) |
| `Unrolled(K, α, b, mode)` | `∇θ[G(x_K(θ), θ)]` through K SGD steps from `x₀` | K·p or K | O(dp) or O(Kd) |
| `Truncated(K, T, α, b)` | reverse mode through the last T of the K steps | T | O(Td) |

(HVPs: Hessian–vector products; `Unrolled` costs K·p in forward mode, K in reverse.)
Every method also takes one gradient of G and, for the approximate implicit ones, one
vector–Jacobian product for `Cᵀv` (counted in `Cost.gradients`). A Hessian–vector product
is one forward-over-reverse pass over the data (or the minibatch). `FixedPoint(k, α)` and
`Neumann(k, α)` compute the same number in exact arithmetic (`J_k = −α Σ_{j<k}(I − αH)^j C`),
in forward and in reverse order: p times the work for the same answer, unless p is small.

The inner iterates of `Unrolled` and `Truncated` come from the SGD driver of
`derivatives.sgd` with the same keys as everywhere: step k draws its minibatch with
`fold_in(key, k)`, so `Unrolled(K, …)` differentiates exactly the iterate that
`derivatives.unrolled` returns, and `Truncated(K, T, …)` the same trajectory.

The rates of each method's error against the exact `h` are in `docs/theory.md`
("Hypergradients").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, TypeAlias, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree, Real

from derivatives.schedules import StepSize, as_schedule
from derivatives.sgd import ForwardMode, MinibatchSGD, check_run, iterate
from problems.pytrees import ThetaLike, pytree_dataclass, ravel_theta, static
from problems.validation import KeyLike, as_key, check_count, require_x64

MODES = ("forward", "reverse")


class Cost(NamedTuple):
    """What one hypergradient costs: Hessian–vector products (each over `batch` samples,
    `None` for the whole data set), gradients (of F or G, and vector–Jacobian products of
    `∇ₓF` in θ), and the memory it needs, as an order in d, p and the step counts."""

    hessian_vector_products: int
    gradients: int
    batch: int | None
    memory: str


# --- the pieces every method shares ---------------------------------------------------------

def inner_gradient(problem, x: Float[Array, " d"], theta: Float[Array, " p"], batch: PyTree = None,
                   ) -> Float[Array, " d"]:
    """`∇ₓF(x, θ)` over the whole data set, or `∇ₓf_B(x, θ)` over `batch`."""
    data = problem.data if batch is None else batch
    return jax.grad(problem.loss, argnums=0)(x, theta, data)


def hessian_vector_product(problem, x: Float[Array, " d"], theta: Float[Array, " p"], vector: Float[Array, " d"],
                           batch: PyTree = None) -> Float[Array, " d"]:
    """`∇²ₓₓF(x, θ)·v` (or over `batch`): one forward-over-reverse pass, no d×d matrix."""
    return jax.jvp(lambda x_: inner_gradient(problem, x_, theta, batch), (x,), (vector,))[1]


def cross_transpose_product(problem, x: Float[Array, " d"], theta: Float[Array, " p"], vector: Float[Array, " d"],
                            ) -> Float[Array, " p"]:
    """`Cᵀv = (∇²ₓθF)ᵀv = ∇θ⟨∇ₓF(x, θ), v⟩`: one vector–Jacobian product."""
    return jax.grad(lambda theta_: inner_gradient(problem, x, theta_) @ vector)(theta)


def from_adjoint(bilevel, x: Float[Array, " d"], theta: Float[Array, " p"], adjoint: Float[Array, " d"],
                 ) -> Float[Array, " p"]:
    """`ĥ = ∇θG(x, θ) − C(x)ᵀv` for an approximate adjoint `v ≈ H⁻¹∇ₓG`."""
    _, outer_theta = bilevel.outer_gradients(x, theta)
    return outer_theta - cross_transpose_product(bilevel.inner, x, theta, adjoint)


def _step_size(problem, theta, step_size):
    """`α`, default `1/L` with `L = problem.smoothness(θ)`: `I − αH` then has spectrum in
    `[0, 1 − α μ]`, so the Neumann series and the fixed-point recursion contract."""
    return 1.0 / problem.smoothness(theta) if step_size is None else jnp.asarray(step_size, jnp.float64)


# --- the methods ----------------------------------------------------------------------------

@runtime_checkable
class HypergradientMethod(Protocol):
    """How `ĥ ≈ h(θ)` is computed. `estimate(bilevel, θ, key, x)` receives θ of shape
    `(p,)`, a typed key (or `None` when `needs_key` is false) and the inner point `x`
    (`None`: the method's default). Methods are frozen dataclasses and pytrees: iteration
    counts and step sizes are leaves (a new value does not recompile), except the step
    counts of `Unrolled` and `Truncated`, which reverse mode needs as static shapes."""

    needs_key: bool

    def estimate(self, bilevel, theta: Float[Array, " p"], key: PRNGKeyArray | None,
                 x: Float[Array, " d"] | None) -> Float[Array, " p"]: ...

    def cost(self, dim: int, param_dim: int) -> Cost: ...


def _at(bilevel, theta, x):
    return bilevel.inner.solution(theta) if x is None else x


@pytree_dataclass
class Implicit:
    """The implicit function theorem with an exact (dense, Cholesky) solve: at the exact
    `x*` (default) it is the exact hypergradient up to rounding; at another `x` it is the
    approximate implicit hypergradient with an exact solve."""

    needs_key = False

    def estimate(self, bilevel, theta, key, x):
        x = _at(bilevel, theta, x)
        outer_x, _ = bilevel.outer_gradients(x, theta)
        hessian = jax.hessian(bilevel.inner.objective, argnums=0)(x, theta)
        adjoint = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(hessian), outer_x)
        return from_adjoint(bilevel, x, theta, adjoint)

    def cost(self, dim, param_dim):
        return Cost(dim, 2, None, "O(d²)")


@pytree_dataclass
class ConjugateGradient:
    """`num_iterations` conjugate-gradient iterations on `Hv = ∇ₓG` from `v₀ = 0`, at `x`
    (default `x*`). In exact arithmetic CG terminates after d iterations; before that
    `‖v_k − v*‖_H ≤ 2((√κ − 1)/(√κ + 1))^k ‖v*‖_H`, κ = L/μ."""

    num_iterations: Int[ArrayLike, ""]
    needs_key = False

    def estimate(self, bilevel, theta, key, x):
        x = _at(bilevel, theta, x)
        outer_x, _ = bilevel.outer_gradients(x, theta)
        adjoint = conjugate_gradient(lambda v: hessian_vector_product(bilevel.inner, x, theta, v), outer_x,
                                     self.num_iterations)
        return from_adjoint(bilevel, x, theta, adjoint)

    def cost(self, dim, param_dim):
        return Cost(self.num_iterations, 2, None, "O(d)")


def conjugate_gradient(operator, right_hand_side: Float[Array, " d"], num_iterations: Int[ArrayLike, ""],
                       ) -> Float[Array, " d"]:
    """`num_iterations` of conjugate gradients on `A v = b` for a symmetric positive definite
    `A` given as `operator(v) = A v`, from `v₀ = 0`. Once the residual is exactly zero
    (at most d iterations in exact arithmetic) the iterate stays put."""
    def body(_, state):
        v, residual, direction, residual_sq = state
        product = operator(direction)
        curvature = direction @ product
        step = jnp.where(curvature > 0, residual_sq / jnp.where(curvature > 0, curvature, 1.0), 0.0)
        v = v + step * direction
        residual = residual - step * product
        new_sq = residual @ residual
        beta = jnp.where(residual_sq > 0, new_sq / jnp.where(residual_sq > 0, residual_sq, 1.0), 0.0)
        return v, residual, residual + beta * direction, new_sq

    zero = jnp.zeros_like(right_hand_side)
    state = (zero, right_hand_side, right_hand_side, right_hand_side @ right_hand_side)
    return jax.lax.fori_loop(0, num_iterations, body, state)[0]


@pytree_dataclass
class Neumann:
    """`v_k = α Σ_{j<k} (I − αH)^j ∇ₓG` at `x` (default `x*`), α default `1/L`:
    `‖v_k − v*‖ ≤ (1 − αμ)^k ‖v*‖` for `0 < α ≤ 1/L`."""

    num_iterations: Int[ArrayLike, ""]
    step_size: Real[ArrayLike, ""] | None = None
    needs_key = False

    def estimate(self, bilevel, theta, key, x):
        return self.estimates(bilevel, theta, key, x, None)[0]

    def estimates(self, bilevel, theta, key, x, counts: Int[ArrayLike, " n"] | Sequence[int] | None,
                  ) -> Float[Array, "n p"]:
        """`estimate` with `num_iterations = k` for every k of `counts`, in one pass
        (`neumann_partial_sums`); `None`: this method's own count alone."""
        x = _at(bilevel, theta, x)
        return _neumann_estimates(bilevel, theta, x, self.step_size,
                                  lambda v: hessian_vector_product(bilevel.inner, x, theta, v), None,
                                  self.num_iterations if counts is None else counts)

    def cost(self, dim, param_dim):
        return Cost(self.num_iterations, 2, None, "O(d)")


def _neumann_estimates(bilevel, theta, x, step_size, operator, operators, counts) -> Float[Array, "n p"]:
    """`ĥ = ∇θG − Cᵀv` at x with v the Neumann series (of `operator`, or of `operators(j)` at
    term j): for one count (a 0-d integer, possibly traced) that one, shape `(1, p)`; for a
    sequence of concrete counts, every one of them from one pass."""
    outer_x, _ = bilevel.outer_gradients(x, theta)
    alpha = _step_size(bilevel.inner, theta, step_size)
    if np.ndim(counts) == 0:
        adjoints = neumann_series(operator, outer_x, alpha, counts, operators)[None]
    else:
        adjoints = neumann_partial_sums(operator, outer_x, alpha, counts, operators)
    return jax.vmap(lambda adjoint: from_adjoint(bilevel, x, theta, adjoint))(adjoints)


def neumann_series(operator, right_hand_side: Float[Array, " d"], alpha: Float[ArrayLike, ""],
                   num_iterations: Int[ArrayLike, ""], operators=None) -> Float[Array, " d"]:
    """`α Σ_{j<k} (I − αA)^j b`, the truncated Neumann series of `A⁻¹b`; with `operators`,
    a function `j ↦ operator` (a different, e.g. minibatch, `A_j` per term)."""
    body = _neumann_term(operator, alpha, operators)
    return jax.lax.fori_loop(0, num_iterations, body, (jnp.zeros_like(right_hand_side), right_hand_side))[0]


def neumann_partial_sums(operator, right_hand_side: Float[Array, " d"], alpha: Float[ArrayLike, ""],
                         counts: Int[ArrayLike, " n"] | Sequence[int], operators=None) -> Float[Array, "n d"]:
    """`neumann_series` truncated at every k of `counts` (concrete integers ≥ 0), from one
    pass of `max(counts)` terms: a shorter series is the start of a longer one, so all of
    them cost what the longest does alone (a `vmap` over k would pay `Σ k`)."""
    start = (jnp.zeros_like(right_hand_side), right_hand_side)
    return at_counts(_neumann_term(operator, alpha, operators), start, counts)[0]


def at_counts(body, initial: PyTree, counts: Int[ArrayLike, " n"] | Sequence[int]) -> PyTree:
    """The state of `fori_loop(0, k, body, initial)` for every k of `counts` (concrete
    integers ≥ 0, in any order), stacked along a leading axis, from one pass of `max(counts)`
    iterations (the loop runs from one count to the next)."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0):
        raise ValueError(f"counts must be a non-empty sequence of integers >= 0, got {counts.tolist()}")
    stops = np.unique(counts)

    def segment(carry, length):
        state, start = carry
        state = jax.lax.fori_loop(start, start + length, body, state)
        return (state, start + length), state

    lengths = jnp.asarray(np.diff(stops, prepend=0), jnp.int64)
    states = jax.lax.scan(segment, (initial, jnp.asarray(0, jnp.int64)), lengths)[1]
    order = np.searchsorted(stops, counts)
    return jax.tree.map(lambda leaf: leaf[order], states)


def _neumann_term(operator, alpha, operators):
    """The step `(Σ, t) ↦ (Σ + αt, t − αA_j t)` of the series, at term j."""
    def body(j, state):
        total, term = state
        apply = operator if operators is None else operators(j)
        return total + alpha * term, term - alpha * apply(term)

    return body


@pytree_dataclass
class FixedPoint:
    """The derivative recursion of SGD run at a fixed inner point `x` (default `x*`):
    `J_{j+1} = J_j − α(H J_j + C)`, `J₀ = 0`, then `ĥ = ∇θG + J_kᵀ∇ₓG`. Its `J_k` converges to
    `J*` linearly, `‖J_k − J*‖ ≤ (1 − αμ)^k ‖J*‖`; `ĥ` equals `Neumann(k, α)`'s in exact arithmetic."""

    num_iterations: Int[ArrayLike, ""]
    step_size: Real[ArrayLike, ""] | None = None
    needs_key = False

    def estimate(self, bilevel, theta, key, x):
        return self.estimates(bilevel, theta, key, x, None)[0]

    def estimates(self, bilevel, theta, key, x, counts: Int[ArrayLike, " n"] | Sequence[int] | None,
                  ) -> Float[Array, "n p"]:
        """`estimate` with `num_iterations = k` for every k of `counts`, in one pass
        (`at_counts`); `None`: this method's own count alone."""
        x = _at(bilevel, theta, x)
        inner = bilevel.inner
        alpha = _step_size(inner, theta, self.step_size)
        # One linearisation of ∇ₓF at (x, θ) serves every iteration: (dx, dθ) ↦ H dx + C dθ.
        _, push = jax.linearize(lambda x_, theta_: inner_gradient(inner, x_, theta_), x, theta)
        basis = jnp.eye(theta.shape[0], dtype=x.dtype)

        def body(_, tangents):  # tangents = Jᵀ, one row per θ direction
            return tangents - alpha * jax.vmap(push)(tangents, basis)

        start = jnp.zeros((theta.shape[0], x.shape[0]), x.dtype)
        if counts is None:
            tangents = jax.lax.fori_loop(0, self.num_iterations, body, start)[None]
        else:
            tangents = at_counts(body, start, counts)
        outer_x, outer_theta = bilevel.outer_gradients(x, theta)
        return outer_theta + tangents @ outer_x

    def cost(self, dim, param_dim):
        return Cost(self.num_iterations * param_dim, 1, None, "O(dp)")


@pytree_dataclass
class StochasticNeumann:
    """`Neumann(k, α)` with the Hessian of term j replaced by that of a minibatch of
    `batch_size` samples drawn with `fold_in(key, j)` (independent across terms, with
    replacement), at `x` (default `x*`); `∇ₓG` and `Cᵀv` are exact. The stochastic implicit
    hypergradient of Ji, Yang and Liang (2021): unbiased for the exact series' terms in the
    sense `E[Π_j (I − αH_{B_j})] = (I − αH)^k`, since the minibatches are independent."""

    num_iterations: Int[ArrayLike, ""]
    step_size: Real[ArrayLike, ""] | None = None
    batch_size: int = static(default=1)
    needs_key = True

    def estimate(self, bilevel, theta, key, x):
        return self.estimates(bilevel, theta, key, x, None)[0]

    def estimates(self, bilevel, theta, key, x, counts: Int[ArrayLike, " n"] | Sequence[int] | None,
                  ) -> Float[Array, "n p"]:
        """`estimate` with `num_iterations = k` for every k of `counts`, with the same key, in
        one pass (`neumann_partial_sums`: term j's minibatch depends on j alone); `None`: this
        method's own count alone."""
        x = _at(bilevel, theta, x)
        return _neumann_estimates(bilevel, theta, x, self.step_size, None, self._operators(bilevel, theta, key, x),
                                  self.num_iterations if counts is None else counts)

    def _operators(self, bilevel, theta, key, x):
        inner = bilevel.inner

        def operators(j):
            batch = inner.sample(jax.random.fold_in(key, j), self.batch_size)
            return lambda v: hessian_vector_product(inner, x, theta, v, batch)

        return operators

    def cost(self, dim, param_dim):
        return Cost(self.num_iterations, 2, self.batch_size, "O(d)")


@pytree_dataclass
class Unrolled:
    """`∇θ[G(x_K(θ), θ)]` for the iterate `x_K` of `num_steps` steps of minibatch SGD
    (`batch_size=None`: gradient descent) with `step_size` from `x` (default 0, which does
    not depend on θ), by forward mode (`J_K` by p tangents, then `∇θG + J_Kᵀ∇ₓG`) or reverse
    mode (one vector–Jacobian product back through the stored trajectory)."""

    num_steps: int = static()
    step_size: StepSize
    batch_size: int | None = static(default=1)
    mode: str = static(default="reverse")

    @property
    def needs_key(self) -> bool:
        return self.batch_size is not None

    def estimate(self, bilevel, theta, key, x):
        sgd, x_init, key = _sgd_run(self, bilevel, key, x)
        if self.mode == "forward":
            x_k, jac, _ = ForwardMode().solve(sgd, theta, x_init, key, self.num_steps)
            outer_x, outer_theta = bilevel.outer_gradients(x_k, theta)
            return outer_theta + jac.T @ outer_x
        return _through_steps(bilevel, sgd, theta, x_init, key, 0, self.num_steps)

    def cost(self, dim, param_dim):
        if self.mode == "forward":
            return Cost(self.num_steps * param_dim, self.num_steps + 1, self.batch_size, "O(dp)")
        return Cost(self.num_steps, self.num_steps + 1, self.batch_size, "O(K·d)")


@pytree_dataclass
class Truncated:
    """Reverse mode through the last `truncation` of `num_steps` SGD steps: the first
    `K − T` steps are run without tracking θ, so `x_{K−T}` is treated as a constant. Same
    trajectory as `Unrolled(K, …)` for the same key; `T = K` is `Unrolled` in reverse mode."""

    num_steps: int = static()
    truncation: int = static()
    step_size: StepSize
    batch_size: int | None = static(default=1)

    @property
    def needs_key(self) -> bool:
        return self.batch_size is not None

    def estimate(self, bilevel, theta, key, x):
        sgd, x_init, key = _sgd_run(self, bilevel, key, x)
        start = self.num_steps - self.truncation
        x_start, _ = iterate(lambda x_, k, step_key: sgd.step(theta, x_, k, step_key), x_init, key, start)
        return _through_steps(bilevel, sgd, theta, jax.lax.stop_gradient(x_start), key, start, self.truncation)

    def cost(self, dim, param_dim):
        return Cost(self.truncation, self.num_steps + 1, self.batch_size, "O(T·d)")


def _sgd_run(method, bilevel, key, x):
    """The SGD of `Unrolled` or `Truncated` on the inner problem, its start (`x`, default 0)
    and its key (any key when gradient descent draws nothing)."""
    sgd = MinibatchSGD(bilevel.inner, as_schedule(method.step_size), method.batch_size)
    return sgd, jnp.zeros(bilevel.dim) if x is None else x, jax.random.key(0) if key is None else key


def _through_steps(bilevel, sgd, theta, x_start, key, start, num_steps):
    """`∇θ[G(x_{start+n}(θ), θ)]` by reverse mode through steps `start … start + n − 1` from
    a fixed `x_start` (a `scan`: Python integers, so it can be differentiated backwards)."""
    def value(theta_):
        x, _ = iterate(lambda x_, k, step_key: sgd.step(theta_, x_, k, step_key), x_start, key, num_steps,
                       start=start)
        return bilevel.outer(x, theta_)

    return jax.grad(value)(theta)


# --- the entry point ------------------------------------------------------------------------

METHODS: dict[str, type] = {
    "implicit": Implicit,
    "cg": ConjugateGradient,
    "neumann": Neumann,
    "fixed_point": FixedPoint,
    "stochastic_neumann": StochasticNeumann,
    "unrolled": Unrolled,
    "truncated": Truncated,
}
MethodLike: TypeAlias = str | HypergradientMethod | Any


def hypergradient_method(method: MethodLike = "implicit", **options: Any) -> HypergradientMethod:
    """The method named `method` built with `options` (e.g. `("cg", num_iterations=10)`), or
    `method` itself when it is a method object (then `options` must be empty)."""
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"method must be one of {tuple(METHODS)} or a hypergradient method, got {method!r}")
        try:
            built = METHODS[method](**options)
        except TypeError as error:
            raise ValueError(f"method {method!r}: {error}") from None
    elif isinstance(method, HypergradientMethod):
        if options:
            raise ValueError(f"options {sorted(options)} are for a method given by name; {method!r} has its own")
        built = method
    else:
        raise ValueError(f"method must be one of {tuple(METHODS)} or a hypergradient method (an object with "
                         f"`estimate` and `cost`), got {method!r}")
    _check_method(built)
    return built


def _check_method(method):
    for name in ("num_iterations", "num_steps", "truncation"):
        if hasattr(method, name):
            check_count(getattr(method, name), name, minimum=0)
    if isinstance(method, Truncated) and method.truncation > method.num_steps:
        raise ValueError(f"truncation must be at most num_steps ({method.num_steps}), got {method.truncation}")
    if isinstance(method, Unrolled) and method.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {method.mode!r}")
    if getattr(method, "step_size", None) is not None and not isinstance(method, (Unrolled, Truncated)):
        step = float(method.step_size)
        if not step > 0:
            raise ValueError(f"step_size must be > 0, got {step}")


def hypergradient(bilevel, theta: ThetaLike, key: KeyLike | None = None, *,
                  method: MethodLike = "implicit", x: Float[ArrayLike, " d"] | None = None,
                  **options: Any) -> Float[Array, " p"] | PyTree:
    """An estimate of the hypergradient `∇θ[G(x*(θ), θ)]` of `bilevel` at θ.

    **Arguments:**

    - `bilevel`: a `problems.bilevel.Bilevel` (or anything with `inner`, `outer`,
      `outer_gradients` and `dim`).
    - `theta`: shape `(p,)`, or a pytree whose leaves flatten to p entries.
    - `key`: a JAX key, typed or legacy; needed by the stochastic methods
      (`stochastic_neumann`, and `unrolled`/`truncated` with minibatches).
    - `method`: a name from `METHODS` or a method object (`Implicit()`,
      `ConjugateGradient(k)`, `Neumann(k, α)`, `FixedPoint(k, α)`,
      `StochasticNeumann(k, α, b)`, `Unrolled(K, α, b, mode)`, `Truncated(K, T, α, b)`);
      with a name, `options` are the method's fields (e.g. `num_iterations=10`).
    - `x`: for the approximate implicit methods, the inner point they work at (default
      the exact `x*(θ)`); for `unrolled` and `truncated`, the initial iterate (default 0).

    **Returns:** shape `(p,)`, or θ's structure for a pytree θ.

    Works under `jit` and `vmap` (over θ, keys or inner points).
    """
    require_x64()
    built = hypergradient_method(method, **options)
    flat, unravel = ravel_theta(theta, bilevel.inner.param_dim)
    flat = bilevel.inner.check_theta(flat)
    if built.needs_key:
        if key is None:
            raise ValueError(f"method {type(built).__name__} draws minibatches: it needs a key")
        key = as_key(key)
    else:
        key = None
    if isinstance(built, (Unrolled, Truncated)):
        check_run(bilevel.inner, flat, jax.random.key(0) if key is None else key, built.step_size, built.num_steps,
                  built.batch_size, x)
    if x is not None:
        x = jnp.asarray(x, jnp.float64)
        if x.shape != (bilevel.dim,):
            raise ValueError(f"x must have shape ({bilevel.dim},), got {x.shape}")
    return unravel(estimate(bilevel, flat, key, x, built))


@jax.jit
def estimate(bilevel, theta: Float[Array, " p"], key: PRNGKeyArray | None, x: Float[Array, " d"] | None,
             method: HypergradientMethod) -> Float[Array, " p"]:
    """`method.estimate(bilevel, θ, key, x)` under `jit`, without the checks of
    `hypergradient`: θ flat of shape `(p,)`, a typed key or `None`, x or `None`. For drivers
    that vmap over keys, inner points or iteration counts (a method is a pytree)."""
    return method.estimate(bilevel, theta, key, x)


__all__ = [
    "METHODS",
    "ConjugateGradient",
    "Cost",
    "FixedPoint",
    "HypergradientMethod",
    "Implicit",
    "Neumann",
    "StochasticNeumann",
    "Truncated",
    "Unrolled",
    "at_counts",
    "conjugate_gradient",
    "cross_transpose_product",
    "estimate",
    "from_adjoint",
    "hessian_vector_product",
    "hypergradient",
    "hypergradient_method",
    "inner_gradient",
    "neumann_partial_sums",
    "neumann_series",
]

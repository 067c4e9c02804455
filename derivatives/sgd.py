"""Minibatch SGD written once: the step, the loop that drives it, and the ways to differentiate it.

    x_{k+1} = x_k − α_k ∇ₓ f_{B_k}(x_k, θ)
    J_{k+1} = J_k − α_k (∇²ₓₓ f_{B_k}(x_k, θ) J_k + ∇²ₓθ f_{B_k}(x_k, θ))

The minibatch `B_k` is drawn with the key `fold_in(key, k)`, so a trajectory needs no
array of K keys and every driver sees the same minibatches for the same key.

The pieces, in the manner of an iterative solver whose loop and whose derivative are
separate objects:

- `MinibatchSGD` is the step: `(θ, x_k, k, key_k) ↦ x_{k+1}`.
- `iterate` is the one loop: steps `k = start, …, start + n − 1` of any state under a
  `fori_loop` (a `scan` when `n` is static, so reverse mode can differentiate it), with
  the step key `fold_in(key, k)` and the first non-finite step tracked on request;
  `iterate_segments` records statistics between segments of it. `derivatives.unrolled`,
  `rates.error_curves` and the DSGD trainer of `rates.dsgd` all drive it.
- A derivative method says how `J_K = ∂θ x_K` is obtained. `ForwardMode` and
  `ReverseMode` differentiate the loop; `ExplicitRecursion`, `TangentRecursion` and
  `ClosedFormRecursion` (for problems with a `jacobian_step`) carry a derivative state
  through it, advanced one step at a time by `init`/`step`.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree, Real

from derivatives.schedules import Constant, PolynomialDecay, Schedule, StepSize, as_schedule
from problems import Problem, threefry
from problems.pytrees import pytree_dataclass, static
from problems.validation import KeyLike, as_key, check_batch_size, check_count, concrete, require_x64

# --- the step -------------------------------------------------------------------------------


def minibatch(problem: Problem, key: PRNGKeyArray, k: Int[ArrayLike, ""], batch_size: int | None) -> PyTree:
    """The minibatch of step `k`, drawn with `fold_in(key, k)`; `batch_size=None` means the
    full data set (gradient descent)."""
    return draw(problem, threefry.fold_in(key, k), batch_size)


def draw(problem: Problem, step_key: PRNGKeyArray, batch_size: int | None) -> PyTree:
    """A minibatch drawn with the key of its step, or the full data set when `batch_size` is `None`."""
    if batch_size is None:
        return problem.data
    return problem.sample(step_key, batch_size)


def sgd_step(problem: Problem, theta: Float[Array, " p"], batch: PyTree, x: Float[Array, " d"],
             alpha: Float[ArrayLike, ""]) -> Float[Array, " d"]:
    """`x − α ∇ₓ f_B(x, θ)`."""
    return x - alpha * jax.grad(problem.loss, argnums=0)(x, theta, batch)


def derivative_step(problem: Problem, theta: Float[Array, " p"], batch: PyTree, x: Float[Array, " d"],
                    jac: Float[Array, "d p"], alpha: Float[ArrayLike, ""]) -> Float[Array, "d p"]:
    """One step of the explicit derivative recursion at `x = x_k`, with both second derivatives formed."""
    hessian = jax.hessian(problem.loss, argnums=0)(x, theta, batch)
    cross = jax.jacfwd(jax.grad(problem.loss, argnums=0), argnums=1)(x, theta, batch)
    return jac - alpha * (hessian @ jac + cross)


def tangent_step(problem: Problem, theta: Float[Array, " p"], batch: PyTree, x: Float[Array, " d"],
                 tangents: Float[Array, "m d"], alpha: Float[ArrayLike, ""],
                 directions: Float[Array, "m p"] | None = None,
                 ) -> tuple[Float[Array, " d"], Float[Array, "m d"]]:
    """One SGD step and its forward-mode derivative along m directions of θ.

    With `directions = V` (rows `v_i`, default the identity, m = p), `tangents[i] = J_k v_i`
    (so by default `tangents = J_kᵀ`, shape `(p, d)`), and

        tangents_{k+1}[i] = ∂ₓstep · tangents[i] + ∂θstep · v_i,

    the recursion of `derivative_step` applied to `J_k V ᵀ`, computed as m Jacobian-vector
    products of the gradient that never form the d×d Hessian: a rank-b minibatch Hessian
    costs O(b·d·m) per step instead of O(d²p). The primal step is evaluated once and
    shared by the m products. Storing the tangents by rows keeps each product contiguous,
    the layout `vmap` over tangents produces; with `(d, p)` storage the same recursion ran
    2.5× slower on a CPU (d = p = 64, 64 seeds vmapped).
    """
    def step(x_, theta_):
        return sgd_step(problem, theta_, batch, x_, alpha)

    x_next, push_forward = jax.linearize(step, x, theta)
    if directions is None:
        directions = jnp.eye(theta.shape[0], dtype=tangents.dtype)
    return x_next, jax.vmap(push_forward)(tangents, directions)


@pytree_dataclass
class MinibatchSGD:
    """Minibatch SGD on `problem` with step sizes `schedule(k)` and minibatches of `batch_size`
    (`None`: the full data set, i.e. gradient descent). A pytree: the problem's data and the
    schedule's parameters are leaves, so new values of either do not recompile a driver."""

    problem: Problem
    schedule: Schedule
    batch_size: int | None = static()

    def step(self, theta: Float[Array, " p"], x: Float[Array, " d"], k: Int[ArrayLike, ""],
             step_key: PRNGKeyArray) -> Float[Array, " d"]:
        """`x_{k+1}` from `x_k`, with the minibatch drawn with `step_key = fold_in(key, k)`."""
        return sgd_step(self.problem, theta, draw(self.problem, step_key, self.batch_size), x, self.schedule(k))


# --- the loop -------------------------------------------------------------------------------

State = Any  # any pytree of arrays
Advance = Callable[[State, Int[Array, ""], PRNGKeyArray], State]


def iterate(advance: Advance, state: State, key: KeyLike, num_steps: int | Int[Array, ""], *,
            start: int | Int[Array, ""] = 0, watch: Callable[[State], Array] | None = None,
            ) -> tuple[State, Int[Array, ""]]:
    """Run `state ← advance(state, k, fold_in(key, k))` for `k = start, …, start + num_steps − 1`.

    A `fori_loop`: with Python integers `start` and `num_steps` it is a `scan` (reverse mode
    can differentiate it); with traced ones a while loop (forward mode only). Nothing is
    stored per step, so memory does not grow with the number of steps.

    **Arguments:**

    - `advance`: one step; it receives the step index and the key of step k.
    - `state`: the initial state, any pytree. `key`: the run's key.
    - `watch`: what must stay finite, a function of the state (e.g. the iterate), or `None`.

    **Returns:** `(state, first)`: the final state and the first `k` at which the watched part
    of the state after step `k − 1` is not finite (so the iterate `x_k` is the first
    non-finite one), −1 if none or if nothing is watched.

    **Raises:** `TypeError` unless `key` is one typed or legacy key.
    """
    key = as_key(key)
    no_step = jnp.asarray(-1, jnp.int64)
    if watch is None:
        return lax.fori_loop(start, start + num_steps, lambda k, s: advance(s, k, threefry.fold_in(key, k)),
                             state), no_step

    def body(k, carry):
        state, first = carry
        state = advance(state, k, threefry.fold_in(key, k))
        return state, first_nonfinite_step(first, k + 1, watch(state))

    return lax.fori_loop(start, start + num_steps, body, (state, no_step))


def iterate_segments(advance: Advance, state: State, key: KeyLike, segment_lengths: Int[Array, " C"],
                     record: Callable[[State, Int[Array, ""], Int[Array, ""]], PyTree],
                     ) -> tuple[State, PyTree]:
    """`iterate` over consecutive segments of steps, recording after each one.

    Segment `c` runs `segment_lengths[c]` steps; then `record(state, k, c)` is called with the
    number of steps taken so far, `k`. A first length of 0 records the initial state. The
    lengths are values, not shapes: one compiled program serves every number of steps.

    **Returns:** `(state, records)`, the records stacked along a leading axis of length C.
    """
    key = as_key(key)
    def segment(carry, inputs):
        state, k = carry
        index, length = inputs
        state, _ = iterate(advance, state, key, length, start=k)
        return (state, k + length), record(state, k + length, index)

    indices = jnp.arange(segment_lengths.shape[0], dtype=jnp.int64)
    (state, _), records = lax.scan(segment, (state, jnp.asarray(0, jnp.int64)), (indices, segment_lengths))
    return state, records


def first_nonfinite_step(first: Int[Array, ""], k: Int[ArrayLike, ""], x: Array) -> Int[Array, ""]:
    """Inside a loop: `k` if `x` is the first non-finite state seen, else `first` (−1: none yet)."""
    return jnp.where((first < 0) & ~jnp.all(jnp.isfinite(x)), k, first)


# --- how the derivative is obtained ---------------------------------------------------------

Solution = tuple[Float[Array, " d"], Float[Array, "d p"], Int[Array, ""]]


@runtime_checkable
class DerivativeMethod(Protocol):
    """How `J_K = ∂θ x_K` is obtained from K steps of `sgd` run by `iterate` from `x_init`
    (which does not depend on θ, so `J_0 = 0`).

    `solve` returns `(x_K, J_K, first)` with `first` the first step whose iterate is not
    finite (−1 if none); its key is that of the run, typed or legacy, as everywhere. It
    checks nothing else: `derivatives.unrolled` checks the arguments and reports divergence.
    Methods are small frozen dataclasses: hashable, so a jitted driver takes them as static
    arguments.
    """

    def solve(self, sgd: MinibatchSGD, theta: Float[Array, " p"], x_init: Float[Array, " d"],
              key: KeyLike, num_steps: int) -> Solution: ...


@runtime_checkable
class StepwiseMethod(Protocol):
    """A derivative method that carries a derivative state `D` alongside `x` through the loop."""

    def init(self, x_init: Float[Array, " d"], theta: Float[Array, " p"]) -> Array:
        """`D_0`, for `J_0 = 0`."""

    def step(self, problem: Problem, theta: Float[Array, " p"], batch: PyTree, x: Float[Array, " d"],
             state: Array, alpha: Float[ArrayLike, ""]) -> tuple[Float[Array, " d"], Array]:
        """`(x_{k+1}, D_{k+1})` from `(x_k, D_k)` on the minibatch `batch` with step `alpha`."""

    def jacobian(self, state: Array) -> Float[Array, "d p"]:
        """`J_k` from `D_k`."""


def stepwise_advance(method: StepwiseMethod, sgd: MinibatchSGD, theta: Float[Array, " p"]) -> Advance:
    """The loop step of a stepwise method: `(x_k, D_k) ↦ (x_{k+1}, D_{k+1})` on the minibatch of step k."""
    def advance(state, k, step_key):
        batch = draw(sgd.problem, step_key, sgd.batch_size)
        return method.step(sgd.problem, theta, batch, *state, sgd.schedule(k))

    return advance


def solve_stepwise(method: StepwiseMethod, sgd: MinibatchSGD, theta: Float[Array, " p"],
                   x_init: Float[Array, " d"], key: KeyLike, num_steps: int) -> Solution:
    """`(x_K, J_K, first)` by carrying `method`'s derivative state through `iterate`."""
    (x, state), first = iterate(stepwise_advance(method, sgd, theta), (x_init, method.init(x_init, theta)), key,
                                num_steps, watch=lambda state: state[0])
    return x, method.jacobian(state), first


def _solve_by_autodiff(differentiate, sgd, theta, x_init, key, num_steps):
    def final_iterate(theta_):
        x, first = iterate(lambda x, k, step_key: sgd.step(theta_, x, k, step_key), x_init, key, num_steps,
                           watch=lambda x: x)
        return x, (x, first)

    jac, (x, first) = differentiate(final_iterate, has_aux=True)(theta)
    return x, jac, first


@dataclasses.dataclass(frozen=True)
class ForwardMode:
    """Forward-mode autodiff (`jacfwd`) through the loop: p tangents ride along with `x`,
    memory O(dp), independent of K."""

    def solve(self, sgd: MinibatchSGD, theta: Float[Array, " p"], x_init: Float[Array, " d"],
              key: KeyLike, num_steps: int) -> Solution:
        return _solve_by_autodiff(jax.jacfwd, sgd, theta, x_init, key, num_steps)


@dataclasses.dataclass(frozen=True)
class ReverseMode:
    """Reverse-mode autodiff (`jacrev`) through the loop: the scan stores every iterate and
    minibatch for the backward pass, memory O(K(d + b·|ξ|)). Cheaper than forward mode only
    when p ≫ d."""

    def solve(self, sgd: MinibatchSGD, theta: Float[Array, " p"], x_init: Float[Array, " d"],
              key: KeyLike, num_steps: int) -> Solution:
        return _solve_by_autodiff(jax.jacrev, sgd, theta, x_init, key, num_steps)


@dataclasses.dataclass(frozen=True)
class ExplicitRecursion:
    """The recursion `J_{k+1} = J_k − α_k(∇²ₓₓf J_k + ∇²ₓθf)` at `x_k`, with the d×d Hessian
    formed (`derivative_step`): O(d²p) per step. The derivative state is `J` itself."""

    def init(self, x_init: Float[Array, " d"], theta: Float[Array, " p"]) -> Float[Array, "d p"]:
        return jnp.zeros((x_init.shape[0], theta.shape[0]), x_init.dtype)

    def step(self, problem: Problem, theta: Float[Array, " p"], batch: PyTree, x: Float[Array, " d"],
             state: Float[Array, "d p"], alpha: Float[ArrayLike, ""],
             ) -> tuple[Float[Array, " d"], Float[Array, "d p"]]:
        return sgd_step(problem, theta, batch, x, alpha), derivative_step(problem, theta, batch, x, state, alpha)

    def jacobian(self, state: Float[Array, "d p"]) -> Float[Array, "d p"]:
        return state

    def solve(self, sgd: MinibatchSGD, theta: Float[Array, " p"], x_init: Float[Array, " d"],
              key: KeyLike, num_steps: int) -> Solution:
        return solve_stepwise(self, sgd, theta, x_init, key, num_steps)


@dataclasses.dataclass(frozen=True)
class TangentRecursion:
    """The same recursion without the Hessian (`tangent_step`): p Jacobian-vector products of
    the gradient per step, O(b·d·p) for a rank-b minibatch Hessian. The derivative state is
    `Jᵀ`, shape `(p, d)`, the layout that runs fastest. The engine of `rates.error_curves`."""

    def init(self, x_init: Float[Array, " d"], theta: Float[Array, " p"]) -> Float[Array, "p d"]:
        return jnp.zeros((theta.shape[0], x_init.shape[0]), x_init.dtype)

    def step(self, problem: Problem, theta: Float[Array, " p"], batch: PyTree, x: Float[Array, " d"],
             state: Float[Array, "p d"], alpha: Float[ArrayLike, ""],
             ) -> tuple[Float[Array, " d"], Float[Array, "p d"]]:
        return tangent_step(problem, theta, batch, x, state, alpha)

    def jacobian(self, state: Float[Array, "p d"]) -> Float[Array, "d p"]:
        return state.T

    def solve(self, sgd: MinibatchSGD, theta: Float[Array, " p"], x_init: Float[Array, " d"],
              key: KeyLike, num_steps: int) -> Solution:
        return solve_stepwise(self, sgd, theta, x_init, key, num_steps)


def has_closed_form_step(problem: Problem) -> bool:
    """Whether `problem` supplies `jacobian_step(θ, batch, x, J, α) ↦ (x_{k+1}, J_{k+1})`: one
    SGD step and the derivative recursion in closed form, `J` stored as `(d, p)`."""
    return callable(getattr(problem, "jacobian_step", None))


@dataclasses.dataclass(frozen=True)
class ClosedFormRecursion:
    """The derivative recursion by the problem's own `jacobian_step`, which writes the
    minibatch Hessian and cross derivative out by their structure (e.g. rank b for a
    sample-weighted model, `problems.weighted_regression`) instead of p Jacobian-vector
    products. The derivative state is `J_k`, shape `(d, p)`. Exactly the recursion of
    `ExplicitRecursion` and `TangentRecursion` (`tests/test_sgd.py` compares them to 1e-12);
    the engine of `rates.error_curves` for problems that have it (`has_closed_form_step`)."""

    def init(self, x_init: Float[Array, " d"], theta: Float[Array, " p"]) -> Float[Array, "d p"]:
        return jnp.zeros((x_init.shape[0], theta.shape[0]), x_init.dtype)

    def step(self, problem: Problem, theta: Float[Array, " p"], batch: PyTree, x: Float[Array, " d"],
             state: Float[Array, "d p"], alpha: Float[ArrayLike, ""],
             ) -> tuple[Float[Array, " d"], Float[Array, "d p"]]:
        if not has_closed_form_step(problem):
            raise TypeError(f"{type(problem).__name__} has no jacobian_step; use TangentRecursion()")
        return problem.jacobian_step(theta, batch, x, state, alpha)

    def jacobian(self, state: Float[Array, "d p"]) -> Float[Array, "d p"]:
        return state

    def solve(self, sgd: MinibatchSGD, theta: Float[Array, " p"], x_init: Float[Array, " d"],
              key: KeyLike, num_steps: int) -> Solution:
        return solve_stepwise(self, sgd, theta, x_init, key, num_steps)


@dataclasses.dataclass(frozen=True)
class DirectionalTangents:
    """The tangent recursion along the m rows `v_i` of `directions` (shape `(m, p)`): the
    derivative state is `V J_kᵀ`, shape `(m, d)`, row i the directional derivative
    `J_k v_i = ∂θ x_k · v_i`, at m Jacobian-vector products per step instead of p. With
    random probes (`rates.probes`) it sketches `‖J_k − J*‖²_F` (`rates.error_curves` with
    `jacobian_probes`); with the identity it is `TangentRecursion`."""

    directions: Float[Array, "m p"]

    def init(self, x_init: Float[Array, " d"], theta: Float[Array, " p"]) -> Float[Array, "m d"]:
        return jnp.zeros((self.directions.shape[0], x_init.shape[0]), x_init.dtype)

    def step(self, problem: Problem, theta: Float[Array, " p"], batch: PyTree, x: Float[Array, " d"],
             state: Float[Array, "m d"], alpha: Float[ArrayLike, ""],
             ) -> tuple[Float[Array, " d"], Float[Array, "m d"]]:
        return tangent_step(problem, theta, batch, x, state, alpha, self.directions)

    def jacobian(self, state: Float[Array, "m d"]) -> Float[Array, "d p"]:
        """`J_k`, which m directions determine only when they span θ's space: `V⁻¹(V J_kᵀ)`
        for square V (m = p); fewer directions give only the sketch `state`."""
        count, param_dim = self.directions.shape
        if count != param_dim:
            raise ValueError(f"{count} directions in a {param_dim}-dimensional θ do not determine J_k; "
                             f"the state V J_kᵀ is what they give")
        return jnp.linalg.solve(self.directions, state).T


# --- checks shared by every SGD driver ------------------------------------------------------

class StepSizeWarning(UserWarning):
    """A step size above `2/L`: SGD may diverge (a study of instability may want exactly that)."""


class DivergenceError(FloatingPointError):
    """SGD produced non-finite iterates or derivatives on concrete inputs."""


def check_run(problem: Problem, theta: Real[ArrayLike, ...], key: KeyLike, step_size: StepSize,
              num_steps: int, batch_size: int | None, x_init: Float[ArrayLike, " d"] | None, *,
              stacklevel: int = 3) -> tuple[Float[Array, " p"], PRNGKeyArray, Schedule, Float[Array, " d"]]:
    """Check the arguments shared by the SGD drivers, before anything is compiled.

    Returns `(theta, key, schedule, x_init)`: θ of shape `(p,)`, a typed key, a schedule
    whose values at the steps `0 … num_steps − 1` are finite and > 0 (checked when
    concrete) and a finite `x_init` (default 0). Warns with `StepSizeWarning` when the
    largest step exceeds `2/L`, the stability limit of every per-sample step
    `x − α∇fᵢ(x)` for an L-smooth `fᵢ` (`problem.constants(θ).L`, on concrete θ);
    `stacklevel` points the warning at the caller of the public function.
    """
    require_x64()
    num_steps = check_count(num_steps, "num_steps", minimum=0)
    if batch_size is not None:
        check_batch_size(batch_size)
    theta = problem.check_theta(theta)
    key = as_key(key)
    schedule = as_schedule(step_size)
    x_init = jnp.zeros(problem.dim) if x_init is None else jnp.asarray(x_init, jnp.float64)
    if x_init.shape != (problem.dim,):
        raise ValueError(f"x_init must have shape ({problem.dim},), got {x_init.shape}")
    values = concrete(x_init)
    if values is not None and not np.all(np.isfinite(values)):
        raise ValueError(f"x_init must be finite, got {values}")
    largest = largest_step(schedule, num_steps)
    if largest is not None and concrete(theta) is not None:
        limit = stability_limit(problem, theta)
        if largest > limit:
            warnings.warn(f"step size {largest:.6g} exceeds 2/L = {limit:.6g} for this problem at θ "
                          f"(L = {2 / limit:.6g}): SGD may diverge", StepSizeWarning, stacklevel=stacklevel)
    return theta, key, schedule, x_init


def stability_limit(problem: Problem, theta: Float[Array, " p"]) -> float:
    """`2/L` with `L = problem.smoothness(θ)`, the `L` of `problem.constants(θ)` without
    computing the noise constants."""
    return 2.0 / float(problem.smoothness(theta))


def largest_step(schedule: Schedule, num_steps: int) -> float | None:
    """`max_{k < num_steps} α_k` for a concrete schedule (`None` when it is traced or K = 0).

    Raises `ValueError` naming the first step whose `α_k` is not finite and > 0.
    """
    if num_steps == 0 or any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(schedule)):
        return None
    first = schedule(jnp.asarray(0, jnp.int64))
    if isinstance(first, jax.core.Tracer):  # a function closing over traced values
        return None
    if isinstance(schedule, (Constant, PolynomialDecay)):
        # Positive and finite by construction, and non-increasing in k: α_0 is the largest.
        return float(first)
    # A function is evaluated at every step, in one compiled pass over a power-of-two bucket.
    bucket = 1 << max(num_steps - 1, 0).bit_length()
    bad, first_bad, bad_value, largest = _scan_schedule(schedule, num_steps, bucket)
    if bad:
        raise ValueError(f"step_size must be finite and > 0 at every step it is used (k = 0 … {num_steps - 1}), "
                         f"got α_{int(first_bad)} = {float(bad_value)!r}")
    return float(largest)


@functools.partial(jax.jit, static_argnums=2)
def _scan_schedule(schedule, num_steps, bucket):
    steps = jnp.arange(bucket, dtype=jnp.int64)
    alphas = jax.vmap(schedule)(steps)
    used = steps < num_steps
    bad = used & ~(jnp.isfinite(alphas) & (alphas > 0))
    first_bad = jnp.argmax(bad)
    return jnp.any(bad), first_bad, alphas[first_bad], jnp.max(jnp.where(used & ~bad, alphas, -jnp.inf))


def divergence_error(problem: Problem, theta: Float[Array, " p"], schedule: Schedule, where: str,
                     ) -> DivergenceError:
    """The error for a run that went non-finite at `where` (a phrase such as "from step k = 12 on")."""
    alpha0 = float(schedule(jnp.asarray(0, jnp.int64)))
    try:
        limit = f"2/L = {stability_limit(problem, theta):.6g}"
    except Exception:  # the constants themselves may be what is broken
        limit = "2/L (not computable for this problem)"
    return DivergenceError(
        f"SGD diverged: the iterates or their derivatives are not finite {where}, with step size α_0 = "
        f"{alpha0:.6g} ({type(schedule).__name__} schedule) against {limit} for this problem at θ; "
        f"use a smaller step size"
    )


__all__ = [
    "ClosedFormRecursion",
    "DerivativeMethod",
    "DirectionalTangents",
    "DivergenceError",
    "ExplicitRecursion",
    "ForwardMode",
    "MinibatchSGD",
    "ReverseMode",
    "StepSizeWarning",
    "StepwiseMethod",
    "TangentRecursion",
    "check_run",
    "derivative_step",
    "draw",
    "has_closed_form_step",
    "iterate",
    "iterate_segments",
    "minibatch",
    "sgd_step",
    "solve_stepwise",
    "stepwise_advance",
    "tangent_step",
]

"""Derivatives of SGD iterates with respect to θ, through the unrolled loop of `derivatives.sgd`."""

from __future__ import annotations

import functools
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

from derivatives.schedules import StepSize
from derivatives.sgd import (
    DerivativeMethod,
    ExplicitRecursion,
    ForwardMode,
    MinibatchSGD,
    ReverseMode,
    TangentRecursion,
    check_run,
    divergence_error,
)
from problems import Problem
from problems.pytrees import ThetaLike, ravel_theta, unravel_jacobian
from problems.validation import KeyLike

METHODS: dict[str, DerivativeMethod] = {
    "forward": ForwardMode(),
    "reverse": ReverseMode(),
    "recursion": ExplicitRecursion(),
    "tangent": TangentRecursion(),
}
MODES = tuple(METHODS)
# A name in MODES or a method object; anything else reaches `derivative_method`'s own error,
# which names the valid modes, instead of a type checker's.
ModeLike: TypeAlias = str | DerivativeMethod | Any


def unrolled(
    problem: Problem,
    theta: ThetaLike,
    key: KeyLike,
    *,
    step_size: StepSize,
    num_steps: int,
    batch_size: int | None = 1,
    mode: ModeLike = "forward",
    x_init: Float[ArrayLike, " d"] | None = None,
) -> tuple[Float[Array, " d"], Float[Array, "d p"] | PyTree]:
    """Run `num_steps` of minibatch SGD from `x_init` and return `(x_K, ∂θ x_K)`.

    `x_{k+1} = x_k − α_k ∇ₓ f_{B_k}(x_k, θ)` with `B_k` drawn with `fold_in(key, k)`;
    `x_0 = x_init` (default 0) does not depend on θ, so `∂θ x_0 = 0`.

    **Arguments:**

    - `problem`: any object with the `problems.Problem` interface.
    - `theta`: shape `(p,)`, or a pytree of real arrays (a dict of hyperparameters, say)
      whose leaves hold p entries in all, flattened in JAX's order
      (`problems.pytrees.ravel_theta`: leaves in `jax.tree.leaves` order, a dict's keys
      sorted). `key`: a JAX PRNG key, typed (`jax.random.key`) or legacy
      (`jax.random.PRNGKey`); both give the same minibatches.
    - `step_size`: a number > 0, a `rates` schedule, or a function `k ↦ α_k`.
    - `num_steps`: K ≥ 0. `batch_size`: minibatch size, or `None` for full-batch
      gradient descent.
    - `mode`: a name from `MODES` or a derivative method object (`derivatives.sgd`):
        - `"forward"` (`ForwardMode()`): forward-mode autodiff (`jacfwd`) through a
          `lax.scan` of SGD steps; p tangents ride along, memory O(dp), independent of K.
        - `"reverse"` (`ReverseMode()`): reverse-mode autodiff (`jacrev`); the scan stores
          every iterate and minibatch for the backward pass, memory O(K(d + b·|ξ|)).
          Cheaper than forward only when p ≫ d.
        - `"recursion"` (`ExplicitRecursion()`): the explicit recursion
          `J_{k+1} = J_k − α_k(∇²ₓₓf J_k + ∇²ₓθf)` at `x_k`, forming the d×d Hessian:
          O(d²p) per step.
        - `"tangent"` (`TangentRecursion()`): the same recursion as p Jacobian-vector
          products of the gradient, without the Hessian: O(b·d·p) per step for a rank-b
          minibatch Hessian. The method of `rates.error_curves`.

      All use the same minibatches for the same key and agree up to rounding.

    **Returns:** `(x_K, J_K)` with shapes `(d,)` and `(d, p)`. For a pytree θ, `J_K` has θ's
    structure, the leaf for a θ-leaf of shape `s` of shape `(d, *s)`: what
    `jax.jacfwd(lambda t: x_K(t))(theta)` returns (`problems.pytrees.unravel_jacobian`).
    The computation runs on the flattened θ, so in an eager call a pytree θ gives bit for
    bit the numbers of its flattened array.

    **Raises:** `ValueError` for bad arguments (a step size that is not finite and > 0 at
    some step k < K names that step), `TypeError` for a bad key, `DivergenceError` when
    the result is not finite (naming the first non-finite step, α_0 and 2/L); a step above
    2/L warns (`StepSizeWarning`). Values are checked only when concrete.

    Works under `jit` and `vmap` (over keys, θ or initial points), for a pytree θ too (under
    `vmap` over θ, every leaf carries the batch axis).
    """
    method = derivative_method(mode)
    theta, unravel = ravel_theta(theta, problem.param_dim)
    theta, key, schedule, x_init = check_run(problem, theta, key, step_size, num_steps, batch_size, x_init)
    x, jac, first_nonfinite = _unrolled(MinibatchSGD(problem, schedule, batch_size), theta, key, x_init,
                                        num_steps, method)
    if not isinstance(x, jax.core.Tracer):
        if int(first_nonfinite) >= 0:
            raise divergence_error(problem, theta, schedule, f"from step k = {int(first_nonfinite)} on")
        if not bool(jnp.all(jnp.isfinite(jac))):
            raise divergence_error(problem, theta, schedule, f"at the last step k = {num_steps}")
    return x, unravel_jacobian(jac, unravel)


def derivative_method(mode: ModeLike) -> DerivativeMethod:
    """The method named `mode` (one of `MODES`), or `mode` itself if it is a method object."""
    if isinstance(mode, str):
        if mode not in METHODS:
            raise ValueError(f"mode must be one of {MODES} or a derivative method, got {mode!r}")
        return METHODS[mode]
    if not isinstance(mode, DerivativeMethod):
        raise ValueError(f"mode must be one of {MODES} or a derivative method (an object with a `solve` "
                         f"method, e.g. derivatives.TangentRecursion()), got {mode!r}")
    return mode


@functools.partial(jax.jit, static_argnames=("num_steps", "method"))
def _unrolled(sgd, theta, key, x_init, num_steps, method):
    return method.solve(sgd, theta, x_init, key, num_steps)

"""One step of minibatch SGD and of its derivative recursion: the pieces every driver scans.

    x_{k+1} = x_k − α_k ∇ₓ f_{B_k}(x_k, θ)
    J_{k+1} = J_k − α_k (∇²ₓₓ f_{B_k}(x_k, θ) J_k + ∇²ₓθ f_{B_k}(x_k, θ))

The minibatch `B_k` is drawn with the key `fold_in(key, k)`, so a trajectory needs no
array of K keys and every driver sees the same minibatches for the same key.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from derivatives.schedules import Constant, PolynomialDecay, as_schedule
from problems.validation import as_key, check_batch_size, check_count, concrete, require_x64


def minibatch(problem, key, k, batch_size):
    """The minibatch of step `k`; `batch_size=None` means the full data set (gradient descent)."""
    if batch_size is None:
        return problem.data
    return problem.sample(jax.random.fold_in(key, k), batch_size)


def sgd_step(problem, theta, batch, x, alpha):
    return x - alpha * jax.grad(problem.loss, argnums=0)(x, theta, batch)


def derivative_step(problem, theta, batch, x, jac, alpha):
    """One step of the explicit derivative recursion, with both second derivatives formed."""
    hessian = jax.hessian(problem.loss, argnums=0)(x, theta, batch)
    cross = jax.jacfwd(jax.grad(problem.loss, argnums=0), argnums=1)(x, theta, batch)
    return jac - alpha * (hessian @ jac + cross)


def tangent_step(problem, theta, batch, x, tangents, alpha):
    """One SGD step and its forward-mode derivative, the Jacobian stored by rows of θ.

    `tangents[j] = ∂θⱼ x_k` (so `tangents = J_kᵀ`, shape `(p, d)`), and

        tangents_{k+1}[j] = ∂ₓstep · tangents[j] + ∂θⱼ step,

    the recursion of `derivative_step` computed as p Jacobian-vector products of
    the gradient that never form the d×d Hessian: a rank-b minibatch Hessian costs
    O(b·d·p) per step instead of O(d²p). The primal step is evaluated once and shared
    by the p products. Storing `Jᵀ` keeps each product on a contiguous row, which is
    the layout `vmap` over tangents produces; with `(d, p)` storage the same recursion
    ran 2.5× slower on a CPU (d = p = 64, 64 seeds vmapped).
    """
    def step(x_, theta_):
        return sgd_step(problem, theta_, batch, x_, alpha)

    x_next, push_forward = jax.linearize(step, x, theta)
    basis = jnp.eye(theta.shape[0], dtype=tangents.dtype)
    return x_next, jax.vmap(push_forward)(tangents, basis)


# --- checks shared by every SGD driver ------------------------------------------------------

class StepSizeWarning(UserWarning):
    """A step size above `2/L`: SGD may diverge (a study of instability may want exactly that)."""


class DivergenceError(FloatingPointError):
    """SGD produced non-finite iterates or derivatives on concrete inputs."""


def check_run(problem, theta, key, step_size, num_steps, batch_size, x_init, *, stacklevel: int = 3):
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


def stability_limit(problem, theta) -> float:
    """`2/L` with `L = problem.constants(θ).L` (from `problem.smoothness(θ)` where a problem
    has it: the same number without computing the noise constants)."""
    smoothness = getattr(problem, "smoothness", None)
    L = smoothness(theta) if callable(smoothness) else problem.constants(theta).L
    return 2.0 / float(L)


def largest_step(schedule, num_steps: int) -> float | None:
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


def first_nonfinite_step(first, k, x):
    """Inside a scan: `k` if `x` is the first non-finite state seen, else `first` (−1: none yet)."""
    return jnp.where((first < 0) & ~jnp.all(jnp.isfinite(x)), k, first)


def divergence_error(problem, theta, schedule, where: str) -> DivergenceError:
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

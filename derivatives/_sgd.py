"""One step of minibatch SGD and of its derivative recursion: the pieces every driver scans.

    x_{k+1} = x_k − α_k ∇ₓ f_{B_k}(x_k, θ)
    J_{k+1} = J_k − α_k (∇²ₓₓ f_{B_k}(x_k, θ) J_k + ∇²ₓθ f_{B_k}(x_k, θ))

The minibatch `B_k` is drawn with the key `fold_in(key, k)`, so a trajectory needs no
array of K keys and every driver sees the same minibatches for the same key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


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


def tangent_step(problem, theta, batch, x, jac, alpha):
    """One SGD step and its forward-mode derivative: `J_{k+1} = ∂ₓstep·J_k + ∂θstep`.

    The same recursion as `derivative_step`, but through p Jacobian-vector products
    of the gradient, which never form the d×d Hessian (a rank-b minibatch Hessian
    costs O(b·d·p) per step instead of O(d²p)).
    """
    def step(x_, theta_):
        return sgd_step(problem, theta_, batch, x_, alpha)

    x_next, push_forward = jax.linearize(step, x, theta)
    basis = jnp.eye(theta.shape[0], dtype=jac.dtype)
    jac_next = jax.vmap(push_forward, in_axes=(1, 0), out_axes=1)(jac, basis)
    return x_next, jac_next

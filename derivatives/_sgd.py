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

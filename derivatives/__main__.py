"""`python -m derivatives`: ∂θ x_K through unrolled SGD against the exact ∂θ x*.

On the default ridge problem (θ = λ) and weighted ridge (θ ∈ Rᵈ), run minibatch SGD
with decreasing steps a/(k + k0), a = 2/μ, from 16 seeds, and print the derivative of
the last iterate next to the closed form and the implicit-function-theorem value.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import derivatives
import problems


def demonstrate(problem, num_steps: int, num_seeds: int) -> None:
    theta = problem.theta0
    constants = problem.constants(theta)
    mu, L = float(constants.mu), float(constants.L)
    schedule = derivatives.schedules.inverse_time(2.0 / mu, 4.0 * L / mu)   # a/k0 = 1/(2L), as the bounds need
    print(f"\n{problem!r}")
    print(f"  constants at θ₀: {constants}")
    print(f"  SGD: batch 1, α_k = a/(k + k0) with a = 2/μ = {2 / mu:.3g}, k0 = 4L/μ = {4 * L / mu:.3g}, "
          f"K = {num_steps}")
    keys = jax.random.split(jax.random.key(0), num_seeds)
    start = time.perf_counter()
    run = jax.jit(jax.vmap(lambda k: derivatives.unrolled(problem, theta, k, step_size=schedule, num_steps=num_steps)))
    _, jac_final = jax.block_until_ready(run(keys))
    elapsed = time.perf_counter() - start
    exact = problem.solution_jacobian(theta)
    implicit = derivatives.implicit_jacobian(problem, theta)
    errors = jnp.linalg.norm(jac_final - exact, axis=(1, 2)) / jnp.linalg.norm(exact)
    shown = min(problem.param_dim, 3)
    with np.printoptions(precision=5, suppress=True, linewidth=120):
        print(f"  first rows of ∂θ x_K (seed 0, first {shown} columns):\n{np.asarray(jac_final[0, :4, :shown])}")
        print(f"  first rows of ∂θ x* (closed form):\n{np.asarray(exact[:4, :shown])}")
    disagreement = float(jnp.linalg.norm(exact - implicit) / jnp.linalg.norm(exact))
    print(f"  ‖closed form − implicit function theorem‖/‖∂θ x*‖ = {disagreement:.2e}")
    print(f"  ‖∂θ x_K − ∂θ x*‖_F / ‖∂θ x*‖_F over {num_seeds} seeds: mean {float(errors.mean()):.3e}, "
          f"max {float(errors.max()):.3e}   ({elapsed:.1f} s with compilation)")


def main() -> None:
    jax.config.update("jax_enable_x64", True)  # the library leaves float64 to its caller
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=16)
    args = parser.parse_args()
    print("Forward-mode derivatives through unrolled minibatch SGD against the exact ∂θ x*")
    for problem in (problems.ridge(), problems.weighted_ridge()):
        demonstrate(problem, args.steps, args.seeds)


if __name__ == "__main__":
    main()

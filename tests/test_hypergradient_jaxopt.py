"""JAXopt's implicit differentiation as an independent peer of the exact hypergradient.

`derivatives.hypergradient(B, θ, method="implicit")` solves `H v = ∇ₓG` densely (Cholesky) and
returns `∇θG − Cᵀv`, with `H = ∇²ₓₓF` and `C = ∇²ₓθF` at `x*(θ)`; `B.hypergradient(θ)` is the
closed form `∇θG + J*ᵀ∇ₓG` of `problems.bilevel`. JAXopt reaches the same number another way:
`implicit_diff.custom_root` on the optimality condition `∇ₓF(x, θ) = 0` makes `x*(θ)`
differentiable, and reverse mode through `G(x*(θ), θ)` solves the adjoint system `H u = ∇ₓG`
by conjugate gradients (`linear_solve.solve_cg`), then returns `∇θG − Cᵀu`. Only `F`, `G` and
`x*` are shared; the linear algebra, the solve and the chain rule are JAXopt's.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_relative_close, relative_error
from jax.flatten_util import ravel_pytree

import derivatives
from problems import bilevel

# JAXopt warns on import that it is no longer maintained; its implicit differentiation is
# still the reference this file compares with, so that one warning is silenced here only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="JAXopt is no longer maintained", category=DeprecationWarning)
    from jaxopt import implicit_diff, linear_solve

CG_TOLERANCE = 1e-10
ROUNDING = 1e-13  # relative, for the float64 arithmetic of both sides

# The ridge problems have d = 12 and feature scales spread by 10 (κ ≈ 7–8 at the θ tested), so
# that CG stops on its tolerance rather than finishing exactly after d iterations; the cleaning
# problems (d = 8, p = 60, κ ≈ 2) converge to rounding within d iterations.


def ridge():
    return bilevel.ridge_validation(100, 60, 12, conditioning=10.0, seed=0)


def per_feature_ridge():
    return bilevel.ridge_validation(100, 60, 12, per_feature=True, conditioning=10.0, seed=1)


def cleaning_squared():
    return bilevel.hyper_cleaning(60, 40, 8, seed=2)


def cleaning_logistic():
    return bilevel.hyper_cleaning(60, 40, 8, loss="logistic", seed=3)


FAMILIES = [ridge, per_feature_ridge, cleaning_squared, cleaning_logistic]


def away_from_theta0(problem):
    """A θ with distinct entries, away from θ₀: the ridge penalties (which must stay > 0) are θ₀
    scaled entrywise by exp(N(0, ½²)), the sample weights' logits are θ₀ + N(0, 1)."""
    noise = jax.random.normal(jax.random.key(7), (problem.param_dim,))
    if problem.name.startswith("ridge_validation"):
        return problem.theta0 * jnp.exp(0.5 * noise)
    return problem.theta0 + noise


def jaxopt_hypergradient(problem, theta, tol=CG_TOLERANCE, maxiter=None):
    """`∇θ[G(x*(θ), θ)]` by JAXopt: `x*` from the problem (exact), its derivative from the
    optimality condition alone, the adjoint by CG stopped at relative residual `tol` (or after
    `maxiter` iterations, default 10·d). θ may be a pytree: F and G read it flattened."""
    maxiter = 10 * problem.dim if maxiter is None else maxiter
    return _jaxopt_hypergradient(problem, theta, jnp.float64(tol), jnp.int32(maxiter))


@jax.jit  # one program per problem shape and θ structure, whatever the tolerance and iteration cap
def _jaxopt_hypergradient(problem, theta, tol, maxiter):
    def optimality(x, t):
        return jax.grad(problem.inner.objective)(x, ravel_pytree(t)[0])

    def solve(matvec, b):
        return linear_solve.solve_cg(matvec, b, tol=tol, maxiter=maxiter)

    @implicit_diff.custom_root(optimality, solve=solve)
    def solver(x_init, t):
        return problem.inner.solution(ravel_pytree(t)[0])  # exact; the derivative comes from `optimality`

    return jax.grad(lambda t: problem.outer(solver(jnp.zeros(problem.dim), t), ravel_pytree(t)[0]))(theta)


def reverse_cg_bound(problem, theta, tol=CG_TOLERANCE):
    """`(κ, bound)`: the relative error that a CG adjoint stopped at relative residual `tol`
    may leave in the hypergradient, from dense H, C and u* = H⁻¹∇ₓG at x*(θ).

    A residual r with ‖r‖ ≤ tol·‖∇ₓG‖ = tol·‖H u*‖ ≤ tol·λ_max‖u*‖ leaves Δu = H⁻¹r with
    ‖Δu‖ ≤ κ·tol·‖u*‖, and Δh = −CᵀΔu, so ‖Δh‖ ≤ ‖C‖₂·κ·tol·‖u*‖; relative to ‖h‖, plus
    `ROUNDING` for the arithmetic of both sides."""
    hessian, cross, outer_x = (np.asarray(a) for a in dense_pieces(problem, theta))
    exact = np.asarray(problem.hypergradient(theta))
    adjoint = np.linalg.solve(hessian, outer_x)
    eigenvalues = np.linalg.eigvalsh(hessian)
    kappa = eigenvalues[-1] / eigenvalues[0]
    bound = np.linalg.norm(cross, 2) * kappa * tol * np.linalg.norm(adjoint) / np.linalg.norm(exact) + ROUNDING
    return float(kappa), float(bound)


@jax.jit
def dense_pieces(problem, theta):
    """H = ∇²ₓₓF, C = ∇²ₓθF and ∇ₓG at x*(θ), as dense arrays."""
    x_star = problem.inner.solution(theta)
    hessian = jax.hessian(problem.inner.objective)(x_star, theta)
    cross = jax.jacfwd(jax.grad(problem.inner.objective), argnums=1)(x_star, theta)
    outer_x, _ = problem.outer_gradients(x_star, theta)
    return hessian, cross, outer_x


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.__name__)
def test_implicit_hypergradient_agrees_with_the_closed_form(family):
    """The dense implicit solve and the closed form `∇θG + J*ᵀ∇ₓG` (the inner problem's exact
    Jacobian) are two exact routes to one number: they agree to 1e-10, rounding at κ ≲ 10."""
    problem = family()
    theta = away_from_theta0(problem)
    implicit = derivatives.hypergradient(problem, theta, method="implicit")
    assert implicit.shape == (problem.param_dim,) and implicit.dtype == jnp.float64
    assert_relative_close(implicit, problem.hypergradient(theta), 1e-10, "implicit vs closed form")


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.__name__)
def test_jaxopt_implicit_differentiation_agrees_with_the_implicit_hypergradient(family):
    """JAXopt's `custom_root` under `jax.grad`, CG stopped at relative residual `CG_TOLERANCE`
    = 1e-10, against the dense implicit hypergradient, within the bound of `reverse_cg_bound`:
    ‖Δh‖/‖h‖ ≤ ‖C‖₂·κ·tol·‖u*‖/‖h‖ + 1e-13 (reverse mode: the adjoint solve H u = ∇ₓG is the
    only approximation; x* is exact on both sides). The bound stays below 1e-8, so the check
    is tight enough that a solve stopped early fails it (the next test)."""
    problem = family()
    theta = away_from_theta0(problem)
    kappa, bound = reverse_cg_bound(problem, theta)
    peer = jaxopt_hypergradient(problem, theta)
    implicit = derivatives.hypergradient(problem, theta, method="implicit")
    assert peer.shape == implicit.shape == (problem.param_dim,)
    assert bound < 1e-8, f"κ = {kappa:.3g} makes the bound {bound:.2e} too loose to test anything"
    assert_relative_close(peer, implicit, bound, f"JAXopt vs implicit (κ = {kappa:.3g})")
    assert_relative_close(peer, problem.hypergradient(theta), bound, f"JAXopt vs closed form (κ = {kappa:.3g})")


def test_jaxopt_with_truncated_conjugate_gradients_fails_the_same_comparison():
    """Negative control: the comparison above can fail. On the per-feature ridge (d = 12,
    feature scales spread by 10, κ ≈ 8, so the adjoint's spectrum is spread and 2 CG
    iterations cannot resolve it), JAXopt's CG capped at 2 iterations with a tolerance of
    1e-30 (never met) misses the implicit hypergradient by far more than the bound that its
    converged solve meets on the same problem at the same θ."""
    problem = per_feature_ridge()
    theta = away_from_theta0(problem)
    kappa, bound = reverse_cg_bound(problem, theta)
    implicit = derivatives.hypergradient(problem, theta, method="implicit")
    assert problem.dim >= 10 and kappa > 5.0, f"d = {problem.dim}, κ = {kappa:.3g}: spectrum not spread"
    converged = jaxopt_hypergradient(problem, theta)
    truncated = jaxopt_hypergradient(problem, theta, tol=1e-30, maxiter=2)
    assert_relative_close(converged, implicit, bound, "converged JAXopt vs implicit")
    assert relative_error(truncated, implicit) > 1e4 * bound
    with pytest.raises(AssertionError, match="relative error"):
        assert_relative_close(truncated, implicit, bound, "truncated JAXopt vs implicit")


def test_jaxopt_and_the_toolkit_with_a_dict_theta_agree_with_their_flat_results():
    """A dict θ {"first": θ[:k], "rest": θ[k:]} (JAX's key order is the flat order): the
    toolkit's implicit hypergradient comes back in θ's structure, bit-identical to the flat one
    (the same compiled program on the same flat input); JAXopt, differentiating the dict itself
    (F and G read it flattened), returns the same structure, equal to its own flat result to
    rounding and to the toolkit's within the CG bound of the tests above."""
    problem = per_feature_ridge()
    flat = away_from_theta0(problem)
    k = 5
    theta = {"first": flat[:k], "rest": flat[k:]}
    _, bound = reverse_cg_bound(problem, flat)

    toolkit = derivatives.hypergradient(problem, theta, method="implicit")
    peer = jaxopt_hypergradient(problem, theta)
    toolkit_flat = derivatives.hypergradient(problem, flat, method="implicit")
    peer_flat = jaxopt_hypergradient(problem, flat)

    for tree, name in ((toolkit, "toolkit"), (peer, "JAXopt")):
        assert jax.tree.structure(tree) == jax.tree.structure(theta), name
        assert tree["first"].shape == (k,) and tree["rest"].shape == (problem.dim - k,), name
        assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(tree)), name
    assert np.array_equal(ravel_pytree(toolkit)[0], toolkit_flat)
    assert_relative_close(ravel_pytree(peer)[0], peer_flat, ROUNDING, "JAXopt dict vs JAXopt flat")
    assert_relative_close(ravel_pytree(peer)[0], ravel_pytree(toolkit)[0], bound, "JAXopt vs toolkit, dict θ")

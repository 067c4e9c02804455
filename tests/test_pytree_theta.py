"""θ as a pytree at the public boundary of `derivatives.unrolled` and `derivatives.implicit_jacobian`,
and JAXopt's implicit differentiation as an independent peer of `implicit_jacobian`.

A pytree θ is flattened in JAX's order (`jax.flatten_util.ravel_pytree`) and the computation runs
on the flat vector, so a pytree and its flattened array give bit-identical numbers in eager calls
(the same compiled program on the same float64 input; the Jacobian's leaves are slices of its
columns). The Jacobian comes back in θ's structure, each leaf of shape `(d, *leaf.shape)`: the
convention of `jax.jacfwd` and `jax.jacrev`, checked against both.
"""

import collections
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_relative_close
from jax.flatten_util import ravel_pytree

import derivatives
import problems
from problems.pytrees import is_flat_theta, keep_flat, ravel_theta, unravel_jacobian

# JAXopt warns on import that it is no longer maintained; its implicit differentiation is
# still the reference this file compares with, so that one warning is silenced here only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="JAXopt is no longer maintained", category=DeprecationWarning)
    from jaxopt import implicit_diff, linear_solve

SETTINGS = dict(step_size=0.02, num_steps=30, batch_size=2)


def least_squares():
    return problems.least_squares(40, 4, param_dim=5, seed=3)


def as_dict(flat):
    """A dict θ over the 5 entries of `flat`, given in reverse key order: JAX sorts the keys,
    so the flattened order is a (0), w (1, 2), z (3, 4) whatever the insertion order."""
    return {"z": flat[3:].reshape(2, 1), "w": flat[1:3], "a": flat[0]}


def as_nested(flat):
    """A nested tuple/list/dict θ over the 5 entries of `flat`, flattened in the same order."""
    return (flat[0], [flat[1:3], {"c": flat[3:].reshape(1, 2)}])


def flat_theta():
    return jnp.array([0.7, 1.3, -0.4, 2.0, 0.9])


def same_structure_and_values(tree, expected, exact=True, rtol=0.0, what="Jacobian"):
    assert jax.tree.structure(tree) == jax.tree.structure(expected), what
    for path, leaf, reference in zip(jax.tree_util.tree_flatten_with_path(tree)[0],
                                     jax.tree.leaves(tree), jax.tree.leaves(expected)):
        where = f"{what}{jax.tree_util.keystr(path[0])}"
        assert leaf.shape == reference.shape, where
        assert leaf.dtype == jnp.float64, where
        if exact:
            assert np.array_equal(leaf, reference), where
        else:
            assert_relative_close(leaf, reference, rtol, where)


def columns_in_structure(jac, structure_of):
    """The `(d, p)` Jacobian's columns arranged like `structure_of(flat)`, each leaf `(d, *shape)`:
    `structure_of` applied to every row."""
    return jax.vmap(structure_of)(jac)


# --- the conversion itself ----------------------------------------------------------


def test_arrays_scalars_and_lists_of_numbers_pass_through_unchanged():
    for theta in (jnp.ones(3), np.ones(2), [0.1, 0.2], (0.5,), [jnp.array(0.1), 0.2], [[0.1, 0.2]], 1.0, []):
        assert is_flat_theta(theta)
        flat, unravel = ravel_theta(theta, 2)
        assert flat is theta and unravel is keep_flat
    jac = jnp.ones((4, 2))
    assert unravel_jacobian(jac, keep_flat) is jac


def test_a_pytree_is_flattened_in_jax_order_and_unravelled_back():
    flat = flat_theta()
    for theta in (as_dict(flat), as_nested(flat), [flat[:2], flat[2:]]):
        assert not is_flat_theta(theta)
        raveled, unravel = ravel_theta(theta, 5)
        assert raveled.dtype == jnp.float64 and np.array_equal(raveled, flat)
        assert np.array_equal(raveled, ravel_pytree(theta)[0])
        # A gradient of shape (p,) goes back to θ's structure with `unravel`.
        same_structure_and_values(unravel(raveled), theta, what="unravel")
    assert list(ravel_theta(as_dict(flat))[1](flat)) == ["a", "w", "z"]


def test_integer_and_boolean_leaves_become_float64():
    raveled, unravel = ravel_theta({"n": 2, "flag": True, "w": np.array([1, 3], np.int32)})
    assert raveled.dtype == jnp.float64 and np.array_equal(raveled, [1.0, 2.0, 1.0, 3.0])
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(unravel(raveled)))
    problem = problems.ridge(20, 3, seed=1)
    assert np.array_equal(derivatives.implicit_jacobian(problem, {"lambda": 1})["lambda"],
                          derivatives.implicit_jacobian(problem, jnp.array([1.0]))[:, 0])


# --- unrolled and implicit_jacobian: same numbers, documented structure --------------


@pytest.mark.parametrize("mode", derivatives.MODES)
def test_unrolled_pytree_theta_is_bit_identical_to_its_flattened_array(mode):
    problem, flat, key = least_squares(), flat_theta(), jax.random.key(2)
    x_flat, jac_flat = derivatives.unrolled(problem, flat, key, mode=mode, **SETTINGS)
    for structure_of in (as_dict, as_nested):
        x, jac = derivatives.unrolled(problem, structure_of(flat), key, mode=mode, **SETTINGS)
        assert np.array_equal(x, x_flat)
        same_structure_and_values(jac, columns_in_structure(jac_flat, structure_of), what=f"J_K {mode}")


def test_implicit_jacobian_pytree_theta_is_bit_identical_to_its_flattened_array():
    problem, flat = least_squares(), flat_theta()
    jac_flat = derivatives.implicit_jacobian(problem, flat)
    for structure_of in (as_dict, as_nested):
        jac = derivatives.implicit_jacobian(problem, structure_of(flat))
        same_structure_and_values(jac, columns_in_structure(jac_flat, structure_of))


def test_the_jacobian_has_jacfwd_and_jacrev_structure():
    """`jax.jacfwd`/`jax.jacrev` of the x-part over the pytree θ: the same structure and, up to
    the rounding of differentiating the x-part again (1e-12 relative), the same numbers."""
    problem, key = least_squares(), jax.random.key(2)
    theta = as_dict(flat_theta())
    _, jac = derivatives.unrolled(problem, theta, key, **SETTINGS)
    final_iterate = jax.jacfwd(lambda t: derivatives.unrolled(problem, t, key, **SETTINGS)[0])(theta)
    same_structure_and_values(jac, final_iterate, exact=False, rtol=1e-12, what="J_K vs jacfwd")

    def solution(t):
        return problem.solution(ravel_pytree(t)[0])

    for transform in (jax.jacfwd, jax.jacrev):
        same_structure_and_values(derivatives.implicit_jacobian(problem, theta), transform(solution)(theta),
                                  exact=False, rtol=1e-12, what=f"implicit vs {transform.__name__}")


def test_pytree_theta_under_jit_and_vmap():
    """Under an outer `jit` the flattening is compiled into the caller's program, which XLA
    may fuse differently: agreement with the eager flat call to 1e-14 relative."""
    problem, key = least_squares(), jax.random.key(2)
    scales = jnp.array([0.5, 1.0, 2.0])
    batched = jax.vmap(lambda s: as_dict(s * flat_theta()))(scales)
    assert batched["w"].shape == (3, 2)

    jitted = jax.jit(lambda t: derivatives.unrolled(problem, t, key, **SETTINGS))
    over_thetas = jax.jit(jax.vmap(lambda t: derivatives.unrolled(problem, t, key, **SETTINGS)))(batched)
    implicit = jax.jit(jax.vmap(lambda t: derivatives.implicit_jacobian(problem, t)))(batched)
    for i, scale in enumerate(scales):
        flat = scale * flat_theta()
        x_flat, jac_flat = derivatives.unrolled(problem, flat, key, **SETTINGS)
        expected = columns_in_structure(jac_flat, as_dict)
        x, jac = jitted(as_dict(flat))
        assert_relative_close(x, x_flat, 1e-14, "jit x_K")
        same_structure_and_values(jac, expected, exact=False, rtol=1e-14, what="jit J_K")
        assert_relative_close(over_thetas[0][i], x_flat, 1e-14, "vmap x_K")
        same_structure_and_values(jax.tree.map(lambda leaf, i=i: leaf[i], over_thetas[1]), expected,
                                  exact=False, rtol=1e-14, what="vmap J_K")
        same_structure_and_values(jax.tree.map(lambda leaf, i=i: leaf[i], implicit),
                                  columns_in_structure(derivatives.implicit_jacobian(problem, flat), as_dict),
                                  exact=False, rtol=1e-14, what="vmap implicit")


# --- errors --------------------------------------------------------------------------


def test_a_pytree_of_the_wrong_size_names_theta():
    problem = least_squares()
    wrong = {"a": jnp.ones(2), "w": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"theta must hold 5 entries .* got a pytree with 4"):
        derivatives.unrolled(problem, wrong, jax.random.key(0), **SETTINGS)
    with pytest.raises(ValueError, match=r"theta must hold 5 entries"):
        derivatives.implicit_jacobian(problem, wrong)


def test_an_empty_pytree_is_refused():
    problem = least_squares()
    for empty in ({}, {"a": None}, collections.namedtuple("Empty", [])()):
        with pytest.raises(ValueError, match=r"theta must be .* got a pytree without leaves"):
            derivatives.implicit_jacobian(problem, empty)
        with pytest.raises(ValueError, match="pytree without leaves"):
            derivatives.unrolled(problem, empty, jax.random.key(0), **SETTINGS)


def test_a_non_numeric_leaf_is_refused_with_its_path():
    problem = least_squares()
    with pytest.raises(TypeError, match=r"theta\['name'\] must be a real number or array"):
        derivatives.implicit_jacobian(problem, {"name": "ridge", "w": jnp.ones(4)})
    with pytest.raises(TypeError, match=r"theta\[1\] must be a real number or array, got an array of dtype complex"):
        derivatives.unrolled(problem, [jnp.ones(3), jnp.ones(2, jnp.complex128)], jax.random.key(0), **SETTINGS)
    with pytest.raises(TypeError, match=r"theta\['key'\] must be a real number or array, got an array of dtype key"):
        derivatives.implicit_jacobian(problem, {"key": jax.random.key(0), "w": jnp.ones(4)})


def test_values_of_a_pytree_are_checked_like_those_of_an_array():
    problem = problems.ridge(20, 3, seed=1)
    with pytest.raises(ValueError, match="theta must be finite"):
        derivatives.implicit_jacobian(problem, {"lambda": jnp.nan})
    with pytest.raises(ValueError, match=r"theta must have shape \(1,\) for this problem, got shape \(2,\)"):
        derivatives.implicit_jacobian(problem, [0.1, 0.2])  # a list of numbers is still an array


# --- JAXopt's implicit differentiation as a peer ---------------------------------------

CG_TOLERANCE = 1e-10


def jaxopt_problems():
    """d = 20 and feature scales spread by 10, so that CG stops on its tolerance rather than
    finishing exactly after d iterations."""
    return [
        problems.ridge(200, 20, conditioning=10.0, seed=0),
        problems.weighted_ridge(200, 20, conditioning=10.0, seed=1),
        problems.logistic(200, 20, conditioning=10.0, seed=2),
        problems.least_squares(200, 20, param_dim=3, conditioning=10.0, seed=3),
    ]


@pytest.mark.parametrize("problem", jaxopt_problems(), ids=lambda problem: problem.name)
def test_jaxopt_implicit_differentiation_agrees_with_implicit_jacobian_and_the_closed_form(problem):
    """∂θ x* by JAXopt on the optimality condition ∇ₓF(x, θ) = 0, with conjugate gradients
    stopped at a relative residual of `CG_TOLERANCE` = 1e-10, forward (`root_jvp`, one tangent per
    θ-entry) and reverse (`custom_root` under `jax.jacrev`, one cotangent per x-entry).

    Bounds, with H = ∇²ₓₓF(x*) of condition number κ and C = ∇²ₓθF: a residual r of relative
    size ≤ tol leaves an error H⁻¹r, so forward each column of J is off by ≤ κ·tol of its
    norm, and ‖ΔJ‖_F ≤ κ·tol·‖J‖_F; reverse each row uᵢᵀC with H uᵢ = eᵢ is off by
    ≤ κ·tol·‖uᵢ‖·‖C‖₂, so ‖ΔJ‖_F ≤ κ·tol·‖H⁻¹‖_F·‖C‖₂. Both plus 1e-13 for rounding.
    `implicit_jacobian` (a direct solve) and the closed form agree to 1e-12."""
    theta = problem.theta0
    x_star = problem.solution(theta)

    def optimality(x, t):
        return jax.grad(problem.objective)(x, t)

    def solve(matvec, b):
        return linear_solve.solve_cg(matvec, b, tol=CG_TOLERANCE, maxiter=10 * problem.dim)

    @implicit_diff.custom_root(optimality, solve=solve)
    def solver(x_init, t):
        return problem.solution(t)  # exact; the derivative comes from the optimality condition alone

    forward = jax.vmap(lambda e: implicit_diff.root_jvp(optimality, x_star, (theta,), (e,), solve=solve),
                       out_axes=1)(jnp.eye(problem.param_dim))
    reverse = jax.jacrev(solver, argnums=1)(jnp.zeros(problem.dim), theta)
    implicit, closed_form = derivatives.implicit_jacobian(problem, theta), problem.solution_jacobian(theta)

    hessian = jax.hessian(problem.objective)(x_star, theta)
    cross = jax.jacfwd(jax.grad(problem.objective), argnums=1)(x_star, theta)
    eigenvalues = np.linalg.eigvalsh(np.asarray(hessian))
    kappa = eigenvalues[-1] / eigenvalues[0]
    forward_bound = kappa * CG_TOLERANCE + 1e-13
    reverse_bound = (kappa * CG_TOLERANCE * np.linalg.norm(np.linalg.inv(hessian)) * np.linalg.norm(cross, 2)
                     / np.linalg.norm(closed_form) + 1e-13)

    assert forward.shape == reverse.shape == closed_form.shape == (problem.dim, problem.param_dim)
    assert_relative_close(implicit, closed_form, 1e-12, "implicit_jacobian vs closed form")
    for reference, name in ((closed_form, "closed form"), (implicit, "implicit_jacobian")):
        assert_relative_close(forward, reference, forward_bound, f"JAXopt root_jvp vs {name}")
        assert_relative_close(reverse, reference, reverse_bound, f"JAXopt custom_root (reverse) vs {name}")


def test_jaxopt_with_a_dict_theta_returns_the_structure_of_implicit_jacobian():
    """JAXopt differentiates the pytree θ itself (x* reads it flattened): its `jax.jacrev`
    Jacobian has the structure of `implicit_jacobian`'s for the same dict, and the numbers to
    the CG bound of the test above (here 1e-8, well above κ·tol for this problem)."""
    problem = problems.least_squares(200, 20, param_dim=3, conditioning=10.0, seed=3)
    theta = {"scale": problem.theta0[0], "shift": problem.theta0[1:]}

    def optimality(x, t):
        return jax.grad(problem.objective)(x, ravel_pytree(t)[0])

    def solve(matvec, b):
        return linear_solve.solve_cg(matvec, b, tol=CG_TOLERANCE, maxiter=10 * problem.dim)

    @implicit_diff.custom_root(optimality, solve=solve)
    def solver(x_init, t):
        return problem.solution(ravel_pytree(t)[0])

    reverse = jax.jacrev(solver, argnums=1)(jnp.zeros(problem.dim), theta)
    implicit = derivatives.implicit_jacobian(problem, theta)
    same_structure_and_values(reverse, implicit, exact=False, rtol=1e-8, what="JAXopt vs implicit_jacobian")
    assert implicit["scale"].shape == (20,) and implicit["shift"].shape == (20, 2)

"""`chebyshev_conjugate_gradient`: the certificate verifies and rejects each mutant at the step
it falsifies; its expressions agree with numpy's Chebyshev polynomials and with the bound
`rates` evaluates; and conjugate gradients, run on drawn SPD matrices, stay within the
certified bound `2ρ^k` while the mutated bounds `ρ^k` and `2ρ^(2k)` are violated."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import proofs_check
from derivatives.hypergradients import conjugate_gradient
from proofs_check import hypergradient as hg
from rates.hypergradients import AdjointConstants, conjugate_gradient_bound

CERTIFICATE = hg.CHEBYSHEV_CONJUGATE_GRADIENT

REJECTED_BY = {
    "gradient-descent rate rho = (kappa - 1)/(kappa + 1)": ["_rate_from_condition_number"],
    "factor 2 dropped: bound rho^k": ["_factor_two"],
    "rho squared: bound 2 rho^(2k)": ["_factor_two"],
    "w = z + sqrt(z^2 + 1)": ["_chebyshev_recurrence", "_rate_from_condition_number"],
    "w = z - sqrt(z^2 - 1), the other root (= rho, not 1/rho)": ["_rate_from_condition_number"],
    "argument (2 lambda - L - mu)/(L - mu): p(0) = (-1)^k": ["_shifted_argument"],
    "T_k(cos phi) = cos(phi)^k": ["_bounded_on_the_interval"],
    "1/sqrt(L) in place of 1/sqrt(mu)": ["_energy_to_euclidean"],
}


def test_certificate_is_registered_and_verifies():
    assert CERTIFICATE in proofs_check.CERTIFICATES
    verification = CERTIFICATE.verify()
    assert verification.passed
    assert verification.controls_rejected == len(REJECTED_BY)
    assert verification.seconds < 10


def test_each_mutant_is_rejected_at_the_step_it_falsifies():
    assert all(step(CERTIFICATE.claim) for step in CERTIFICATE.steps)
    assert {description for description, _ in CERTIFICATE.mutants} == set(REJECTED_BY)
    for description, mutant in CERTIFICATE.mutants:
        failing = [step.__name__ for step in CERTIFICATE.steps if not step(mutant)]
        assert failing == REJECTED_BY[description], description


def _chebyshev(claim):
    """`T_k(z)` of the claim's closed form, as a numpy function of (z, k)."""
    return sp.lambdify((hg.z, hg.k), claim["chebyshev"].subs(hg.w, claim["w"]), modules="numpy")


def test_closed_form_and_cosine_form_are_numpys_chebyshev_polynomials():
    chebyshev = _chebyshev(CERTIFICATE.claim)
    on_interval = sp.lambdify((hg.phi, hg.k), CERTIFICATE.claim["on_interval"], modules="numpy")
    points = np.array([1.0, 1.01, 11 / 9, 1.5, 3.0, 10.0])
    angles = np.linspace(0.0, np.pi, 13)
    for degree in range(21):
        coefficients = np.eye(degree + 1)[degree]
        expected = np.polynomial.chebyshev.chebval(points, coefficients)
        np.testing.assert_allclose(chebyshev(points, float(degree)), expected, rtol=1e-11)
        np.testing.assert_allclose(on_interval(angles, float(degree)),
                                   np.polynomial.chebyshev.chebval(np.cos(angles), coefficients), atol=1e-11)
    # the other root gives the same T_k (T_k is symmetric in w <-> 1/w): that mutant is rejected for its
    # false intermediate claim w = 1/rho (step 4), not for a false T_k
    other = dict(CERTIFICATE.mutants)["w = z - sqrt(z^2 - 1), the other root (= rho, not 1/rho)"]
    np.testing.assert_allclose(_chebyshev(other)(points, 7.0), chebyshev(points, 7.0), rtol=1e-11)


def test_one_over_chebyshev_at_z_is_within_the_bound_and_the_mutated_bounds_are_not():
    claim = CERTIFICATE.claim
    chebyshev = _chebyshev(claim)
    z_of = sp.lambdify(hg.kappa, claim["z"], modules="numpy")
    rho_of = sp.lambdify(hg.kappa, claim["rho"], modules="numpy")
    mutants = dict(CERTIFICATE.mutants)
    bounds = {name: sp.lambdify((hg.rho, hg.k), c["bound"], modules="numpy")
              for name, c in [("claim", claim), ("factor 2 dropped", mutants["factor 2 dropped: bound rho^k"]),
                              ("rho squared", mutants["rho squared: bound 2 rho^(2k)"])]}
    ks = np.arange(0.0, 301.0)  # w^k stays finite at κ = 1.5; 2ρ^(2k) is passed by k ≈ 62 at κ = 1e5
    for kappa in (1.5, 10.0, 100.0, 1000.0, 1e5):
        inverse = 1 / chebyshev(z_of(kappa), ks)
        rho = rho_of(kappa)
        np.testing.assert_allclose(inverse, 2 / (rho**-ks + rho**ks), rtol=1e-9)
        assert np.all(inverse <= bounds["claim"](rho, ks) * (1 + 1e-12))
        assert np.any(inverse > bounds["factor 2 dropped"](rho, ks))
        assert np.any(inverse > bounds["rho squared"](rho, ks))


def test_certified_expression_is_the_bound_rates_evaluates():
    expression = sp.lambdify((hg.cross_norm, hg.adjoint_energy_norm, hg.mu, hg.L, hg.k),
                             hg.conjugate_gradient_bound_expression(), modules="numpy")
    ks = np.arange(0, 41)
    for constants in (AdjointConstants(1.3, 0.0, 2.5, 0.1, 1.0), AdjointConstants(0.7, 0.0, 0.4, 2.0, 2000.0)):
        np.testing.assert_allclose(
            expression(constants.cross_norm, constants.adjoint_energy_norm, constants.mu, constants.L, ks),
            conjugate_gradient_bound(constants, ks), rtol=1e-12)


DIMENSION = 30


def _problem(seed, kappa, spectrum):
    """A d × d SPD matrix with spectrum in [1, κ] (both ends included) in a random orthonormal
    eigenbasis, a random right side and cross derivative. `uniform`: the interior eigenvalues
    uniform; `chebyshev`: at the extrema of T_{d−1} mapped to [1, κ], where CG is slowest."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(DIMENSION, DIMENSION)))
    if spectrum == "uniform":
        eigenvalues = np.concatenate([[1.0, kappa], rng.uniform(1.0, kappa, size=DIMENSION - 2)])
    else:
        eigenvalues = (kappa + 1) / 2 - (kappa - 1) / 2 * np.cos(np.pi * np.arange(DIMENSION) / (DIMENSION - 1))
    matrix = (basis * eigenvalues) @ basis.T
    return (matrix + matrix.T) / 2, rng.normal(size=DIMENSION), rng.normal(size=(DIMENSION, 4))


def _conjugate_gradient_errors(matrix, right_side):
    """`v_k − v*` for k = 0 … d, by the project's `conjugate_gradient` from 0."""
    operator_matrix, b = jnp.asarray(matrix), jnp.asarray(right_side)
    counts = jnp.arange(DIMENSION + 1, dtype=jnp.int64)
    iterates = jax.jit(jax.vmap(lambda n: conjugate_gradient(lambda v: operator_matrix @ v, b, n)))(counts)
    return np.asarray(iterates) - np.linalg.solve(matrix, right_side)


def _energy_norms(matrix, errors):
    return np.sqrt(np.einsum("ki,ij,kj->k", errors, matrix, errors))


CASES = [(seed, kappa, spectrum) for spectrum in ("uniform", "chebyshev")
         for seed, kappa in ((0, 10.0), (1, 100.0), (2, 1000.0))]


@pytest.mark.parametrize(("seed", "kappa", "spectrum"), CASES)
def test_conjugate_gradients_stay_within_the_certified_bound(seed, kappa, spectrum):
    matrix, right_side, cross = _problem(seed, kappa, spectrum)
    errors = _conjugate_gradient_errors(matrix, right_side)
    energy = _energy_norms(matrix, errors)
    ks = np.arange(DIMENSION + 1)
    rho = float(CERTIFICATE.claim["rho"].subs(hg.kappa, kappa))
    bound = sp.lambdify((hg.rho, hg.k), CERTIFICATE.claim["bound"], modules="numpy")
    assert energy[0] == pytest.approx(np.sqrt(right_side @ np.linalg.solve(matrix, right_side)), rel=1e-12)
    assert np.all(energy <= bound(rho, ks) * energy[0] * (1 + 1e-9))
    assert energy[-1] <= 1e-10 * energy[0]  # exact at k = d, up to rounding
    # and the hypergradient error ‖Cᵀ(v_k − v*)‖ within the certified expression
    hypergradient_bound = sp.lambdify((hg.cross_norm, hg.adjoint_energy_norm, hg.mu, hg.L, hg.k),
                                      hg.conjugate_gradient_bound_expression(), modules="numpy")
    measured = np.linalg.norm(errors @ cross, axis=1)
    assert np.all(measured <= hypergradient_bound(np.linalg.norm(cross, 2), energy[0], 1.0, kappa, ks) * (1 + 1e-9))


@pytest.mark.parametrize(("seed", "kappa"), [(seed, kappa) for seed, kappa, spectrum in CASES
                                             if spectrum == "chebyshev"])
def test_the_check_can_fail_mutated_bounds_are_violated_by_conjugate_gradients(seed, kappa):
    """On Chebyshev-point spectra CG follows the Chebyshev rate closely: the certificate's mutants
    `ρ^k` (factor 2 dropped) and `2ρ^(2k)` (ρ squared) are violated at some k ≤ d; the
    gradient-descent rate `2((κ − 1)/(κ + 1))^k` is looser and holds (that mutant is rejected
    for its false step `w = 1/ρ`, not for a violated bound)."""
    matrix, right_side, _ = _problem(seed, kappa, "chebyshev")
    ratio = (lambda e: e / e[0])(_energy_norms(matrix, _conjugate_gradient_errors(matrix, right_side)))
    ks = np.arange(DIMENSION + 1)
    mutants = dict(CERTIFICATE.mutants)
    for description in ("factor 2 dropped: bound rho^k", "rho squared: bound 2 rho^(2k)"):
        mutant = mutants[description]
        rho = float(mutant["rho"].subs(hg.kappa, kappa))
        bound = sp.lambdify((hg.rho, hg.k), mutant["bound"], modules="numpy")(rho, ks)
        assert np.max(ratio / bound) > 1.2, description
    gradient_descent = mutants["gradient-descent rate rho = (kappa - 1)/(kappa + 1)"]
    rho = float(gradient_descent["rho"].subs(hg.kappa, kappa))
    assert np.all(ratio <= sp.lambdify((hg.rho, hg.k), gradient_descent["bound"], modules="numpy")(rho, ks))

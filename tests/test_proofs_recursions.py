"""The certified SGD bounds against the recursions they solve, iterated numerically.

docs/theory.md reduces minibatch SGD to two one-step inequalities,

    u_{k+1} ≤ (1 − α_kμ) u_k + 2α_k² σ²/b                                      (U)
    v_{k+1} ≤ (1 − α_kμ) v_k + 2α_k M √(v_k u_k) + 4α_k²(M² u_k + σ_J²/b),       (V)

and the constant-step Jacobian bound solves the linear recursion that Young's
inequality (`young_split`) makes of (V),

    v_{k+1} ≤ (1 − α_kμ/2) v_k + (2α_k/μ + 4α_k²) M² u_k + 4α_k² σ_J²/b.          (V')

Hypothesis draws admissible constants (μ ≤ L, α_k ≤ 1/(2L), aμ > 1 for decreasing
steps); the recursions are iterated with equality, the worst case they allow, and the
bounds are evaluated by `rates.bounds.sgd_bounds`, the function the rate report calls.
Each bound must dominate its recursion at every step, up to a relative 1e-9 for
rounding over at most 3000 steps and an absolute `UNDERFLOW` for values below the normal
floats. Everything is deterministic given the draw.

Negative checks: the mutants of each certificate, evaluated through
`proofs_check.sgd.bound_expression` on fixed constants, are exceeded by the recursion
they claim to bound, by a factor stated in each test. The exceptions are the log bound's
mutants that break one step of its proof without making the final bound false on these
constants (`LOG_MUTANTS_NOT_HERE`): the certificate rejects them step by step.
"""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import rates
from problems import Constants
from proofs_check import sgd
from rates.bounds import Bound

ROUNDING = 1e-9
# A relative tolerance holds only for normal floats (≥ 2.2e-308). Below them float64 keeps
# fewer significant bits, down to one at 5e-324, where (1 − αμ)·v rounds back to v for
# αμ < 1/2: a recursion iterated in float64 stalls at a few multiples of 5e-324 while the
# closed-form bound, computed another way, rounds to 0. Values get there from subnormal
# draws (an initial error or a noise level of 5e-324) and, with constant steps, which
# shrink the errors by up to 2^-3000, from any start. Every domination check therefore
# allows this absolute slack, far below any error a bound is meant to certify.
UNDERFLOW = 1e-300


def iterate(step_sizes, *, mu, sigma2, sigma2_jac, b, M, u0, v0):
    """(U), (V) and (V') iterated with equality; arrays of length K + 1."""
    K = len(step_sizes)
    u, v, v_split = (np.empty(K + 1) for _ in range(3))
    u[0], v[0], v_split[0] = u0, v0, v0
    for k, alpha in enumerate(step_sizes):
        u[k + 1] = (1 - alpha * mu) * u[k] + 2 * alpha**2 * sigma2 / b
        v[k + 1] = ((1 - alpha * mu) * v[k] + 2 * alpha * M * np.sqrt(v[k] * u[k])
                    + 4 * alpha**2 * (M**2 * u[k] + sigma2_jac / b))
        v_split[k + 1] = ((1 - alpha * mu / 2) * v_split[k] + (2 * alpha / mu + 4 * alpha**2) * M**2 * u[k]
                          + 4 * alpha**2 * sigma2_jac / b)
    return u, v, v_split


def constants(mu, L, sigma2, sigma2_jac, M):
    # M = L_H·‖J*‖_F + L_C with ‖J*‖_F = 1 and L_C = 0.
    return Constants(mu=mu, L=L, sigma2=sigma2, sigma2_jac=sigma2_jac, hessian_lipschitz=M, cross_lipschitz=0.0)


def evaluate(certificate, claim, **values):
    bound = Bound(certificate, sgd.bound_expression(certificate, claim))
    return bound(**{name: values[name] for name in bound.arguments})


def exceeds(measured, bound, factor):
    """Whether `measured > factor·bound` at some step."""
    return bool(np.any(measured > factor * bound))


mus = st.floats(0.05, 2.0)
condition_numbers = st.floats(1.0, 20.0)
noises = st.floats(0.0, 10.0)
couplings = st.floats(0.0, 5.0)
initial_errors = st.floats(0.0, 10.0)
batch_sizes = st.integers(1, 8)


@given(mus, condition_numbers, st.floats(0.01, 1.0), noises, noises, couplings, batch_sizes, initial_errors,
       initial_errors)
def test_constant_step_bounds_dominate_the_recursions(mu, kappa, fraction, sigma2, sigma2_jac, M, b, u0, v0):
    L = kappa * mu
    alpha = fraction / (2 * L)
    K = 3000
    u, v, v_split = iterate(np.full(K, alpha), mu=mu, sigma2=sigma2, sigma2_jac=sigma2_jac, b=b, M=M, u0=u0, v0=v0)
    bounds = rates.bounds.sgd_bounds(constants(mu, L, sigma2, sigma2_jac, M), rates.constant(alpha), batch_size=b,
                                     x0_error_sq=u0, jac0_error_sq=v0, jac_star_norm=1.0, steps=np.arange(K + 1))
    scale = 1 + u0 + v0 + sigma2 + sigma2_jac
    # The iterate bound and the Jacobian bound solve (U) and (V') exactly ...
    np.testing.assert_allclose(bounds.iterate.values, u, rtol=ROUNDING, atol=ROUNDING * scale)
    np.testing.assert_allclose(bounds.jacobian.values, v_split, rtol=ROUNDING,
                               atol=ROUNDING * scale * (1 + M**2) / mu**2)
    # ... and (V') dominates (V).
    assert np.all(v <= bounds.jacobian.values * (1 + ROUNDING) + ROUNDING * scale)


@given(mus, condition_numbers, st.floats(1.05, 4.0), st.floats(0.05, 1.0), noises, noises, couplings,
       batch_sizes, initial_errors, initial_errors)
# subnormal noise levels and initial errors: the recursions stall at 5e-324, the bounds round to 0
@example(0.5, 1.0, 2.0, 1.0, 5e-324, 0.0, 0.0, 1, 0.0, 0.0)
@example(1.0, 1.0, 2.0, 1.0, 0.0, 5e-324, 0.0, 1, 0.0, 0.0)
@example(1.0, 1.0, 1.05, 0.05, 0.0, 0.0, 0.0, 1, 5e-324, 5e-324)
def test_decreasing_step_bounds_dominate_the_recursions(mu, kappa, a_mu, fraction, sigma2, sigma2_jac, M, b, u0, v0):
    L = kappa * mu
    a = a_mu / mu
    k0 = 2 * a * L / fraction  # α₀ = a/k0 = fraction/(2L)
    K = 3000
    step_sizes = a / (np.arange(K) + k0)
    u, v, _ = iterate(step_sizes, mu=mu, sigma2=sigma2, sigma2_jac=sigma2_jac, b=b, M=M, u0=u0, v0=v0)
    bounds = rates.bounds.sgd_bounds(constants(mu, L, sigma2, sigma2_jac, M), rates.inverse_time(a, k0),
                                     batch_size=b, x0_error_sq=u0, jac0_error_sq=v0, jac_star_norm=1.0,
                                     steps=np.arange(K + 1))
    assert np.all(u <= bounds.iterate.values * (1 + ROUNDING) + UNDERFLOW)
    assert np.all(v <= bounds.jacobian.values * (1 + ROUNDING) + UNDERFLOW)
    for alternative in (e.values for e in bounds.jacobian_alternatives):
        assert np.all(v <= alternative * (1 + ROUNDING) + UNDERFLOW)


@given(mus, condition_numbers, st.floats(0.01, 1.0), couplings, st.floats(0.0, 10.0), batch_sizes, initial_errors,
       initial_errors)
# a subnormal initial error: (V) stalls at 5e-324, the envelope rounds to 0
@example(0.05, 1.0, 0.01, 0.0, 0.0, 1, 0.0, 5e-324)
# αμ = 0.49 from v0 = 1: (V) underflows to 5e-324 and stalls there, the envelope (rate 0.755) to 0
@example(1.0, 1.0, 0.98, 0.0, 0.0, 1, 0.0, 1.0)
@example(1.0, 1.0, 0.98, 1.0, 1.0, 1, 1.0, 10.0)
def test_interpolation_claims_hold_for_the_recursions(mu, kappa, fraction, M, sigma2_jac, b, u0, v0):
    L = kappa * mu
    alpha = fraction / (2 * L)
    K = 3000
    values = dict(alpha=alpha, mu=mu, M=M, u0=u0, v0=v0, b=float(b), sigma2_jac=sigma2_jac, k=np.arange(K + 1.0))
    claim = sgd.INTERPOLATION.claim
    # Double interpolation: (V) stays under the exponential envelope at rate ρ.
    u, v, _ = iterate(np.full(K, alpha), mu=mu, sigma2=0.0, sigma2_jac=0.0, b=b, M=M, u0=u0, v0=v0)
    envelope = Bound(sgd.INTERPOLATION, claim["envelope"])(
        **{n: values[n] for n in ("alpha", "mu", "M", "u0", "v0", "k")})
    np.testing.assert_allclose(u, u0 * (1 - alpha * mu) ** np.arange(K + 1), rtol=ROUNDING, atol=UNDERFLOW)
    assert np.all(v <= envelope * (1 + ROUNDING) + UNDERFLOW)
    # Simple interpolation: (V') tends to the floor, and (V) stays below it after the transient.
    _, v, v_split = iterate(np.full(K, alpha), mu=mu, sigma2=0.0, sigma2_jac=sigma2_jac, b=b, M=M, u0=u0, v0=v0)
    floor = float(Bound(sgd.INTERPOLATION, claim["floor"])(alpha=alpha, mu=mu, b=float(b), sigma2_jac=sigma2_jac))
    transient = Bound(sgd.CONSTANT_STEP_JACOBIAN, sgd.CONSTANT_JACOBIAN)(**{**values, "sigma2": 0.0}) - floor
    np.testing.assert_allclose(v_split - floor, transient, rtol=1e-7,
                               atol=ROUNDING * (1 + floor + u0 + v0) * (1 + M**2) / mu**2)


# --- negative checks: every mutant is exceeded by its recursion --------------------------

def _decreasing(mu, a, L, sigma2, sigma2_jac, M, K=100_000):
    k0 = 2 * a * L
    u, v, _ = iterate(a / (np.arange(K) + k0), mu=mu, sigma2=sigma2, sigma2_jac=sigma2_jac, b=1, M=M, u0=0.0, v0=0.0)
    values = dict(mu=mu, a=a, k0=k0, sigma2=sigma2, sigma2_jac=sigma2_jac, b=1.0, M=M, u0=0.0, v0=0.0,
                  k=np.arange(K + 1.0))
    values["C_u"] = float(evaluate(sgd.DECREASING_STEP_ITERATES, None, **{**values, "k": 0.0})) * k0
    return u, v, values


# (certificate, quantity, constants (μ, a, L, σ², σ_J², M), factor by which every mutant is exceeded)
DECREASING_CASES = [
    (sgd.DECREASING_STEP_ITERATES, "u", (1.0, 2.0, 1.0, 1.0, 1.0, 0.0), 1.9),
    (sgd.DECREASING_STEP_JACOBIAN, "v", (1.0, 2.0, 1.0, 1.0, 1.0, 0.5), 2.0),
    (sgd.DECREASING_STEP_JACOBIAN_LOG, "v", (1.0, 1.5, 1.0, 1.0, 0.01, 0.0), 1.1),
]


@pytest.mark.parametrize("certificate, quantity, case, factor", DECREASING_CASES, ids=lambda c: getattr(c, "name", ""))
def test_decreasing_step_mutants_are_exceeded_by_the_recursion(certificate, quantity, case, factor):
    u, v, values = _decreasing(*case)
    measured = {"u": u, "v": v}[quantity]
    assert not exceeds(measured, evaluate(certificate, None, **values), 1.0)
    for description, mutant in certificate.mutants:
        if description in LOG_MUTANTS_NOT_HERE:
            continue
        assert exceeds(measured, evaluate(certificate, mutant, **values), factor), description


# Mutants of `sgd_decreasing_jacobian_log` that this recursion (aμ = 1.5, u_k from (U), M = 0) cannot
# exceed: those of β and Γ are exceeded by the worst case aμ = 1, u_k = C_u/t below; the dropped condition
# leaves the bound unchanged and "half its first term" makes Σ_{j<k} 1/(j + k0) ≤ ℓ_k false (as k → ∞) but
# not, it seems, the bound, whose (1 + 1/k0)ℓ_k has slack: both are refuted link by link, by counterexamples
# in tests/test_proofs_check.py::test_log_certificate_mutants_are_false_and_rejected.
LOG_MUTANTS_NOT_HERE = {"condition a mu >= 1 dropped (a mu > 0 only)", "beta halved", "Gamma without (1 + 1/k0)",
                        "Gamma without the coupling M^2 C_u/k0", "harmonic sum with half its first term"}


def _log_worst_case(a, k0, C_u, M, sigma2_jac, K=100_000):
    """(V) with equality at aμ = 1 (the log bound's condition, at its edge), u_k = C_u/(k + k0) (its
    hypothesis, with equality), v0 = 0, b = 1."""
    v = np.empty(K + 1)
    v[0] = 0.0
    for k in range(K):
        t = k + k0
        alpha = a / t
        v[k + 1] = ((1 - 1 / t) * v[k] + 2 * alpha * M * np.sqrt(v[k] * C_u / t)
                    + 4 * alpha**2 * (M**2 * C_u / t + sigma2_jac))
    return v, dict(a=a, k0=k0, C_u=C_u, M=M, sigma2_jac=sigma2_jac, b=1.0, v0=0.0, k=np.arange(K + 1.0))


# (a, k0, C_u, M, σ_J²) -> {mutant: factor by which the worst case exceeds it}
LOG_WORST_CASES = {
    (1.0, 10.0, 1.0, 1.0, 0.0): {"beta halved": 1.5, "Gamma without the coupling M^2 C_u/k0": 1.2},
    (1.0, 1.0, 1.0, 0.0, 1.0): {"Gamma without (1 + 1/k0)": 1.1, "noise root halved": 2.0,
                                "harmonic sum without its first term": 1.3},
}


@pytest.mark.parametrize("case", list(LOG_WORST_CASES))
def test_log_bound_dominates_the_worst_case_and_its_mutants_do_not(case):
    certificate = sgd.DECREASING_STEP_JACOBIAN_LOG
    v, values = _log_worst_case(*case)
    assert not exceeds(v, evaluate(certificate, None, **values), 1.0)
    mutants = dict(certificate.mutants)
    for description, factor in LOG_WORST_CASES[case].items():
        assert exceeds(v, evaluate(certificate, mutants[description], **values), factor), description


CONSTANT = dict(mu=1.0, alpha=0.1, sigma2=1.0, sigma2_jac=1.0, b=1.0, M=1.0, u0=10.0, v0=10.0)


@pytest.mark.parametrize("certificate", [sgd.CONSTANT_STEP_ITERATES, sgd.CONSTANT_STEP_JACOBIAN], ids=lambda c: c.name)
def test_constant_step_mutants_miss_the_recursion_they_claim_to_solve(certificate):
    """Each mutant differs from the exact solution of (U) or (V') by more than 5% somewhere."""
    K = 400
    u, _, v_split = iterate(np.full(K, CONSTANT["alpha"]), **{n: CONSTANT[n] for n in
                                                              ("mu", "sigma2", "sigma2_jac", "b", "M", "u0", "v0")})
    solved = u if certificate is sgd.CONSTANT_STEP_ITERATES else v_split
    values = dict(CONSTANT, k=np.arange(K + 1.0))
    np.testing.assert_allclose(evaluate(certificate, None, **values), solved, rtol=1e-12)
    for description, mutant in certificate.mutants:
        assert exceeds(solved, evaluate(certificate, mutant, **values), 1.05), description


def test_interpolation_mutants_are_exceeded():
    """Double: (V) exceeds the envelopes at the iterate rate q and without the coupling
    term tenfold. Simple: (V) tends to half the certified floor (its own fixed point
    4ασ_J²/(μb)), far from the mutant floor 0; (V') exceeds the halved floor, since its
    closed form reaches the certified one. (The mutant "iterates at rate ρ" is a weaker,
    true bound: it is rejected because (U) is solved by u0·q^k exactly, which the property
    test above checks.)"""
    alpha, mu, M, b, u0, v0, K = 0.1, 1.0, 1.0, 1.0, 1.0, 0.0, 600
    k = np.arange(K + 1.0)
    claims = dict(sgd.INTERPOLATION.mutants)
    _, v_double, _ = iterate(np.full(K, alpha), mu=mu, sigma2=0.0, sigma2_jac=0.0, b=b, M=M, u0=u0, v0=v0)
    for description in ("derivatives at the iterate rate q", "envelope without the coupling term"):
        envelope = Bound(sgd.INTERPOLATION, claims[description]["envelope"])
        values = dict(alpha=alpha, mu=mu, M=M, u0=u0, v0=v0, k=k)
        assert exceeds(v_double, envelope(**{n: values[n] for n in envelope.arguments}), 10.0), description
    _, v_simple, v_split = iterate(np.full(K, alpha), mu=mu, sigma2=0.0, sigma2_jac=1.0, b=b, M=M, u0=u0, v0=v0)
    floor = float(Bound(sgd.INTERPOLATION, sgd.SIMPLE_FLOOR)(alpha=alpha, mu=mu, b=b, sigma2_jac=1.0))
    assert v_simple[-1] == pytest.approx(floor / 2, rel=1e-6)
    halved = float(Bound(sgd.INTERPOLATION, claims["floor halved"]["floor"])(alpha=alpha, mu=mu, b=b, sigma2_jac=1.0))
    assert v_split[-1] > 1.9 * halved

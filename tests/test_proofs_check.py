"""The certificates verify, their mutants are rejected, and the bounds in `rates` are
the certified expressions."""

import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import proofs_check
import rates
from proofs_check import gradient_descent


@pytest.mark.parametrize("certificate", proofs_check.CERTIFICATES, ids=lambda c: c.name)
def test_certificate_verifies_and_rejects_every_mutant(certificate):
    verification = certificate.verify()
    assert verification.verified
    assert verification.controls_total >= 1
    assert verification.controls_rejected == verification.controls_total


def test_a_certificate_with_a_wrong_claim_fails():
    wrong = gradient_descent.JACOBIAN_RECURSION.claim["bound"] * 2
    assert not gradient_descent.JACOBIAN_RECURSION.holds({"bound": wrong})


def test_rates_bound_evaluates_the_certified_expression():
    bound = rates.bounds.GD_JACOBIAN
    assert bound.expression is gradient_descent.JACOBIAN_RECURSION.claim["bound"]
    values = dict(q=0.9, alpha=0.1, M=2.0, e_J0=1.5, e_x0=3.0, k=7.0)
    direct = 0.9**7 * 1.5 + 0.1 * 2.0 * 7 * 0.9**6 * 3.0
    assert float(bound(**values)) == pytest.approx(direct, rel=1e-14)
    substituted = float(bound.expression.subs({sp.Symbol(n, **_assumptions(n)): v for n, v in values.items()}))
    assert float(bound(**values)) == pytest.approx(substituted, rel=1e-14)
    with pytest.raises(TypeError, match="takes exactly"):
        bound(q=0.9)


def _assumptions(name):
    return {"integer": True, "nonnegative": True} if name == "k" else {"nonnegative": True}


def test_command_line_reports_every_certificate(tmp_path):
    out = tmp_path / "verifications.json"
    result = subprocess.run([sys.executable, "-m", "proofs_check", "--json", str(out)],
                            capture_output=True, text=True, check=True)
    for certificate in proofs_check.CERTIFICATES:
        assert certificate.name in result.stdout
    assert out.read_text().count('"verified": true') == len(proofs_check.CERTIFICATES)


def test_gradient_descent_bounds_refuse_a_step_beyond_their_condition():
    class C:
        mu, L, hessian_lipschitz, cross_lipschitz = 0.1, 1.0, 0.0, 1.0

    with pytest.raises(ValueError, match=r"step_at_most_inverse_smoothness: needs alpha <= 1/L"):
        rates.bounds.gradient_descent_bounds(C, 1.5, 1.0, 1.0, 1.0, [1])
    assert np.all(np.diff(rates.bounds.gradient_descent_bounds(C, 1.0, 1.0, 1.0, 1.0, [10, 20, 40])["jacobian"]) < 0)


SGD_BOUNDS = [rates.bounds.SGD_CONSTANT_ITERATE, rates.bounds.SGD_CONSTANT_JACOBIAN,
              rates.bounds.SGD_DECREASING_ITERATE, rates.bounds.SGD_DECREASING_JACOBIAN,
              rates.bounds.SGD_DECREASING_JACOBIAN_LOG]


@pytest.mark.parametrize("bound", SGD_BOUNDS, ids=lambda b: b.name)
def test_each_report_bound_evaluates_what_its_certificate_verifies(bound):
    """The expression `rates` evaluates is built from the claim its certificate verifies,
    so an edit to the certified claim is an edit to the evaluated bound."""
    from proofs_check import sgd

    assert bound.certificate in proofs_check.CERTIFICATES
    assert bound.expression == sgd.bound_expression(bound.certificate)
    assert bound.expression == sgd.bound_expression(bound.certificate, dict(bound.certificate.claim))


def test_changing_a_certified_constant_changes_the_evaluated_bound_and_fails_the_certificate():
    from proofs_check import sgd

    halved = sgd.constant_iterate(plateau=sgd.ITERATE_PLATEAU / 2)
    assert not sgd.CONSTANT_STEP_ITERATES.holds({"bound": halved})
    values = dict(alpha=0.01, mu=0.5, sigma2=2.0, b=1.0, u0=3.0, k=1e6)
    original = float(rates.bounds.SGD_CONSTANT_ITERATE(**values))
    edited = float(rates.bounds.Bound(sgd.CONSTANT_STEP_ITERATES, halved)(**values))
    assert original == pytest.approx(2 * 0.01 * 2.0 / 0.5, rel=1e-9)
    assert edited == pytest.approx(original / 2, rel=1e-9)


# --- sgd_decreasing_jacobian_log: every link of the chain is checked, true variants pass, false ones fail ---

def _log_symbols(**values):
    from proofs_check import sgd

    return {getattr(sgd, name): value for name, value in values.items()}


def _one_step_excess(claim, w, t, a=1.0, M=1.0, C_u=1.0, k0=1.0, sigma2_jac=0.0, b=1.0, g=0.0):
    """(t+1)·(V)'s right side at α_k = a/t, v_k = w/t, u_k = C_u/t, minus the claimed (√w + β_k)² + γ_k,
    written out independently of `proofs_check.sgd`: > 0 refutes the claimed one-step recursion."""
    symbols = _log_symbols(a=a, M=M, C_u=C_u, k0=k0, sigma2_jac=sigma2_jac, b=b, g=g)
    a_mu = float(claim["a_mu"].subs(symbols))
    v, u = w / t, C_u / t
    right = (1 - a_mu / t) * v + 2 * (a / t) * M * np.sqrt(v * u) + 4 * (a / t) ** 2 * (M**2 * u + sigma2_jac / b)
    beta, gamma = float(claim["beta"].subs(symbols)) / t, float(claim["Gamma"].subs(symbols)) / t
    return (t + 1) * right - ((np.sqrt(w) + beta) ** 2 + gamma)


def _harmonic_excess(claim, k, k0):
    """Σ_{j<k} 1/(j + k0) − ℓ_k: > 0 refutes the claimed ℓ."""
    from proofs_check import sgd

    ell = float(claim["ell"].subs({sgd.k: k, sgd.k0: k0}))
    return sum(1.0 / (j + k0) for j in range(k)) - ell


def _induction_excess(claim, gamma):
    """(S_k + β)² + γ − S_{k+1}² at A = β = G = 0: > 0 refutes the square-root induction for R."""
    return gamma - float(claim["noise_root"](sp.Float(gamma))) ** 2


def _log_variants():
    from proofs_check import sgd

    k, k0, a, M, C_u = sgd.k, sgd.k0, sgd.a, sgd.M, sgd.C_u
    return {
        "claim": sgd.log_claim(),
        "looser harmonic bound 2/k0 + log((k + k0)/k0)": sgd.log_claim(ell=2 / k0 + sp.log((k + k0) / k0)),
        "looser harmonic bound 1/k0 + log((k + 2k0)/k0)": sgd.log_claim(ell=1 / k0 + sp.log((k + 2 * k0) / k0)),
        "tight beta a M sqrt(C_u)": sgd.log_claim(beta=a * M * sp.sqrt(C_u)),
        "Gamma doubled": sgd.log_claim(Gamma=2 * sgd.GAMMA),
    }


@pytest.mark.parametrize("variant", list(_log_variants()))
def test_log_certificate_accepts_true_claims_including_looser_ones(variant):
    from proofs_check import sgd

    claim = _log_variants()[variant]
    assert sgd.DECREASING_STEP_JACOBIAN_LOG.holds(claim)
    # and each is true numerically: ℓ bounds the harmonic sum, (β, Γ) the one-step recursion
    for k0 in (0.5, 1.0, 10.0):
        assert max(_harmonic_excess(claim, k, k0) for k in (0, 1, 2, 5, 50, 500)) <= 0
        for t in (k0, 2 * k0, 10 * k0, 1000 * k0):
            excess = _one_step_excess(claim, np.linspace(0.0, 4 * t**2, 2001), t, k0=k0, sigma2_jac=0.3)
            assert excess.max() <= 1e-12 * t**2


# each mutant, a point where the link it changes is false (so it is rejected for a reason)
_LOG_COUNTEREXAMPLES = {
    "condition a mu >= 1 dropped (a mu > 0 only)": lambda c: _one_step_excess(c, w=100.0, t=2.0, g=0.5),
    "beta halved": lambda c: _one_step_excess(c, w=2116.0, t=100.0, k0=10.0),
    "Gamma without (1 + 1/k0)": lambda c: _one_step_excess(c, w=0.0, t=1.0, M=0.0, sigma2_jac=1.0),
    "Gamma without the coupling M^2 C_u/k0": lambda c: _one_step_excess(c, w=0.0, t=1.0),
    "noise accumulated linearly, not in root": lambda c: _induction_excess(c, 0.25),
    "noise root halved": lambda c: _induction_excess(c, 0.25),
    "harmonic sum without its first term": lambda c: _harmonic_excess(c, k=1, k0=1.0),
    "harmonic sum with half its first term": lambda c: _harmonic_excess(c, k=1000, k0=1.0),
}


def test_log_certificate_mutants_are_false_and_rejected():
    from proofs_check import sgd

    certificate = sgd.DECREASING_STEP_JACOBIAN_LOG
    assert {description for description, _ in certificate.mutants} == set(_LOG_COUNTEREXAMPLES)
    for description, mutant in certificate.mutants:
        assert not certificate.holds(mutant), description
        assert _LOG_COUNTEREXAMPLES[description](mutant) > 0, description
    claim = certificate.claim
    assert _induction_excess(claim, 0.25) <= 1e-15
    assert _harmonic_excess(claim, k=1000, k0=1.0) <= 0


def test_log_certificate_condition_is_what_fails_without_a_mu_at_least_one():
    from proofs_check import sgd

    mutant = dict(sgd.DECREASING_STEP_JACOBIAN_LOG.mutants)["condition a mu >= 1 dropped (a mu > 0 only)"]
    failing = [step.__name__ for step in sgd.DECREASING_STEP_JACOBIAN_LOG.steps if not step(mutant)]
    assert failing == ["_contraction_from_condition"]


def test_log_bound_is_built_from_the_claimed_beta_and_gamma():
    from proofs_check import sgd

    certificate = sgd.DECREASING_STEP_JACOBIAN_LOG
    tight = sgd.bound_expression(certificate, sgd.log_claim(beta=sgd.a * sgd.M * sp.sqrt(sgd.C_u)))
    values = _log_symbols(a=1.0, M=1.0, C_u=1.0, k0=2.0, sigma2_jac=0.5, b=1.0, v0=1.0, k=100)
    assert float(tight.subs(values)) < float(sgd.bound_expression(certificate).subs(values))


# --- sgd_one_step_iterates (U) and sgd_one_step_jacobian (V): each mutant fails the step that uses its hypothesis ---

_ONE_STEP_REJECTED_BY = {
    "sgd_one_step_iterates": {
        "step condition relaxed to alpha <= 1/L": ["_iterate_multipliers_nonnegative"],
        "per-sample convexity dropped (h in [-L, L])": ["_co_coercivity_instance"],
        "noise sigma2/b^2": ["_variance_of_a_mean"],
        "contraction 1 - 2 alpha mu": ["_iterate_chain"],
    },
    "sgd_one_step_jacobian": {
        "step condition relaxed to alpha <= 1/L": ["_curvature_under_step", "_jacobian_multipliers_nonnegative"],
        "per-sample convexity dropped (h in [-L, L])": ["_spectral_instance"],
        "M set to 0": ["_jacobian_drift_lemma"],
        "Jacobian noise sigma2_jac/b^2": ["_variance_of_a_mean"],
        "contraction 1 - 2 alpha mu": ["_jacobian_chain"],
    },
}


def _one_step_certificates():
    from proofs_check import sgd

    return {c.name: c for c in (sgd.SGD_ONE_STEP_ITERATES, sgd.SGD_ONE_STEP_JACOBIAN)}


@pytest.mark.parametrize("name", list(_ONE_STEP_REJECTED_BY))
def test_one_step_certificates_reject_each_mutant_at_the_expected_step(name):
    certificate = _one_step_certificates()[name]
    assert certificate in proofs_check.CERTIFICATES
    assert all(step(certificate.claim) for step in certificate.steps)
    expected = _ONE_STEP_REJECTED_BY[name]
    assert {description for description, _ in certificate.mutants} == set(expected)
    for description, mutant in certificate.mutants:
        failing = [step.__name__ for step in certificate.steps if not step(mutant)]
        assert failing == expected[description], description


def test_one_step_scalar_facts_hold_at_random_admissible_values():
    """Each scalar fact the one-step certificates check, evaluated at random admissible values."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        L = rng.uniform(0.1, 10.0)
        mu = rng.uniform(0.0, 1.0) * L
        h_sample, h_mean = rng.uniform(0.0, L), rng.uniform(mu, L)
        alpha = rng.uniform(0.0, 1.0) / (2 * L)
        err, p, q = rng.normal(size=3)
        assert h_sample**2 * err**2 <= L * h_sample * err**2 + 1e-12           # co-coercivity / spectral
        assert h_mean * err**2 >= h_mean * err**2 / 2 + mu * err**2 / 2 - 1e-12  # strong convexity instance
        assert (p + q) ** 2 <= 2 * p**2 + 2 * q**2 + 1e-12                       # split
        assert 2 * alpha * (1 - alpha * L) * h_mean >= alpha * mu - 1e-12        # curvature under the step
        assert 1 - 2 * alpha * L >= 0                                             # middle term dropped
        L_H, L_C, J, t1, t2 = rng.uniform(0.0, 3.0, size=5)
        t1, t2 = t1 / 3, t2 / 3
        assert L_H * t1 * J + L_C * t2 <= L_H * J + L_C + 1e-12                 # ‖G‖ ≤ M‖e‖
        d, g = rng.normal(size=(2, 4))
        assert abs(d @ g) <= np.linalg.norm(d) * np.linalg.norm(g) + 1e-12      # Cauchy–Schwarz
    # the variance of a mean of b i.i.d. mean-zero terms, exactly over a finite distribution (with replacement)
    values = np.array([-2.0, 0.5, 1.5])
    sigma2 = np.mean(values**2)
    for size in (1, 2, 3):
        draws = np.array(np.meshgrid(*[values] * size)).reshape(size, -1)
        assert np.mean(draws.mean(axis=0) ** 2) == pytest.approx(sigma2 / size, rel=1e-12)


def test_one_step_chains_numerically():
    """The chains' identities at random values: claimed right side − expansion = Σ multiplier·slack, every
    multiplier ≥ 0 for α ≤ 1/(2L); and at α = 1/L (the relaxed condition) a multiplier is negative."""
    from proofs_check import sgd

    rng = np.random.default_rng(1)
    cases = [(sgd.SGD_ONE_STEP_ITERATES, sgd._iterate_slacks, sgd._iterate_multipliers,
              sgd._E2 - 2 * sgd.alpha * sgd._P + sgd.alpha**2 * sgd._S,
              lambda c: c["contraction"] * sgd._E2 + c["noise"]),
             (sgd.SGD_ONE_STEP_JACOBIAN, sgd._jacobian_slacks, sgd._jacobian_multipliers,
              sgd._D2 - 2 * sgd.alpha * sgd._Q - 2 * sgd.alpha * sgd._R + sgd.alpha**2 * sgd._T,
              lambda c: c["contraction"] * sgd._D2 + c["cross"] * sgd._De + c["coupling"] * sgd._e2 + c["noise"])]
    for certificate, slacks, multipliers, expansion, right in cases:
        claim = certificate.claim
        residual = right(claim) - expansion - sum(
            multipliers(sgd.alpha)[n] * s for n, s in slacks(claim).items())
        symbols = sorted(residual.free_symbols | expansion.free_symbols | right(claim).free_symbols, key=str)
        for _ in range(20):
            point = dict(zip(symbols, rng.uniform(0.1, 2.0, size=len(symbols))))
            assert abs(float(residual.subs(point))) < 1e-9
            L = point.get(sgd.L_smooth, 1.3)
            for factor, sign in ((rng.uniform(2.0, 5.0), 1), (1.0, -1)):
                values = [float(m.subs({sgd.alpha: 1 / (factor * L), sgd.L_smooth: L, sgd.mu: 0.5 * L}))
                          for m in multipliers(sgd.alpha).values()]
                assert (min(values) >= 0) if sign > 0 else (min(values) < 0)

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

"""(U) and (V) against the exact one-step worst cases of `proofs_check.worst_case` (SDPs solved by PEPit).

Tolerances: the interior-point solver (Clarabel) meets PESTO's closed form to ~2e-8 relative on the grid,
so "equal" below means within 1e-6 relative; the certified bounds must exceed the worst cases by 1e-4
relative (the smallest excess measured on the grid is 4.7e-4, at αμ = 5e-4 where (U) is nearly tight);
a mutant must fall below a worst case by more than 1e-3 (absolute, for values of order 1) somewhere.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

from proofs_check import sgd
from proofs_check import worst_case as wc

EQUAL = 1e-6       # relative: solver tolerance
MARGIN = 1e-4      # relative: how far a certified bound must stay above a worst case
VIOLATION = 1e-3   # absolute: how far below a worst case a mutant must fall, somewhere on the grid

L = 1.0


@pytest.fixture(scope="module")
def iterate_rows():
    """The default grid: μ/L ∈ {0.01, 0.1, 0.5}, αL ∈ {0.05, 0.25, 0.5}, σ²/(L²R²) ∈ {0, 0.1, 1, 10}, n = 2."""
    return wc.worst_case_table()


@pytest.fixture(scope="module")
def jacobian_rows():
    """μ/L = 0.1, αL ∈ {0.05, 0.25, 0.5}, M²u ∈ {0, 0.1, 1}, σ_J² ∈ {0, 1}, ‖D‖² = 1, n = 2."""
    return wc.derivative_worst_case_table()


# --- the worst case itself -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mu", "step", "noise", "n"), [
    (0.01, 0.5, 10.0, 2), (0.1, 0.25, 1.0, 2), (0.5, 0.5, 0.0, 2), (0.5, 0.05, 0.1, 2),
    (0.1, 0.5, 1.0, 3), (0.5, 0.25, 10.0, 3), (0.01, 0.5, 0.1, 4), (0.5, 0.5, 1.0, 4),
])
def test_the_sdp_worst_case_is_pestos_closed_form(mu, step, noise, n):
    """Strongly convex samples, b = 1: the SDP's value is PESTO's guarantee, for n = 2, 3, 4."""
    sdp = wc.sgd_step_worst_case(L, mu, step, noise, 1.0, n)
    assert sdp == pytest.approx(wc.pesto_sgd_guarantee(L, mu, step, noise, 1.0), rel=EQUAL)


def test_the_grid_agrees_with_pesto_and_orders_the_two_classes(iterate_rows):
    """Every grid point: SDP = PESTO; and the strongly convex subclass's worst case ≤ the relaxation of (U)'s class."""
    for row in iterate_rows:
        assert row.worst_case == pytest.approx(row.pesto, rel=EQUAL), row
        assert row.convex_relaxation >= row.worst_case * (1 - EQUAL), row


def test_the_relaxation_is_attained_by_a_member_of_the_class():
    """μ = L/2, α = 1/(2L), σ² = 0, n = 2: `f₁ = (L/2)x²`, `f₂ = 0` is convex, L-smooth, with mean (L/4)x²
    (μ = L/2), σ² = 0, and one step from x₀ = R gives E x₁² = ((1 − αL)² + 1)R²/2 = 0.625 R²: the relaxation's
    value, so there the worst case over (U)'s class is known exactly and (U) is 1.2 times it."""
    member = ((1 - 0.5) ** 2 + 1) / 2
    assert wc.sgd_step_worst_case(L, 0.5, 0.5, 0.0, samples="convex") == pytest.approx(member, rel=EQUAL)
    assert wc.one_step_iterate_bound(L, 0.5, 0.5, 0.0) / member == pytest.approx(1.2, rel=EQUAL)


def _quadratic_instances(rng, count, mu, dimension=3, n=2, convex=False):
    """Random f_i(x) = ½(x − x*)ᵀHᵢ(x − x*) + ⟨zᵢ, x − x*⟩, Σzᵢ = 0: spectra of Hᵢ in [μ, L] (or, `convex`,
    in [0, L] with the mean's smallest eigenvalue ≥ μ), (1/n)Σ‖zᵢ‖² = 1, ‖x₀ − x*‖ = 1."""
    for _ in range(count):
        hessians = []
        while len(hessians) < n:
            basis, _ = np.linalg.qr(rng.normal(size=(dimension, dimension)))
            low = 0.0 if convex else mu
            hessians.append(basis @ np.diag(rng.uniform(low, L, dimension)) @ basis.T)
            if len(hessians) == n and np.linalg.eigvalsh(np.mean(hessians, axis=0))[0] < mu:
                hessians = []
        z = rng.normal(size=(n, dimension))
        z -= z.mean(axis=0)
        z /= math.sqrt(np.mean(np.sum(z**2, axis=1)))
        e = rng.normal(size=dimension)
        yield hessians, z, e / np.linalg.norm(e)


@pytest.mark.parametrize("samples", wc.SAMPLES)
def test_random_quadratics_stay_below_the_worst_case(samples):
    """The SDP's value bounds every member of its class: drawn quadratics, b = 1, σ² = R² = 1."""
    mu, step = 0.2, 0.4
    value = wc.sgd_step_worst_case(L, mu, step, 1.0, samples=samples)
    rng = np.random.default_rng(0)
    for hessians, z, e in _quadratic_instances(rng, 200, mu, convex=samples == "convex"):
        error = np.mean([np.sum(((np.eye(3) - step * h) @ e - step * zi) ** 2) for h, zi in zip(hessians, z)])
        assert error <= value * (1 + EQUAL)


# --- (U) against it --------------------------------------------------------------------------------------------------

def test_iterate_bound_stays_above_every_worst_case_on_the_grid(iterate_rows):
    """(U) ≥ the relaxation of its own class ≥ the strongly convex worst case, with margin, at each of 36 points."""
    for row in iterate_rows:
        assert row.bound >= row.convex_relaxation * (1 + MARGIN), row
        assert row.ratio >= 1 + MARGIN, row


@pytest.mark.parametrize(("mu", "step", "noise", "n"), [(0.1, 0.5, 1.0, 2), (0.5, 0.25, 10.0, 3), (0.01, 0.25, 1.0, 2)])
def test_iterate_bound_with_minibatches_of_two(mu, step, noise, n):
    """b = 2 with replacement (the n² ordered pairs): (U)'s σ²/b stays above both worst cases."""
    bound = wc.one_step_iterate_bound(L, mu, step, noise, batch_size=2)
    relaxation = wc.sgd_step_worst_case(L, mu, step, noise, n=n, batch_size=2, samples="convex")
    assert bound >= relaxation * (1 + MARGIN) >= wc.sgd_step_worst_case(L, mu, step, noise, n=n, batch_size=2)


def _iterate_mutant(description):
    return dict(sgd.SGD_ONE_STEP_ITERATES.mutants)[description]


@pytest.mark.parametrize(("description", "claim"), [
    ("contraction 1 - 2 alpha mu", _iterate_mutant("contraction 1 - 2 alpha mu")),
    ("noise alpha^2 sigma2/4", sgd.one_step_iterates(noise=sgd.alpha**2 * sgd.sigma2 / 4)),
])
def test_a_wrong_iterate_bound_falls_below_the_worst_case(iterate_rows, description, claim):
    """Negative check: the comparison can fail. A mutant of (U) is violated on the grid."""
    shortfall = max(row.worst_case - wc.one_step_iterate_bound(L, row.mu, row.step, row.noise, claim=claim)
                    for row in iterate_rows)
    assert shortfall > VIOLATION, description


def test_noise_over_b_squared_falls_below_the_minibatch_worst_case():
    """The certificate's mutant σ²/b²: violated by the b = 2 worst case (μ = 0.01L, α = 1/(2L), σ² = 10L²R²)."""
    claim = _iterate_mutant("noise sigma2/b^2")
    worst = wc.sgd_step_worst_case(L, 0.01, 0.5, 10.0, batch_size=2)
    assert worst - wc.one_step_iterate_bound(L, 0.01, 0.5, 10.0, batch_size=2, claim=claim) > VIOLATION


# --- (V) against it --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mu", "step", "drift"), [(0.1, 0.5, 1.0), (0.5, 0.25, 0.1), (0.01, 0.05, 3.0)])
def test_derivative_worst_case_without_noise_is_the_aligned_step(mu, step, drift):
    """σ_J² = 0: the worst case is `((1 − αμ)√v + αM√u)²` (D along an eigenvector of eigenvalue μ, δᵢ along
    D), attained by the construction of the docstring; v = 1, M²u = drift."""
    value = wc.derivative_step_worst_case(L, mu, step, 1.0, drift, 0.0)
    assert value == pytest.approx(((1 - step * mu) + step * math.sqrt(drift)) ** 2, rel=EQUAL)


@pytest.mark.parametrize(("mu", "step", "noise", "n"), [(0.1, 0.5, 1.0, 2), (0.5, 0.25, 10.0, 3), (0.01, 0.25, 0.1, 2)])
def test_derivative_worst_case_without_drift_is_sgds(mu, step, noise, n):
    """M = 0: the derivative step is an SGD step on a quadratic with noise σ_J², and its worst case PESTO's."""
    value = wc.derivative_step_worst_case(L, mu, step, 0.0, 1.0, noise, n=n)
    assert value == pytest.approx(wc.pesto_sgd_guarantee(L, mu, step, noise), rel=EQUAL)


@pytest.mark.parametrize("samples", wc.SAMPLES)
def test_random_derivative_steps_stay_below_the_worst_case(samples):
    """Drawn Hᵢ, Zᵢ (Σ = 0, (1/n)Σ‖Zᵢ‖² = σ_J² = 1), δᵢ (‖δᵢ‖ = M√u = 0.5), ‖D‖ = 1: below the SDP's value."""
    mu, step, drift = 0.2, 0.4, 0.25
    value = wc.derivative_step_worst_case(L, mu, step, 1.0, drift, 1.0, samples=samples)
    rng = np.random.default_rng(1)
    for hessians, z, D in _quadratic_instances(rng, 200, mu, convex=samples == "convex"):
        deltas = rng.normal(size=z.shape)
        deltas *= math.sqrt(drift) / np.linalg.norm(deltas, axis=1, keepdims=True)
        error = np.mean([np.sum((D - step * (h @ D + zi + di)) ** 2) for h, zi, di in zip(hessians, z, deltas)])
        assert error <= value * (1 + EQUAL)


def test_jacobian_bound_stays_above_every_worst_case_on_the_grid(jacobian_rows):
    for row in jacobian_rows:
        assert row.convex_relaxation >= row.worst_case * (1 - EQUAL), row
        assert row.bound >= row.convex_relaxation * (1 + MARGIN), row


@pytest.mark.parametrize("description", ["M set to 0", "contraction 1 - 2 alpha mu"])
def test_a_wrong_jacobian_bound_falls_below_the_worst_case(jacobian_rows, description):
    """Negative check: the certificate's own mutants of (V) are violated on the grid."""
    claim = dict(sgd.SGD_ONE_STEP_JACOBIAN.mutants)[description]
    shortfall = max(row.worst_case - wc.one_step_jacobian_bound(L, row.mu, row.step, 1.0, row.drift,
                                                                 row.jacobian_noise, claim=claim)
                    for row in jacobian_rows)
    assert shortfall > VIOLATION, description


# --- the module's edges ----------------------------------------------------------------------------------------------

def test_the_bounds_are_the_certified_claims():
    """One source of truth: the numbers are the certificates' expressions, e.g. (U) = (1 − αμ)u + 2α²σ²/b."""
    for mu, step, noise, radius, b in itertools.product((0.1, 0.5), (0.1, 0.5), (0.0, 2.0), (1.0, 3.0), (1, 2)):
        assert wc.one_step_iterate_bound(L, mu, step, noise, radius, b) == pytest.approx(
            (1 - step * mu) * radius + 2 * step**2 * noise / b, rel=1e-14)
    expected = 0.9 * 2.0 + 2 * 0.5 * 3.0 * math.sqrt(2.0 * 0.25) + 4 * 0.25 * (9.0 * 0.25 + 1.0)
    assert wc.one_step_jacobian_bound(L, 0.2, 0.5, 3.0, 0.25, 1.0, 2.0) == pytest.approx(expected, rel=1e-14)


def test_steps_outside_the_certificate_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"1/\(2L\)"):
        wc.one_step_iterate_bound(L, 0.1, 0.6, 1.0)
    with pytest.raises(ValueError, match=r"1/\(2L\)"):
        wc.one_step_jacobian_bound(L, 0.1, 0.6, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="samples"):
        wc.sgd_step_worst_case(L, 0.1, 0.5, 1.0, samples="nonconvex")
    with pytest.raises(ValueError, match="noise"):
        wc.sgd_step_worst_case(L, 0.1, 0.5, -1.0)
    with pytest.raises(ValueError, match="mu"):
        wc.derivative_step_worst_case(L, 2.0, 0.5, 1.0, 1.0, 1.0)


def test_a_missing_pepit_says_how_to_install_it(monkeypatch):
    for name in ("PEPit", "PEPit.functions", "PEPit.operators"):
        monkeypatch.setitem(sys.modules, name, None)  # `import PEPit` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[test\]'"):
        wc.sgd_step_worst_case(L, 0.1, 0.5, 1.0)


def test_importing_the_module_loads_neither_pepit_nor_cvxpy():
    code = ("import sys, proofs_check, proofs_check.worst_case; "
            "print(sorted(m for m in ('PEPit', 'cvxpy') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"

"""The hypergradient checks of the rate report (`experiments.hypergradients`): on small
families every method passes its bound and its rate, each misstated claim that can be told
apart on them is caught, and a broken method fails its check."""

from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from derivatives import hypergradients as hg
from experiments import hypergradients as eh
from experiments import study
from rates import hypergradients as rh

TINY = eh.HypergradientSettings(n_train=30, n_val=20, n_features=4, iterations=200, unrolled_steps=800,
                                truncations=6, sgd_steps=5000, num_seeds=8, stochastic_keys=400,
                                num_checkpoints=30, seed=1)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return study.write(eh.STUDY, tmp_path_factory.mktemp("hypergradients"), settings=TINY)


def test_every_method_passes_on_every_family(written):
    checks = written.result.checks
    assert {c.family for c in checks} == set(eh.families(TINY))
    assert {c.method for c in checks} == {"implicit", "neumann", "fixed_point", "cg", "stochastic_neumann",
                                          "unrolled (GD)", "truncated (GD)", "unrolled (SGD)"}
    assert all(c.passed for c in checks), [c.as_dict() for c in checks if not c.passed]
    assert written.passed


def test_misstated_claims_are_caught_where_they_are_false(written):
    """On ridge, μ = λ_min(H) exactly, so a contraction 1 − 2μ/L is false and must be caught
    by the Neumann, fixed-point, unrolled and truncated checks; the reused-minibatch series
    and the solve at a moved x* are caught on every family."""
    for c in written.result.checks:
        if c.method in ("implicit", "stochastic_neumann") or (
                c.family == "per_feature_ridge" and c.method in ("neumann", "fixed_point", "unrolled (GD)",
                                                                  "truncated (GD)")):
            assert c.mutant_caught, c.as_dict()


def test_the_report_files_carry_every_check(written, tmp_path):
    paths = {p.name: p for p in written.paths}
    document = json.loads(paths["hypergradients.json"].read_text())
    assert len(document["checks"]) == 8 * 3 and document["passed"] is True
    text = paths["hypergradients.md"].read_text()
    assert text.count("| per_feature_ridge |") == 8 and "hypergradients.png" in paths


def test_a_slower_method_fails_the_rate_check():
    """Negative check: the Neumann series at α = 1/(2L) converges at 1 − μ/(2L), so its check
    against the claim of the default step α = 1/L (bound and rate 1 − μ/L) fails."""
    bilevel = eh.families(TINY)["per_feature_ridge"]
    theta = bilevel.theta0
    scale = float(jnp.linalg.norm(bilevel.hypergradient(theta)))
    constants = rh.adjoint_constants(bilevel, theta)
    slow = hg.Neumann(0, step_size=0.5 / constants.L)
    check = eh.check_neumann_like("per_feature_ridge", bilevel, theta, scale, slow, np.arange(1, 201))
    assert check.rate_holds is False and not check.passed


def test_the_unrolled_and_truncation_bounds_fail_with_a_doubled_mu():
    """The GD bounds with μ doubled are violated by the measured errors on ridge (μ = λ_min(H)):
    the bounds' constants matter."""
    bilevel = eh.families(TINY)["per_feature_ridge"]
    theta = bilevel.theta0
    constants = rh.unrolling_constants(bilevel, theta)
    alpha = 1.0 / float(constants.inner.L)
    x0_error = float(jnp.linalg.norm(bilevel.inner.solution(theta)))
    steps = np.array([100, 200, 400])
    errors = [float(jnp.linalg.norm(hg.hypergradient(bilevel, theta, method="unrolled", num_steps=int(k),
                                                     step_size=alpha, batch_size=None) - bilevel.hypergradient(theta)))
              for k in steps]
    assert np.all(errors <= rh.unrolled_bound(constants, alpha, x0_error, steps))
    doubled = constants._replace(inner=dataclasses.replace(constants.inner, mu=2 * constants.inner.mu))
    assert np.any(errors > rh.unrolled_bound(doubled, alpha, x0_error, steps))

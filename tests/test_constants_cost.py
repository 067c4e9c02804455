"""`constants()` costs O(n·d·p) plus a few d×d factorisations, never one per sample.

A per-sample eigendecomposition made `constants()` take 53 s at d = 400 and run out of
memory at d = 800. Time is measured in `benchmarks/constants.py`; here the structure that
decides it is checked, without timing anything: in the traced program of `constants()`,
every matrix factorisation (`eigh`, `lu`, `cholesky`, `svd`, `qr`, `triangular_solve`)
acts on one matrix of at most d×max(d, p) entries, never on a batch of them, and there
are a handful of them whatever n is.
"""

import jax
import jax.extend
import jax.numpy as jnp
import pytest

import problems
from problems import strategies
from problems._base import _constants

FACTORISATIONS = ("eigh", "lu", "cholesky", "svd", "qr", "triangular_solve", "schur", "eig")


def equations(jaxpr):
    """Every equation of a jaxpr, those of nested jaxprs (jit, scan, while, cond) included."""
    for equation in jaxpr.eqns:
        yield equation
        for value in equation.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    yield from equations(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    yield from equations(sub)


def per_sample_factorisations(function, problem, theta):
    """The factorisations in `function(problem, theta)` that act on a batch of matrices, or
    on one larger than d×max(d, p): what a per-sample factorisation looks like."""
    jaxpr = jax.make_jaxpr(function)(problem, theta).jaxpr
    found = [(e.primitive.name, [v.aval.shape for v in e.invars])
             for e in equations(jaxpr) if e.primitive.name in FACTORISATIONS]
    largest = max(problem.dim, problem.param_dim)
    too_big = [(name, shapes) for name, shapes in found
               if any(len(shape) > 2 or max(shape, default=1) > largest for shape in shapes)]
    return too_big, len(found)


GENERATORS = {
    "ridge": lambda n, d: problems.ridge(n, d),
    "weighted_ridge": lambda n, d: problems.weighted_ridge(n, d),
    "least_squares": lambda n, d: problems.least_squares(n, d),
    "logistic": lambda n, d: problems.logistic(n, d),
    "quadratic": lambda n, d: problems.quadratic(d, 2, n_samples=n),
    "from_loss": lambda n, d: problems.from_loss(strategies.log_cosh_ridge_loss, problems.ridge(n, d).data,
                                                 [0.1], dim=d),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_no_factorisation_per_sample(name):
    n = 40
    problem = GENERATORS[name](n, 5)
    too_big, count = per_sample_factorisations(_constants, problem, problem.theta0)
    assert too_big == []
    # A handful (solves for x* and J*, one eigendecomposition for μ), not one per sample.
    assert count < n


def test_the_check_sees_a_factorisation_per_sample():
    """Negative check: the per-sample eigendecomposition that did not scale is caught."""
    def per_sample_largest_eigenvalue(problem, theta):
        features = problem.data[0]
        return jax.vmap(lambda a: jnp.linalg.eigvalsh(jnp.outer(a, a) + jnp.diag(theta))[-1])(features).max()

    problem = problems.weighted_ridge(40, 5)
    too_big, _ = per_sample_factorisations(per_sample_largest_eigenvalue, problem, problem.theta0)
    assert too_big == [("eigh", [(40, 5, 5)])]

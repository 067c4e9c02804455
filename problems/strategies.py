"""Hypothesis strategies that draw problems small enough for a fast suite.

Sizes come from short lists rather than ranges, so that jitted code is compiled
for a handful of shapes and reused across examples.

    from hypothesis import given
    from problems.strategies import problems

    @given(problems())
    def test_something(problem): ...
"""

from __future__ import annotations

import jax.numpy as jnp
from hypothesis import strategies as st

import problems as _problems

SAMPLE_SIZES = (20,)
DIMENSIONS = (2, 4)
PARAM_DIMS = (1, 2)
KINDS = ("ridge", "weighted_ridge", "least_squares", "logistic", "quadratic", "from_loss")
EXACT_KINDS = KINDS[:-1]

seeds = st.integers(0, 2**16)
regularisations = st.sampled_from((0.05, 0.3, 1.0))
conditionings = st.sampled_from((1.0, 3.0))


def log_cosh_ridge_loss(x, theta, sample):
    """`log cosh(aᵀx − y) + (θ₁/2)‖x‖²`: smooth, strongly convex, not quadratic."""
    features, target = sample
    residual = features @ x - target
    return jnp.logaddexp(residual, -residual) - jnp.log(2.0) + 0.5 * theta[0] * (x @ x)


@st.composite
def ridge_problems(draw, weighted: bool = False):
    generator = _problems.weighted_ridge if weighted else _problems.ridge
    return generator(
        draw(st.sampled_from(SAMPLE_SIZES)), draw(st.sampled_from(DIMENSIONS)),
        regularisation=draw(regularisations), conditioning=draw(conditionings), seed=draw(seeds),
    )


@st.composite
def least_squares_problems(draw, interpolation=None):
    mode = interpolation or draw(st.sampled_from(_problems.INTERPOLATION_MODES))
    return _problems.least_squares(
        draw(st.sampled_from(SAMPLE_SIZES)), draw(st.sampled_from(DIMENSIONS)), mode,
        param_dim=draw(st.sampled_from(PARAM_DIMS)), conditioning=draw(conditionings), seed=draw(seeds),
    )


@st.composite
def logistic_problems(draw):
    return _problems.logistic(
        draw(st.sampled_from(SAMPLE_SIZES)), draw(st.sampled_from(DIMENSIONS)),
        regularisation=draw(regularisations), conditioning=draw(conditionings), seed=draw(seeds),
    )


@st.composite
def quadratic_problems(draw):
    mu = draw(st.sampled_from((0.05, 0.2)))
    return _problems.quadratic(
        draw(st.sampled_from(DIMENSIONS)), draw(st.sampled_from(PARAM_DIMS)),
        mu=mu, L=draw(st.sampled_from((1.0, 4.0))), n_samples=draw(st.sampled_from(SAMPLE_SIZES)),
        grad_noise=draw(st.sampled_from((0.0, 0.3))), jac_noise=draw(st.sampled_from((0.0, 0.3))),
        hess_noise=draw(st.sampled_from((0.0, 0.5))), seed=draw(seeds),
    )


@st.composite
def loss_problems(draw):
    base = draw(ridge_problems())
    return _problems.from_loss(log_cosh_ridge_loss, base.data, base.theta0, dim=base.dim)


_BY_KIND = {
    "ridge": ridge_problems(),
    "weighted_ridge": ridge_problems(weighted=True),
    "least_squares": least_squares_problems(),
    "logistic": logistic_problems(),
    "quadratic": quadratic_problems(),
    "from_loss": loss_problems(),
}


def problems(kinds=KINDS):
    """Any of the problems in `kinds` (default: every generator, `from_loss` included)."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown problem kinds {sorted(unknown)}; choose from {KINDS}")
    return st.one_of(*(_BY_KIND[kind] for kind in kinds))


@st.composite
def problems_and_thetas(draw, kinds=KINDS):
    """A problem and a θ in its domain: `theta0` scaled entrywise by factors in [½, 2]."""
    problem = draw(problems(kinds))
    factors = draw(st.lists(st.sampled_from((0.5, 1.0, 2.0)), min_size=problem.param_dim, max_size=problem.param_dim))
    return problem, problem.theta0 * jnp.asarray(factors)


# --- bilevel problems ------------------------------------------------------------------

BILEVEL_KINDS = ("ridge_validation", "ridge_validation_per_feature", "hyper_cleaning_squared",
                 "hyper_cleaning_logistic")
# Hyper-cleaning has one θ per training sample: few samples keep finite differences cheap.
# One shape per kind: each new shape compiles the draw, the solution, the Jacobian and the
# references again (about a second each), and the data and θ vary anyway.
BILEVEL_TRAIN_SIZES = (12,)
BILEVEL_VAL_SIZES = (10,)
BILEVEL_DIMENSIONS = (3,)
corruptions = st.sampled_from((0.0, 0.25, 0.5))


@st.composite
def bilevel_problems(draw, kinds=BILEVEL_KINDS):
    """A small bilevel problem of one of `kinds` (default: both families, both losses,
    tied and per-feature ridge): n_train = 12, n_val = 10, d = 3."""
    unknown = set(kinds) - set(BILEVEL_KINDS)
    if unknown:
        raise ValueError(f"unknown bilevel kinds {sorted(unknown)}; choose from {BILEVEL_KINDS}")
    kind = draw(st.sampled_from(tuple(kinds)))
    sizes = (draw(st.sampled_from(BILEVEL_TRAIN_SIZES)), draw(st.sampled_from(BILEVEL_VAL_SIZES)),
             draw(st.sampled_from(BILEVEL_DIMENSIONS)))
    if kind.startswith("ridge_validation"):
        return _problems.bilevel.ridge_validation(
            *sizes, per_feature=kind.endswith("per_feature"), regularisation=draw(regularisations),
            conditioning=draw(conditionings), seed=draw(seeds),
        )
    return _problems.bilevel.hyper_cleaning(
        *sizes, corruption=draw(corruptions), loss=kind.removeprefix("hyper_cleaning_"),
        regularisation=draw(regularisations), seed=draw(seeds),
    )


def bilevel_thetas(bilevel):
    """θ near `bilevel.theta0`, entrywise: a positive entry (a ridge penalty) scaled by a factor
    in [½, 2], any other (a hyper-cleaning logit, θ₀ = 0) shifted by −1 to 1."""
    factors, shifts = jnp.asarray((0.5, 0.75, 1.0, 1.5, 2.0)), jnp.asarray((-1.0, -0.5, 0.0, 0.5, 1.0))
    choices = st.lists(st.integers(0, 4), min_size=bilevel.param_dim, max_size=bilevel.param_dim)
    theta0 = bilevel.theta0

    def near(k):
        k = jnp.asarray(k)
        return jnp.where(theta0 > 0, theta0 * factors[k], theta0 + shifts[k])

    return choices.map(near)


@st.composite
def bilevel_problems_and_thetas(draw, kinds=BILEVEL_KINDS):
    """A bilevel problem (`bilevel_problems`) and a θ near its `theta0` (`bilevel_thetas`)."""
    bilevel = draw(bilevel_problems(kinds))
    return bilevel, draw(bilevel_thetas(bilevel))

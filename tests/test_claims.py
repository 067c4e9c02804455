"""`rates.falsify`: planted false claims are refuted with counterexamples that their line of
Python reproduces; the toolkit's certified bounds are not refuted; the symbolic side finds
the certificates that imply a claim, and only those."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import problems
import rates
from rates import claims

CONSTANT_ITERATE = "2*alpha*sigma2*(1 - (1 - alpha*mu)**k)/(b*mu) + u0*(1 - alpha*mu)**k"
DECREASING_ITERATE = "Max(k0*u0, 2*a**2*sigma2/(b*(a*mu - 1)))/(k + k0)"
DECREASING_CONDITIONS = ("a/k0 <= 1/(2*L)", "a*mu > 1")

# The planted false claims of the notebook and the command line: each is refuted within the
# default budget (100 settings, 1,000 steps).
PLANTED = {
    # the certified O(1/k) rate with its exponent one step too fast (equal at k = 0)
    "rate_too_fast": ("iterate_error", "C_u*k0/(k + k0)**2", "inverse_time", DECREASING_CONDITIONS),
    # the noise ball at a quarter of its smallest possible value α tr(H⁻¹Σ)/(2b) ≥ ασ²/(2Lb)
    "plateau_quarter": ("iterate_error", "u0*(1 - alpha*mu)**k + alpha*sigma2/(8*L*b)", "constant",
                        ("alpha <= 1/(2*L)",)),
    # the certified decreasing-step bound with its condition aμ > 1 weakened to aμ > 1/4: for
    # aμ < 1/2 the error of a quadratic falls only like k^(−2aμ)
    "weakened_condition": ("iterate_error", DECREASING_ITERATE, "inverse_time", ("a/k0 <= 1/(2*L)", "a*mu > 1/4")),
}


@pytest.fixture(scope="module")
def planted():
    return {name: rates.falsify(quantity, bound, schedule=schedule, conditions=conditions)
            for name, (quantity, bound, schedule, conditions) in PLANTED.items()}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_false_claims_are_refuted_and_reproduced(planted, name):
    result = planted[name]
    assert result.refuted and result.method == "exact"
    example = result.counterexample
    assert example.value > example.bound * (1 + claims.ROUNDING_ALLOWANCE)
    # The line reproduces the value through the public API, at the recorded step only.
    reproduced = eval(example.reproduce, {"jax": jax, "problems": problems, "rates": rates})
    assert reproduced == pytest.approx(example.value, rel=1e-9)
    # The bound there, evaluated independently of the search from the recorded constants.
    _, bound, *_ = PLANTED[name]
    expression = claims.claim("iterate_error", bound, schedule=PLANTED[name][2]).bound
    at = {claims.SYMBOLS[name_]: value for name_, value in example.constants.items()} | {claims.SYMBOLS["k"]: example.k}
    assert float(expression.subs(at)) == pytest.approx(example.bound, rel=1e-9)
    # Shrunk: hypothesis moves the data seed and the drawn options towards their simplest values.
    assert example.seed <= 2**16 and result.max_ratio >= example.ratio > 1


def test_certified_bounds_are_not_refuted():
    """Each certified SGD bound, searched with the default budget: no counterexample. The
    exact curves make this deterministic; docs/claims.md reports a larger measurement."""
    for name, certified in claims.certified_claims().items():
        result = rates.falsify(certified.quantity, certified.bound, schedule=certified.schedule,
                               conditions=certified.conditions, num_steps=500, seed=1)
        assert not result.refuted, (name, str(result.counterexample))
        assert result.examples >= 50 and 0 < result.max_ratio <= 1, name
        assert name in result.implied_by


def test_every_step_agrees_with_the_checkpoints_of_matrix_powers():
    """`every_step=True` steps one at a time; the checkpoints of a constant step come from
    binary powers of the step's matrix. Both are the exact expectation: they agree far inside
    `ROUNDING_ALLOWANCE`."""
    problem = problems.weighted_ridge(16, 3, seed=2)
    step = rates.constant(0.4 / float(problem.constants().L))
    stepped = rates.exact_curves(problem, step_size=step, num_steps=3000, batch_size=2, every_step=True)
    powers = rates.exact_curves(problem, step_size=step, num_steps=3000, batch_size=2)
    assert np.array_equal(stepped.steps, np.arange(3001))
    for name in ("iterate_error", "jacobian_error", "suboptimality"):
        relative = np.abs(getattr(stepped, name)[powers.steps] / getattr(powers, name) - 1)
        assert relative.max() < 1e-3 * claims.ROUNDING_ALLOWANCE, name


def test_implication_by_certificates():
    certified = claims.certified_claims()
    looser = claims.claim("iterate_error", f"2*({CONSTANT_ITERATE})", schedule="constant",
                          conditions=["alpha <= 1/(4*L)"])
    assert claims.implied_by(looser) == ("sgd_constant_iterates",)
    assert claims.implied_by(certified["sgd_decreasing_iterates"]) == ("sgd_decreasing_iterates",)
    stronger = claims.claim("iterate_error", DECREASING_ITERATE, schedule="inverse_time",
                            conditions=["2*a*L <= k0", "a*mu > 2"])
    assert claims.implied_by(stronger) == ("sgd_decreasing_iterates",)
    # The common simplified forms, which need 1 − αμ > 0 and aμ − 1 > 0 from the conditions.
    simplified = claims.claim("iterate_error", "u0*(1 - alpha*mu)**k + 2*alpha*sigma2/(mu*b)", schedule="constant",
                              conditions=["alpha <= 1/(2*L)"])
    assert claims.implied_by(simplified) == ("sgd_constant_iterates",)
    sum_form = claims.claim("iterate_error", "(k0*u0 + 2*a**2*sigma2/(b*(a*mu - 1)))/(k + k0)",
                            schedule="inverse_time", conditions=DECREASING_CONDITIONS)
    assert claims.implied_by(sum_form) == ("sgd_decreasing_iterates",)
    # Negative checks: a weakened condition, a missing one, a smaller bound, another quantity.
    for quantity, bound, schedule, conditions in PLANTED.values():
        assert claims.implied_by(claims.claim(quantity, bound, schedule=schedule, conditions=conditions)) == ()
    assert claims.implied_by(claims.claim("iterate_error", CONSTANT_ITERATE, schedule="constant")) == ()
    assert claims.implied_by(claims.claim("jacobian_error", CONSTANT_ITERATE, schedule="constant",
                                          conditions=["alpha <= 1/(2*L)"])) == ()


def test_a_claim_names_its_constants_with_where_and_refuses_unknown_symbols():
    named = claims.claim("iterate_error", "C/(k + k0)", schedule="inverse_time", conditions=["a*mu > 1"],
                         where={"C": "k0*u0"})
    assert named.bound == claims.SYMBOLS["k0"] * claims.SYMBOLS["u0"] / (claims.SYMBOLS["k"] + claims.SYMBOLS["k0"])
    with pytest.raises(ValueError, match=r"unknown symbols \['C'\]"):
        claims.claim("iterate_error", "C/(k + k0)", schedule="inverse_time")
    with pytest.raises(ValueError, match="which constant steps do not have"):
        claims.claim("iterate_error", "u0*k0/(k + k0)", schedule="constant")
    with pytest.raises(ValueError, match="cannot use k"):
        claims.claim("iterate_error", "u0", schedule="constant", conditions=["k > 3"])
    with pytest.raises(ValueError, match="changes with k"):
        claims.claim("iterate_error", "u0", schedule="inverse_time", conditions=["alpha < 1"])
    with pytest.raises(ValueError, match="must be a relation"):
        claims.claim("iterate_error", "u0", schedule="constant", conditions=["alpha"])
    with pytest.raises(ValueError, match="quantity must be one of"):
        claims.claim("gradient_error", "u0", schedule="constant")
    with pytest.raises(ValueError, match="assumptions other than"):
        claims.claim("iterate_error", sp.Symbol("u0"), schedule="constant")
    with pytest.raises(ValueError, match="no setting of the search satisfies"):
        rates.falsify("iterate_error", "u0", schedule="constant", conditions=["alpha > 2/L"], max_examples=5)


def test_a_bound_that_is_not_a_number_is_a_counterexample():
    """A bound a thousand times the initial error, but NaN where αL > 1/2 (the square root of
    a negative number): a bound that is not a number refutes the claim there."""
    result = rates.falsify("iterate_error", "1000*u0 + sqrt(1/2 - alpha*L)", schedule="constant",
                           generators=("least_squares",), max_examples=30, num_steps=20)
    assert result.refuted and math.isnan(result.counterexample.bound)
    assert result.counterexample.schedule["alpha"] * result.counterexample.constants["L"] > 0.5


def test_monte_carlo_family_refutes_a_false_claim_and_spares_a_certified_one():
    """Logistic regression has no exact curves: 64 seeds a setting, a one-sided z-test at the
    Bonferroni level 0.01/(max_examples · 32). The noise ball at a twentieth of the certified
    constant is refuted; the certified bound is not."""
    false = rates.falsify("iterate_error", "u0*(1 - alpha*mu)**k + alpha*sigma2/(10*mu*b)", schedule="constant",
                          conditions=["alpha <= 1/(2*L)"], family="logistic", max_examples=20, num_steps=400)
    assert false.refuted and false.method == "monte carlo" and false.false_alarm == 0.01
    example = false.counterexample
    assert example.standard_error > 0 and example.value > example.bound
    assert eval(example.reproduce, {"jax": jax, "problems": problems, "rates": rates}) == pytest.approx(
        example.value, rel=1e-6)
    certified = claims.certified_claims()["sgd_constant_iterates"]
    true = rates.falsify(certified.quantity, certified.bound, schedule="constant", conditions=certified.conditions,
                         family="logistic", max_examples=20, num_steps=400)
    # Not refuted; its largest mean ÷ bound (0.93 here) may pass 1 by noise alone without refuting.
    assert not true.refuted


def test_the_search_is_reproducible():
    first, second = (rates.falsify(*PLANTED["plateau_quarter"][:2], schedule="constant",
                                   conditions=PLANTED["plateau_quarter"][3], max_examples=20, num_steps=200)
                     for _ in range(2))
    assert first.counterexample == second.counterexample and first.max_ratio == second.max_ratio


def test_command_line_prints_the_verdict(capsys):
    import experiments.__main__

    status = experiments.__main__.main(["falsify", "--quantity", "iterate_error", "--bound", "C/(k + k0)",
                                        "--define", "C=k0*u0", "--schedule", "inverse_time",
                                        "--condition", "a*mu > 1", "--condition", "a/k0 <= 1/(2*L)",
                                        "--max-examples", "40", "--num-steps", "300"])
    printed = capsys.readouterr().out
    assert status == 1 and "verdict: REFUTED" in printed and "reproduce: rates.exact_curves(" in printed
    assert jnp.asarray(0.0).dtype == jnp.float64  # the command line switched float64 on, as documented

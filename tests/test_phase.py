"""The phase diagram of decreasing steps (`experiments/phase.py`): its fits name the log power,
the coefficient and the exponent of synthetic curves of known form, reject curves of another
form, and a short run on both problems yields consistent, writable results."""

import json
import math

import numpy as np
import pytest

from experiments import phase
from rates.curves import checkpoints

# The checkpoints and window of a full run (K = 10⁷, 20 per decade, the last two decades).
STEPS = checkpoints(10**7, 141)[1:].astype(np.float64)
START = 1e5


def curve(exponent, polynomial, gamma=None, correction=()):
    """`k^exponent·(Σ cⱼ Lʲ + k^(−γ) Σ dⱼ Lʲ)` at `STEPS`, L = log k."""
    L = np.log(STEPS)
    y = np.polynomial.Polynomial(polynomial)(L)
    if correction:
        y = y + STEPS ** -gamma * np.polynomial.Polynomial(correction)(L)
    return STEPS**exponent * y


def claim(exponent, log_power, coefficient):
    return phase.Claim("jacobian_error", exponent, log_power, coefficient, "test")


# The coupled critical point as the exact curves show it (ridge, K = 10⁷): a log³ term
# 144 times smaller than the log² one, and a k^(−1/2) correction.
LOG_CUBED = (3.0, -24.0, 28.0, 0.2)
CRITICAL_CORRECTION = (5.0, -2.0, 0.3)


def test_log_cubed_over_k_is_identified_with_its_coefficient():
    values = curve(-1.0, LOG_CUBED, 0.5, CRITICAL_CORRECTION)
    check = phase.check_claim(STEPS, values, claim(-1.0, 3, 0.2), gamma=0.5, start=START)
    assert check.identified_power == 3
    assert check.coefficient == pytest.approx(0.2, rel=1e-6)
    assert check.matched and check.exponent_status == "pass"
    # Over reachable k the curve looks like log(k)²/k: its local log power is near 2.
    assert 2.0 < check.effective_log_power < 2.3


def test_log_over_k_and_plain_powers_are_identified():
    critical = phase.check_claim(STEPS, curve(-1.0, (40.0, 1.3), 0.5, (3.0, 1.0)), claim(-1.0, 1, 1.3),
                                 gamma=0.5, start=START)
    assert critical.identified_power == 1 and critical.matched
    assert critical.coefficient == pytest.approx(1.3, rel=1e-6)
    # Below 1/2: k^(−2aμ) with the recent-noise correction k^(−1) = k^(−2aμ)·k^(−(1−2aμ)).
    below = phase.check_claim(STEPS, curve(-0.75, (18.0,), 0.25, (-40.0,)), claim(-0.75, 0, None), gamma=0.25,
                              start=START)
    assert below.identified_power == 0 and below.matched and below.exponent_status == "pass"
    assert below.coefficient_ok is None
    # Above 1/2: k·v → c, approached like k^(−(2aμ−1))·log² k; the raw slope is off, the limit is not.
    above = phase.check_claim(STEPS, curve(-1.0, (150.0,), 0.25, (8000.0, -300.0, 20.0)), claim(-1.0, 0, 150.0),
                              gamma=0.25, start=START)
    assert above.identified_power == 0 and above.matched
    assert above.coefficient == pytest.approx(150.0, rel=1e-6)
    assert above.exponent_status == "crossover"


def test_a_wrong_log_power_fails():
    """Negative checks: the claim log³/k fails on a log² curve and on a log⁴ curve, log/k on 1/k."""
    no_cube = curve(-1.0, LOG_CUBED[:3], 0.5, CRITICAL_CORRECTION)
    check = phase.check_claim(STEPS, no_cube, claim(-1.0, 3, 0.2), gamma=0.5, start=START)
    assert check.identified_power == 2 and not check.matched
    assert abs(check.coefficient_error) > 0.9
    fourth = curve(-1.0, (*LOG_CUBED, 0.5), 0.5, CRITICAL_CORRECTION)
    check = phase.check_claim(STEPS, fourth, claim(-1.0, 3, 0.2), gamma=0.5, start=START)
    assert check.identified_power == 4 and not check.matched
    plain = phase.check_claim(STEPS, curve(-1.0, (40.0,), 0.5, (3.0,)), claim(-1.0, 1, 1.3), gamma=0.5,
                              start=START)
    assert plain.identified_power == 0 and not plain.matched


def test_a_wrong_exponent_fails():
    """Negative checks: k^(−0.8) is not 1/k (slope out of band, no polynomial in log k fits
    k^0.2), and k^(−0.75) is not k^(−0.5)·log² k."""
    check = phase.check_claim(STEPS, curve(-0.8, (5.0,)), claim(-1.0, 0, 5.0), gamma=1.0, start=START)
    assert not check.exponent_in_band and not check.matched and check.exponent_status == "FAIL"
    check = phase.check_claim(STEPS, curve(-0.75, (8.0, 1.0)), claim(-0.5, 2, 1.0), gamma=0.5, start=START)
    assert check.exponent_status == "FAIL"


def test_identify_log_power_and_log_slope():
    assert phase.identify_log_power([1e-3, 1e-8, 5e-9, 1e-9, 2e-10]) == 1
    assert phase.identify_log_power([1e-3, 1e-5, 5e-7, 2e-9, 5e-10]) == 3
    assert phase.identify_log_power([1e-6, 2e-7, 4e-8, 6e-9, 1e-9]) == 0
    # Below the rounding floor residuals count as the floor: no spurious improvement.
    assert phase.identify_log_power([1e-6, 1e-14, 1e-16, 1e-18, 1e-20]) == 1
    assert phase.log_slope(STEPS, START) == pytest.approx(math.log(math.log(1e7) / math.log(1e5))
                                                          / math.log(100), rel=0.02)
    assert phase.correction_exponent(0.5) == 0.5
    assert phase.correction_exponent(0.375) == pytest.approx(0.25)
    assert phase.correction_exponent(3.0) == 1.0
    assert phase.describe_form(-1.0, 3) == "log(k)^3/k"
    assert phase.describe_form(-0.5, 2) == "log(k)^2·k^(-0.5)"
    assert phase.describe_form(-1.0, 0) == "1/k"


class Recorder:
    def __init__(self):
        self.labels = []

    def advance(self, label):
        self.labels.append(label)


@pytest.fixture(scope="module")
def short_run():
    """Both problems on a coarse grid at K = 10⁶ (window [10⁴, 10⁶]), as in the quick study."""
    settings = phase.PhaseSettings(grid=(0.25, 0.5, 2.0), num_steps=10**6, critical_steps=None)
    recorder = Recorder()
    return phase.run_phase_diagram(True, recorder, settings=settings), recorder


def test_short_run_on_both_problems(short_run, tmp_path):
    diagram, recorder = short_run
    assert len(recorder.labels) == 6 and recorder.labels[0].startswith("least_squares aμ=0.25")
    assert [p.name for p in diagram.problems] == ["least_squares", "ridge"]
    coupled = {p.name: p.constants.coupled for p in diagram.problems}
    assert coupled == {"least_squares": False, "ridge": True}
    points = {(p.problem, p.a_mu): p for p in diagram.points}
    # The claimed forms: the table of the module docstring.
    assert points["ridge", 0.5].jacobian.claim.log_power == 3
    assert points["ridge", 0.25].jacobian.claim.log_power == 2
    assert points["least_squares", 0.5].jacobian.claim.log_power == 1
    # c₃ = a²g²c₁/3: both from the same μ-direction noise.
    ridge = points["ridge", 0.5]
    g2 = diagram.problems[1].constants.coupling_u2
    assert ridge.jacobian.claim.coefficient == pytest.approx(ridge.a**2 * g2 * ridge.iterate.claim.coefficient / 3)
    # Far from the critical point both errors are c/k with c = decreasing_limit.
    for name in coupled:
        for check in points[name, 2.0].checks:
            assert check.matched and check.exponent_status == "pass"
            assert abs(check.coefficient_error) < 0.01
    # At aμ = 1/2 the iterate's log(k)/k and its c₁ already show.
    for name in coupled:
        iterate = points[name, 0.5].iterate
        assert iterate.identified_power == 1 and iterate.coefficient_ok
    document = json.loads(json.dumps(diagram.as_dict()))
    assert document["grid"] == [0.25, 0.5, 2.0]
    assert set(document["verdicts"]) == set(diagram.verdicts())
    assert len(document["exponents"]["ridge"]["jacobian_error"]) == 3
    text = diagram.markdown()
    assert "| ridge | 0.5 | derivative | log(k)^3/k |" in text and "log(k)²/k" in text
    diagram.draw(tmp_path / "phase.png")
    assert (tmp_path / "phase.png").stat().st_size > 10_000


def test_cases_run_apart_and_merged_give_the_diagram_of_one_run(short_run):
    """The rate report runs each case of the diagram as its own task and merges them."""
    diagram, _ = short_run
    apart = [phase.run(diagram.settings, cases=(case,)) for case in phase.CASES]
    merged = phase.merge(apart)
    assert merged.seconds == pytest.approx(sum(part.seconds for part in apart))
    assert without_seconds(merged.as_dict()) == without_seconds(diagram.as_dict())
    other = phase.PhaseSettings(grid=(0.25, 0.5), num_steps=10**6, critical_steps=None)
    with pytest.raises(ValueError, match="same settings"):
        phase.merge([apart[0], phase.PhaseDiagram(other, apart[1].problems, apart[1].points, 0.0)])


def without_seconds(document):
    """A JSON document without its timings, which differ from run to run."""
    if isinstance(document, dict):
        return {key: without_seconds(value) for key, value in document.items() if key != "seconds"}
    if isinstance(document, list):
        return [without_seconds(value) for value in document]
    return document

"""The smoothing variance study on a tiny setting: schema, finiteness, the reference on a
closed form, the best-strategy summary, and a biased estimator caught by the error."""

import contextlib
import io
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import derivatives
from derivatives.noises import SYMMETRIC_NOISES
from experiments import smoothing as sr

TINY = sr.Settings(tasks=("sort3",), noises=("gaussian", "gumbel"), repetitions=8, num_samples=64,
                   reference_samples=2 ** 13, reference_chunk=2 ** 11, covariates=("none", "value"),
                   samplings=("mc", "rqmc", "cartesian"))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out, stderr = tmp_path_factory.mktemp("smoothing"), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        result = sr.write(out, settings=TINY)
    assert result.passed and set(result.verdicts) == {"sort3 finite"}
    return out, result.result, stderr.getvalue()


def test_progress_is_a_few_whole_lines_off_a_terminal(written):
    *_, stderr = written
    assert "\r" not in stderr
    progress = [line for line in stderr.splitlines() if line.startswith("smoothing study ")]
    assert 1 <= len(progress) <= 8 and "[" in progress[-1]


def test_json_schema_and_values(written):
    out, *_ = written
    document = json.loads((out / "smoothing.json").read_text())
    assert list(document) == ["sort3"]
    expected = {sr.strategy_key(noise, covariate, antithetic, sampling)
                for noise in TINY.noises for covariate in TINY.covariates for antithetic in (False, True)
                for sampling in TINY.samplings if not (antithetic and noise not in SYMMETRIC_NOISES)}
    assert set(document["sort3"]) == expected
    assert "gaussian/value/antithetic/rqmc" in expected and "gumbel/none/plain/mc" in expected
    assert "gumbel/none/antithetic/mc" not in expected  # the Gumbel density is not symmetric
    for entry in document["sort3"].values():
        assert set(entry) == {"variance", "error"}
        assert all(math.isfinite(entry[field]) and entry[field] > 0 for field in entry)
    assert (out / "smoothing.md").exists() and (out / "smoothing_heatmap.png").exists()


def test_cartesian_sizes():
    assert sr.cartesian_size(3, False, 1024) == 1000
    assert sr.cartesian_size(3, True, 1024) == 1024
    assert sr.cartesian_size(5, False, 1024) == 1024
    assert sr.cartesian_size(5, True, 1024) == 486
    assert sr.cartesian_size(64, False, 1024) is None
    task = sr.grid(8)
    assert not any(combo[4] == "cartesian" for combo in sr.combinations(task, sr.QUICK))


def test_reference_of_identity_is_the_identity():
    task = sr.Task("identity", _identity, jnp.array([0.3, -1.2, 2.0]), 0.5, "identity")
    for noise in ("gaussian", "logistic", "gumbel"):
        jacobian, floor = sr.reference_jacobian(task, noise, TINY, jax.random.PRNGKey(3))
        np.testing.assert_allclose(jacobian, np.eye(3), atol=10 * math.sqrt(floor) + 1e-6)
        assert 0 < floor < 1e-3


def _identity(x):
    return x


def test_best_strategy_matches_table(written):
    out, study, _ = written
    results = study["sort3"]["results"]
    best = sr.best_strategies(results, TINY.noises)
    for group, (name, variance, error) in best.items():
        members = [n for n in results if group == "all" or n.startswith(group + "/")]
        ratios = [results[n]["variance"] / results[sr.baseline_key(n.split("/")[0])]["variance"] for n in members]
        assert variance == pytest.approx(min(ratios))
        assert error == pytest.approx(sr.relative(results, name, "error"))
    name, variance, _ = best["all"]
    row = f"| sort3 | `{name}` | {study['sort3']['num_samples'][name]} | {variance:.3g} |"
    assert row in (out / "smoothing.md").read_text()
    for noise in TINY.noises:
        assert sr.relative(results, sr.baseline_key(noise)) == 1.0


def _biased(*args, **kwargs):
    value, jacobian = derivatives.smoothed_gradient(*args, **kwargs)
    return value, 1.25 * jacobian                 # every score multiplied by 1.25


def test_biased_estimator_has_larger_error():
    settings = sr.Settings(tasks=("sort3",), noises=("gaussian",), repetitions=16, num_samples=1024,
                           reference_samples=2 ** 13, reference_chunk=2 ** 11, covariates=("value",),
                           samplings=("rqmc",), antithetic=(False,))
    tasks = {"sort3": sr.sorting(3)}
    honest = sr.run_study(settings, tasks=tasks)["sort3"]["results"]
    biased = sr.run_study(settings, tasks=tasks, estimator=_biased)["sort3"]["results"]
    key = "gaussian/value/plain/rqmc"
    assert biased[key]["error"] > 5 * honest[key]["error"]

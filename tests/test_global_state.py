"""Importing the packages changes no global state, and float64 is required, not imposed.

A user's float32 model in the same program must keep its dtype: importing `problems`,
`derivatives`, `rates` (figures and reports included) or `proofs_check` leaves every JAX
configuration value and matplotlib's backend as they were, and creates no array (one
made before the user enables float64 would be float32 for good). With x64 off, every public
entry point raises one `Float64Required` that says how to enable it. Each check runs in
a fresh interpreter, since the test session itself runs with x64 on.
"""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json
import jax, matplotlib
config_before = {name: repr(value) for name, value in jax.config.values.items()}
backend_before = repr(dict.__getitem__(matplotlib.rcParams, "backend"))

import problems, derivatives, rates, proofs_check
import problems.programs, problems.strategies, rates.dsgd, experiments.figures, experiments.report
import experiments.dsgd, experiments.smoothing

from jax._src import xla_bridge
arrays_made_at_import = xla_bridge.backends_are_initialized()  # an array made then would be float32
changed = sorted(name for name, value in jax.config.values.items() if config_before.get(name) != repr(value))
backend_after = repr(dict.__getitem__(matplotlib.rcParams, "backend"))

import jax.numpy as jnp
from problems.validation import Float64Required

def raises_float64_required(call):
    try:
        call()
    except Float64Required as error:
        return "Float64Required: " + str(error)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return "no error"

generator = raises_float64_required(lambda: problems.ridge(20, 3))
jax.config.update("jax_enable_x64", True)
P, M, key = problems.ridge(20, 3), problems.programs.mixture1d(), jax.random.key(0)
jax.config.update("jax_enable_x64", False)
calls = {
    "problems.ridge": None,
    "Problem.solution": lambda: P.solution(P.theta0),
    "Problem.constants": lambda: P.constants(),
    "derivatives.unrolled": lambda: derivatives.unrolled(P, P.theta0, key, step_size=0.01, num_steps=3),
    "derivatives.implicit_jacobian": lambda: derivatives.implicit_jacobian(P, P.theta0),
    "derivatives.central_difference_jacobian": lambda: derivatives.central_difference_jacobian(jnp.sin, [1.0]),
    "derivatives.estimate_gradient": lambda: derivatives.estimate_gradient(M, M.theta0, key, "score", 4),
    "derivatives.smoothed_gradient": lambda: derivatives.smoothed_gradient(jnp.sign, [0.0], key),
    "rates.error_curves": lambda: rates.error_curves(P, step_size=0.01, num_steps=3, num_seeds=2),
    "rates.dsgd.train": lambda: rates.dsgd.train(M, "score", key=key, num_steps=2, log_every=1),
}
outcomes = {name: generator if call is None else raises_float64_required(call) for name, call in calls.items()}
print("RESULT " + json.dumps({"x64": jax.config.read("jax_enable_x64"), "changed": changed,
                              "arrays_made_at_import": arrays_made_at_import,
                              "backend": [backend_before, backend_after], "outcomes": outcomes}))
"""


def run_fresh_interpreter():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("JAX_")},
                              "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])


def test_importing_changes_no_configuration_and_every_entry_point_asks_for_float64():
    result = run_fresh_interpreter()
    assert result["changed"] == [], "importing the packages changed JAX's configuration"
    assert result["backend"][0] == result["backend"][1], "importing the packages changed matplotlib's backend"
    assert result["x64"] is False
    assert result["arrays_made_at_import"] is False, "importing the packages started a JAX backend"
    for name, outcome in result["outcomes"].items():
        assert outcome.startswith("Float64Required: "), f"{name}: {outcome}"
        assert 'jax.config.update("jax_enable_x64", True)' in outcome, f"{name}: {outcome}"

"""The engine at scale: the seed axis split over devices, chunks and processes gives the
curves of one device, and memory does not grow with the number of steps.

Device counts are fixed when JAX starts, so each configuration runs in a subprocess on
the CPU: 1 device, 4 devices (`--xla_force_host_platform_device_count=4`), two processes
of 2 devices joined by `jax.distributed` (4 global devices), and 1 device compiled for
an older instruction set (`--xla_cpu_max_isa=SSE4_2`).

What is compared bit for bit, and what at a tolerance (docs/performance.md):

- The same configuration twice, and two processes of 2 devices against one process of 4:
  each device runs the same compiled program on the same seeds (2 per device), so the
  bits cannot differ, whatever instruction set the machine has.
- 1 device against 4, and chunks of 3 against one chunk: each device vmaps a different
  number of seeds, and XLA may vectorise the two shapes differently (on a CPU with
  AVX-512 they differ in the last bits); an older instruction set does the same. These
  agree to `RTOL`, six orders of magnitude below what a broken reduction produces.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import problems
from rates import curves

# Relative tolerance between differently compiled shapes. Rounding differences start at
# 1 ulp (2e-16) per operation and are contracted by every SGD step, not amplified: the
# largest seen is 2e-15 (4 devices) and 4e-16 (SSE4.2); a broken engine is off by > 1e-2.
RTOL = 1e-9

SCRIPT = """
import json, re, sys, types
import jax
from jax.sharding import NamedSharding, PartitionSpec
jax.config.update("jax_enable_x64", True)
if len(sys.argv) > 2:  # process id, process count, coordinator port
    jax.distributed.initialize(f"127.0.0.1:{sys.argv[3]}", int(sys.argv[2]), int(sys.argv[1]))
import problems, rates
import rates.curves
if "break" in sys.argv[1:2]:
    # Leave each device's starting point invariant over the mesh: its gradient in x is
    # then transposed into a sum over devices, the error this comparison must catch.
    rates.curves.lax = types.SimpleNamespace(**{**vars(jax.lax), "pcast": lambda x, *a, **k: x})

def curves(problem, num_seeds, chunk=None):
    c = rates.error_curves(problem, step_size=0.05, num_steps=300, num_seeds=num_seeds, key=jax.random.key(3),
                           num_checkpoints=8, seeds_per_chunk=chunk)
    return [getattr(c, name).tolist() for name in ("iterate_error", "jacobian_error", "suboptimality",
                                                    "iterate_error_se", "jacobian_error_se")]

def collectives(compiled):
    return len(re.findall(r"\\b(?:all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)(?:-start)?\\(",
                          compiled.as_text()))

def engine_collectives(problem):
    _, arguments = rates.curves._plan(problem, None, 0.05, 300, 8, 1, jax.random.key(3), 8, None, None, None)
    return collectives(rates.curves._curves.lower(*arguments).compile())

def gather_collectives():  # what the count sees in a program that gathers a sharded array
    mesh = rates.curves.seed_mesh()
    split, everywhere = (NamedSharding(mesh, PartitionSpec(*spec)) for spec in (("seeds",), ()))
    gather = jax.jit(lambda x: jax.lax.with_sharding_constraint(2 * x, everywhere), in_shardings=split)
    return collectives(gather.lower(jax.ShapeDtypeStruct((8,), "float64")).compile())

logistic, ridge = problems.logistic(30, 3, seed=1), problems.weighted_ridge(40, 4, seed=2)
print("RESULT " + json.dumps({
    "devices": jax.device_count(), "processes": jax.process_count(),
    "collectives": engine_collectives(ridge), "collectives of a gather": gather_collectives(),
    "logistic, S = 8": curves(logistic, 8), "weighted ridge, S = 8": curves(ridge, 8),
    "weighted ridge, S = 7": curves(ridge, 7), "weighted ridge, S = 8, chunks of 3": curves(ridge, 8, 3),
    "logistic, S = 8, again": curves(logistic, 8),
}))
"""

RUNS = ("logistic, S = 8", "weighted ridge, S = 8", "weighted ridge, S = 7")


def environment(devices, *flags):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    return dict(env, JAX_PLATFORMS="cpu",
                XLA_FLAGS=" ".join([f"--xla_force_host_platform_device_count={devices}", *flags]))


def result(stdout):
    return json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT "))[7:])


def run(devices, *args, flags=()):
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=environment(devices, *flags),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return result(out.stdout)


def run_two_processes():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    workers = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(i), "2", port], env=environment(2),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    return [result(stdout) for stdout, _ in outputs]


@pytest.fixture(scope="module")
def one_device():
    return run(1)


@pytest.fixture(scope="module")
def four_devices():
    return run(4)


def assert_close_curves(actual, expected):
    """Means to `RTOL`; standard errors to `RTOL` of their mean, the scale of rounding in a
    spread of values of that size (an SE of exactly 0, every seed alike at k = 0, may come
    out as 4e-17 in another shape)."""
    for name in RUNS:
        got, want = np.asarray(actual[name]), np.asarray(expected[name])
        np.testing.assert_allclose(got[:3], want[:3], rtol=RTOL, atol=0, err_msg=name)
        error_gap, allowed = np.abs(got[3:] - want[3:]), RTOL * (np.abs(want[:2]) + np.abs(want[3:]))
        assert np.all(error_gap <= allowed), f"{name}: standard errors differ by {error_gap.max():.3g}"


def assert_identical_curves(actual, expected):
    for name in RUNS:
        np.testing.assert_array_equal(np.asarray(actual[name]), np.asarray(expected[name]), err_msg=name)


def test_the_same_configuration_gives_the_same_bits(one_device):
    assert one_device["devices"] == 1
    np.testing.assert_array_equal(np.asarray(one_device["logistic, S = 8, again"]),
                                  np.asarray(one_device["logistic, S = 8"]))


def test_chunks_and_padding_do_not_change_the_curves(one_device):
    np.testing.assert_allclose(np.asarray(one_device["weighted ridge, S = 8, chunks of 3"]),  # padded to 9
                               np.asarray(one_device["weighted ridge, S = 8"]), rtol=RTOL, atol=0)


def test_four_devices_give_the_curves_of_one(one_device, four_devices):
    assert four_devices["devices"] == 4
    assert_close_curves(four_devices, one_device)  # S = 7 pads to 8 over the 4 devices


def test_the_engine_runs_no_collective_over_devices(four_devices):
    """Each device returns its own seeds' statistics and the host gathers them: a collective
    in the program would wait for every device's part, and on a CPU, where another program
    (on another thread) may hold the thread pool's other thread for a minute, XLA
    aborts a collective after 40 s (`make report` once did). Negative check: the count finds
    the collective of a program that gathers a sharded array."""
    assert four_devices["collectives"] == 0
    assert four_devices["collectives of a gather"] >= 1


def test_two_processes_of_two_devices_give_the_bits_of_one_process_of_four(four_devices):
    for process in run_two_processes():
        assert (process["devices"], process["processes"]) == (4, 2)
        assert_identical_curves(process, four_devices)


def test_an_older_instruction_set_gives_the_curves_within_the_tolerance(one_device):
    """What a CPU of another kind does: the same program compiled for SSE4.2 instead of this
    machine's widest vector units."""
    older = run(1, flags=("--xla_cpu_max_isa=SSE4_2",))
    assert_close_curves(older, one_device)


def test_the_comparison_catches_gradients_summed_over_devices(one_device):
    """Negative check: with the starting point left device-invariant, every device
    steps along the sum of all devices' gradients; the curves then differ by far more
    than the tolerance."""
    broken = run(4, "break")
    with pytest.raises(AssertionError):
        assert_close_curves(broken, one_device)
    iterate = np.asarray(broken["weighted ridge, S = 8"][0])
    reference = np.asarray(one_device["weighted ridge, S = 8"][0])
    assert np.max(np.abs(iterate / reference - 1)) > 1e6 * RTOL


def test_memory_does_not_grow_with_the_number_of_steps():
    """XLA's allocation plan for K = 2,000 and K = 20,000 steps is the same (K is a value,
    not a shape); the same measurement on a scan that keeps every iterate grows tenfold."""
    problem = problems.weighted_ridge(100, 8, seed=0)
    options = dict(step_size=0.01, num_seeds=16, num_checkpoints=16)
    short, long = (curves.compiled_memory(problem, num_steps=k, **options) for k in (2_000, 20_000))
    assert short == long

    def keep_every_iterate(num_steps):
        def trajectory(theta, key):
            def step(x, k):
                batch = problem.sample(jax.random.fold_in(key, k), 1)
                x = x - 0.01 * jax.grad(problem.loss)(x, theta, batch)
                return x, x
            return lax.scan(step, jnp.zeros(problem.dim), jnp.arange(num_steps))[1]

        def run_all(theta, keys):
            return jax.vmap(jax.jacfwd(trajectory), (None, 0))(theta, keys)

        stats = jax.jit(run_all).lower(problem.theta0, jax.random.split(jax.random.key(0), 16)).compile()
        stats = stats.memory_analysis()
        return stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes

    assert keep_every_iterate(20_000) > 5 * keep_every_iterate(2_000)


def test_bad_scale_options_are_refused():
    problem = problems.ridge(20, 3)
    with pytest.raises(ValueError, match="seeds_per_chunk"):
        curves.error_curves(problem, step_size=0.01, num_steps=10, num_seeds=4, seeds_per_chunk=0)
    with pytest.raises(ValueError, match="single axis"):
        mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("batch",))
        curves.error_curves(problem, step_size=0.01, num_steps=10, num_seeds=4, mesh=mesh)
    with pytest.raises(TypeError, match="arguments of error_curves"):
        curves.compiled_memory(problem, step_size=0.01, num_steps=10, num_seeds=4, seeds=4)


def test_default_chunk_fits_the_cpu_cache_budget_and_takes_everything_elsewhere():
    fewest, most = curves.CPU_CHUNK_SEEDS
    assert curves.default_chunk(256, 64, 64, "cpu") == curves.CPU_CHUNK_BYTES // (8 * 64 * 64)
    assert curves.default_chunk(256, 64, 2, "cpu") == most
    assert curves.default_chunk(200, 64, 2, "cpu") == 100     # two even chunks, not 128 + 72 (+ 56 padding)
    assert curves.default_chunk(256, 256, 256, "cpu") == fewest
    assert curves.default_chunk(3, 64, 64, "cpu") == 3
    assert curves.default_chunk(10, 4096, 4096, "cpu") == 1    # 128 MiB a seed: one at a time
    assert curves.default_chunk(256, 64, 64, "gpu") == 256

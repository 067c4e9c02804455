"""The worker processes of the rate report (`experiments.workers`): one per core, each pinned
to its own core, with one JAX device, float64 and their parent's compilation cache."""

import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from experiments import workers

PINNABLE = hasattr(os, "sched_setaffinity") and len(workers.schedulable_cores()) >= 2


def assert_pinned_apart(descriptions):
    """Every worker seen runs on exactly one core, and no two share one."""
    by_pid = {d["pid"]: d for d in descriptions}
    assert len(by_pid) >= 2, "fewer than two workers took a task"
    cores = [tuple(d["cores"]) for d in by_pid.values()]
    assert all(len(c) == 1 for c in cores), f"a worker may run on several cores: {cores}"
    assert len(set(cores)) == len(cores), f"two workers share a core: {cores}"


@pytest.mark.skipif(not PINNABLE, reason="needs os.sched_setaffinity and two cores")
def test_each_worker_is_pinned_to_its_own_core():
    count = len(workers.schedulable_cores())
    with workers.pinned_workers() as pool:
        seen = list(pool.map(workers.describe, [0.5] * (4 * min(count, workers.MAX_WORKERS))))
    assert_pinned_apart(seen)
    assert all(d["x64"] and d["devices"] == 1 for d in seen)


@pytest.mark.skipif(not PINNABLE, reason="needs os.sched_setaffinity and two cores")
def test_the_check_sees_workers_that_are_not_pinned():
    """Negative check: a plain pool's workers may run on every core."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        seen = list(pool.map(workers.describe, [0.5] * 8))
    with pytest.raises(AssertionError, match="several cores"):
        assert_pinned_apart(seen)


def test_the_pool_has_no_more_workers_than_asked_for():
    with workers.pinned_workers(max_workers=1) as pool:
        seen = list(pool.map(workers.describe, [0.0] * 3))
    assert len({d["pid"] for d in seen}) == 1
    assert seen[0]["pid"] != os.getpid()


def test_the_cache_directory_is_named_by_the_machine():
    """One machine, one name; other instruction-set flags, another name."""
    flags = "flags : fpu sse sse2 avx avx2"
    assert workers.machine_key(flags) == workers.machine_key(flags)
    assert workers.machine_key(flags) != workers.machine_key(flags + " avx512f")
    assert len(workers.machine_key()) == 16


# In a fresh interpreter: switching the cache on is for the whole process, and the test
# process must keep its own settings.
CACHE_SCRIPT = """
import json, sys
import jax
from experiments import workers
if sys.argv[1] != "none":
    print(json.dumps({"directory": str(workers.compilation_cache(sys.argv[1]))}))
with workers.pinned_workers(max_workers=1) as pool:
    print(json.dumps(pool.submit(workers.describe).result()))
"""


def run_cache_script(root: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", CACHE_SCRIPT, root], capture_output=True, text=True, check=True,
                          timeout=300)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_workers_share_the_compilation_cache_of_their_parent(tmp_path):
    """`compilation_cache` puts the cache in a directory of the root named by the machine,
    and the workers that `pinned_workers` starts after it use the same one; without it,
    they have none (the negative check)."""
    parent, worker = run_cache_script(str(tmp_path))
    assert parent["directory"] == str(tmp_path / workers.machine_key())
    assert worker["compilation_cache"] == parent["directory"]
    (alone,) = run_cache_script("none")
    assert alone["compilation_cache"] is None


# The rate report's order: the workers start (importing the report's modules) before the
# parent has chosen its cache, which reaches them with each task.
EARLY_SCRIPT = """
import json, pathlib, sys
from experiments import workers
workers.start_early(("experiments.report",), max_workers=1)
import jax
import jax.numpy as jnp
with workers.pinned_workers(max_workers=1) as pool:
    if sys.argv[2] == "compiled first":
        pool.submit(jnp.prod, jnp.arange(3.0)).result()
    directory = workers.compilation_cache(sys.argv[1]) if sys.argv[1] != "none" else None
    seen = pool.submit(workers.describe).result()
    pool.submit(jnp.sum, jnp.arange(7.0)).result()          # compiles in the worker
files = [] if directory is None else [p.name for p in pathlib.Path(directory).iterdir()]
print(json.dumps({"directory": None if directory is None else str(directory), "worker": seen, "files": files}))
"""


def run_early_script(root: str, order: str = "cache first") -> dict:
    done = subprocess.run([sys.executable, "-c", EARLY_SCRIPT, root, order], capture_output=True, text=True,
                          check=True, timeout=300)
    return json.loads(done.stdout.splitlines()[-1])


def test_workers_started_early_take_the_cache_chosen_after_them(tmp_path):
    """`start_early` before `compilation_cache`: the worker reports the parent's directory and
    what it compiles lands there, even after it compiled before the cache was chosen (a
    changed cache setting is read again at the next compilation); without a cache, the
    worker has none and nothing is written (the negative check)."""
    found = run_early_script(str(tmp_path))
    assert found["worker"]["compilation_cache"] == found["directory"] == str(tmp_path / workers.machine_key())
    assert found["worker"]["pid"] != os.getpid() and found["worker"]["x64"]
    assert found["files"], "the worker compiled a program but wrote nothing to the cache"
    alone = run_early_script("none")
    assert alone["worker"]["compilation_cache"] is None and alone["files"] == []
    late = run_early_script(str(tmp_path / "late"), "compiled first")
    assert late["worker"]["compilation_cache"] == late["directory"] and late["files"]

"""The worker processes of the rate report (`experiments.workers`): one per core, each pinned
to its own core, with one JAX device and float64."""

import multiprocessing
import os
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

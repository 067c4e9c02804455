"""Worker processes for a study's independent tasks: one per CPU core, each pinned to its core.

Why processes pinned to cores rather than threads of one process: XLA:CPU compiles a
program for the cores its process may run on, and splits the larger operations of a loop
step into parallel tasks over them (`outer_dimension_partitions` in the compiled text).
In a loop of many small steps the hand-off between threads costs more than it gains: on a
2-core machine, `rates.error_curves` at d = p = 64 with 256 seeds and 5,000 steps took
4.0 s on both cores and 1.7 s with the process pinned to one (`docs/performance.md`). A
process pinned to one core compiles single-threaded programs, and one such process per
core keeps every core busy at that speed. The tasks and their results cross between
processes by pickling, so tasks are module-level functions of plain arguments.

Where a process cannot be pinned (no `os.sched_setaffinity`: macOS, Windows), the workers
run unpinned; the results are the same.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

# Each worker holds a JAX runtime (about 0.5 GiB): no more than this many.
MAX_WORKERS = 8


def schedulable_cores() -> list[int]:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _start_worker(cores) -> None:
    """In a new worker, before JAX starts: take a core, pin to it, one CPU device, float64."""
    core = cores.get()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    import jax

    jax.config.update("jax_num_cpu_devices", 1)
    jax.config.update("jax_enable_x64", True)   # every study checks rates in float64


def pinned_workers(max_workers: int | None = None) -> ProcessPoolExecutor:
    """A process pool with one worker per schedulable core (at most `max_workers` and
    `MAX_WORKERS`), each pinned to its own core, with one JAX CPU device and float64.
    Workers are started with `spawn`: a fresh interpreter, no JAX state inherited."""
    cores = schedulable_cores()
    count = min(len(cores), MAX_WORKERS, max_workers or len(cores))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    for core in cores[:count]:
        queue.put(core)
    return ProcessPoolExecutor(count, mp_context=context, initializer=_start_worker, initargs=(queue,))


def describe(pause: float = 0.0) -> dict:
    """What the process it runs in is: `pid`, the `cores` it may run on, whether JAX is in
    float64 and how many devices it has; after `pause` seconds (so that, given several
    tasks at once, every worker of a pool takes one)."""
    import jax

    time.sleep(pause)
    return {"pid": os.getpid(), "cores": schedulable_cores(), "x64": bool(jax.config.read("jax_enable_x64")),
            "devices": jax.device_count()}


__all__ = ["MAX_WORKERS", "describe", "pinned_workers", "schedulable_cores"]

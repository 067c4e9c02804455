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

import functools
import gc
import hashlib
import importlib
import multiprocessing
import os
import pathlib
import platform
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor

# Each worker holds a JAX runtime (about 0.5 GiB): no more than this many.
MAX_WORKERS = 8


def schedulable_cores() -> list[int]:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


# JAX's settings of the persistent compilation cache, passed on to the workers.
CACHE_SETTINGS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                  "jax_persistent_cache_min_entry_size_bytes")


def _start_worker(cores, preload) -> None:
    """In a new worker, before JAX starts: take a core, pin to it, one CPU device, float64;
    then import `preload` and move what the imports made out of the garbage collector's way
    (`gc.freeze`: tracing makes many short-lived objects, and each full collection would
    otherwise walk every object of the imported modules again)."""
    core = cores.get()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    import jax

    jax.config.update("jax_num_cpu_devices", 1)
    jax.config.update("jax_enable_x64", True)   # every study checks rates in float64
    for module in preload:
        importlib.import_module(module)
    gc.freeze()


def _configured(cache_settings: dict, task, *args):
    """`task(*args)` under the parent's compilation-cache settings. They travel with each
    task rather than with the worker's start, so that workers may start before the parent
    has chosen its cache (JAX reads a changed cache setting again at its next compilation,
    `tests/test_workers.py`)."""
    import jax

    for name, value in cache_settings.items():
        if getattr(jax.config, name) != value:
            jax.config.update(name, value)
    return task(*args)


def _cache_settings() -> dict:
    """This process's compilation-cache settings, when it has a cache (`compilation_cache`)."""
    import jax

    if not jax.config.jax_compilation_cache_dir:
        return {}
    return {name: getattr(jax.config, name) for name in CACHE_SETTINGS}


def _ready() -> int:
    return os.getpid()


class PinnedWorkers(Executor):
    """A process pool of pinned workers (`pinned_workers`) whose tasks run under the
    compilation-cache settings their parent had when it submitted them."""

    def __init__(self, count: int, preload: Sequence[str] = ()):
        cores = schedulable_cores()
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        for core in cores[:count]:
            queue.put(core)
        self._pool = ProcessPoolExecutor(count, mp_context=context, initializer=_start_worker,
                                         initargs=(queue, tuple(preload)))
        # A spawned pool starts its processes as tasks arrive: one trivial task per worker
        # starts them all now, each importing `preload`.
        for _ in range(count):
            self._pool.submit(_ready)

    def submit(self, fn, /, *args, **kwargs):
        return self._pool.submit(_configured, _cache_settings(), functools.partial(fn, **kwargs), *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait, cancel_futures=cancel_futures)


def _worker_count(max_workers: int | None) -> int:
    cores = schedulable_cores()
    return min(len(cores), MAX_WORKERS, max_workers or len(cores))


# Pools started by `start_early`, for the next `pinned_workers` call of this process.
_STARTED_EARLY: dict[int, PinnedWorkers] = {}


def start_early(preload: Sequence[str] = (), max_workers: int | None = None) -> None:
    """Start the workers that the next `pinned_workers(max_workers)` call returns now, each
    importing `preload` (the modules its tasks live in). A program calls this before its own
    imports, so that the workers import while it does rather than after it (the rate report:
    `experiments.__main__`)."""
    count = _worker_count(max_workers)
    if count not in _STARTED_EARLY:
        _STARTED_EARLY[count] = PinnedWorkers(count, preload)


def pinned_workers(max_workers: int | None = None) -> PinnedWorkers:
    """A process pool with one worker per schedulable core (at most `max_workers` and
    `MAX_WORKERS`), each pinned to its own core, with one JAX CPU device and float64: the
    pool `start_early` started, if any, else a new one. Workers are started with `spawn`:
    a fresh interpreter, no JAX state inherited but the persistent compilation cache,
    when this process has one (`compilation_cache`) as it submits a task."""
    count = _worker_count(max_workers)
    early = _STARTED_EARLY.pop(count, None)
    return early if early is not None else PinnedWorkers(count)


def machine_key(cpu_description: str | None = None) -> str:
    """A short hash of what a compiled program depends on: the architecture, the CPU's
    instruction-set flags (`/proc/cpuinfo`, where there is one) and the JAX and jaxlib
    versions. `cpu_description`: the flags to use instead of this machine's."""
    import jax
    import jaxlib

    if cpu_description is None:
        cpu_description = platform.processor()
        cpuinfo = pathlib.Path("/proc/cpuinfo")
        if cpuinfo.exists():
            flags = [line for line in cpuinfo.read_text().splitlines() if line.startswith(("flags", "Features"))]
            cpu_description = flags[0] if flags else cpu_description
    text = "\n".join([platform.machine(), cpu_description, jax.__version__, jaxlib.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compilation_cache(root: str | os.PathLike) -> pathlib.Path:
    """Switch on JAX's persistent compilation cache for this process (and the workers that
    `pinned_workers` starts after it), in a directory of `root` named by `machine_key`,
    caching every program however fast it compiles. Returns the directory.

    Why: compilation is about a third of the rate report's work on a CPU, and a worker
    that compiles a program puts it where the other workers find it. Why a directory per
    machine: XLA:CPU compiles for the instruction set of the machine it runs on, and its
    cache does not tell one machine from another (it loads a program compiled elsewhere
    with an error-level log line about "machine features" and the warning that it may
    fail with an illegal instruction); a cache shared between machines, as a home
    directory on a network drive is, then stays apart. The log lines come on every load
    even on the machine that compiled the program (jaxlib 0.10.1): `TF_CPP_MIN_LOG_LEVEL=3`
    in the environment before JAX is imported silences them (`make report` sets it)."""
    import jax

    directory = pathlib.Path(root) / machine_key()
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def describe(pause: float = 0.0) -> dict:
    """What the process it runs in is: `pid`, the `cores` it may run on, whether JAX is in
    float64, how many devices it has and its compilation cache's directory; after `pause`
    seconds (so that, given several tasks at once, every worker of a pool takes one)."""
    import jax

    time.sleep(pause)
    return {"pid": os.getpid(), "cores": schedulable_cores(), "x64": bool(jax.config.read("jax_enable_x64")),
            "devices": jax.device_count(), "compilation_cache": jax.config.jax_compilation_cache_dir}


__all__ = ["MAX_WORKERS", "PinnedWorkers", "compilation_cache", "describe", "machine_key", "pinned_workers",
           "schedulable_cores", "start_early"]

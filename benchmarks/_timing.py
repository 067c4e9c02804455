"""What every benchmark script shares: timing after compilation and the machine's description."""

from __future__ import annotations

import os
import platform
import time

import jax


def best_time(function, repeats: int) -> tuple[float, float]:
    """(seconds of the first call, compilation included; best of `repeats` later calls)."""
    start = time.perf_counter()
    jax.block_until_ready(function())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return first, min(times)


def interleaved_best(functions: dict, repeats: int) -> dict[str, float]:
    """Best of `repeats` calls of each function, calls interleaved round-robin after one
    warm-up call each, so that a slow spell of a shared machine hits every entry alike."""
    for function in functions.values():
        jax.block_until_ready(function())
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            jax.block_until_ready(function())
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def machine() -> str:
    """One line: CPU model and core count, JAX backend, devices and version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    devices = jax.devices()
    return (f"{cpu}, {os.cpu_count()} cores; jax {jax.__version__}, {len(devices)} "
            f"{devices[0].platform} device{'s' if len(devices) > 1 else ''}, float64")

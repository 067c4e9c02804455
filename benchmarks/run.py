"""Run the whole benchmark suite, one script per process, and summarise the targets.

    python benchmarks/run.py            # everything (about 25 minutes on 2 cores)
    python benchmarks/run.py --quick    # smaller runs of every script (about 5 minutes)

Scripts: `error_curves.py` (once with one CPU device and, on a machine with several
cores, once more with every core exposed as a device, `JAX_NUM_CPU_DEVICES`),
`memory.py`, `unrolled.py`, `dsgd.py`, `estimators.py`, `smoothing.py`, `constants.py`,
`exact_curves.py`, `efficiency.py`.
Each prints its own table with ratios measured in the same run; the summary at the end
collects the lines that start with `RESULT` and checks them against the targets.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent

FULL = [
    ("error_curves.py", [], {}),
    ("error_curves.py", [], {"JAX_NUM_CPU_DEVICES": "cores"}),
    ("memory.py", [], {}),
    ("unrolled.py", [], {}),
    ("dsgd.py", [], {}),
    ("estimators.py", [], {}),
    ("smoothing.py", [], {}),
    ("constants.py", [], {}),
    ("exact_curves.py", [], {}),
    ("efficiency.py", [], {}),
]
QUICK = [
    ("error_curves.py", ["--seeds", "64", "--loop-steps", "100"], {}),
    ("error_curves.py", ["--seeds", "64", "--loop-steps", "30"], {"JAX_NUM_CPU_DEVICES": "cores"}),
    ("memory.py", ["--seeds", "64"], {}),
    ("unrolled.py", ["--seeds", "64", "--skip-recursion"], {}),
    ("dsgd.py", ["--steps", "200", "--repeats", "1", "--models", "textmsg", "walk"], {}),
    ("estimators.py", ["--samples", "4000", "--repeats", "2"], {}),
    ("smoothing.py", ["--repeats", "2"], {}),
    ("constants.py", ["--quick"], {}),
    ("exact_curves.py", ["--quick"], {}),
    ("efficiency.py", ["--dims", "64", "--seeds", "64", "--steps", "2000", "--probes"], {}),
]

# (pattern in a RESULT line, description, test of the captured number)
TARGETS = [
    (r"error_curves/baseline = ([\d.]+)", "error_curves / hand-written baseline ≤ 1.0", lambda v: v <= 1.0),
    (r"jitted loop/error_curves = ([\d.]+)", "Python loop (jitted grad) / error_curves ≥ 1000", lambda v: v >= 1000),
    (r"eager loop/error_curves = ([\d.]+)", "Python loop (eager grad) / error_curves ≥ 1000", lambda v: v >= 1000),
    (r"peak RSS K = 20,000 / K = 2,000 = ([\d.]+)", "peak memory K = 20,000 / K = 2,000 ≤ 1.2", lambda v: v <= 1.2),
    (r"constants\(\) ridge at d = 1,000, n = 2,000 = ([\d.]+) s", "ridge constants(), d = 1,000, n = 2,000 ≤ 10 s",
     lambda v: v <= 10),
    (r"constants\(\) weighted_ridge at d = 1,000, n = 2,000 = ([\d.]+) s",
     "weighted_ridge constants(), d = 1,000, n = 2,000 ≤ 10 s", lambda v: v <= 10),
    (r"dense weighted_ridge / constants\(\) at d = 200 = ([\d.]+)",
     "dense per-sample eigvalsh / constants() at d = 200 ≥ 10", lambda v: v >= 10),
    (r"exact_curves least_squares at d = p = 20, n = 200, K = 100,000 = ([\d.]+) s",
     "exact_curves least squares, d = p = 20, n = 200, K = 1e5 ≤ 60 s", lambda v: v <= 60),
    (r"exact_curves weighted_ridge at d = p = 20, n = 200, K = 100,000 = ([\d.]+) s",
     "exact_curves weighted ridge, d = p = 20, n = 200, K = 1e5 ≤ 60 s", lambda v: v <= 60),
    (r"sketched/full work-normalised variance at p = 64 = ([\d.]+)",
     "sketched / full work-normalised variance, p = 64 ≤ 0.6", lambda v: v <= 0.6),
    (r"sketched/full work-normalised variance at p = 256 = ([\d.]+)",
     "sketched / full work-normalised variance, p = 256 ≤ 0.3", lambda v: v <= 0.3),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs of every script")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    results = []
    for script, options, extra_env in QUICK if args.quick else FULL:
        env = dict(os.environ)
        for name, value in extra_env.items():
            if value == "cores":
                if cores == 1:
                    break
                value = str(cores)
            env[name] = value
        else:
            label = " ".join([script, *options] + [f"{k}={env[k]}" for k in extra_env])
            print(f"\n=== {label}", flush=True)
            start = time.perf_counter()
            process = subprocess.Popen([sys.executable, str(HERE / script), *options], cwd=HERE, env=env,
                                       stdout=subprocess.PIPE, text=True)
            for line in process.stdout:
                print(line, end="", flush=True)
                if line.startswith("RESULT"):
                    results.append((label, line))
            if process.wait():
                print(f"{script} failed with exit status {process.returncode}")
                return process.returncode
            print(f"=== {time.perf_counter() - start:.0f} s")
    print("\nSummary")
    failed = 0
    for label, line in results:
        for pattern, description, holds in TARGETS:
            match = re.search(pattern, line)
            if match:
                value = float(match.group(1))
                failed += not holds(value)
                print(f"  {'met    ' if holds(value) else 'MISSED '} {description:50s} {value:10.3f}   ({label})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

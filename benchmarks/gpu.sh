#!/usr/bin/env bash
# The error-curve and efficiency benchmarks on a CUDA machine, with the tables they print on
# a CPU (about 5 minutes on one recent GPU; under 10 minutes is the budget).
#
#   bash benchmarks/gpu.sh              # installs JAX's CUDA build into .venv-gpu, then runs
#   PYTHON=/path/to/python bash benchmarks/gpu.sh --no-install
#                                       # an interpreter that already has the project and CUDA JAX
#
# Installing the CUDA build: docs/performance.md, "On a GPU". The script refuses to run on
# anything but a GPU, so that a CPU fallback is never reported as GPU figures.
set -euo pipefail
cd "$(dirname "$0")/.."

install=1
for argument in "$@"; do
  case "$argument" in
    --no-install) install=0 ;;
    *) echo "usage: bash benchmarks/gpu.sh [--no-install]" >&2; exit 2 ;;
  esac
done

if [ "$install" = 1 ]; then
  if [ ! -x .venv-gpu/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv-gpu
  fi
  .venv-gpu/bin/python -m pip install --quiet --upgrade pip
  # The same jax as pyproject.toml allows, with the CUDA 12 plugin and its libraries from pip.
  .venv-gpu/bin/python -m pip install --quiet -e . "jax[cuda12]>=0.6,<0.10.2"
  PYTHON=.venv-gpu/bin/python
fi
PYTHON="$(cd "$(dirname "${PYTHON:-python3}")" && pwd)/$(basename "${PYTHON:-python3}")"

"$PYTHON" - <<'CHECK'
import jax
devices = jax.devices()
if devices[0].platform != "gpu":
    raise SystemExit(f"no GPU visible to JAX (devices: {devices}); see docs/performance.md, 'On a GPU'")
print(f"{len(devices)} GPU(s): {', '.join(d.device_kind for d in devices)}; jax {jax.__version__}")
CHECK

cd benchmarks
start=$SECONDS
# The CPU's configuration (d = p = 64, S = 256, K = 5,000), then 16× the seeds, where a GPU
# has the parallelism to fill. The Python loop runs a few steps only: it is host-bound.
"$PYTHON" error_curves.py --loop-steps 30 --repeats 3
"$PYTHON" error_curves.py --seeds 4096 --loop-steps 10 --repeats 3
"$PYTHON" efficiency.py --dims 64 256 --seeds 256
"$PYTHON" efficiency.py --dims 64 256 --seeds 4096 --no-baseline
echo "gpu.sh: $((SECONDS - start)) s"

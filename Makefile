# Two entry points, each installing what it needs into .venv first:
#   make report   the main job
#   make test     the test suite (hypothesis profile "ci"; `make test-thorough` for the long one)
#   make lint     ruff, in seconds
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: report dsgd demo lint test test-thorough benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# On a CPU, every core is exposed as a JAX device and the seeds are split over them
# (docs/performance.md); the curves do not depend on the device count, up to rounding.
CPU_DEVICES ?= $(shell nproc 2>/dev/null || echo 1)

report: $(STAMP)
	JAX_NUM_CPU_DEVICES=$(CPU_DEVICES) $(BIN)/python -m rates report --out report

dsgd: $(STAMP)
	$(BIN)/python -m rates dsgd --out dsgd-report

demo: $(STAMP)
	$(BIN)/python -m derivatives

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest

# The property tests at 100 random examples each, before a release. The notebooks and the
# scale tests draw nothing from hypothesis, so they run in `make test` only.
test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -q --durations=30 \
		--ignore=tests/test_notebooks.py --ignore=tests/test_scale.py

benchmark: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

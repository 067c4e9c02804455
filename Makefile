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

# The report runs its tasks in one worker process per core, each pinned to its core, and
# keeps its compiled programs in .cache/ for the next run; XLA:CPU logs an error line for
# each program it loads from there, which TF_CPP_MIN_LOG_LEVEL=3 silences
# (experiments/workers.py, docs/performance.md). `python -m experiments` is `python -m rates`
# without importing the library first: the workers start, and import, while this process does.
report: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -m experiments report --out report --compilation-cache .cache/jax

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
	rm -rf $(VENV) .pytest_cache .hypothesis .cache

# Quick start:  make demo   (simulator + 2-minute capture + derivation + DQ summary)
#               make test   (installs, then runs the test suite; CI runs exactly this)
VENV    ?= .venv
PY      := $(VENV)/bin/python
BIN     := $(VENV)/bin
PYTHON3 ?= python3
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# the default suite runs on this many pytest-xdist workers (0: one by one, in this process)
TEST_WORKERS ?= 2

.PHONY: install demo test test-slow ui lint-monitoring bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: install
	$(BIN)/ofi-cvd-harvest demo

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS)

test-slow: install
	$(PY) -m pytest -q -m slow

ui: install
	$(BIN)/ofi-cvd-harvest-ui

bench: install
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:   # everything the demo and captures wrote; data/.gitkeep stays
	find data -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf artifacts

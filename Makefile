# Set-up is part of every target: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-torch run test test-fast lint validate benchmark

# No torch: the engine's network runs in NumPy (docs/install.md).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,celery]'
	touch $(STAMP)

install: $(STAMP)

# The torch extra: the torch twin of the network and the tests that cross-check it. From the
# stock package index torch is the CUDA build (several GB with its NVIDIA packages); for the
# CPU build add --extra-index-url https://download.pytorch.org/whl/cpu.
install-torch: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,celery,torch]'

run: $(STAMP)
	$(BIN)/tmpipe run

# Two pytest-xdist workers (2 cores); --dist loadfile keeps each test file in one worker, so
# the module-scoped servers and deployments of a file start once.
test: $(STAMP)
	AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY=False $(BIN)/python -m pytest -n 2 --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not production"

# ruff and mypy as configured in pyproject.toml ([tool.ruff], [tool.mypy]); CI runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m mypy

validate: $(STAMP)
	$(BIN)/tmpipe validate

benchmark: $(STAMP)
	$(BIN)/python benchmarks/engine.py

# Set-up is part of every target: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# uv (from PyPI, into the venv) resolves and installs: on an empty cache `make install` took 65 s
# with it and 353 s with pip on this machine kind (parallel downloads). The venv keeps pip: the
# torch extra's local CPU wheel is installed with it (.ci/run); uv does not read pip's configuration.
# --compile-bytecode: uv, unlike pip, leaves the installed packages without .pyc files, so under
# PYTHONDONTWRITEBYTECODE=1 (or a read-only venv) every process compiled Airflow, MLflow and the
# rest from source each time it imported them: a one-symbol `tmpipe run` took 23-27 s of CPU
# instead of 14 s, and each Airflow process and test run paid the same.
UV := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python

.PHONY: install install-torch run test test-fast lint validate benchmark

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv

# `make run` needs the project and its dependencies only (no torch: the engine's network runs
# in NumPy, docs/install.md).
$(RUN_STAMP): pyproject.toml | $(BIN)/uv
	$(UV) -e .
	touch $(RUN_STAMP)

# Tests, lint and the Celery deployment add the test and celery extras.
$(STAMP): $(RUN_STAMP)
	$(UV) -e '.[test,celery]'
	touch $(STAMP)

install: $(STAMP)

# The torch extra: the torch twin of the network and the tests that cross-check it. From the
# stock package index torch is the CUDA build (several GB with its NVIDIA packages); for the
# CPU build add --extra-index-url https://download.pytorch.org/whl/cpu.
install-torch: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,celery,torch]'

run: $(RUN_STAMP)
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

validate: $(RUN_STAMP)
	$(BIN)/tmpipe validate

benchmark: $(STAMP)
	$(BIN)/python benchmarks/engine.py

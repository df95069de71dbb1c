# Set-up is part of every target: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast validate benchmark

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch pinned first. pip takes 2.13.0 from a local CPU wheel where one lies on disk (as on the CI
	# machines); from the stock package index the same pin is the CUDA build, several GB with its
	# NVIDIA packages. For a CPU build elsewhere add --index-url https://download.pytorch.org/whl/cpu.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,celery]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/tmpipe run

# Two pytest-xdist workers (CI has 2 cores); --dist loadgroup keeps each module that starts
# servers (xdist_group) in one worker, so they start once.
test: $(STAMP)
	AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY=False $(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not production"

validate: $(STAMP)
	$(BIN)/tmpipe validate

benchmark: $(STAMP)
	$(BIN)/python benchmarks/engine.py

# Every target sets itself up: system packages through apt when missing, then a .venv with Banyan
# installed in editable mode. Running a target twice does no work the second time.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= .demo

.PHONY: demo test lint bench setup system-packages clean

demo: setup
	$(BIN)/banyan demo $(DEMO)

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check inventory_scan legacy_adapters cutover specs flows processes reconcile inbox gateway events cli scripts tests
	$(BIN)/ruff format --check inventory_scan legacy_adapters cutover specs flows processes reconcile inbox gateway events cli scripts tests
	$(BIN)/mypy

bench: setup
	@bash scripts/setup/system_packages.sh wrk
	$(BIN)/python scripts/bench/scan_files.py
	$(BIN)/python scripts/bench/scan_ddl.py
	$(BIN)/python scripts/bench/gateway.py
	$(BIN)/python scripts/bench/cutover_propagation.py
	$(BIN)/python scripts/bench/fleet.py
	$(BIN)/python scripts/bench/events.py
	$(BIN)/python -c 'import deepdiff' 2>/dev/null || $(BIN)/python -m pip install --quiet 'deepdiff>=8'
	$(BIN)/python scripts/bench/compare.py

setup: system-packages $(STAMP)

system-packages:
	@bash scripts/setup/system_packages.sh

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Banyan needs Python 3.11 or newer; set PYTHON=python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache

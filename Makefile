# The commands a newcomer needs. Only Python 3.11 and make are assumed.
PYTHON ?= python3.11
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PYTENSOR_FLAGS := base_compiledir=$(CURDIR)/$(VENV)/pytensor-cache

.PHONY: run test bench lint docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/funnelsim run scenarios/checkout.yaml

test: $(VENV)/.installed-test
	@# CI only: headless Chromium for tests/test_browser.py (which skips without it).
	@if [ "$$CI" = "true" ] && ! command -v chromium >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
			|| echo "chromium not installed: the browser test will skip"; \
	fi
	$(BIN)/python -m pytest -n 2 -q

# Every target of the benchmarks as a TARGET line, saved, then README.md's table from them.
bench: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	set -o pipefail; ($(BIN)/python benchmarks/engines.py && $(BIN)/python benchmarks/analysis.py \
		&& $(BIN)/python benchmarks/assumptions.py && $(BIN)/python benchmarks/profit_plan.py \
		&& $(BIN)/python benchmarks/service.py && $(BIN)/python benchmarks/calibration.py) | tee benchmarks/last-run.txt
	$(BIN)/python benchmarks/targets.py benchmarks/last-run.txt README.md

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# Regenerate every output and image the README and the tutorial show (docs/generate.py),
# and the scenario reference.
docs: $(VENV)/.installed-test
	$(BIN)/funnelsim schema --markdown -o docs/scenario-reference.md --force
	$(BIN)/python docs/generate.py

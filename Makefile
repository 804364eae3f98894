# One command per habit. Every target sets up the virtual environment first if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install demo validate test soak check lint types schemas clean
.DEFAULT_GOAL := help

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

help:  ## this list
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z]+):.*## /  make \1\t/' | expand -t 18

install: $(STAMP)  ## set up .venv with jobrunner and its development tools

demo: $(STAMP)  ## watch a rollout of the example jobs to a simulated fleet (broker included)
	$(BIN)/jobrunner demo

validate: $(STAMP)  ## check the example manifests in jobs.d/
	$(BIN)/jobrunner validate jobs.d

test: $(STAMP)  ## the test suite (integration tests start their own MQTT broker)
	$(BIN)/pytest

lint: $(STAMP)  ## ruff, formatting, and the import layers of DESIGN §2
	$(BIN)/ruff check jobrunner tests bench
	$(BIN)/ruff format --check jobrunner tests bench
	$(BIN)/lint-imports

types: $(STAMP)  ## mypy --strict on the package, the tests and the benchmarks
	$(BIN)/mypy

soak: $(STAMP)  ## the slow tests too (scale, long fault runs): run before a release
	$(BIN)/pytest -m "slow or not slow"

check: lint types test  ## everything CI runs

schemas: $(STAMP)  ## regenerate schemas/ and docs/manifest-reference.md from the models
	$(BIN)/python -m jobrunner.manifests.schema schemas
	$(BIN)/python -m jobrunner.manifests.reference docs/manifest-reference.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

.PHONY: bench
bench: $(STAMP)  ## the performance benchmarks (own mosquitto and fleet; about 17 min)
	$(BIN)/python -m bench

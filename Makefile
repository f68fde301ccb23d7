# gpuyard: every target creates .venv and installs from nothing when needed.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench plan clean venv

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: 2.13.0 is the CPU wheel on local disk; anything else pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/gpuyard demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check scheduler planner simulations tests examples
	$(BIN)/ruff format --check scheduler planner simulations tests examples
	$(BIN)/mypy scheduler simulations planner   # strict on scheduler/core and planner (pyproject)

plan: $(STAMP)
	$(BIN)/gpuyard plan simulations/scenarios/china-dc.yaml --out out/plan

bench: $(STAMP)
	$(BIN)/python -m simulations.bench --out BENCHMARKS.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

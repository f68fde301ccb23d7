# gpuyard: every target creates .venv and installs from nothing when needed.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the versions CI installs (every install of the venv takes them); none while the file is absent
CONSTRAINTS := $(wildcard constraints.txt)
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: demo test lint bench plan clean venv gpu-check constraints

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: 2.13.0 is the CPU wheel on local disk; anything else pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet $(PIP_C) torch==2.13.0
	$(BIN)/pip install --quiet $(PIP_C) -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# constraints.txt from the venv: pip freeze less gpuyard itself (editable) and any direct URL,
# torch's local tag dropped (torch==2.13.0 takes the CPU wheel on local disk, PyPI's CUDA one
# elsewhere). After a change to pyproject.toml's dependencies: make constraints, commit both.
# Newer versions of everything: make clean; rm constraints.txt; make constraints.
constraints: $(STAMP)
	@{ echo "# The versions CI installs: make test runs pip install -c constraints.txt -e '.[dev]'."; \
	   echo "# Written by 'make constraints' (pip freeze of .venv, Python $$($(BIN)/python -c 'import platform; print(platform.python_version(), platform.machine())')); do not edit by hand."; \
	   $(BIN)/pip freeze --exclude-editable --exclude gpuyard \
	     | grep -v ' @ ' | sed -E 's/^(torch==[^+]+)[+].*/\1/'; } > constraints.txt.tmp
	@mv constraints.txt.tmp constraints.txt
	@touch $(STAMP)   # the venv is what the file says
	@echo "constraints.txt: $$(grep -c '==' constraints.txt) pinned versions"

demo: $(STAMP)
	$(BIN)/gpuyard demo

# every test, in two runs: those without Ray on both cores (pytest-xdist, one module per worker
# at a time), then the Ray integration tests one after another (each starts local Ray clusters
# whose timing the other core's load would disturb); fails if either fails
test: $(STAMP)
	@rc=0; $(BIN)/python -m pytest -q -m 'not ray' -n 2 --dist loadfile || rc=$$?; \
	 $(BIN)/python -m pytest -q -m ray || rc=$$?; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check scheduler planner simulations tests examples
	$(BIN)/ruff format --check scheduler planner simulations tests examples
	$(BIN)/mypy scheduler simulations planner   # strict on scheduler/core, scheduler/policies and planner (pyproject)

# tests/gpu on this machine's NVIDIA GPUs (NVML, CUDA torch, NCCL; each module skips with its
# reason where something is missing), bounded to 5 minutes; the output is also in
# out/gpu-check.txt. CUDA torch: the venv's torch must be a CUDA build.
gpu-check: $(STAMP)
	@mkdir -p out
	@{ if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L; \
	   else echo "nvidia-smi: not found"; fi; } 2>&1 | tee out/gpu-check.txt
	@{ timeout 300 $(BIN)/python -m pytest -q -m gpu tests/gpu -rA 2>&1; \
	   echo $$? > out/.gpu-check.rc; } | tee -a out/gpu-check.txt
	@rc=$$(cat out/.gpu-check.rc); rm -f out/.gpu-check.rc; \
	 if [ "$$rc" = 124 ]; then echo "gpu-check: timed out after 300 s" | tee -a out/gpu-check.txt; fi; \
	 exit $$rc

plan: $(STAMP)
	$(BIN)/gpuyard plan simulations/scenarios/china-dc.yaml --out out/plan

bench: $(STAMP)
	$(BIN)/python -m simulations.bench --out BENCHMARKS.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# Two commands do all the set-up:  `make demo`  and  `make test`.
# The environment (.venv) is made once from the pinned lock file; a second make reinstalls nothing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
# pytest-xdist workers for `make test`; a file's tests stay on one worker (its module fixtures run
# once). Two workers on the 2-core CI machine: 990 s -> 686 s, the Snakemake and subprocess tests'
# start-up and waits overlapping the torch tests' computing.
TEST_WORKERS ?= 2
# Rules call `python -m pipeline.<stage>`: the venv's python must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help demo test lint bench envs clean-demo
# A bare `make` lists the targets (it would otherwise run the first rule, the install).
.DEFAULT_GOAL := help

help:
	@echo "make targets:"
	@echo "  help              this list (a bare make)"
	@echo "  demo              the whole graph on the synthetic city -> demo/results/fvd_table.csv and report.html"
	@echo "  test              the test suite (pytest)"
	@echo "  lint              snakemake --lint on the workflow with the study's config.yaml"
	@echo "  bench             every benchmarks/bench_*.py"
	@echo "  envs              regenerate envs/*.yaml (cluster conda environments) from the lock file"
	@echo "  clean-demo        delete the demo's folder (demo/), never results/"
	@echo "  $(STAMP)  only make the environment (.venv, once; PYTHON=python3.11 picks the interpreter)"
	@echo "Variables: PYTHON ($(PYTHON)), CORES ($(CORES), for demo), TEST_WORKERS ($(TEST_WORKERS), for test). The study runs with snakemake (README)."

$(STAMP): requirements/lock.txt requirements/constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c requirements/constraints.txt -r requirements/lock.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The whole graph on the synthetic city, ending in demo/results/fvd_table.csv. It works in a
# folder of its own (results, logs, Snakemake's records), so it never reruns or overwrites the
# study's results/ beside it, and clean-demo cannot delete them.
DEMO := demo
DEMO_RUN := $(BIN)/snakemake --cores $(CORES) --show-failed-logs --directory $(DEMO) --configfile $(abspath config/demo.yaml)
demo: $(STAMP)
	$(DEMO_RUN)
	$(DEMO_RUN) --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/snakemake --lint

bench: $(STAMP)
	for bench in benchmarks/bench_*.py; do $(BIN)/python $$bench || exit 1; done

# Regenerate envs/*.yaml (cluster conda environments) from the lock file.
envs: $(STAMP)
	$(BIN)/python requirements/sync_envs.py --write

clean-demo:
	rm -rf $(DEMO)

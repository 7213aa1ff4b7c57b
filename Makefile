# Two commands do everything on a fresh machine:
#   make run    build the environment, then run the whole pipeline (dvc repro)
#   make test   build the environment, then run the test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3)  # resolved before PATH gains .venv/bin
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLOTS_TEMPLATE := workflow/plots/offline.html
# Stage commands call `python`, `dvc` and `snakemake`: the environment's, whatever the caller's PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: env system-deps run test bench plots clean-env

env: $(STAMP) $(PLOTS_TEMPLATE)

# The virtual environment is rebuilt whenever the lock file or pyproject change.
# torch first and alone: pip then takes the local CPU wheel instead of pulling CUDA wheels.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==$$(sed -n 's/^torch==//p' requirements.lock)"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# `dvc plots show` loads vega from a CDN by default (a blank page offline): an offline page template with the
# pinned vega builds inline, fetched once from the npm registry. Best effort: without it, plots need internet.
$(PLOTS_TEMPLATE): scripts/fetch_vega.py | $(STAMP)
	$(BIN)/python scripts/fetch_vega.py --out $@ || echo "warning: no offline plots template: dvc plots show needs internet"

plots: env
	dvc plots show --html-template $(PLOTS_TEMPLATE)

# Optional system tools (Opus baseline, headless browser test); best effort, needs root + apt.
# Skipped when both are already installed, so repeated runs stay fast.
system-deps:
	@if command -v opusenc >/dev/null && command -v chromium >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opus-tools chromium >/dev/null \
	  || echo "warning: could not install opus-tools/chromium: the Opus baseline and the report-page test will be skipped"; \
	else echo "note: not root or no apt-get: install opus-tools (Opus baseline) and chromium (report-page test) yourself"; fi

run: env system-deps
	dvc repro

test: env system-deps
	$(BIN)/python -m pytest -q

# The quick benchmarks (minutes in all). The long ones are run by hand: recipe_budget.py (30 min per recipe),
# train_convergence.py, gpu_check.sh (a GPU machine); see the README.
QUICK_BENCHMARKS := cli_speed evaluate_speed prepare_speed quantizer_speed train_speed
bench: env
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	for b in $(QUICK_BENCHMARKS); do $(BIN)/python benchmarks/$$b.py || exit 1; done

clean-env:
	rm -rf $(VENV)

# Workflow checks, too slow for `make test` (minutes each; tiny config in workflow/params-tiny.yaml):
#   make check-rebuild   two `dvc repro` builds in fresh clones of HEAD give byte-identical outputs
#   make check-parity    `dvc repro` and `snakemake` builds give byte-identical outputs
#   make check-recovery  a params typo under `dvc repro` costs no retrain; overrides re-run stages across engines
#   make check-remote    push to a DVC remote, pull in fresh clones: nothing rebuilt; experiments and run cache
#   make check-multinode two node launchers and a c10d rendezvous on this machine: same weights, exact resume
#   make test-slurm      a one-node SLURM cluster on this machine runs the workflow (root, Debian)
#   make test-slurm-multinode  a two-node SLURM cluster on this machine runs train as one sbatch job on both
#   make report-diff     metrics/params of the workspace against BASE (default main), as Markdown
.PHONY: check-rebuild check-parity check-recovery check-remote check-multinode test-slurm test-slurm-multinode \
	report-diff
BASE ?= main

check-rebuild: env
	$(BIN)/python scripts/check_rebuild.py --engines dvc dvc

check-parity: env
	$(BIN)/python scripts/check_rebuild.py --engines dvc snakemake

check-recovery: env
	$(BIN)/python scripts/check_recovery.py

check-remote: env
	$(BIN)/python scripts/check_remote.py

check-multinode: env
	$(BIN)/python scripts/check_multinode.py

test-slurm: env
	scripts/slurm-local.sh

test-slurm-multinode: env
	NODES=2 scripts/slurm-local.sh

report-diff: env
	scripts/report_diff.sh $(BASE)

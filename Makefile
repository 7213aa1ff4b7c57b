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
# Resemblyzer (the speaker-similarity encoder's weights) last and without its declared dependencies: see the lock.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==$$(sed -n 's/^torch==//p' requirements.lock)"
	grep -iv '^resemblyzer==' requirements.lock > $(VENV)/requirements-deps.txt
	$(BIN)/python -m pip install --quiet -r $(VENV)/requirements-deps.txt
	$(BIN)/python -m pip install --quiet --no-deps "$$(grep -i '^resemblyzer==' requirements.lock)"
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

# The lint and type gate first (ruff lint + format check, mypy; configured in pyproject.toml), then the tests.
test: env system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PYTHONUNBUFFERED=1 $(BIN)/python -m pytest -q

# The quick benchmarks (minutes in all). The long ones are run by hand: experiments.recipe_budget (30 min per
# recipe), experiments.train_convergence, experiments/gpu_check.sh (a GPU machine); see the README.
QUICK_BENCHMARKS := cli_speed evaluate_speed prepare_speed quantizer_speed train_speed
bench: env
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	for b in $(QUICK_BENCHMARKS); do $(BIN)/python -m benchmarks.$$b || exit 1; done

clean-env:
	rm -rf $(VENV)

# Workflow checks, too slow for `make test` (minutes each; tiny config in workflow/params-tiny.yaml): the tests
# marked `check` in tests/workflow/checks/test_checks.py (their docstring says what each proves).
#   make check-rebuild / check-parity / check-recovery / check-remote / check-multinode / check-lean /
#   test-slurm[-multinode]
#   make report-diff     metrics/params of the workspace against BASE (default main), as Markdown
.PHONY: check-rebuild check-parity check-recovery check-remote check-multinode test-slurm test-slurm-multinode \
	check-lean report-diff
BASE ?= main
CHECKS := $(BIN)/python -m pytest -m check -s -q tests/workflow/checks/test_checks.py

check-rebuild: env
	$(CHECKS) -k test_two_dvc_builds

check-parity: env
	$(CHECKS) -k test_dvc_and_snakemake

check-recovery: env
	$(CHECKS) -k test_a_params_typo

check-remote: env
	$(CHECKS) -k test_a_dvc_remote

# The wheel alone (no extras) in a fresh environment outside the checkout: CLI and Python API on a real clip.
check-lean: env
	$(BIN)/python -m pytest -m check -s -q tests/test_packaging.py

check-multinode: env
	$(CHECKS) -k test_two_simulated_nodes

test-slurm: env
	$(CHECKS) -k "test_a_local_slurm_cluster and one-node"

test-slurm-multinode: env
	$(CHECKS) -k "test_a_local_slurm_cluster and two-nodes"

report-diff: env
	scripts/report_diff.sh $(BASE)

#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) as one command for a GPU machine with PyTorch installed and no
# internet: `--wheels DIR` installs the project's other dependencies from a folder of wheels first
# (made here with `pip download`, see the README). Fits in 8 minutes on one H100/H200 with the default
# `--minutes 5`; without CUDA it runs the CPU fallback of every step.
#
#   benchmarks/gpu_check.sh [--wheels DIR] [--corpus DIR --format F] [--minutes 5] [recipe_budget.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
while (($#)); do
  case "$1" in
    --wheels) wheels="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ -n "${wheels:-}" ]]; then
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --target /tmp/telucodec-site "${wheels}"/*.whl
  export PYTHONPATH="/tmp/telucodec-site${PYTHONPATH:+:${PYTHONPATH}}"
fi
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m benchmarks.gpu_check "${args[@]}"

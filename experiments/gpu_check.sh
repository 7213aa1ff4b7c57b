#!/usr/bin/env bash
# The GPU check (experiments/gpu_check.py) as one command for a GPU machine with PyTorch installed and no
# internet: `--bundle DIR` (made here by scripts/device_bundle.py) installs the project's other dependencies
# from DIR/wheels and puts DIR/bin (opus-tools) on PATH first; `--wheels DIR` installs a folder of wheels
# alone. Without CUDA it runs the CPU fallback of every step.
#
#   experiments/gpu_check.sh [--bundle DIR | --wheels DIR] [--corpus DIR --format F] [--minutes 2] [recipe_budget.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
while (($#)); do
  case "$1" in
    --wheels) wheels="$2"; shift 2 ;;
    --bundle) wheels="$2/wheels"; export PATH="$(cd "$2" && pwd)/bin:${PATH}"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ -n "${wheels:-}" ]]; then
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --target /tmp/telucodec-site "${wheels}"/*.whl
  export PYTHONPATH="/tmp/telucodec-site${PYTHONPATH:+:${PYTHONPATH}}"
fi
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" -m experiments.gpu_check "${args[@]}"

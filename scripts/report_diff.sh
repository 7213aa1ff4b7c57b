#!/usr/bin/env bash
# Markdown summary of what a change does to the pipeline's results: `dvc metrics diff` and
# `dvc params diff` of the workspace against a base revision (default: main).
#
#   scripts/report_diff.sh [BASE]        e.g. `make report-diff BASE=origin/main`
#
# Metrics and plots data are committed (cache: false), so the base side is read from git alone.
# The pull-request workflow (.github/workflows/pr-metrics.yml) posts this same text as a comment.
set -euo pipefail

base="${1:-main}"
dvc="${DVC:-dvc}"

if ! git rev-parse --verify --quiet "${base}^{commit}" >/dev/null; then
  echo "error: report-diff: '${base}' is not a git revision here (try origin/main after git fetch)" >&2
  exit 2
fi
if ! command -v "${dvc}" >/dev/null; then
  echo "error: report-diff: '${dvc}' not found (run 'make env' and use the venv, or set DVC=...)" >&2
  exit 2
fi

section() {  # title, then the dvc subcommand; a diff without rows says so instead of an empty table
  local title="$1" out
  shift
  out="$("${dvc}" "$@" --md "${base}")"
  if [ "$(grep -c '^|' <<<"${out}")" -le 2 ]; then
    out="_No change._"
  fi
  printf '### %s\n\n%s\n\n' "${title}" "${out}"
}

printf '## Results of this change (`%s` -> workspace)\n\n' "$(git rev-parse --short "${base}")"
section "Scores (reports/scores/<set>/<kbps>kbps-<system>.json: PESQ, STOI, DNSMOS and dB higher is better, mel distance lower is better)" metrics diff
section "Parameters" params diff

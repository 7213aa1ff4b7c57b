#!/usr/bin/env bash
# A training run that outlives a sitting: experiments.recipe_budget from a snapshot of one commit, in the background,
# its checkpoints, log and results inside the checkout (runs/, ignored by git; never /tmp, which has been lost).
#
#   scripts/pinned_run.sh NAME [COMMIT] -- RECIPE_BUDGET_ARGS...
#   scripts/pinned_run.sh causal -- --recipes causal-handover-la0 --budget-steps 10000 --checkpoint-every 2500 \
#       --init-from pretrained/telucodec-te/telucodec-te.safetensors
#
# A checkpoint resumes only a run of the same parameters, data and code (codec/train/fingerprint.py), and the code
# of a checkout moves on between sittings: the run executes `git archive COMMIT` (default HEAD) unpacked in
# runs/code-COMMIT, so the same command started again after a kill, a reboot or the next session picks up its
# last checkpoint exactly. When the checkpoints are gone, continue from the run's export instead
# (`--init-from <its codec.safetensors or a shipped export>`); ship_pretrained.py --init-from records that in the
# provenance. Work folder: runs/rb (--work overrides); log: runs/NAME.log; threads: OMP_NUM_THREADS (default all).
set -euo pipefail
root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
name=${1:?usage: scripts/pinned_run.sh NAME [COMMIT] -- RECIPE_BUDGET_ARGS...}
shift
commit=HEAD
if [ "${1:-}" != "--" ] && [ $# -gt 0 ]; then commit=$1; shift; fi
[ "${1:-}" = "--" ] && shift
sha=$(git -C "$root" rev-parse --short=12 "$commit^{commit}")
code="$root/runs/code-$sha"
if [ ! -d "$code" ]; then
  mkdir -p "$root/runs"
  tmp=$(mktemp -d "$root/runs/.code-$sha.XXXX")
  git -C "$root" archive "$sha" | tar -x -C "$tmp"
  mv "$tmp" "$code"
fi
# Path arguments are relative to the checkout's root (made absolute: the run executes in the snapshot).
args=() prev="" have_work="" have_out="" have_corpus=""
for a in "$@"; do
  case "$prev" in
    --work|--out|--init-from|--corpus|--recipe-dir|--params|--extra-corpus)
      [[ "$a" != /* ]] && a="$root/$a" ;;
  esac
  case "$a" in --work) have_work=1 ;; --out) have_out=1 ;; --corpus) have_corpus=1 ;; esac
  args+=("$a") prev=$a
done
[ -z "$have_work" ] && args+=(--work "$root/runs/rb")
[ -z "$have_out" ] && args+=(--out "$root/runs/out")
[ -z "$have_corpus" ] && args+=(--corpus "$(cd "$root/.." && pwd)/shared/corpora/chai-bisket-te")
cd "$code"
# The driver's module at that commit: experiments/ since the drivers left benchmarks/, benchmarks/ before.
driver=experiments.recipe_budget
[ -f "$code/experiments/recipe_budget.py" ] || driver=benchmarks.recipe_budget
PYTHONPATH="$code" nohup "$root/.venv/bin/python" -m "$driver" "${args[@]}" \
  >> "$root/runs/$name.log" 2>&1 &
echo "started $name (pid $!, $driver) from commit $sha: log runs/$name.log"

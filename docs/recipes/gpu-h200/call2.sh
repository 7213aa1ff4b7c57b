#!/usr/bin/env bash
# Device call 2: the gpu recipe's training speed, eager (one process) and compiled under torchrun (DDP x1, bf16),
# with the fixed timer (whole iterations) and no per-step checkpoint-state copy.
set -uo pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s); stamp() { echo "[device +$(( $(date +%s) - T0 ))s] $*"; }
STEPS=${STEPS:-80}; W=${WORK:-/tmp/g2}; CORPUS=${CORPUS:-.gpu/corpus/chai-bisket-te}
if [[ -d .whl ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
mkdir -p $W
python3 - "$W" "$STEPS" "$CORPUS" <<'PY' || exit 1
import sys
from pathlib import Path
from benchmarks.stage_runs import load_yaml, write_params
from pipeline.params import merge_params as merge
w, steps, corpus = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
d = merge(load_yaml(Path("params.yaml")), load_yaml(Path("workflow/recipes/gpu.yaml")))
d = merge(d, {"prepare": {"corpus": str(Path(corpus).resolve()), "format": "ulca"},
              "seed_codebooks": {"num_frames": 4096},
              "train": {"steps": steps, "validate_every": steps, "checkpoint_every": steps, "valid_max_examples": 4}})
write_params(d, w / "eager.yaml")
write_params(merge(d, {"train": {"compile": True}}), w / "compiled.yaml")
PY
stamp "params"
python3 -m pipeline.prepare --out $W/shards --stats $W/stats.json --rejected $W/rejected.csv --params $W/eager.yaml | tail -2
stamp "prepared"
python3 -m pipeline.seed_codebooks --shards $W/shards --out $W/seed.safetensors --metrics $W/seed.json --params $W/eager.yaml | tail -1
stamp "seeded"
for mode in eager compiled; do
  if [[ $mode == eager ]]; then run=(python3 -m pipeline.train); else run=(timeout ${COMPILE_TIMEOUT:-170} python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m pipeline.train); fi
  "${run[@]}" --shards $W/shards --init $W/seed.safetensors --checkpoints $W/$mode/ckpt --out $W/$mode/codec.safetensors \
    --live $W/$mode/live --timings $W/$mode/timings.json --params $W/$mode.yaml 2>&1 | tr '\r' '\n' | grep -v "step/s\|s/step" | tail -25
  stamp "$mode exit ${PIPESTATUS[0]}"; cat $W/$mode/timings.json 2>/dev/null; echo
done

#!/usr/bin/env bash
# The train stage's command under both engines: `python -m pipeline.train "$@"` on the GPUs this job was
# given, with one torchrun process per GPU when there are two or more.
#
#   scripts/launch-train.sh --shards data/shards --init ... --out ... --live ...
#
# GPU count N, first that applies:
#   $TELUCODEC_GPUS          set by the Snakefile to the job's `gpu` resource (local runs and SLURM jobs)
#   $CUDA_VISIBLE_DEVICES    the devices a scheduler handed out (SLURM sets it for --gpus jobs)
#   nvidia-smi -L            every GPU of the machine (a plain `dvc repro`)
#   0                        no GPU: CPU
# N = 0 hides every GPU (a job granted none must not use one); N = 1 is a plain single process;
# N > 1 runs `torchrun --standalone --nproc_per_node N` (single node; batch sizes are per process).
set -euo pipefail

count_visible() {  # "0,1,3" -> 3; "" or "-1" -> 0
  local list="$1" n=0 id
  IFS=',' read -ra ids <<<"${list}"
  for id in "${ids[@]}"; do
    [[ -n "${id// /}" && "${id}" != "-1" ]] && n=$((n + 1))
  done
  echo "${n}"
}

if [[ -n "${TELUCODEC_GPUS:-}" ]]; then
  gpus="${TELUCODEC_GPUS}"
elif [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
  gpus="$(count_visible "${CUDA_VISIBLE_DEVICES}")"
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  gpus="$(nvidia-smi -L | grep -c '^GPU ' || true)"
else
  gpus=0
fi
if ! [[ "${gpus}" =~ ^[0-9]+$ ]]; then
  echo "error: launch-train: GPU count '${gpus}' is not a whole number (TELUCODEC_GPUS?)" >&2
  exit 2
fi

if ((gpus == 0)); then
  export CUDA_VISIBLE_DEVICES=""
  exec python -m pipeline.train "$@"
elif ((gpus == 1)); then
  exec python -m pipeline.train "$@"
fi
echo "launch-train: torchrun with ${gpus} processes" >&2
exec python -m torch.distributed.run --standalone --nproc_per_node="${gpus}" -m pipeline.train "$@"

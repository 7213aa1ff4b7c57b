#!/usr/bin/env bash
# The train stage's command under both engines: `python -m pipeline.train "$@"` on the GPUs this job was
# given, with one torchrun process per GPU when there are two or more.
#
#   workflow/launch-train.sh --shards data/shards --init ... --out ... --live ...
#
# GPU count N, first that applies:
#   $TELUCODEC_GPUS          set by the Snakefile to the job's `gpu` resource (local runs and SLURM jobs)
#   $CUDA_VISIBLE_DEVICES    the devices a scheduler handed out (SLURM sets it for --gpus jobs)
#   nvidia-smi -L            every GPU of the machine (a plain `dvc repro`)
#   0                        no GPU: CPU
# N = 0 hides every GPU (a job granted none must not use one); N = 1 is a plain single process;
# N > 1 runs `torchrun --standalone --nproc_per_node N` (single node; batch sizes are per process).
#
# Several nodes: M = $TELUCODEC_NODES, else $SLURM_JOB_NUM_NODES (a SLURM allocation of M nodes), else 1.
# M > 1 inside SLURM: this script (the batch step, on the allocation's first node) starts itself once per node
# with `srun` (one task a node), with TELUCODEC_RDZV_ENDPOINT set to this host; each copy then runs
# `torchrun --nnodes M --nproc_per_node N/M --rdzv-backend c10d --rdzv-endpoint <first node>:<port>` (N is then
# the job's GPUs in all; one process a node without GPUs), so global rank != local rank beyond the first node.
# TELUCODEC_RDZV_ENDPOINT set by hand (host:port) runs one node's torchrun directly: how a multi-node run is
# simulated on one machine (scripts/check_multinode.py: two launchers, 127.0.0.1, gloo on CPU).
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

nodes="${TELUCODEC_NODES:-${SLURM_JOB_NUM_NODES:-1}}"
if ! [[ "${nodes}" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: launch-train: node count '${nodes}' is not a positive whole number (TELUCODEC_NODES?)" >&2
  exit 2
fi
((gpus == 0)) && export CUDA_VISIBLE_DEVICES=""

if ((nodes > 1)); then
  # N is the job's GPUs in all (the Snakefile's `gpu` resource): N / M processes a node, one per GPU.
  if ((gpus % nodes)); then
    echo "error: launch-train: the job's ${gpus} GPUs do not split evenly over ${nodes} nodes" >&2
    exit 2
  fi
  per_node=$((gpus > 0 ? gpus / nodes : 1))
  if [[ -z "${TELUCODEC_RDZV_ENDPOINT:-}" ]]; then
    if [[ -z "${SLURM_JOB_NODELIST:-}" ]] || ! command -v srun >/dev/null; then
      echo "error: launch-train: ${nodes} nodes asked for outside a SLURM allocation; set TELUCODEC_RDZV_ENDPOINT" \
        "(host:port of the first node) and start this script on every node" >&2
      exit 2
    fi
    head="$(hostname)"  # this batch step runs on the allocation's first node: the rendezvous is here
    export TELUCODEC_NODES="${nodes}"
    export TELUCODEC_RDZV_ENDPOINT="${head}:${TELUCODEC_RDZV_PORT:-$((29500 + ${SLURM_JOB_ID:-0} % 2000))}"
    export TELUCODEC_RDZV_ID="${TELUCODEC_RDZV_ID:-telucodec-${SLURM_JOB_ID:-0}}"
    echo "launch-train: ${nodes} nodes x ${per_node} processes, rendezvous ${TELUCODEC_RDZV_ENDPOINT}" >&2
    exec srun --nodes="${nodes}" --ntasks="${nodes}" --ntasks-per-node=1 --kill-on-bad-exit=1 "$0" "$@"
  fi
  exec python -m torch.distributed.run --nnodes="${nodes}" --nproc_per_node="${per_node}" \
    --rdzv_backend=c10d --rdzv_endpoint="${TELUCODEC_RDZV_ENDPOINT}" \
    --rdzv_id="${TELUCODEC_RDZV_ID:-telucodec}" -m pipeline.train "$@"
fi
if ((gpus <= 1)); then
  exec python -m pipeline.train "$@"
fi
echo "launch-train: torchrun with ${gpus} processes" >&2
exec python -m torch.distributed.run --standalone --nproc_per_node="${gpus}" -m pipeline.train "$@"

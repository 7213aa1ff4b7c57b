#!/usr/bin/env bash
# Stand up a one-node SLURM cluster on this machine, run the whole workflow through Snakemake's SLURM
# executor, check that every job went through sbatch and completed, and take the cluster down again.
#
#   tests/workflow/checks/slurm-local.sh          # `make test-slurm`: the tiny config (a few minutes)
#   PARAMS=my-overrides.yaml tests/workflow/checks/slurm-local.sh [extra snakemake args]
#   NODES=2 tests/workflow/checks/slurm-local.sh  # `make test-slurm-multinode`: a two-node cluster, and the
#                                               # train stage as one sbatch job over both nodes
#
# Needs root on Debian/Ubuntu: installs slurm-wlm and munge with apt-get when they are missing. Everything
# else lives in a temp folder: slurm.conf (SLURM_CONF points every client there), a fresh munge key and
# socket, daemon state and logs. Daemons: munged, slurmctld, slurmd (one node with this machine's CPUs and
# memory, partition `local`, one fake GPU so GPU jobs go through `--gpus`). No accounting database:
# finished jobs are read from the job-completion file (jobcomp/filetxt). The workflow runs in a fresh
# clone of HEAD (so the work tree is left alone) with profiles/slurm-local; the cluster is torn down on
# exit, whatever happens. KEEP=1 keeps the temp folder for inspection.
# NODES=N > 1: N slurmd on this host (this slurm-wlm is built with MULTIPLE_SLURMD: one port, spool and log
# per node, the first node named after this host so that the rendezvous host resolves), no GPU; the clone prepares
# the shards and seed locally (dvc repro seed_codebooks), then `sbatch --nodes=N` runs
# workflow/launch-train.sh, which starts one torchrun per node with srun; the job must COMPLETE and every
# rank end with the same weights.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../../.." && pwd)"
params="${PARAMS:-workflow/params-tiny.yaml}"
nodes="${NODES:-1}"
[[ "${nodes}" =~ ^[1-9][0-9]*$ ]] || { echo "error: slurm-local: NODES=${nodes} is not a positive number" >&2; exit 2; }
[[ "${params}" = /* ]] || params="${repo}/${params}"
venv_bin="${VENV_BIN:-${repo}/.venv/bin}"
export PATH="${venv_bin}:${PATH}"

die() { echo "error: slurm-local: $*" >&2; exit 2; }
[[ -f "${params}" ]] || die "override file ${params} not found"
command -v snakemake >/dev/null || die "snakemake not found (run 'make env' first)"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  [[ "$(id -u)" = 0 ]] && command -v apt-get >/dev/null || die "install slurm-wlm and munge (needs root + apt-get)"
  echo "slurm-local: installing slurm-wlm and munge" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
[[ "$(id -u)" = 0 ]] || die "the daemons run as root here; run as root"

state="$(mktemp -d /tmp/telucodec-slurm.XXXXXX)"
chmod 755 "${state}"
mkdir -p "${state}"/{munge,ctld,spool,log}
chmod 700 "${state}/munge"
pids=()
linked_conf=""

ctld_alive() { [[ -s "${state}/slurmctld.pid" ]] && kill -0 "$(cat "${state}/slurmctld.pid")" 2>/dev/null; }

teardown() {
  local rc=$?
  if [[ -n "${SLURM_CONF:-}" ]] && ctld_alive; then
    timeout 10 scancel --full --quiet --user "$(id -un)" 2>/dev/null || true  # our cluster's jobs (SLURM_CONF)
  fi
  for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
  if [[ -n "${linked_conf:-}" && "$(readlink "${linked_conf}")" = "${SLURM_CONF}" ]]; then rm -f "${linked_conf}"; fi
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
  done
  if [[ "${KEEP:-0}" = 1 || ${rc} -ne 0 ]]; then
    echo "slurm-local: state, logs and clone kept in ${state}" >&2
  else
    rm -rf "${state}"
  fi
  exit "${rc}"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- munge: a key and socket of our own, so a system munged (if any) is left alone -------------------
dd if=/dev/urandom of="${state}/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "${state}/munge/munge.key"
munged --force --key-file="${state}/munge/munge.key" --socket="${state}/munge/munge.socket" \
  --pid-file="${state}/munge/munged.pid" --log-file="${state}/log/munged.log" --seed-file="${state}/munge/seed"
for _ in $(seq 50); do [[ -s "${state}/munge/munged.pid" ]] && break; sleep 0.1; done
pids+=("$(cat "${state}/munge/munged.pid")")

# --- slurm.conf: one node, this machine's CPUs and memory -------------------------------------------
cpus="$(nproc)"
mem_mb="$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')"
node=localhost
names=("${node}")
if ((nodes > 1)); then
  # SLURM reads NodeName=localhost as this host's name; the first node takes it outright (it resolves, so the
  # rendezvous on the allocation's first node finds it), the others need only their own port.
  names=("$(hostname)")
  for ((i = 2; i <= nodes; i++)); do names+=("node${i}"); done
fi
cat >"${state}/slurm.conf" <<EOF
ClusterName=telucodec-local
SlurmctldHost=localhost
SlurmctldPort=26817
SlurmdPort=26818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${state}/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=${state}/ctld
SlurmdSpoolDir=${state}/spool/%n
SlurmctldPidFile=${state}/slurmctld.pid
SlurmdPidFile=${state}/slurmd.%n.pid
SlurmctldLogFile=${state}/log/slurmctld.log
SlurmdLogFile=${state}/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=${state}/jobcomp.txt
MpiDefault=none
EOF
if ((nodes == 1)); then
  echo "NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} Gres=gpu:1 State=UNKNOWN" \
    >>"${state}/slurm.conf"
else
  for ((i = 0; i < nodes; i++)); do
    echo "NodeName=${names[i]} NodeHostname=$(hostname) NodeAddr=127.0.0.1 Port=$((26818 + i)) CPUs=${cpus}" \
      "RealMemory=$((mem_mb / nodes)) State=UNKNOWN" >>"${state}/slurm.conf"
  done
fi
echo "PartitionName=local Nodes=$(IFS=,; echo "${names[*]}") Default=YES MaxTime=INFINITE State=UP" >>"${state}/slurm.conf"
# A fake GPU (no device file behind it): jobs asking --gpus=1 are scheduled and get CUDA_VISIBLE_DEVICES,
# and torch, finding no CUDA, trains on the CPU.
echo "NodeName=${node} Name=gpu File=/dev/null" >"${state}/gres.conf"
export SLURM_CONF="${state}/slurm.conf"
# Snakemake's job step (snakemake-executor-plugin-slurm-jobstep 0.6) drops every SLURM_* variable,
# SLURM_CONF included, before its inner `srun`, which then looks for /etc/slurm/slurm.conf: link ours
# there for the cluster's lifetime (never over a real one).
system_conf=/etc/slurm/slurm.conf
if [[ -e "${system_conf}" || -L "${system_conf}" ]]; then
  die "${system_conf} exists: this machine has a SLURM configuration; not touching it"
fi
mkdir -p /etc/slurm
ln -s "${SLURM_CONF}" "${system_conf}"
linked_conf="${system_conf}"

slurmctld -f "${SLURM_CONF}"
for _ in $(seq 100); do [[ -s "${state}/slurmctld.pid" ]] && break; sleep 0.1; done
pids+=("$(cat "${state}/slurmctld.pid")")
sleep 1
ctld_alive || { tail -5 "${state}/log/slurmctld.log" >&2; die "slurmctld did not start"; }
for name in "${names[@]}"; do
  mkdir -p "${state}/spool/${name}"
  slurmd -f "${SLURM_CONF}" -N "${name}"
  for _ in $(seq 100); do [[ -s "${state}/slurmd.${name}.pid" ]] && break; sleep 0.1; done
  pids+=("$(cat "${state}/slurmd.${name}.pid")")
done
nodes_up() {
  [[ "$(timeout 5 sinfo --noheader --Node --format=%t 2>/dev/null | grep -cE '^(idle|mix|alloc)')" -eq "${nodes}" ]]
}
for _ in $(seq 50); do nodes_up && break; ctld_alive || break; sleep 0.2; done
nodes_up || { tail -5 "${state}"/log/*.log >&2; die "the nodes did not come up"; }
if ((nodes == 1)); then
  echo "slurm-local: cluster up (${cpus} CPUs, ${mem_mb} MB, 1 fake GPU) in ${state}" >&2
else
  echo "slurm-local: cluster up: ${nodes} nodes (${names[*]}) on this host, no GPU, in ${state}" >&2
fi

# --- the workflow, every job through sbatch ----------------------------------------------------------
clone="${state}/clone"
git clone --quiet "${repo}" "${clone}"
cp "${params}" "${state}/overrides.yaml"
cd "${clone}"
if ((nodes > 1)); then
  "${venv_bin}/python" -c "import sys; from pathlib import Path
from tests.workflow.checks.checklib import merge_into_params; merge_into_params(Path('.'), sys.argv[1])" \
    "${state}/overrides.yaml"
  dvc repro --quiet seed_codebooks
  start=$(date +%s)
  sbatch --wait --nodes="${nodes}" --ntasks-per-node=1 --job-name=train-multinode --output="${state}/log/train.out" \
    --wrap "TELUCODEC_GPUS=0 workflow/launch-train.sh --shards data/shards --init models/seed.safetensors \
      --checkpoints models/checkpoints --out models/codec.safetensors --live reports/train" \
    || { tail -30 "${state}/log/train.out" >&2; die "the multi-node train job failed"; }
  seconds=$(($(date +%s) - start))
  cat "${state}/log/train.out" | grep -E "^(launch-train|train):" >&2
  job="$(grep "train-multinode" "${state}/jobcomp.txt" || true)"
  [[ "${job}" == *"JobState=COMPLETED"* && "${job}" == *"NodeCnt=${nodes} "* ]] \
    || { cat "${state}/jobcomp.txt" >&2; die "the train job did not COMPLETE on ${nodes} nodes"; }
  echo "slurm-local: $(grep -o 'JobId=[0-9]* ' <<<"${job}")$(grep -o 'JobState=[A-Z]*' <<<"${job}")" \
    "$(grep -o 'NodeList=[^ ]*' <<<"${job}") $(grep -o 'NodeCnt=[0-9]*' <<<"${job}")" >&2
  grep -q "all ${nodes} ranks ended with the same weights" "${state}/log/train.out" \
    || die "the ranks did not report the same weights"
  [[ -s models/codec.safetensors ]] || die "no weights written"
  echo "slurm-local: train ran as one sbatch job on ${nodes} nodes (${nodes} ranks, one per node) in ${seconds} s" >&2
  exit 0
fi
start=$(date +%s)
snakemake --profile profiles/slurm-local --configfile "${state}/overrides.yaml" "$@" 2>&1 \
  | tee "${state}/log/snakemake.log"
seconds=$(($(date +%s) - start))
timeout 10 scontrol --oneliner show job >"${state}/jobs.txt"  # finished jobs stay listed for MinJobAge

# --- every planned job went through sbatch and completed --------------------------------------------
# The run's log gives each job's rule and SLURM id, the job-completion file each SLURM job's final
# state, `scontrol show job` the GPUs it was given.
"${venv_bin}/python" - "${state}/log/snakemake.log" "${state}/jobcomp.txt" "${state}/jobs.txt" <<'PY'
import re, sys
from collections import Counter

log, jobcomp, jobs = (open(path).read().splitlines() for path in sys.argv[1:4])
log = "\n".join(log)
table = log[log.index("Job stats:"):]
planned = Counter({rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table[:table.index("total")], re.M)})
planned.pop("all", None)  # a local rule
submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", log))
finished = {job["JobId"]: job for job in (dict(re.findall(r"(\w+)=(\S*)", line)) for line in jobcomp)}
gpus = {job["JobId"]: job.get("TresPerJob", "") for job in (dict(re.findall(r"(\w+)=(\S*)", line)) for line in jobs)}
problems = []
for sid, rule in sorted(submitted.items(), key=lambda item: int(item[0])):
    state, tres = finished.get(sid, {}).get("JobState", "NOT-FINISHED"), finished.get(sid, {}).get("Tres", "")
    print(f"  {rule:<15} slurm job {sid:>3}  {state:<10} {tres} {gpus.get(sid, '')}")
    if state != "COMPLETED":
        problems.append(f"{rule} (slurm job {sid}) is {state}")
    if rule in ("train", "evaluate") and not re.search(r"gpu:1$", gpus.get(sid, "")):
        problems.append(f"{rule} (slurm job {sid}) got no GPU: {gpus.get(sid)!r}")
if Counter(submitted.values()) != planned:
    problems.append(f"submitted {dict(Counter(submitted.values()))} but planned {dict(planned)}")
if problems:
    sys.exit("error: slurm-local: " + "; ".join(problems))
print(f"slurm-local: all {len(submitted)} jobs went through sbatch and COMPLETED "
      f"({', '.join(f'{rule} x{n}' for rule, n in planned.items())})")
PY
echo "slurm-local: the workflow ran through SLURM in ${seconds} s" >&2

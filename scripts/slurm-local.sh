#!/usr/bin/env bash
# Stand up a one-node SLURM cluster on this machine, run the whole workflow through Snakemake's SLURM
# executor, check that every job went through sbatch and completed, and take the cluster down again.
#
#   scripts/slurm-local.sh                      # `make test-slurm`: the tiny config (a few minutes)
#   PARAMS=my-overrides.yaml scripts/slurm-local.sh [extra snakemake args]
#
# Needs root on Debian/Ubuntu: installs slurm-wlm and munge with apt-get when they are missing. Everything
# else lives in a temp folder: slurm.conf (SLURM_CONF points every client there), a fresh munge key and
# socket, daemon state and logs. Daemons: munged, slurmctld, slurmd (one node with this machine's CPUs and
# memory, partition `local`, one fake GPU so GPU jobs go through `--gpus`). No accounting database:
# finished jobs are read from the job-completion file (jobcomp/filetxt). The workflow runs in a fresh
# clone of HEAD (so the work tree is left alone) with profiles/slurm-local; the cluster is torn down on
# exit, whatever happens. KEEP=1 keeps the temp folder for inspection.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
params="${PARAMS:-workflow/params-tiny.yaml}"
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

teardown() {
  local rc=$?
  if [[ -n "${SLURM_CONF:-}" ]] && command -v scancel >/dev/null; then
    scancel --full --quiet --user "$(id -un)" 2>/dev/null || true  # our cluster's jobs only (SLURM_CONF)
  fi
  for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
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
SlurmdSpoolDir=${state}/spool
SlurmctldPidFile=${state}/slurmctld.pid
SlurmdPidFile=${state}/slurmd.pid
SlurmctldLogFile=${state}/log/slurmctld.log
SlurmdLogFile=${state}/log/slurmd.log
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
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=local Nodes=${node} Default=YES MaxTime=INFINITE State=UP
EOF
# A fake GPU (no device file behind it): jobs asking --gpus=1 are scheduled and get CUDA_VISIBLE_DEVICES,
# and torch, finding no CUDA, trains on the CPU.
echo "NodeName=${node} Name=gpu File=/dev/null" >"${state}/gres.conf"
export SLURM_CONF="${state}/slurm.conf"

slurmctld -f "${SLURM_CONF}"
for _ in $(seq 100); do [[ -s "${state}/slurmctld.pid" ]] && break; sleep 0.1; done
pids+=("$(cat "${state}/slurmctld.pid")")
slurmd -f "${SLURM_CONF}" -N "${node}"
for _ in $(seq 100); do [[ -s "${state}/slurmd.pid" ]] && break; sleep 0.1; done
pids+=("$(cat "${state}/slurmd.pid")")
for _ in $(seq 100); do
  sinfo --noheader --nodes="${node}" --format=%t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break
  sleep 0.2
done
sinfo --noheader --nodes="${node}" --format=%t | grep -qE '^(idle|mix|alloc)' \
  || { tail -20 "${state}/log/slurmctld.log" "${state}/log/slurmd.log" >&2; die "the node did not come up"; }
echo "slurm-local: cluster up (${cpus} CPUs, ${mem_mb} MB, 1 fake GPU) in ${state}" >&2

# --- the workflow, every job through sbatch ----------------------------------------------------------
clone="${state}/clone"
git clone --quiet "${repo}" "${clone}"
cd "${clone}"
start=$(date +%s)
snakemake --profile profiles/slurm-local --configfile "${params}" "$@" 2>&1 | tee "${state}/log/snakemake.log"
seconds=$(($(date +%s) - start))

# --- every rule's job went through SLURM and completed ------------------------------------------------
# Snakemake names each job's SLURM log .snakemake/slurm_logs/rule_<rule>/[<wildcards>/]<slurm job id>.log
expected="$(snakemake --profile profiles/slurm-local --configfile "${params}" --forceall --dry-run --quiet rules 2>/dev/null \
  | awk 'NR > 2 && $1 != "total" && $1 != "all" && NF == 2 {n += $2} END {print n}')"
"${venv_bin}/python" - "${state}/jobcomp.txt" "${expected}" <<'EOF'
import re, sys
path, expected = sys.argv[1], int(sys.argv[2])
jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in open(path)]
rules = {}
for job in jobs:
    print(f"  slurm job {job['JobId']:>4} {job['JobState']:<10} {job.get('NodeList', '')} "
          f"cpus={job.get('ProcCnt', '?')} tres={job.get('Tres', '')} {job.get('Name', '')}")
bad = [j for j in jobs if j["JobState"] != "COMPLETED"]
if len(jobs) != expected or bad:
    sys.exit(f"error: slurm-local: {len(jobs)} SLURM jobs for {expected} workflow jobs; "
             f"not COMPLETED: {[(j['JobId'], j['JobState']) for j in bad]}")
print(f"slurm-local: all {expected} workflow jobs ran as SLURM jobs and COMPLETED")
EOF
echo "slurm-local: workflow through SLURM in ${seconds} s; metrics:" >&2
"${venv_bin}/python" -c 'import json,sys; m=json.load(open(sys.argv[1])); print(json.dumps(m.get("test", m), indent=1)[:1500])' \
  reports/metrics.json

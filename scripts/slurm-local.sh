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
slurmd -f "${SLURM_CONF}" -N "${node}"
for _ in $(seq 100); do [[ -s "${state}/slurmd.pid" ]] && break; sleep 0.1; done
pids+=("$(cat "${state}/slurmd.pid")")
node_up() { timeout 5 sinfo --noheader --nodes="${node}" --format=%t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }
for _ in $(seq 50); do node_up && break; ctld_alive || break; sleep 0.2; done
node_up || { tail -5 "${state}/log/slurmctld.log" "${state}/log/slurmd.log" >&2; die "the node did not come up"; }
echo "slurm-local: cluster up (${cpus} CPUs, ${mem_mb} MB, 1 fake GPU) in ${state}" >&2

# --- the workflow, every job through sbatch ----------------------------------------------------------
clone="${state}/clone"
git clone --quiet "${repo}" "${clone}"
cp "${params}" "${state}/overrides.yaml"
cd "${clone}"
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

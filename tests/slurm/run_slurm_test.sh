#!/bin/bash
# Integration test of launch/slurm/quantize.sbatch on a private single-node Slurm cluster.
#
# Environment: PGKM_BIN (the pgkm binary), SOURCE_DIR (the source tree), WORK_DIR (scratch),
# optional PGKM_SLURM_TEST_NTASKS (MPI ranks of the job, default 2) and
# PGKM_SLURM_TEST_LAUNCHER (mpirun, the default, or srun).
# Starts munged, slurmctld and slurmd as root with every file (key, socket, state, spool,
# logs) in a fresh directory under WORK_DIR, so the system's /etc/slurm and munge setup are
# neither used nor changed; submits a 2-task mpirun job that quantizes a tiny model, checks
# the archive with `pgkm inspect`, and always stops what it started. Exit 77 (skip) when
# root, Slurm, munge or Open MPI is missing. Every wait is bounded.
set -uo pipefail

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

: "${PGKM_BIN:?PGKM_BIN must name the pgkm binary}"
: "${SOURCE_DIR:?SOURCE_DIR must name the source tree}"
: "${WORK_DIR:?WORK_DIR must name a scratch directory}"

[[ $(id -u) == 0 ]] || skip "needs root to run a private Slurm cluster (slurmd runs jobs as root)"
export PATH=$PATH:/usr/sbin:/sbin
for tool in slurmctld slurmd munged sbatch sinfo squeue scontrol scancel mpirun python3 ss; do
  command -v "$tool" >/dev/null 2>&1 ||
    skip "'$tool' not found (apt-get install slurm-wlm munge openmpi-bin libopenmpi-dev iproute2)"
done
python3 -c 'import numpy, safetensors' 2>/dev/null || skip "python3 numpy/safetensors missing"
ntasks=${PGKM_SLURM_TEST_NTASKS:-2}
[[ $ntasks =~ ^[1-9][0-9]*$ ]] || fail "PGKM_SLURM_TEST_NTASKS '$ntasks' is not a positive integer"
[[ -x $PGKM_BIN ]] || fail "PGKM_BIN '$PGKM_BIN' is not executable"
sbatch_script=$SOURCE_DIR/launch/slurm/quantize.sbatch
template=$SOURCE_DIR/tests/slurm/slurm.conf.in
[[ -f $sbatch_script && -f $template ]] || fail "missing $sbatch_script or $template"

mkdir -p "$WORK_DIR" || fail "cannot create $WORK_DIR"
WORK_DIR=$(cd "$WORK_DIR" && pwd)
# A failed run keeps its state directory for inspection; drop those older than an hour.
find "$WORK_DIR" -mindepth 1 -maxdepth 1 -type d -name 'run.*' -mmin +60 -exec rm -rf {} + 2>/dev/null
# A short path: the munge socket path must fit in sockaddr_un (108 bytes).
STATE=$(mktemp -d "$WORK_DIR/run.XXXXXX") || fail "mktemp failed"
chmod 755 "$STATE"
mkdir -p "$STATE"/{ctld,spool/localhost,log,munge,job}
chmod 700 "$STATE/munge"

declare -A pids=()
job_out=$STATE/job/job.out
passed=0

# Processes that the cluster started (job scripts, mpirun, pgkm, slurmstepd) have the
# job's output file or the spool directory open or as their working directory; find them
# by pid through /proc, never by name.
stray_pids() {
  local p link
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    for link in /proc/"$p"/cwd /proc/"$p"/fd/*; do
      case $(readlink "$link" 2>/dev/null) in
        "$STATE" | "$STATE"/*) echo "$p"; break ;;
      esac
    done
  done
}

stop_pid() {  # stop_pid NAME PID: SIGTERM, bounded wait, then SIGKILL
  local name=$1 pid=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "cleanup: $name ($pid) ignored SIGTERM; killing"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM HUP
  cd / || true
  if [[ -n ${pids[slurmctld]:-} ]] && kill -0 "${pids[slurmctld]}" 2>/dev/null; then
    timeout 10 scancel --quiet --user=root >/dev/null 2>&1
  fi
  [[ -n ${pids[sbatch]:-} ]] && stop_pid "sbatch --wait" "${pids[sbatch]}"
  for name in slurmd slurmctld munged; do
    [[ -n ${pids[$name]:-} ]] && stop_pid "$name" "${pids[$name]}"
  done
  for p in $(stray_pids); do
    echo "cleanup: stopping leftover job process $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null))"
    kill -KILL "$p" 2>/dev/null
  done
  if [[ $passed != 1 ]]; then
    ((rc == 0)) && rc=1
    echo "---- job output ($job_out) ----"
    cat "$job_out" 2>/dev/null || echo "(none)"
    for log in "$STATE"/log/*.log; do
      [[ -f $log ]] || continue
      echo "---- tail of $log ----"
      tail -n 40 "$log"
    done
    echo "state kept in $STATE"
  else
    rm -rf "$STATE"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Two free TCP ports, distinct, in a high range.
used_ports=$(ss -Htan 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}' | sort -u)
free_port() {
  local port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 40000))
    grep -qx "$port" <<<"$used_ports" && continue
    used_ports+=$'\n'$port
    echo "$port"
    return 0
  done
  return 1
}
ctld_port=$(free_port) || fail "no free port"
slurmd_port=$(free_port) || fail "no free port"

# munge: private key, socket, pid, log and seed files.
key=$STATE/munge/munge.key
if command -v mungekey >/dev/null 2>&1; then
  mungekey --create --keyfile="$key" >/dev/null 2>&1 ||
    dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
else
  dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
fi
chmod 400 "$key"
socket=$STATE/munge/munge.socket
munged --foreground --force --key-file="$key" --socket="$socket" \
  --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" \
  --seed-file="$STATE/munge/munged.seed" >>"$STATE/log/munged.out" 2>&1 &
pids[munged]=$!
for ((i = 0; i < 100; i++)); do
  [[ -S $socket ]] && break
  kill -0 "${pids[munged]}" 2>/dev/null || fail "munged exited (see $STATE/log)"
  sleep 0.1
done
[[ -S $socket ]] || fail "munged did not create $socket within 10 s"

# slurm.conf from the template.
cpus=$(nproc)
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
memory_mb=$((mem_kb / 1024 / 2))
((memory_mb > 4096)) && memory_mb=4096
((memory_mb < 100)) && memory_mb=100
conf=$STATE/slurm.conf
: >"$STATE/plugstack.conf"
sed -e "s|@CLUSTER@|pgkmtest|g" -e "s|@CTLD_PORT@|$ctld_port|g" \
  -e "s|@SLURMD_PORT@|$slurmd_port|g" -e "s|@MUNGE_SOCKET@|$socket|g" \
  -e "s|@STATE@|$STATE|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY_MB@|$memory_mb|g" \
  "$template" >"$conf"
grep -v '^#' "$conf" | grep -q '@[A-Z_]*@' && fail "unfilled placeholder in $conf"
export SLURM_CONF=$conf
# Client commands must talk to this cluster only.
unset SLURM_JOB_ID SLURM_JOBID SLURM_CLUSTERS

slurmctld -D -i -f "$conf" >>"$STATE/log/slurmctld.out" 2>&1 &
pids[slurmctld]=$!
slurmd -D -f "$conf" -N localhost >>"$STATE/log/slurmd.out" 2>&1 &
pids[slurmd]=$!

echo "cluster: state $STATE, slurmctld port $ctld_port, slurmd port $slurmd_port, cpus $cpus"
state=
for ((i = 0; i < 120; i++)); do
  for name in slurmctld slurmd munged; do
    kill -0 "${pids[$name]}" 2>/dev/null || fail "$name exited during startup"
  done
  state=$(timeout 5 sinfo -h -n localhost -o %t 2>/dev/null | head -n 1)
  [[ $state == idle ]] && break
  sleep 0.5
done
[[ $state == idle ]] || fail "node not idle after 60 s (sinfo state '$state')"
echo "node localhost is idle"

# A tiny model and a native config.
model=$STATE/job/tiny.safetensors
cfg=$STATE/job/tiny.yaml
out=$STATE/job/tiny.pgkm.h5
python3 - "$model" <<'PY' || fail "could not write the model"
import sys
import numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(0)
save_file({
    "fc1.weight": rng.standard_normal((32, 16), dtype=np.float32),
    "fc1.bias": rng.standard_normal(32, dtype=np.float32),
    "fc2.weight": rng.standard_normal((16, 32), dtype=np.float32),
    "fc3.weight": rng.standard_normal((24, 8), dtype=np.float32),
}, sys.argv[1])
PY
cat >"$cfg" <<'EOF'
pgkm: 1
defaults: {block_size: 4, n_centroids: 16}
rules:
  - match: '.*\.weight'
EOF

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PGKM_OVERSUBSCRIBE=1
export PGKM_BIN PGKM_LAUNCHER=${PGKM_SLURM_TEST_LAUNCHER:-mpirun}
# The job's processes keep $STATE/job as working directory (found by stray_pids).
cd "$STATE/job" || fail "cd $STATE/job"
start=$(date +%s)
# In the background so that a SIGTERM/SIGINT to this script interrupts `wait` at once.
timeout 300 sbatch --wait --export=ALL -N 1 -n "$ntasks" -t 10 -J pgkm-test -o "$job_out" \
  -D "$STATE/job" "$sbatch_script" "$model" "$cfg" "$out" --iters 3 &
pids[sbatch]=$!
wait "${pids[sbatch]}"
rc=$?
unset 'pids[sbatch]'
echo "sbatch --wait exited $rc after $(($(date +%s) - start)) s"
((rc == 124)) && fail "job did not finish within 300 s"
((rc == 0)) || fail "job failed (sbatch --wait exit $rc)"
grep -q 'pgkm exit status 0' "$job_out" || fail "job output lacks 'pgkm exit status 0'"
grep -q "tasks $ntasks," "$job_out" || fail "job output does not show $ntasks tasks"
[[ -s $out ]] || fail "archive $out missing"
inspect=$(timeout 60 "$PGKM_BIN" inspect "$out") || fail "pgkm inspect $out failed"
echo "$inspect"
for layer in fc1.weight fc2.weight fc3.weight; do
  grep -q "$layer" <<<"$inspect" || fail "pgkm inspect does not list $layer"
done
echo "---- job output ----"
cat "$job_out"
passed=1
echo "PASS: slurm quantize job wrote a valid archive"

#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine for tests (Debian 12: slurm-wlm 22.05, munge;
# scripts/install-slurm.sh installs them). Everything lives in SCRATCH: slurm.conf, state,
# spool, pid and log files. No systemd: the daemons are started by hand, as root.
#   scripts/slurm-start.sh SCRATCH      # then: export SLURM_CONF=SCRATCH/slurm.conf
#   scripts/slurm-stop.sh SCRATCH       # stops what this started, by pid
# Env: TL_SLURM_PORT (slurmctld's port, default 6817; slurmd uses the next one),
#      TL_SLURM_START_TIMEOUT (seconds to wait for the node to be idle, default 60).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 SCRATCH" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "slurm-start: must run as root (SlurmUser=root)" >&2; exit 1; }
for t in munged slurmctld slurmd sinfo scontrol; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] ||
    { echo "slurm-start: $t not installed (run scripts/install-slurm.sh)" >&2; exit 1; }
done
mkdir -p "$1"
s=$(cd "$1" && pwd)
port=${TL_SLURM_PORT:-6817}
timeout=${TL_SLURM_START_TIMEOUT:-60}
conf="$s/slurm.conf"
if [ -f "$s/slurmctld.pid" ] && kill -0 "$(cat "$s/slurmctld.pid")" 2>/dev/null; then
  echo "slurm-start: a cluster from $s is running (scripts/slurm-stop.sh $s first)" >&2
  exit 1
fi
mkdir -p "$s/state" "$s/spool" "$s/log"

cat >"$conf" <<CONF
# A one-node cluster for tlkit's tests (scripts/slurm-start.sh).
ClusterName=tlkit
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool
SlurmctldPidFile=$s/slurmctld.pid
SlurmdPidFile=$s/slurmd.pid
SlurmctldLogFile=$s/log/slurmctld.log
SlurmdLogFile=$s/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$conf"

# munge: reuse a running munged (not ours to stop), else start one and remember its pid.
rm -f "$s/munged.pid"
if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1; then
  echo "slurm-start: using the munged already running"
else
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do [ -f /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$s/munged.pid"
fi

/usr/sbin/slurmctld -c -f "$conf"
/usr/sbin/slurmd -f "$conf" -N localhost
start=$SECONDS
until [ "$(sinfo -h -N -o %t 2>/dev/null)" = "idle" ]; do
  if [ $((SECONDS - start)) -ge "$timeout" ]; then
    echo "slurm-start: the node is not idle after ${timeout}s: $(sinfo -h -N -o %t 2>&1)" >&2
    tail -5 "$s/log/slurmctld.log" "$s/log/slurmd.log" >&2 || true
    exit 1
  fi
  sleep 0.2
done
echo "slurm-start: one node idle after $((SECONDS - start))s; export SLURM_CONF=$conf"

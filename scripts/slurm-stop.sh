#!/usr/bin/env bash
# Stops the cluster scripts/slurm-start.sh started in SCRATCH: cancels its jobs, reads the
# daemons' pids, `scontrol shutdown`, waits on the pids (the pid files vanish before the
# processes exit; kill -9 after TL_SLURM_STOP_TIMEOUT seconds, default 30), then stops the
# munged it started (a munged it found running is left alone). Safe to rerun.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 SCRATCH" >&2; exit 2; }
[ -d "$1" ] || { echo "slurm-stop: no folder $1" >&2; exit 0; }
s=$(cd "$1" && pwd)
timeout=${TL_SLURM_STOP_TIMEOUT:-30}
export SLURM_CONF="$s/slurm.conf"

pids=()
for f in slurmctld.pid slurmd.pid; do
  [ -f "$s/$f" ] && p=$(cat "$s/$f") && kill -0 "$p" 2>/dev/null && pids+=("$p")
done
if [ ${#pids[@]} -gt 0 ]; then
  jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u || true)
  [ -z "$jobs" ] || timeout 10 scancel $jobs 2>/dev/null || true
  timeout 10 scontrol shutdown 2>/dev/null || true
fi
wait_gone() {  # wait_gone PID...: true when all exited within the timeout
  local start=$SECONDS
  while :; do
    local alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return 0
    [ $((SECONDS - start)) -ge "$timeout" ] && return 1
    sleep 0.2
  done
}
if [ ${#pids[@]} -gt 0 ] && ! wait_gone "${pids[@]}"; then
  echo "slurm-stop: daemons ${pids[*]} still up after ${timeout}s: kill -9" >&2
  kill -9 "${pids[@]}" 2>/dev/null || true
fi
if [ -f "$s/munged.pid" ]; then
  p=$(cat "$s/munged.pid")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"
    wait_gone "$p" || kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$s/munged.pid"
fi
echo "slurm-stop: stopped (${#pids[@]} slurm daemons)"

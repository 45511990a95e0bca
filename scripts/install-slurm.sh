#!/usr/bin/env bash
# Installs Debian 12's Slurm (22.05) and munge: only for the optional one-node Slurm test
# (tests/slurm_e2e.sh, scripts/slurm-start.sh). tlkit itself never needs them; the main
# scripts/install-deps.sh stays without them. Safe to rerun.
set -euo pipefail

packages=(slurm-wlm slurmctld slurmd slurm-client munge)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-slurm: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-slurm: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-slurm: done (no daemon is started: see scripts/slurm-start.sh)"

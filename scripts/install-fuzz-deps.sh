#!/usr/bin/env bash
# Installs what the sanitizer and fuzzing CI steps need beyond scripts/install-deps.sh:
# clang (Debian 12: clang 14), its runtime libraries (libFuzzer and clang's sanitizer runtimes are
# in libclang-rt-14-dev) and its OpenMP runtime (CMake's FindOpenMP links libomp for clang).
# GCC's ASan, UBSan and TSan runtimes come with g++. Safe to rerun.
set -euo pipefail

packages=(clang libclang-rt-14-dev libomp-14-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-fuzz-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-fuzz-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-fuzz-deps: done"

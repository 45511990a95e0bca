#!/usr/bin/env bash
# Installs the Debian 12 packages tlkit needs to build, test and run its demo.
# Safe to rerun: does nothing when everything is already installed. The optional Slurm + munge
# packages of the one-node Slurm test are not here: scripts/install-slurm.sh installs them.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config          # build
  libdnnl-dev                               # oneDNN 2.6 (OpenMP runtime)
  ocl-icd-opencl-dev opencl-c-headers       # only because dnnl-config.cmake finds OpenCL
  libtbb-dev                                # oneTBB: the extraction pipeline
  libopencv-dev                             # image decode and resize
  libboost-program-options-dev              # command-line options
  libhdf5-dev                               # HDF5 (we link the serial flavour by name)
  libfmt-dev                                # formatting (GCC 12 has no <format>)
  libssl-dev                                # SHA-256 of weight files (libcrypto)
  zlib1g-dev                                # reading the demo data set (.gz)
  libgtest-dev libbenchmark-dev             # tests and benchmarks
  dpkg-dev help2man                         # the Debian package: Depends, man pages
  libonnx-dev libprotobuf-dev               # tl-export: ONNX's schema, checker (and protobuf)
  dataset-fashion-mnist                     # the demo's real data set
)

# ONNX Runtime for the ONNX tests (tests/onnx): npm's onnxruntime-node at the version its
# package-lock.json pins; --ignore-scripts, as its install script only fetches extras. Node.js
# comes with the machine; Debian's nodejs and npm where it does not.
onnxruntime() {
  local dir=tests/onnx
  [ -d "$dir/node_modules/onnxruntime-node" ] && return 0
  echo "install-deps: npm ci --ignore-scripts in $dir (onnxruntime-node)"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
}
cd "$(dirname "$0")/.."
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  onnxruntime
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
onnxruntime
echo "install-deps: done"

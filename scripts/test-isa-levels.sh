#!/usr/bin/env bash
# Runs the network, machine, extraction, training, tool, guide and ONNX tests again with oneDNN's
# dispatch capped (ONEDNN_MAX_CPU_ISA), so that the code paths of smaller CPUs are tested on
# whatever CPU this is: AVX2 always (AMD Zen 2/3, Intel Haswell/Broadwell), and AVX512_CORE
# (AVX-512 without VNNI/BF16: Skylake-SP) when this CPU has more than that. SSE41 runs only the
# tests of what is refused below AVX2 (tlkit's Winograd) and of what runs there instead: the
# rest would take hours on SSE4.1 code. A level this CPU lacks is skipped aloud. Needs a build
# (scripts/build.sh) in ./build.
# Usage: scripts/test-isa-levels.sh [LEVEL ...]   (default: AVX2 AVX512_CORE SSE41)
set -euo pipefail
cd "$(dirname "$0")/.."
levels=("$@")
[ ${#levels[@]} -gt 0 ] || levels=(AVX2 AVX512_CORE SSE41)
labels='^(unit:(test_machine|test_vgg16|test_extract|test_classify|test_logreg|test_train_predict|test_finetune|test_merge|test_tools|test_winograd)|docs|onnx)$'
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { grep -qw "$1" <<<"$flags"; }
for level in "${levels[@]}"; do
  case "$level" in
    AVX2) need=avx2 ;;
    AVX512_CORE) need=avx512f ;;
    SSE41) need=sse4_1 ;;
    *) need="" ;;
  esac
  if [ -n "$need" ] && ! has "$need"; then
    echo "test-isa-levels: SKIP $level: this CPU has no $need"
    continue
  fi
  if [ "$level" = AVX2 ] && ! { has avx512f || has avx_vnni; }; then
    echo "test-isa-levels: SKIP $level: this CPU is AVX2 already (the native run covers it)"
    continue
  fi
  if [ "$level" = AVX512_CORE ] && ! { has avx512_vnni || has avx512_bf16 || has amx_int8; }; then
    echo "test-isa-levels: SKIP $level: this CPU is AVX512_CORE already (the native run covers it)"
    continue
  fi
  echo "test-isa-levels: ONEDNN_MAX_CPU_ISA=$level"
  start=$(date +%s)
  if [ "$level" = SSE41 ]; then
    ONEDNN_MAX_CPU_ISA=$level build/tests/test_machine
    ONEDNN_MAX_CPU_ISA=$level build/tests/test_finetune \
      --gtest_filter='Block5.*:FinetuneStep.OneSgdStep*'
    ONEDNN_MAX_CPU_ISA=$level build/tests/test_tools --gtest_filter='Tools.WinogradBelowAvx2*'
    ONEDNN_MAX_CPU_ISA=$level build/tests/test_winograd --gtest_filter='WinogradConv.RefusedBelowAvx2'
    echo "test-isa-levels: $level done in $(( $(date +%s) - start )) s"
    continue
  fi
  ONEDNN_MAX_CPU_ISA=$level build/tools/tl-extract --version | sed -n '3,13p'
  ONEDNN_MAX_CPU_ISA=$level ctest --test-dir build -L "$labels" --output-on-failure -j"$(nproc)"
  echo "test-isa-levels: $level done in $(( $(date +%s) - start )) s"
done

#!/usr/bin/env bash
# CI after the README's test command (issue 10): the unit tests again with AddressSanitizer +
# UndefinedBehaviorSanitizer (GCC), and the extraction pipeline's tests with ThreadSanitizer,
# each in its own build folder. Any sanitizer report fails the step.
#
#   scripts/ci-sanitizers.sh [asan|tsan|all]      # default all
#   TL_SANITIZER_BUILD_ROOT=/tmp/x scripts/ci-sanitizers.sh   # build folders elsewhere
#
# Kept out of both runs, and why: none (see docs/HARDENING.md for the timings). Kept out of the
# TSan run: the tests that SIGKILL or rlimit tl-extract children at random moments
# (ExtractResume.*, ExtractErrors.FullDisk*): they test the file format, not threading, and
# take minutes under TSan.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${TL_SANITIZER_BUILD_ROOT:-.}
what=${1:-all}
jobs=$(nproc)
supp="$PWD/scripts/sanitizers"

configure() {  # build-folder sanitizers
  # RelWithDebInfo: -O2 -g, line numbers in reports at near-Release test speed.
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTL_SANITIZE="$2" \
    -DTL_BUILD_BENCH=OFF >/dev/null
}

if [ "$what" = asan ] || [ "$what" = all ]; then
  start=$(date +%s)
  b="$root/build-asan"
  configure "$b" address,undefined
  cmake --build "$b" -j"$jobs"
  echo "ci-sanitizers: ASan+UBSan build done in $(($(date +%s) - start)) s"
  export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  ctest --test-dir "$b" -L unit --output-on-failure -j"$jobs" --timeout 900
  unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
  echo "ci-sanitizers: ASan+UBSan done in $(($(date +%s) - start)) s"
fi

if [ "$what" = tsan ] || [ "$what" = all ]; then
  start=$(date +%s)
  b="$root/build-tsan"
  configure "$b" thread
  cmake --build "$b" -j"$jobs" --target test_extract tl-extract
  echo "ci-sanitizers: TSan build done in $(($(date +%s) - start)) s"
  TSAN_OPTIONS="suppressions=$supp/tsan.supp:second_deadlock_stack=1:halt_on_error=1:exitcode=66" \
    "$b/tests/test_extract" --gtest_filter='-ExtractResume.*:ExtractErrors.FullDisk*'
  echo "ci-sanitizers: TSan done in $(($(date +%s) - start)) s"
fi

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
  # Debian's oneTBB is not built with TSan: tsan_tbb_edges.so (preloaded, this run only) tells
  # TSan about TBB's hand-overs, so that no TBB suppression is needed (docs/HARDENING.md).
  shim="$(cd "$b" && pwd)/libtl_tsan_tbb_edges.so"
  g++ -std=c++20 -O2 -g -fPIC -shared scripts/sanitizers/tsan_tbb_edges.cpp -o "$shim" -ldl
  tsan_options="suppressions=$supp/tsan.supp:second_deadlock_stack=1:halt_on_error=1:exitcode=66"
  LD_PRELOAD="$shim" TSAN_OPTIONS="$tsan_options" \
    "$b/tests/test_extract" --gtest_filter='-ExtractResume.*:ExtractErrors.FullDisk*'
  # The canary: deliberate races in our code, on plain threads, in a task_group, between two
  # parallel_for iterations and between two calls of a parallel pipeline filter, must each be
  # reported with the same preload, flags and suppressions; the same constructs used correctly
  # ("clean") must not be. So neither the suppressions nor the preload can hide our code, or
  # invent races in TBB, without this step failing.
  g++ -std=c++20 -O1 -g -fsanitize=thread -fno-omit-frame-pointer \
    scripts/sanitizers/tsan_canary.cpp -o "$b/tsan_canary" -ltbb
  for mode in thread main-vs-tbb parallel-for pipeline clean; do
    rc=0
    LD_PRELOAD="$shim" TSAN_OPTIONS="$tsan_options" \
      "$b/tsan_canary" "$mode" >"$b/tsan_canary.$mode.log" 2>&1 || rc=$?
    reported=no
    [ "$rc" = 66 ] && grep -q "WARNING: ThreadSanitizer: data race" "$b/tsan_canary.$mode.log" &&
      reported=yes
    if { [ "$mode" = clean ] && [ "$rc" = 0 ]; } || { [ "$mode" != clean ] && [ $reported = yes ]; }; then
      echo "ci-sanitizers: TSan canary $mode: $([ $reported = yes ] && echo reported || echo clean), as it must be"
    else
      echo "ci-sanitizers: TSan canary $mode: exit $rc, race reported: $reported; wrong" >&2
      cat "$b/tsan_canary.$mode.log" >&2
      exit 1
    fi
  done
  echo "ci-sanitizers: TSan done in $(($(date +%s) - start)) s"
fi

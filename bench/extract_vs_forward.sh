#!/usr/bin/env bash
# End-to-end tl-extract (JPEG folder -> HDF5) against the bare forward pass of the same
# build, side by side in one run, per precision and schedule. int8 calibrates on 32 images
# first (not counted in the end-to-end rate, which starts at the first batch).
#   bench/extract_vs_forward.sh [BUILD_DIR] [N_IMAGES] [THREADS]
set -euo pipefail
build=${1:-build}
n=${2:-256}
threads=${3:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/bench/bench_make_images" "$work/jpg" "$n"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$build/tools/tl-forward" --version | tail -1
printf '%-6s %-15s %12s %12s %8s\n' precision schedule forward_img/s extract_img/s ratio
for prec in ${TL_PRECISIONS:-f32 bf16 int8}; do
  fwd=$("$build/tools/tl-forward" --precision "$prec" --batch 32 --iters 3 --threads "$threads" 2>/dev/null |
        grep -o '^[0-9.]* images/s' | cut -d' ' -f1)
  for sched in shared-net net-per-thread; do
    line=$("$build/tools/tl-extract" --images "$work/jpg" --output "$work/out.h5" --overwrite \
           --weights random:1 --precision "$prec" --batch 32 --threads "$threads" \
           --schedule "$sched" --calibrate 32 --quiet 2>&1 | grep '^done:')
    ext=$(echo "$line" | grep -o '([0-9.]* img/s)' | tr -d '(' | cut -d' ' -f1)
    printf '%-9s %-15s %12s %12s %8.3f\n' "$prec" "$sched" "$fwd" "$ext" "$(awk -v a="$ext" -v b="$fwd" 'BEGIN{print a/b}')"
  done
done

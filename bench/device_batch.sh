#!/usr/bin/env bash
# Second 16-core run of issue 6 (after bench/device_run.sh): batch size at 16 threads, for the
# bare forward pass and end to end, and 15 vs 16 compute threads end to end. Same carried build.
#   bench/device_batch.sh
set -uo pipefail
out=${OUT:-devrun-out}
t=${DEV_T:-16} n=${DEV_N:-1024}
mkdir -p "$out" /tmp/tlrun
tar -xJf .devrun/tl.tar.xz -C /tmp/tlrun
b=/tmp/tlrun/tl/build
rate() { grep -o '[0-9.]* img/s\|^[0-9.]* images/s' | head -1 | cut -d' ' -f1; }
{
  echo "# tl-forward at $t threads: images/s by batch"
  echo "| precision | batch 8 | 16 | 32 | 64 | 128 |"
  echo "|---|---|---|---|---|---|"
  for c in f32:direct f32:winograd bf16:direct int8:direct; do
    printf '| %s |' "$c"
    for bt in 8 16 32 64 128; do
      printf ' %s |' "$("$b/tools/tl-forward" --weights random:1 --precision "${c%%:*}" --algo "${c##*:}" \
        --batch "$bt" --iters 2 --threads "$t" 2>/dev/null | rate)"
    done
    echo
  done
} 2>&1 | tee "$out/batch_forward.txt"
"$b/bench/bench_make_images" /tmp/tlrun/jpg "$n"
"$b/tools/tl-extract" --images /tmp/tlrun/jpg --output /tmp/tlrun/calib.h5 --weights random:1 \
  --precision int8 --batch 32 --threads "$t" --calibrate 32 --quiet >/dev/null 2>&1
{
  echo "# tl-extract end to end, $n JPEGs 500x375: images/s by batch (and threads)"
  for c in f32:winograd bf16:direct int8:direct; do
    cal=(); [[ $c == int8* ]] && cal=(--calibration /tmp/tlrun/calib.h5)
    vs=("16 $t" "32 $t" "64 $t" "128 $t" "32 $((t - 1))")
    [[ $c == f32* ]] && vs=("32 $t" "64 $t")  # the slow one: two points
    for v in "${vs[@]}"; do
      set -- $v
      printf '%s batch %s threads %s: %s img/s\n' "$c" "$1" "$2" "$("$b/tools/tl-extract" --images /tmp/tlrun/jpg \
        --output /tmp/tlrun/o.h5 --overwrite --weights random:1 --precision "${c%%:*}" --algo "${c##*:}" \
        --batch "$1" --threads "$2" "${cal[@]}" --quiet 2>&1 | grep '^done:' | rate)"
    done
  done
} 2>&1 | tee "$out/batch_extract.txt"

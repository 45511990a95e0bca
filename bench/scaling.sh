#!/usr/bin/env bash
# Thread scaling of tl-extract (issue 6): for each thread count, the AVX-512 FMA rate of the
# machine at that many threads (bench_vgg16's FmaPeak), then per precision the bare forward
# pass (tl-forward) and end-to-end tl-extract on the same JPEGs. Scaling is judged against the
# FMA curve, not against linear: cores share clocks, power and memory.
#
#   bench/scaling.sh [BUILD_DIR] [THREAD_COUNTS] [BATCH]
# e.g. bench/scaling.sh build "1 2 4 8 16" 32
# Environment: TL_CONFIGS (default "f32:direct f32:winograd bf16:direct int8:direct"),
# TL_IMAGES (an existing folder of JPEGs; default: JPEGs of 500x375 made here). A run at T
# threads reads the first max(16 T, 2 batches) images: each run lasts seconds, not minutes.
set -euo pipefail
build=${1:-build}
counts=${2:-"1 2 4 8 16"}
batch=${3:-32}
configs=${TL_CONFIGS:-f32:direct f32:winograd bf16:direct int8:direct}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
max=0
for t in $counts; do ((t > max)) && max=$t; done
n_for() { local n=$((16 * $1)); ((n < 2 * batch)) && n=$((2 * batch)); echo "$n"; }
src=${TL_IMAGES:-$work/jpg}
[[ -d $src ]] || "$build/bench/bench_make_images" "$src" "$(n_for "$max")"
for t in $counts; do  # a folder per thread count: the first n_for(t) images of the source
  mkdir -p "$work/in$t"
  ls "$src" | sort | head -n "$(n_for "$t")" | while read -r f; do ln -s "$src/$f" "$work/in$t/$f"; done
done

rate() { grep -o '[0-9.]* img/s\|^[0-9.]* images/s' | head -1 | cut -d' ' -f1; }
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# $("$build/tools/tl-forward" --version | tail -1)"

# int8 ranges: calibrated once (on 32 images at the most threads) and reused by every run.
if [[ $configs == *int8* ]]; then
  "$build/tools/tl-extract" --images "$work/in$max" --output "$work/calib.h5" --weights random:1 \
    --precision int8 --batch "$batch" --threads "$max" --calibrate 32 --quiet >/dev/null 2>&1
fi

printf '| threads | FMA GFLOP/s | FMA vs 1 thread |'
for c in $configs; do printf ' %s forward | %s tl-extract | e2e vs 1 thread |' "$c" "$c"; done
echo
printf '|---|---|---|'
for c in $configs; do printf -- '---|---|---|'; done
echo
declare -A base
for t in $counts; do
  fma=$(OMP_NUM_THREADS=$t "$build/bench/bench_vgg16" --benchmark_filter='^FmaPeak' 2>/dev/null |
          grep -o 'GFLOP/s=[0-9.]*[kMG]*' | head -1 | cut -d= -f2 | sed 's/k$/e3/' | awk '{printf "%.0f", $1}')
  [[ -z ${base[fma]:-} ]] && base[fma]=$fma
  printf '| %s | %s | %.2fx |' "$t" "$fma" "$(awk -v a="$fma" -v b="${base[fma]}" 'BEGIN{print a/b}')"
  for c in $configs; do
    prec=${c%%:*} algo=${c##*:}
    fwd=$("$build/tools/tl-forward" --weights random:1 --precision "$prec" --algo "$algo" \
            --batch "$batch" --iters $((t <= 2 ? 1 : 2)) --threads "$t" 2>/dev/null | rate)
    extra=()
    [[ $prec == int8 ]] && extra=(--calibration "$work/calib.h5")
    ext=$("$build/tools/tl-extract" --images "$work/in$t" --output "$work/o.h5" --overwrite \
            --weights random:1 --precision "$prec" --algo "$algo" --batch "$batch" --threads "$t" \
            "${extra[@]}" --quiet 2>&1 | grep '^done:' | rate || true)
    [[ -z ${base[$c]:-} ]] && base[$c]=${ext:-0}
    printf ' %s | %s | %s |' "${fwd:--}" "${ext:--}" \
      "$(awk -v a="${ext:-0}" -v b="${base[$c]}" 'BEGIN{ if (b>0) printf "%.2fx", a/b; else print "-" }')"
  done
  echo
done

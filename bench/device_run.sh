#!/usr/bin/env bash
# The 16-core run of issue 6, in one go on a machine where nothing can be installed: the peers
# side by side at 16 threads, then the thread-scaling sweep, then the schedule and pinning
# variants. Needs the self-contained build of bench/pack_for_device.sh in .devrun/ and a python3
# with torch (and onnxruntime) on the machine. Each part's output goes to $OUT (or ./devrun-out).
#   bench/device_run.sh
set -uo pipefail
out=${OUT:-devrun-out}
mkdir -p "$out" /tmp/tlrun
tar -xJf .devrun/tl.tar.xz -C /tmp/tlrun
b=/tmp/tlrun/tl/build
n=${DEV_N:-512} t=${DEV_T:-16} # smaller values for a smoke run elsewhere
{
  date -u; nproc; lscpu | grep -E 'Model name|Socket|Core|Thread|NUMA node|L3|MHz'
  echo "AMX/AVX-512 flags: $(grep -o 'amx[a-z_0-9]*\|avx512_bf16\|avx512_vnni' /proc/cpuinfo | sort -u | xargs)"
  free -g | head -2
  "$b/tools/tl-forward" --version
  python3 -c 'import torch, onnxruntime; print("torch", torch.__version__, "onnxruntime", onnxruntime.__version__)'
} 2>&1 | tee "$out/machine.txt"
"$b/bench/bench_make_images" /tmp/tlrun/jpg "$n"
TL_IMAGES=/tmp/tlrun/jpg PYTHON=${PYTHON:-python3} PEER_ITERS=${PEER_ITERS:-3} bench/peer_bench.sh "$b" "$n" "$t" 32 2>&1 |
  tee "$out/peer16.txt"
TL_IMAGES=/tmp/tlrun/jpg bench/scaling.sh "$b" "${DEV_COUNTS:-1 2 4 8 16}" 32 2>&1 | tee "$out/scaling.txt"
{
  echo "# $t threads, $n JPEGs: schedule and pinning variants of tl-extract"
  "$b/tools/tl-extract" --images /tmp/tlrun/jpg --output /tmp/tlrun/calib.h5 --overwrite --weights random:1 \
    --precision int8 --batch 32 --threads "$t" --calibrate 32 --quiet 2>&1 | grep '^done:'
  for prec in f32 bf16 int8; do
    cal=(); [[ $prec == int8 ]] && cal=(--calibration /tmp/tlrun/calib.h5)
    for v in "shared-net 32" "net-per-thread 8" "shared-net 32 pinned"; do
      set -- $v
      env_=(); [[ ${3:-} == pinned ]] && env_=(OMP_PROC_BIND=close OMP_PLACES=cores)
      line=$(env "${env_[@]}" "$b/tools/tl-extract" --images /tmp/tlrun/jpg --output /tmp/tlrun/o.h5 \
        --overwrite --weights random:1 --precision "$prec" --batch "$2" --threads "$t" --schedule "$1" \
        "${cal[@]}" --quiet 2>&1 | grep '^done:')
      echo "$prec $v: $line"
    done
  done
} 2>&1 | tee "$out/variants.txt"

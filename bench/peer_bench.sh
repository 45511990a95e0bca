#!/usr/bin/env bash
# tlkit against its peers, side by side in one run on the same machine, the same thread count
# and the same JPEGs (issue 6):
#   - the AVX-512 FMA peak at THREADS (bench_vgg16's FmaPeak),
#   - tlkit's bare forward pass (tl-forward) and end-to-end tl-extract (JPEG folder -> HDF5)
#     per precision: f32 direct, f32 Winograd, bf16, int8,
#   - PyTorch's vgg16().features forward only (f32 NCHW, f32 channels_last, bf16
#     channels_last) and ONNX Runtime f32 where installed (bench/torch_vgg16.py).
# Prints a markdown table with images/s and the ratios the issue's targets are stated in.
#
#   bench/peer_bench.sh [BUILD_DIR] [N_IMAGES] [THREADS] [BATCH]
# Environment: PYTHON (a python3 with torch; default /usr/bin/python3 if it has torch, else
# python3), TL_CONFIGS (default "f32:direct f32:winograd bf16:direct int8:direct"),
# PEER_ITERS (timed batches of the peers, default 3), TL_IMAGES (an existing JPEG folder).
set -euo pipefail
build=${1:-build}
n=${2:-256}
threads=${3:-$(nproc)}
batch=${4:-32}
here=$(cd "$(dirname "$0")" && pwd)
if [[ -z ${PYTHON:-} ]]; then
  PYTHON=python3
  /usr/bin/python3 -c 'import torch' 2>/dev/null && PYTHON=/usr/bin/python3
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
images=${TL_IMAGES:-$work/jpg}
[[ -d $images ]] || "$build/bench/bench_make_images" "$images" "$n"

rate() { grep -o '[0-9.]* img/s\|^[0-9.]* images/s' | head -1 | cut -d' ' -f1; }
declare -A r
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# $("$build/tools/tl-forward" --version | grep -E "^(oneDNN ISA|CPU:)" | tr "\n" " ")"
echo "# $threads threads, batch $batch, $n JPEGs of $(ls "$images" | head -1)"

# FMA_ISA=0: AVX2+FMA, 1: AVX-512 (default: AVX-512 where the CPU has it).
fma_isa=${FMA_ISA:-$(grep -qw avx512f /proc/cpuinfo && echo 1 || echo 0)}
fma=$(OMP_NUM_THREADS=$threads "$build/bench/bench_vgg16" --benchmark_filter="^FmaPeak/$fma_isa/" 2>/dev/null |
        grep -o 'GFLOP/s=[0-9.]*[kMG]*' | head -1 | cut -d= -f2 | sed 's/k$/e3/' | awk '{printf "%.0f", $1}')
echo "# FMA peak at $threads threads (the widest this CPU has): $fma GFLOP/s"

# ONNX Runtime: npm's onnxruntime-node when ORT_NODE_DIR holds it (`npm install
# --ignore-scripts onnxruntime-node` there), else Python's onnxruntime where installed.
peers=f32_nchw,f32_cl,bf16_cl,onnx_f32
export_args=()
if [[ -n ${ORT_NODE_DIR:-} && -d $ORT_NODE_DIR/node_modules/onnxruntime-node ]]; then
  peers=f32_nchw,f32_cl,bf16_cl
  export_args=(--export-onnx "$work/vgg16.onnx")
fi
collect() {
  while read -r line; do
    echo "# $line"
    if [[ $line == peer* ]]; then r[$(echo "$line" | cut -d' ' -f2)]=${line##*img_per_s=}; fi
  done
}
collect < <("$PYTHON" "$here/torch_vgg16.py" --threads "$threads" --batch "$batch" \
              --iters "${PEER_ITERS:-3}" --peers "$peers" "${export_args[@]}" 2>&1)
if [[ ${#export_args[@]} -gt 0 ]]; then
  collect < <(NODE_PATH="$ORT_NODE_DIR/node_modules" node "$here/ort_vgg16.cjs" "$work/vgg16.onnx" \
                "$threads" "$batch" "${PEER_ITERS:-3}" 2>&1)
fi

calib=()
for cfg in ${TL_CONFIGS:-f32:direct f32:winograd bf16:direct int8:direct}; do
  prec=${cfg%%:*} algo=${cfg##*:}
  r[fwd_$cfg]=$("$build/tools/tl-forward" --weights random:1 --precision "$prec" --algo "$algo" \
                 --batch "$batch" --iters 3 --threads "$threads" 2>/dev/null | rate)
  if [[ $prec == int8 && ${#calib[@]} == 0 ]]; then calib=(--calibrate 32); fi
  out=$("$build/tools/tl-extract" --images "$images" --output "$work/$prec-$algo.h5" --overwrite \
        --weights random:1 --precision "$prec" --algo "$algo" --batch "$batch" --threads "$threads" \
        "${calib[@]}" --quiet 2>&1 | grep '^done:' || true)
  r[ext_$cfg]=$(echo "$out" | rate)
  [[ $prec == int8 ]] && calib=(--calibration "$work/int8-$algo.h5")
done

ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN{ if (a>0 && b>0) printf "%.2fx", a/b; else print "-" }'; }
best_bf16=${r[bf16_cl]:-0}
echo
echo "| $threads threads, batch $batch | images/s | / PyTorch f32 NCHW | / PyTorch bf16 CL |"
echo "|---|---|---|---|"
for p in f32_nchw f32_cl bf16_cl onnx_f32; do
  echo "| peer $p | ${r[$p]:--} | $(ratio "${r[$p]:-}" "${r[f32_nchw]:-}") | $(ratio "${r[$p]:-}" "$best_bf16") |"
done
for cfg in ${TL_CONFIGS:-f32:direct f32:winograd bf16:direct int8:direct}; do
  for k in fwd ext; do
    v=${r[${k}_$cfg]:-}
    echo "| tlkit $([[ $k == fwd ]] && echo forward || echo "tl-extract e2e") $cfg | ${v:--} | $(ratio "$v" "${r[f32_nchw]:-}") | $(ratio "$v" "$best_bf16") |"
  done
done
echo "| FMA peak | $fma GFLOP/s | | |"

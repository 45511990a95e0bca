#!/usr/bin/env bash
# Accuracy of the fast paths on the demo data (issue 6): features of the same images in f32,
# bf16 and int8, their error against f32, and held-out accuracy of a head trained on f32 and
# evaluated on each, and of a head trained and evaluated on each.
#   [PRECISIONS="f32 int8"] bench/precision_accuracy.sh [BUILD_DIR] [WORK_DIR] [WEIGHTS]
set -euo pipefail
build=${1:-build}
work=${2:-$(mktemp -d)}
weights=${3:-random:1}
size=64
mkdir -p "$work"
[ -d "$work/data/train" ] || "$build/data/tl-demo-data" --output "$work/data" >/dev/null
for p in ${PRECISIONS:-f32 bf16 int8}; do
  for split in train test; do
    [ -f "$work/$split-$p.h5" ] || "$build/tools/tl-extract" --images "$work/data/$split" \
      --output "$work/$split-$p.h5" --weights "$weights" --size $size --precision "$p" \
      --calibrate 256 --quiet 2>/dev/null
  done
  "$build/tools/tl-train" --train "$work/train-$p.h5" --val-split 0.2 --head linear --lr 1e-4 \
    --epochs 60 --patience 8 --seed 1 --quiet --output "$work/model-$p.h5" 2>/dev/null
done
acc() {  # model features -> held-out accuracy
  "$build/tools/tl-predict" --model "$1" --features "$2" --output "$work/p.csv" \
    --metrics-json "$work/m.json" --force --quiet >/dev/null 2>&1
  grep -o '"accuracy": [0-9.]*' "$work/m.json" | head -1 | cut -d' ' -f2
}
echo "weights $weights, ${size}x${size}, block5_pool, 4000 train / 1000 held-out Fashion-MNIST"
printf '%-6s %22s %26s %28s\n' precision feature_error_vs_f32 f32_head_on_these_features head_trained_on_these
for p in ${PRECISIONS:-f32 bf16 int8}; do
  err=$(/usr/bin/python3 - "$work/test-f32.h5" "$work/test-$p.h5" <<'PY'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["features"][:]; b = h5py.File(sys.argv[2], "r")["features"][:]
print(f"{np.abs(a - b).max() / np.abs(a).max():.2e}")
PY
)
  printf '%-9s %22s %26s %28s\n' "$p" "$err" "$(acc "$work/model-f32.h5" "$work/test-$p.h5")" \
    "$(acc "$work/model-$p.h5" "$work/test-$p.h5")"
done

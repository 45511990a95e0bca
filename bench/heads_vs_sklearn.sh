#!/usr/bin/env bash
# Every tl-train head, with and without standardisation, and fine-tuning, beside scikit-learn's
# LogisticRegression (raw and standardised) on the same feature files: held-out accuracy and
# wall time, one markdown table per data set (issue 16).
#
#   bench/heads_vs_sklearn.sh [OUT_DIR]        # default bench-heads/
#
# Data: the demo's Fashion-MNIST subset (scripts/demo.sh: 400 + 100 a class, seed 1,
# block5_pool 64x64) and a second one (300 + 100 a class, seed 2, 32x32, block5_pool and
# block4_pool for fine-tuning), both with random:1 weights, made in OUT_DIR if missing.
# Needs a build (scripts/build.sh), Debian's python3-sklearn and python3-h5py (a benchmark may
# use them; the build and the tests do not). TL_THREADS (default: all cores) caps tlkit's
# threads and numpy's BLAS threads alike.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${TL_BIN:-$root/build/tools}  # the tools to measure
out=${1:-bench-heads}
threads=${TL_THREADS:-$(nproc)}
py=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
mkdir -p "$out"
cd "$out"
"$py" -c 'import sklearn, h5py' || { echo "needs python3-sklearn and python3-h5py" >&2; exit 1; }

make_set() {  # name train_per_class test_per_class seed size layers...
  local name=$1 tr=$2 te=$3 seed=$4 size=$5
  shift 5
  [ -d "$name/data" ] || "$root/build/data/tl-demo-data" --output "$name/data" \
    --train-per-class "$tr" --test-per-class "$te" --seed "$seed" >/dev/null
  for layer in "$@"; do
    for split in train test; do
      f=$name/$split.${layer%_pool}.h5
      [ -f "$f" ] || "$bin/tl-extract" --images "$name/data/$split" --output "$f" \
        --weights random:1 --size "$size" --layer "$layer" --threads "$threads" --quiet
    done
  done
}
make_set demo 400 100 1 64 block5_pool
make_set second 300 100 2 32 block5_pool block4_pool

row() {  # label seconds accuracy
  printf '| %s | %s | %.1f |\n' "$1" "$2" "$3"
}

# tl-train ARGS on TRAIN, tl-predict on TEST: "| args | accuracy | seconds |"
tl_run() {
  local train=$1 test=$2 label=$3
  shift 3
  local model=$out_set/m.h5
  rm -f "$model"
  local t0 t1
  t0=$(date +%s.%N)
  "$bin/tl-train" --train "$train" --output "$model" --threads "$threads" --quiet --overwrite \
    "$@" >"$out_set/train.log" 2>&1 || true
  t1=$(date +%s.%N)
  local acc=failed
  if [ -f "$model" ]; then
    "$bin/tl-predict" --model "$model" --features "$test" --output "$out_set/p.csv" \
      --metrics-json "$out_set/m.json" --threads "$threads" --overwrite >/dev/null 2>&1
    acc=$(grep -o '"accuracy": [0-9.]*' "$out_set/m.json" | head -1 | cut -d' ' -f2)
  fi
  local guard
  guard=$(grep -c '^guard:' "$out_set/train.log" || true)
  row "tl-train $label$([ "$guard" -gt 0 ] && echo " (guard stepped in $guard x)")" "$acc" \
    "$(awk "BEGIN { print $t1 - $t0 }")"
}

sk_run() {  # train test label args...
  local train=$1 test=$2 label=$3
  shift 3
  local t0 t1 j
  t0=$(date +%s.%N)
  j=$("$py" "$root/bench/sklearn_logreg.py" "$train" "$test" "$@" 2>/dev/null)
  t1=$(date +%s.%N)
  row "scikit-learn $label ($(echo "$j" | grep -o '"iterations": [0-9]*' | cut -d' ' -f2) iterations)" \
    "$(echo "$j" | grep -o '"accuracy": [0-9.]*' | cut -d' ' -f2)" "$(awk "BEGIN { print $t1 - $t0 }")"
}

table() {  # set train test [train4 test4]
  out_set=$PWD/$1
  echo
  echo "### $1: $(basename "$2") ($(nproc) CPUs, $threads threads, $(lscpu | sed -n 's/^Model name: *//p'))"
  echo
  echo "| run | held-out accuracy | wall s |"
  echo "|---|---|---|"
  tl_run "$2" "$3" "(default: logreg, standardized)"
  tl_run "$2" "$3" "--standardize off (logreg)" --standardize off
  tl_run "$2" "$3" "--head linear" --head linear
  tl_run "$2" "$3" "--head linear --standardize off" --head linear --standardize off
  tl_run "$2" "$3" "--head mlp" --head mlp
  tl_run "$2" "$3" "--head mlp --standardize off" --head mlp --standardize off
  tl_run "$2" "$3" "--head linear --lr 1e-4 --epochs 60 --patience 8 --val-split 0.2 --standardize off (the old README)" \
    --head linear --lr 1e-4 --epochs 60 --patience 8 --val-split 0.2 --standardize off
  if [ $# -ge 5 ]; then
    tl_run "$4" "$5" "--finetune block5 (block4_pool features)" --finetune block5
  fi
  sk_run "$2" "$3" "LogisticRegression() raw"
  sk_run "$2" "$3" "StandardScaler + LogisticRegression()" --standardize
  sk_run "$2" "$3" "StandardScaler + LogisticRegression(C=0.01)" --standardize --C 0.01
}

{
  table demo demo/train.block5.h5 demo/test.block5.h5
  table second second/train.block5.h5 second/test.block5.h5 second/train.block4.h5 second/test.block4.h5
} | tee results.md

#!/usr/bin/env bash
# The main job end to end on a real data set, from nothing:
#   install -> build -> Fashion-MNIST subset as PNG class folders -> tl-extract (train and
#   held-out) -> tl-train -> tl-predict on the held-out images -> accuracy and pictures.
# Weights: the Keras ImageNet file when present (TL_WEIGHTS=FILE, or the Keras cache),
# otherwise seeded random weights, said plainly.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${TL_DEMO_OUT:-demo-out}
size=${TL_DEMO_SIZE:-64}     # 28x28 images upscaled to 64x64: block5_pool keeps a 2x2 grid
threads=${TL_THREADS:-0}

echo "== 1/6 install dependencies"
scripts/install-deps.sh
echo "== 2/6 build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target tl-extract tl-train tl-predict tl-demo-data
bin=build/tools

weights=${TL_WEIGHTS:-}
cache="${KERAS_HOME:-$HOME/.keras}/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
if [ -z "$weights" ] && [ -f "$cache" ]; then weights="$cache"; fi
if [ -n "$weights" ]; then
  echo "weights: $weights (Keras's ImageNet weights)"
else
  weights="random:1"
  cat <<'MSG'
weights: random:1 -- the Keras ImageNet file was not found, so this demo uses SEEDED RANDOM
  weights (NOT pretrained). The features are still a fixed random projection a classifier can
  learn from, but the accuracy below is far from what ImageNet weights give. To use them, put
  vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (from Keras's applications release, 58.9 MB)
  into ~/.keras/models/ or run with TL_WEIGHTS=/path/to/file.h5.
MSG
fi

echo "== 3/6 data: a seeded balanced Fashion-MNIST subset as PNG class folders"
mkdir -p "$out"
[ -d "$out/data/train" ] || "$bin/../data/tl-demo-data" --output "$out/data" \
  --train-per-class "${TL_DEMO_TRAIN:-400}" --test-per-class "${TL_DEMO_TEST:-100}" --seed 1

echo "== 4/6 tl-extract: block5_pool features at ${size}x${size}"
common=(--weights "$weights" --size "$size" --layer block5_pool --threads "$threads")
for split in train test; do
  rc=0
  "$bin/tl-extract" --images "$out/data/$split" --output "$out/$split.h5" "${common[@]}" || rc=$?
  [ $rc -eq 0 ] || [ $rc -eq 3 ] || exit $rc   # 3: some images skipped (listed in /failed)
done

echo "== 5/6 tl-train at its defaults: standardized features, logistic regression by L-BFGS"
"$bin/tl-train" --train "$out/train.h5" --threads "$threads" --output "$out/model.h5" \
  --history "$out/history.csv" --metrics-json "$out/train-metrics.json" --plot "$out/curves.png"

echo "== 6/6 tl-predict on the held-out images"
"$bin/tl-predict" --model "$out/model.h5" --images "$out/data/test" --weights "$weights" \
  --threads "$threads" --output "$out/predictions.csv" --top-k 3 \
  --metrics-json "$out/test-metrics.json" --plot "$out/confusion.png" 2>&1 | tee "$out/predict.log"

acc=$(grep -o '"accuracy": [0-9.]*' "$out/test-metrics.json" | head -1 | cut -d' ' -f2)
cat <<EOF2

Demo done. Held-out accuracy: $acc ($(( ${TL_DEMO_TEST:-100} * 10 )) Fashion-MNIST images, 10 classes, weights: $weights)
Outputs in $out/:
  train.h5, test.h5        cached block5_pool features (h5py: f['features'][:])
  model.h5                 the trained head (docs/FORMAT.md)
  history.csv, curves.png  the fit at each C tried (loss and accuracy, training and validation)
  predictions.csv          one row per held-out image, with the top 3 classes
  confusion.png            the confusion matrix; test-metrics.json: per-class metrics
EOF2

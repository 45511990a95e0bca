#!/usr/bin/env bash
# `cmake --install` into a scratch prefix, then a separate project (tests/consumer) finds the
# installed package, builds against it and computes the features of one image, which must equal
# (within twice f32's bound of 1e-5 of the scale) what the installed tl-extract stores for it.
#   tests/install_consumer.sh BUILD_DIR SCRATCH_DIR
set -euo pipefail
build=$(realpath "$1") scratch=$2
src=$(cd "$(dirname "$0")/.." && pwd)
# The scratch folder: new, or one this script made before (marker); never anything else.
if [ -d "$scratch" ] && [ -n "$(ls -A "$scratch")" ] && [ ! -f "$scratch/.install_consumer" ]; then
  echo "install_consumer: $scratch is not empty and was not made by this script" >&2
  exit 1
fi
rm -rf "$scratch" && mkdir -p "$scratch/images/a" && touch "$scratch/.install_consumer"
prefix="$scratch/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/tl-extract bin/tl-train bin/tl-predict bin/tl-merge bin/tl-forward \
  lib/cmake/tlkit/tlkitConfig.cmake include/tl/vgg16.hpp include/tl/version.hpp; do
  [ -e "$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
"$prefix/bin/tl-extract" --version | head -1
cmake -S "$src/tests/consumer" -B "$scratch/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/consumer" >/dev/null
consumer="$scratch/consumer/tlkit-consumer"
"$consumer" write-image "$scratch/images/a/gradient.png"
"$prefix/bin/tl-extract" --images "$scratch/images" --output "$scratch/f.h5" --weights random:1 \
  --size 32 --quiet
"$consumer" compare "$scratch/images/a/gradient.png" "$scratch/f.h5"

# docs/GUIDE.md section 14's example, as written: its cmake and cpp blocks.
section() { awk -v lang="$1" '/^## 14\./ { on = 1 } on && /^```/ { if (inb) exit; inb = ($0 == "```" lang); next }
                              inb { print }' "$src/docs/GUIDE.md"; }
mkdir -p "$scratch/app"
section cmake > "$scratch/app/CMakeLists.txt"
section cpp > "$scratch/app/main.cpp"
[ -s "$scratch/app/CMakeLists.txt" ] && [ -s "$scratch/app/main.cpp" ] || { echo "GUIDE section 14: blocks not found"; exit 1; }
cmake -S "$scratch/app" -B "$scratch/app/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/app/build" >/dev/null
"$scratch/app/build/app" "$scratch/images/a/gradient.png" random:1

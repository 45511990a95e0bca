#!/usr/bin/env bash
# Builds the Debian package (cpack -G DEB, man pages from --help), installs it with apt-get,
# runs the installed tools from /usr/bin (--version and a tiny extraction), then removes it and
# checks that nothing is left in /usr/bin. Needs root or sudo (apt-get). Issue 18, item 4.
#   scripts/test-deb.sh          # uses ./build (built by scripts/test.sh or scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if dpkg-query -W -f='${Status}' tlkit 2>/dev/null | grep -q "ok installed"; then
  echo "test-deb: a tlkit package is already installed; remove it first" >&2
  exit 1
fi
cmake -S . -B build -G Ninja -DTL_MAN_PAGES=ON >/dev/null
cmake --build build -j"$(nproc)" >build/test-deb-build.log 2>&1 ||
  { cat build/test-deb-build.log >&2; exit 1; }
rm -f build/tlkit_*.deb
(cd build && cpack -G DEB >cpack.log 2>&1) || { cat build/cpack.log >&2; exit 1; }
deb=$(realpath build/tlkit_*_amd64.deb)
echo "test-deb: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB"
dpkg-deb --field "$deb" Depends | sed 's/^/test-deb: Depends: /'
contents=$(dpkg-deb --contents "$deb")
for f in usr/bin/tl-extract usr/bin/tl-train usr/bin/tl-predict usr/bin/tl-merge \
  usr/bin/tl-forward usr/bin/tl-export usr/share/man/man1/tl-export.1.gz usr/share/man/man1/tl-extract.1.gz usr/share/doc/tlkit/GUIDE.md \
  usr/lib/cmake/tlkit/tlkitConfig.cmake usr/include/tl/vgg16.hpp; do
  grep -q " \./$f$" <<<"$contents" || { echo "test-deb: $f not in the package" >&2; exit 1; }
done

work=$(mktemp -d)
trap '$sudo apt-get remove -y -qq tlkit >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq "$deb" >/dev/null
/usr/bin/tl-extract --version | head -1
quiet() { "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }; }  # output on failure
quiet build/data/tl-demo-data --output "$work/data" --train-per-class 1 --test-per-class 1 --seed 1
quiet /usr/bin/tl-extract --images "$work/data/train" --output "$work/f.h5" --weights random:1 \
  --size 32 --quiet
quiet /usr/bin/tl-train --train "$work/f.h5" --head linear --epochs 1 --output "$work/m.h5" --quiet
quiet /usr/bin/tl-predict --model "$work/m.h5" --features "$work/f.h5" --output "$work/p.csv" \
  --quiet
[ "$(wc -l < "$work/p.csv")" -eq 11 ] || { echo "test-deb: expected 10 predictions" >&2; exit 1; }
quiet /usr/bin/tl-export --model "$work/m.h5" --network --output "$work/m.onnx"
[ -s "$work/m.onnx" ] || { echo "test-deb: tl-export wrote no ONNX file" >&2; exit 1; }
$sudo apt-get remove -y -qq tlkit >/dev/null
for t in tl-extract tl-train tl-predict tl-merge tl-forward tl-export; do
  [ ! -e "/usr/bin/$t" ] || { echo "test-deb: /usr/bin/$t left after removal" >&2; exit 1; }
done
echo "test-deb: installed, ran from /usr/bin, removed"

#!/usr/bin/env bash
# Packs a self-contained build for a machine where nothing can be installed (the 16-core
# device machine of issue 6): the benchmark binaries, every shared library they load (glibc and
# its loader included), and wrappers that start each binary through the carried loader.
#   bench/pack_for_device.sh BUILD_DIR DEST      (DEST/tl.tar.xz; unpack with tar -xJf)
# On the other machine: tar -xJf DEST/tl.tar.xz -C /tmp, then /tmp/tl/build is a BUILD_DIR for
# bench/peer_bench.sh and bench/scaling.sh.
set -euo pipefail
build=$1
dest=$2
bins=(tools/tl-extract tools/tl-forward bench/bench_vgg16 bench/bench_make_images)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/tl/lib" "$stage/tl/real" "$stage/tl/build/tools" "$stage/tl/build/bench" "$dest"
for b in "${bins[@]}"; do
  cp "$build/$b" "$stage/tl/real/"
  ldd "$build/$b" | awk '$3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}'
  # The wrapper: the carried loader with the carried libraries, whatever the host's glibc is.
  printf '#!/bin/sh\nd=$(dirname "$(readlink -f "$0")")/../..\nexec "$d/lib/ld-linux-x86-64.so.2" --library-path "$d/lib" "$d/real/%s" "$@"\n' \
    "$(basename "$b")" >"$stage/tl/build/$b"
  chmod +x "$stage/tl/build/$b"
done | sort -u | xargs -I{} cp -L {} "$stage/tl/lib/"
tar -C "$stage" -cf - tl | xz -T2 -6 >"$dest/tl.tar.xz"
ls -l "$dest/tl.tar.xz"

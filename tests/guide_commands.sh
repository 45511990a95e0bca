#!/usr/bin/env bash
# Runs the commands of docs/GUIDE.md on a tiny data set (10 classes x 10 training, 5 held-out
# Fashion-MNIST PNGs) and checks that the guide and this script agree:
#   - every tl-extract/tl-train/tl-predict/tl-merge/tl-export command in the guide's bash blocks uses
#     options that the tool's --help lists;
#   - every such one-line command appears below, character for character, once the guide's
#     ImageNet weights are replaced by `--weights random:1 --size 32` (fast, no weights file;
#     tl-predict and tl-export take the size from the model, so there only the weights change);
#   - --slurm-array submits (a fake sbatch keeps the script), its 8 tasks run with the Slurm
#     variables simulated, a lost task is rerun, tl-merge's file equals the single-machine one;
#   - the guide's h5py snippets run as written (skipped when python3 lacks h5py).
# Usage: tests/guide_commands.sh BUILD_DIR SCRATCH_DIR
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR SCRATCH_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
guide="$here/../docs/GUIDE.md"
python=${TL_PYTHON:-/usr/bin/python3}
[ -f "$guide" ] || { echo "guide_commands: $guide not found" >&2; exit 1; }
for t in tl-extract tl-train tl-predict tl-merge tl-export; do
  [ -x "$build/tools/$t" ] || { echo "guide_commands: $build/tools/$t not built" >&2; exit 1; }
done
[ -x "$build/data/tl-demo-data" ] || { echo "guide_commands: $build/data/tl-demo-data not built" >&2; exit 1; }

# The scratch folder: created here, or one this script made before (marker), emptied.
mkdir -p "$2"
scratch=$(cd "$2" && pwd)
if [ -n "$(ls -A "$scratch")" ]; then
  [ -f "$scratch/.guide_commands" ] || {
    echo "guide_commands: $scratch is not empty and was not made by this script" >&2
    exit 1
  }
  find "$scratch" -mindepth 1 -delete
fi
touch "$scratch/.guide_commands"
cd "$scratch"
export PATH="$build/tools:$PATH"
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN

fail() { echo "guide_commands: FAIL: $*" >&2; exit 1; }
say() { echo; echo "== $*"; }

# The guide's fenced blocks of one language, one logical line each ("N<TAB>line", N = block
# number), continuation lines joined.
blocks() {
  awk -v want="$1" '
    /^```/ { if (!inb) { inb = 1; lang = substr($0, 4); n++; buf = ""; next }
             inb = 0; next }
    inb && lang == want {
      line = $0
      if (line ~ /\\$/) { buf = buf substr(line, 1, length(line) - 1); next }
      print n "\t" buf line; buf = ""
    }' "$guide"
}
# The text of the guide's block of language $1 whose text contains $2.
block_with() {
  awk -v want="$1" -v key="$2" '
    /^```/ { if (!inb) { inb = 1; lang = substr($0, 4); txt = ""; next }
             inb = 0; if (lang == want && index(txt, key)) { printf "%s", txt; exit } next }
    inb { txt = txt $0 "\n" }' "$guide"
}

say "the guide's commands use real options only"
checked=0
while IFS=$'\t' read -r _ line; do
  # Split at ; && || | so that each piece holds at most one command.
  while IFS= read -r piece; do
    for t in tl-extract tl-train tl-predict tl-merge tl-export; do
      re="(^|[[:space:](])$t([[:space:]]|\$)"
      [[ "$piece" =~ $re ]] || continue
      rest=${piece#*"$t"}
      help=$("$t" --help)
      for opt in $(grep -oE -- '(^|[[:space:]])--[a-z0-9-]+' <<<"$rest" | tr -d ' \t' || true); do
        grep -qE -- "(^|[[:space:][])$opt([[:space:]]|$)" <<<"$help" ||
          fail "the guide uses '$opt', which '$t --help' does not list: $piece"
        checked=$((checked + 1))
      done
    done
  done < <(sed -e 's/&&/\n/g; s/||/\n/g; s/;/\n/g; s/|/\n/g' <<<"$line")
done < <(blocks bash)
[ "$checked" -gt 20 ] || fail "found only $checked options in the guide's bash blocks"
echo "$checked options checked"

say "every one-line tl-* command of the guide is run by this script"
listed=0
while IFS=$'\t' read -r _ line; do
  [[ "$line" =~ ^(tl-extract|tl-train|tl-predict|tl-merge|tl-export)[[:space:]] ]] || continue
  # The sbatch script and the collect loop are run as written, as wholes, below.
  [[ "$line" == *'$SLURM_'* || "$line" == *'${args[@]}'* ]] && continue
  # tl-predict and tl-export take the size from the model: only the weights change there.
  if [[ "$line" == tl-predict* || "$line" == tl-export* ]]; then sub="--weights random:1"; else sub="--weights random:1 --size 32"; fi
  mine=${line//--weights vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5/$sub}
  grep -qxF -- "$mine" "$self" || fail "this script does not run the guide's command: $mine"
  listed=$((listed + 1))
done < <(blocks bash)
[ "$listed" -gt 10 ] || fail "found only $listed commands in the guide"
echo "$listed commands found here"

say "data: a tiny class-folder data set"
"$build/data/tl-demo-data" --output "$scratch/data" --train-per-class 10 --test-per-class 5
[ -d data/train ] && [ -d data/test ] || fail "tl-demo-data wrote no data/train, data/test"

say "3. extract"
tl-extract --images data/train --output train.h5 --weights random:1 --size 32
tl-extract --images data/test --output test.h5 --weights random:1 --size 32
tl-extract --images data/train --output train-avg.h5 --pool avg --weights random:1 --size 32
# A rerun of a finished extraction is a no-op.
tl-extract --images data/train --output train.h5 --weights random:1 --size 32
# validation.h5 stands for the Keras blog's data/validation folder.
tl-extract --images data/test --output validation.h5 --weights random:1 --size 32 --quiet

say "4. train"
tl-train --train train.h5 --output model-probe.h5
tl-train --train train.h5 --val-split 0.2 --head mlp --epochs 30 --patience 5 --output model.h5 --history history.csv
tl-train --train train.h5 --val-split 0.2 --head linear --lr 1e-4 --epochs 60 --patience 8 --output model-linear.h5
tl-train --train train.h5 --val-split 0.2 --head mlp --pool avg --class-weight balanced --output model-gap.h5
tl-train --train train.h5 --val validation.h5 --head mlp --optimizer rmsprop --epochs 50 --batch 16 --output model-blog.h5
for f in model-probe.h5 model.h5 history.csv model.curves.png model-linear.h5 model-gap.h5 model-blog.h5; do
  [ -s "$f" ] || fail "tl-train did not write $f"
done
head -1 history.csv | grep -qx 'epoch,accuracy,loss,val_accuracy,val_loss' ||
  fail "history.csv header: $(head -1 history.csv)"

say "5. predict"
tl-predict --model model.h5 --features test.h5 --output test-predictions.csv
tl-predict --model model.h5 --images data/test --weights random:1 --output predictions.csv --top-k 3 --metrics-json test-metrics.json
[ "$(wc -l <predictions.csv)" -eq 51 ] || fail "predictions.csv: $(wc -l <predictions.csv) lines"
head -1 predictions.csv | grep -q '^path,label,predicted,probability,top2,top2_probability,top3' ||
  fail "predictions.csv header: $(head -1 predictions.csv)"
grep -q '"accuracy"' test-metrics.json || fail "test-metrics.json has no accuracy"
rc=0
tl-predict --model model.h5 --images data/test --weights random:2 --output other.csv --quiet || rc=$?
[ "$rc" -eq 1 ] || fail "tl-predict with other weights: exit $rc, expected a refusal (1)"

say "6. fine-tuning block5 on block4_pool features"
tl-extract --images data/train --output train-block4.h5 --layer block4_pool --weights random:1 --size 32
tl-train --finetune block5 --train train-block4.h5 --val-split 0.2 --head mlp --epochs 10 --finetune-epochs 5 --output model-finetuned.h5
tl-train --finetune block5 --train train-block4.h5 --head-init model.h5 --val-split 0.2 --finetune-epochs 5 --output model-finetuned2.h5
tl-predict --model model-finetuned.h5 --images data/test --weights random:1 --output predictions-finetuned.csv
[ "$(wc -l <predictions-finetuned.csv)" -eq 51 ] || fail "predictions-finetuned.csv: $(wc -l <predictions-finetuned.csv) lines"
expect_fail_train() {  # a fine-tuning error: exit $1, message containing $2
  local rc=0 out
  out=$("${@:3}" 2>&1) || rc=$?
  [ "$rc" -eq "$1" ] && grep -qF -- "$2" <<<"$out" || fail "exit $rc, expected $1 and '$2': ${*:3}: $out"
}
expect_fail_train 2 block4_pool tl-train --finetune block5 --train train.h5 --output never.h5

say "7. augmentation"
tl-extract --images data/train --preview augment.png --augment 4 --rotation 40 --width-shift 0.2 --height-shift 0.2 --shear 0.2 --zoom 0.2 --horizontal-flip
tl-extract --images data/train --output train-aug.h5 --augment 4 --rotation 40 --width-shift 0.2 --height-shift 0.2 --shear 0.2 --zoom 0.2 --horizontal-flip --weights random:1 --size 32
tl-train --train train-aug.h5 --val-split 0.2 --head mlp --output model-aug.h5
[ -s augment.png ] && [ -s model-aug.h5 ] || fail "--preview or tl-train on augmented rows wrote nothing"
expect_fail_train 2 "--rotation: the file has 40" tl-extract --images data/train --output train-aug.h5 --augment 4 --rotation 30 --width-shift 0.2 --height-shift 0.2 --shear 0.2 --zoom 0.2 --horizontal-flip --weights random:1 --size 32

say "10. shards by hand, training on the folder"
mkdir -p train.shards
tl-extract --images data/train --output train.shards/shard-0-of-2.h5 --shard 0/2 --weights random:1 --size 32
tl-extract --images data/train --output train.shards/shard-1-of-2.h5 --shard 1/2 --weights random:1 --size 32
tl-train --train train.shards --val-split 0.2 --output model-shards.h5
tl-train --train train.shards/shard-0-of-2.h5 --train train.shards/shard-1-of-2.h5 --epochs 2 --output model-shard-files.h5

say "10. --slurm-array (sbatch simulated: the script is kept, its 8 tasks run one by one)"
mkdir -p fakebin
printf '#!/bin/sh\ncat >"%s/submitted.sbatch"\necho "Submitted batch job 1"\n' "$scratch" >fakebin/sbatch
chmod +x fakebin/sbatch
saved_path=$PATH
export PATH="$scratch/fakebin:$PATH"
tl-extract --images data/train --output feats.h5 --slurm-array 8 --cpus-per-task 16 --sbatch-arg=--time=04:00:00 --sbatch-arg=--mem=8G --weights random:1 --size 32
export PATH=$saved_path
grep -qx '#SBATCH --array=0-7' submitted.sbatch && grep -qx '#SBATCH --mem=8G' submitted.sbatch ||
  fail "the submitted script lacks its #SBATCH lines"
tl-extract --images data/train --output feats.h5 --slurm-array 8 --cpus-per-task 16 --dry-run --weights random:1 --size 32 > extract.sbatch
grep -q -- '--shard "$k/8"' extract.sbatch || fail "the --dry-run script runs no --shard K/8"
for k in 0 1 2 3 4 5 6 7; do
  SLURM_ARRAY_TASK_ID=$k SLURM_CPUS_PER_TASK=1 bash submitted.sbatch 2>/dev/null
done
# A failed task 3, resubmitted (sbatch --array=3 extract.sbatch); a finished one is a no-op.
rm feats.shards/shard-3-of-8.h5
rc=0
tl-merge feats.shards --output never.h5 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "tl-merge over a folder without shard 3: exit $rc, expected 1"
SLURM_ARRAY_TASK_ID=3 SLURM_CPUS_PER_TASK=1 bash extract.sbatch 2>/dev/null
SLURM_ARRAY_TASK_ID=3 SLURM_CPUS_PER_TASK=1 bash extract.sbatch 2>&1 | grep -q 'already complete' ||
  fail "a rerun of a finished task did not say so"
tl-merge feats.shards --output feats.h5
tl-merge feats.shards --output feats-copy.h5 --copy
tl-train --train feats.h5 --val-split 0.2 --head mlp --output model-slurm.h5
tl-train --train feats.shards --epochs 2 --output model-slurm-folder.h5
# Without --shard, the Slurm array variables pick the shard.
SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=2 \
  tl-extract --images data/train --output env-shard-1.h5 --weights random:1 --size 32 --quiet

say "13. precision and storage"
# bf16 runs where oneDNN has a native bf16 kernel; elsewhere (AVX2, or CI's ONEDNN_MAX_CPU_ISA=AVX2
# run) the guide says it is refused up front: exit 2, naming the ISA, and no file.
export TL_GUIDE_BF16=0
if tl-extract --version | grep -q '^bf16: native'; then
tl-extract --images data/train --output train-bf16.h5 --precision bf16 --dtype f16 --weights random:1 --size 32
  TL_GUIDE_BF16=1
else
  rc=0
  msg=$(tl-extract --images data/train --output train-bf16.h5 --precision bf16 --weights random:1 --size 32 2>&1) || rc=$?
  [ "$rc" -eq 2 ] && [ ! -e train-bf16.h5 ] && grep -q "oneDNN ISA" <<<"$msg" ||
    fail "bf16 without a native kernel: exit $rc, expected 2 naming the ISA and no file: $msg"
  echo "bf16 refused here, as the guide says: $msg"
fi
tl-extract --images data/train --output train-auto.h5 --precision auto --weights random:1 --size 32

say "15. ONNX export"
tl-export --model model.h5 --output model-head.onnx
tl-export --model model.h5 --weights random:1 --output model.onnx
for f in model-head.onnx model.onnx; do [ -s "$f" ] || fail "tl-export did not write $f"; done
rc=0
tl-export --model model.h5 --weights random:2 --output never.onnx 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] && [ ! -e never.onnx ] || fail "tl-export with other weights: exit $rc, expected 1"

say "exit codes"
expect() {  # expect CODE command...
  local want=$1 rc=0
  shift
  "$@" >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq "$want" ] || fail "exit $rc, expected $want: $*"
}
expect 2 tl-extract --no-such-option
expect 2 tl-extract --images data/train --output train.h5 --weights random:1 --size 64
expect 1 tl-extract --images data/train --output missing-weights.h5 --weights no-such-file.h5
cp -r data/test broken
echo "not an image" >broken/bag/zz-broken.png
expect 3 tl-extract --images broken --output broken.h5 --weights random:1 --size 32
expect 2 tl-train --train train.h5 --patience 2 --output never.h5

say "9. h5py snippets (as written in the guide)"
if "$python" -c 'import h5py, numpy' 2>/dev/null; then
  block_with python 'with h5py.File("train.h5", "r") as f:' >load.py
  block_with python 'with h5py.File("feats.h5", "r") as f:' >shards.py
  [ -s load.py ] && [ -s shards.py ] || fail "the guide's h5py snippets are missing"
  "$python" - <<'EOF'
import h5py, numpy as np
ns = {}
exec(open("load.py").read(), ns)
x, y, classes = ns["x"], ns["y"], ns["classes"]
assert x.shape == (100, 1, 1, 512) and x.dtype == np.float32, (x.shape, x.dtype)
assert y.shape == (100,) and len(classes) == 10 and classes == sorted(classes), classes
assert (np.bincount(y) == 10).all(), np.bincount(y)

sh = {}
exec(open("shards.py").read(), sh)  # the merged file of the 8-task array
with h5py.File("train.h5", "r") as f:
    whole_x, whole_y = f["features"][:], f["labels"][:]
    whole_paths = list(f["paths"].asstr()[:])
assert sh["paths"] == whole_paths, "merged rows are not the single-machine rows in order"
assert np.array_equal(sh["y"], whole_y)
assert np.array_equal(sh["x"], whole_x), "merged features differ from the single-machine run"
with h5py.File("feats.h5", "r") as f, h5py.File("feats-copy.h5", "r") as g:
    assert f["features"].is_virtual and not g["features"].is_virtual
    assert np.array_equal(g["features"][:], whole_x) and f.attrs["rows_done"] == 100

def rows(fn):
    with h5py.File(fn, "r") as f:
        return list(f["paths"].asstr()[:]), dict(f.attrs)
for k in (0, 1):
    p, a = rows(f"train.shards/shard-{k}-of-2.h5")
    assert a["shard_index"] == k and a["shard_count"] == 2, (k, a)
p, a = rows("env-shard-1.h5")
assert p == rows("train.shards/shard-1-of-2.h5")[0] and (a["shard_index"], a["shard_count"]) == (1, 2)
import os
if os.environ["TL_GUIDE_BF16"] == "1":
    with h5py.File("train-bf16.h5", "r") as f:
        assert f["features"].dtype == np.float16 and f.attrs["precision"] == "bf16"
with h5py.File("train-auto.h5", "r") as f:
    assert f.attrs["precision"] in ("int8", "bf16", "f32") and f.attrs["cpu_isa"], dict(f.attrs)
with h5py.File("train-avg.h5", "r") as f:
    assert f["features"].shape == (100, 512)
with h5py.File("train-block4.h5", "r") as f:
    assert f["features"].shape == (100, 2, 2, 512) and f.attrs["layer"] == "block4_pool"
with h5py.File("broken.h5", "r") as f:
    failed = f["failed"].asstr()[:]
    assert failed.shape == (1, 2) and failed[0, 0] == "bag/zz-broken.png", failed
print("h5py snippets: ok")
EOF
else
  echo "SKIP: $python cannot import h5py and numpy (Debian: python3-h5py python3-numpy)"
fi

echo
echo "guide_commands: all passed"

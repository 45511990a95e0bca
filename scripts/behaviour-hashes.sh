#!/usr/bin/env bash
# SHA-256 of the contents (not the files: those carry time stamps) of what the tools write, on a
# small seeded demo: features (/features /labels /paths /failed) at each precision the CPU runs,
# models (every dataset under /head and /block5, and the history CSV: every epoch's losses) at
# fixed seeds with 1 and 2 threads, and tl-predict's CSVs. Run before and after a change that must leave behaviour unchanged to the bit;
# diff the two outputs. Needs the built tools (build/) and python3-h5py.
#   scripts/behaviour-hashes.sh > before.txt   ...change...   scripts/behaviour-hashes.sh | diff before.txt -
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${TL_BIN:-build/tools}")  # TL_BIN: the tools of another build (say, of the base)
py=${TL_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
q() { "$@" >/dev/null 2>&1 || { rc=$?; [ $rc -eq 3 ] || { echo "failed ($rc): $*" >&2; exit 1; }; }; }

hash_h5() { # label file dataset-or-group...
  local label=$1 file=$2; shift 2
  "$py" - "$file" "$@" <<'PY' | sed "s|^|$label |"
import hashlib, sys, h5py
f = h5py.File(sys.argv[1], "r")
def walk(name, obj, out):
    if isinstance(obj, h5py.Dataset):
        out.append(name)
    else:
        for k in obj:
            walk(name + "/" + k, obj[k], out)
for root in sys.argv[2:]:
    if root not in f:
        print(root, "absent"); continue
    names = []
    walk(root, f[root], names)
    for n in sorted(names):
        d = f[n]
        h = hashlib.sha256(str(d.dtype).encode() + str(d.shape).encode())
        h.update(d[()].tobytes() if d.dtype.kind != "O" else repr(d[()].tolist()).encode())
        print(n, h.hexdigest())
PY
}

q "$bin/../data/tl-demo-data" --output "$work/data" --train-per-class 40 --test-per-class 10 --seed 1
w=random:1
feat=(/features /labels /paths /failed)
for split in train test; do
  q "$bin/tl-extract" --images "$work/data/$split" --output "$work/$split.h5" --weights $w \
    --size 64 --layer block5_pool --threads 2
  hash_h5 "extract-$split" "$work/$split.h5" "${feat[@]}"
  q "$bin/tl-extract" --images "$work/data/$split" --output "$work/$split-b4.h5" --weights $w \
    --size 32 --layer block4_pool --threads 2
  hash_h5 "extract-$split-b4" "$work/$split-b4.h5" "${feat[@]}"
done
for p in direct:f32 winograd:f32 direct:bf16 direct:int8; do
  algo=${p%:*} prec=${p#*:}
  for pool in none avg; do
    out="$work/t-$algo-$prec-$pool.h5"
    if "$bin/tl-extract" --images "$work/data/test" --output "$out" --weights $w --size 48 \
      --layer block5_conv3 --pool $pool --precision $prec --algo $algo --threads 2 >/dev/null 2>&1; then
      hash_h5 "extract-$algo-$prec-$pool" "$out" "${feat[@]}"
    else
      echo "extract-$algo-$prec-$pool refused (exit $?)"
    fi
  done
done

model() { # name args...
  local name=$1; shift
  for t in 1 2; do
    rc=0
    "$bin/tl-train" --output "$work/$name-$t.h5" --history "$work/$name-$t.csv" --threads $t "$@" \
      >/dev/null 2>&1 || rc=$?
    if [ $rc -eq 2 ]; then echo "model-$name refused (exit 2)"; return; fi  # e.g. bf16 on AVX2
    [ $rc -eq 0 ] || { echo "failed ($rc): tl-train $*" >&2; exit 1; }
    hash_h5 "model-$name-t$t" "$work/$name-$t.h5" /head /block5
    echo "history-$name-t$t $(sha256sum < "$work/$name-$t.csv" | cut -d' ' -f1)"
  done
  q "$bin/tl-predict" --model "$work/$name-1.h5" --features "${predict_on:-$work/test.h5}" \
    --threads 2 --output "$work/$name.csv"
  echo "predict-$name $(sha256sum < "$work/$name.csv" | cut -d' ' -f1)"
}
tr=(--train "$work/train.h5")
model logreg "${tr[@]}"
model linear "${tr[@]}" --head linear --epochs 3 --seed 5
model mlp "${tr[@]}" --head mlp --epochs 3 --seed 7 --val-split 0.2
model mlp-avg "${tr[@]}" --head mlp --pool avg --epochs 3 --seed 7
model linear-max "${tr[@]}" --head linear --pool max --epochs 3 --seed 7 --standardize off
predict_on="$work/test-b4.h5" model finetune --train "$work/train-b4.h5" --finetune block5 \
  --finetune-epochs 2 --seed 3
predict_on="$work/test-b4.h5" model finetune-bf16 --train "$work/train-b4.h5" --finetune block5 \
  --finetune-epochs 1 --seed 3 --finetune-precision bf16
q "$bin/tl-predict" --model "$work/logreg-1.h5" --images "$work/data/test" --weights $w \
  --threads 2 --output "$work/images.csv" --top-k 3
echo "predict-images $(sha256sum < "$work/images.csv" | cut -d' ' -f1)"

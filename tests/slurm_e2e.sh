#!/usr/bin/env bash
# tl-extract --slurm-array on a real (one-node) Slurm: a 4-task array over a generated
# folder, one task SIGKILLed mid-run and resubmitted, the whole array rerun (finished shards
# are skipped), tl-merge (virtual and --copy), and a comparison with a single-machine run:
# identical rows, labels, paths, classes and failures. Needs root and Slurm + munge
# (scripts/install-slurm.sh); starts and stops its own cluster (scripts/slurm-start.sh).
# Runs only with TL_SLURM_TESTS=1 (exit 77 = skipped otherwise, or without Slurm / root).
# Usage: tests/slurm_e2e.sh BUILD_DIR SCRATCH_DIR
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR SCRATCH_DIR" >&2; exit 2; }
skip() { echo "SKIP: $*"; exit 77; }
[ "${TL_SLURM_TESTS:-0}" = 1 ] || skip "set TL_SLURM_TESTS=1 to run the Slurm test"
[ "$(id -u)" -eq 0 ] || skip "needs root (the test cluster runs as SlurmUser=root)"
command -v sbatch >/dev/null && [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/munged ] ||
  skip "Slurm and munge are not installed (scripts/install-slurm.sh)"

build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
python=${TL_PYTHON:-/usr/bin/python3}
for t in tl-extract tl-merge tl-train; do
  [ -x "$build/tools/$t" ] || { echo "slurm_e2e: $build/tools/$t not built" >&2; exit 1; }
done
mkdir -p "$2"
scratch=$(cd "$2" && pwd)
if [ -n "$(ls -A "$scratch")" ]; then
  [ -f "$scratch/.slurm_e2e" ] || { echo "slurm_e2e: $scratch is not empty" >&2; exit 1; }
  "$here/../scripts/slurm-stop.sh" "$scratch/cluster" >/dev/null 2>&1 || true
  find "$scratch" -mindepth 1 -delete
fi
touch "$scratch/.slurm_e2e"
cd "$scratch"
export PATH="$build/tools:$PATH"
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_JOB_ID

fail() { echo "slurm_e2e: FAIL: $*" >&2; exit 1; }
say() { echo; echo "== $*"; }
wait_limit=${TL_SLURM_WAIT:-300}  # seconds for each sbatch --wait

say "a one-node cluster"
trap '"$here/../scripts/slurm-stop.sh" "$scratch/cluster"' EXIT
"$here/../scripts/slurm-start.sh" "$scratch/cluster"
export SLURM_CONF="$scratch/cluster/slurm.conf"

say "data: 10 classes x 24 images, one broken"
"$build/data/tl-demo-data" --output data --train-per-class 24 --test-per-class 1 >/dev/null
echo "not an image" >data/train/bag/zz-broken.png
opts=(--images data/train --weights random:1 --size 128 --batch 4 --quiet)  # ~3 s a task: time to kill one

say "the single-machine run"
rc=0
tl-extract "${opts[@]}" --output whole.h5 --threads 2 || rc=$?
[ "$rc" -eq 3 ] || fail "single-machine run: exit $rc, expected 3 (one image skipped)"

say "the array script (--dry-run)"
tl-extract "${opts[@]}" --output feats.h5 --slurm-array 4 --cpus-per-task 1 --dry-run >array.sbatch
grep -qx '#SBATCH --array=0-3' array.sbatch || fail "no array line in the script"

say "4-task array; task 1 SIGKILLed mid-run (sbatch --wait in the background)"
tl-extract "${opts[@]}" --output feats.h5 --slurm-array 4 --cpus-per-task 1 \
  --sbatch-arg=--wait >submit1.out 2>&1 &
submitter=$!
lock=feats.shards/shard-1-of-4.h5.lock
start=$SECONDS
victim=""
while [ $((SECONDS - start)) -lt 120 ]; do
  if [ -f feats.shards/shard-1-of-4.h5.partial ] && [ -s "$lock" ]; then
    victim=$(cat "$lock")
    break
  fi
  kill -0 "$submitter" 2>/dev/null || break
  sleep 0.1
done
[ -n "$victim" ] || { cat submit1.out >&2; fail "task 1 never started writing its shard"; }
# Kill it once it has committed rows, so that there is something to resume: space is reserved
# just before each batch is written, so wait for the file to grow, then give the batch 0.3 s.
size0=$(stat -c %s feats.shards/shard-1-of-4.h5.partial)
start=$SECONDS
while [ $((SECONDS - start)) -lt 60 ] && [ -f feats.shards/shard-1-of-4.h5.partial ] &&
  [ "$(stat -c %s feats.shards/shard-1-of-4.h5.partial)" -le "$size0" ]; do
  sleep 0.05
done
sleep 0.3
[ ! -f feats.shards/shard-1-of-4.h5 ] || fail "task 1 finished before it could be killed"
kill -9 "$victim"
echo "killed task 1's tl-extract (pid $victim)"
rc=0
timeout "$wait_limit" tail --pid="$submitter" -f /dev/null || fail "the array did not end"
wait "$submitter" || rc=$?
cat submit1.out
[ "$rc" -ne 0 ] || fail "sbatch --wait returned 0 although task 1 was killed"
echo "sbatch --wait: exit $rc (the killed task's)"
[ ! -e feats.shards/shard-1-of-4.h5 ] || fail "the killed task left a file under the final name"
[ -f feats.shards/shard-1-of-4.h5.partial ] || fail "the killed task left no .partial to resume"
for k in 0 2 3; do [ -f "feats.shards/shard-$k-of-4.h5" ] || fail "shard $k missing"; done

say "tl-merge refuses the incomplete folder, naming shard 1"
rc=0
tl-merge feats.shards --output refused.h5 2>refused.err || rc=$?
cat refused.err
[ "$rc" -eq 1 ] && grep -q 'shard-1-of-4.h5' refused.err || fail "tl-merge: exit $rc"
[ ! -e refused.h5 ] || fail "a refused merge wrote its output"

say "resubmit task 1 only (sbatch --wait --array=1): it resumes its .partial"
rc=0
timeout "$wait_limit" sbatch --wait --array=1 array.sbatch || rc=$?
[ "$rc" -eq 0 ] || fail "resubmitted task 1: exit $rc"
[ -f feats.shards/shard-1-of-4.h5 ] && [ ! -e feats.shards/shard-1-of-4.h5.partial ] ||
  fail "task 1 did not publish its shard"
grep -l 'resuming' feats.shards/slurm-*_1.log >/dev/null || fail "task 1 did not resume"

say "rerun the whole array: every shard is already complete"
before=$(ls feats.shards/slurm-*.log | wc -l)
rc=0
timeout "$wait_limit" tl-extract "${opts[@]}" --output feats.h5 --slurm-array 4 --cpus-per-task 1 \
  --sbatch-arg=--wait || rc=$?
[ "$rc" -eq 0 ] || fail "rerun of the array: exit $rc"
job=$(ls -t feats.shards/slurm-*_0.log | head -1 | sed -E 's/.*slurm-([0-9]+)_0.log/\1/')
for k in 0 1 2 3; do
  grep -q 'already complete' "feats.shards/slurm-${job}_$k.log" ||
    fail "rerun task $k did work again: $(cat "feats.shards/slurm-${job}_$k.log")"
done
[ "$(ls feats.shards/slurm-*.log | wc -l)" -eq $((before + 4)) ] || fail "expected 4 more logs"

say "merge: virtual and copy"
tl-merge feats.shards --output feats.h5
tl-merge feats.shards --output feats-copy.h5 --copy

say "the merged files read as the single-machine run (h5py)"
"$python" - <<'PY'
import h5py, numpy as np
def load(fn):
    with h5py.File(fn, "r") as f:
        return dict(x=f["features"][:], y=f["labels"][:], p=list(f["paths"].asstr()[:]),
                    c=list(f["classes"].asstr()[:]), fl=f["failed"].asstr()[:].tolist(),
                    a=dict(f.attrs), virtual=f["features"].is_virtual)
w = load("whole.h5")
assert len(w["fl"]) == 1 and w["fl"][0][0] == "bag/zz-broken.png", w["fl"]
for fn, virtual in (("feats.h5", True), ("feats-copy.h5", False)):
    m = load(fn)
    assert m["virtual"] == virtual, fn
    assert np.array_equal(m["x"], w["x"]), fn + ": features differ"
    assert np.array_equal(m["y"], w["y"]), fn + ": labels differ"
    assert m["p"] == w["p"] and m["c"] == w["c"] and m["fl"] == w["fl"], fn
    for k in ("rows_done", "entries_done", "entries_total", "failed_count", "complete",
              "shard_index", "shard_count", "list_fingerprint", "layer", "weights"):
        assert m["a"][k] == w["a"][k], (fn, k, m["a"][k], w["a"][k])
    print(f"{fn}: {len(m['p'])} rows, identical to the single-machine run")
PY

say "tl-train takes the shard folder and the merged file"
tl-train --train feats.shards --epochs 2 --output model-folder.h5 2>&1 | tail -1
tl-train --train feats.h5 --epochs 2 --output model-merged.h5 2>&1 | tail -1

echo
echo "slurm_e2e: all passed"

#!/usr/bin/env python3
"""Manual check (issue 10, docs/HARDENING.md): h5py opens a tl-extract output again and again
while the run appends to it, and must see committed rows only. Not part of the test suite (the
tests never need Python); HostileRun.AReaderDuringARunSeesCommittedRowsOnly checks the same
with tlkit's own reader. Needs python3-h5py (Debian 12: h5py 3.7 on HDF5 1.10.8).

    python3 tests/h5py_reader_check.py build/tools/tl-extract IMAGE_FOLDER SCRATCH_FOLDER

Prints one line: opens, opens that saw a partial file, failed opens (the file being created),
and the final row count; exits 1 at the first inconsistency.
"""
import os
import subprocess
import sys
import time

import h5py
import numpy as np

tool, images, scratch = sys.argv[1:4]
out = os.path.join(scratch, "h5py-check.h5")
for p in (out, out + ".lock"):
    if os.path.exists(p):
        os.remove(p)
run = subprocess.Popen([tool, "--images", images, "--output", out, "--weights", "random:2",
                        "--size", "64", "--layer", "block5_pool", "--batch", "2", "--threads",
                        "2", "--quiet"])
opens = partial = failed_opens = 0
last = 0
while run.poll() is None:
    time.sleep(0.01)
    if not os.path.exists(out):
        continue
    try:
        f = h5py.File(out, "r", locking=False)
    except OSError:  # being created: not yet an HDF5 file
        failed_opens += 1
        continue
    with f:
        try:
            rows = int(f.attrs["rows_done"])
        except KeyError:  # created, attributes not yet written
            failed_opens += 1
            continue
        feats, labels, paths = f["features"], f["labels"], f["paths"]
        assert rows <= feats.shape[0] and rows <= labels.shape[0] and rows <= paths.shape[0], (
            rows, feats.shape, labels.shape, paths.shape)
        x = feats[:rows]
        assert np.isfinite(x).all(), "non-finite committed row"
        assert all(len(p) > 0 for p in paths[:rows]), "empty committed path"
        assert rows >= last, ("rows went down", last, rows)
        last = rows
        opens += 1
        partial += int(not f.attrs["complete"])
assert run.returncode == 0, run.returncode
with h5py.File(out, "r", locking=False) as f:
    final = int(f.attrs["rows_done"])
    assert last <= final and f.attrs["complete"] == 1
print(f"h5py: {opens} opens ({partial} of a partial file), {failed_opens} failed opens "
      f"while the file was created, final rows {final}: committed rows only")

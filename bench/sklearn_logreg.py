#!/usr/bin/env python3
"""scikit-learn's LogisticRegression on tlkit feature files: the reference tl-train's heads are
measured against (bench/heads_vs_sklearn.sh, tests/test_outcomes.cpp's floors).

    python3 bench/sklearn_logreg.py TRAIN.h5 TEST.h5 [--standardize] [--C 1.0] [--max-iter 1000]

Rows are read as tl-extract stores them (/features flattened in (h, w, c) order, /labels),
original rows only (no augmented copies). --standardize fits StandardScaler on the training
rows. Prints one JSON line: held-out accuracy, fit seconds (scaler + fit), iterations.
Needs Debian's python3-sklearn and python3-h5py (benchmarks only; the build and tests do not).
"""
import argparse
import json
import time

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def rows(path):
    with h5py.File(path, "r") as f:
        x = f["features"][:].reshape(f["features"].shape[0], -1).astype(np.float64)
        y = f["labels"][:]
        if "augment_index" in f:  # tl-extract --augment: keep the original images
            keep = f["augment_index"][:] == 0
            x, y = x[keep], y[keep]
    return x, y


ap = argparse.ArgumentParser()
ap.add_argument("train")
ap.add_argument("test")
ap.add_argument("--standardize", action="store_true")
ap.add_argument("--C", type=float, default=1.0)
ap.add_argument("--max-iter", type=int, default=1000)
a = ap.parse_args()
xtr, ytr = rows(a.train)
xte, yte = rows(a.test)
t0 = time.perf_counter()
if a.standardize:
    scaler = StandardScaler().fit(xtr)
    xtr, xte = scaler.transform(xtr), scaler.transform(xte)
clf = LogisticRegression(C=a.C, max_iter=a.max_iter).fit(xtr, ytr)
seconds = time.perf_counter() - t0
print(json.dumps({"standardize": a.standardize, "C": a.C, "accuracy": float(clf.score(xte, yte)),
                  "seconds": round(seconds, 2), "iterations": int(np.max(clf.n_iter_)),
                  "train_rows": len(ytr), "test_rows": len(yte), "features": xtr.shape[1]}))

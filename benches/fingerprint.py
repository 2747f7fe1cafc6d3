"""Fingerprints of what pecos_rs computes on the benchmark sets, to show that a refactoring
changed nothing: SHA-256 digests of the predictions (batch and one row at a time), of the model's
weights and tree (whatever the file format), of the saved model file and of the text features, one
JSON line per data set.

Run it before and after a change and compare the lines (``diff``); equal digests mean bit-identical
results. The model file digest changes only when the file format version does (the line records
the version). With ``--models-dir``, a model saved there by the other build is loaded and its
predictions digested too (``loaded_predictions``), showing that files of the old format still load
to the same model; otherwise this build's model is saved there. Features come from
``features.py``'s cache, the data from ``../shared/data``.

Usage: python benches/fingerprint.py [--datasets bibtex,delicious,debian-depends,aol-click]
       [--n-single 300] [--threads 2] [--models-dir DIR] > fingerprints.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import features
import pecos_rs
from pecos_rs import XRLinearClassifier
from pecos_rs.metrics import precision_recall_at_k
from pecos_rs.text import TextFeaturizer


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def text_digest(dataset: str) -> str | None:
    """Digest of the default TextFeaturizer's rows of the test texts (fit on the training texts)."""
    if dataset not in features.TEXT_SETS:
        return None
    root = features.DATA_ROOT / dataset
    feat = TextFeaturizer().fit(features.read_texts(root / "X.trn.txt.gz"))
    X = feat.transform(features.read_texts(root / "X.tst.txt.gz"))
    return digest(X.indptr, X.indices, X.data)


def weights_digest(model) -> str:
    """Digest of every layer's weights (CSC) and parent array: the model, not its file layout."""
    arrays = []
    for t in range(model.depth):
        indptr, indices, data, _ = model.layer_weights(t)
        arrays += [indptr, indices, data, model.layer_parents(t)]
    return digest(*arrays)


def fingerprint(dataset: str, n_single: int, threads: int, models_dir: Path | None) -> dict:
    X_trn, Y_trn, X_tst, Y_tst = features.load(dataset)
    tic = time.perf_counter()
    clf = XRLinearClassifier(n_jobs=threads).fit(X_trn, Y_trn)
    fit_s = time.perf_counter() - tic
    labels, scores = clf.predict_topk(X_tst)
    single = [clf.predict_topk(X_tst[i : i + 1]) for i in range(min(n_single, X_tst.shape[0]))]
    with tempfile.TemporaryDirectory() as tmp:
        clf.save(tmp)
        model_bytes = (Path(tmp) / "model.bin").read_bytes()
    p = precision_recall_at_k(Y_tst, labels, ks=(1,))
    loaded = None
    if models_dir is not None:
        saved = models_dir / dataset
        if saved.is_dir():
            loaded = digest(*XRLinearClassifier.load(saved).predict_topk(X_tst))
        else:
            clf.save(saved)
    return {
        "dataset": dataset,
        "predictions": digest(labels, scores),
        "single_queries": digest(*[a for pair in single for a in pair]),
        "single_equals_batch": all(
            np.array_equal(sl, labels[i : i + 1]) and np.array_equal(ss, scores[i : i + 1])
            for i, (sl, ss) in enumerate(single)
        ),
        "model_weights": weights_digest(clf.model_),
        "model_file": hashlib.sha256(model_bytes).hexdigest()[:16],
        "model_format_version": pecos_rs._pecos_rs.FORMAT_VERSION,
        "text_features": text_digest(dataset),
        "loaded_predictions": loaded,
        "P@1": round(float(p["P@1"]), 4),
        "fit_seconds": round(fit_s, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(features.DATASETS))
    ap.add_argument("--n-single", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models-dir", type=Path, default=None)
    args = ap.parse_args()
    for name in args.datasets.split(","):
        print(json.dumps(fingerprint(name, args.n_single, args.threads, args.models_dir)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Demo: XR-Linear on a real data set from ../shared/data.

Text sets are featurized with pecos_rs.text (word 1-3-grams + character 3-grams); then
trains pecos_rs.XRLinearClassifier with PECOS's defaults (PIFA + balanced hierarchical k-means,
B=16, leaf size 100, squared hinge, threshold 0.1, beam 10) and prints accuracy, timings and a few
example predictions with label names.

    python examples/demo.py [--dataset debian-depends|aol-click|bibtex|delicious] [--n-jobs 2]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from pecos_rs import XRLinearClassifier
from pecos_rs.metrics import precision_recall_at_k
from pecos_rs.text import CharTfidf, TextFeaturizer, WordTfidf

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TEXT_SETS = {"debian-depends": "label_vocab.txt", "aol-click": "label_vocab.txt"}
BOW_SETS = {"bibtex": "label_names.txt", "delicious": "label_names.txt"}


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def text_features(train: list[str], test: list[str]):
    """pecos_rs.text: the default word 1-3-gram + character 3-gram blocks (end-of-word marker "#"),
    with word n-grams seen in a single training text dropped (min_df=2)."""
    featurizer = TextFeaturizer([
        ("word", WordTfidf(ngram_range=(1, 3), min_df=2, sublinear_tf=True)),
        ("char", CharTfidf(ngram_range=(3, 3), token_pattern=r"\S+", sublinear_tf=True)),
    ])
    return featurizer.fit_transform(train), featurizer.transform(test)


def load(name: str):
    d = DATA / name
    if not d.is_dir():
        raise SystemExit(f"data set folder {d} not found: run from a checkout with ../shared/data beside it")
    Y_trn = sp.load_npz(d / "Y.trn.npz").tocsr()
    Y_tst = sp.load_npz(d / "Y.tst.npz").tocsr()
    if name in TEXT_SETS:
        texts_trn = read_lines(d / "X.trn.txt.gz")
        texts_tst = read_lines(d / "X.tst.txt.gz")
        X_trn, X_tst = text_features(texts_trn, texts_tst)
        names = read_lines(d / TEXT_SETS[name])
    else:
        X_trn = normalize(sp.load_npz(d / "X.trn.npz").astype(np.float32))
        X_tst = normalize(sp.load_npz(d / "X.tst.npz").astype(np.float32))
        texts_tst = None
        names = read_lines(d / BOW_SETS[name])
    return X_trn, Y_trn, X_tst, Y_tst, texts_tst, names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="debian-depends", choices=[*TEXT_SETS, *BOW_SETS])
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--examples", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    X_trn, Y_trn, X_tst, Y_tst, texts_tst, names = load(args.dataset)
    print(f"{args.dataset}: {X_trn.shape[0]:,} train / {X_tst.shape[0]:,} test rows, "
          f"{X_trn.shape[1]:,} features, {Y_trn.shape[1]:,} labels "
          f"(features built in {time.perf_counter() - t0:.1f} s)")

    clf = XRLinearClassifier(n_jobs=args.n_jobs)
    t0 = time.perf_counter()
    clf.fit(X_trn, Y_trn)
    train_s = time.perf_counter() - t0
    print(f"trained in {train_s:.1f} s: tree layers {clf.cluster_chain_.layer_sizes}, "
          f"{clf.model_.nnz:,} nonzero weights")

    t0 = time.perf_counter()
    labels, scores = clf.predict_topk(X_tst)
    batch_ms = 1000 * (time.perf_counter() - t0) / X_tst.shape[0]
    n_single = min(1000, X_tst.shape[0])
    lat = []
    for i in range(n_single):
        row = X_tst[i]
        t0 = time.perf_counter()
        clf.predict_topk(row)
        lat.append(1000 * (time.perf_counter() - t0))
    m = precision_recall_at_k(Y_tst, labels)
    print(f"P@1 {m['P@1']:.2f}  P@3 {m['P@3']:.2f}  P@5 {m['P@5']:.2f}  R@10 {m['R@10']:.2f}")
    print(f"batch predict {batch_ms:.3f} ms/query ({args.n_jobs} threads); single query "
          f"p50 {np.median(lat):.3f} ms, p99 {np.percentile(lat, 99):.3f} ms over {n_single} rows")

    rng = np.random.default_rng(0)
    for i in rng.choice(X_tst.shape[0], size=args.examples, replace=False):
        true = set(Y_tst[i].indices)
        head = f"  {texts_tst[i][:90]!r}" if texts_tst is not None else f"  test row {i}"
        print(f"\n{head}\n    true: {', '.join(names[j] for j in sorted(true)[:8])}")
        preds = [f"{names[j]}{' *' if j in true else ''} ({s:.2f})" for j, s in zip(labels[i][:5], scores[i][:5]) if j >= 0]
        print(f"    top5: {', '.join(preds)}")
    print("\n(* = correct)")


if __name__ == "__main__":
    main()

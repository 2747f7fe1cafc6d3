"""Build and cache the benchmark features, identical for every library.

* Binary bag-of-words sets (bibtex, delicious: ``X.{trn,tst}.npz``): rows L2-normalised.
* Text sets (debian-depends, aol-click: ``X.{trn,tst}.txt.gz``): a scikit-learn
  ``TfidfVectorizer(analyzer="word", ngram_range=(1, 2))`` block and a
  ``TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3))`` block, each fit on the training
  texts only and L2-normalised per row (the vectorizers' default ``norm="l2"``), stacked side by
  side, then every row L2-normalised again.

Labels ``Y.{trn,tst}.npz`` are used as they are. The features are saved as float32 CSR with
sorted indices under ``benches/.cache/<dataset>/X.{trn,tst}.npz`` (with a ``meta.json`` that
records the recipe; a cache built with another recipe is rebuilt). Everything is deterministic.

The data sets are read from ``<repo>/../shared/data`` and never copied into the repository.

Usage: python benches/features.py bibtex delicious debian-depends aol-click
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
CACHE_ROOT = BENCH_DIR / ".cache"

BINARY_SETS = ("bibtex", "delicious")
TEXT_SETS = ("debian-depends", "aol-click")
DATASETS = BINARY_SETS + TEXT_SETS

# Bump when the recipe changes so stale caches are rebuilt.
RECIPE = {
    "version": 1,
    "binary": "rows L2-normalised",
    "text": [
        {"analyzer": "word", "ngram_range": [1, 2], "dtype": "float32", "norm": "l2"},
        {"analyzer": "char_wb", "ngram_range": [3, 3], "dtype": "float32", "norm": "l2"},
        "hstack, then rows L2-normalised; fit on train only",
    ],
}


class DataMissingError(RuntimeError):
    """Raised when ../shared/data (or one of its sets) is not there."""


def _finalise(X: sp.spmatrix) -> sp.csr_matrix:
    """Return X as float32 CSR with sorted indices and no explicit zeros."""
    X = sp.csr_matrix(X, dtype=np.float32)
    X.eliminate_zeros()
    X.sort_indices()
    return X


def read_texts(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def _text_features(src: Path) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Fit the word + char_wb TF-IDF blocks on train and transform train and test."""
    trn, tst = read_texts(src / "X.trn.txt.gz"), read_texts(src / "X.tst.txt.gz")
    blocks_trn, blocks_tst = [], []
    for analyzer, ngrams in (("word", (1, 2)), ("char_wb", (3, 3))):
        vec = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, dtype=np.float32)
        blocks_trn.append(vec.fit_transform(trn))
        blocks_tst.append(vec.transform(tst))
    return tuple(
        _finalise(normalize(sp.hstack(blocks, format="csr"), norm="l2"))
        for blocks in (blocks_trn, blocks_tst)
    )


def _binary_features(src: Path) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return tuple(
        _finalise(normalize(sp.load_npz(src / f"X.{split}.npz"), norm="l2"))
        for split in ("trn", "tst")
    )


def build(name: str, data_root: Path = DATA_ROOT, force: bool = False) -> Path:
    """Build the cached features of one data set (if needed) and return its cache folder."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    src = data_root / name
    if not src.is_dir():
        raise DataMissingError(f"{src} not found: the benchmark needs ../shared/data beside the repo")
    out = CACHE_ROOT / name
    meta_path = out / "meta.json"
    if not force and meta_path.exists() and json.loads(meta_path.read_text())["recipe"] == RECIPE:
        return out

    t0 = time.perf_counter()
    X_trn, X_tst = (_text_features if name in TEXT_SETS else _binary_features)(src)
    out.mkdir(parents=True, exist_ok=True)
    sp.save_npz(out / "X.trn.npz", X_trn)
    sp.save_npz(out / "X.tst.npz", X_tst)
    meta = {
        "recipe": RECIPE,
        "source": str(src),
        "n_features": X_trn.shape[1],
        "nnz_per_row_trn": X_trn.nnz / max(X_trn.shape[0], 1),
        "build_seconds": round(time.perf_counter() - t0, 2),
    }
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return out


def load(name: str, data_root: Path = DATA_ROOT):
    """Return ``(X_trn, Y_trn, X_tst, Y_tst)`` as float32 CSR, building the features if needed."""
    cache = build(name, data_root)
    X_trn, X_tst = (sp.load_npz(cache / f"X.{s}.npz").tocsr() for s in ("trn", "tst"))
    Y_trn, Y_tst = (_finalise(sp.load_npz(data_root / name / f"Y.{s}.npz")) for s in ("trn", "tst"))
    return X_trn, Y_trn, X_tst, Y_tst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", choices=DATASETS)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    args = parser.parse_args()
    for name in args.datasets:
        try:
            out = build(name, args.data_root, force=args.force)
        except DataMissingError as e:
            sys.exit(f"skipped: {e}")
        meta = json.loads((out / "meta.json").read_text())
        print(f"{name}: {meta['n_features']} features, {meta['nnz_per_row_trn']:.1f} nnz/row "
              f"(built in {meta['build_seconds']} s) -> {out}")


if __name__ == "__main__":
    main()

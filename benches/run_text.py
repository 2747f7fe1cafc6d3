"""One text-featurization run in a fresh process: fit + transform of a data set's training texts.

Libraries, all with the same n-gram configuration (word 1- to 3-grams + character 3-grams with
word-boundary marking, TF-IDF, each block L2-normalised, rows renormalised):

* ``pecos_rs``: ``pecos_rs.text.TextFeaturizer()`` (its default), ``fit_transform``.
* ``libpecos``: PECOS's native C++ ``tfidf`` vectorizer, ``Vectorizer.train`` then ``predict``
  (base configs word (1, 3) and ``char_wb`` (3, 3), ``norm_p`` 2). Its tokenizer splits on
  spaces only and does not lower-case (spec section 3).
* ``sklearn``: ``TfidfVectorizer(ngram_range=(1, 3))`` and
  ``TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3))`` (float32), ``fit_transform`` each,
  ``hstack``, rows L2-normalised.

Reports wall time of fit + transform, peak RSS of the process (``ru_maxrss``; the texts are
loaded and the library imported before timing starts; that RSS is reported too), output shape
and nonzeros.

Usage: python benches/run_text.py --lib pecos_rs --dataset debian-depends --threads 2 --out r.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
import traceback
from pathlib import Path

from proc_stats import peak_rss_mb, rss_mb

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


def featurizer(lib: str, threads: int):
    """The library's fit + transform as a function of the documents (imports done here, untimed)."""
    if lib == "pecos_rs":
        from pecos_rs.text import CharTfidf, TextFeaturizer, WordTfidf

        blocks = [("word", WordTfidf(ngram_range=(1, 3), n_jobs=threads)),
                  ("char", CharTfidf(ngram_range=(3, 3), end_marker="#", n_jobs=threads))]
        return lambda docs: TextFeaturizer(blocks).fit_transform(docs)
    if lib == "libpecos":
        from pecos.utils.featurization.text.vectorizers import Vectorizer

        def run(docs):
            config = {"type": "tfidf", "kwargs": {
                "base_vect_configs": [
                    {"ngram_range": [1, 3], "analyzer": "word", "threads": threads},
                    {"ngram_range": [3, 3], "analyzer": "char_wb", "threads": threads},
                ],
                "norm_p": 2, "threads": threads}}
            return Vectorizer.train(docs, config=config).predict(docs, threads=threads)
        return run
    if lib == "sklearn":
        import numpy as np
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import normalize

        def run(docs):
            blocks = [TfidfVectorizer(ngram_range=(1, 3), dtype=np.float32),
                      TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), dtype=np.float32)]
            return normalize(sp.hstack([b.fit_transform(docs) for b in blocks], format="csr"))
        return run
    raise ValueError(f"unknown library {lib!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", required=True, choices=["pecos_rs", "libpecos", "sklearn"])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-root", type=Path, default=DATA_ROOT)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    result = {"lib": args.lib, "dataset": args.dataset, "status": "error"}
    try:
        run = featurizer(args.lib, args.threads)
        path = args.data_root / args.dataset / "X.trn.txt.gz"
        with gzip.open(path, "rt", encoding="utf-8") as f:
            docs = f.read().splitlines()
        result["n_docs"] = len(docs)
        result["rss_after_data_mb"] = rss_mb()
        start = time.perf_counter()
        X = run(docs)
        result["fit_transform_s"] = time.perf_counter() - start
        result["peak_rss_mb"] = peak_rss_mb()
        result["n_features"], result["nnz"] = int(X.shape[1]), int(X.nnz)
        result["status"] = "ok"
    except Exception as e:  # recorded in the result, the driver carries on with the others
        result["message"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    sys.exit(0 if result["status"] == "ok" else 1)


if __name__ == "__main__":
    main()

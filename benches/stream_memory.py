"""Peak memory of a streamed fit: WordTfidf().fit over a generator of 1M documents.

The documents are built on the fly from the aol-click training queries (the query, its reversed
characters and an item number, so that the vocabulary keeps growing); nothing but the
vocabulary is held. Prints wall time, vocabulary size and peak RSS.

Usage: python benches/stream_memory.py [--n-docs 1000000]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

from proc_stats import peak_rss_mb

from pecos_rs.text import WordTfidf

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-docs", type=int, default=1_000_000)
    args = ap.parse_args()
    with gzip.open(DATA_ROOT / "aol-click" / "X.trn.txt.gz", "rt", encoding="utf-8") as f:
        queries = f.read().splitlines()

    def corpus():
        for i in range(args.n_docs):
            q = queries[i % len(queries)]
            yield f"{q} {q[::-1]} item{i % 5000}"

    before = peak_rss_mb()
    start = time.perf_counter()
    featurizer = WordTfidf().fit(corpus())
    print(f"streamed fit of {args.n_docs:,} documents: {time.perf_counter() - start:.1f} s, "
          f"vocabulary {len(featurizer.idf_):,}, peak RSS {peak_rss_mb():.0f} MB (before {before:.0f} MB)")


if __name__ == "__main__":
    main()

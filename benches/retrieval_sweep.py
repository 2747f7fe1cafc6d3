"""The threshold x beam sweep of pecos_rs's default TextXRLinear on aol-click or homedepot
(``pecos_rs.sweep``): choose on ``--split val``, report on ``--split test``.

Splits: ``val`` trains on the training split less a validation part and sweeps on that part
(aol-click: a seeded random 10% of the training rows; homedepot: ``sha1(query) % 5 == 0``, as in
BENCHMARKS.md "choosing TextXRLinear's defaults"); ``val-unseen`` (aol-click) holds out the rows
whose query hashes to 0, ``sha1(query) % 10 == 0`` (the retrieval runner's ``--split val``: no
validation query is a training query); ``test`` trains on the whole training split
and sweeps on the test split. Writes ``sweep.csv``, ``sweep.md`` and the two PNG plots to
``--out`` (default ``benches/out/sweep-<dataset>-<split>``).

Usage: python benches/retrieval_sweep.py --dataset aol-click --split val [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import features
from pecos_rs import TextXRLinear, XRLinearClassifier
from pecos_rs.sweep import markdown_table, plot, sweep, write_csv

THRESHOLDS = (0.1, 0.2, 0.3, 0.5)
BEAMS = (1, 5, 10, 20, 50)


def validation_mask(dataset: str, texts: list, unseen: bool = False) -> np.ndarray:
    """Which training rows form the validation part (see the module doc)."""
    if dataset == "homedepot" or unseen:
        modulus = 5 if dataset == "homedepot" else 10
        return np.array([int(hashlib.sha1(t.encode()).hexdigest(), 16) % modulus == 0 for t in texts])
    return np.random.default_rng(0).random(len(texts)) < 0.1


def load(dataset: str, split: str, root: Path):
    folder = root / dataset
    texts = features.read_texts(folder / "X.trn.txt.gz")
    Y = sp.load_npz(folder / "Y.trn.npz").tocsr()
    names = (folder / "label_vocab.txt").read_text(encoding="utf-8").splitlines()
    titles = None
    if (folder / "label_titles.txt.gz").exists():
        with gzip.open(folder / "label_titles.txt.gz", "rt", encoding="utf-8") as f:
            titles = [line.rstrip("\n") for line in f]
    if split in ("val", "val-unseen"):
        val = validation_mask(dataset, texts, unseen=split == "val-unseen")
        train = np.flatnonzero(~val)
        held = np.flatnonzero(val)
        return ([texts[i] for i in train], Y[train], [texts[i] for i in held], Y[held], names, titles)
    return (texts, Y, features.read_texts(folder / "X.tst.txt.gz"), sp.load_npz(folder / "Y.tst.npz").tocsr(),
            names, titles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("aol-click", "homedepot"), required=True)
    parser.add_argument("--split", choices=("val", "test"), required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-queries", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--data-root", type=Path, default=features.DATA_ROOT)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or features.BENCH_DIR / "out" / f"sweep-{args.dataset}-{args.split}"
    out.mkdir(parents=True, exist_ok=True)
    train_texts, Y_train, texts, Y, names, titles = load(args.dataset, args.split, args.data_root)
    start = time.perf_counter()
    model = TextXRLinear(classifier=XRLinearClassifier(n_jobs=args.threads)).fit(
        train_texts, Y_train, label_names=names, label_texts=titles)
    train_seconds = time.perf_counter() - start
    print(f"trained on {len(train_texts):,} rows in {train_seconds:.1f} s; sweeping {len(texts):,} rows", flush=True)
    rows = sweep(model, texts, Y, thresholds=THRESHOLDS, beam_sizes=BEAMS,
                 n_latency_queries=args.latency_queries, passes=args.passes,
                 progress=lambda r: print(json.dumps({k: round(v, 4) for k, v in r.items()}), flush=True))
    write_csv(rows, out / "sweep.csv")
    (out / "sweep.md").write_text(markdown_table(rows))
    plot(rows, out)
    (out / "meta.json").write_text(json.dumps({"dataset": args.dataset, "split": args.split,
                                               "train_seconds": train_seconds, "threads": args.threads}))
    print(markdown_table(rows))


if __name__ == "__main__":
    main()

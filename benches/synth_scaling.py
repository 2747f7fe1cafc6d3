"""Scaling on synthetic XMR problems: generation time and peak RSS per size, and XR-Linear trained
on some of them (P@1/P@5 on the test split, training time, peak RSS) against two baselines: the
most frequent training labels for every row, and XR-Linear trained on the same rows with their
features shuffled against their labels.

Each generation and each training runs in a fresh process; its peak RSS comes from wait4.
Prints one Markdown table per part.

Usage: python benches/synth_scaling.py --labels 10000,100000,1000000 --train-at 10000,100000 \
    --data-root /work/synth-data [--n-jobs 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_measured(cmd: list[str]) -> tuple[float, float, float, str]:
    """Runs `cmd`; returns its wall seconds, CPU seconds (user + system), peak RSS in MB and
    stdout. Raises on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def train_one(directory: Path, shuffle: bool, n_jobs: int) -> None:
    """In a child process: trains XR-Linear on one data set and prints a JSON result."""
    import numpy as np
    import scipy.sparse as sp

    from pecos_rs import XRLinearClassifier
    from pecos_rs.metrics import precision_recall_at_k

    X, Y = sp.load_npz(directory / "X.trn.npz"), sp.load_npz(directory / "Y.trn.npz")
    X_tst, Y_tst = sp.load_npz(directory / "X.tst.npz"), sp.load_npz(directory / "Y.tst.npz")
    if shuffle:
        X = X[np.random.default_rng(0).permutation(X.shape[0])]
    start = time.perf_counter()
    clf = XRLinearClassifier(n_jobs=n_jobs).fit(X, Y)
    train_s = time.perf_counter() - start
    labels, _ = clf.predict_topk(X_tst)
    scores = precision_recall_at_k(Y_tst, labels, ks=(1, 5))
    popular = np.argsort(-np.asarray(Y.sum(axis=0)).ravel(), kind="stable")[:5]
    popular_scores = precision_recall_at_k(Y_tst, np.tile(popular, (X_tst.shape[0], 1)), ks=(1, 5))
    print(json.dumps({
        "train_s": train_s, "P@1": scores["P@1"], "P@5": scores["P@5"],
        "popular_P@1": popular_scores["P@1"], "popular_P@5": popular_scores["P@5"],
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", default="10000,100000", help="comma-separated label counts")
    ap.add_argument("--train-at", default="10000", help="label counts to train XR-Linear at")
    ap.add_argument("--data-root", type=Path, default=Path("/tmp/synth-xmr"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--train-one", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--shuffle", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.train_one:
        train_one(args.train_one, args.shuffle, args.n_jobs)
        return

    sizes = [int(s) for s in args.labels.split(",")]
    train_at = {int(s) for s in args.train_at.split(",") if s}
    print("| labels | features | train rows | X.trn nnz/row | labels/row | generation s | CPU s | peak RSS MB "
          "| X.trn.npz MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n_labels in sizes:
        directory = args.data_root / f"labels{n_labels}-seed{args.seed}"
        seconds, cpu_seconds, rss, _ = run_measured([
            sys.executable, str(HERE / "synth_xmr.py"), "--labels", str(n_labels),
            "--seed", str(args.seed), "--out", str(directory)])
        meta = json.loads((directory / "meta.json").read_text())
        p, nnz = meta["params"], meta["nnz"]
        size_mb = (directory / "X.trn.npz").stat().st_size / 2**20
        print(f"| {n_labels:,} | {p['features']:,} | {p['train_rows']:,} | "
              f"{nnz['X.trn'] / p['train_rows']:.1f} | {nnz['Y.trn'] / p['train_rows']:.2f} | "
              f"{seconds:.1f} | {cpu_seconds:.1f} | {rss:.0f} | {size_mb:.0f} |", flush=True)

    print()
    print(f"| labels | P@1 | P@5 | train s ({args.n_jobs} threads) | peak RSS MB | shuffled P@1 | shuffled P@5 "
          "| most frequent P@1 | most frequent P@5 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n_labels in sizes:
        if n_labels not in train_at:
            continue
        directory = args.data_root / f"labels{n_labels}-seed{args.seed}"
        results = []
        for shuffle in (False, True):
            cmd = [sys.executable, str(HERE / "synth_scaling.py"), "--train-one", str(directory),
                   "--n-jobs", str(args.n_jobs)] + (["--shuffle"] if shuffle else [])
            _, _, rss, out = run_measured(cmd)
            results.append((json.loads(out), rss))
        (real, rss), (shuffled, _) = results
        print(f"| {n_labels:,} | {real['P@1']:.2f} | {real['P@5']:.2f} | "
              f"{real['train_s']:.1f} | {rss:.0f} | {shuffled['P@1']:.2f} | {shuffled['P@5']:.2f} | "
              f"{real['popular_P@1']:.2f} | {real['popular_P@5']:.2f} |", flush=True)


if __name__ == "__main__":
    main()

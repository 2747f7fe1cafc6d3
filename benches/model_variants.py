"""One saved XRLinearClassifier and its cheaper variants: load times, P@k, size and latency.

For a model directory (``XRLinearClassifier.save``) and its test set (``X.tst.npz``/``Y.tst.npz``,
as ``benches/synth_xmr.py`` writes them):

1. load time, read and memory-mapped, each in a fresh process, ``--repeats`` times interleaved,
   after reading the model file once so that it is in the page cache (warm loads);
2. variants of the read model: the model as loaded from the map, pruned again at higher
   thresholds (``prune``, no retraining) and compacted to int8 (``compact``): P@1/P@5 and batch
   ms/query (2 threads) on the first ``--n-test`` test rows, bytes on disk once saved;
3. single-query latency of every variant (1 thread, ``--n-single`` test rows after 10 warm-up
   calls), ``--rounds`` rounds interleaved over the variants; p50 and p99 over all rounds.

Prints a Markdown table.

Usage: python benches/model_variants.py --model DIR --data DIR [--thresholds 0.2,0.3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

LOAD_CHILD = """
import sys, time
from pecos_rs import XRLinearClassifier
t0 = time.perf_counter()
XRLinearClassifier.load(sys.argv[1], mmap=sys.argv[2] == "1")
print(time.perf_counter() - t0)
"""


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def load_seconds(model: Path, repeats: int) -> dict:
    """Median seconds of a read and of a mapped load, each in a fresh process."""
    for f in model.iterdir():  # warm: every file once through the page cache
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    times: dict = {"read": [], "mmap": []}
    for _ in range(repeats):
        for mode in times:
            out = subprocess.run([sys.executable, "-c", LOAD_CHILD, str(model), "1" if mode == "mmap" else "0"],
                                 capture_output=True, text=True, check=True)
            times[mode].append(float(out.stdout))
    return {mode: float(np.median(t)) for mode, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--thresholds", default="0.2,0.3")
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--n-single", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from pecos_rs import XRLinearClassifier
    from pecos_rs.metrics import precision_recall_at_k

    loads = load_seconds(args.model, args.repeats)
    X = sp.load_npz(args.data / "X.tst.npz").tocsr()[:args.n_test]
    Y = sp.load_npz(args.data / "Y.tst.npz").tocsr()[:args.n_test]
    base = XRLinearClassifier.load(args.model, mmap=False)
    variants = {"float32": base, "float32, memory-mapped": XRLinearClassifier.load(args.model, mmap=True)}
    for t in (float(s) for s in args.thresholds.split(",") if s):
        variants[f"pruned at {t}"] = base.prune(threshold=t)
    variants["int8"] = base.compact("int8")
    first = next((name for name in variants if name.startswith("pruned")), None)
    if first:
        variants[f"{first} + int8"] = variants[first].compact("int8")

    rows = {}
    for name, clf in variants.items():
        if name.startswith("float32"):
            size = dir_mb(args.model)
        else:
            with tempfile.TemporaryDirectory(dir=args.model.parent) as tmp:
                clf.save(Path(tmp) / "m")
                size = dir_mb(Path(tmp) / "m")
        clf.set_params(n_jobs=2)
        t0 = time.perf_counter()
        labels, _ = clf.predict_topk(X)
        batch_ms = 1e3 * (time.perf_counter() - t0) / X.shape[0]
        rows[name] = {"size": size, "batch_ms": batch_ms, **precision_recall_at_k(Y, labels, ks=(1, 5))}
        clf.set_params(n_jobs=1)

    queries = [X[i] for i in range(min(args.n_single, X.shape[0]))]
    times: dict = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, clf in variants.items():
            for q in queries[:10]:
                clf.predict_topk(q)
            for q in queries:
                t0 = time.perf_counter()
                clf.predict_topk(q)
                times[name].append(time.perf_counter() - t0)

    print(f"Load (warm, fresh process, median of {args.repeats}): read {loads['read']:.3f} s, "
          f"memory-mapped {1e3 * loads['mmap']:.1f} ms. 1-minute load average now: {os.getloadavg()[0]:.1f}.")
    print()
    print("| variant | P@1 | P@5 | MB on disk | batch ms/query | single p50 / p99 ms |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        t = 1e3 * np.array(times[name])
        print(f"| {name} | {r['P@1']:.2f} | {r['P@5']:.2f} | {r['size']:.0f} | {r['batch_ms']:.3f} "
              f"| {np.percentile(t, 50):.3f} / {np.percentile(t, 99):.3f} |")


if __name__ == "__main__":
    main()

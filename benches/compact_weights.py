"""Compact weights (issue 14): P@1/3/5, R@10, model size, batch and single-query latency of one
trained XRLinearClassifier with its weights as trained (float32) and compacted
(``clf.compact("float32" | "float16" | "int8")``), and libpecos's model size and P@k on the same
features, with where the bytes of each pecos_rs model file go and the private memory that loading
each variant adds to a fresh process.

The data sets and features are those of the XMC benchmark (``features.load``), the pecos_rs and
libpecos models those of its runners (``run_one.PecosRsRunner`` / ``LibpecosRunner``: same
settings, beam 10, top 10). Each variant is saved, then loaded back (a normal load) for the timed
predictions; quality is deterministic, timings are medians over ``--passes`` interleaved passes
(variants in a rotated order each pass).

    .bench-venv/bin/python benches/compact_weights.py --datasets debian-depends,aol-click \\
        --passes 3 [--no-libpecos] [--json OUT]
    .bench-venv/bin/python benches/compact_weights.py --from-json OUT   # the tables again
    .bench-venv/bin/python benches/compact_weights.py --datasets synth-1m --no-libpecos --mmap \\
        --data-dir /tmp/synth-xmr/r1-labels1000000 --n-test 10000   # a scaling_bench.py set

Prints one JSON line per measurement and a Markdown table per data set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import features
from pecos_rs import XRLinearClassifier
from pecos_rs.metrics import precision_recall_at_k
from mmap_load import CHILD as LOAD_CHILD
from run_one import N_WARMUP, TOPK, LibpecosRunner, PecosRsRunner, dir_bytes

#: (name in the tables, argument of ``compact``; None: the model as trained)
VARIANTS = [("float32 (as trained)", None), ("float32 + narrow slots", "float32"),
            ("float16", "float16"), ("int8", "int8")]
WEIGHT_BYTES = {"float32": 4, "float16": 2, "int8": 1}
SLOT_BYTES = {"u8": 1, "u16": 2, "u32": 4}


def byte_breakdown(path: Path) -> dict:
    """Bytes of each kind of array of a pecos_rs model file, from its header (padding aside)."""
    with path.open("rb") as f:
        (header_len,) = struct.unpack_from("<Q", f.read(20), 12)
        header = json.loads(f.read(header_len))
    out = {"header": 20 + header_len, "parents + chunk pointers": 0, "row features + row pointers": 0,
           "entry slots": 0, "entry weights": 0, "bias weights + scales": 0}
    for layer in header["layers"]:
        n_parents, n_children, n_rows, n_entries = (layer[k] for k in ("n_parents", "n_children", "n_rows", "n_entries"))
        dtype = layer.get("weight_dtype", "float32")
        out["parents + chunk pointers"] += 4 * n_children + 16 * (n_parents + 1)
        out["row features + row pointers"] += 4 * n_rows + 4 * (n_rows + n_parents)
        out["entry slots"] += SLOT_BYTES[layer.get("slot_type", "u32")] * n_entries
        out["entry weights"] += WEIGHT_BYTES[dtype] * n_entries
        out["bias weights + scales"] += 4 * n_children * (2 if dtype == "int8" else 1)
    out["total file"] = path.stat().st_size
    return out


def load_memory_mb(path: Path) -> float:
    """Private memory (RssAnon) that a normal load of the model at `path` adds to a fresh process
    (``mmap_load.py``'s child, the file in the page cache)."""
    out = subprocess.run([sys.executable, "-c", LOAD_CHILD, str(path), "0", "1"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["rss_anon_mb"]


def time_predictions(clf, X_tst, n_single: int) -> dict:
    """Batch predict time of the whole test set (all threads), and single-query p50 / p99 of the
    first `n_single` rows on one thread (as ``run_one.run``)."""
    t0 = time.perf_counter()
    labels, _ = clf.predict_topk(X_tst)
    batch_s = time.perf_counter() - t0
    n_jobs = clf.n_jobs
    clf.set_params(n_jobs=1)
    queries = [X_tst[i] for i in range(n_single)]
    for q in queries[:N_WARMUP]:
        clf.predict_topk(q)
    times = np.empty(n_single)
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        clf.predict_topk(q)
        times[i] = time.perf_counter() - t0
    clf.set_params(n_jobs=n_jobs)
    return {"batch_s": batch_s, "single_p50_ms": 1e3 * float(np.percentile(times, 50)),
            "single_p99_ms": 1e3 * float(np.percentile(times, 99)), "labels": labels}


def load_data(name: str, args):
    """A data set of the XMC benchmark, or with ``--data-dir`` a ``synth_xmr.py`` set (its first
    ``--n-test`` test rows)."""
    if args.data_dir is None:
        return features.load(name)
    X_trn, Y_trn, X_tst, Y_tst = (sp.load_npz(args.data_dir / f"{m}.{s}.npz").tocsr()
                                  for s in ("trn", "tst") for m in ("X", "Y"))
    return X_trn, Y_trn, X_tst[:args.n_test], Y_tst[:args.n_test]


def run_dataset(name: str, args, tmp: Path, emit) -> dict:
    X_trn, Y_trn, X_tst, Y_tst = load_data(name, args)
    result = {"dataset": name, "n_train": X_trn.shape[0], "n_test": X_tst.shape[0],
              "n_labels": Y_trn.shape[1], "variants": {}}
    runner = PecosRsRunner(args.threads, tmp / f"{name}-trained")
    runner.prepare_fit(X_trn, Y_trn)
    t0 = time.perf_counter()
    runner.fit()
    emit({"dataset": name, "pecos_rs_train_s": time.perf_counter() - t0})
    trained = runner.model
    loaded = {}
    for label, dtype in VARIANTS:
        model = trained if dtype is None else trained.compact(dtype)
        path = tmp / f"{name}-{label.split()[0]}-{dtype}"
        model.save(path)
        del model  # one compacted copy at a time beside the trained model
        # Mapped, the variants of a large model share the page cache instead of all being in memory.
        loaded[label] = XRLinearClassifier.load(path, mmap=args.mmap)
        loaded[label].set_params(n_jobs=args.threads)
        result["variants"][label] = {"model_bytes": dir_bytes(path),
                                     "bytes": byte_breakdown(path / "model.bin"),
                                     "load_rss_anon_mb": load_memory_mb(path),
                                     "timings": []}
    del trained, runner
    n_single = min(args.n_single, X_tst.shape[0])
    order = [label for label, _ in VARIANTS]
    for p in range(args.passes):
        for label in order[p % len(order):] + order[:p % len(order)]:
            timing = time_predictions(loaded[label], X_tst, n_single)
            labels = timing.pop("labels")
            v = result["variants"][label]
            v["metrics"] = precision_recall_at_k(Y_tst, labels)  # deterministic: the same every pass
            v["timings"].append({**timing, "loadavg_1m": os.getloadavg()[0]})
            emit({"dataset": name, "variant": label, "pass": p, **timing})
    if args.libpecos:
        lp = LibpecosRunner(args.threads, tmp / f"{name}-libpecos")
        lp.prepare_fit(X_trn, Y_trn)
        lp.fit()
        lp.save()
        lp.load()
        labels = lp.to_labels(lp.predict_batch(lp.prepare_batch(X_tst)))
        result["libpecos"] = {"model_bytes": dir_bytes(lp.model_dir),
                              "metrics": precision_recall_at_k(Y_tst, labels)}
        emit({"dataset": name, "libpecos": result["libpecos"]})
    return result


MB = 2**20  # as the XMC benchmark's "model MB"


def table(result: dict) -> str:
    lines = [f"#### {result['dataset']} ({result['n_labels']:,} labels, {result['n_test']:,} test rows)", "",
             "| weights | P@1 | P@3 | P@5 | R@10 | model MB | memory of a load MB | batch predict s "
             "| single p50 / p99 ms | spread batch / p50 |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def metric_cells(m):
        return " | ".join(f"{m[k]:.2f}" for k in ("P@1", "P@3", "P@5", "R@10"))

    for label, v in result["variants"].items():
        med = {k: statistics.median(t[k] for t in v["timings"]) for k in ("batch_s", "single_p50_ms", "single_p99_ms")}
        spread = {k: max(t[k] for t in v["timings"]) / min(t[k] for t in v["timings"])
                  for k in ("batch_s", "single_p50_ms")}
        lines.append(f"| {label} | {metric_cells(v['metrics'])} | {v['model_bytes'] / MB:.1f} | "
                     f"{v['load_rss_anon_mb']:.1f} | {med['batch_s']:.3f} | "
                     f"{med['single_p50_ms']:.3f} / {med['single_p99_ms']:.3f} | "
                     f"{spread['batch_s']:.2f} / {spread['single_p50_ms']:.2f} |")
    if "libpecos" in result:
        lp = result["libpecos"]
        lines.append(f"| libpecos 1.2.8 (float32) | {metric_cells(lp['metrics'])} | {lp['model_bytes'] / MB:.1f} | | | | |")
    lines += ["", "Where the bytes of model.bin go (MB, from its header; the rest is alignment padding):", "",
              "| weights | " + " | ".join(next(iter(result["variants"].values()))["bytes"]) + " |",
              "|---|" + "---|" * len(next(iter(result["variants"].values()))["bytes"])]
    for label, v in result["variants"].items():
        lines.append(f"| {label} | " + " | ".join(f"{b / MB:.2f}" for b in v["bytes"].values()) + " |")
    loads = [t["loadavg_1m"] for v in result["variants"].values() for t in v["timings"]]
    lines += ["", f"1-minute load average during the timed passes: {min(loads):.1f} to {max(loads):.1f}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="debian-depends,aol-click")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-single", type=int, default=1000)
    parser.add_argument("--no-libpecos", dest="libpecos", action="store_false")
    parser.add_argument("--data-dir", type=Path,
                        help="a benches/synth_xmr.py set instead of --datasets (whose one name labels it)")
    parser.add_argument("--n-test", type=int, default=10000, help="with --data-dir: its first N test rows")
    parser.add_argument("--mmap", action="store_true",
                        help="load the variants memory-mapped for the timed predictions (same scores; for "
                             "models too large to hold all four in memory)")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--from-json", type=Path, help="print the tables of a previous --json only")
    args = parser.parse_args()
    if args.from_json:
        for r in json.loads(args.from_json.read_text()):
            print(table(r) + "\n")
        return

    def emit(record):
        print(json.dumps(record), flush=True)

    results = []
    with tempfile.TemporaryDirectory(prefix="compact-weights-") as tmp:
        for name in args.datasets.split(","):
            results.append(run_dataset(name, args, Path(tmp), emit))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print()
    for r in results:
        print(table(r) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()

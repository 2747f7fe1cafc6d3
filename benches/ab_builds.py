"""Timings of two builds of pecos_rs on the same machine, interleaved: did a change keep the speed?

Each build is a folder holding a ``pecos_rs`` package (a checkout's ``python/`` with its compiled
extension, or a copy of one). Every pass runs ``run_one.py --lib pecos_rs`` once per data set and
build, in a fresh process with that folder first on ``PYTHONPATH``, alternating which build goes
first; the report gives per-build medians over the passes and the ratio of the second build to the
first (below 1: the second is faster), with the spread (max / min) of each.

With ``--model DIR --data DIR`` instead, every run loads that saved ``XRLinearClassifier``
(a model too large to train once per run, such as the 1M-label one of ``synth_xmr.py``): it
times a read load and a memory-mapped load, answers ``--n-single`` test rows with the mapped model
once untimed (the first use of each chunk: checks and page faults), then times them one at a time,
3 rounds, 1 thread; it reports the load times, single-query p50 / p99 and that the two builds'
top-10 labels agree.

Usage: python benches/ab_builds.py --builds before=/tmp/old/python,after=python \
           --datasets bibtex,delicious,debian-depends,aol-click --passes 3 [--out benches/out/ab]
       python benches/ab_builds.py --builds before=/tmp/old/python,after=python \
           --model MODEL_DIR --data /work/synth-data/r1-labels1000000 --passes 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
METRICS = (
    ("train_s", "train s", lambda r: r["train_s"]),
    ("batch", "batch ms/query", lambda r: r["batch_ms_per_query"]),
    ("p50", "single p50 ms", lambda r: r["single_query"]["p50_ms"]),
    ("p99", "single p99 ms", lambda r: r["single_query"]["p99_ms"]),
    ("rss", "peak RSS MB", lambda r: r["peak_rss_mb"]),
    ("size", "model MB", lambda r: r["model_bytes"] / 1e6),
)


SAVED_MODEL_RUN = """
import hashlib, json, sys, time
import numpy as np, scipy.sparse as sp
from pecos_rs import XRLinearClassifier
model, data, n_single, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
XRLinearClassifier.load(model, mmap=False)
read_s = time.perf_counter() - t0
t0 = time.perf_counter()
clf = XRLinearClassifier.load(model, mmap=True).set_params(n_jobs=1)
mapped_ms = 1e3 * (time.perf_counter() - t0)
X = sp.load_npz(data + "/X.tst.npz").tocsr()[:n_single]
queries = [X[i] for i in range(X.shape[0])]
labels = [clf.predict_topk(q)[0] for q in queries]
times = []
for _ in range(3):
    for q in queries:
        t0 = time.perf_counter()
        clf.predict_topk(q)
        times.append(time.perf_counter() - t0)
ms = 1e3 * np.array(times)
json.dump({"read_load_s": read_s, "mapped_load_ms": mapped_ms, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
           "labels_sha256": hashlib.sha256(np.concatenate(labels).tobytes()).hexdigest()}, open(out, "w"))
"""
SAVED_MODEL_METRICS = (("read load s", "read_load_s"), ("mmap load ms", "mapped_load_ms"),
                       ("single p50 ms", "p50_ms"), ("single p99 ms", "p99_ms"))


def ratio_cell(a: list, b: list) -> str:
    """Medians of the passes of two builds, their ratio and each one's spread (max / min)."""
    ma, mb = statistics.median(a), statistics.median(b)
    return f"{ma:.3g} / {mb:.3g} = {mb / ma:.2f}x (spread {max(a) / min(a):.2f}, {max(b) / min(b):.2f})"


def run_saved_model(build_dir: Path, model: Path, data: Path, n_single: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(build_dir))
    subprocess.run([sys.executable, "-c", SAVED_MODEL_RUN, str(model), str(data), str(n_single), str(out)],
                   env=env, check=True)
    return json.loads(out.read_text())


def saved_model_report(args: argparse.Namespace, builds: list) -> int:
    results: dict = {name: [] for name, _ in builds}
    for p in range(args.passes):
        for name, folder in (builds if p % 2 == 0 else builds[::-1]):
            out = args.out / f"{name}-saved-model-{p}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            results[name].append(run_saved_model(folder, args.model, args.data, args.n_single, out))
            print(f"pass {p} {name}: p50 {results[name][-1]['p50_ms']:.3f} ms", flush=True)
    (first, _), (second, _) = builds
    same = len({r["labels_sha256"] for rs in results.values() for r in rs}) == 1
    print(f"\n{args.passes} interleaved passes over {args.n_single} test rows of {args.data} (3 rounds "
          f"each); medians; ratio = {second} / {first}; spread = max / min over the passes; "
          f"top-10 labels identical across builds and passes: {same}\n")
    print("| model | " + " | ".join(label for label, _ in SAVED_MODEL_METRICS) + " |")
    print("|---" * (len(SAVED_MODEL_METRICS) + 1) + "|")
    cells = [ratio_cell([r[key] for r in results[first]], [r[key] for r in results[second]])
             for _, key in SAVED_MODEL_METRICS]
    print(f"| {args.model.name} | " + " | ".join(cells) + " |")
    return 0 if same else 1


def run_once(build_dir: Path, dataset: str, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(build_dir), str(BENCH_DIR)]))
    cmd = [sys.executable, str(BENCH_DIR / "run_one.py"), "--lib", "pecos_rs", "--dataset", dataset,
           "--out", str(out)]
    subprocess.run(cmd, env=env, check=True)
    result = json.loads(out.read_text())
    if result["status"] != "ok":
        raise RuntimeError(f"{build_dir} on {dataset}: {result.get('message')}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--builds", required=True, help="name=folder,name=folder (two builds)")
    ap.add_argument("--datasets", default="bibtex,delicious,debian-depends,aol-click")
    ap.add_argument("--model", type=Path, help="a saved XRLinearClassifier to time instead of --datasets")
    ap.add_argument("--data", type=Path, help="the folder of --model's X.tst.npz")
    ap.add_argument("--n-single", type=int, default=2000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "out" / f"ab-{datetime.now():%Y%m%d-%H%M%S}")
    args = ap.parse_args()
    builds = [tuple(b.split("=", 1)) for b in args.builds.split(",")]
    if len(builds) != 2:
        ap.error("--builds takes exactly two name=folder pairs")
    builds = [(name, Path(folder).resolve()) for name, folder in builds]
    if (args.model is None) != (args.data is None):
        ap.error("--model and --data go together")
    if args.model is not None:
        return saved_model_report(args, builds)
    datasets = args.datasets.split(",")
    results = {(b, d): [] for b, _ in builds for d in datasets}
    for p in range(args.passes):
        for dataset in datasets:
            order = builds if p % 2 == 0 else builds[::-1]
            for name, folder in order:
                out = args.out / f"{name}-{dataset}-{p}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                results[(name, dataset)].append(run_once(folder, dataset, out))
    (first, _), (second, _) = builds
    print(f"\n{args.passes} interleaved passes; medians; ratio = {second} / {first}; "
          "spread = max / min over the passes\n")
    print("| data set | " + " | ".join(label for _, label, _ in METRICS) + " | P@1 |")
    print("|---" * (len(METRICS) + 2) + "|")
    for dataset in datasets:
        cells = []
        for _, _, get in METRICS:
            cells.append(ratio_cell([get(r) for r in results[(first, dataset)]],
                                    [get(r) for r in results[(second, dataset)]]))
        p1 = {b: results[(b, dataset)][0]["metrics"]["P@1"] for b in (first, second)}
        cells.append(f"{p1[first]:.2f} / {p1[second]:.2f}")
        print(f"| {dataset} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

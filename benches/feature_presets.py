"""TextXRLinear with cheaper feature settings on aol-click's random-10% validation part: quality,
training time, features per query and single-query latency (``predict_one(text, k=100)`` on the
first 2,000 validation queries, 3 rounds interleaved over the models, all in this process).

Usage: python benches/feature_presets.py [retrieval,fast,word12,word1]
"""

from __future__ import annotations

import sys
import time

import numpy as np

import features
from pecos_rs import TextXRLinear, XRLinearClassifier
from pecos_rs.metrics import precision_recall_at_k
from pecos_rs.text import TextFeaturizer, WordTfidf
from retrieval_sweep import load

CONFIGS = {
    "retrieval": lambda: TextFeaturizer(blocks="retrieval"),
    "fast": lambda: TextFeaturizer(blocks="fast"),
    "word12": lambda: TextFeaturizer(blocks=[("word", WordTfidf(ngram_range=(1, 2), sublinear_tf=True))]),
    "word1": lambda: TextFeaturizer(blocks=[("word", WordTfidf(ngram_range=(1, 1), sublinear_tf=True))]),
}
N_QUERIES, N_WARMUP, ROUNDS = 2000, 50, 3


def main() -> None:
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else list(CONFIGS)
    train, Y_train, texts, Y, labels, _ = load("aol-click", "val", features.DATA_ROOT)
    models = {}
    for name in names:
        t0 = time.perf_counter()
        model = TextXRLinear(featurizer=CONFIGS[name](), classifier=XRLinearClassifier(n_jobs=2))
        model.fit(train, Y_train, label_names=labels)
        fit_s = time.perf_counter() - t0
        m = precision_recall_at_k(Y, model.predict_topk(texts, 100)[0], (1, 10, 100))
        per_query = model.featurizer_.transform(texts).nnz / len(texts)
        print(f"{name}: fit {fit_s:.1f} s, P@1 {m['P@1']:.2f} R@10 {m['R@10']:.2f} R@100 {m['R@100']:.2f}, "
              f"features per query {per_query:.1f}", flush=True)
        models[name] = model
    queries = texts[:N_QUERIES]
    times = {name: [] for name in models}
    for _ in range(ROUNDS):
        for name, model in models.items():
            for text in queries[:N_WARMUP]:
                model.predict_one(text, k=100)
            for text in queries:
                t0 = time.perf_counter()
                model.predict_one(text, k=100)
                times[name].append(time.perf_counter() - t0)
    for name, t in times.items():
        print(f"{name}: predict_one p50 {1e3 * np.median(t):.3f} ms, p99 {1e3 * np.percentile(t, 99):.3f} ms")


if __name__ == "__main__":
    main()

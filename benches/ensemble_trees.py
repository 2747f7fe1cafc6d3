"""Does an ensemble of 3 trees add a point of Recall@10 over one tree? TextXRLinear's defaults on
aol-click (the split ``retrieval_sweep.py`` uses: ``val`` = its random-10% validation part,
``test`` = the test split), quality only (deterministic: one run is the result).

Models: one tree (the default); ``classifier__n_trees=3`` (three seeds of the same tree, the XR
scores averaged, then the neighbour vote and the name match blended in as for one tree); and,
with ``--diverse``, three models whose features differ too (the "fast", "retrieval" and
"sklearn" presets, seeds 0 / 1 / 2), their XR top-100 averaged the same way and blended with
the first model's matchers.

Usage: python benches/ensemble_trees.py --split val|test [--diverse]
"""

from __future__ import annotations

import argparse
import time

import features
from pecos_rs import TextXRLinear, XRLinearClassifier
from pecos_rs._sparse import csr_args
from pecos_rs.metrics import precision_recall_at_k
from pecos_rs.retrieval import merge_topk
from pecos_rs.text import TextFeaturizer
from retrieval_sweep import load

K = 100
DIVERSE = ("fast", "retrieval", "sklearn")


def report(name: str, top_labels, Y, fit_s: float) -> None:
    m = precision_recall_at_k(Y, top_labels, (1, 10, 100))
    print(f"{name}: R@10 {m['R@10']:.2f}  R@100 {m['R@100']:.2f}  P@1 {m['P@1']:.2f}  (fit {fit_s:.1f} s)",
          flush=True)


def fitted(train, Y_train, labels, **params) -> tuple[TextXRLinear, float]:
    t0 = time.perf_counter()
    model = TextXRLinear(**params).fit(train, Y_train, label_names=labels)
    return model, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("val", "test"), required=True)
    parser.add_argument("--diverse", action="store_true", help="also the ensemble of three feature presets")
    args = parser.parse_args()
    train, Y_train, texts, Y, labels, _ = load("aol-click", args.split, features.DATA_ROOT)

    for n_trees in (1, 3):
        model, fit_s = fitted(train, Y_train, labels, classifier=XRLinearClassifier(n_jobs=2, n_trees=n_trees))
        report(f"{n_trees} tree{'s' if n_trees > 1 else ''}", model.predict_topk(texts, K)[0], Y, fit_s)
        if n_trees == 1:
            first = model
    if not args.diverse:
        return

    # Each member's XR scores alone, averaged; then the first model's matchers (the vote, the
    # name match) blended in as its own XR scores would be.
    t0 = time.perf_counter()
    members = [first] + [
        fitted(train, Y_train, labels, featurizer=TextFeaturizer(blocks=preset),
               classifier=XRLinearClassifier(n_jobs=2, random_state=seed))[0]
        for seed, preset in enumerate(DIVERSE[1:], start=1)
    ]
    fit_s = time.perf_counter() - t0
    xr = [m.classifier_.predict_topk(m.featurizer_.transform(texts), K) for m in members]
    mean = merge_topk(xr, [1.0 / len(xr)] * len(xr), K, 2)
    X = csr_args(first.featurizer_.transform(texts))
    report(" + ".join(DIVERSE) + " (fit: the two added)", first._blend(X, K, 2, model_result=mean)[0], Y, fit_s)


if __name__ == "__main__":
    main()

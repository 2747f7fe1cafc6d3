"""Does XR-Linear do as well on pecos_rs.text features as on the scikit-learn benchmark features?

For each text data set: train ``XRLinearClassifier()`` (defaults, 2 threads) on the
scikit-learn features of the XMC benchmark (``features.py``: word 1-2-grams + ``char_wb``
3-grams) and on ``pecos_rs.text`` configurations (``CONFIGS``), all fit on the training texts
only, and report P@1/3/5 and R@10 on the test split. Training is deterministic, so one run per
configuration. Two rows measure how far apart equally good features land: the scikit-learn
features with their columns shuffled (same information, another column order, which changes the
order of floating-point sums in clustering and training), and scikit-learn's recipe rebuilt with
``pecos_rs.text`` (the same features up to column order and Unicode handling).

Usage: python benches/text_quality.py [--datasets debian-depends,aol-click] [--write]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import features
import numpy as np
from bench_xmc import write_section
from pecos_rs import XRLinearClassifier
from pecos_rs.metrics import precision_recall_at_k
from pecos_rs.text import CharTfidf, TextFeaturizer, WordTfidf, default_blocks

BEGIN, END = "<!-- text-quality:begin -->", "<!-- text-quality:end -->"
SKLEARN_TOKENS = r"(?u)\b\w\w+\b"


def blocks(word_ngrams=(1, 3), token_pattern=None, min_df=1, sublinear=True, start="", end="#",
           normalization="NFKC"):
    """A word block and a char 3-gram block (whitespace-separated words, the given markers)."""
    word = dict(ngram_range=word_ngrams, min_df=min_df, sublinear_tf=sublinear,
                unicode_normalization=normalization)
    if token_pattern:
        word["token_pattern"] = token_pattern
    return [("word", WordTfidf(**word)),
            ("char", CharTfidf(ngram_range=(3, 3), token_pattern=r"\S+", start_marker=start, end_marker=end,
                               sublinear_tf=sublinear, unicode_normalization=normalization))]


# pecos_rs.text configurations: scikit-learn's recipe (what the benchmark features are), the
# issue's plain setting, the default, the default with min_df=2, and "tuned", the best found on a
# first validation split of the training sets (scikit-learn's recipe with sublinear tf; a second
# split, text_validation.py, did not confirm its gains).
CONFIGS = {
    "pecos_rs.text, scikit-learn's recipe (word 1-2 + char 3 space-marked)": blocks(
        (1, 2), SKLEARN_TOKENS, sublinear=False, start=" ", end=" ", normalization=None),
    "pecos_rs.text word 1-3 + char 3 `#` (plain)": [("word", WordTfidf()), ("char", CharTfidf())],
    "pecos_rs.text `TextFeaturizer()` (default)": default_blocks(),
    "pecos_rs.text default, word `min_df=2`": [("word", WordTfidf(min_df=2, sublinear_tf=True)),
                                               default_blocks()[1]],
    "pecos_rs.text word 1-2 + char 3 space-marked, sublinear (tuned)": blocks(
        (1, 2), SKLEARN_TOKENS, start=" ", end=" "),
}


def evaluate(X_trn, Y_trn, X_tst, Y_tst) -> dict:
    t0 = time.perf_counter()
    clf = XRLinearClassifier(n_jobs=2).fit(X_trn, Y_trn)
    train_s = time.perf_counter() - t0
    labels, _ = clf.predict_topk(X_tst, k=10)
    metrics = precision_recall_at_k(Y_tst, labels)
    return {**metrics, "train_s": train_s, "n_features": X_trn.shape[1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(features.TEXT_SETS))
    ap.add_argument("--write", action="store_true", help="replace the text-quality section of BENCHMARKS.md")
    args = ap.parse_args()
    lines = [f"Command: `{shlex.join(['python', 'benches/text_quality.py', *sys.argv[1:]])}`", "",
             "| data set | features | n features | P@1 | P@3 | P@5 | R@10 | train s |", "|---|---|---|---|---|---|---|---|"]
    for name in args.datasets.split(","):
        X_trn, Y_trn, X_tst, Y_tst = features.load(name)
        results = {"scikit-learn (benchmark features)": evaluate(X_trn, Y_trn, X_tst, Y_tst)}
        perm = np.random.default_rng(0).permutation(X_trn.shape[1])
        results["scikit-learn, columns shuffled"] = evaluate(X_trn[:, perm], Y_trn, X_tst[:, perm], Y_tst)
        src = features.DATA_ROOT / name
        trn, tst = (features.read_texts(src / f"X.{s}.txt.gz") for s in ("trn", "tst"))
        for label, blocks in CONFIGS.items():
            featurizer = TextFeaturizer(blocks)
            T_trn = featurizer.fit_transform(trn)
            results[label] = evaluate(T_trn, Y_trn, featurizer.transform(tst), Y_tst)
        for label, r in results.items():
            line = (f"| {name} | {label} | {r['n_features']:,} | {r['P@1']:.2f} | {r['P@3']:.2f} | {r['P@5']:.2f} "
                    f"| {r['R@10']:.2f} | {r['train_s']:.1f} |")
            print(line, flush=True)
            lines.append(line)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(text, BEGIN, END)


if __name__ == "__main__":
    main()

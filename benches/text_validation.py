"""Choose text featurizer configurations on a validation split, never on the test split.

For each text data set, hold out 20% of the training split (``--seed``), fit each configuration
of ``CONFIGS`` on the other 80%, train ``XRLinearClassifier()`` on it and print P@1/3/5 and R@10
on the held-out part. ``text_quality.py`` then measures the chosen configurations on the test
split. The configurations: scikit-learn's recipe of the benchmark features (the baseline), the
"tuned" one of ``text_quality.py``, and the issue's word 1-3-grams + char 3-grams with several
variations (start marker, token pattern, ``min_df``, sublinear tf, block weights, word 3-grams
as a separate down-weighted block).

Usage: python benches/text_validation.py [--datasets debian-depends,aol-click] [--seed 12345]
"""

from __future__ import annotations

import argparse

import features
import numpy as np
import scipy.sparse as sp
from pecos_rs.text import TextFeaturizer, default_blocks
from sklearn.base import clone
from text_quality import SKLEARN_TOKENS, blocks, evaluate


def recipe_with_word_trigrams(trigram_weight):
    """scikit-learn's recipe with `#` word markers, plus word 3-grams as a separate, down-weighted block."""
    recipe = blocks((1, 2), SKLEARN_TOKENS, sublinear=False, start="#", end="#", normalization=None)
    if not trigram_weight:
        return recipe, None
    (word_name, word), char = recipe
    trigrams = ("word3", clone(word).set_params(ngram_range=(3, 3)))
    return [(word_name, word), trigrams, char], [1.0, trigram_weight, 1.0]


# name -> (blocks, block weights)
CONFIGS = {
    "scikit-learn's recipe": (blocks((1, 2), SKLEARN_TOKENS, sublinear=False, start=" ", end=" ",
                                     normalization=None), None),
    "tuned (recipe + sublinear tf)": (blocks((1, 2), SKLEARN_TOKENS, start=" ", end=" "), None),
    "default": (default_blocks(), None),
    "w1-3 + c3 # both ends": (blocks(start="#"), None),
    "w1-3 sklearn tokens + c3 # both ends": (blocks(token_pattern=SKLEARN_TOKENS, start="#"), None),
    "w1-3 min_df 2 + c3 # both ends": (blocks(min_df=2, start="#"), None),
    "w1-3 sklearn tokens min_df 2 + c3 # both ends": (blocks(token_pattern=SKLEARN_TOKENS, min_df=2, start="#"), None),
    "w1-3 sklearn tokens min_df 2 + c3 #": (blocks(token_pattern=SKLEARN_TOKENS, min_df=2), None),
    "w1-3 sklearn tokens + c3 # both ends, raw tf": (
        blocks(token_pattern=SKLEARN_TOKENS, start="#", sublinear=False), None),
    "w1-3 sklearn tokens + c3 # both ends, raw tf, char x1.5": (
        blocks(token_pattern=SKLEARN_TOKENS, start="#", sublinear=False), [1.0, 1.5]),
    "w1-3 sklearn tokens + c3 # both ends, char x1.5": (
        blocks(token_pattern=SKLEARN_TOKENS, start="#"), [1.0, 1.5]),
    "w1-3 sklearn tokens + c3 # both ends, raw tf, char x2": (
        blocks(token_pattern=SKLEARN_TOKENS, start="#", sublinear=False), [1.0, 2.0]),
    "recipe with # markers": recipe_with_word_trigrams(0.0),
    "recipe with # markers + w3-3 x0.5": recipe_with_word_trigrams(0.5),
    "recipe with # markers + w3-3 x0.25": recipe_with_word_trigrams(0.25),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(features.TEXT_SETS))
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()
    print("| data set | features | n features | P@1 | P@3 | P@5 | R@10 | train s |\n|---|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        src = features.DATA_ROOT / name
        texts = features.read_texts(src / "X.trn.txt.gz")
        Y = features._finalise(sp.load_npz(src / "Y.trn.npz"))
        order = np.random.default_rng(args.seed).permutation(len(texts))
        fit_rows, val_rows = np.sort(order[: int(0.8 * len(texts))]), np.sort(order[int(0.8 * len(texts)):])
        fit_texts, val_texts = [texts[i] for i in fit_rows], [texts[i] for i in val_rows]
        for label, (config, weights) in CONFIGS.items():
            featurizer = TextFeaturizer(config, block_weights=weights)
            r = evaluate(featurizer.fit_transform(fit_texts), Y[fit_rows], featurizer.transform(val_texts), Y[val_rows])
            print(f"| {name} | {label} | {r['n_features']:,} | {r['P@1']:.2f} | {r['P@3']:.2f} | {r['P@5']:.2f} "
                  f"| {r['R@10']:.2f} | {r['train_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()

"""TextXRLinear's coarse top layers (``coarse_layers``, ``coarse_features``, ``coarse_max_iter``)
on a validation part (the split ``retrieval_sweep.py`` uses: aol-click's random 10% of the
training rows, homedepot's ``sha1(query) % 5 == 0``), everything else the defaults, 2 threads:
R@10, R@100 and P@1 of the top 100 (deterministic), the fit time and the solver's time per layer
summed over the layers (``verbose`` reports; the layers run at once, so this is not wall time).
Times are of one fit per setting, in rounds rotating the order (``--rounds``): medians.

Usage: python benches/coarse_layers.py --dataset aol-click [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import time

import features
from pecos_rs import TextXRLinear, XRLinearClassifier
from pecos_rs.metrics import precision_recall_at_k
from retrieval_sweep import load

SETTINGS = {
    "every layer alike (coarse_layers=0)": {"coarse_layers": 0},
    "2 layers, 5 passes, all features": {"coarse_layers": 2, "coarse_features": None},
    "2 layers, word block, all passes": {"coarse_layers": 2, "coarse_max_iter": 100},
    "2 layers, word block, 5 passes (the default)": {},
    "3 layers, word block, 5 passes": {"coarse_layers": 3},
}


class LayerSeconds(logging.Handler):
    """Sums the seconds of the ``training layer`` records of the pecos_rs logger."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0

    def emit(self, record):
        found = re.search(r"training layer .*, ([0-9.]+) s$", record.getMessage())
        if found:
            self.seconds += float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("aol-click", "homedepot"), required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    train, Y_train, texts, Y, names, titles = load(args.dataset, "val", features.DATA_ROOT)
    logger = logging.getLogger("pecos_rs")
    logger.setLevel(logging.INFO)
    handler = LayerSeconds()
    logger.addHandler(handler)

    times = {name: [] for name in SETTINGS}
    layer_times = {name: [] for name in SETTINGS}
    quality = {}
    names_in_order = list(SETTINGS)
    for r in range(args.rounds):
        order = names_in_order[r % len(names_in_order):] + names_in_order[:r % len(names_in_order)]
        for name in order:
            handler.seconds = 0.0
            model = TextXRLinear(classifier=XRLinearClassifier(n_jobs=2, verbose=1), **SETTINGS[name])
            t0 = time.perf_counter()
            model.fit(train, Y_train, label_names=names, label_texts=titles)
            times[name].append(time.perf_counter() - t0)
            layer_times[name].append(handler.seconds)
            if name not in quality:
                quality[name] = precision_recall_at_k(Y, model.predict_topk(texts, 100)[0], (1, 10, 100))
            print(f"round {r + 1}: {name}: fit {times[name][-1]:.2f} s", flush=True)

    print(f"\n{args.dataset}, validation part: {len(train)} texts to train, {len(texts)} to evaluate; "
          f"{args.rounds} rounds, medians\n")
    print("| setting | R@10 | R@100 | P@1 | fit s | layers' solver s (summed) |")
    print("|---|---|---|---|---|---|")
    for name in SETTINGS:
        m = quality[name]
        print(f"| {name} | {m['R@10']:.2f} | {m['R@100']:.2f} | {m['P@1']:.2f} | "
              f"{statistics.median(times[name]):.2f} | {statistics.median(layer_times[name]):.2f} |")


if __name__ == "__main__":
    main()

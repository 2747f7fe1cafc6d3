"""TextXRLinear's defaults with other solver settings of its classifier (``tol``, ``max_iter``) on
aol-click's validation part (the split ``retrieval_sweep.py`` uses), 2 threads: R@10, R@100 and P@1
of the top 100 (deterministic) and the seconds of each fit, in 2 rounds (the second in reverse
order).

Usage: python benches/solver_tol.py '{}' '{"tol": 0.5}' '{"max_iter": 15}'   (one JSON object of
XRLinearClassifier parameters per setting)
"""

from __future__ import annotations

import json
import sys
import time

import features
from pecos_rs import TextXRLinear, XRLinearClassifier
from pecos_rs.metrics import precision_recall_at_k
from retrieval_sweep import load


def main() -> None:
    settings = [json.loads(a) for a in sys.argv[1:]] or [{}]
    train, Y_train, texts, Y, names, _ = load("aol-click", "val", features.DATA_ROOT)
    quality = {}
    for r in range(2):
        order = range(len(settings)) if r == 0 else reversed(range(len(settings)))
        for i in order:
            start = time.perf_counter()
            # tol=None: the classifier's own tolerance is the setting's.
            model = TextXRLinear(classifier=XRLinearClassifier(n_jobs=2, **settings[i]),
                                 tol=None if "tol" in settings[i] else TextXRLinear().tol)
            model.fit(train, Y_train, label_names=names)
            seconds = time.perf_counter() - start
            if i not in quality:
                quality[i] = precision_recall_at_k(Y, model.predict_topk(texts, 100)[0], (1, 10, 100))
            m = quality[i]
            print(f"{json.dumps(settings[i])}: fit {seconds:.2f} s, R@10 {m['R@10']:.2f} R@100 {m['R@100']:.2f} "
                  f"P@1 {m['P@1']:.2f}", flush=True)


if __name__ == "__main__":
    main()

"""Writes the libpecos fixture of tests/test_pecos_interop.py: a tiny XR-Linear model trained and
saved by libpecos (``pecos_xlinear/``, PECOS's own layout) and, in ``pecos_xlinear_expected.npz``,
query rows with libpecos's predictions for them (raw CSR rows, in libpecos's order).

Needs libpecos, hence numpy < 2; run from the repository root, e.g. in the bench environment:

    /work/main/.bench-venv/bin/python tests/data/make_pecos_fixture.py

The training data are random (seeded): the fixture holds nothing from ../shared/data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pecos.xmc import Indexer, LabelEmbeddingFactory
from pecos.xmc.xlinear.model import XLinearModel
from sklearn.preprocessing import normalize

HERE = Path(__file__).parent
MODEL_DIR = HERE / "pecos_xlinear"
EXPECTED = HERE / "pecos_xlinear_expected.npz"
# (name, predict keyword arguments): libpecos's defaults (beam 20 = only_topk 20 at every layer,
# l3-hinge), and a narrow beam with another post-processor.
PREDICTIONS = [("default", {}), ("narrow", {"beam_size": 2, "only_topk": 3, "post_processor": "sigmoid"})]


def main() -> None:
    rng = np.random.default_rng(0)
    n_rows, n_features, n_labels = 80, 12, 10
    X = normalize(sp.random(n_rows, n_features, density=0.3, format="csr", random_state=rng, dtype=np.float32))
    X = X.astype(np.float32)
    # Each row's labels: its two largest features' labels (a learnable structure), one noise label.
    dense = X.toarray()
    rows = np.repeat(np.arange(n_rows), 3)
    cols = np.concatenate([np.argsort(-dense, axis=1)[:, :2] % n_labels,
                           rng.integers(0, n_labels, (n_rows, 1))], axis=1).ravel()
    Y = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_rows, n_labels))
    Y.data[:] = 1
    Z = LabelEmbeddingFactory.create(Y, X, method="pifa")
    C = Indexer.gen(Z, indexer_type="hierarchicalkmeans", nr_splits=2, max_leaf_size=3, seed=0)
    model = XLinearModel.train(X, Y.tocsc(), C=C)
    shutil.rmtree(MODEL_DIR, ignore_errors=True)
    model.save(str(MODEL_DIR))

    queries = X[:8]
    arrays = {"x_indptr": queries.indptr, "x_indices": queries.indices, "x_data": queries.data,
              "x_shape": np.array(queries.shape)}
    for name, kwargs in PREDICTIONS:
        P = XLinearModel.load(str(MODEL_DIR)).predict(queries, **kwargs)
        arrays.update({f"{name}_indptr": P.indptr, f"{name}_indices": P.indices, f"{name}_data": P.data})
    np.savez_compressed(EXPECTED, **arrays)
    size = sum(f.stat().st_size for f in MODEL_DIR.rglob("*") if f.is_file())
    print(f"wrote {MODEL_DIR} ({size} bytes, layers {[m.W.shape for m in model.model.model_chain]}) and {EXPECTED}")


if __name__ == "__main__":
    main()

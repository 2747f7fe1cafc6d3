"""Plain helpers shared by the test modules: real data slices, planted synthetic data, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

# ------------------------------------------------------------------------------------ real data

DATA_DIR = Path(__file__).parents[1].parent / "shared" / "data"


def l2_normalize_rows(X: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), float32 CSR."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    X.data *= np.repeat(scale, np.diff(X.indptr)).astype(np.float32)
    return X


def load_xmc(name: str, split: str = "trn", n_rows: int | None = None, normalize: bool = True):
    """``(X, Y)`` of a real XMC set in ``../shared/data/<name>`` (xmc-base npz files), the first
    `n_rows` rows only if given; skips the calling test when the data are absent."""
    folder = DATA_DIR / name
    xf, yf = folder / f"X.{split}.npz", folder / f"Y.{split}.npz"
    if not (xf.is_file() and yf.is_file()):
        pytest.skip(f"real data set {name!r} not found at {folder} (../shared/data is absent)")
    X = sp.load_npz(xf).tocsr()
    Y = sp.load_npz(yf).tocsr()
    if n_rows is not None:
        X, Y = X[:n_rows], Y[:n_rows]
    if normalize:
        X = l2_normalize_rows(X)
    return sp.csr_matrix(X, dtype=np.float32), sp.csr_matrix(Y, dtype=np.float32)


# ------------------------------------------------------------------------------- synthetic data


def make_planted(n_rows=300, n_features=60, n_labels=40, n_groups=4, seed=0):
    """A learnable multi-label problem.

    Labels come in `n_groups` groups; every label has a prototype made of its group's feature (one of
    the first `n_groups` features) and two label-specific features. A row picks one or two labels
    from one group, sums their prototypes, adds six random noise features and is L2-normalised.
    Returns ``(X, Y)``: float32 CSR, Y binary. The noise is tuned so that the problem is learnable but
    not trivial (one-vs-rest linear SVMs reach P@1 ~ 0.87 on held-out rows, chance is ~ 0.04).
    """
    rng = np.random.default_rng(seed)
    group_of = np.arange(n_labels) % n_groups
    own = n_groups + rng.permutation(np.repeat(np.arange(n_features - n_groups), 2))[: 2 * n_labels]
    own = own.reshape(n_labels, 2) % n_features
    X = np.zeros((n_rows, n_features), dtype=np.float64)
    Y = np.zeros((n_rows, n_labels), dtype=np.float32)
    for i in range(n_rows):
        g = rng.integers(n_groups)
        members = np.flatnonzero(group_of == g)
        labels = rng.choice(members, size=rng.integers(1, 3), replace=False)
        for j in labels:
            X[i, g] += 0.6
            X[i, own[j]] += rng.uniform(0.2, 1.0, size=2)
            Y[i, j] = 1.0
        noise = rng.choice(n_features, size=6, replace=False)
        X[i, noise] += rng.uniform(0.0, 1.0, size=6)
    X = l2_normalize_rows(sp.csr_matrix(X))
    return X, sp.csr_matrix(Y)


def precision_at_1(Y_true: sp.csr_matrix, top_labels: np.ndarray) -> float:
    """Fraction of rows whose first predicted label is relevant (PECOS P@1, as a fraction)."""
    Y_true = sp.csr_matrix(Y_true)
    first = np.asarray(top_labels)[:, 0]
    ok = first >= 0
    hits = np.zeros(len(first), dtype=bool)
    hits[ok] = np.asarray(Y_true[np.flatnonzero(ok), first[ok]]).ravel() != 0
    return float(hits.mean())


# ------------------------------------------------------------------------------ the raw model


def core_params(**overrides) -> dict:
    """The estimator's parameters as the Rust core takes them (``XRLinearClassifier``'s defaults
    less ``n_jobs`` and ``verbose``), with `overrides`."""
    from pecos_rs import XRLinearClassifier

    params = XRLinearClassifier().get_params()
    del params["n_jobs"], params["verbose"]
    unknown = set(overrides) - set(params)
    assert not unknown, f"not estimator parameters: {unknown}"
    return {**params, **overrides}


def raw_train(x, y, chain, *, n_threads=1, metadata="null", progress=None, **params):
    """``_pecos_rs.XLinearModel.train`` with the estimator's defaults overridden by `params`."""
    from pecos_rs import _pecos_rs

    return _pecos_rs.XLinearModel.train(
        x, y, chain, core_params(**params), n_threads=n_threads, metadata=metadata, progress=progress
    )


def raw_predict(model, x, *, beam_size, topk, post_processor, n_threads=1):
    """The raw model's ``predict_topk`` with its three search parameters."""
    from pecos_rs import _pecos_rs

    params = _pecos_rs.SearchParams({"beam_size": beam_size, "topk": topk, "post_processor": post_processor})
    return model.predict_topk(x, params, n_threads=n_threads)

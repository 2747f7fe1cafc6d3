"""Ranking metrics for top-k predictions, with PECOS's conventions (``smat_util.Metrics``).

* P@k = |top-k ∩ true| / k, even when fewer than k labels were predicted;
* R@k = |top-k ∩ true| / |true|;
* both are averaged over all rows; a row without true labels counts as 0 for both.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def precision_recall_at_k(Y_true, top_labels, ks=(1, 3, 5, 10)) -> dict:
    """Return ``{"P@k": percent, ..., "R@k": percent, ...}`` for every k in `ks`.

    Parameters
    ----------
    Y_true : sparse matrix or array of shape (n_samples, n_labels)
        Relevant labels (nonzero entries).
    top_labels : ndarray of int, shape (n_samples, K)
        Ranked predictions, best first, padded with -1 (as returned by ``predict_topk``);
        ``max(ks) <= K``.
    """
    Y_true = sp.csr_matrix(Y_true)
    top_labels = np.asarray(top_labels)
    n, width = top_labels.shape
    if n != Y_true.shape[0] or max(ks) > width:
        raise ValueError(
            f"predictions of shape {top_labels.shape} do not fit labels of shape {Y_true.shape} "
            f"with k up to {max(ks)}"
        )
    rows = np.repeat(np.arange(n), width)
    cols = top_labels.reshape(-1)
    valid = cols >= 0
    hits = np.zeros(n * width, dtype=bool)
    hits[valid] = np.asarray(Y_true[rows[valid], cols[valid]]).reshape(-1) != 0
    cum_hits = np.cumsum(hits.reshape(n, width), axis=1)
    n_true = np.maximum(np.diff(Y_true.indptr), 1)
    out = {f"P@{k}": 100.0 * float(np.mean(cum_hits[:, k - 1] / k)) for k in ks}
    out.update({f"R@{k}": 100.0 * float(np.mean(cum_hits[:, k - 1] / n_true)) for k in ks})
    return out

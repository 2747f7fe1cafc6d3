"""P@k, R@k and nDCG@k against a direct computation, row by row."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from pecos_rs.metrics import ndcg_at_k, precision_recall_at_k


def reference(Y, top, k):
    p, r, g = [], [], []
    for i in range(Y.shape[0]):
        true = set(np.flatnonzero(Y[i]))
        ranked = [j for j in top[i][:k]]
        hits = [j >= 0 and j in true for j in ranked]
        p.append(sum(hits) / k)
        r.append(sum(hits) / len(true) if true else 0.0)
        dcg = sum(1 / math.log2(rank + 2) for rank, h in enumerate(hits) if h)
        ideal = sum(1 / math.log2(rank + 2) for rank in range(min(k, len(true))))
        g.append(dcg / ideal if ideal else 0.0)
    return 100 * np.mean(p), 100 * np.mean(r), 100 * np.mean(g)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_metrics_equal_a_row_by_row_computation(data):
    n, n_labels, width = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 12)), data.draw(st.integers(1, 6))
    Y = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=n_labels, max_size=n_labels),
                                    min_size=n, max_size=n)), dtype=np.float32)
    top = np.full((n, width), -1, dtype=np.int64)
    for i in range(n):
        ids = data.draw(st.lists(st.integers(0, n_labels - 1), unique=True, max_size=width))
        top[i, : len(ids)] = ids
    ks = sorted(set(data.draw(st.lists(st.integers(1, width), min_size=1, max_size=3))))
    pr = precision_recall_at_k(sp.csr_matrix(Y), top, ks)
    nd = ndcg_at_k(Y, top, ks)
    for k in ks:
        p, r, g = reference(Y, top, k)
        assert pr[f"P@{k}"] == pytest.approx(p)
        assert pr[f"R@{k}"] == pytest.approx(r)
        assert nd[f"nDCG@{k}"] == pytest.approx(g)


def test_explicit_zeros_are_not_relevant_and_the_input_is_not_modified():
    Y = sp.csr_matrix((np.array([1.0, 0.0], np.float32), np.array([0, 1]), np.array([0, 2])), shape=(1, 3))
    top = np.array([[1, 0]])
    assert precision_recall_at_k(Y, top, (2,))["R@2"] == 100.0
    assert ndcg_at_k(Y, top, (1,))["nDCG@1"] == 0.0
    assert Y.nnz == 2


def test_shapes_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        ndcg_at_k(np.eye(3), np.zeros((2, 5), dtype=int), (1,))
    with pytest.raises(ValueError, match="do not fit"):
        precision_recall_at_k(np.eye(3), np.zeros((3, 2), dtype=int), (5,))

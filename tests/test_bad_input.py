"""Every kind of bad input gets a clear Python exception of the right class, never a crash or a hang."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

import reference as ref
from helpers import raw_predict, raw_train
from pecos_rs import (
    ClusterChain,
    InvalidInputError,
    InvalidParameterError,
    ModelFormatError,
    PecosError,
    XRLinearClassifier,
)
from pecos_rs import _pecos_rs
from pecos_rs._sparse import csr_args

TREE = dict(n_splits=2, max_leaf_size=8)


@pytest.fixture(scope="module")
def fitted(planted):
    return XRLinearClassifier(**TREE).fit(planted.X, planted.Y)


@pytest.fixture(scope="module")
def small():
    """A tiny fitted estimator and its data (fast to refit)."""
    rng = np.random.default_rng(0)
    X = sp.random(40, 8, density=0.4, format="csr", random_state=1, dtype=np.float32)
    Y = sp.csr_matrix((rng.random((40, 6)) < 0.3).astype(np.float32))
    return X, Y


def test_exception_hierarchy():
    for cls in (InvalidInputError, InvalidParameterError, ModelFormatError):
        assert issubclass(cls, PecosError) and issubclass(cls, ValueError)


# --------------------------------------------------------------------------------- parameters

BAD_PARAMS = {
    "n_splits": [0, 1, 3, 6, -2, 2.0, "2", True, None],
    "max_leaf_size": [0, -1, 1.5, "3", None, True],
    "kmeans_max_iter": [0, -3, 2.5, None],
    "beam_size": [0, -1, 1.5, "10", None],
    "topk": [0, -1, 2.0, None],
    "max_iter": [0, -1, 10.0, None],
    "min_codes": [0, -1, 1.5, "a"],
    "max_nonzeros_per_label": [0, -1, 2.5, "3"],
    "Cp": [0, -1.0, math.nan, math.inf, "1", None, True],
    "Cn": [0.0, -0.5, math.nan, -math.inf],
    "tol": [0, -1e-3, math.nan, math.inf, None],
    "threshold": [-0.1, math.nan, math.inf, "0", None],
    "bias": [-1.0, math.nan, math.inf, None, "1"],
    "spherical": [1, "yes", None],
    "loss": ["hinge2", "", None, 1, "SQUARED_HINGE", "squared-hinge"],
    "negative_sampling": ["man", "TFN", "", None],
    "post_processor": ["l5-hinge", "L3-hinge", "", None, "log-noop", 3],
    "random_state": [-1, 1.5, "0"],
    "n_trees": [0, -1, 2.0, "2", True, None],
    "n_jobs": [0, 1.5, "2"],
    "verbose": ["yes", 1.5, None],
}


@pytest.mark.parametrize(
    "name,value", [(n, v) for n, vs in BAD_PARAMS.items() for v in vs], ids=lambda x: repr(x)
)
def test_bad_parameter_values(small, name, value):
    X, Y = small
    clf = XRLinearClassifier(**{name: value})
    with pytest.raises(InvalidParameterError, match=name):
        clf.fit(X, Y)
    assert not hasattr(clf, "model_")


@pytest.mark.parametrize("name", ["bias", "Cp", "Cn"])
def test_parameters_overflowing_float32_are_rejected(small, name):
    """1e300 is a finite Python float but becomes inf in the float32 core."""
    X, Y = small
    with pytest.raises(InvalidParameterError, match=f"(?i){name}"):
        XRLinearClassifier(**{name: 1e300}).fit(X, Y)


@pytest.mark.parametrize(
    "name,value",
    [("n_splits", 2), ("max_leaf_size", 1), ("min_codes", 1), ("max_nonzeros_per_label", 1), ("Cp", 1e-3),
     ("threshold", 0.0), ("bias", 0.0), ("spherical", np.bool_(False)), ("random_state", np.int64(3)),
     ("n_jobs", -1), ("verbose", False), ("beam_size", np.int32(2)), ("n_trees", np.int64(2))],
)
def test_boundary_parameter_values_are_accepted(small, name, value):
    X, Y = small
    XRLinearClassifier(**{name: value}).fit(X, Y).predict_topk(X)


def test_unknown_constructor_keyword():
    with pytest.raises(TypeError):
        XRLinearClassifier(nr_splits=16)


# ---------------------------------------------------------------------------------- not fitted


@pytest.mark.parametrize("method", ["predict", "predict_topk", "predict_scores"])
def test_not_fitted(planted, method):
    with pytest.raises(NotFittedError):
        getattr(XRLinearClassifier(), method)(planted.X_test)


def test_predict_proba_not_fitted(planted):
    with pytest.raises(NotFittedError):
        XRLinearClassifier().predict_proba(planted.X_test)


def test_save_not_fitted(tmp_path):
    with pytest.raises(NotFittedError):
        XRLinearClassifier().save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------------- shapes


def test_row_mismatch(planted):
    for y in (planted.Y[:-1], planted.Y.toarray()[:-1], np.zeros(planted.X.shape[0] + 1, int)):
        with pytest.raises(ValueError, match="rows|samples|inconsistent"):
            XRLinearClassifier().fit(planted.X, y)


@pytest.mark.parametrize("weights, match", [
    (np.ones(39), "sample_weight"),
    (np.ones((40, 1)), "sample_weight"),
    (np.r_[np.ones(39), -1.0], "finite"),
    (np.r_[np.ones(39), np.nan], "sample_weight"),
    (np.r_[np.ones(39), 1e300], "finite"),
    (["a"] * 40, "sample_weight"),
])
def test_bad_sample_weight(small, weights, match):
    X, Y = small
    with pytest.raises(InvalidInputError, match=match):
        XRLinearClassifier(max_leaf_size=2).fit(X, Y, sample_weight=weights)


def test_predict_wrong_number_of_features(fitted, planted):
    for X in (planted.X_test[:, :-1], sp.hstack([planted.X_test, planted.X_test]).tocsr(), np.zeros((2, 3))):
        for method in ("predict_topk", "predict", "predict_proba", "predict_scores"):
            with pytest.raises(ValueError, match="features"):
                getattr(fitted, method)(X)


def test_one_dimensional_X(fitted, planted):
    with pytest.raises(ValueError):
        fitted.predict_topk(planted.X_test.toarray()[0])
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(np.ones(10), np.arange(10) % 2)


def test_three_dimensional_inputs(planted):
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(np.ones((10, 2, 2)), np.arange(10) % 2)
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(np.ones((10, 4)), np.ones((10, 2, 2)))


def test_empty_matrix(fitted, planted):
    with pytest.raises(ValueError, match="sample"):
        XRLinearClassifier().fit(planted.X[:0], planted.Y[:0])
    try:  # predicting 0 rows may raise like sklearn or return empty arrays
        labels, scores = fitted.predict_topk(planted.X_test[:0])
    except ValueError as e:
        assert "sample" in str(e)
    else:
        assert labels.shape == scores.shape == (0, fitted.topk)
        assert labels.dtype == np.int64 and scores.dtype == np.float32
    with pytest.raises(ValueError, match="feature"):
        XRLinearClassifier().fit(np.zeros((5, 0)), np.arange(5) % 2)


def test_y_without_labels(planted):
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(planted.X, sp.csr_matrix((planted.X.shape[0], 0)))


def test_empty_rows_work(planted):
    X = sp.csr_matrix(planted.X, copy=True).toarray()
    X[::2] = 0
    Y = planted.Y.toarray()
    Y[1::3] = 0
    clf = XRLinearClassifier(**TREE).fit(sp.csr_matrix(X), sp.csr_matrix(Y))
    labels, scores = clf.predict_topk(sp.csr_matrix((4, planted.n_features), dtype=np.float32))
    assert labels.shape == (4, 10) and np.isfinite(scores).all()
    allzero = XRLinearClassifier(**TREE).fit(sp.csr_matrix(X.shape, dtype=np.float32), planted.Y)
    assert allzero.predict_topk(planted.X_test)[0].shape == (planted.X_test.shape[0], 10)


# ------------------------------------------------------------------------------------- dtypes


def test_object_complex_and_string_X(planted):
    y = np.arange(6) % 2
    bad = [
        np.array([["a", "b"]] * 6),
        np.array([[1.0, "x"]] * 6, dtype=object),
        np.array([[1.0, None]] * 6, dtype=object),
        np.ones((6, 2), dtype=np.complex128) * (1 + 1j),
    ]
    for X in bad:
        with pytest.raises((ValueError, TypeError)):
            XRLinearClassifier().fit(X, y)
    clf = XRLinearClassifier().fit(np.eye(6, 2), y)
    for X in bad:
        with pytest.raises((ValueError, TypeError)):
            clf.predict_topk(X)


def test_numeric_object_X_is_accepted():
    X = np.array([[1.0, 0.0], [0.0, 2]] * 4, dtype=object)
    XRLinearClassifier().fit(X, np.arange(8) % 2).predict(X)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_X(fitted, planted, value):
    X = planted.X_test.toarray()
    X[3, 5] = value
    for Xb in (X, sp.csr_matrix(X)):
        with pytest.raises(ValueError):
            XRLinearClassifier().fit(Xb, planted.Y_test)
        with pytest.raises(ValueError):
            fitted.predict_topk(Xb)


def test_float64_overflowing_float32(fitted, planted):
    X = planted.X_test.toarray().astype(np.float64)
    X[0, 0] = 1e300
    for Xb in (X, sp.csr_matrix(X)):
        with pytest.raises(InvalidInputError, match="infinite"):
            fitted.predict_topk(Xb)
        with pytest.raises(InvalidInputError, match="infinite"):
            XRLinearClassifier().fit(Xb, planted.Y_test)


def test_float64_overflow_raises_without_runtime_warning(fitted, planted):
    X = planted.X_test.toarray().astype(np.float64)
    X[0, 0] = 1e300
    with pytest.raises(InvalidInputError):  # any warning is an error under this suite's config
        fitted.predict_topk(X)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # from sklearn
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_y(planted, value):
    Yd = planted.Y.toarray()
    Yd[0, 0] = value
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(planted.X, Yd)
    with pytest.raises(InvalidInputError):
        XRLinearClassifier().fit(planted.X, sp.csr_matrix(Yd))
    y = np.arange(planted.X.shape[0], dtype=np.float64) % 3
    y[4] = value
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(planted.X, y)


def test_continuous_and_complex_y(planted):
    n = planted.X.shape[0]
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(planted.X, np.linspace(0, 1, n))
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(planted.X, np.ones(n, dtype=np.complex128))
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(planted.X, None)


def test_fit_does_not_modify_sparse_y(planted):
    Y = sp.csr_matrix(planted.Y, copy=True)
    Y.data[::4] = 0.0  # explicit zeros
    before = (Y.data.copy(), Y.indices.copy(), Y.indptr.copy())
    XRLinearClassifier(**TREE).fit(planted.X, Y)
    np.testing.assert_array_equal(Y.indptr, before[2])
    np.testing.assert_array_equal(Y.data, before[0])


def test_fit_accepts_read_only_sparse_y(planted):
    Y = sp.csr_matrix(planted.Y, copy=True)
    for a in (Y.data, Y.indices, Y.indptr):
        a.flags.writeable = False
    XRLinearClassifier(**TREE).fit(planted.X, Y)


def test_fit_does_not_modify_X(planted):
    X = sp.csr_matrix(planted.X, copy=True)
    X.data[::5] = 0.0
    X = X.astype(np.float64)
    before = X.copy()
    XRLinearClassifier(**TREE).fit(X, planted.Y)
    assert X.nnz == before.nnz and (X != before).nnz == 0


def test_unsorted_and_duplicate_indices_in_scipy_input(fitted, planted):
    """Non-canonical scipy CSR input is canonicalised, not rejected and not misread."""
    X = planted.X_test.tocoo()
    # duplicates: every entry split in two halves; shuffled order
    rng = np.random.default_rng(0)
    order = rng.permutation(2 * X.nnz)
    rows = np.r_[X.row, X.row][order]
    cols = np.r_[X.col, X.col][order]
    vals = np.r_[X.data / 2, X.data / 2][order]
    Xd = sp.csr_matrix((vals, (rows, cols)), shape=X.shape)
    Xd.has_canonical_format = False
    unsorted = sp.csr_matrix(planted.X_test, copy=True)
    for i in range(unsorted.shape[0]):  # reverse each row's index order
        lo, hi = unsorted.indptr[i], unsorted.indptr[i + 1]
        unsorted.indices[lo:hi] = unsorted.indices[lo:hi][::-1].copy()
        unsorted.data[lo:hi] = unsorted.data[lo:hi][::-1].copy()
    unsorted.has_sorted_indices = False
    la, sa = fitted.predict_topk(planted.X_test)
    for Xb in (Xd, unsorted):
        lb, sb = fitted.predict_topk(Xb)
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_allclose(sa, sb, rtol=1e-6)


# ------------------------------------------------------------------------------------ huge k


def _run(code: str, timeout=60):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )


HUGE_K = """
import numpy as np, scipy.sparse as sp
from pecos_rs import XRLinearClassifier, _pecos_rs
from pecos_rs._sparse import csr_args
X = sp.random(30, 6, density=0.5, format="csr", random_state=0, dtype=np.float32)
Y = sp.random(30, 5, density=0.4, format="csr", random_state=1)
clf = XRLinearClassifier(max_leaf_size=2, n_splits=2).fit(X, Y)
for rows in (4, 1):  # batch path, single-row path
    try:
        clf.predict_topk(X[:rows], k={k})
    except (MemoryError, ValueError) as e:
        print("OK", rows, type(e).__name__)
    labels, scores = clf.model_.predict_topk(
        csr_args(X[:rows]), _pecos_rs.SearchParams(dict(beam_size=2, topk={k}, post_processor="noop")),
        n_threads=2)
    assert labels.shape == scores.shape == (rows, 5), labels.shape
    print("RAW", rows)
"""


@pytest.mark.parametrize(
    "k",
    [
        2**40,
        2**62,
        2**64 - 1,
    ],
)
def test_huge_k_raises_instead_of_aborting(k):
    """Regression: a huge k used to abort the process (allocation failure, or a pyo3 PanicException
    from the wrapping n_rows * k in beam.rs). The estimator must raise MemoryError/ValueError; the raw
    model returns at most n_labels columns."""
    r = _run(HUGE_K.format(k=k))
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-800:])
    assert r.stdout.count("OK") == 2 and r.stdout.count("RAW") == 2, r.stdout


def test_k_beyond_usize_raises(fitted, planted):
    with pytest.raises((OverflowError, ValueError)):
        fitted.predict_topk(planted.X_test[:2], k=2**64)


def test_huge_beam_is_fine(fitted, planted):
    a = fitted.predict_topk(planted.X_test, beam_size=2**62)
    b = fitted.predict_topk(planted.X_test, beam_size=1000)
    np.testing.assert_array_equal(a[0], b[0])


# ------------------------------------------------------------------------------ cluster chains


def test_bad_cluster_chains_are_rejected_by_ClusterChain():
    for assignments in ([], [np.array([1, 0])], [np.zeros(2, np.uint32), np.array([0, 2])],
                        [np.zeros(0, np.uint32)], [np.zeros((2, 2), np.uint32)], [np.array([0.0, 0.0])],
                        [np.array([-1, 0])], "abc"):
        with pytest.raises(ValueError):
            ClusterChain(assignments)


def test_tampered_cluster_chain_is_rejected_by_fit(planted):
    """A ClusterChain edited after construction cannot reach the core unchecked."""
    chain = ClusterChain([np.zeros(2, np.uint32), (np.arange(40) % 2).astype(np.uint32)])
    chain.assignments[1] = (np.arange(40) % 3).astype(np.uint32)  # parent 2 does not exist
    with pytest.raises(InvalidInputError):
        XRLinearClassifier().fit(planted.X, planted.Y, cluster_chain=chain)
    chain.assignments[1] = np.zeros(0, np.uint32)
    with pytest.raises(ValueError):
        XRLinearClassifier().fit(planted.X, planted.Y, cluster_chain=chain)
    chain.assignments[0] = np.ones(2, np.uint32)  # the root is node 0
    chain.assignments[1] = (np.arange(40) % 2).astype(np.uint32)
    with pytest.raises(InvalidInputError):
        XRLinearClassifier().fit(planted.X, planted.Y, cluster_chain=chain)


# ------------------------------------------------------------------------- raw model: CSR tuples

IP = np.array([0, 2, 3], dtype=np.int64)
IX = np.array([0, 5, 1], dtype=np.int32)
DA = np.array([1.0, 2.0, 3.0], dtype=np.float32)

MALFORMED_CSR = {
    "unsorted indices": (IP, np.array([5, 0, 1], np.int32), DA, 2, 10),
    "duplicate indices": (IP, np.array([5, 5, 1], np.int32), DA, 2, 10),
    "index == n_cols": (IP, np.array([0, 10, 1], np.int32), DA, 2, 10),
    "negative index": (IP, np.array([-1, 5, 1], np.int32), DA, 2, 10),
    "decreasing indptr": (np.array([0, 2, 1, 3], np.int64), IX, DA, 3, 10),
    "negative indptr": (np.array([0, -1, 3], np.int64), IX, DA, 2, 10),
    "indptr[0] != 0": (np.array([1, 2, 3], np.int64), IX, DA, 2, 10),
    "indptr too short": (IP, IX, DA, 3, 10),
    "indptr too long": (np.array([0, 1, 2, 3], np.int64), IX, DA, 2, 10),
    "data shorter than indices": (IP, IX, DA[:2], 2, 10),
    "indices shorter than data": (IP, IX[:2], DA, 2, 10),
    "indptr[-1] != nnz": (np.array([0, 2, 4], np.int64), IX, DA, 2, 10),
    "indptr[-1] huge": (np.array([0, 2, 2**40], np.int64), IX, DA, 2, 10),
    "NaN value": (IP, IX, np.array([1, np.nan, 3], np.float32), 2, 10),
    "inf value": (IP, IX, np.array([1, -np.inf, 3], np.float32), 2, 10),
    "too many columns": (IP, IX, DA, 2, 2**40),
    # Found by fuzzing (fuzz/, csr_parts): a pointer past nnz, then back down to it, and a row
    # count whose indptr length overflows.
    "indptr past nnz then back": (np.array([0, 2**40, 3], np.int64), IX, DA, 2, 10),
    "row count overflows": (np.array([], np.int64), IX[:0], DA[:0], 2**64 - 1, 10),
}


@pytest.fixture(scope="module")
def raw_model():
    rng = np.random.default_rng(3)
    W0 = rng.normal(size=(11, 2)).astype(np.float32)
    W1 = rng.normal(size=(11, 5)).astype(np.float32)
    return _pecos_rs.XLinearModel.from_bytes(
        ref.model_to_bytes(10, 1.0, [(np.zeros(2), W0), (np.array([0, 1, 1, 0, 1]), W1)])
    )


TRAIN_KW = dict(max_iter=20, threshold=0.0, beam_size=2, n_threads=1)


def _good_xy(n_rows=2):
    X = sp.csr_matrix(np.eye(n_rows, 10, dtype=np.float32))
    Y = sp.csr_matrix(np.eye(n_rows, 3, dtype=np.float32))
    return csr_args(X), csr_args(Y)


@pytest.mark.parametrize("case", list(MALFORMED_CSR))
def test_raw_predict_rejects_malformed_csr(raw_model, case):
    for n_threads in (1, 2):
        with pytest.raises(InvalidInputError):
            raw_predict(raw_model, MALFORMED_CSR[case], beam_size=2, topk=3, post_processor="noop", n_threads=n_threads)


@pytest.mark.parametrize("case", list(MALFORMED_CSR))
def test_raw_train_rejects_malformed_csr(case):
    x, y = _good_xy()
    bad = MALFORMED_CSR[case]
    chain = [np.zeros(3, np.uint32)]
    with pytest.raises(InvalidInputError):
        raw_train(bad, y, chain, **TRAIN_KW)
    # the same malformation in Y (as a 2 x 10 label matrix)
    with pytest.raises(InvalidInputError):
        raw_train(x, bad, [np.zeros(bad[4] if bad[4] < 100 else 10, np.uint32)], **TRAIN_KW)


def test_raw_single_row_path_rejects_malformed_csr(raw_model):
    one = (np.array([0, 2], np.int64), np.array([3, 3], np.int32), np.array([1.0, 2.0], np.float32), 1, 10)
    with pytest.raises(InvalidInputError):
        raw_predict(raw_model, one, beam_size=2, topk=3, post_processor="noop", n_threads=1)
    one = (np.array([0, 1], np.int64), np.array([3], np.int32), np.array([np.nan], np.float32), 1, 10)
    with pytest.raises(InvalidInputError):
        raw_predict(raw_model, one, beam_size=2, topk=3, post_processor="noop", n_threads=1)
    one = (np.array([0, 1], np.int64), np.array([3], np.int32), np.array([1.0], np.float32), 1, 9)
    with pytest.raises(InvalidInputError, match="features"):
        raw_predict(raw_model, one, beam_size=2, topk=3, post_processor="noop", n_threads=1)


@pytest.mark.parametrize(
    "args",
    [
        (IP.astype(np.int32), IX, DA, 2, 10),
        (IP, IX.astype(np.int64), DA, 2, 10),
        (IP, IX, DA.astype(np.float64), 2, 10),
        (IP, np.array([0, 0, 5, 5, 1, 1], np.int32)[::2], DA, 2, 10),  # not contiguous
        ([0, 2, 3], [0, 5, 1], [1.0, 2.0, 3.0], 2, 10),
        (IP, IX, DA, -1, 10),
        (IP, IX, DA, 2, -10),
        (IP, IX, DA, 2),
        (IP, IX, DA, 2, 10, 0),
        None,
    ],
)
def test_raw_predict_wrong_types(raw_model, args):
    with pytest.raises((TypeError, OverflowError, ValueError)) as info:
        raw_predict(raw_model, args, beam_size=2, topk=3, post_processor="noop", n_threads=1)
    assert not isinstance(info.value, PecosError) or isinstance(info.value, InvalidInputError)


def test_raw_predict_bad_parameters(raw_model):
    x = (IP, IX, DA, 2, 10)
    for kw in (dict(beam_size=0), dict(topk=0), dict(post_processor="l0-hinge"), dict(post_processor="")):
        args = {**dict(beam_size=2, topk=3, post_processor="noop", n_threads=1), **kw}
        with pytest.raises(InvalidParameterError):
            raw_predict(raw_model, x, **args)
        with pytest.raises(InvalidParameterError):  # single-row path
            raw_predict(raw_model, (IP[:2], IX[:2], DA[:2], 1, 10), **args)
    with pytest.raises(InvalidParameterError, match="beam_size must be an integer >= 1, got -1"):
        raw_predict(raw_model, x, beam_size=-1, topk=3, post_processor="noop", n_threads=1)


def test_raw_layer_accessors_out_of_range(raw_model):
    for t in (2, 100):
        with pytest.raises(InvalidInputError):
            raw_model.layer_weights(t)
        with pytest.raises(InvalidInputError):
            raw_model.layer_parents(t)
    with pytest.raises(OverflowError):
        raw_model.layer_weights(-1)


@pytest.mark.parametrize(
    "chain",
    [
        [],
        [np.zeros(0, np.uint32)],
        [np.ones(3, np.uint32)],
        [np.zeros(2, np.uint32), np.array([0, 1, 2], np.uint32)],
        [np.zeros(1, np.uint32), np.zeros(0, np.uint32)],
        [np.zeros(4, np.uint32)],  # 4 labels but Y has 3
        [np.zeros(2, np.uint32), np.array([0, 1], np.uint32)],  # 2 labels
    ],
)
def test_raw_train_bad_chains(chain):
    x, y = _good_xy()
    with pytest.raises(InvalidInputError):
        raw_train(x, y, chain, **TRAIN_KW)


def test_raw_train_chain_wrong_dtype():
    x, y = _good_xy()
    with pytest.raises(TypeError):
        raw_train(x, y, [np.zeros(3, np.int64)], **TRAIN_KW)


def test_raw_train_row_mismatch():
    x, _ = _good_xy(2)
    _, y = _good_xy(3)
    with pytest.raises(InvalidInputError, match="rows"):
        raw_train(x, y, [np.zeros(3, np.uint32)], **TRAIN_KW)


def test_raw_train_bad_metadata():
    x, y = _good_xy()
    with pytest.raises(InvalidInputError, match="metadata"):
        raw_train(x, y, [np.zeros(3, np.uint32)], metadata="{not json", **TRAIN_KW)


@pytest.mark.parametrize(
    "name,value",
    [("loss", "l2"), ("negative_sampling", "man"), ("post_processor", "x"), ("threshold", -1.0),
     ("threshold", math.nan), ("threshold", math.inf), ("beam_size", 0)],
)
def test_raw_train_bad_parameters(name, value):
    x, y = _good_xy()
    with pytest.raises(InvalidParameterError, match=name):
        raw_train(x, y, [np.zeros(3, np.uint32)], **{**TRAIN_KW, name: value})


@pytest.mark.parametrize(
    "name,value",
    [("Cp", 0.0), ("Cp", -1.0), ("Cp", math.nan), ("Cp", math.inf), ("Cn", 0.0), ("Cn", math.nan),
     ("tol", 0.0), ("tol", -1.0), ("tol", math.nan), ("max_iter", 0), ("bias", -1.0), ("bias", math.nan),
     ("bias", math.inf)],
)
def test_raw_train_bad_solver_parameters(name, value):
    x, y = _good_xy()
    with pytest.raises(InvalidParameterError, match=name):
        raw_train(x, y, [np.zeros(3, np.uint32)], **{**TRAIN_KW, name: value})


def test_raw_train_zero_rows():
    x, y = _good_xy(0)
    m = raw_train(x, y, [np.zeros(3, np.uint32)], **TRAIN_KW)
    assert m.n_labels == 3 and m.nnz == 0


# ---------------------------------------------------------------------------------- model files


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "model"
    fitted.save(path)
    return path


@pytest.mark.parametrize("mmap", [False, True])
def test_truncated_model_bin(saved, mmap):
    blob = (saved / "model.bin").read_bytes()
    points = sorted({0, 1, 7, 8, 11, 12, 19, 20, 40, len(blob) // 3, len(blob) // 2, len(blob) - 5, len(blob) - 4, len(blob) - 1})
    for n in points:
        (saved / "model.bin").write_bytes(blob[:n])
        with pytest.raises(ModelFormatError):
            XRLinearClassifier.load(saved, mmap=mmap)
        with pytest.raises(ModelFormatError):
            _pecos_rs.XLinearModel.from_bytes(blob[:n])


@pytest.mark.parametrize("mmap", [False, True])
def test_extended_model_bin(saved, mmap):
    blob = (saved / "model.bin").read_bytes()
    for extra in (b"\0", b"garbage" * 10, blob):
        (saved / "model.bin").write_bytes(blob + extra)
        with pytest.raises(ModelFormatError):
            XRLinearClassifier.load(saved, mmap=mmap)


def test_every_single_byte_flip_is_detected(raw_model):
    blob = raw_model.to_bytes()
    for i in range(len(blob)):
        for mask in (0x01, 0x80):
            b = bytearray(blob)
            b[i] ^= mask
            with pytest.raises(ModelFormatError):
                _pecos_rs.XLinearModel.from_bytes(bytes(b))


def test_flipped_bytes_in_saved_file(saved):
    blob = (saved / "model.bin").read_bytes()
    for i in range(0, len(blob), max(1, len(blob) // 25)):
        b = bytearray(blob)
        b[i] ^= 0xFF
        (saved / "model.bin").write_bytes(bytes(b))
        with pytest.raises(ModelFormatError):
            XRLinearClassifier.load(saved)


@pytest.mark.parametrize(
    "content",
    [b"", b"PECOSRS", b"PECOSRS\0", b"garbage that is not a model", b"PK\x03\x04 a zip file", b"\0" * 1000,
     b"\x93NUMPY\x01\x00"],
)
def test_garbage_model_bin(saved, content):
    (saved / "model.bin").write_bytes(content)
    for mmap in (False, True):
        with pytest.raises(ModelFormatError):
            XRLinearClassifier.load(saved, mmap=mmap)


def test_model_bin_of_another_model(saved, tmp_path, small):
    X, Y = small
    other = tmp_path / "other"
    XRLinearClassifier().fit(X, Y).save(other)
    (saved / "model.bin").write_bytes((other / "model.bin").read_bytes())
    with pytest.raises(ModelFormatError, match="same model"):
        XRLinearClassifier.load(saved)


@pytest.mark.parametrize("name", ["model.bin", "estimator.json", "classes.npy"])
def test_missing_files(saved, name):
    (saved / name).unlink()
    with pytest.raises(FileNotFoundError):
        XRLinearClassifier.load(saved)


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        XRLinearClassifier.load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        _pecos_rs.XLinearModel.load(str(tmp_path / "nope.bin"))


def test_model_path_is_a_directory(tmp_path):
    with pytest.raises(OSError):
        _pecos_rs.XLinearModel.load(str(tmp_path))


@pytest.mark.parametrize("version", [0, 2, "1", 1.5, None, [1]])
def test_wrong_estimator_format_version(saved, version):
    meta = json.loads((saved / "estimator.json").read_text())
    meta["format_version"] = version
    (saved / "estimator.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="version"):
        XRLinearClassifier.load(saved)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.pop("format_version"),
        lambda m: m.pop("params"),
        lambda m: m.pop("output_kind"),
        lambda m: m.pop("n_features_in"),
        lambda m: m.update(format="sklearn.Pipeline"),
        lambda m: m.update(params=[1, 2]),
        lambda m: m.update(params={"no_such_param": 1}),
        lambda m: m.update(n_features_in="many"),
        lambda m: m.update(n_features_in=7),
    ],
)
def test_corrupt_estimator_json(saved, edit):
    meta = json.loads((saved / "estimator.json").read_text())
    edit(meta)
    (saved / "estimator.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError):
        XRLinearClassifier.load(saved)


@pytest.mark.parametrize("content", ["", "{", "[]", "null", "42", '"text"', "\xff\xfe"])
def test_garbage_estimator_json(saved, content):
    (saved / "estimator.json").write_text(content, encoding="latin-1")
    with pytest.raises(ModelFormatError):
        XRLinearClassifier.load(saved)


@pytest.mark.parametrize("content", [b"", b"junk", b"\x93NUMPY", None])
def test_corrupt_classes_npy(saved, content):
    path = saved / "classes.npy"
    if content is None:  # a valid npy of the wrong length
        np.save(path, np.arange(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ModelFormatError):
        XRLinearClassifier.load(saved)


def test_pickled_classes_npy_is_refused(saved):
    np.save(saved / "classes.npy", np.array([object()] * 40, dtype=object), allow_pickle=True)
    with pytest.raises(ModelFormatError):
        XRLinearClassifier.load(saved)


# ------------------------------------------------- structurally invalid model files, valid checksum


def _section(parsed, layer, name):
    for t, n, start, end, dt in parsed["sections"]:
        if t == layer and n == name:
            return start, end, dt
    raise KeyError((layer, name))


def _patch(blob, layer, name, index, value):
    p = ref.parse_model_bytes(blob)
    start, end, dt = _section(p, layer, name)
    size = np.dtype(dt).itemsize
    assert start + (index + 1) * size <= end, "no such element"
    b = bytearray(blob)
    b[start + index * size : start + (index + 1) * size] = np.array([value], dtype=dt).tobytes()
    return ref.fix_crc(bytes(b))


@pytest.fixture(scope="module")
def rich_blob():
    """A 2-layer model with several features per chunk, as file bytes."""
    rng = np.random.default_rng(5)
    W0 = rng.normal(size=(9, 2)).astype(np.float32)
    W1 = rng.normal(size=(9, 5)).astype(np.float32)
    W1[rng.random(W1.shape) < 0.3] = 0
    blob = ref.model_to_bytes(8, 1.0, [(np.zeros(2), W0), (np.array([0, 1, 1, 0, 1]), W1)])
    _pecos_rs.XLinearModel.from_bytes(blob)  # valid as built
    return blob


@pytest.mark.parametrize(
    "layer,name,index,value,why",
    [
        (1, "parent_of", 0, 2, "parent out of range"),
        (0, "parent_of", 1, 1, "top layer parent is not the root"),
        (1, "entry_slot", 0, 3, "slot outside the parent's children"),
        (1, "entry_slot", 0, 2**32 - 1, "slot overflow"),
        (1, "row_feature", 0, 8, "feature == n_features"),
        (1, "row_feature", 1, 0, "features not increasing"),
        (0, "row_feature", 0, 2**32 - 1, "feature overflow"),
        (1, "row_ptr", 1, 10**6, "row pointer past the entries"),
        (1, "row_ptr", 0, 1, "row pointers do not start at 0"),
        (1, "chunk_ptr", 1, 10**6, "chunk pointer past the rows"),
        (1, "chunk_ptr", 0, 1, "chunk pointers do not start at 0"),
        (1, "chunk_ptr", 2, 0, "chunk pointers do not end at n_rows"),
        (1, "chunk_entry_ptr", 1, 10**6, "chunk entry pointer past the entries"),
        (1, "chunk_entry_ptr", 0, 1, "chunk entry pointers do not start at 0"),
        (1, "chunk_entry_ptr", 2, 0, "chunk entry pointers do not end at n_entries"),
        (1, "chunk_entry_ptr", 1, 0, "chunk entry pointers disagree with the row pointers"),
        (1, "entry_value", 0, np.nan, "NaN weight"),
        (1, "entry_value", 2, np.inf, "infinite weight"),
        (1, "bias_weight", 0, -np.inf, "infinite bias weight"),
        (0, "bias_weight", 1, np.nan, "NaN bias weight"),
    ],
)
def test_structurally_invalid_model_with_valid_checksum(rich_blob, layer, name, index, value, why, tmp_path):
    bad = _patch(rich_blob, layer, name, index, value)
    with pytest.raises(ModelFormatError):
        _pecos_rs.XLinearModel.from_bytes(bad)
    # A memory-mapped load checks the layout at once and each chunk at its first use: the damage
    # is refused at load, or by every use that reads it (a ModelFormatError, never a panic).
    (tmp_path / "bad.bin").write_bytes(bad)
    try:
        mapped = _pecos_rs.XLinearModel.load(tmp_path / "bad.bin", mmap=True)
    except ModelFormatError:
        return
    with pytest.raises(ModelFormatError):
        mapped.verify()
    every_feature = sp.csr_matrix(np.ones((1, 8), np.float32))
    uses = [lambda: raw_predict(mapped, csr_args(every_feature), beam_size=2, topk=5, post_processor="sigmoid")]
    uses += [lambda t=t: mapped.layer_weights(t) for t in range(mapped.depth)]
    refused = 0
    for use in uses:
        try:
            use()
        except ModelFormatError:
            refused += 1
    assert refused > 0, "no use of the damaged chunk noticed it"


def test_decreasing_row_pointers(rich_blob):
    layer = ref.parse_model_bytes(rich_blob)["layers"][1]
    rp, n0 = layer["row_ptr"], int(layer["chunk_ptr"][1])  # chunk 0 owns rp[0..=n0]
    assert n0 >= 2 and rp[1] < rp[2] < rp[n0]
    bad = _patch(rich_blob, 1, "row_ptr", 1, int(rp[2]) + 1)  # rp[1] > rp[2], inside the chunk
    with pytest.raises(ModelFormatError):
        _pecos_rs.XLinearModel.from_bytes(bad)


def test_second_chunk_row_pointers_must_start_at_zero(rich_blob):
    layer = ref.parse_model_bytes(rich_blob)["layers"][1]
    first = int(layer["chunk_ptr"][1]) + 1  # chunk 1's pointers follow chunk 0's n0 + 1
    assert layer["row_ptr"][first] == 0 and layer["row_ptr"][first + 1] > 0
    bad = _patch(rich_blob, 1, "row_ptr", first, 1)
    with pytest.raises(ModelFormatError):
        _pecos_rs.XLinearModel.from_bytes(bad)


@pytest.mark.parametrize(
    "edit,why",
    [
        (lambda h: h.update(n_features=7), "features beyond n_features"),
        (lambda h: h.update(n_features=-1), "negative count"),
        (lambda h: h.update(n_features="8"), "wrong JSON type"),
        (lambda h: h.update(bias=None), "null bias"),
        (lambda h: h.update(bias="nan"), "bias as a string"),
        (lambda h: h.update(bias=1e39), "bias overflowing float32"),
        (lambda h: h.pop("layers"), "no layers"),
        (lambda h: h.update(layers=[]), "zero layers (size mismatch)"),
        (lambda h: h["layers"][0].update(n_parents=2), "top layer with 2 parents"),
        (lambda h: h["layers"][1].update(n_rows=h["layers"][1]["n_rows"] + 2**61), "overflowing count"),
        (lambda h: h["layers"][1].update(n_entries=2**62), "overflowing entry count"),
        (lambda h: h["layers"][1].update(n_children=2**63), "overflowing child count"),
        (lambda h: h["layers"].append(dict(h["layers"][1])), "extra layer"),
    ],
)
def test_invalid_header_with_valid_checksum(rich_blob, edit, why):
    header = ref.parse_model_bytes(rich_blob)["header"]
    edit(header)
    bad = ref.replace_header(rich_blob, header)
    with pytest.raises(ModelFormatError):
        _pecos_rs.XLinearModel.from_bytes(bad)


def test_header_that_is_not_json(rich_blob):
    p = ref.parse_model_bytes(rich_blob)
    h0, h1 = p["header_span"]
    b = bytearray(rich_blob)
    b[h0] = ord("[")
    with pytest.raises(ModelFormatError):
        _pecos_rs.XLinearModel.from_bytes(ref.fix_crc(bytes(b)))


def test_header_length_beyond_file(rich_blob):
    b = bytearray(rich_blob)
    for length in (2**64 - 1, 2**63, len(rich_blob)):
        b[12:20] = struct.pack("<Q", length)
        with pytest.raises(ModelFormatError):
            _pecos_rs.XLinearModel.from_bytes(ref.fix_crc(bytes(b)))


@pytest.mark.parametrize("version", [0, 1, 5, 2**32 - 1])
def test_unsupported_model_format_version(rich_blob, version):
    b = bytearray(rich_blob)
    b[8:12] = struct.pack("<I", version)
    with pytest.raises(ModelFormatError, match=f"version {version}"):
        _pecos_rs.XLinearModel.from_bytes(ref.fix_crc(bytes(b)))
    assert _pecos_rs.FORMAT_VERSION == 4


def test_version_2_files_still_load(rich_blob):
    """Version 2 stored the same arrays packed; it is read and gives the same model."""
    parsed = ref.parse_model_bytes(rich_blob)
    Ws, Ps = ref.model_layers(_pecos_rs.XLinearModel.from_bytes(rich_blob))
    packed = ref.model_to_bytes(8, 1.0, list(zip(Ps, Ws)), metadata=parsed["header"]["metadata"], version=2)
    assert len(packed) < len(rich_blob)
    assert _pecos_rs.XLinearModel.from_bytes(packed).to_bytes() == rich_blob
    # The packed layout read as version 3 (or the aligned one as version 2) does not add up.
    for blob, version in ((packed, 3), (rich_blob, 2)):
        b = bytearray(blob)
        b[8:12] = struct.pack("<I", version)
        with pytest.raises(ModelFormatError, match="size does not match"):
            _pecos_rs.XLinearModel.from_bytes(ref.fix_crc(bytes(b)))


def test_version_1_model_asks_for_retraining(rich_blob):
    """Version 1 (64-bit absolute row pointers) is refused with a message saying what to do."""
    b = bytearray(rich_blob)
    b[8:12] = struct.pack("<I", 1)
    with pytest.raises(ModelFormatError, match="version 1.*re-train"):
        _pecos_rs.XLinearModel.from_bytes(ref.fix_crc(bytes(b)))

"""API behaviour of XRLinearClassifier: inputs, outputs, parameters, logging, learning."""

from __future__ import annotations

import inspect
import logging

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

from helpers import precision_at_1, raw_train
from pecos_rs import ClusterChain, InvalidInputError, InvalidParameterError, XRLinearClassifier

TREE = dict(n_splits=2, max_leaf_size=8)  # 40 labels -> layers [2, 4, 8, 40]


@pytest.fixture(scope="module")
def fitted(planted):
    return XRLinearClassifier(**TREE).fit(planted.X, planted.Y)


def four_leaf_chain(n_labels=40):
    """Root -> 2 -> 4 leaves; label j sits in leaf j // (n_labels // 4)."""
    return ClusterChain(
        [
            np.zeros(2, dtype=np.uint32),
            np.array([0, 0, 1, 1], dtype=np.uint32),
            (np.arange(n_labels) // (n_labels // 4)).astype(np.uint32),
        ]
    )


def layer_weights(model, t):
    indptr, indices, data, shape = model.layer_weights(t)
    return sp.csc_matrix((data, indices, indptr), shape=shape)


def assert_same_model(a, b):
    assert a.depth == b.depth
    for t in range(a.depth):
        wa, wb = layer_weights(a, t), layer_weights(b, t)
        assert wa.shape == wb.shape
        assert (wa != wb).nnz == 0, f"layer {t} weights differ"
        np.testing.assert_array_equal(a.layer_parents(t), b.layer_parents(t))


# ----------------------------------------------------------------------------------------- fit


def test_fit_returns_self_and_sets_attributes(planted):
    clf = XRLinearClassifier(**TREE)
    assert clf.fit(planted.X, planted.Y) is clf
    assert clf.n_features_in_ == planted.n_features
    np.testing.assert_array_equal(clf.classes_, np.arange(planted.n_labels))
    assert isinstance(clf.cluster_chain_, ClusterChain)
    assert clf.cluster_chain_.n_labels == planted.n_labels
    assert clf.model_.n_labels == planted.n_labels
    assert clf.model_.n_features == planted.n_features
    assert clf.model_.depth == len(clf.cluster_chain_)
    assert clf.model_.bias == 1.0


def test_dense_and_sparse_X_train_the_same_model(planted):
    a = XRLinearClassifier(**TREE).fit(planted.X, planted.Y)
    b = XRLinearClassifier(**TREE).fit(planted.X.toarray(), planted.Y)
    c = XRLinearClassifier(**TREE).fit(planted.X.astype(np.float64), planted.Y)
    assert a.model_.nnz > 0, "the solver learned nothing"
    assert_same_model(a.model_, b.model_)
    assert_same_model(a.model_, c.model_)
    la, sa = a.predict_topk(planted.X_test)
    lb, sb = b.predict_topk(planted.X_test.toarray())
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(sa, sb)


def test_sparse_and_dense_indicator_targets(planted):
    Yd = planted.Y.toarray()
    a = XRLinearClassifier(**TREE).fit(planted.X, planted.Y)
    b = XRLinearClassifier(**TREE).fit(planted.X, Yd.astype(np.int64))
    c = XRLinearClassifier(**TREE).fit(planted.X, sp.csc_matrix(2.5 * Yd))  # any nonzero counts
    assert_same_model(a.model_, b.model_)
    assert_same_model(a.model_, c.model_)
    pa, pb = a.predict(planted.X_test), b.predict(planted.X_test)
    assert sp.issparse(pa) and not sp.issparse(pb)
    assert pa.shape == pb.shape == (planted.X_test.shape[0], planted.n_labels)
    np.testing.assert_array_equal(pa.toarray(), pb)


def test_explicit_zeros_in_sparse_y_are_not_labels(planted):
    data = planted.Y.data.copy()
    data[::3] = 0.0  # stored zeros
    Yz = sp.csr_matrix((data, planted.Y.indices.copy(), planted.Y.indptr.copy()), shape=planted.Y.shape)
    assert Yz.nnz == planted.Y.nnz
    expected = Yz.copy()
    expected.eliminate_zeros()
    a = XRLinearClassifier(**TREE).fit(planted.X, expected)
    b = XRLinearClassifier(**TREE).fit(planted.X, Yz)
    assert_same_model(a.model_, b.model_)
    assert a.cluster_chain_ == b.cluster_chain_


@pytest.mark.parametrize("kind", ["int", "str", "object-str", "binary", "float-int"])
def test_class_labels(planted, kind):
    codes = planted.Y.toarray().argmax(axis=1) % 7
    if kind == "int":
        y = codes * 10 - 5
    elif kind == "str":
        y = np.array([f"class-{c}" for c in codes])
    elif kind == "object-str":
        y = np.array([f"class-{c}" for c in codes], dtype=object)
    elif kind == "binary":
        y = np.where(codes < 3, "no", "yes")
    else:
        y = codes.astype(np.float64)
    clf = XRLinearClassifier(max_leaf_size=4, n_splits=2).fit(planted.X, y)
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    pred = clf.predict(planted.X_test)
    assert pred.shape == (planted.X_test.shape[0],)
    assert set(pred.tolist()) <= set(np.unique(y).tolist())
    labels, _ = clf.predict_topk(planted.X_test, k=1)
    np.testing.assert_array_equal(pred, clf.classes_[labels[:, 0]])
    proba = clf.predict_proba(planted.X_test)
    assert proba.shape == (planted.X_test.shape[0], len(clf.classes_))
    assert np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # the top-1 label is the most probable class
    np.testing.assert_array_equal(proba[np.arange(len(pred)), labels[:, 0]], proba.max(axis=1))


def test_class_labels_learned(planted):
    """One group per row: predicting the group (4 classes) from its feature is easy."""
    group = planted.Y.toarray().argmax(axis=1) % 4
    group_test = planted.Y_test.toarray().argmax(axis=1) % 4
    names = np.array(["alpha", "beta", "gamma", "delta"])
    clf = XRLinearClassifier(max_leaf_size=2, n_splits=2).fit(planted.X, names[group])
    assert np.mean(clf.predict(planted.X_test) == names[group_test]) > 0.9


def test_column_vector_y_warns_like_sklearn(planted):
    from sklearn.exceptions import DataConversionWarning

    y = (planted.Y.toarray().argmax(axis=1) % 3).reshape(-1, 1)
    with pytest.warns(DataConversionWarning):
        clf = XRLinearClassifier(max_leaf_size=2).fit(planted.X, y)
    assert clf.predict(planted.X_test).shape == (planted.X_test.shape[0],)


def test_list_inputs(planted):
    X = planted.X.toarray()[:60].tolist()
    y = [str(v) for v in planted.Y.toarray()[:60].argmax(axis=1) % 3]
    clf = XRLinearClassifier(max_leaf_size=2).fit(X, y)
    assert clf.predict(X[:5]).shape == (5,)


def test_refit_resets_state(planted):
    clf = XRLinearClassifier(**TREE).fit(planted.X, planted.Y)
    y = np.array(["a", "b", "c"])[np.arange(planted.X.shape[0]) % 3]
    clf.fit(planted.X[:, :30], y)
    assert clf.n_features_in_ == 30
    np.testing.assert_array_equal(clf.classes_, ["a", "b", "c"])
    assert clf.model_.n_labels == 3
    assert clf.predict(planted.X_test[:, :30]).dtype.kind == "U"
    with pytest.raises(ValueError):
        clf.predict(planted.X_test)


def test_rows_without_features_or_labels(planted):
    X = planted.X.toarray()
    Y = planted.Y.toarray()
    X[:10] = 0
    Y[10:20] = 0
    clf = XRLinearClassifier(**TREE).fit(sp.csr_matrix(X), sp.csr_matrix(Y))
    labels, scores = clf.predict_topk(np.zeros((3, planted.n_features)), k=5)
    assert labels.shape == (3, 5)
    # every empty query gets the same (bias-only) answer
    assert (labels == labels[0]).all() and (scores == scores[0]).all()


def test_single_label(planted):
    Y = sp.csr_matrix(planted.Y[:, :1])
    clf = XRLinearClassifier().fit(planted.X, Y)
    labels, scores = clf.predict_topk(planted.X_test, k=3)
    assert (labels[:, 0] == 0).all() and (labels[:, 1:] == -1).all()
    assert (scores[:, 1:] == 0).all()


# ---------------------------------------------------------------------------------- prediction


def test_predict_topk_shapes_dtypes_order(fitted, planted):
    labels, scores = fitted.predict_topk(planted.X_test)
    n = planted.X_test.shape[0]
    assert labels.shape == scores.shape == (n, fitted.topk)
    assert labels.dtype == np.int64 and scores.dtype == np.float32
    assert labels.flags.c_contiguous and scores.flags.c_contiguous
    assert np.all(np.diff(scores, axis=1) <= 0), "scores are not sorted in decreasing order"
    assert ((labels >= 0) & (labels < planted.n_labels)).all()
    for row in labels:
        assert len(set(row.tolist())) == len(row)
    # l3-hinge scores are products of values in (0, 1]
    assert np.all((scores > 0) & (scores <= 1))
    k_labels, k_scores = fitted.predict_topk(planted.X_test, k=3)
    assert k_labels.shape == (n, 3)
    np.testing.assert_array_equal(k_labels, labels[:, :3])
    np.testing.assert_array_equal(k_scores, scores[:, :3])


def test_padding_when_fewer_labels_are_reachable(planted):
    chain = four_leaf_chain()
    clf = XRLinearClassifier(beam_size=1).fit(planted.X, planted.Y, cluster_chain=chain)
    labels, scores = clf.predict_topk(planted.X_test, k=15)
    # a beam of 1 reaches exactly one leaf of 10 labels
    assert (labels[:, :10] >= 0).all()
    assert (labels[:, 10:] == -1).all()
    assert (scores[:, 10:] == 0).all()
    leaves = labels[:, :10] // 10
    assert (leaves == leaves[:, :1]).all(), "labels of one row come from different leaves"
    # with a wide beam every label is reachable
    labels, scores = clf.predict_topk(planted.X_test, k=45, beam_size=4)
    assert (labels[:, :40] >= 0).all() and (labels[:, 40:] == -1).all()
    assert np.array_equal(np.sort(labels[:, :40], axis=1), np.tile(np.arange(40), (labels.shape[0], 1)))


def test_padding_one_layer_model(planted):
    clf = XRLinearClassifier(max_leaf_size=100).fit(planted.X, planted.Y[:, :5])
    assert len(clf.cluster_chain_) == 1
    labels, scores = clf.predict_topk(planted.X_test, k=8)
    assert (np.sort(labels[:, :5], axis=1) == np.arange(5)).all()
    assert (labels[:, 5:] == -1).all() and (scores[:, 5:] == 0).all()


def test_predict_scores_csr(fitted, planted):
    labels, scores = fitted.predict_topk(planted.X_test, k=4)
    S = fitted.predict_scores(planted.X_test, k=4)
    assert isinstance(S, sp.csr_matrix)
    assert S.shape == (planted.X_test.shape[0], planted.n_labels)
    assert S.has_sorted_indices
    np.testing.assert_array_equal(np.diff(S.indptr), (labels >= 0).sum(axis=1))
    dense = S.toarray()
    rows = np.arange(labels.shape[0])[:, None]
    np.testing.assert_array_equal(dense[rows, labels], scores)


def test_predict_scores_drops_padding(planted):
    clf = XRLinearClassifier(beam_size=1).fit(planted.X, planted.Y, cluster_chain=four_leaf_chain())
    S = clf.predict_scores(planted.X_test, k=15)
    assert (np.diff(S.indptr) == 10).all()


def test_predict_and_proba_indicator_targets(fitted, planted):
    proba = fitted.predict_proba(planted.X_test)
    assert proba.shape == (planted.X_test.shape[0], planted.n_labels)
    assert np.all((proba >= 0) & (proba <= 1))
    assert ((proba > 0).sum(axis=1) <= fitted.topk).all()
    pred = fitted.predict(planted.X_test)
    assert sp.issparse(pred)
    np.testing.assert_array_equal(pred.toarray(), (proba >= 0.5).astype(np.int64))


@pytest.mark.parametrize("pp", ["noop", "log-l3-hinge", "log-sigmoid", "sigmoid"])
def test_predict_proba_maps_scores_into_unit_interval(planted, pp):
    clf = XRLinearClassifier(post_processor=pp, **TREE).fit(planted.X, planted.Y)
    proba = clf.predict_proba(planted.X_test)
    assert np.all((proba >= 0) & (proba <= 1))
    assert (proba > 0).sum() > 0


def test_predict_time_overrides(planted):
    base = XRLinearClassifier(**TREE).fit(planted.X, planted.Y)
    narrow = XRLinearClassifier(beam_size=2, **TREE).fit(planted.X, planted.Y)
    noop = XRLinearClassifier(post_processor="noop", **TREE).fit(planted.X, planted.Y)
    few = XRLinearClassifier(topk=3, **TREE).fit(planted.X, planted.Y)
    for (la, sa), (lb, sb) in [
        (base.predict_topk(planted.X_test, beam_size=2), narrow.predict_topk(planted.X_test)),
        (base.predict_topk(planted.X_test, post_processor="noop"), noop.predict_topk(planted.X_test)),
        (base.predict_topk(planted.X_test, k=3), few.predict_topk(planted.X_test)),
    ]:
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(sa, sb)
    # the overrides do change the output (so the comparisons above are not vacuous)
    _, s_noop = base.predict_topk(planted.X_test, post_processor="noop")
    _, s_l3 = base.predict_topk(planted.X_test)
    assert not np.array_equal(s_noop, s_l3)
    # and they do not stick
    np.testing.assert_array_equal(base.predict_topk(planted.X_test)[1], s_l3)
    assert base.beam_size == 10 and base.post_processor == "l3-hinge"


@pytest.mark.parametrize(
    "kwargs",
    [dict(k=0), dict(k=-1), dict(k=1.5), dict(k=True), dict(k="3"), dict(beam_size=0), dict(beam_size=2.0),
     dict(post_processor="l5-hinge"), dict(post_processor="")],
)
def test_bad_overrides(fitted, planted, kwargs):
    with pytest.raises(InvalidParameterError):
        fitted.predict_topk(planted.X_test, **kwargs)


def test_n_jobs_all_cores(planted, fitted):
    clf = XRLinearClassifier(n_jobs=-1, **TREE).fit(planted.X, planted.Y)
    assert_same_model(clf.model_, fitted.model_)
    la, sa = clf.predict_topk(planted.X_test)
    lb, sb = fitted.predict_topk(planted.X_test)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(sa, sb)


# ------------------------------------------------------------------------------------ logging


def test_verbose_0_is_silent(planted, capsys, caplog):
    with caplog.at_level(logging.DEBUG, logger="pecos_rs"):
        XRLinearClassifier(verbose=0, **TREE).fit(planted.X, planted.Y).predict_topk(planted.X_test)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert caplog.records == []


def test_verbose_1_logs_progress_and_prints_nothing(planted, capsys, caplog):
    with caplog.at_level(logging.INFO, logger="pecos_rs"):
        clf = XRLinearClassifier(verbose=1, **TREE).fit(planted.X, planted.Y)
    assert capsys.readouterr() == ("", "")
    assert caplog.records
    assert all(r.name == "pecos_rs" and r.levelno == logging.INFO for r in caplog.records)
    lines = [r.getMessage() for r in caplog.records]
    depth = clf.model_.depth
    assert depth == 4
    assert any("indexing" in ln for ln in lines)
    training = [ln for ln in lines if "training layer" in ln]
    assert len(training) == depth
    for t, ln in enumerate(training):
        assert f"{t + 1}/{depth}" in ln


def test_progress_callback_exceptions_do_not_abort_training(planted):
    """A failing progress callback is reported as unraisable, training still completes."""
    import sys

    seen = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda u: seen.append(u.exc_type)
    try:
        def progress(*args):
            raise RuntimeError("boom")

        X, Y = planted.X, planted.Y
        from pecos_rs._sparse import csr_args

        m = raw_train(
            csr_args(X), csr_args(Y), [np.zeros(planted.n_labels, np.uint32)],
            max_iter=10, threshold=0.0, beam_size=2, post_processor="noop", progress=progress,
        )
    finally:
        sys.unraisablehook = old
    assert m.n_labels == planted.n_labels
    assert seen == [RuntimeError]


# ------------------------------------------------------------------------ user-supplied indexing


def test_user_cluster_chain(planted):
    chain = four_leaf_chain()
    clf = XRLinearClassifier().fit(planted.X, planted.Y, cluster_chain=chain)
    assert clf.cluster_chain_ is chain
    assert clf.model_.depth == 3
    for t in range(3):
        np.testing.assert_array_equal(clf.model_.layer_parents(t), chain.assignments[t])


def test_user_chain_with_empty_clusters(planted):
    # node 1 of the top layer has no children; leaf 2 holds no label
    chain = ClusterChain(
        [np.zeros(3, np.uint32), np.array([0, 0, 2, 2], np.uint32), np.r_[np.zeros(20), np.full(10, 1), np.full(10, 3)].astype(np.uint32)]
    )
    clf = XRLinearClassifier(beam_size=2).fit(planted.X, planted.Y, cluster_chain=chain)
    labels, scores = clf.predict_topk(planted.X_test, k=40)
    valid = labels >= 0
    assert valid.any()
    assert ((labels < 40) | ~valid).all()


def test_user_label_embedding(planted):
    # two orthogonal groups of labels: the first split must separate them
    Z = np.zeros((planted.n_labels, 2))
    Z[:20, 0] = 1.0
    Z[20:, 1] = 1.0
    clf = XRLinearClassifier(n_splits=2, max_leaf_size=20).fit(planted.X, planted.Y, label_embedding=Z)
    leaves = clf.cluster_chain_.assignments[-1]
    assert len(set(leaves[:20].tolist())) == 1 and len(set(leaves[20:].tolist())) == 1
    assert leaves[0] != leaves[20]
    # and it is different from the default (PIFA) tree, which mixes the two halves
    default = XRLinearClassifier(n_splits=2, max_leaf_size=20).fit(planted.X, planted.Y)
    assert default.cluster_chain_ != clf.cluster_chain_


def test_label_embedding_sparse_accepted(planted):
    Z = sp.csr_matrix(np.eye(planted.n_labels))
    clf = XRLinearClassifier(n_splits=2, max_leaf_size=10).fit(planted.X, planted.Y, label_embedding=Z)
    assert clf.cluster_chain_.n_labels == planted.n_labels


def test_bad_user_indexing(planted):
    clf = XRLinearClassifier()
    with pytest.raises(InvalidInputError):
        clf.fit(planted.X, planted.Y, cluster_chain=four_leaf_chain(20))
    with pytest.raises(InvalidParameterError):
        clf.fit(planted.X, planted.Y, cluster_chain=[np.zeros(40, np.uint32)])
    with pytest.raises(InvalidInputError):
        clf.fit(planted.X, planted.Y, label_embedding=np.ones((39, 3)))
    with pytest.raises(ValueError):
        clf.fit(planted.X, planted.Y, label_embedding=np.full((40, 3), np.nan))


# ---------------------------------------------------------------------------- sklearn params


def test_get_params_matches_signature():
    clf = XRLinearClassifier()
    names = [p for p in inspect.signature(XRLinearClassifier.__init__).parameters if p != "self"]
    assert sorted(clf.get_params()) == sorted(names)
    assert clf.get_params()["n_splits"] == 16 and clf.get_params()["loss"] == "squared_hinge"


def test_set_params_and_clone(planted):
    clf = XRLinearClassifier()
    assert clf.set_params(beam_size=3, loss="hinge") is clf
    assert clf.beam_size == 3 and clf.loss == "hinge"
    clf.fit(planted.X, planted.Y)
    c = clone(clf)
    assert c.get_params() == clf.get_params()
    assert not hasattr(c, "model_") and not hasattr(c, "classes_")
    with pytest.raises(ValueError):
        clf.set_params(not_a_param=1)


def test_constructor_does_not_validate():
    # sklearn convention: validation happens in fit
    clf = XRLinearClassifier(n_splits=3, loss="nope")
    assert clf.n_splits == 3 and clf.loss == "nope"


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        XRLinearClassifier(16)


# ---------------------------------------------------------------------------------- learning


def _ovr_svm_p_at_1(planted):
    svc = OneVsRestClassifier(LinearSVC(C=1.0, loss="squared_hinge", dual=True, tol=1e-4, max_iter=10000))
    svc.fit(planted.X, planted.Y.toarray().astype(int))
    dec = svc.decision_function(planted.X_test)
    return precision_at_1(planted.Y_test, np.argsort(-dec, axis=1)[:, :1])


def test_learns_planted_structure(planted):
    chance = planted.Y_test.sum() / planted.Y_test.shape[0] / planted.n_labels
    baseline = _ovr_svm_p_at_1(planted)
    assert baseline > 0.6, "the planted problem is not learnable; fix the fixture"
    clf = XRLinearClassifier(**TREE).fit(planted.X, planted.Y)
    labels, _ = clf.predict_topk(planted.X_test, k=1)
    p1 = precision_at_1(planted.Y_test, labels)
    assert p1 > 10 * chance
    assert p1 >= baseline - 0.1, f"P@1 {p1:.3f} vs one-vs-rest linear SVM {baseline:.3f}"


@pytest.mark.parametrize("loss", ["squared_hinge", "hinge", "logistic"])
@pytest.mark.parametrize("ns", ["tfn", "tfn+man"])
def test_every_loss_and_sampling_learns(planted, loss, ns):
    clf = XRLinearClassifier(loss=loss, negative_sampling=ns, threshold=0.01, **TREE).fit(planted.X, planted.Y)
    labels, _ = clf.predict_topk(planted.X_test, k=1)
    assert precision_at_1(planted.Y_test, labels) > 0.7  # one-vs-rest linear SVMs: ~0.87


def test_threshold_and_max_nonzeros_bound_the_weights(planted):
    clf = XRLinearClassifier(threshold=0.05, max_nonzeros_per_label=3, **TREE).fit(planted.X, planted.Y)
    assert clf.model_.nnz > 0
    for t in range(clf.model_.depth):
        W = layer_weights(clf.model_, t)
        assert (np.abs(W.data) >= 0.05).all()
        assert (np.diff(W.indptr) <= 3).all()


def test_learns_bibtex(xmc_loader):
    """Full bibtex train split; libpecos 1.2.8 with the same settings gets P@1 = 0.632 on test."""
    X, Y = xmc_loader("bibtex", "trn")
    Xt, Yt = xmc_loader("bibtex", "tst")
    clf = XRLinearClassifier(n_splits=16, max_leaf_size=100, n_jobs=2).fit(X, Y)
    labels, _ = clf.predict_topk(Xt, k=1)
    p1 = precision_at_1(Yt, labels)
    assert p1 >= 0.58, f"bibtex P@1 {p1:.3f} is well below libpecos's 0.632"


@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.float64),
        lambda X: sp.csr_array(X),
        lambda X: X.tocsc(),
        lambda X: X.tocoo(),
        lambda X: X.toarray(),
        lambda X: X.toarray().tolist(),
        lambda X: X.toarray().astype(np.float16),
    ],
    ids=["csr64", "csr_array", "csc", "coo", "dense", "list", "dense-f16"],
)
def test_query_formats_give_identical_predictions(fitted, planted, convert):
    X = sp.csr_matrix(planted.X_test, dtype=np.float32)
    Xc = convert(X)
    # the reference: the same values as a float32 CSR matrix
    dense = np.asarray(Xc.todense() if sp.issparse(Xc) else Xc, dtype=np.float32)
    expected = fitted.predict_topk(sp.csr_matrix(dense))
    got = fitted.predict_topk(Xc)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.uint8])
def test_integer_and_bool_queries(fitted, planted, dtype):
    Xi = sp.csr_matrix((planted.X_test.toarray() > 0.3).astype(dtype))
    expected = fitted.predict_topk(sp.csr_matrix(Xi, dtype=np.float32))
    for X in (Xi, Xi.toarray(), Xi[:1]):
        got = fitted.predict_topk(X)
        n = got[0].shape[0]
        np.testing.assert_array_equal(got[0], expected[0][:n])
        np.testing.assert_array_equal(got[1], expected[1][:n])


# ---------------------------------------------------------------------------- label ranges


def test_label_ranges_equal_filtering_a_covering_search(planted):
    """With a beam covering the tree, a search restricted to labels [a, b) equals searching
    everything and keeping the labels in [a, b); batch and single rows agree."""
    clf = XRLinearClassifier(n_splits=2, max_leaf_size=4, n_jobs=2).fit(planted.X, planted.Y)
    L = planted.n_labels
    X = planted.X_test[:40]
    full_labels, full_scores = clf.predict_topk(X, L, beam_size=L)
    rng = np.random.default_rng(0)
    starts = rng.integers(0, L, size=X.shape[0])
    ends = np.minimum(L, starts + rng.integers(0, 6, size=X.shape[0]))
    ranges = np.stack([starts, ends], axis=1)
    for k in (1, 5):
        labels, scores = clf.predict_topk(X, k, beam_size=L, label_ranges=ranges)
        for i, (a, b) in enumerate(ranges):
            keep = (full_labels[i] >= a) & (full_labels[i] < b)
            expected = full_labels[i][keep][:k]
            got = labels[i][labels[i] >= 0]
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(scores[i][: got.size], full_scores[i][keep][:k])
            one = clf.predict_topk(X[i : i + 1], k, beam_size=L, label_ranges=ranges[i : i + 1])
            np.testing.assert_array_equal(one[0][0], labels[i])


def test_label_ranges_with_a_narrow_beam_stay_in_range(planted):
    clf = XRLinearClassifier(n_splits=2, max_leaf_size=4).fit(planted.X, planted.Y)
    X = planted.X_test[:30]
    ranges = np.array([[i % planted.n_labels, i % planted.n_labels + 1] for i in range(30)])
    labels, _ = clf.predict_topk(X, 3, beam_size=1, label_ranges=ranges)
    np.testing.assert_array_equal(labels[:, 0], ranges[:, 0])
    assert (labels[:, 1:] == -1).all()


@pytest.mark.parametrize("ranges, message", [
    (np.array([[0, 1]]), "shape"),
    (np.array([[2, 1]] * 3), "start <= end"),
    (np.array([[0, 10**6]] * 3), "number of labels"),
    (np.array([[-1, 1]] * 3), "non-negative"),
    (np.array([[0.0, 1.0]] * 3), "integer"),
])
def test_bad_label_ranges(planted, ranges, message):
    clf = XRLinearClassifier(max_leaf_size=4).fit(planted.X, planted.Y)
    with pytest.raises(InvalidInputError, match=message):
        clf.predict_topk(planted.X_test[:3], 2, label_ranges=ranges)

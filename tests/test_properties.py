"""Property-based tests (hypothesis): beam search against the numpy reference, invariances, the
solver against reference primal solutions."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, note
from hypothesis.errors import InvalidArgument
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import reference as ref
from helpers import raw_predict, raw_train
from pecos_rs import XRLinearClassifier
from pecos_rs import _pecos_rs
from pecos_rs._sparse import csr_args

POST_PROCESSORS = list(_pecos_rs.POST_PROCESSORS)


def test_reference_knows_every_post_processor():
    assert sorted(POST_PROCESSORS) == sorted(ref.POST_PROCESSORS)


# ------------------------------------------------------------------------------------ strategies

weight_values = st.one_of(st.just(0.0), st.floats(-2.0, 2.0, width=32, allow_subnormal=False))
query_values = st.one_of(st.just(0.0), st.floats(-3.0, 3.0, width=32, allow_subnormal=False))


@st.composite
def trees(draw, max_depth=3, max_width=7):
    """Parent arrays of a random tree (childless nodes allowed)."""
    depth = draw(st.integers(1, max_depth))
    parents, n_parents = [], 1
    for _ in range(depth):
        width = draw(st.integers(1, max_width))
        parents.append(draw(arrays(np.int64, width, elements=st.integers(0, n_parents - 1))))
        n_parents = width
    return parents


@st.composite
def models(draw):
    """``(model, weights_per_layer, parents_per_layer, bias, n_features)`` with chosen weights."""
    parents = draw(trees())
    d = draw(st.integers(1, 8))
    Ws = [draw(arrays(np.float32, (d + 1, p.size), elements=weight_values)) for p in parents]
    bias = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    model = _pecos_rs.XLinearModel.from_bytes(ref.model_to_bytes(d, bias, list(zip(parents, Ws))))
    return model, Ws, parents, bias, d


def queries(d, max_rows=6):
    return st.integers(1, max_rows).flatmap(lambda n: arrays(np.float32, (n, d), elements=query_values))


def as_csr(X):
    X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else sp.csr_matrix(np.asarray(X, dtype=np.float32))
    return csr_args(X)


def _note(msg):
    """hypothesis.note inside a hypothesis test, nothing elsewhere."""
    try:
        note(msg)
    except InvalidArgument:
        pass


def rust_predict(model, X, beam_size, topk, pp, n_threads=1):
    """The raw model's top-k, padded to `topk` columns with -1 / 0 like the estimator's output."""
    labels, scores = raw_predict(
        model, as_csr(X), beam_size=beam_size, topk=topk, post_processor=pp, n_threads=n_threads
    )
    # The core returns min(topk, n_labels) columns (the estimator pads to k).
    assert labels.shape == scores.shape == (X.shape[0], min(topk, model.n_labels))
    if labels.shape[1] < topk:
        pad = ((0, 0), (0, topk - labels.shape[1]))
        labels = np.pad(labels, pad, constant_values=-1)
        scores = np.pad(scores, pad, constant_values=0)
    return labels, scores


def check_against_reference(model, Ws, Ps, bias, X, beam_size, topk, pp, labels, scores):
    """Compares Rust output rows with the reference beam search (exact labels where determined)."""
    checked = 0
    for i, x in enumerate(np.asarray(X)):
        rl, rs, amb = ref.beam_search(Ws, Ps, x, bias, beam_size, topk, pp, return_ambiguous=True)
        _note(f"row {i}: rust {labels[i]} {scores[i]}, reference {rl} {rs}, ambiguity {amb}")
        if amb == 2:
            continue
        exhaustive = ref.exhaustive_scores(Ws, Ps, x, bias, pp)
        ref.assert_rankings_match(labels[i], scores[i], rl, rs, lambda j: exhaustive[j], msg=f"row {i} {pp}")
        if amb == 0:
            np.testing.assert_array_equal(labels[i], rl, err_msg=f"row {i}: tie order differs ({pp})")
        checked += 1
    return checked


# ------------------------------------------------------------------------- beam search vs reference


@given(
    m=models(),
    data=st.data(),
    pp=st.sampled_from(POST_PROCESSORS),
    beam_size=st.integers(1, 5),
    topk=st.integers(1, 8),
    n_threads=st.sampled_from([1, 2]),
)
def test_beam_search_matches_reference(m, data, pp, beam_size, topk, n_threads):
    model, Ws, Ps, bias, d = m
    X = data.draw(queries(d))
    labels, scores = rust_predict(model, X, beam_size, topk, pp, n_threads)
    assert labels.shape == scores.shape == (X.shape[0], topk)
    check_against_reference(model, Ws, Ps, bias, X, beam_size, topk, pp, labels, scores)
    # the single-row path (thread-local buffers) gives the same rows, bitwise
    for i in range(X.shape[0]):
        l1, s1 = rust_predict(model, X[i : i + 1], beam_size, topk, pp)
        np.testing.assert_array_equal(l1[0], labels[i])
        assert s1[0].tobytes() == scores[i].tobytes()


@pytest.mark.parametrize("pp", POST_PROCESSORS)
def test_beam_search_matches_reference_on_many_rows(pp):
    """A deterministic, larger case per post-processor (so each one is surely exercised)."""
    rng = np.random.default_rng(zlib.crc32(pp.encode()))
    d = 12
    Ps = [np.zeros(3, np.int64), rng.integers(0, 3, 8), rng.integers(0, 8, 30)]
    Ws = [(rng.normal(size=(d + 1, p.size)) * (rng.random((d + 1, p.size)) < 0.6)).astype(np.float32) for p in Ps]
    model = _pecos_rs.XLinearModel.from_bytes(ref.model_to_bytes(d, 1.0, list(zip(Ps, Ws))))
    X = sp.random(130, d, density=0.4, random_state=1, dtype=np.float32).toarray()  # > 64: 3 chunks
    for beam_size, topk in [(1, 2), (3, 10), (8, 30)]:
        labels, scores = rust_predict(model, X, beam_size, topk, pp, n_threads=2)
        checked = check_against_reference(model, Ws, Ps, 1.0, X, beam_size, topk, pp, labels, scores)
        assert checked >= 65, "too many ambiguous rows: the comparison is too weak"


@pytest.mark.parametrize("pp", POST_PROCESSORS)
@pytest.mark.parametrize("levels", [None, 3])
def test_beam_search_matches_reference_on_wide_layers(pp, levels):
    """Hundreds of candidates per query and layer, so that the search prunes the candidates it
    gathers (the pruning only starts past 64); ``levels`` quantises weights and queries to a few
    values, which makes many exact score ties that must still go to the earlier candidate."""
    rng = np.random.default_rng(zlib.crc32(pp.encode()) + (levels or 0))
    d = 10
    Ps = [np.zeros(4, np.int64), rng.integers(0, 4, 120), rng.integers(0, 120, 700)]
    Ws = [rng.normal(size=(d + 1, p.size)) * (rng.random((d + 1, p.size)) < 0.5) for p in Ps]
    X = sp.random(70, d, density=0.5, random_state=2).toarray()
    if levels:
        Ws, X = [np.round(W * levels) / levels for W in Ws], np.round(X * levels) / levels
    Ws, X = [W.astype(np.float32) for W in Ws], X.astype(np.float32)
    model = _pecos_rs.XLinearModel.from_bytes(ref.model_to_bytes(d, 1.0, list(zip(Ps, Ws))))
    for beam_size, topk in [(1, 3), (3, 5), (10, 20)]:
        labels, scores = rust_predict(model, X, beam_size, topk, pp, n_threads=2)
        check_against_reference(model, Ws, Ps, 1.0, X, beam_size, topk, pp, labels, scores)
        for i in range(3):  # the single-query path gives the same as the batch path
            one_labels, one_scores = rust_predict(model, X[i : i + 1], beam_size, topk, pp, n_threads=1)
            assert one_labels[0].tolist() == labels[i].tolist()
            assert one_scores[0].tobytes() == scores[i].tobytes()


def test_ties_go_to_the_earlier_candidate():
    """Equal scores: parent beam order first, then child id (spec 2.1)."""
    d = 2
    # layer 1: 2 nodes, node 1 scores higher; layer 2: labels 0..5, children of 0: {1, 3, 5}, of 1: {0, 2, 4}
    W0 = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], np.float32)
    W1 = np.zeros((3, 6), np.float32)  # all labels tie within a parent
    P1 = np.array([1, 0, 1, 0, 1, 0])
    model = _pecos_rs.XLinearModel.from_bytes(ref.model_to_bytes(d, 1.0, [(np.zeros(2), W0), (P1, W1)]))
    X = np.array([[1.0, 0.0]], np.float32)
    for pp in POST_PROCESSORS:
        # node 1's children score higher (or, under noop, tie and come first in candidate order)
        expected = [0, 2, 4, 1, 3, 5]
        for n in (1, 3):  # single-row and batch paths
            labels, scores = rust_predict(model, np.repeat(X, n, axis=0), 2, 6, pp)
            for row in labels:
                assert row.tolist() == expected, pp
    # all-zero weights: everything ties; the order is the candidate order
    W0z = np.zeros_like(W0)
    model = _pecos_rs.XLinearModel.from_bytes(ref.model_to_bytes(d, 1.0, [(np.zeros(2), W0z), (P1, W1)]))
    labels, _ = rust_predict(model, X, 2, 6, "l3-hinge")
    assert labels[0].tolist() == [1, 3, 5, 0, 2, 4]
    labels, _ = rust_predict(model, X, 1, 6, "l3-hinge")
    assert labels[0].tolist() == [1, 3, 5, -1, -1, -1]


@pytest.mark.parametrize("n_rows", [1, 3])
def test_signed_zero_scores_tie_by_candidate_order(n_rows):
    W = np.array([[0.0, 0.0], [-1.0, 1.0]], np.float32)  # raw scores 0 * -1 = -0.0 and 0 * 1 = +0.0
    model = _pecos_rs.XLinearModel.from_bytes(ref.model_to_bytes(1, 0.0, [(np.zeros(2), W)]))
    labels, scores = rust_predict(model, np.zeros((n_rows, 1)), 2, 2, "noop")
    assert (scores == 0).all()
    assert (labels == [0, 1]).all()


@given(
    m=models(),
    data=st.data(),
    pp=st.sampled_from(POST_PROCESSORS),
    topk=st.integers(1, 10),
)
def test_wide_beam_equals_exhaustive_scoring(m, data, pp, topk):
    model, Ws, Ps, bias, d = m
    X = data.draw(queries(d))
    widest = max(p.size for p in Ps)
    labels, scores = rust_predict(model, X, widest + data.draw(st.integers(0, 3)), topk, pp, 2)
    n_labels = Ps[-1].size
    for i, x in enumerate(X):
        exhaustive = ref.exhaustive_scores(Ws, Ps, x, bias, pp)
        rl, rs = ref.topk_of_scores(exhaustive, topk)
        assert (labels[i] >= 0).sum() == min(topk, n_labels)
        ref.assert_rankings_match(labels[i], scores[i], rl, rs, lambda j: exhaustive[j], msg=f"row {i} {pp}")


# ------------------------------------------------------------------------ fitted models vs reference


@st.composite
def training_problems(draw, max_rows=30):
    parents = draw(trees(max_depth=3, max_width=6))
    n_labels = parents[-1].size
    n = draw(st.integers(1, max_rows))
    d = draw(st.integers(1, 6))
    X = draw(arrays(np.float32, (n, d), elements=st.one_of(st.just(0.0), st.floats(-1, 1, width=32))))
    Y = draw(arrays(np.float32, (n, n_labels), elements=st.sampled_from([0.0, 0.0, 1.0])))
    return parents, X, Y


def train_tree(parents, X, Y, n_threads=1, **kw):
    """The raw model trained over the tree `parents` (no pruning, a beam of 3 for MAN)."""
    params = dict(threshold=0.0, beam_size=3, n_threads=n_threads)
    params.update(kw)
    return raw_train(as_csr(X), as_csr(Y), [np.asarray(p, dtype=np.uint32) for p in parents], **params)


@given(
    prob=training_problems(),
    loss=st.sampled_from(["squared_hinge", "hinge", "logistic"]),
    ns=st.sampled_from(["tfn", "tfn+man"]),
    pp=st.sampled_from(POST_PROCESSORS),
    beam_size=st.integers(1, 4),
    topk=st.integers(1, 6),
    data=st.data(),
)
def test_fitted_model_matches_reference_beam_search(prob, loss, ns, pp, beam_size, topk, data):
    parents, X, Y = prob
    model = train_tree(parents, X, Y, loss=loss, negative_sampling=ns)
    Ws, Ps = ref.model_layers(model)
    for t, p in enumerate(parents):
        np.testing.assert_array_equal(Ps[t], p)
        assert Ws[t].shape == (X.shape[1] + 1, p.size)
    Q = data.draw(queries(X.shape[1]))
    labels, scores = rust_predict(model, Q, beam_size, topk, pp, 2)
    check_against_reference(model, Ws, Ps, model.bias, Q, beam_size, topk, pp, labels, scores)


# --------------------------------------------------------------------------------- invariances


@given(m=models(), data=st.data(), pp=st.sampled_from(POST_PROCESSORS), beam_size=st.integers(1, 4))
def test_row_order_invariance(m, data, pp, beam_size):
    model, Ws, Ps, bias, d = m
    X = data.draw(queries(d, max_rows=70))  # > 64 rows spans two parallel chunks
    perm = data.draw(st.permutations(range(X.shape[0])))
    perm = np.asarray(perm, dtype=np.int64)
    la, sa = rust_predict(model, X, beam_size, 5, pp, 2)
    lb, sb = rust_predict(model, X[perm], beam_size, 5, pp, 2)
    np.testing.assert_array_equal(lb, la[perm])
    assert sb.tobytes() == sa[perm].tobytes()


@given(m=models(), data=st.data(), pp=st.sampled_from(POST_PROCESSORS), beam_size=st.integers(1, 4))
def test_thread_count_invariance_of_predict(m, data, pp, beam_size):
    model, Ws, Ps, bias, d = m
    X = data.draw(queries(d, max_rows=200))
    la, sa = rust_predict(model, X, beam_size, 4, pp, 1)
    for n_threads in (2, 3):
        lb, sb = rust_predict(model, X, beam_size, 4, pp, n_threads)
        np.testing.assert_array_equal(la, lb)
        assert sa.tobytes() == sb.tobytes()


def assert_identical_models(a, b):
    assert a.to_bytes() == b.to_bytes()


@given(prob=training_problems(max_rows=40), loss=st.sampled_from(["squared_hinge", "hinge", "logistic"]),
       ns=st.sampled_from(["tfn", "tfn+man"]))
def test_thread_count_invariance_of_training(prob, loss, ns):
    parents, X, Y = prob
    assume(Y.any() and X.any())
    models_ = [train_tree(parents, X, Y, n_threads=t, loss=loss, negative_sampling=ns) for t in (1, 2, 3)]
    assert models_[0].nnz > 0, "the solver learned nothing"
    for m in models_[1:]:
        assert_identical_models(models_[0], m)


def test_thread_count_invariance_of_estimator_fit(planted):
    a = XRLinearClassifier(n_splits=2, max_leaf_size=4, n_jobs=1, negative_sampling="tfn+man").fit(planted.X, planted.Y)
    b = XRLinearClassifier(n_splits=2, max_leaf_size=4, n_jobs=2, negative_sampling="tfn+man").fit(planted.X, planted.Y)
    assert a.model_.nnz > 0, "the solver learned nothing"
    assert a.cluster_chain_ == b.cluster_chain_
    for t in range(a.model_.depth):
        for x, y in zip(a.model_.layer_weights(t)[:3], b.model_.layer_weights(t)[:3]):
            assert x.tobytes() == y.tobytes()


def test_training_is_reproducible_and_seeded(planted):
    kw = dict(n_splits=2, max_leaf_size=8)
    a = XRLinearClassifier(random_state=3, **kw).fit(planted.X, planted.Y)
    b = XRLinearClassifier(random_state=3, **kw).fit(planted.X, planted.Y)
    assert a.model_.nnz > 0, "the solver learned nothing"
    assert a.model_.to_bytes() == b.model_.to_bytes()


@given(m=models(), data=st.data(), pp=st.sampled_from(POST_PROCESSORS), beam_size=st.integers(1, 4),
       ks=st.lists(st.integers(1, 12), min_size=2, max_size=2, unique=True))
def test_topk_prefix_property(m, data, pp, beam_size, ks):
    model, Ws, Ps, bias, d = m
    X = data.draw(queries(d))
    k1, k2 = sorted(ks)
    for rows in (X, X[:1]):
        la, sa = rust_predict(model, rows, beam_size, k1, pp, 2)
        lb, sb = rust_predict(model, rows, beam_size, k2, pp, 2)
        np.testing.assert_array_equal(la, lb[:, :k1])
        assert sa.tobytes() == np.ascontiguousarray(sb[:, :k1]).tobytes()


@given(m=models(), data=st.data(), pp=st.sampled_from(POST_PROCESSORS))
def test_scores_sorted_and_padding(m, data, pp):
    model, Ws, Ps, bias, d = m
    X = data.draw(queries(d))
    beam_size, topk = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 12))
    labels, scores = rust_predict(model, X, beam_size, topk, pp, 1)
    assert np.isfinite(scores).all()
    n_labels = Ps[-1].size
    for row_l, row_s in zip(labels, scores):
        valid = row_l >= 0
        n_valid = valid.sum()
        assert valid[:n_valid].all() and not valid[n_valid:].any(), "padding is not at the end"
        assert (row_s[n_valid:] == 0).all()
        assert (np.diff(row_s[:n_valid]) <= 0).all()
        assert (row_l[valid] < n_labels).all() and len(set(row_l[valid].tolist())) == n_valid


@given(m=models(), data=st.data(), pp=st.sampled_from(POST_PROCESSORS))
def test_save_load_gives_identical_scores(m, data, pp, tmp_path_factory):
    model, Ws, Ps, bias, d = m
    X = data.draw(queries(d))
    path = tmp_path_factory.mktemp("m") / "model.bin"
    model.save(str(path))
    for other in (_pecos_rs.XLinearModel.load(str(path)), _pecos_rs.XLinearModel.from_bytes(model.to_bytes())):
        la, sa = rust_predict(model, X, 3, 5, pp, 2)
        lb, sb = rust_predict(other, X, 3, 5, pp, 2)
        np.testing.assert_array_equal(la, lb)
        assert sa.tobytes() == sb.tobytes()


# ------------------------------------------------------------------------------ pruning options


@given(prob=training_problems(), threshold=st.sampled_from([0.01, 0.05, 0.1, 0.3]),
       loss=st.sampled_from(["squared_hinge", "hinge", "logistic"]))
def test_threshold_prunes_the_unpruned_solution(prob, threshold, loss):
    """Under TFN, training rows do not depend on weights, so pruning commutes with training."""
    parents, X, Y = prob
    full = ref.model_layers(train_tree(parents, X, Y, loss=loss))[0]
    pruned = ref.model_layers(train_tree(parents, X, Y, loss=loss, threshold=threshold))[0]
    assume(any(np.count_nonzero(W) for W in full))
    for W0, Wt in zip(full, pruned):
        expected = np.where(np.abs(W0) >= np.float32(threshold), W0, 0)
        np.testing.assert_array_equal(Wt, expected)


def _cap_reference(W, cap):
    """Keep the `cap` largest |w| per column, the bias (last row) ranking after every feature on ties."""
    out = np.zeros_like(W)
    for c in range(W.shape[1]):
        nz = np.flatnonzero(W[:, c])
        if nz.size <= cap:
            out[nz, c] = W[nz, c]
            continue
        order = sorted(nz, key=lambda r: (-abs(float(W[r, c])), r))[:cap]
        out[order, c] = W[order, c]
    return out


@given(prob=training_problems(), cap=st.integers(1, 4))
def test_max_nonzeros_per_label_keeps_the_largest(prob, cap):
    parents, X, Y = prob
    full = ref.model_layers(train_tree(parents, X, Y))[0]
    capped = ref.model_layers(train_tree(parents, X, Y, max_nonzeros_per_label=cap))[0]
    assume(any(np.count_nonzero(W) for W in full))
    for W0, Wc in zip(full, capped):
        np.testing.assert_array_equal(Wc, _cap_reference(W0, cap))
        assert (np.count_nonzero(Wc, axis=0) <= cap).all()


def test_pruning_is_not_vacuous(planted):
    X, Y = planted.X, planted.Y
    full = train_tree([np.zeros(planted.n_labels)], X, Y)
    pruned = train_tree([np.zeros(planted.n_labels)], X, Y, threshold=0.1)
    capped = train_tree([np.zeros(planted.n_labels)], X, Y, max_nonzeros_per_label=2)
    assert full.nnz > pruned.nnz > 0
    assert full.nnz > capped.nnz > 0
    assert capped.nnz <= 2 * planted.n_labels


# ---------------------------------------------------------------------------- solver vs reference


@st.composite
def binary_problems(draw):
    n = draw(st.integers(6, 25))
    d = draw(st.integers(1, 5))
    X = draw(arrays(np.float32, (n, d), elements=st.floats(-1, 1, width=32, allow_subnormal=False)))
    y = draw(arrays(np.float32, (n, 2), elements=st.sampled_from([0.0, 1.0])))
    return X, y


SOLVER_KW = dict(tol=1e-5, max_iter=20000, threshold=0.0)


@given(
    prob=binary_problems(),
    loss=st.sampled_from(["squared_hinge", "logistic", "hinge"]),
    cp=st.sampled_from([0.5, 1.0, 2.0]),
    cn=st.sampled_from([0.5, 1.0, 4.0]),
    bias=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_solver_matches_reference_primal(prob, loss, cp, cn, bias):
    X, Y = prob
    model = train_tree([np.zeros(Y.shape[1])], X, Y, loss=loss, Cp=cp, Cn=cn, bias=bias, **SOLVER_KW)
    W = ref.model_layers(model)[0][0].astype(np.float64)
    for j in range(Y.shape[1]):
        w_ref = ref.solve_primal(X, Y[:, j], loss, Cp=cp, Cn=cn, bias=bias)
        f_ref = ref.primal_objective(w_ref, X, Y[:, j], loss, Cp=cp, Cn=cn, bias=bias)
        f_rust = ref.primal_objective(W[:, j], X, Y[:, j], loss, Cp=cp, Cn=cn, bias=bias)
        note(f"label {j}: rust {W[:, j]} f={f_rust}; reference {w_ref} f={f_ref}")
        assert f_rust <= f_ref + 1e-3 * max(1.0, f_ref), "the solver's objective is worse than the optimum"
        if bias == 0:
            assert W[-1, j] == 0
        if loss != "hinge":
            np.testing.assert_allclose(W[:, j], w_ref, atol=1e-3 * max(1.0, np.abs(w_ref).max()))


@pytest.mark.parametrize("loss", ["squared_hinge", "hinge"])
def test_solver_matches_liblinear(planted, loss):
    """sklearn's LinearSVC is LIBLINEAR's dual CD with a regularised intercept: the same problem."""
    from sklearn.svm import LinearSVC

    X, Y = planted.X[:150], planted.Y[:150, :5].toarray()
    model = train_tree([np.zeros(5)], X, Y, loss=loss, Cp=2.0, Cn=0.5, **SOLVER_KW)
    W = ref.model_layers(model)[0][0]
    assert np.count_nonzero(W) > 0
    for j in range(5):
        svc = LinearSVC(C=1.0, loss=loss, dual=True, tol=1e-8, max_iter=200000, intercept_scaling=1.0,
                        class_weight={1: 2.0, 0: 0.5}).fit(X, Y[:, j].astype(int))
        w_svc = np.r_[svc.coef_.ravel(), svc.intercept_]
        f_svc = ref.primal_objective(w_svc, X, Y[:, j], loss, Cp=2.0, Cn=0.5)
        f_rust = ref.primal_objective(W[:, j], X, Y[:, j], loss, Cp=2.0, Cn=0.5)
        assert f_rust <= f_svc + 1e-3 * max(1.0, f_svc)
        if loss == "squared_hinge":
            np.testing.assert_allclose(W[:, j], w_svc, atol=2e-3)


def test_solver_is_deterministic_across_label_order(planted):
    """Each problem is solved on its own: permuting the labels permutes the weight columns."""
    X, Y = planted.X, planted.Y[:, :8].toarray()
    perm = np.array([3, 0, 7, 1, 6, 2, 5, 4])
    a = ref.model_layers(train_tree([np.zeros(8)], X, Y, **SOLVER_KW))[0][0]
    b = ref.model_layers(train_tree([np.zeros(8)], X, Y[:, perm], **SOLVER_KW))[0][0]
    assert np.count_nonzero(a) > 0
    np.testing.assert_allclose(b, a[:, perm], atol=1e-4)

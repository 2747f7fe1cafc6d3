"""Pruning a fitted model (XRLinearClassifier.prune) and ensembles of trees (n_trees)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

from helpers import load_xmc
from pecos_rs import InvalidInputError, InvalidParameterError, XRLinearClassifier
from pecos_rs import _pecos_rs
from pecos_rs._sparse import csr_args

TREE = dict(n_splits=2, max_leaf_size=8)  # 40 labels -> layers [2, 4, 8, 40]


def weights(model, t):
    """Layer `t`'s CSC arrays, exactly as the model holds them."""
    indptr, indices, data, shape = model.layer_weights(t)
    return indptr, indices, data, shape


def assert_bit_identical(a, b):
    """Same models: every layer's weight arrays equal bit for bit, the same tree."""
    assert a.depth == b.depth
    for t in range(a.depth):
        (pa, ia, da, sa), (pb, ib, db, sb) = weights(a, t), weights(b, t)
        assert sa == sb
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(ia, ib)
        assert da.tobytes() == db.tobytes(), f"layer {t} weights differ"
        np.testing.assert_array_equal(a.layer_parents(t), b.layer_parents(t))


def assert_same_predictions(a, b, X, **kw):
    la, sa = a.predict_topk(X, **kw)
    lb, sb = b.predict_topk(X, **kw)
    np.testing.assert_array_equal(la, lb)
    assert sa.tobytes() == sb.tobytes()


@pytest.fixture(scope="module")
def loose(planted):
    """Fitted with a low threshold, so that pruning has weights to drop."""
    return XRLinearClassifier(**TREE, threshold=0.01).fit(planted.X, planted.Y)


# -------------------------------------------------------------------------------------- prune


@pytest.mark.parametrize(
    "threshold, cap",
    [(0.01, None), (0.05, None), (0.1, None), (0.3, None), (0.01, 8), (0.1, 4), (0.2, 1)],
)
def test_pruned_equals_fitted_at_that_setting(planted, loose, threshold, cap):
    pruned = loose.prune(threshold=threshold, max_nonzeros_per_label=cap)
    direct = XRLinearClassifier(**TREE, threshold=threshold, max_nonzeros_per_label=cap).fit(
        planted.X, planted.Y
    )
    assert_bit_identical(pruned.model_, direct.model_)
    assert_same_predictions(pruned, direct, planted.X_test)
    assert_same_predictions(pruned, direct, planted.X_test[:1])  # the single-query path
    assert pruned.get_params() == direct.get_params()


def test_pruning_a_capped_model_further(planted):
    capped = XRLinearClassifier(**TREE, threshold=0.02, max_nonzeros_per_label=10).fit(planted.X, planted.Y)
    pruned = capped.prune(threshold=0.05, max_nonzeros_per_label=3)
    direct = XRLinearClassifier(**TREE, threshold=0.05, max_nonzeros_per_label=3).fit(planted.X, planted.Y)
    assert_bit_identical(pruned.model_, direct.model_)
    # None keeps the fitted value.
    assert capped.prune(threshold=0.05).max_nonzeros_per_label == 10
    assert capped.prune(max_nonzeros_per_label=4).threshold == 0.02


def test_nnz_decreases_monotonically_and_the_original_is_untouched(planted, loose):
    before = loose.model_.nnz
    original_weights = weights(loose.model_, loose.model_.depth - 1)
    nnz = [loose.model_.nnz]
    for threshold in [0.02, 0.05, 0.1, 0.2, 0.4, 0.8]:
        nnz.append(loose.prune(threshold=threshold).model_.nnz)
    for cap in [20, 10, 5, 2, 1]:
        nnz.append(loose.prune(threshold=0.1, max_nonzeros_per_label=cap).model_.nnz)
    assert nnz[1:7] == sorted(nnz[1:7], reverse=True) and nnz[0] >= nnz[1]
    assert nnz[7:] == sorted(nnz[7:], reverse=True) and nnz[7] <= nnz[3]
    assert nnz[-1] < nnz[0]
    assert loose.model_.nnz == before and loose.threshold == 0.01
    after = weights(loose.model_, loose.model_.depth - 1)
    assert all(np.array_equal(x, y) for x, y in zip(original_weights[:3], after[:3]))


def test_pruned_is_a_new_estimator_with_the_new_params(loose):
    pruned = loose.prune(threshold=0.2, max_nonzeros_per_label=5)
    assert pruned is not loose and pruned.model_ is not loose.model_
    assert pruned.get_params()["threshold"] == 0.2
    assert pruned.get_params()["max_nonzeros_per_label"] == 5
    assert loose.get_params()["threshold"] == 0.01
    assert loose.get_params()["max_nonzeros_per_label"] is None
    assert pruned.n_features_in_ == loose.n_features_in_
    np.testing.assert_array_equal(pruned.classes_, loose.classes_)
    # Refitting the pruned estimator's clone trains at the new setting.
    assert clone(pruned).threshold == 0.2


def test_tfn_man_prunes_without_error_but_is_not_bit_identical_by_contract(planted):
    loose = XRLinearClassifier(**TREE, threshold=0.01, negative_sampling="tfn+man").fit(planted.X, planted.Y)
    pruned = loose.prune(threshold=0.1)
    assert pruned.model_.nnz <= loose.model_.nnz
    assert pruned.predict_topk(planted.X_test)[0].shape == (150, 10)


def test_pruned_model_saves_loads_and_pickles(planted, loose, tmp_path):
    pruned = loose.prune(threshold=0.1, max_nonzeros_per_label=4)
    pruned.save(tmp_path / "m")
    back = XRLinearClassifier.load(tmp_path / "m")
    assert_bit_identical(back.model_, pruned.model_)
    assert back.get_params() == pruned.get_params()
    assert_same_predictions(back, pruned, planted.X_test)
    assert_same_predictions(pickle.loads(pickle.dumps(pruned)), pruned, planted.X_test)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(threshold=0.005), "threshold must be >= the fitted threshold 0.01"),
        (dict(threshold=float("nan")), "threshold must be a finite number >= 0"),
        (dict(threshold=-0.1), "threshold must be a finite number >= 0"),
        (dict(threshold=float("inf")), "threshold must be a finite number >= 0"),
        (dict(threshold="0.2"), "threshold must be a finite number >= 0"),
        (dict(max_nonzeros_per_label=0), "max_nonzeros_per_label must be None or an integer >= 1"),
        (dict(max_nonzeros_per_label=-3), "max_nonzeros_per_label must be None or an integer >= 1"),
        (dict(max_nonzeros_per_label=2.5), "max_nonzeros_per_label must be None or an integer >= 1"),
    ],
)
def test_prune_refuses_invalid_or_looser_settings(loose, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message.replace("(", r"\(")) as info:
        loose.prune(**kwargs)
    assert isinstance(info.value, ValueError)
    assert loose.threshold == 0.01 and loose.max_nonzeros_per_label is None


def test_prune_refuses_a_cap_above_the_fitted_one(planted):
    capped = XRLinearClassifier(**TREE, max_nonzeros_per_label=5).fit(planted.X, planted.Y)
    with pytest.raises(InvalidParameterError, match="must be <= the fitted max_nonzeros_per_label 5"):
        capped.prune(max_nonzeros_per_label=6)
    assert capped.prune(max_nonzeros_per_label=5).model_.nnz == capped.model_.nnz


def test_prune_needs_a_fitted_estimator():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        XRLinearClassifier().prune(threshold=0.5)


def test_raw_pruned_checks_its_params(loose):
    model = loose.model_
    with pytest.raises(InvalidParameterError, match="threshold must be a finite number >= 0"):
        model.pruned({"threshold": -1.0, "max_nonzeros_per_label": None}, n_threads=1)
    with pytest.raises(InvalidParameterError, match="beam is not a known parameter"):
        model.pruned({"threshold": 0.1, "max_nonzeros_per_label": None, "beam": 3}, n_threads=1)
    one, two = (model.pruned({"threshold": 0.1, "max_nonzeros_per_label": 3}, n_threads=n) for n in (1, 2))
    assert_bit_identical(one, two)


# ----------------------------------------------------------------------------------- ensembles


def mean_of(score_matrices):
    """PECOS's average ensemble: (S_0 + ... + S_{n-1}) / n, in float32, summed in tree order (scipy's
    `S / n` multiplies by 1 / n, one rounding more: the data are divided here)."""
    total = score_matrices[0]
    for S in score_matrices[1:]:
        total = total + S
    total = sp.csr_matrix(total, dtype=np.float32)
    total.data = total.data / np.float32(len(score_matrices))
    return total


def mean_of_singles(singles, X, k, **kw):
    """The average ensemble of the single models' top-k."""
    return mean_of([single.predict_scores(X, k, **kw) for single in singles])


def assert_topk_is_mean(labels, scores, mean, k):
    """Each row of (labels, scores) is the top-k of that row of `mean` (equal means by label)."""
    mean = sp.csr_matrix(mean)
    for i in range(mean.shape[0]):
        row = mean.getrow(i)
        order = np.lexsort((row.indices, -row.data))[:k]
        expected_labels = row.indices[order]
        n = len(expected_labels)
        np.testing.assert_array_equal(labels[i, :n], expected_labels, err_msg=f"row {i}")
        assert scores[i, :n].tobytes() == row.data[order].astype(np.float32).tobytes(), f"row {i}"
        assert (labels[i, n:] == -1).all() and (scores[i, n:] == 0).all()


@pytest.fixture(scope="module")
def singles(planted):
    return [XRLinearClassifier(**TREE, random_state=seed).fit(planted.X, planted.Y) for seed in range(3)]


@pytest.fixture(scope="module")
def ensemble(planted):
    return XRLinearClassifier(**TREE, n_trees=3).fit(planted.X, planted.Y)


def test_one_tree_is_the_single_model(planted, singles):
    one = XRLinearClassifier(**TREE, n_trees=1).fit(planted.X, planted.Y)
    assert_bit_identical(one.model_, singles[0].model_)
    assert len(one.models_) == 1 and one.models_[0] is one.model_
    assert_same_predictions(one, singles[0], planted.X_test)


def test_each_tree_is_the_single_model_of_its_seed(ensemble, singles):
    assert len(ensemble.models_) == 3 and ensemble.models_[0] is ensemble.model_
    for tree, single in zip(ensemble.models_, singles):
        assert_bit_identical(tree, single.model_)
    # The trees really differ (else the ensemble would be pointless).
    assert not all(
        np.array_equal(ensemble.models_[0].layer_parents(t), ensemble.models_[1].layer_parents(t))
        for t in range(ensemble.model_.depth)
    )


@pytest.mark.parametrize("k", [1, 5, 10])
def test_ensemble_scores_are_the_mean_of_the_single_models(planted, ensemble, singles, k):
    labels, scores = ensemble.predict_topk(planted.X_test, k)
    assert_topk_is_mean(labels, scores, mean_of_singles(singles, planted.X_test, k), k)
    for i in range(5):  # the single-query path
        row_labels, row_scores = ensemble.predict_topk(planted.X_test[i : i + 1], k)
        np.testing.assert_array_equal(row_labels[0], labels[i])
        assert row_scores[0].tobytes() == scores[i].tobytes()


def test_ensemble_search_params_apply_to_every_tree(planted, ensemble, singles):
    kw = dict(beam_size=2, post_processor="sigmoid")
    labels, scores = ensemble.predict_topk(planted.X_test, 4, **kw)
    assert_topk_is_mean(labels, scores, mean_of_singles(singles, planted.X_test, 4, **kw), 4)


def test_ensemble_with_label_ranges_merges_the_filtered_trees(planted, ensemble):
    ranges = np.tile(np.array([[8, 20]], dtype=np.int64), (len(planted.X_test.indptr) - 1, 1))
    labels, scores = ensemble.predict_topk(planted.X_test, 5, label_ranges=ranges)
    valid = labels >= 0
    assert ((labels[valid] >= 8) & (labels[valid] < 20)).all()
    per_tree = [
        tree.predict_topk(
            csr_args(planted.X_test),
            _pecos_rs.SearchParams({"beam_size": 10, "topk": 5, "post_processor": "l3-hinge"}),
            n_threads=1,
            label_ranges=ranges.astype(np.uint32),
        )
        for tree in ensemble.models_
    ]
    n = planted.X_test.shape[0]
    as_csr = [
        sp.csr_matrix((s[l >= 0], l[l >= 0], np.r_[0, np.cumsum((l >= 0).sum(1))]), shape=(n, 40))
        for l, s in per_tree
    ]
    assert_topk_is_mean(labels, scores, mean_of(as_csr), 5)


def test_ensemble_is_deterministic_across_thread_counts(planted, ensemble):
    two = XRLinearClassifier(**TREE, n_trees=3, n_jobs=2).fit(planted.X, planted.Y)
    for a, b in zip(ensemble.models_, two.models_):
        assert_bit_identical(a, b)
    assert_same_predictions(ensemble, two, planted.X_test)  # 1 and 2 prediction threads


def test_ensemble_predict_and_proba_use_the_mean(planted, ensemble):
    P = ensemble.predict_proba(planted.X_test)
    labels, scores = ensemble.predict_topk(planted.X_test)
    rows = np.arange(len(labels))[:, None]
    valid = labels >= 0
    np.testing.assert_allclose(P[rows, np.where(valid, labels, 0)][valid], scores[valid], rtol=1e-6)
    assert ensemble.predict(planted.X_test).shape == (150, 40)


def test_ensemble_save_load_and_pickle(planted, ensemble, tmp_path):
    ensemble.save(tmp_path / "e")
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [
        "classes.npy", "estimator.json", "model.bin", "model.tree1.bin", "model.tree2.bin"
    ]
    back = XRLinearClassifier.load(tmp_path / "e")
    assert back.n_trees == 3 and len(back.models_) == 3
    for a, b in zip(back.models_, ensemble.models_):
        assert_bit_identical(a, b)
    assert_same_predictions(back, ensemble, planted.X_test)
    unpickled = pickle.loads(pickle.dumps(ensemble))
    assert unpickled.models_[0] is unpickled.model_
    assert_same_predictions(unpickled, ensemble, planted.X_test)


def test_a_missing_tree_file_is_reported(ensemble, tmp_path):
    ensemble.save(tmp_path / "e")
    (tmp_path / "e" / "model.tree2.bin").unlink()
    with pytest.raises(FileNotFoundError):
        XRLinearClassifier.load(tmp_path / "e")


def test_models_saved_before_ensembles_still_load(planted, singles, tmp_path):
    single = singles[0]
    single.save(tmp_path / "old")
    meta_file = tmp_path / "old" / "estimator.json"
    meta = json.loads(meta_file.read_text())
    del meta["params"]["n_trees"]  # what a save from before n_trees holds
    meta_file.write_text(json.dumps(meta))
    back = XRLinearClassifier.load(tmp_path / "old")
    assert back.n_trees == 1 and len(back.models_) == 1 and back.models_[0] is back.model_
    assert_same_predictions(back, single, planted.X_test)
    # An estimator pickled before ensembles holds model_ only.
    state = dict(single.__getstate__())  # a copy: the state may be the estimator's own __dict__
    del state["models_"]
    old = XRLinearClassifier.__new__(XRLinearClassifier)
    old.__setstate__(state)
    assert_same_predictions(old, single, planted.X_test)


def test_pruning_an_ensemble_prunes_every_tree(planted, singles):
    loose = XRLinearClassifier(**TREE, threshold=0.02, n_trees=3).fit(planted.X, planted.Y)
    pruned = loose.prune(threshold=0.1)
    for tree, single in zip(pruned.models_, singles):
        assert_bit_identical(tree, single.model_)
    assert pruned.model_ is pruned.models_[0]
    labels, scores = pruned.predict_topk(planted.X_test, 5)
    assert_topk_is_mean(labels, scores, mean_of_singles(singles, planted.X_test, 5), 5)


def test_n_trees_must_be_an_integer_at_least_one(planted):
    # test_bad_input.py tries more bad values; this one checks the wording.
    with pytest.raises(InvalidParameterError, match="n_trees must be an integer >= 1, got 0"):
        XRLinearClassifier(**TREE, n_trees=0).fit(planted.X, planted.Y)


def test_n_trees_accepts_numpy_integers(planted):
    clf = XRLinearClassifier(**TREE, n_trees=np.int64(2)).fit(planted.X, planted.Y)
    assert len(clf.models_) == 2


def test_a_given_cluster_chain_needs_one_tree(planted, singles):
    with pytest.raises(InvalidParameterError, match="n_trees must be 1 with a given cluster_chain"):
        XRLinearClassifier(**TREE, n_trees=2).fit(planted.X, planted.Y, cluster_chain=singles[0].cluster_chain_)


def test_seeds_wrap_around_at_two_to_the_64(planted):
    top = 2**64 - 1
    clf = XRLinearClassifier(**TREE, n_trees=2, random_state=top).fit(planted.X, planted.Y)
    wrapped = XRLinearClassifier(**TREE, random_state=0).fit(planted.X, planted.Y)
    assert_bit_identical(clf.models_[1], wrapped.model_)


def test_raw_ensemble_calls_check_their_inputs(planted, ensemble):
    params = _pecos_rs.SearchParams({"beam_size": 10, "topk": 5, "post_processor": "l3-hinge"})
    with pytest.raises(InvalidInputError, match="at least one tree"):
        _pecos_rs.XLinearModel.predict_topk_ensemble([], csr_args(planted.X_test), params, n_threads=1)
    flat = XRLinearClassifier(max_leaf_size=100).fit(planted.X, planted.Y[:, :30])
    with pytest.raises(InvalidInputError, match="must share their labels"):
        _pecos_rs.XLinearModel.predict_topk_ensemble(
            [ensemble.model_, flat.model_], csr_args(planted.X_test), params, n_threads=1
        )
    with pytest.raises(InvalidInputError, match="2 cluster chains for n_trees=3"):
        _pecos_rs.XLinearModel.train_ensemble(
            csr_args(planted.X), csr_args(sp.csr_matrix(planted.Y, dtype=np.float32)),
            [ensemble.cluster_chain_.assignments] * 2,
            {**clone(ensemble)._core_params()}, n_threads=1,
        )


def test_verbose_fit_names_the_trees(planted, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="pecos_rs"):
        XRLinearClassifier(**TREE, n_trees=2, verbose=1).fit(planted.X, planted.Y)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("tree 2/2: indexing") for m in messages)
    assert any(m.startswith("tree 1/2: training layer 1/") for m in messages)


@pytest.mark.slow
def test_real_data_ensemble_is_at_least_as_precise():
    from helpers import precision_at_1

    X, Y = load_xmc("bibtex", "trn")
    Xt, Yt = load_xmc("bibtex", "tst")
    single = XRLinearClassifier(n_jobs=2).fit(X, Y)
    ensemble = XRLinearClassifier(n_trees=3, n_jobs=2).fit(X, Y)
    p1, p3 = precision_at_1(Yt, single.predict_topk(Xt)[0]), precision_at_1(Yt, ensemble.predict_topk(Xt)[0])
    assert p3 >= p1 - 0.005, (p1, p3)

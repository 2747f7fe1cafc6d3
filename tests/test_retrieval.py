"""TextXRLinear (raw text in, named labels out), its label-text matcher, merge_topk, and models
built from given weights (XLinearModel.from_weight_columns)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline

from pecos_rs import (InvalidInputError, InvalidParameterError, ModelFormatError, TextXRLinear,
                      XRLinearClassifier, _pecos_rs)
from pecos_rs._sparse import csr_args
from pecos_rs.retrieval import DEFAULT_FEATURES, merge_topk
from pecos_rs.text import TextFeaturizer
from pecos_rs.xlinear import _search_params

WORDS = ("drill", "cordless", "hammer", "claw", "garden", "hose", "nozzle", "paint", "brush",
         "roller", "ladder", "step", "saw", "blade", "tape", "measure", "glue", "wood", "lamp", "bulb")


def make_catalogue(n_labels=30, n_texts=200, seed=0):
    """Products named p00.. with three-word titles; queries of two title words of 1-2 products;
    the last 5 products have no query (cold start) but a title."""
    rng = np.random.default_rng(seed)
    names = [f"p{j:02d}" for j in range(n_labels)]
    title_words = [list(rng.choice(WORDS, size=3, replace=False)) for _ in names]
    titles = [" ".join(words) for words in title_words]
    texts, labels = [], []
    for _ in range(n_texts):
        chosen = rng.choice(n_labels - 5, size=rng.integers(1, 3), replace=False)
        words = [w for j in chosen for w in rng.choice(title_words[j], size=2, replace=False)]
        texts.append(" ".join(words))
        labels.append([names[j] for j in chosen])
    return texts, labels, names, titles


@pytest.fixture(scope="module")
def catalogue():
    return make_catalogue()


def small_classifier(**kw):
    return XRLinearClassifier(**{"n_splits": 2, "max_leaf_size": 4, "threshold": 0.0, **kw})


def as_text_model_trains(featurizer):
    """small_classifier() as TextXRLinear trains it on `featurizer`'s rows: its two top layers
    (coarse) on the word block, its solver tolerance and beam width TextXRLinear's."""
    return small_classifier(coarse_layers=2, coarse_n_features=featurizer.blocks_[0][1].tfidf_model_.n_columns,
                            tol=TextXRLinear().tol, beam_size=TextXRLinear().beam_size)


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_equals_featurizer_and_classifier_composed_by_hand(catalogue, n_jobs):
    # With n_jobs=2 the default featurizer and the classifier run on two threads, the hand-made
    # ones on one: the scores must not change.
    texts, labels, names, _ = catalogue
    model = TextXRLinear(classifier=small_classifier(n_jobs=n_jobs), centroid_weight=0.0,
                         neighbour_weight=0.0, label_name_weight=0.0, co_click_weight=0.0).fit(texts, labels)
    assert list(model.labels_) == sorted({n for row in labels for n in row})
    assert model.matcher_ is None and model.centroid_matcher_ is None and model.co_click_matrix_ is None
    featurizer = TextFeaturizer(blocks=DEFAULT_FEATURES).fit(texts)
    Y = sp.csr_matrix(
        [[float(name in row) for name in model.labels_] for row in labels], dtype=np.float32)
    clf = as_text_model_trains(featurizer).fit(featurizer.transform(texts), Y)
    got_labels, got_scores = model.predict_topk(texts[:50], 5)
    want_labels, want_scores = clf.predict_topk(featurizer.transform(texts[:50]), 5)
    np.testing.assert_array_equal(got_labels, want_labels)
    np.testing.assert_array_equal(got_scores, want_scores)
    # A scikit-learn Pipeline of the two parts keeps working and agrees.
    pipe = Pipeline([("features", TextFeaturizer(blocks=DEFAULT_FEATURES)), ("model", small_classifier())]).fit(texts, Y)
    by_hand = small_classifier().fit(featurizer.transform(texts), Y)
    assert (pipe.predict(texts[:50]) != by_hand.predict(featurizer.transform(texts[:50]))).nnz == 0


def test_label_texts_blend_the_model_with_the_exact_title_match(catalogue):
    texts, labels, names, titles = catalogue
    w = 0.4
    model = TextXRLinear(classifier=small_classifier(), label_text_weight=w, centroid_weight=0.0,
                         neighbour_weight=0.0, match_candidates=20, text_weight_C=None).fit(
        texts, labels, label_names=names, label_texts=titles)
    assert list(model.labels_) == names
    # By hand: featurizer over texts and titles, titles as extra rows, cosine to every title.
    featurizer = TextFeaturizer(blocks=DEFAULT_FEATURES).fit(texts + titles)
    X, T = featurizer.transform(texts), featurizer.transform(titles)
    Y = sp.csr_matrix([[float(n in row) for n in names] for row in labels], dtype=np.float32)
    clf = as_text_model_trains(featurizer).fit(
        sp.vstack([X, T]).tocsr(), sp.vstack([Y, sp.identity(len(names))]).tocsr())
    queries = texts[:40] + ["garden hose nozzle", "zzz unknown words", ""]
    Q = featurizer.transform(queries)
    model_labels, model_scores = clf.predict_topk(Q, 20)
    cosine = (Q @ T.T).toarray()
    got_labels, got_scores = model.predict_topk(queries, 8)
    for i in range(len(queries)):
        expected = {}
        for j, s in zip(model_labels[i], model_scores[i]):
            if j >= 0:
                expected[j] = (1 - w) * s
        for j in np.argsort(-cosine[i], kind="stable")[:20]:
            expected[j] = expected.get(j, 0.0) + w * cosine[i, j]
        best = sorted(expected.items(), key=lambda e: (-e[1], e[0]))[:8]
        found = got_labels[i] >= 0
        np.testing.assert_allclose(got_scores[i][found], [s for _, s in best][: found.sum()], rtol=1e-5, atol=1e-6)
        assert found.sum() == min(8, len(expected))


@pytest.mark.parametrize("max_df", [1000, 3, 0.1, 1.0])
def test_the_centroid_matcher_blends_the_cosine_to_each_label_centroid(catalogue, max_df):
    from pecos_rs import pifa

    texts, labels, names, titles = catalogue
    wt, wc = 0.3, 0.2
    model = TextXRLinear(classifier=small_classifier(), label_text_weight=wt, centroid_weight=wc,
                         centroid_max_df=max_df, neighbour_weight=0.0, label_name_weight=0.0, match_candidates=15,
                         text_weight_C=None).fit(
        texts, labels, label_names=names, label_texts=titles)
    featurizer = TextFeaturizer(blocks=DEFAULT_FEATURES).fit(texts + titles)
    X, T = featurizer.transform(texts), featurizer.transform(titles)
    Y = sp.csr_matrix([[float(n in row) for n in names] for row in labels], dtype=np.float32)
    clf = as_text_model_trains(featurizer).fit(
        sp.vstack([X, T]).tocsr(), sp.vstack([Y, sp.identity(len(names))]).tocsr())
    queries = texts[:30] + ["hose nozzle garden", ""]
    Q = featurizer.transform(queries)
    model_labels, model_scores = clf.predict_topk(Q, 15)
    parts = [(1 - wt - wc, model_labels, model_scores)]
    centroids = pifa(Y, X).toarray()  # the centroids: PIFA of the texts only
    labels_with_feature = (centroids != 0).sum(axis=0)
    limit = max_df * len(names) if isinstance(max_df, float) else max_df
    centroids[:, labels_with_feature > limit] = 0  # common features dropped, not renormalised
    assert (labels_with_feature > limit).any() == (max_df in (3, 0.1))
    for weight, M in ((wt, T), (wc, sp.csr_matrix(centroids))):
        cosine = (Q @ M.T).toarray()
        top = np.argsort(-cosine, axis=1, kind="stable")[:, :15]
        parts.append((weight, top, np.take_along_axis(cosine, top, 1)))
    got_labels, got_scores = model.predict_topk(queries, 6)
    for i in range(len(queries)):
        expected = {}
        for weight, lab, sc in parts:
            for j, v in zip(lab[i], sc[i]):
                if j >= 0:
                    expected[j] = expected.get(j, 0.0) + weight * v
        best = sorted(expected.values(), reverse=True)[:6]
        found = got_labels[i] >= 0
        np.testing.assert_allclose(got_scores[i][found], best[: found.sum()], rtol=1e-5, atol=1e-6)
    assert model.centroid_matcher_.n_labels == len(names)
    with pytest.raises(InvalidParameterError, match="at most 1"):
        TextXRLinear(label_text_weight=0.7, centroid_weight=0.4).fit(texts, labels, label_names=names,
                                                                     label_texts=titles)


def test_learned_text_weights_discount_a_misleading_word():
    """Every title and query holds a colour; a query's colour is random, not that of its product.
    The plain cosine rewards the colour match; the learned weights must discount the colour
    words (weight < 1) against the product words (> 1 on average)."""
    rng = np.random.default_rng(0)
    colours = ["red", "blue", "green", "black", "white", "grey"]
    names = [f"p{j:02d}" for j in range(60)]
    title_words = [list(rng.choice(WORDS, size=2, replace=False)) for _ in names]
    titles = [f"{' '.join(w)} {colours[j % 6]}" for j, w in enumerate(title_words)]
    titles[0] += " zephyr"

    def queries(n):
        texts, labels = [], []
        for _ in range(n):
            j = rng.integers(len(names))
            texts.append(f"{title_words[j][rng.integers(2)]} {colours[rng.integers(6)]}")
            labels.append([names[j]])
        return texts, labels

    train = queries(600)
    kw = {"classifier": small_classifier(), "label_text_weight": 1.0, "centroid_weight": 0.0, "neighbour_weight": 0.0}
    learned = TextXRLinear(**kw).fit(*train, label_names=names, label_texts=titles)
    plain = TextXRLinear(**kw, text_weight_C=None).fit(*train, label_names=names, label_texts=titles)
    # The learned weights are folded into the matcher: its weights over the plain one's.
    features = learned.featurizer_.get_feature_names_out()
    def weights(matcher):
        indptr, indices, data, shape = matcher.layer_weights(0)
        return sp.csc_matrix((data, indices, indptr), shape=shape).tocsr()

    a, b = weights(learned.matcher_), weights(plain.matcher_)
    rows, cols = b.nonzero()
    ratio = {features[f]: a[f, c] / b[f, c] for f, c in zip(rows, cols)}
    assert ratio["word__red"] < 1 and ratio["word__blue"] < 1
    assert np.mean([ratio[f"word__{w}"] for w in WORDS if f"word__{w}" in ratio]) > 1
    # A title word no training query has never overlaps in a pair: it keeps weight 1 exactly.
    assert ratio["word__zephyr"] == 1.0


def test_a_label_without_training_texts_is_found_by_its_title(catalogue):
    texts, labels, names, titles = catalogue
    model = TextXRLinear(classifier=small_classifier(), label_text_rows=False, label_text_weight=0.5).fit(
        texts, labels, label_names=names, label_texts=titles)
    for j in range(len(names) - 5, len(names)):  # never in a training text's labels
        top = [name for name, _ in model.predict_one(titles[j], k=3)]
        assert names[j] in top


def test_predict_one_equals_predict_and_names_match_indices(catalogue):
    texts, labels, names, titles = catalogue
    for kw in ({}, {"label_texts": titles, "label_names": names}):
        model = TextXRLinear(classifier=small_classifier()).fit(texts, labels, **kw)
        batch = model.predict(texts[:30] + [""], k=6)
        single = [model.predict_one(t, k=6) for t in texts[:30] + [""]]
        assert len(batch) == 31
        for b, s in zip(batch, single):
            assert [n for n, _ in b] == [n for n, _ in s]
            np.testing.assert_allclose([v for _, v in b], [v for _, v in s], rtol=1e-6)
        ids, _ = model.predict_topk(texts[:30], 6)
        assert [n for n, _ in batch[0]] == [model.labels_[i] for i in ids[0] if i >= 0]


def test_indicator_matrix_with_label_names(catalogue):
    texts, labels, names, titles = catalogue
    Y = sp.csr_matrix([[2.0 if n in row else 0.0 for n in names] for row in labels])
    from_matrix = TextXRLinear(classifier=small_classifier()).fit(texts, Y, label_names=names, label_texts=titles)
    from_lists = TextXRLinear(classifier=small_classifier()).fit(texts, labels, label_names=names, label_texts=titles)
    np.testing.assert_array_equal(from_matrix.predict_topk(texts[:20], 5)[1], from_lists.predict_topk(texts[:20], 5)[1])
    by_name = TextXRLinear(classifier=small_classifier()).fit(
        texts, labels, label_texts=dict(zip(names, titles)))
    assert list(by_name.labels_) == names  # the cold-start labels come from the mapping's keys
    np.testing.assert_array_equal(by_name.predict_topk(texts[:20], 5)[1], from_lists.predict_topk(texts[:20], 5)[1])


def test_save_load_round_trip_and_corruption(tmp_path, catalogue):
    texts, labels, names, titles = catalogue
    model = TextXRLinear(classifier=small_classifier(), label_text_weight=0.3).fit(
        texts, labels, label_names=names, label_texts=titles)
    model.save(tmp_path / "m")
    loaded = TextXRLinear.load(tmp_path / "m")
    assert loaded.get_params()["label_text_weight"] == 0.3
    for a, b in zip(model.predict_topk(texts, 7), loaded.predict_topk(texts, 7)):
        np.testing.assert_array_equal(a, b)
    assert loaded.predict_one("garden hose") == model.predict_one("garden hose")
    meta = tmp_path / "m" / "text_xrlinear.json"
    good = meta.read_text()
    meta.write_text(good[:-20])
    with pytest.raises(ModelFormatError):
        TextXRLinear.load(tmp_path / "m")
    data = json.loads(good)
    data["params"]["no_such_param"] = 1
    meta.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError):
        TextXRLinear.load(tmp_path / "m")
    meta.write_text(good)
    (tmp_path / "m" / "labels.npy").write_bytes(b"not numpy")
    with pytest.raises(ModelFormatError):
        TextXRLinear.load(tmp_path / "m")
    np.save(tmp_path / "m" / "labels.npy", np.array(names[:-1]))
    with pytest.raises(ModelFormatError, match="do not belong"):
        TextXRLinear.load(tmp_path / "m")
    (tmp_path / "m" / "label_text_matcher.bin").unlink()
    with pytest.raises(FileNotFoundError):
        TextXRLinear.load(tmp_path / "m")
    with pytest.raises(FileNotFoundError):
        TextXRLinear.load(tmp_path / "nowhere")


@pytest.mark.parametrize("params, match", [
    ({"label_text_weight": 1.5}, "label_text_weight"),
    ({"centroid_weight": -0.1}, "centroid_weight"),
    ({"text_weight_C": 0}, "text_weight_C"),
    ({"text_weight_C": float("inf")}, "text_weight_C"),
    ({"label_text_weight": "0.5"}, "label_text_weight"),
    ({"match_candidates": 0}, "match_candidates"),
    ({"centroid_max_df": 0}, "centroid_max_df"),
    ({"centroid_max_df": 1.5}, "centroid_max_df"),
    ({"centroid_max_df": float("nan")}, "centroid_max_df"),
    ({"centroid_max_df": True}, "centroid_max_df"),
    ({"centroid_max_df": "1000"}, "centroid_max_df"),
    ({"label_text_rows": "yes"}, "label_text_rows"),
    ({"featurizer": "word"}, "featurizer"),
    ({"classifier": object()}, "classifier"),
])
def test_bad_parameters(catalogue, params, match):
    texts, labels, _, _ = catalogue
    with pytest.raises(InvalidParameterError, match=match):
        TextXRLinear(**params).fit(texts, labels)


def test_bad_inputs(catalogue):
    texts, labels, names, titles = catalogue
    fit = TextXRLinear(classifier=small_classifier()).fit
    with pytest.raises(InvalidInputError, match="unknown label 'nope'"):
        fit(texts[:3], [["p01"], ["nope"], []], label_names=names)
    with pytest.raises(InvalidInputError, match="texts has 3 entries but labels has 2"):
        fit(texts[:3], labels[:2])
    with pytest.raises(InvalidInputError, match="label_names is required"):
        fit(texts[:3], np.ones((3, 2)))
    with pytest.raises(InvalidInputError, match="shape"):
        fit(texts[:3], np.ones((3, 2)), label_names=names)
    with pytest.raises(InvalidInputError, match="NaN"):
        fit(texts[:2], np.array([[np.nan, 1.0], [0.0, 1.0]]), label_names=["a", "b"])
    with pytest.raises(InvalidInputError, match=r"texts\[1\] must be a str"):
        fit(["a", 3], [["x"], ["y"]])
    with pytest.raises(InvalidInputError, match=r"labels\[0\] must be a list"):
        fit(["a"], ["x"])
    with pytest.raises(InvalidInputError, match="label_texts has 2 entries"):
        fit(texts, labels, label_names=names, label_texts=titles[:2])
    with pytest.raises(InvalidInputError, match="unknown label 'zz'"):
        fit(texts, labels, label_names=names, label_texts={"zz": "title"})
    with pytest.raises(InvalidInputError, match="distinct"):
        fit(texts[:1], [["a"]], label_names=["a", "a"])
    with pytest.raises(InvalidInputError, match="no labels"):
        fit(texts[:2], [[], []])
    model = fit(texts, labels)
    for bad_k in (0, -1, 2.5, "3"):
        with pytest.raises(InvalidInputError, match="k must be"):
            model.predict_one("drill", k=bad_k)
    with pytest.raises(InvalidInputError, match="text must be a str"):
        model.predict_one(None)
    with pytest.raises(InvalidInputError):
        model.predict("drill")


def test_rows_without_labels_and_empty_texts_are_fine(catalogue):
    texts, labels, _, _ = catalogue
    model = TextXRLinear(classifier=small_classifier()).fit(texts + ["", "unrelated words"], labels + [[], []])
    assert len(model.predict_one("", k=3)) <= 3


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_merge_topk_equals_a_brute_force_union(data):
    n = data.draw(st.integers(1, 4))
    results, weights = [], []
    for _ in range(data.draw(st.integers(1, 3))):
        width = data.draw(st.integers(1, 5))
        labels = np.full((n, width), -1, dtype=np.int64)
        scores = np.zeros((n, width), dtype=np.float32)
        for i in range(n):
            ids = data.draw(st.lists(st.integers(0, 9), unique=True, max_size=width))
            labels[i, : len(ids)] = ids
            scores[i, : len(ids)] = data.draw(st.lists(st.floats(0, 1, width=32), min_size=len(ids),
                                                       max_size=len(ids)))
        results.append((labels, scores))
        weights.append(data.draw(st.floats(0, 1)))
    k = data.draw(st.integers(1, 6))
    got_labels, got_scores = merge_topk(results, weights, k)
    for i in range(n):
        total = {}
        for (labels, scores), w in zip(results, weights):
            for j, s in zip(labels[i], scores[i]):
                if j >= 0:
                    total[int(j)] = total.get(int(j), 0.0) + w * float(s)
        want = sorted(total.items(), key=lambda e: (-np.float32(e[1]), e[0]))[:k]
        found = got_labels[i] >= 0
        assert found.sum() == len(want)
        np.testing.assert_allclose(got_scores[i][found], [s for _, s in want], rtol=1e-5, atol=1e-7)
        assert set(got_labels[i][found]) <= set(total)
        assert not got_scores[i][~found].any()


def test_a_model_rebuilt_from_its_weight_columns_predicts_the_same(planted):
    X, Y = planted.X, planted.Y
    clf = XRLinearClassifier(n_splits=4, max_leaf_size=5).fit(X, Y)
    model = clf.model_
    weights = []
    for t in range(model.depth):
        indptr, indices, data, (n_rows, n_cols) = model.layer_weights(t)
        weights.append((indptr, indices, data, n_cols, n_rows))  # CSC of W = CSR of W^T
    rebuilt = _pecos_rs.XLinearModel.from_weight_columns(
        [model.layer_parents(t) for t in range(model.depth)], weights,
        n_features=model.n_features, bias=model.bias)
    params = _search_params(10, 5, "l3-hinge")
    for a, b in zip(model.predict_topk(csr_args(X), params, n_threads=1),
                    rebuilt.predict_topk(csr_args(X), params, n_threads=1)):
        np.testing.assert_array_equal(a, b)
    assert rebuilt.to_bytes() == model.to_bytes()
    with pytest.raises(InvalidInputError):  # one layer short
        _pecos_rs.XLinearModel.from_weight_columns(
            [model.layer_parents(t) for t in range(model.depth)], weights[:-1],
            n_features=model.n_features, bias=model.bias)
    with pytest.raises(InvalidInputError):  # the bias row missing
        indptr, indices, data, n_cols, n_rows = weights[0]
        _pecos_rs.XLinearModel.from_weight_columns(
            [model.layer_parents(t) for t in range(model.depth)],
            [(indptr, indices, data, n_cols, n_rows - 1)] + weights[1:],
            n_features=model.n_features, bias=model.bias)


def test_merge_topk_refuses_inconsistent_results():
    a = (np.array([[0, 1]]), np.array([[0.5, 0.25]]))
    with pytest.raises(InvalidInputError):
        merge_topk([a, (np.array([[0, 1], [1, 2]]), np.ones((2, 2)))], [1.0, 1.0], 2)  # rows differ
    with pytest.raises(InvalidInputError):
        merge_topk([a, (np.array([[0, 1]]), np.ones((1, 3)))], [1.0, 1.0], 2)  # labels vs scores
    with pytest.raises(InvalidInputError):
        merge_topk([a], [1.0, 2.0], 2)
    with pytest.raises(InvalidInputError):
        merge_topk([a], [float("nan")], 2)
    with pytest.raises(InvalidParameterError):
        merge_topk([a], [1.0], 0)


def test_an_ensemble_classifier_is_used_whole_by_every_path(catalogue):
    texts, labels, names, titles = catalogue
    model = TextXRLinear(classifier=small_classifier(n_trees=3)).fit(texts, labels, label_names=names,
                                                                      label_texts=titles)
    assert len(model.classifier_.models_) == 3
    single = TextXRLinear(classifier=small_classifier()).fit(texts, labels, label_names=names, label_texts=titles)
    batch = model.predict(texts[:20], k=5)
    assert batch == [model.predict_one(t, k=5) for t in texts[:20]]
    assert batch != single.predict(texts[:20], k=5)  # the other trees count


def test_tol_replaces_the_classifiers_unless_none(catalogue):
    texts, labels, _, _ = catalogue
    model = TextXRLinear(classifier=small_classifier(tol=0.05)).fit(texts, labels)
    assert model.classifier_.tol == TextXRLinear().tol == 0.5 and model.classifier.tol == 0.05
    kept = TextXRLinear(classifier=small_classifier(tol=0.05), tol=None).fit(texts, labels)
    assert kept.classifier_.tol == 0.05
    for bad in (0, -1.0, float("inf"), "loose"):
        with pytest.raises(InvalidParameterError, match="tol"):
            TextXRLinear(tol=bad).fit(texts, labels)

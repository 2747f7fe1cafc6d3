"""Coarse top layers (``coarse_layers``, ``coarse_n_features``, ``coarse_max_iter``): each coarse
layer is exactly the layer trained on X without its trailing columns and with the capped solver
passes, every other layer is exactly the usual one; TextXRLinear trains its coarse layers on the
word block; bad values are refused."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from helpers import make_planted
from pecos_rs import InvalidParameterError, TextXRLinear, XRLinearClassifier
from pecos_rs.text import CharTfidf, TextFeaturizer, WordTfidf

TREE = {"n_splits": 2, "max_leaf_size": 4}


@pytest.fixture(scope="module")
def planted():
    return make_planted(n_rows=400, n_features=80, n_labels=48, n_groups=6, seed=5)


def leading_columns(X, n):
    """X with every entry of column n and beyond removed (the shape kept)."""
    X = X.copy()
    X.data[X.indices >= n] = 0
    X.eliminate_zeros()
    return X


def layer_arrays(model, t):
    return [np.asarray(a) for a in model.layer_weights(t)[:3]]


def assert_same_layer(a, b, t):
    for u, v in zip(layer_arrays(a, t), layer_arrays(b, t)):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("n_layers, n_features, max_iter", [(1, 30, 2), (2, 80, 3), (3, 10, 100)])
def test_coarse_layers_are_the_layers_of_the_cheaper_fit(planted, n_layers, n_features, max_iter):
    X, Y = planted
    coarse = XRLinearClassifier(**TREE, coarse_layers=n_layers, coarse_n_features=n_features,
                                coarse_max_iter=max_iter).fit(X, Y)
    chain = coarse.cluster_chain_
    cheap = XRLinearClassifier(**TREE, max_iter=max_iter).fit(leading_columns(X, n_features), Y,
                                                              cluster_chain=chain)
    usual = XRLinearClassifier(**TREE).fit(X, Y, cluster_chain=chain)
    depth = coarse.model_.depth
    assert depth > n_layers
    for t in range(depth):
        assert_same_layer(coarse.model_, cheap.model_ if t < n_layers else usual.model_, t)
    # The coarse layers have no weight on the trailing columns (the bias is row n_features of X's width).
    for t in range(n_layers):
        rows = layer_arrays(coarse.model_, t)[1]
        assert ((rows < n_features) | (rows == X.shape[1])).all()


def test_no_coarse_layer_is_the_usual_model(planted):
    X, Y = planted
    usual = XRLinearClassifier(**TREE).fit(X, Y).model_.to_bytes()
    assert XRLinearClassifier(**TREE, coarse_layers=0, coarse_n_features=5, coarse_max_iter=1).fit(X, Y) \
        .model_.to_bytes() == usual
    assert XRLinearClassifier(**TREE, coarse_layers=2, coarse_max_iter=100).fit(X, Y).model_.to_bytes() == usual


def test_coarse_layers_deeper_than_the_tree_make_every_layer_coarse(planted):
    X, Y = planted
    coarse = XRLinearClassifier(**TREE, coarse_layers=50, coarse_n_features=40).fit(X, Y)
    cheap = XRLinearClassifier(**TREE, max_iter=5).fit(leading_columns(X, 40), Y,
                                                       cluster_chain=coarse.cluster_chain_)
    assert coarse.model_.to_bytes() == cheap.model_.to_bytes()


@pytest.mark.parametrize("params, message", [
    ({"coarse_layers": -1}, "coarse_layers must be an integer >= 0"),
    ({"coarse_layers": 1.5}, "coarse_layers must be an integer >= 0"),
    ({"coarse_n_features": 0}, "coarse_n_features must be None or an integer >= 1"),
    ({"coarse_n_features": "word"}, "coarse_n_features must be None or an integer >= 1"),
    ({"coarse_layers": 1, "coarse_n_features": 81}, r"coarse_n_features must be at most the number of features \(80\)"),
    ({"coarse_max_iter": 0}, "coarse_max_iter must be an integer >= 1"),
])
def test_bad_coarse_values_are_refused(planted, params, message):
    X, Y = planted
    with pytest.raises(InvalidParameterError, match=message):
        XRLinearClassifier(**TREE, **params).fit(X, Y)


TEXTS = [f"{a} {b} item" for a in ("red", "blue", "green", "black", "white", "brown")
         for b in ("chair", "table", "lamp", "sofa", "desk", "shelf", "bed")] * 3


def text_labels():
    return [[text.split()[1]] for text in TEXTS]


def two_blocks(first="word"):
    return TextFeaturizer(blocks=[(first, WordTfidf()), ("char", CharTfidf(ngram_range=(3, 3)))])


def fitted_text_model(**params):
    return TextXRLinear(classifier=XRLinearClassifier(n_splits=2, max_leaf_size=2), **params) \
        .fit(TEXTS, text_labels())


def test_text_model_trains_its_coarse_layers_on_the_word_block():
    model = fitted_text_model(featurizer=two_blocks())
    n_word = len(model.featurizer_.blocks_[0][1].get_feature_names_out())
    clf = model.classifier_
    assert (clf.coarse_layers, clf.coarse_n_features, clf.coarse_max_iter) == (2, n_word, 5)
    n_features = len(model.featurizer_.get_feature_names_out())
    for t in range(2):
        rows = layer_arrays(clf.model_, t)[1]
        assert ((rows < n_word) | (rows == n_features)).all()
    # The user's classifier is left as it was.
    assert model.classifier.coarse_layers == 0
    # The same model as an XRLinearClassifier given those parameters on the same features.
    X = model.featurizer_.transform(TEXTS)
    Y = sp.csr_matrix(np.array([[name in labels for name in model.labels_] for labels in text_labels()],
                               dtype=np.float32))
    by_hand = XRLinearClassifier(n_splits=2, max_leaf_size=2, coarse_layers=2, coarse_n_features=n_word,
                                 tol=TextXRLinear().tol).fit(X, Y, cluster_chain=clf.cluster_chain_)
    assert by_hand.model_.to_bytes() == clf.model_.to_bytes()


def test_text_model_coarse_features_settings():
    all_columns = fitted_text_model(featurizer=two_blocks(), coarse_features=None).classifier_
    assert (all_columns.coarse_layers, all_columns.coarse_n_features) == (2, None)
    # "auto" without a leading "word" block: every column.
    auto = fitted_text_model(featurizer=two_blocks(first="words")).classifier_
    assert auto.coarse_n_features is None
    named = fitted_text_model(featurizer=two_blocks(first="words"), coarse_features="words")
    assert named.classifier_.coarse_n_features == len(named.featurizer_.blocks_[0][1].get_feature_names_out())
    # Through the last block: every column.
    last = fitted_text_model(featurizer=two_blocks(), coarse_features="char")
    assert last.classifier_.coarse_n_features == len(last.featurizer_.get_feature_names_out())
    none = fitted_text_model(featurizer=two_blocks(), coarse_layers=0).classifier_
    assert none.model_.to_bytes() == TextXRLinear(
        featurizer=two_blocks(), classifier=XRLinearClassifier(n_splits=2, max_leaf_size=2),
        coarse_layers=0).fit(TEXTS, text_labels()).classifier_.model_.to_bytes()


@pytest.mark.parametrize("params, message", [
    ({"coarse_features": "title"}, "coarse_features must be 'auto', None or the name of a block of the featurizer"),
    ({"coarse_features": 3}, "coarse_features must be 'auto', None or the name of a block of the featurizer"),
    ({"coarse_layers": -2}, "coarse_layers must be an integer >= 0"),
    ({"coarse_max_iter": 0}, "coarse_max_iter must be an integer >= 1"),
])
def test_text_model_refuses_bad_coarse_values(params, message):
    with pytest.raises(InvalidParameterError, match=message):
        fitted_text_model(featurizer=two_blocks(), **params)

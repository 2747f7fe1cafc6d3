"""The neighbour vote: the Rust NeighbourIndex against the pure-Python reference, its file format,
and TextXRLinear's blend of it with the model and the centroid matcher."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from pecos_rs import retrieval
from pecos_rs import InvalidInputError, InvalidParameterError, ModelFormatError, TextXRLinear, _pecos_rs
from pecos_rs._sparse import csr_args
from pecos_rs.text import TextFeaturizer
from pecos_rs.retrieval import DEFAULT_FEATURES, _name_texts
from pecos_rs.xlinear import _search_params

from reference import assert_rankings_match, neighbour_vote
from reference import blend as reference_blend
from test_retrieval import as_text_model_trains, catalogue, make_catalogue, small_classifier  # noqa: F401


def index_of(texts, text_labels):
    """The index of dense `texts` (texts x features) and `text_labels` (texts x labels)."""
    postings = sp.csr_matrix(np.asarray(texts, dtype=np.float32).T)
    return _pecos_rs.NeighbourIndex(csr_args(postings), csr_args(sp.csr_matrix(text_labels, dtype=np.float32)))


@st.composite
def problems(draw):
    n_texts = draw(st.integers(1, 30))
    n_features = draw(st.integers(1, 8))
    n_labels = draw(st.integers(1, 10))
    # Small integers and halves: every similarity, vote and tie is exact in float32 too.
    texts = draw(st.lists(st.lists(st.sampled_from([0, 0, 0, 1, 2, 3]), min_size=n_features, max_size=n_features),
                          min_size=n_texts, max_size=n_texts))
    shares = draw(st.lists(st.lists(st.sampled_from([0, 0, 0.5, 1]), min_size=n_labels, max_size=n_labels),
                           min_size=n_texts, max_size=n_texts))
    queries = draw(st.lists(st.lists(st.sampled_from([0, 0, 1, 2]), min_size=n_features, max_size=n_features),
                            min_size=1, max_size=80))
    return (np.array(texts, float), np.array(shares, float), np.array(queries, float),
            draw(st.integers(1, 12)), float(draw(st.sampled_from([1, 2, 3]))), draw(st.integers(1, 12)))


@settings(max_examples=150, deadline=None)
@given(problems())
def test_the_index_equals_the_reference_vote(problem):
    texts, shares, queries, n_neighbours, power, k = problem
    index = index_of(texts, shares)
    Q = csr_args(sp.csr_matrix(queries, dtype=np.float32))
    labels, scores, nearest = index.predict_topk(Q, n_neighbours=n_neighbours, power=power, topk=k, n_threads=2,
                                                 return_nearest=True)
    assert labels.shape == (len(queries), min(k, shares.shape[1])) and nearest.shape == (len(queries),)
    # The nearest text's similarity (0 for a query sharing no feature with any): exact here.
    np.testing.assert_array_equal(nearest, np.maximum((texts @ queries.T).max(axis=0), 0.0))
    for i, x in enumerate(queries):
        want_labels, want_scores = neighbour_vote(texts, shares, x, n_neighbours, power, k)
        # The neighbours are exact (integer similarities); votes are computed relative to the
        # nearest text's, so equal votes may differ in their last bits: ties may swap.
        every = neighbour_vote(texts, shares, x, n_neighbours, power, shares.shape[1])
        score_of = dict(zip(every[0].tolist(), every[1].tolist()))
        assert_rankings_match(labels[i], scores[i], want_labels, want_scores, lambda l: score_of.get(l, 0.0),
                              rtol=1e-6, atol=1e-7, tie=1e-6)
        # The single-query path (calling thread) gives the same row.
        one = index.predict_topk(csr_args(sp.csr_matrix(x[None, :], dtype=np.float32)),
                                 n_neighbours=n_neighbours, power=power, topk=k)
        np.testing.assert_array_equal(one[0][0], labels[i])
        np.testing.assert_array_equal(one[1][0], scores[i])


def test_many_rows_and_threads_give_the_same_answers():
    rng = np.random.default_rng(0)
    texts = sp.random(3000, 50, density=0.2, random_state=1, dtype=np.float32)
    shares = sp.random(3000, 40, density=0.05, random_state=2, dtype=np.float32)
    index = _pecos_rs.NeighbourIndex(csr_args(sp.csr_matrix(texts.T)), csr_args(sp.csr_matrix(shares)))
    Q = csr_args(sp.csr_matrix(rng.random((700, 50)) * (rng.random((700, 50)) < 0.1), dtype=np.float32))
    runs = [index.predict_topk(Q, n_neighbours=25, power=2.0, topk=10, n_threads=t, return_nearest=True)
            for t in (1, 2, 3)]
    for run in runs[1:]:
        for got, want in zip(run, runs[0]):
            np.testing.assert_array_equal(got, want)
    dense_texts, dense_shares = texts.toarray(), shares.toarray()
    Qd = sp.csr_matrix((Q[2], Q[1], Q[0]), shape=(Q[3], Q[4])).toarray()
    for i in range(0, 700, 70):
        want_labels, want_scores = neighbour_vote(dense_texts, dense_shares, Qd[i], 25, 2.0, 10)
        found = want_labels >= 0
        np.testing.assert_array_equal(runs[0][0][i][found], want_labels[found])
        np.testing.assert_allclose(runs[0][1][i], want_scores, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(runs[0][2], np.maximum((dense_texts @ Qd.T).max(axis=0), 0.0), rtol=1e-5)


def test_huge_weights_give_finite_scores():
    # Products of 1e38 weights overflow float32: the scores stay finite, the best 1.
    index = index_of(np.array([[1e38, 0.0], [1e38, 1.0], [0.0, 1.0]]), np.array([[3e38, 0], [3e38, 1], [0, 1]]))
    labels, scores = index.predict_topk(csr_args(sp.csr_matrix(np.array([[1e38, 1.0]], np.float32))),
                                        n_neighbours=3, power=8.0, topk=2)
    assert np.isfinite(scores).all() and scores[0, 0] == 1.0 and labels[0, 0] == 0


def test_bad_arguments_are_refused():
    index = index_of(np.eye(3), np.eye(3))
    q = csr_args(sp.csr_matrix(np.ones((1, 3), np.float32)))
    for kw in ({"n_neighbours": 0}, {"power": 0.0}, {"power": float("nan")}, {"topk": 0}):
        args = {"n_neighbours": 2, "power": 1.0, "topk": 2, **kw}
        with pytest.raises(InvalidParameterError):
            index.predict_topk(q, **args)
    with pytest.raises(ValueError, match="query features"):
        index.predict_topk(csr_args(sp.csr_matrix(np.ones((1, 4), np.float32))), n_neighbours=1, power=1.0, topk=1)
    with pytest.raises(ValueError, match="texts"):
        index_of(np.eye(3), np.eye(4))
    with pytest.raises(InvalidInputError, match="negative"):
        index_of(-np.eye(3), np.eye(3))


def test_files_and_pickles_round_trip_and_corruption_is_refused(tmp_path):
    rng = np.random.default_rng(3)
    index = index_of(rng.random((20, 6)) * (rng.random((20, 6)) < 0.5), (rng.random((20, 5)) < 0.3) * 1.0)
    q = csr_args(sp.csr_matrix(rng.random((15, 6)), dtype=np.float32))
    want = index.predict_topk(q, n_neighbours=5, power=3.0, topk=4)
    file = tmp_path / "index.bin"
    index.save(str(file))
    for back in (_pecos_rs.NeighbourIndex.load(str(file)), pickle.loads(pickle.dumps(index))):
        got = back.predict_topk(q, n_neighbours=5, power=3.0, topk=4)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    data = file.read_bytes()
    for bad in (data[: len(data) // 2], data[:-1], data[:30], b"PECOSRS\0" + data[8:],
                data[:-8] + bytes([data[-8] ^ 1]) + data[-7:]):
        file.write_bytes(bad)
        with pytest.raises(ModelFormatError):
            _pecos_rs.NeighbourIndex.load(str(file))
    with pytest.raises(FileNotFoundError):
        _pecos_rs.NeighbourIndex.load(str(tmp_path / "missing.bin"))


def distinct_rows_and_shares(featurizer, texts, Y):
    """The distinct `texts`' feature rows (dense, in first-seen order) and each label's share
    of the labels (`Y`) of their rows."""
    distinct = sorted(set(texts), key=texts.index)
    counts = np.array([np.asarray(Y[[i for i, t in enumerate(texts) if t == d]].sum(axis=0)).ravel()
                       for d in distinct])
    return featurizer.transform(distinct).toarray(), counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def assert_blend(model, queries, k, parts, **bonuses):
    """`model`'s top `k` scores for `queries` are the reference blend (``reference.blend``, with
    `bonuses`) of the ``(weight, rank_share, labels, scores)`` lists of each row
    (``parts(i)``); predict_one agrees."""
    got_labels, got_scores = model.predict_topk(queries, k)
    for i in range(len(queries)):
        _, expected = reference_blend(parts(i), k, **bonuses)
        found = got_labels[i] >= 0
        np.testing.assert_allclose(got_scores[i][found], expected, rtol=1e-5, atol=1e-6)
        one = model.predict_one(queries[i], k=k)
        assert [name for name, _ in one] == list(model.labels_[got_labels[i][found]])


def test_text_model_blends_the_vote_of_the_nearest_training_texts(catalogue):
    texts, labels, names, _ = catalogue
    texts = texts + texts[:40]  # repeated texts: one distinct text, its labels' shares summed
    labels = labels + [[names[0]]] * 40
    wc, wn, nn, power = 0.1, 0.3, 7, 2.0
    model = TextXRLinear(classifier=small_classifier(), centroid_weight=wc, neighbour_weight=wn, n_neighbours=nn,
                         neighbour_power=power, neighbour_max_df=1.0, match_candidates=12,
                         label_name_weight=0.0, rank_weight=0.0, co_click_weight=0.0).fit(
        texts, labels, label_names=names)
    assert model.co_click_matrix_ is None
    featurizer = TextFeaturizer(blocks=DEFAULT_FEATURES).fit(texts)
    X = featurizer.transform(texts)
    Y = sp.csr_matrix([[float(n in row) for n in names] for row in labels], dtype=np.float32)
    clf = as_text_model_trains(featurizer).fit(X, Y)
    D, shares = distinct_rows_and_shares(featurizer, texts, Y)
    assert model.neighbour_index_.n_texts == len(D)
    queries = texts[:25] + ["hose nozzle garden", "zzz", ""]
    Q = featurizer.transform(queries)
    model_labels, model_scores = clf.predict_topk(Q, 12)
    centroid_labels, centroid_scores = model.centroid_matcher_.predict_topk(
        csr_args(Q), _search_params(1, 12, "noop"), n_threads=1)
    assert_blend(model, queries, 6, lambda i: ((1 - wc - wn, 0, model_labels[i], model_scores[i]),
                                               (wc, 0, centroid_labels[i], centroid_scores[i]),
                                               (wn, 0, *neighbour_vote(D, shares, Q[i].toarray().ravel(), nn, power,
                                                                       12))))
    # Off: no index, the blend of the two others.
    off = TextXRLinear(classifier=small_classifier(), centroid_weight=wc, neighbour_weight=0.0,
                       label_name_weight=0.0).fit(texts, labels, label_names=names)
    assert off.neighbour_index_ is None and off.name_matcher_ is None


def test_saved_text_model_keeps_its_index_and_older_directories_load(tmp_path):
    texts, labels, names, _ = make_catalogue(n_texts=120)
    model = TextXRLinear(classifier=small_classifier(), neighbour_max_df=3).fit(texts, labels)
    assert model.neighbour_weight_ == retrieval.AUTO_NEIGHBOUR_WEIGHT  # "auto" without label texts
    model.save(tmp_path / "m")
    back = TextXRLinear.load(tmp_path / "m")
    assert back.neighbour_index_.n_texts == model.neighbour_index_.n_texts and back.neighbour_weight_ == retrieval.AUTO_NEIGHBOUR_WEIGHT
    np.testing.assert_array_equal(back.predict_topk(texts[:30], 5)[1], model.predict_topk(texts[:30], 5)[1])
    assert back.get_params()["neighbour_max_df"] == 3
    assert model.n_bytes_ > TextXRLinear(classifier=small_classifier(), neighbour_weight=0.0,
                                         label_name_weight=0.0).fit(texts, labels).n_bytes_
    # A directory of format version 1 (before the neighbour vote) loads without it.
    import json
    meta_file = tmp_path / "m" / "text_xrlinear.json"
    meta = json.loads(meta_file.read_text())
    meta["format_version"] = 1
    del meta["has_neighbour_index"], meta["neighbour_weight"], meta["has_name_matcher"], meta["label_name_weight"]
    for name in ("neighbour_weight", "n_neighbours", "neighbour_power", "neighbour_max_df", "label_name_weight",
                 "beam_size"):
        del meta["params"][name]
    meta_file.write_text(json.dumps(meta))
    (tmp_path / "m" / "neighbour_index.bin").unlink()
    (tmp_path / "m" / "label_name_matcher.bin").unlink()
    old = TextXRLinear.load(tmp_path / "m")
    assert old.neighbour_index_ is None and old.neighbour_weight == 0.0 and old.neighbour_weight_ == 0.0
    assert old.name_matcher_ is None and old.label_name_weight == 0.0 and old.label_name_weight_ == 0.0
    # A truncated index file is a format error.
    model.save(tmp_path / "t")
    file = tmp_path / "t" / "neighbour_index.bin"
    file.write_bytes(file.read_bytes()[:-10])
    with pytest.raises(ModelFormatError):
        TextXRLinear.load(tmp_path / "t")


def test_auto_weights_are_off_with_label_texts_unless_asked(catalogue):
    texts, labels, names, titles = catalogue
    with_titles = TextXRLinear(classifier=small_classifier()).fit(texts, labels, label_names=names, label_texts=titles)
    assert with_titles.neighbour_weight_ == 0.0 and with_titles.neighbour_index_ is None
    assert with_titles.label_name_weight_ == 0.0 and with_titles.name_matcher_ is None
    assert with_titles.rank_weight_ == with_titles.co_click_weight_ == 0.0 and with_titles.co_click_matrix_ is None
    without = TextXRLinear(classifier=small_classifier()).fit(texts, labels, label_names=names)
    assert (without.rank_weight_, without.co_click_weight_) == (retrieval.AUTO_RANK_WEIGHT,
                                                               retrieval.AUTO_CO_CLICK_WEIGHT)
    forced = TextXRLinear(classifier=small_classifier(), neighbour_weight=0.1).fit(
        texts, labels, label_names=names, label_texts=titles)
    assert forced.neighbour_weight_ == 0.1 and forced.neighbour_index_ is not None
    # The name match without the vote: the vote's index is built for the similarity of the
    # nearest text, the vote itself weighs nothing.
    forced = TextXRLinear(classifier=small_classifier(), label_name_weight=0.1).fit(
        texts, labels, label_names=names, label_texts=titles)
    assert forced.name_matcher_ is not None and forced.neighbour_index_ is not None
    assert forced.neighbour_weight_ == 0.0


@pytest.mark.parametrize("params, match", [
    ({"n_neighbours": 0}, "n_neighbours"),
    ({"n_neighbours": 2.5}, "n_neighbours"),
    ({"neighbour_power": 0}, "neighbour_power"),
    ({"neighbour_power": float("inf")}, "neighbour_power"),
    ({"neighbour_weight": -0.1}, "neighbour_weight"),
    ({"neighbour_weight": 0.6, "label_text_weight": 0.5}, "at most 1"),
    ({"neighbour_weight": 0.6, "centroid_weight": 0.5}, "at most 1"),
    ({"neighbour_weight": "on"}, "neighbour_weight"),
    ({"neighbour_max_df": 0}, "neighbour_max_df"),
    ({"neighbour_max_df": 1.5}, "neighbour_max_df"),
    ({"label_name_weight": -0.1}, "label_name_weight"),
    ({"label_name_weight": "on"}, "label_name_weight"),
    ({"label_name_weight": 0.6, "neighbour_weight": 0.5}, "at most 1"),
    ({"beam_size": 0}, "beam_size"),
    ({"beam_size": 2.5}, "beam_size"),
    ({"rank_weight": -0.1}, "rank_weight"),
    ({"rank_weight": float("inf")}, "rank_weight"),
    ({"co_click_weight": float("nan")}, "co_click_weight"),
    ({"co_click_weight": "on"}, "co_click_weight"),
])
def test_bad_neighbour_parameters_are_refused(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        TextXRLinear(**params).fit(["a b", "c d"], [["x"], ["y"]], label_texts={"x": "a", "y": "d"})


def test_weights_of_matchers_a_model_does_not_have_do_not_count():
    # Without label texts there is no label-text match: its weight does not count in the sum.
    model = TextXRLinear(label_text_weight=0.5, neighbour_weight=0.6).fit(["a b", "c d"], [["x"], ["y"]])
    assert model.matcher_ is None and model.neighbour_weight_ == 0.6
    # The bonuses are added to the score, not shares of it: they do not count either.
    model = TextXRLinear(rank_weight=2.0, co_click_weight=3.0, neighbour_weight=0.6).fit(["a b", "c d"], [["x"], ["y"]])
    assert model.rank_weight_ == 2.0 and model.co_click_matrix_ is not None


def test_label_names_read_as_texts():
    assert _name_texts(["bank-rates.co.uk", "A_B  c", "...", "café.fr"]) == ["bank rates co uk", "A B c", "", "café fr"]


def test_text_model_blends_the_name_match_by_the_nearest_training_text(catalogue):
    # Label names that spell their titles' words: the name match finds them; its weight for a
    # text is w_l (1 - s)^2, s the similarity of the nearest training text. With the rank bonus
    # and the co-click list.
    texts, labels, names, titles = catalogue
    site_names = [title.replace(" ", "-") + ".shop" for title in titles]
    labels = [[site_names[names.index(n)] for n in row] for row in labels]
    wn, wl, nn, power, n, a, a_c = 0.2, 0.4, 7, 2.0, 12, 0.3, 0.2
    model = TextXRLinear(classifier=small_classifier(), neighbour_weight=wn, label_name_weight=wl, n_neighbours=nn,
                         neighbour_power=power, neighbour_max_df=1.0, match_candidates=n, rank_weight=a,
                         co_click_weight=a_c).fit(texts, labels, label_names=site_names)
    assert model.label_name_weight_ == wl and model.name_matcher_.n_texts == len(titles)
    featurizer = TextFeaturizer(blocks=DEFAULT_FEATURES).fit(texts)
    X = featurizer.transform(texts)
    Y = sp.csr_matrix([[float(n in row) for n in site_names] for row in labels], dtype=np.float32)
    clf = as_text_model_trains(featurizer).fit(X, Y)
    D, shares = distinct_rows_and_shares(featurizer, texts, Y)
    assert len(set(titles)) == len(titles)  # one name per text: shares of 1
    N = featurizer.transform(_name_texts(site_names)).toarray()
    queries = texts[:20] + [titles[3], titles[7] + " " + titles[8], "zzz", ""]
    Q = featurizer.transform(queries)
    model_labels, model_scores = clf.predict_topk(Q, n)
    nearest = np.clip((D @ Q.toarray().T).max(axis=0), 0.0, 1.0)

    share = retrieval._RANK_SHARES

    def parts(i):
        q, w = Q[i].toarray().ravel(), wl * (1 - nearest[i]) ** 2
        return ((1 - wn - w, share["model"], model_labels[i], model_scores[i]),
                (wn, share["neighbour"], *neighbour_vote(D, shares, q, nn, power, n)),
                (w, share["label_name"], *neighbour_vote(N, np.eye(len(titles)), q, n, power, n)))

    # Co-click: the share of the distinct texts with label i that have label j too.
    has = (shares > 0).astype(float)
    together = has.T @ has
    P = together / np.maximum(np.diag(together), 1)[:, None]
    np.fill_diagonal(P, 0.0)
    assert_blend(model, queries, 6, parts, rank_weight=a, rank_offset=retrieval.RANK_OFFSET,
                 co_click=(P, a_c, retrieval.CO_CLICK_OFFSET, retrieval.CO_CLICK_FROM_TOP, n))
    assert model.co_click_matrix_.n_texts == model.co_click_matrix_.n_features == len(site_names)
    assert (nearest < 0.99).sum() >= 3  # the check covered texts the training texts do not know
    # A title the training texts never saw finds its site by name.
    assert model.predict_one(titles[3], k=3)[0][0] == site_names[3]


def test_blend_in_one_call_takes_a_given_model_result_and_any_thread_count(catalogue):
    texts, labels, names, titles = catalogue
    site_names = [title.replace(" ", "-") + ".shop" for title in titles]
    labels = [[site_names[names.index(n)] for n in row] for row in labels]
    model = TextXRLinear(classifier=small_classifier(), neighbour_weight=0.2, label_name_weight=0.4,
                         n_neighbours=7, neighbour_max_df=1.0, match_candidates=12, co_click_weight=0.0).fit(
        texts, labels, label_names=site_names)
    assert model.rank_weight_ > 0 and model.co_click_matrix_ is None
    queries = texts[:30] + ["zzz", ""]
    x = csr_args(model.featurizer_.transform(queries))
    expected = model._blend(x, 6, 1)
    for n_threads in (2, 3):
        np.testing.assert_array_equal(model._blend(x, 6, n_threads)[0], expected[0])
        np.testing.assert_array_equal(model._blend(x, 6, n_threads)[1], expected[1])
    # The model's part given by the caller: its own top-n gives the same blend.
    clf = model.classifier_
    given_result = clf._search(x, _search_params(clf.beam_size, 12, clf.post_processor), 1)
    for got, want in zip(model._blend(x, 6, 1, model_result=given_result), expected):
        np.testing.assert_array_equal(got, want)
    # A vote weighing 0 is searched for the name weights only: none of its labels comes in alone.
    model.set_params(neighbour_weight=0.0)
    no_vote = model._blend(x, 6, 1, model_result=given_result)
    name_labels = model.name_matcher_.predict_topk(x, n_neighbours=12, power=4.0, topk=12)[0]
    for i in range(len(queries)):
        allowed = set(given_result[0][i]) | set(name_labels[i])
        assert set(no_vote[0][i][no_vote[0][i] >= 0]) <= allowed
    # The name match needs the vote's index for its weights.
    with pytest.raises(InvalidInputError, match="neighbour vote"):
        _pecos_rs.blend_topk(x, given_result, matchers=[], names=(model.name_matcher_, 0.4, 1.0), n_neighbours=7,
                             power=4.0, k=6, n=12)
    with pytest.raises(InvalidInputError, match="shape"):
        _pecos_rs.blend_topk(x, (given_result[0], given_result[1][:, :3]), matchers=[], n_neighbours=7,
                             power=4.0, k=6, n=12)


def test_saved_name_match_and_older_directories(tmp_path):
    texts, labels, names, titles = make_catalogue(n_texts=120)
    model = TextXRLinear(classifier=small_classifier()).fit(texts, labels)
    assert model.label_name_weight_ == retrieval.AUTO_LABEL_NAME_WEIGHT and model.name_matcher_ is not None  # "auto" without label texts
    model.save(tmp_path / "m")
    back = TextXRLinear.load(tmp_path / "m")
    assert back.label_name_weight_ == retrieval.AUTO_LABEL_NAME_WEIGHT and back.name_matcher_.n_texts == model.name_matcher_.n_texts
    for got, want in zip(back.predict_topk(texts[:30] + ["p03", "zzz"], 5), model.predict_topk(texts[:30] + ["p03", "zzz"], 5)):
        np.testing.assert_array_equal(got, want)
    import json
    meta_file = tmp_path / "m" / "text_xrlinear.json"
    meta = json.loads(meta_file.read_text())
    # Version 3: without the rank bonus and the co-click matrix.
    meta["format_version"] = 3
    for name in ("rank_weight", "co_click_weight"):
        del meta[name], meta["params"][name]
    del meta["has_co_click_matrix"]
    meta_file.write_text(json.dumps(meta))
    (tmp_path / "m" / "co_click_matrix.bin").unlink()
    old = TextXRLinear.load(tmp_path / "m")
    assert old.co_click_matrix_ is None and old.rank_weight_ == old.co_click_weight_ == 0.0
    no_bonus = TextXRLinear(classifier=small_classifier(), rank_weight=0.0, co_click_weight=0.0).fit(texts, labels)
    for got, want in zip(old.predict_topk(texts[:30], 5), no_bonus.predict_topk(texts[:30], 5)):
        np.testing.assert_array_equal(got, want)
    # Version 2: without the name match either.
    meta["format_version"] = 2
    del meta["has_name_matcher"], meta["label_name_weight"], meta["params"]["label_name_weight"]
    meta_file.write_text(json.dumps(meta))
    (tmp_path / "m" / "label_name_matcher.bin").unlink()
    old = TextXRLinear.load(tmp_path / "m")
    assert old.name_matcher_ is None and old.label_name_weight_ == 0.0 and old.neighbour_index_ is not None
    no_names = TextXRLinear(classifier=small_classifier(), label_name_weight=0.0, rank_weight=0.0,
                            co_click_weight=0.0).fit(texts, labels)
    for got, want in zip(old.predict_topk(texts[:30], 5), no_names.predict_topk(texts[:30], 5)):
        np.testing.assert_array_equal(got, want)
    # A truncated name or co-click file is a format error; a weight out of range in the metadata too.
    for name in ("label_name_matcher.bin", "co_click_matrix.bin"):
        model.save(tmp_path / "t")
        file = tmp_path / "t" / name
        file.write_bytes(file.read_bytes()[:-10])
        with pytest.raises(ModelFormatError):
            TextXRLinear.load(tmp_path / "t", mmap=False)
    model.save(tmp_path / "b")
    meta_file = tmp_path / "b" / "text_xrlinear.json"
    meta = json.loads(meta_file.read_text())
    meta["co_click_weight"] = -1.0
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="co_click_weight"):
        TextXRLinear.load(tmp_path / "b")
    model.save(tmp_path / "w")
    meta_file = tmp_path / "w" / "text_xrlinear.json"
    meta = json.loads(meta_file.read_text())
    meta["label_name_weight"] = 2.0
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError):
        TextXRLinear.load(tmp_path / "w")
    # A name matcher without the vote's index (which gives its weights) is a format error too.
    meta["label_name_weight"], meta["has_neighbour_index"] = 0.1, False
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="neighbour index"):
        TextXRLinear.load(tmp_path / "w")
    # Pickles keep it too.
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_topk(["p03 zzz"], 5)[1], model.predict_topk(["p03 zzz"], 5)[1])

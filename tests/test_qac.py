"""SessionAutocompleter: prefix-aware suggestions from (previous query, prefix) pairs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pecos_rs import InvalidInputError, InvalidParameterError, ModelFormatError
from pecos_rs.qac import SessionAutocompleter

# Topics share first letters, so that only the previous query tells which completion is meant.
TOPICS = {
    "weather": ["weather radar", "rain forecast", "wind speed", "temperature map"],
    "weddings": ["wedding dresses", "ring sizes", "wine pairing", "table plans"],
    "travel": ["train tickets", "map of rome", "travel insurance", "rail pass"],
    "music": ["tour dates", "metal bands", "mp3 converter", "radio stations"],
}


def sessions(n, seed):
    """Synthetic (prev, prefix, next) triples: the previous query names a topic, the next query
    is one of the topic's queries (some more frequent than others), the prefix a random cut."""
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    prev, prefix, nxt = [], [], []
    for _ in range(n):
        topic = names[rng.integers(len(names))]
        queries = TOPICS[topic]
        q = queries[min(rng.geometric(0.5) - 1, len(queries) - 1)]
        prev.append(f"{topic} {rng.integers(3)}")
        nxt.append(q)
        prefix.append(q[: rng.integers(1, len(q) + 1)])
    return prev, prefix, nxt


@pytest.fixture(scope="module")
def data():
    return sessions(600, seed=0), sessions(200, seed=1)


@pytest.fixture(scope="module", params=["hybrid", "trie", "kmeans"])
def fitted(request, data):
    (prev, prefix, nxt), _ = data
    # Suggestions among the next queries only, so that the checks below know every label.
    return SessionAutocompleter(indexer=request.param, max_leaf_size=4, label_queries="next").fit(
        prev, prefix, nxt
    )


def test_suggestions_start_with_the_prefix(fitted, data):
    _, (prev, prefix, nxt) = data
    labels = set(fitted.labels_)
    for p, q in zip(prev, prefix):
        got = fitted.suggest(p, q, k=3)
        starting = sorted(label for label in labels if label.startswith(q))
        assert len(got) == 3
        n_match = min(3, len(starting))
        assert all(s.startswith(q) for s, _ in got[:n_match]), (q, got)
        assert len({s for s, _ in got}) == 3


def test_the_model_uses_the_previous_query(fitted):
    """The same prefix suggests the previous query's topic first."""
    for topic, queries in TOPICS.items():
        for first in {q[0] for q in queries}:
            best = fitted.suggest(f"{topic} 1", first, k=1)[0][0]
            assert best in queries, (topic, first, best)


def test_accuracy_beats_chance(fitted, data):
    _, (prev, prefix, nxt) = data
    suggestions = fitted.suggest_batch(prev, prefix, k=1)
    hits = np.mean([s[0][0] == q for s, q in zip(suggestions, nxt)])
    assert hits > 0.8


def test_empty_previous_query_and_unseen_prefix(fitted):
    got = fitted.suggest("", "wea", k=2)
    assert got[0][0] == "weather radar"
    # No training query starts with "zz": the back-off fills the list with frequent queries.
    fallback = fitted.suggest("weather 0", "zz", k=4)
    assert len(fallback) == 4 and all(score == 0.0 for _, score in fallback)


def test_batch_equals_single(fitted, data):
    _, (prev, prefix, _) = data
    batch = fitted.suggest_batch(prev[:50], prefix[:50], k=5)
    assert batch == [fitted.suggest(p, q, k=5) for p, q in zip(prev[:50], prefix[:50])]


def test_save_load_round_trip(fitted, data, tmp_path):
    _, (prev, prefix, _) = data
    fitted.save(tmp_path / "m")
    back = SessionAutocompleter.load(tmp_path / "m")
    assert back.suggest_batch(prev[:40], prefix[:40]) == fitted.suggest_batch(prev[:40], prefix[:40])
    assert back.get_params()["indexer"] == fitted.indexer


def test_corrupt_save_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    (tmp_path / "m" / "autocompleter.json").write_text("{not json")
    with pytest.raises(ModelFormatError):
        SessionAutocompleter.load(tmp_path / "m")


def test_a_version_1_save_loads_with_the_reranking_of_its_time(data, tmp_path):
    """A directory saved before the session pairs and the re-ranking parameters (format 1: no
    pairs file, none of the three parameters) answers as such a model did."""
    import json

    (prev, prefix, nxt), (prev_t, prefix_t, _) = data
    old = SessionAutocompleter(max_leaf_size=4, overlap_weight=0.0, session_weight=0.0,
                               exclude_previous=False).fit(prev, prefix, nxt)
    old.save(tmp_path / "m")
    meta_file = tmp_path / "m" / "autocompleter.json"
    meta = json.loads(meta_file.read_text())
    for name in ("overlap_weight", "session_weight", "exclude_previous"):
        del meta["params"][name]
    meta["format_version"] = 1
    meta_file.write_text(json.dumps(meta))
    back = SessionAutocompleter.load(tmp_path / "m")
    assert back.suggest_batch(prev_t[:40], prefix_t[:40]) == old.suggest_batch(prev_t[:40], prefix_t[:40])
    meta["format_version"] = 3
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="version 3 is not supported .*reads 1 and 2"):
        SessionAutocompleter.load(tmp_path / "m")


def test_frequency_weight_reorders_towards_frequent_queries(data):
    (prev, prefix, nxt), _ = data
    ac = SessionAutocompleter(
        max_leaf_size=4, frequency_weight=1.0, candidates=8, label_queries="next", overlap_weight=0.0
    ).fit(prev, prefix, nxt)
    got = ac.suggest("weather 0", "w", k=4)
    counts = [nxt.count(s) for s, _ in got]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize("kwargs", [
    dict(indexer="tree"), dict(label_features="both"), dict(candidates=0), dict(frequency_weight=1.5),
    dict(frequency_weight=True), dict(trie_depth=0), dict(max_leaf_size=0), dict(label_queries="prev"),
])
def test_bad_parameters(data, kwargs):
    (prev, prefix, nxt), _ = data
    with pytest.raises(InvalidParameterError):
        SessionAutocompleter(**kwargs).fit(prev[:50], prefix[:50], nxt[:50])


def test_bad_input(fitted, data):
    (prev, prefix, nxt), _ = data
    with pytest.raises(InvalidInputError, match="same length"):
        SessionAutocompleter().fit(prev, prefix[:-1], nxt)
    with pytest.raises(InvalidInputError, match=r"next_queries\[2\]"):
        SessionAutocompleter().fit(prev[:3], prefix[:3], ["a", "b", 3])
    with pytest.raises(InvalidInputError, match="sequence of str"):
        fitted.suggest_batch("weather", ["w"])
    with pytest.raises(InvalidInputError, match="k must be"):
        fitted.suggest("weather 0", "w", k=0)
    with pytest.raises(InvalidInputError, match="prefix must be a str"):
        fitted.suggest("weather 0", None)
    with pytest.raises(InvalidInputError, match="prev_query must be a str"):
        fitted.suggest(3, "w")


def test_pickle(fitted, data):
    _, (prev, prefix, _) = data
    back = pickle.loads(pickle.dumps(fitted))
    assert back.suggest_batch(prev[:20], prefix[:20]) == fitted.suggest_batch(prev[:20], prefix[:20])


def test_previous_queries_become_suggestions_with_label_queries_all(data):
    (prev, prefix, nxt), _ = data
    both = SessionAutocompleter(max_leaf_size=4).fit(prev, prefix, nxt)  # label_queries="all"
    only_next = SessionAutocompleter(max_leaf_size=4, label_queries="next").fit(prev, prefix, nxt)
    assert set(only_next.labels_) == set(nxt)
    assert set(both.labels_) == set(nxt) | set(prev)
    # "music 1" is only ever a previous query: now a suggestion of its own.
    assert "music 1" in [s for s, _ in both.suggest("", "mus", k=3)]
    assert "music 1" not in [s for s, _ in only_next.suggest("", "mus", k=3)]


# Made-up sessions for the re-ranking: "cheap flights" is followed by "car rental" three times.
RERANK_DATA = (
    ["cheap flights"] * 3 + ["pizza"] * 5 + ["cat toys", "card games", "car parts", "car wash"],
    ["ca"] * 3 + ["ca"] * 5 + ["ca", "ca", "car", "car"],
    ["car rental"] * 3 + ["car wash"] * 5 + ["cat food", "card shop", "car wash", "car parts"],
)


def _scores(ac, prev, prefix, k=10):
    return dict(ac.suggest(prev, prefix, k=k))


def test_exclude_previous_never_suggests_the_previous_query(data):
    (prev, prefix, nxt), _ = data
    ac = SessionAutocompleter(max_leaf_size=4).fit(prev, prefix, nxt)  # previous queries are labels
    assert ac.exclude_previous
    for query in ("weather 0", "music 2"):
        for typed in (query[:1], query[:4], query):  # the model's candidates, then the fill
            assert query not in [s for s, _ in ac.suggest(query, typed, k=10)]
            assert all(query not in [s for s, _ in row]
                       for row in ac.suggest_batch([query], [typed], k=10))
    ac.set_params(exclude_previous=False)
    assert "weather 0" in [s for s, _ in ac.suggest("weather 0", "weather 0", k=3)]


def test_overlap_weight_multiplies_by_the_shared_word_factor():
    prev, prefix, nxt = RERANK_DATA
    ac = SessionAutocompleter(max_leaf_size=4, frequency_weight=0.0, session_weight=0.0,
                              overlap_weight=0.0).fit(prev, prefix, nxt)
    plain = _scores(ac, "car hire", "ca")
    ac.set_params(overlap_weight=2.0)  # a query-time parameter: no refit needed
    boosted = _scores(ac, "car hire", "ca")
    assert set(plain) == set(boosted)
    for query, score in plain.items():
        words = query.split()
        share = sum(w in ("car", "hire") for w in words) / len(words)
        assert boosted[query] == pytest.approx(score * np.exp(2.0 * share)), query
    # "card shop" shares no word ("card" is not "car"): unchanged.
    assert boosted["card shop"] == pytest.approx(plain["card shop"])
    assert boosted["car wash"] > plain["car wash"]


def test_session_weight_multiplies_by_the_times_seen_together():
    prev, prefix, nxt = RERANK_DATA
    ac = SessionAutocompleter(max_leaf_size=4, frequency_weight=0.0, overlap_weight=0.0,
                              session_weight=2.0).fit(prev, prefix, nxt)
    with_pairs = _scores(ac, "cheap flights", "ca")
    ac.set_params(session_weight=0.0)
    without = _scores(ac, "cheap flights", "ca")
    # Seen together 3 times: the factor is 1 + 2 * 3; the other candidates keep their scores.
    assert with_pairs["car rental"] == pytest.approx(without["car rental"] * 7)
    for query in set(without) - {"car rental"}:
        assert with_pairs[query] == pytest.approx(without[query]), query
    # Pairs count in either order: "car wash" followed "car parts" once, and the other way once.
    ac.set_params(session_weight=2.0)
    assert _scores(ac, "car parts", "car w")["car wash"] == pytest.approx(
        _scores(ac.set_params(session_weight=0.0), "car parts", "car w")["car wash"] * 5)


def test_session_weight_zero_stores_no_pairs(tmp_path):
    prev, prefix, nxt = RERANK_DATA
    ac = SessionAutocompleter(max_leaf_size=4, session_weight=0).fit(prev, prefix, nxt)
    assert ac.session_pairs_ is None
    ac.save(tmp_path / "m")
    assert not (tmp_path / "m" / "session_pairs.npz").exists()
    assert SessionAutocompleter.load(tmp_path / "m").suggest("pizza", "c") == ac.suggest("pizza", "c")


def test_rerank_round_trip_and_batch(data, tmp_path):
    (prev, prefix, nxt), (vprev, vprefix, _) = data
    ac = SessionAutocompleter(max_leaf_size=4).fit(prev, prefix, nxt)
    assert ac.session_pairs_.nnz > 0
    single = [ac.suggest(p, q, k=5) for p, q in zip(vprev[:60], vprefix[:60])]
    assert ac.suggest_batch(vprev[:60], vprefix[:60], k=5) == single
    ac.save(tmp_path / "m")
    back = SessionAutocompleter.load(tmp_path / "m")
    assert back.get_params() == ac.get_params()
    assert back.suggest_batch(vprev[:60], vprefix[:60], k=5) == single
    saved = (tmp_path / "m" / "session_pairs.npz").read_bytes()
    for damaged in (b"not an npz", saved[: len(saved) // 2]):
        (tmp_path / "m" / "session_pairs.npz").write_bytes(damaged)
        with pytest.raises(ModelFormatError, match="session_pairs"):
            SessionAutocompleter.load(tmp_path / "m")


@pytest.mark.parametrize("kwargs, message", [
    (dict(overlap_weight=-1.0), "overlap_weight must be a finite number >= 0"),
    (dict(session_weight=float("inf")), "session_weight must be a finite number >= 0"),
    (dict(overlap_weight="3"), "overlap_weight must be"),
    (dict(exclude_previous="yes"), "exclude_previous must be True or False"),
])
def test_bad_rerank_parameters(kwargs, message):
    prev, prefix, nxt = RERANK_DATA
    with pytest.raises(InvalidParameterError, match=message):
        SessionAutocompleter(**kwargs).fit(prev, prefix, nxt)

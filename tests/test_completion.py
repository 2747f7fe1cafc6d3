"""The prefix top-k completion index (pecos_rs.qac.CompletionIndex): suggestions against PECOS's
recursive suggester (qac_reference.py) and a scan of the definition, prefix ranges, batches,
persistence, and bad input."""

from __future__ import annotations

import copy
import json
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from pecos_rs import InvalidInputError, InvalidParameterError, ModelFormatError, _pecos_rs
from pecos_rs.qac import CompletionIndex
from qac_reference import by_count, pecos_suggest, prefix_table, total_counts

# One to four UTF-8 bytes; "è" and "é" share their lead byte; NUL sorts before everything.
CHARS = ["a", "b", " ", "è", "é", "中", "😀", "\x00", "\U0010ffff"]
WORDS = st.text(alphabet=st.sampled_from(CHARS), max_size=6)
# Few distinct counts, so that ties are common; halves sum exactly.
LOGS = st.lists(st.tuples(WORDS, st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])), min_size=1, max_size=40)

NESTED = [("ab", 1.0), ("a", 2.0), ("abc", 1.0), ("", 1.0), ("ab", 1.0), ("b", 2.0), ("abd", 0.0)]


def fit(log, **params):
    queries, counts = zip(*log)
    return CompletionIndex(**params).fit(list(queries), list(counts))


def every_prefix(queries) -> set:
    return {q[:i] for q in queries for i in range(len(q) + 1)}


def ring_scan(totals: dict, prefix: str, k: int) -> list:
    """The definition, by scanning: the completions of `prefix`, then of each shorter head, each
    head adding its completions not yet taken, by count then code point order."""
    ranked = by_count(totals)
    out = []
    for cut in range(len(prefix), -1, -1):
        out += [(q, c) for q, c in ranked if q.startswith(prefix[:cut]) and (q, c) not in out]
    return out[:k]


@given(log=LOGS, extra=st.lists(WORDS, max_size=8), k=st.integers(1, 12))
@example(log=NESTED, extra=["abz", "c", "aa"], k=3)
@example(log=[("é", 1.0), ("èa", 1.0), ("e", 1.0)], extra=["éa", "èb", "\U0010ffff"], k=2)
def test_suggestions_equal_pecos_recursion_and_the_definition(log, extra, k):
    index = fit(log)
    totals = total_counts(*zip(*log))
    table = prefix_table(totals, k)
    for prefix in sorted(every_prefix(totals) | set(extra)):
        got = index.suggest(prefix, k)
        assert got == pecos_suggest(table, prefix, k), prefix
        assert got == ring_scan(totals, prefix, k), prefix
    # More than there are: every query, by count.
    assert index.suggest("zzz", len(totals) + 3) == by_count(totals)


@given(log=LOGS, extra=st.lists(WORDS, max_size=8))
@example(log=NESTED, extra=["abz", "c", "aa", "\x00"])
def test_prefix_ranges_and_accessors_equal_a_scan(log, extra):
    index = fit(log)
    totals = total_counts(*zip(*log))
    queries = index.queries_
    assert queries == sorted(totals)
    assert index.counts_.tolist() == [totals[q] for q in queries]
    assert index.n_queries_ == len(index.index_) == len(totals)
    for prefix in every_prefix(totals) | set(extra):
        start, end = index.prefix_range(prefix)
        assert [i for i, q in enumerate(queries) if q.startswith(prefix)] == list(range(start, end))
        assert start == sum(q < prefix for q in queries)


def test_counts_default_to_one_and_repeats_add_up():
    index = CompletionIndex().fit(iter(["b", "a", "b", "c", "b", "a"]))
    assert index.suggest("", 3) == [("b", 3.0), ("a", 2.0), ("c", 1.0)]
    ids, counts = index.index_.top_k_ids("", 2)
    assert ids.dtype == np.int64 and ids.tolist() == [1, 0]
    assert counts.dtype == np.float64 and counts.tolist() == [3.0, 2.0]
    # numpy counts and k work as Python ones.
    index = CompletionIndex().fit(np.array(["x", "y"]).tolist(), np.array([1, 5], dtype=np.int32))
    assert index.suggest("", np.int64(1)) == [("y", 5.0)]


@given(log=LOGS, prefixes=st.lists(WORDS, max_size=30), k=st.integers(1, 8))
def test_batch_equals_single_lookups_for_any_thread_count(log, prefixes, k):
    single = [fit(log).suggest(p, k) for p in prefixes]
    for n_jobs in (None, 2, -1):
        assert fit(log, n_jobs=n_jobs).suggest_batch(prefixes, k) == single
    assert fit(log).suggest_batch(tuple(prefixes), k=k) == single


def test_concurrent_lookups_equal_serial_ones():
    rng = np.random.default_rng(0)
    queries = ["".join(rng.choice(list("abcé "), size=rng.integers(1, 8))) for _ in range(5000)]
    index = CompletionIndex(n_jobs=2).fit(queries, rng.integers(0, 50, size=5000))
    prefixes = [q[: rng.integers(0, 5)] for q in queries[:400]] + ["zz", "é é"]
    serial = [index.suggest(p, 7) for p in prefixes]
    with ThreadPoolExecutor(max_workers=4) as pool:
        singles = list(pool.map(lambda p: index.suggest(p, 7), prefixes * 2))
        batches = list(pool.map(lambda part: index.suggest_batch(part, 7), [prefixes] * 4))
    assert singles == serial * 2
    assert batches == [serial] * 4


def assert_same_index(a, b):
    assert a.get_params() == b.get_params()
    assert a.queries_ == b.queries_
    assert a.counts_.tobytes() == b.counts_.tobytes()
    for prefix in ["", "a", "ab", "abz", "b", "q"]:
        assert a.suggest(prefix, 4) == b.suggest(prefix, 4)


def test_save_load_and_pickle_round_trip(tmp_path):
    index = fit(NESTED, n_jobs=2)
    index.save(tmp_path / "mfq.bin")
    assert_same_index(CompletionIndex.load(tmp_path / "mfq.bin"), index)
    assert_same_index(CompletionIndex.load(str(tmp_path / "mfq.bin")), index)
    assert_same_index(pickle.loads(pickle.dumps(index)), index)
    assert_same_index(copy.deepcopy(index), index)
    raw = index.index_
    assert raw.to_bytes() == _pecos_rs.CompletionIndex.from_bytes(raw.to_bytes()).to_bytes()
    assert pickle.loads(pickle.dumps(raw)).queries == raw.queries
    meta = json.loads(raw.metadata)
    assert (meta["format"], meta["format_version"], meta["params"]) == (
        "pecos_rs.qac.CompletionIndex", 1, {"n_jobs": 2})


def test_corrupt_truncated_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "mfq.bin"
    fit(NESTED).save(path)
    good = path.read_bytes()
    for n in [0, 7, 8, 12, 20, 40, len(good) // 2, len(good) - 4, len(good) - 1]:
        path.write_bytes(good[:n])
        with pytest.raises(ModelFormatError):
            CompletionIndex.load(path)
    for i in range(0, len(good), 3):
        damaged = bytearray(good)
        damaged[i] ^= 0x10
        path.write_bytes(bytes(damaged))
        with pytest.raises(ModelFormatError):
            CompletionIndex.load(path)
    path.write_bytes(good + b"\x00")
    with pytest.raises(ModelFormatError, match="size"):
        CompletionIndex.load(path)
    with pytest.raises(ModelFormatError, match="not a pecos_rs completion index"):
        _pecos_rs.CompletionIndex.from_bytes(b"PECOSTXT" + good[8:])
    with pytest.raises(FileNotFoundError):
        CompletionIndex.load(tmp_path / "absent.bin")


@pytest.mark.parametrize("meta, message", [
    ({"format": "pecos_rs.XRLinearClassifier", "format_version": 1}, "does not hold a pecos_rs CompletionIndex"),
    (None, "does not hold a pecos_rs CompletionIndex"),
    ({"format": "pecos_rs.qac.CompletionIndex", "format_version": 2}, "completion index format version 2"),
    ({"format": "pecos_rs.qac.CompletionIndex", "format_version": 1}, "unusable parameters"),
    ({"format": "pecos_rs.qac.CompletionIndex", "format_version": 1, "params": {"k": 3}}, "unusable parameters"),
])
def test_files_of_other_artifacts_say_what_is_wrong(meta, message, tmp_path):
    path = tmp_path / "other.bin"
    _pecos_rs.CompletionIndex(["a"], [1.0], metadata=json.dumps(meta)).save(str(path))
    with pytest.raises(ModelFormatError, match=message):
        CompletionIndex.load(path)


@pytest.mark.parametrize("call, error, message", [
    (lambda: CompletionIndex().fit(["a", 3]), InvalidInputError, "query 1 is a int, not a str"),
    (lambda: CompletionIndex().fit(["a", "\ud800"]), InvalidInputError, "query 1 is not valid Unicode"),
    (lambda: CompletionIndex().fit("abc"), InvalidInputError, "iterable of str, not a single str"),
    (lambda: CompletionIndex().fit(3), InvalidInputError, "iterable of str, got int"),
    (lambda: CompletionIndex().fit([]), InvalidInputError, "no queries"),
    (lambda: CompletionIndex().fit(["a", "b"], [1.0, float("nan")]), InvalidInputError, "count 1 is NaN"),
    (lambda: CompletionIndex().fit(["a", "b"], [-1, 2]), InvalidInputError, "count 0 is -1"),
    (lambda: CompletionIndex().fit(["a"], [np.inf]), InvalidInputError, "count 0 is inf"),
    (lambda: CompletionIndex().fit(["a", "a"], [1e308, 1e308]), InvalidInputError, '"a" sum to infinity'),
    (lambda: CompletionIndex().fit(["a", "b"], [1.0]), InvalidInputError, "expected 2, got 1"),
    (lambda: CompletionIndex().fit(["a"], ["x"]), InvalidInputError, "counts must be numbers"),
    (lambda: CompletionIndex().fit(["a"], "1"), InvalidInputError, "counts must be numbers"),
    (lambda: CompletionIndex().fit(["a"], [[1.0]]), InvalidInputError, r"shape \(1, 1\)"),
    (lambda: CompletionIndex(n_jobs=0).fit(["a"]), InvalidParameterError, "n_jobs"),
    (lambda: fit(NESTED).suggest(3), InvalidInputError, "prefix is a int, not a str"),
    (lambda: fit(NESTED).suggest(b"a"), InvalidInputError, "prefix is a bytes, not a str"),
    (lambda: fit(NESTED).suggest("a", 0), InvalidParameterError, "k must be an integer >= 1, got 0"),
    (lambda: fit(NESTED).suggest("a", -2), InvalidParameterError, "got -2"),
    (lambda: fit(NESTED).suggest("a", 2.0), InvalidParameterError, "got 2.0"),
    (lambda: fit(NESTED).suggest("a", True), InvalidParameterError, "got True"),
    (lambda: fit(NESTED).suggest("a", "3"), InvalidParameterError, "got \"3\""),
    (lambda: fit(NESTED).suggest_batch(["a", None]), InvalidInputError, "prefix 1 is a NoneType"),
    (lambda: fit(NESTED).suggest_batch("ab"), InvalidInputError, "not a single str"),
    (lambda: fit(NESTED).suggest_batch(["a"], k=0), InvalidParameterError, "k must be"),
    (lambda: fit(NESTED).prefix_range(None), InvalidInputError, "prefix is a NoneType"),
    (lambda: _pecos_rs.CompletionIndex(["a"], "x"), InvalidInputError, "counts must be a 1-D float64 array"),
    (lambda: _pecos_rs.CompletionIndex(["a"], [None]), InvalidInputError, "counts must be a 1-D float64 array"),
    (lambda: _pecos_rs.CompletionIndex(["a"], [1.0], metadata="{"), InvalidInputError, "metadata"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_is_refused_with_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_an_unfitted_index_says_so():
    for call in (lambda m: m.suggest("a"), lambda m: m.prefix_range("a"), lambda m: m.queries_,
                 lambda m: m.save("x")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call(CompletionIndex())

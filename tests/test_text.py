"""pecos_rs.text: the word / character / position-weighted TF-IDF featurizers.

* the issue's example, exactly;
* property tests against the pure-Python reference (tests/text_reference.py) on random Unicode;
* agreement with scikit-learn where the configurations coincide;
* determinism (threads, batches, generators), scikit-learn integration, persistence, bad input.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import math
import pickle
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import norm as row_norms_of
from hypothesis import event, given, note
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.pipeline import Pipeline

import pecos_rs
import pecos_rs.text as text
import text_reference as ref
from helpers import DATA_DIR
from pecos_rs import InvalidInputError, InvalidParameterError, ModelFormatError
from pecos_rs.text import CharTfidf, PositionWeightedCharTfidf, TextFeaturizer, WordTfidf

#: Reference kind of each featurizer class.
KINDS = {"word": WordTfidf, "char_in_words": CharTfidf, "chars": PositionWeightedCharTfidf}
FEATURIZERS = [WordTfidf, CharTfidf, PositionWeightedCharTfidf]

ISSUE = "Echo with screen"

# A small corpus exercising scripts, combining characters, compatibility characters and spaces.
CORPUS = [
    "Echo with screen",
    "echo dot with clock",
    "Kindle Paperwhite e-reader, 6.8\" display",
    "",
    "   \t\n ",
    "caf\u00e9 cafe\u0301 CAF\u00c9",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 mixed \u03a9\u03bc\u03ad\u03b3\u03b1",
    "\ufb01ne \u00bd \u2167 \u0130stanbul stra\u00dfe",
    "a tv",
    "x" * 120,
    "snake_case words_with_underscores 42",
    "echo echo echo screen",
]


# ------------------------------------------------------------------------------------ helpers


def assert_csr_format(X, n_rows=None, n_cols=None):
    """A float32 CSR matrix with strictly increasing column indices in every row."""
    assert isinstance(X, sp.csr_matrix), type(X)
    assert X.dtype == np.float32
    if n_rows is not None:
        assert X.shape[0] == n_rows
    if n_cols is not None:
        assert X.shape[1] == n_cols
    assert X.indptr[0] == 0 and X.indptr[-1] == len(X.indices) == len(X.data)
    assert np.all(np.diff(X.indptr) >= 0)
    for i in range(X.shape[0]):
        row = X.indices[X.indptr[i]:X.indptr[i + 1]]
        assert np.all(np.diff(row) > 0), f"row {i} has unsorted or duplicate indices"
        assert np.all((row >= 0) & (row < X.shape[1]))
    assert X.has_sorted_indices


def assert_matches(X, R, rtol=1e-5, atol=1e-7):
    """Same structure exactly, values close (R from the reference)."""
    assert_csr_format(X)
    assert X.shape == R.shape
    np.testing.assert_array_equal(X.indptr, R.indptr)
    np.testing.assert_array_equal(X.indices, R.indices)
    np.testing.assert_allclose(X.data, R.data, rtol=rtol, atol=atol)


def assert_identical(X, Y):
    """Bitwise-identical CSR matrices."""
    assert X.shape == Y.shape and X.dtype == Y.dtype
    np.testing.assert_array_equal(X.indptr, Y.indptr)
    np.testing.assert_array_equal(X.indices, Y.indices)
    assert X.data.tobytes() == Y.data.tobytes(), "values differ bitwise"


def assert_same_fit(a, b):
    """Two fitted single featurizers with the same columns and bitwise-equal idf."""
    assert a.get_feature_names_out().tolist() == b.get_feature_names_out().tolist()
    assert a.idf_.tobytes() == b.idf_.tobytes()


def as_dict(featurizer, X, row=0):
    names = featurizer.get_feature_names_out()
    lo, hi = X.indptr[row], X.indptr[row + 1]
    return {names[j]: float(v) for j, v in zip(X.indices[lo:hi], X.data[lo:hi])}


def synthetic_docs(n, seed=0):
    """`n` short documents drawn from a small multilingual vocabulary."""
    words = ["echo", "dot", "with", "screen", "kindle", "paperwhite", "caf\u00e9", "\u65e5\u672c",
             "\u03a9\u03bc\u03ad\u03b3\u03b1", "tv", "a", "4k", "usb_c", "e\u0301cole", "x" * 70]
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=rng.integers(0, 9))) for _ in range(n)]


# ------------------------------------------------------------------------------- the issue


def test_issue_example_word_ngrams():
    f = WordTfidf().fit([ISSUE])
    want = {"echo", "with", "screen", "echo with", "with screen", "echo with screen"}
    assert f.get_feature_names_out().tolist() == sorted(want)
    X = f.transform([ISSUE])
    # One document: every n-gram has tf 1 and the same idf, so every value is 1/sqrt(6).
    assert as_dict(f, X) == pytest.approx({g: 1 / math.sqrt(6) for g in want}, rel=1e-6)


def test_issue_example_char_trigrams_with_end_marker():
    f = CharTfidf().fit([ISSUE])
    want = ["ech", "cho", "ho#", "wit", "ith", "th#", "scr", "cre", "ree", "een", "en#"]
    assert f.get_feature_names_out().tolist() == sorted(want)
    X = f.transform([ISSUE])
    assert as_dict(f, X) == pytest.approx({g: 1 / math.sqrt(11) for g in want}, rel=1e-6)


def test_issue_example_with_start_marker():
    f = CharTfidf(start_marker="$").fit([ISSUE])
    want = ["$ec", "ech", "cho", "ho#", "$wi", "wit", "ith", "th#",
            "$sc", "scr", "cre", "ree", "een", "en#"]
    assert f.get_feature_names_out().tolist() == sorted(want)
    f = CharTfidf(start_marker="<", end_marker=">", ngram_range=(2, 2)).fit(["tv a"])
    assert f.get_feature_names_out().tolist() == sorted(["<t", "tv", "v>", "<a", "a>"])


def test_marked_words_shorter_than_n_are_their_own_feature():
    f = CharTfidf().fit(["a tv"])
    assert f.get_feature_names_out().tolist() == ["a#", "tv#"]
    f = CharTfidf(end_marker="", ngram_range=(3, 4)).fit(["ab abcde"])
    assert f.get_feature_names_out().tolist() == ["ab", "abc", "abcd", "bcd", "bcde", "cde"]


def test_position_weighted_example():
    f = PositionWeightedCharTfidf(ngram_range=(1, 2), use_idf=False, norm=None).fit(["ab \t c"])
    X = f.transform(["ab \t c"])
    want = {"a": 1.0, "b": 0.5, " ": 1 / 3, "c": 0.25, "ab": 1.0, "b ": 0.5, " c": 1 / 3}
    assert as_dict(f, X) == pytest.approx(want, rel=1e-6)
    # Repeated n-grams add their position weights; whitespace is not stripped.
    f = PositionWeightedCharTfidf(ngram_range=(1, 1), use_idf=False, norm=None,
                                  position_decay="inverse_sqrt").fit([" aa "])
    got = as_dict(f, f.transform([" aa "]))
    assert got == pytest.approx({" ": 1 + 1 / 2, "a": 1 / math.sqrt(2) + 1 / math.sqrt(3)}, rel=1e-6)


def test_text_featurizer_example():
    f = TextFeaturizer()
    X = f.fit_transform(["echo with screen", "kindle paperwhite"])
    assert X.shape == (2, 34) and X.dtype == np.float32
    names = f.get_feature_names_out().tolist()
    assert names[:1] == ["word__echo"] and "char__ho#" in names
    assert len(names) == X.shape[1] and all(n.split("__")[0] in ("word", "char") for n in names)
    np.testing.assert_allclose(row_norms_of(X, axis=1), 1.0, rtol=1e-6)


def test_default_token_pattern():
    assert text.DEFAULT_TOKEN_PATTERN == ref.DEFAULT_TOKEN_PATTERN
    for cls in (WordTfidf, CharTfidf):
        assert cls().token_pattern == ref.DEFAULT_TOKEN_PATTERN


def test_reference_self_check():
    """The reference on hand-computed cases (guards the oracle itself)."""
    assert ref.tokenize("e\u0301cole, x_1! \u00bd") == ["e\u0301cole", "x_1", "\u00bd"]
    assert ref.collapse_whitespace(" a\u3000\t b\x1c") == " a b\x1c"
    assert ref.char_in_word_ngrams(["echo"], (3, 3)) == [("ech", 1.0), ("cho", 1.0), ("ho#", 1.0)]
    assert ref.hash_bucket("a", 16) == HashingVectorizer(n_features=16, analyzer=lambda d: d,
                                                         alternate_sign=False).transform([["a"]]).indices[0]


# ------------------------------------------------------------------------- property tests

# Characters: code points that Python's unicodedata knows (category != "Cn"), surrogates ("Cs")
# excluded. Python 3.11's unicodedata is Unicode 14 while the Rust regex tables (regex-syntax
# 0.8) are Unicode 16: a code point unassigned in 14 may be a letter in 16, so the reference
# (which asks unicodedata) and the library would legitimately disagree on it. For assigned code
# points the two agree on membership in L / N / M / Pc. A lone surrogate cannot be encoded to
# UTF-8; it is tested as bad input.
any_char = st.characters(exclude_categories=("Cn", "Cs"))

WORDS = [
    "echo", "Echo", "with", "screen", "a", "tv", "42", "x1_y",
    "\u00c9COLE", "e\u0301cole", "caf\u00e9", "\u0301",  # precomposed, combining, lone mark
    "\u65e5\u672c\u8a9e", "\u03a9\u03bc\u03ad\u03b3\u03b1", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u0130stanbul", "stra\u00dfe", "\ufb01ne", "\u00bd", "\u2167", "\u01c5", "\u212b", "\uff21\uff22",
    "\u0915\u094d\u0937", "\U0001f600", "\u2460",
]
SEPARATORS = [" ", "  ", "\t", "\n", "\u3000", "\u00a0", "\u2028", "\u0085", "\x1c", "\u200b",
              "-", ", ", "...", "\u00b7", " \u0301 "]

words = st.one_of(st.sampled_from(WORDS), st.text(any_char, min_size=1, max_size=6))


@st.composite
def sentences(draw):
    parts = draw(st.lists(words, max_size=8))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(parts) + 1, max_size=len(parts) + 1))
    return seps[0] + "".join(w + s for w, s in zip(parts, seps[1:]))


documents = st.one_of(
    sentences(),
    st.text(any_char, max_size=30),
    st.sampled_from(["", " ", " \t\n\u3000 ", "e\u0301", "\u0301\u0301"]),
    st.builds(lambda w, k: w * k, st.sampled_from(["ab", "\u00e9", "\u65e5", "e\u0301"]),
              st.integers(40, 150)),  # very long words
)
corpora = st.lists(documents, min_size=1, max_size=8)


@st.composite
def common_params(draw, hashing=None):
    """Options shared by every featurizer (hashing: None = either, True / False = forced)."""
    p = {}
    p["lowercase"] = draw(st.booleans())
    p["unicode_normalization"] = draw(st.sampled_from(["NFKC", "NFC", "NFD", "NFKD", None]))
    p["strip_accents"] = draw(st.sampled_from([None, "unicode", "ascii"]))
    # Document-frequency bounds in one example out of three (most examples should fit a
    # vocabulary); max_df < min_df and bounds removing everything still come up.
    if draw(st.sampled_from([False, False, True])):
        p["min_df"] = draw(st.one_of(st.integers(0, 3), st.floats(0.0, 0.6)))
        p["max_df"] = draw(st.one_of(st.just(1.0), st.integers(1, 9), st.floats(0.3, 1.0)))
    p["binary"] = draw(st.booleans())
    p["sublinear_tf"] = draw(st.booleans())
    p["use_idf"] = draw(st.booleans())
    p["smooth_idf"] = draw(st.booleans())
    p["norm"] = draw(st.sampled_from(["l2", "l1", None]))
    use_hashing = draw(st.booleans()) if hashing is None else hashing
    if use_hashing:
        p["n_features"] = draw(st.one_of(st.integers(1, 64), st.sampled_from([2**10, 2**16])))
    else:
        p["max_features"] = draw(st.one_of(st.none(), st.integers(1, 30)))
    p["n_jobs"] = draw(st.sampled_from([1, 2]))
    return p


def ngram_ranges(lo_max, width):
    return st.integers(1, lo_max).flatmap(lambda lo: st.tuples(st.just(lo), st.integers(lo, lo + width)))


analyzer_params = {
    "word": st.fixed_dictionaries({"ngram_range": ngram_ranges(2, 2)}),
    "char_in_words": st.fixed_dictionaries({
        "ngram_range": ngram_ranges(5, 3),
        "start_marker": st.sampled_from(["", "$", "<<", "\u00e9"]),
        "end_marker": st.sampled_from(["#", "", ">", "\u0301"]),
    }),
    "chars": st.fixed_dictionaries({
        "ngram_range": ngram_ranges(4, 2),
        "position_decay": st.sampled_from(["inverse", "inverse_sqrt", "exponential", "none"]),
        "decay_rate": st.one_of(st.sampled_from([0.5, 0.9, 1.0]), st.floats(0.05, 1.0)),
    }),
}


def check_against_reference(kind, params, fit_docs, new_docs):
    """fit_transform, fit().transform() and the columns of the library equal the reference's."""
    note(f"{kind} {params!r}")
    r = ref.ReferenceTfidf(kind, **params)
    try:
        R_fit = r.fit_transform(fit_docs)
    except ref.EmptyVocabulary:
        event("empty vocabulary")
        with pytest.raises(InvalidInputError, match="empty vocabulary"):
            KINDS[kind](**params).fit(fit_docs)
        with pytest.raises(InvalidInputError):
            KINDS[kind](**params).fit_transform(fit_docs)
        return None
    except ref.BadBounds:
        event("max_df < min_df")
        with pytest.raises(InvalidParameterError):
            KINDS[kind](**params).fit(fit_docs)
        return None
    R_new = r.transform(new_docs)
    event("fitted")

    f = KINDS[kind](**params)
    X_fit = f.fit_transform(fit_docs)
    assert f.get_feature_names_out().tolist() == r.feature_names_
    np.testing.assert_allclose(f.idf_, r.idf_, rtol=1e-12)
    assert_matches(X_fit, R_fit)

    g = KINDS[kind](**params).fit(fit_docs)
    assert_same_fit(f, g)
    assert_identical(g.transform(fit_docs), X_fit)
    assert_matches(f.transform(new_docs), R_new)
    return f


@given(fit_docs=corpora, new_docs=corpora, a=analyzer_params["word"], c=common_params())
def test_word_tfidf_matches_reference(fit_docs, new_docs, a, c):
    check_against_reference("word", {**a, **c}, fit_docs, new_docs)


@given(fit_docs=corpora, new_docs=corpora, a=analyzer_params["char_in_words"], c=common_params())
def test_char_tfidf_matches_reference(fit_docs, new_docs, a, c):
    check_against_reference("char_in_words", {**a, **c}, fit_docs, new_docs)


@given(fit_docs=corpora, new_docs=corpora, a=analyzer_params["chars"], c=common_params())
def test_position_weighted_matches_reference(fit_docs, new_docs, a, c):
    check_against_reference("chars", {**a, **c}, fit_docs, new_docs)


@given(
    fit_docs=st.lists(st.text(st.sampled_from("ab c"), min_size=20, max_size=200), min_size=1, max_size=4),
    rate=st.floats(0.01, 0.3),
    norm=st.sampled_from(["l2", "l1", None]),
    sublinear_tf=st.booleans(),
    n_features=st.sampled_from([None, 3]),
)
def test_tiny_position_weights_match_reference(fit_docs, rate, norm, sublinear_tf, n_features):
    """Exponential decay on long strings: weights underflowing float32 (and float64) are dropped."""
    params = dict(ngram_range=(1, 2), position_decay="exponential", decay_rate=rate, norm=norm,
                  sublinear_tf=sublinear_tf, n_features=n_features)
    f = check_against_reference("chars", params, fit_docs, fit_docs[::-1])
    if f is not None:
        assert np.all(f.transform(fit_docs).data != 0)


@given(kind=st.sampled_from(list(KINDS)), data=st.data(), fit_docs=corpora, new_docs=corpora)
def test_hashing_mode_matches_reference(kind, data, fit_docs, new_docs):
    params = {**data.draw(analyzer_params[kind]), **data.draw(common_params(hashing=True))}
    f = check_against_reference(kind, params, fit_docs, new_docs)
    if f is not None:
        m = params["n_features"]
        assert f.get_feature_names_out().tolist() == [f"hash_{i}" for i in range(m)]
        with pytest.raises(AttributeError):
            f.vocabulary_  # noqa: B018


@given(
    kind=st.sampled_from(["word", "char_in_words"]),
    fit_docs=st.lists(st.sampled_from(["a", "b", "c", "d", "a b", "b c", "c d a", "d d", ""]), min_size=1,
                      max_size=10),
    max_features=st.integers(1, 12),
    binary=st.booleans(),
    min_df=st.integers(1, 2),
)
def test_max_features_ties_match_reference(kind, fit_docs, max_features, binary, min_df):
    """Tiny vocabularies: many n-grams tie in total count, ties go to the earlier n-gram."""
    params = dict(ngram_range=(1, 2), max_features=max_features, binary=binary, min_df=min_df)
    check_against_reference(kind, params, fit_docs, ["a b c d", "d c b a"])


# ASCII-only text and patterns: Python's re and Rust's regex agree there (their Unicode \s, \w
# and \b tables differ; \x1c-\x1f are whitespace for Python's \s, not for Rust's).
ascii_text = st.text(st.sampled_from("abcXYZ019_-., <>!\t\n"), max_size=30)
ascii_patterns = [r"\S+", r"[a-z0-9]+", r"(?i)[a-z]+", r"<([a-z]+)>", r"([a-c]+)[0-9]*", r"\w+", r"[^ ,]+"]


@given(
    kind=st.sampled_from(["word", "char_in_words"]),
    pattern=st.sampled_from(ascii_patterns),
    fit_docs=st.lists(ascii_text, min_size=1, max_size=8),
    new_docs=st.lists(ascii_text, min_size=1, max_size=4),
    lowercase=st.booleans(),
    ngram_range=ngram_ranges(2, 2),
)
def test_custom_token_patterns_match_reference(kind, pattern, fit_docs, new_docs, lowercase, ngram_range):
    params = dict(token_pattern=pattern, lowercase=lowercase, ngram_range=ngram_range)
    check_against_reference(kind, params, fit_docs, new_docs)


@st.composite
def text_featurizer_params(draw):
    n_blocks = draw(st.integers(1, 3))
    kinds = draw(st.lists(st.sampled_from(list(KINDS)), min_size=n_blocks, max_size=n_blocks))
    blocks = []
    for i, kind in enumerate(kinds):
        c = draw(common_params())
        c.update(min_df=1, max_df=1.0)  # keep the blocks fittable
        c.pop("max_features", None)
        blocks.append((f"b{i}", kind, {**draw(analyzer_params[kind]), **c}))
    weights = draw(st.one_of(st.none(), st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.25]),
                                                min_size=n_blocks, max_size=n_blocks)))
    norm = draw(st.sampled_from(["l2", "l1", None]))
    return blocks, weights, norm


@given(p=text_featurizer_params(), fit_docs=corpora, new_docs=corpora)
def test_text_featurizer_matches_reference(p, fit_docs, new_docs):
    blocks, weights, norm = p
    note(repr(p))
    r = ref.ReferenceTextFeaturizer([(n, ref.ReferenceTfidf(k, **kw)) for n, k, kw in blocks], weights, norm)
    f = TextFeaturizer([(n, KINDS[k](**kw)) for n, k, kw in blocks], block_weights=weights, norm=norm)
    try:
        R = r.fit_transform(fit_docs)
    except ref.EmptyVocabulary:
        with pytest.raises(InvalidInputError):
            f.fit(fit_docs)
        return
    X = f.fit_transform(fit_docs)
    assert f.get_feature_names_out().tolist() == r.get_feature_names_out()
    assert_matches(X, R)
    assert_matches(f.transform(new_docs), r.transform(new_docs))


# --------------------------------------------------------------------- scikit-learn agreement


@pytest.fixture(scope="module")
def debian_docs():
    """The first 300 descriptions of the debian-depends training set."""
    path = DATA_DIR / "debian-depends" / "X.trn.txt.gz"
    if not path.is_file():
        pytest.skip(f"real text {path} not found (../shared/data is absent)")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in itertools.islice(f, 300)]


SKLEARN_WORD_PATTERN = r"(?u)\b\w\w+\b"


@pytest.mark.parametrize("options", [
    {},
    {"sublinear_tf": True, "norm": "l1"},
    {"binary": True, "smooth_idf": False},
    {"use_idf": False, "norm": None},
    {"min_df": 2, "max_df": 0.5},
    {"min_df": 0.01, "max_df": 40},
])
def test_word_tfidf_matches_sklearn(debian_docs, options):
    ours = WordTfidf(token_pattern=SKLEARN_WORD_PATTERN, unicode_normalization=None, ngram_range=(1, 2),
                     **options)
    theirs = TfidfVectorizer(ngram_range=(1, 2), dtype=np.float32, **options)
    X, S = ours.fit_transform(debian_docs), theirs.fit_transform(debian_docs)
    assert ours.get_feature_names_out().tolist() == theirs.get_feature_names_out().tolist()
    assert ours.vocabulary_ == theirs.vocabulary_
    if options.get("use_idf", True):
        np.testing.assert_allclose(ours.idf_, theirs.idf_, rtol=1e-6)
    S = sp.csr_matrix(S)
    S.sort_indices()
    assert_matches(X, S, rtol=1e-5, atol=1e-6)
    assert_matches(ours.transform(debian_docs[:40]), sp.csr_matrix(theirs.transform(debian_docs[:40])),
                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_features", [1, 7, 2**10, 2**20])
def test_hashing_columns_match_sklearn_hashing_vectorizer(debian_docs, n_features):
    counts = WordTfidf(token_pattern=SKLEARN_WORD_PATTERN, unicode_normalization=None, ngram_range=(1, 2),
                       n_features=n_features, use_idf=False, norm=None)
    hv = HashingVectorizer(n_features=n_features, ngram_range=(1, 2), alternate_sign=False, norm=None,
                           dtype=np.float32)
    X, H = counts.fit_transform(debian_docs), hv.transform(debian_docs)
    H.sort_indices()
    assert_identical(X, H)  # integer counts: exact
    tfidf = clone(counts).set_params(use_idf=True, norm="l2")
    T = TfidfTransformer().fit_transform(H)
    assert_matches(tfidf.fit_transform(debian_docs), sp.csr_matrix(T, dtype=np.float32), atol=1e-6)


def test_position_none_matches_sklearn_char_analyzer(debian_docs):
    # ASCII, and no whitespace but single spaces: scikit-learn only collapses runs of 2+ spaces.
    docs = [d for d in debian_docs if d.isascii() and "\t" not in d and "\n" not in d]
    assert len(docs) > 250
    ours = PositionWeightedCharTfidf(position_decay="none", unicode_normalization=None)
    theirs = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), dtype=np.float32)
    X, S = ours.fit_transform(docs), sp.csr_matrix(theirs.fit_transform(docs))
    assert ours.get_feature_names_out().tolist() == theirs.get_feature_names_out().tolist()
    S.sort_indices()
    assert_matches(X, S, atol=1e-6)


# --------------------------------------------------------------------------------- behaviour


def test_unknown_ngrams_are_ignored_and_empty_documents_give_empty_rows():
    for cls in FEATURIZERS:
        f = cls().fit(["echo with screen", "kindle"])
        X = f.transform(["zzz qqq", "", "echo ZZZ", "   "])
        assert_csr_format(X, 4, len(f.get_feature_names_out()))
        row_nnz = np.diff(X.indptr)
        if cls is not PositionWeightedCharTfidf:  # its 1-grams "z"... are unknown, but " " is known
            assert row_nnz.tolist()[:2] == [0, 0] and row_nnz[2] > 0
        assert row_nnz[1] == 0
    X = WordTfidf().fit(["a b", "", ""]).fit_transform(["", "a b", " "])
    assert np.diff(X.indptr).tolist() == [0, 3, 0]


def test_transform_of_no_documents():
    f = WordTfidf().fit(["a b"])
    X = f.transform([])
    assert_csr_format(X, 0, 3)
    assert_csr_format(PositionWeightedCharTfidf(n_features=8).fit(["a b"]).transform(iter([])), 0, 8)


def test_text_featurizer_transform_of_no_documents():
    f = TextFeaturizer().fit(["a b"])
    X = f.transform([])
    assert_csr_format(X, 0, len(f.get_feature_names_out()))


def test_empty_documents_count_in_n():
    docs = ["a", "", "", "a b"]
    f = WordTfidf(ngram_range=(1, 1), smooth_idf=False).fit(docs)
    assert f.get_feature_names_out().tolist() == ["a", "b"]
    np.testing.assert_allclose(f.idf_, [math.log(4 / 2) + 1, math.log(4 / 1) + 1], rtol=1e-12)
    g = WordTfidf(ngram_range=(1, 1)).fit(docs)
    np.testing.assert_allclose(g.idf_, [math.log(5 / 3) + 1, math.log(5 / 2) + 1], rtol=1e-12)


DF_DOCS = ["a b c", "a b", "a", "a d", ""]  # df: a 4, b 2, c 1, d 1; N = 5


@pytest.mark.parametrize("min_df, max_df, kept", [
    (1, 1.0, ["a", "b", "c", "d"]),
    (2, 1.0, ["a", "b"]),
    (3, 1.0, ["a"]),
    (0, 1, ["c", "d"]),  # int max_df is a count: df <= 1
    (1, 2, ["b", "c", "d"]),
    (0.4, 1.0, ["a", "b"]),  # fraction: df >= 2.0
    (0.41, 1.0, ["a"]),  # df >= 2.05
    (0.0, 0.8, ["a", "b", "c", "d"]),  # df <= 4.0
    (0.0, 0.79, ["b", "c", "d"]),
    (0.2, 0.2, ["c", "d"]),  # 1.0 <= df <= 1.0
    (2, 0.4, ["b"]),
    (4, 4, ["a"]),
])
def test_min_df_max_df(min_df, max_df, kept):
    f = WordTfidf(ngram_range=(1, 1), min_df=min_df, max_df=max_df).fit(DF_DOCS)
    assert f.get_feature_names_out().tolist() == kept
    h = WordTfidf(ngram_range=(1, 1), min_df=min_df, max_df=max_df, n_features=2**20).fit(DF_DOCS)
    kept_buckets = sorted(ref.hash_bucket(g, 2**20) for g in kept)
    assert np.flatnonzero(h.idf_).tolist() == kept_buckets


@pytest.mark.parametrize("min_df, max_df", [(3, 2), (0.5, 0.3), (3, 0.2), (0.9, 1)])
def test_max_df_below_min_df_is_an_invalid_parameter(min_df, max_df):
    with pytest.raises(InvalidParameterError):
        WordTfidf(min_df=min_df, max_df=max_df).fit(DF_DOCS)


def test_min_df_max_df_removing_everything_is_an_empty_vocabulary():
    with pytest.raises(InvalidInputError, match="empty vocabulary"):
        WordTfidf(ngram_range=(1, 1), min_df=3, max_df=3).fit(DF_DOCS)
    with pytest.raises(InvalidInputError, match="empty vocabulary"):
        WordTfidf(min_df=5).fit(DF_DOCS)
    with pytest.raises(InvalidInputError, match="empty vocabulary"):
        WordTfidf(min_df=5, n_features=8).fit(DF_DOCS)


def test_max_features_keeps_the_most_frequent_with_ties_to_the_earlier_ngram():
    docs = ["b b b a", "c c a", "d d e", "e"]  # totals: b 3, a 2, c 2, d 2, e 2
    names = lambda **kw: WordTfidf(ngram_range=(1, 1), **kw).fit(docs).get_feature_names_out().tolist()  # noqa: E731
    assert names(max_features=1) == ["b"]
    assert names(max_features=2) == ["a", "b"]
    assert names(max_features=3) == ["a", "b", "c"]
    assert names(max_features=5) == names(max_features=100) == ["a", "b", "c", "d", "e"]
    # binary ranks by document frequency: a 2, e 2, then b, c, d 1
    assert names(max_features=2, binary=True) == ["a", "e"]
    assert names(max_features=3, binary=True) == ["a", "b", "e"]
    # max_features applies after min_df / max_df
    assert names(max_features=1, max_df=1) == ["b"]
    assert names(max_features=2, min_df=2) == ["a", "e"]
    # position-weighted totals: the earlier positions win
    pw = PositionWeightedCharTfidf(ngram_range=(1, 1), max_features=2).fit(["xyz", "zyx y"])
    assert pw.get_feature_names_out().tolist() == ["x", "z"]  # x 1+1/3, z 1/3+1, y 1/2+1/2+1/5


def test_max_features_with_hashing_is_an_invalid_parameter():
    with pytest.raises(InvalidParameterError, match="max_features"):
        WordTfidf(max_features=5, n_features=16).fit(DF_DOCS)


def test_vocabulary_is_deterministic_and_independent_of_document_order():
    docs = synthetic_docs(200) + CORPUS
    for cls in FEATURIZERS:
        a = cls(max_features=200).fit(docs)
        b = cls(max_features=200).fit(docs)
        assert_same_fit(a, b)
        perm = np.random.default_rng(1).permutation(len(docs))
        c = cls(max_features=200).fit([docs[i] for i in perm])
        assert_same_fit(a, c)
        assert_identical(a.transform(docs), c.transform(docs))
        assert a.get_feature_names_out().tolist() == sorted(a.get_feature_names_out().tolist())
        assert a.vocabulary_ == {g: i for i, g in enumerate(a.get_feature_names_out())}


def test_output_format():
    for f in [*(cls() for cls in FEATURIZERS), WordTfidf(n_features=32), TextFeaturizer()]:
        X = f.fit_transform(CORPUS)
        assert_csr_format(X, len(CORPUS), len(f.get_feature_names_out()))
        assert_csr_format(f.transform(CORPUS[::-1]), len(CORPUS), X.shape[1])
        norms = row_norms_of(X, axis=1)
        np.testing.assert_allclose(norms[np.diff(X.indptr) > 0], 1.0, rtol=1e-6)
    names = CharTfidf().fit(CORPUS).get_feature_names_out()
    assert names.dtype == object and names.ndim == 1


# Configurations covering every analyzer, hashing, position weights and vocabulary selection.
DETERMINISM_CASES = [
    WordTfidf(),
    WordTfidf(min_df=2, max_features=40, sublinear_tf=True),
    CharTfidf(start_marker="^", ngram_range=(2, 4)),
    CharTfidf(n_features=97, min_df=2),
    PositionWeightedCharTfidf(),
    PositionWeightedCharTfidf(position_decay="exponential", decay_rate=0.7, max_features=50, min_df=2),
    PositionWeightedCharTfidf(n_features=64, position_decay="inverse_sqrt", norm="l1"),
]


@pytest.fixture(scope="module")
def many_docs():
    """Enough documents for several parallel chunks (of 256 documents)."""
    return synthetic_docs(700, seed=3) + CORPUS


@pytest.mark.parametrize("f", DETERMINISM_CASES, ids=repr)
def test_threads_batches_and_fit_transform_give_identical_output(f, many_docs, monkeypatch):
    new = synthetic_docs(50, seed=9)
    base = clone(f).set_params(n_jobs=1).fit(many_docs)
    X_base = base.transform(many_docs)
    for n_jobs in (2, -1, None):
        g = clone(f).set_params(n_jobs=n_jobs)
        assert_identical(g.fit_transform(many_docs), X_base)
        assert_same_fit(g, base)
        assert_identical(g.transform(new), base.transform(new))
    # fit_transform equals fit().transform() exactly
    assert_identical(clone(f).fit_transform(many_docs), X_base)
    # several batches: fit streams, the result must not change
    monkeypatch.setattr(text._documents, "BATCH_DOCS", 3)
    g = clone(f).fit(many_docs)
    assert_same_fit(g, base)
    assert_identical(g.transform(many_docs), X_base)
    assert_identical(clone(f).fit_transform(many_docs), X_base)
    assert_identical(base.transform(new), g.transform(new))


def test_fit_on_a_generator(monkeypatch):
    docs = synthetic_docs(40) + CORPUS
    for f in [WordTfidf(), CharTfidf(n_features=50), PositionWeightedCharTfidf(min_df=2)]:
        a = clone(f).fit(docs)
        b = clone(f).fit(d for d in docs)
        assert_same_fit(a, b)
        assert_identical(clone(f).fit_transform(iter(docs)), a.transform(docs))
        assert_identical(a.transform(d for d in docs), a.transform(docs))
        assert_identical(a.transform(tuple(docs)), a.transform(docs))
    monkeypatch.setattr(text._documents, "BATCH_DOCS", 4)
    a = WordTfidf().fit(docs)
    assert_same_fit(a, WordTfidf().fit(d for d in docs))
    t = TextFeaturizer()
    X = t.fit_transform(d for d in docs)
    assert_identical(X, TextFeaturizer().fit(docs).transform(docs))
    assert_identical(t.transform(iter(docs)), X)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_AS (Linux)")
def test_hashing_memory_follows_the_buckets_seen(tmp_path):
    """n_features = 2^31 - 1 under a 3 GiB address-space limit: nothing may be sized by n_features
    (a dense per-bucket table would need tens of GiB). In a subprocess, so the limit stays there."""
    import resource

    code = textwrap.dedent(f"""
        import pecos_rs.text as T
        f = T.CharTfidf(n_features=2**31 - 1)
        X = f.fit_transform(["echo with screen", "kindle"])
        Y = f.transform(["echo", "zzz"])
        f.save({str(tmp_path / "big.bin")!r})
        g = T.load({str(tmp_path / "big.bin")!r})
        Z = g.transform(["echo", "zzz"])
        assert (Z != Y).nnz == 0
        print(X.shape[1], X.nnz, Y.nnz)
    """)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    r = subprocess.run([sys.executable, "-c", code], preexec_fn=limit, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == [str(2**31 - 1), "16", "3"]
    assert (tmp_path / "big.bin").stat().st_size < 100_000


def test_idf_and_vocabulary_attributes():
    f = WordTfidf(ngram_range=(1, 2)).fit(["a b", "a"])
    assert f.vocabulary_ == {"a": 0, "a b": 1, "b": 2}
    np.testing.assert_allclose(f.idf_, [1.0, math.log(3 / 2) + 1, math.log(3 / 2) + 1], rtol=1e-12)
    # refitting with other parameters refreshes the cached vocabulary
    f.set_params(ngram_range=(2, 2)).fit(["a b", "a"])
    assert f.vocabulary_ == {"a b": 0}
    np.testing.assert_allclose(WordTfidf(use_idf=False).fit(["a b", "a"]).idf_, 1.0)


def test_str_subclasses_and_numpy_string_arrays():
    class Doc(str):
        pass

    docs = synthetic_docs(20)
    a = CharTfidf().fit(docs)
    assert_same_fit(a, CharTfidf().fit(np.array(docs)))
    assert_same_fit(a, CharTfidf().fit([Doc(d) for d in docs]))
    assert_identical(a.transform(np.array(docs)), a.transform(docs))


def test_concurrent_transforms_from_python_threads():
    """transform releases the GIL: concurrent calls on one fitted featurizer give the same rows."""
    from concurrent.futures import ThreadPoolExecutor

    docs = synthetic_docs(300, seed=4)
    for f in (WordTfidf().fit(docs), PositionWeightedCharTfidf(n_features=512).fit(docs), TextFeaturizer().fit(docs)):
        want = f.transform(docs)
        with ThreadPoolExecutor(4) as pool:
            for X in pool.map(lambda _: f.transform(docs), range(8)):
                assert_identical(X, want)


def test_bytes_documents_are_decoded_as_utf8():
    f = WordTfidf().fit([b"caf\xc3\xa9 x", "y"])
    assert f.get_feature_names_out().tolist() == ["caf\u00e9", "caf\u00e9 x", "x", "y"]
    assert_identical(f.transform([b"caf\xc3\xa9"]), f.transform(["caf\u00e9"]))


# ----------------------------------------------------------------- scikit-learn integration


ALL_UNFITTED = [WordTfidf(ngram_range=(1, 2), min_df=1), CharTfidf(start_marker="^"),
                PositionWeightedCharTfidf(position_decay="exponential", decay_rate=0.5),
                WordTfidf(n_features=128), TextFeaturizer(),
                TextFeaturizer([("w", WordTfidf()), ("p", PositionWeightedCharTfidf())], block_weights=[1, 2],
                               norm="l1")]


@pytest.mark.parametrize("f", ALL_UNFITTED, ids=lambda f: type(f).__name__)
def test_clone_get_params_set_params(f):
    c = clone(f)
    assert type(c) is type(f)
    assert repr(c.get_params(deep=False)) == repr(f.get_params(deep=False))
    fitted = clone(f).fit(CORPUS)
    c2 = clone(fitted)
    with pytest.raises(NotFittedError):
        c2.transform(CORPUS)
    assert_identical(c2.fit(CORPUS).transform(CORPUS), fitted.transform(CORPUS))
    if isinstance(f, TextFeaturizer):
        c.set_params(norm=None)
        assert c.get_params()["norm"] is None
    else:
        c.set_params(lowercase=False, norm="l1")
        assert c.get_params()["lowercase"] is False and c.get_params()["norm"] == "l1"
        assert set(c.get_params()) == set(type(f)().get_params())


def test_text_featurizer_deep_params():
    t = TextFeaturizer([("w", WordTfidf()), ("c", CharTfidf())])
    params = t.get_params(deep=True)
    assert params["block_weights"] is None and params["norm"] == "l2"
    t.set_params(block_weights=[2.0, 1.0])
    X = t.fit_transform(CORPUS)
    assert_csr_format(X, len(CORPUS))


def test_pipeline_with_xrlinear(debian_docs):
    path = DATA_DIR / "debian-depends" / "Y.trn.npz"
    Y = sp.load_npz(path).tocsr()[: len(debian_docs)]
    Y = Y[:, np.flatnonzero(np.diff(Y.tocsc().indptr) > 0)]
    train, test = debian_docs[:250], debian_docs[250:]
    pipe = Pipeline([
        ("feat", TextFeaturizer()),
        ("clf", pecos_rs.XRLinearClassifier(max_leaf_size=16, n_splits=4, n_jobs=2)),
    ])
    pipe.fit(train, Y[:250])
    P = pipe.predict(test)
    assert P.shape == (len(test), Y.shape[1])
    X_train = pipe[:-1].transform(train)
    labels, _ = pipe[-1].predict_topk(X_train, k=1)
    hits = np.asarray(Y[np.arange(250), labels[:, 0]]).ravel() != 0
    assert hits.mean() > 0.5, f"training P@1 {hits.mean():.2f}: the features carry no signal"
    clone(pipe).fit(train, Y[:250])


FITTABLE = ALL_UNFITTED + [PositionWeightedCharTfidf(n_features=64, position_decay="none")]


@pytest.mark.parametrize("f", FITTABLE, ids=lambda f: type(f).__name__)
def test_pickle_round_trip(f):
    fitted = clone(f).fit(CORPUS)
    back = pickle.loads(pickle.dumps(fitted))
    assert type(back) is type(fitted)
    assert back.get_feature_names_out().tolist() == fitted.get_feature_names_out().tolist()
    new = synthetic_docs(30, seed=5)
    assert_identical(back.transform(new), fitted.transform(new))
    assert_identical(back.transform(CORPUS), fitted.transform(CORPUS))
    unfitted = pickle.loads(pickle.dumps(clone(f)))
    assert repr(unfitted.get_params(deep=False)) == repr(f.get_params(deep=False))


class RecordingUnpickler(pickle.Unpickler):
    """An unpickler that records the (module, name) of every class a pickle refers to."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.references = []

    def find_class(self, module, name):
        self.references.append((module, name))
        return super().find_class(module, name)


@pytest.mark.parametrize("f", FITTABLE, ids=lambda f: type(f).__name__)
def test_pickles_refer_to_the_public_module(f):
    """Pickles name the classes pecos_rs.text.<class>, not the private module that defines them, so
    that pickles written when pecos_rs.text was a single module still load (and keep loading if
    the code moves again)."""
    fitted = clone(f).fit(CORPUS)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        unpickler = RecordingUnpickler(pickle.dumps(fitted, protocol=protocol))
        assert type(unpickler.load()) is type(fitted)
        ours = [(m, n) for m, n in unpickler.references if m.startswith("pecos_rs.text")]
        assert ("pecos_rs.text", type(fitted).__name__) in ours
        assert {m for m, _ in ours} == {"pecos_rs.text"}, ours


@pytest.mark.parametrize("f", FITTABLE, ids=lambda f: type(f).__name__)
def test_save_load_round_trip(f, tmp_path):
    fitted = clone(f).fit(CORPUS)
    new = synthetic_docs(30, seed=6)
    path = tmp_path / "featurizer"
    fitted.save(path)
    if isinstance(fitted, TextFeaturizer):
        assert path.is_dir() and (path / "featurizer.json").is_file()
        assert len(list(path.iterdir())) == 1 + len(fitted.blocks_)
    else:
        assert path.is_file()
    for loaded in (type(fitted).load(path), text.load(path), text.load(str(path))):
        assert type(loaded) is type(fitted)
        if isinstance(fitted, TextFeaturizer):
            # load spells out the resolved blocks and weights (None -> the defaults, ints -> floats)
            assert loaded.norm == fitted.norm and loaded.weights_ == fitted.weights_
            assert [(n, repr(b)) for n, b in loaded.blocks_] == [(n, repr(b)) for n, b in fitted.blocks_]
            assert_identical(clone(loaded).fit(CORPUS).transform(new), fitted.transform(new))
        else:
            assert repr(loaded.get_params(deep=False)) == repr(fitted.get_params(deep=False))
        assert loaded.get_feature_names_out().tolist() == fitted.get_feature_names_out().tolist()
        assert_identical(loaded.transform(new), fitted.transform(new))
        assert_identical(loaded.transform(CORPUS), fitted.transform(CORPUS))
        if not isinstance(fitted, TextFeaturizer):
            assert loaded.idf_.tobytes() == fitted.idf_.tobytes()
    # saving again over the same path works
    fitted.save(path)
    assert_identical(text.load(path).transform(new), fitted.transform(new))


def test_load_of_another_featurizer_class_is_a_format_error(tmp_path):
    CharTfidf().fit(CORPUS).save(tmp_path / "c.bin")
    with pytest.raises(ModelFormatError, match="CharTfidf"):
        WordTfidf.load(tmp_path / "c.bin")
    assert isinstance(CharTfidf.load(tmp_path / "c.bin"), CharTfidf)


@pytest.fixture
def saved_word(tmp_path):
    path = tmp_path / "w.bin"
    WordTfidf().fit(CORPUS).save(path)
    return path


def test_truncated_and_corrupt_files_are_format_errors(saved_word, tmp_path):
    data = saved_word.read_bytes()
    bad = tmp_path / "bad.bin"
    cases = [b"", b"PECOSTX", b"not a featurizer at all", data[:8], data[:12], data[:20], data[: len(data) // 2],
             data[:-1], data + b"\0"]
    rng = np.random.default_rng(0)
    for i in rng.choice(len(data), size=25, replace=False):
        flipped = bytearray(data)
        flipped[i] ^= 0x5A
        cases.append(bytes(flipped))
    for case in cases:
        bad.write_bytes(case)
        for load in (WordTfidf.load, text.load):
            with pytest.raises(ModelFormatError):
                load(bad)


def rewrite_header(data: bytes, edit) -> bytes:
    """A saved featurizer file with its JSON header edited by `edit` and a valid checksum.

    Layout (rust/pecos-core/src/text/vocab.rs): magic (8) | version u32 | header length u64 |
    header JSON | body | CRC-32 u32 of everything before it."""
    (header_len,) = struct.unpack_from("<Q", data, 12)
    header = json.loads(data[20:20 + header_len])
    edit(header)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    out = data[:12] + struct.pack("<Q", len(h)) + h + data[20 + header_len:-4]
    return out + struct.pack("<I", zlib.crc32(out))


def test_rewrite_header_helper_round_trips(saved_word, tmp_path):
    data = saved_word.read_bytes()
    assert rewrite_header(data, lambda h: None) == data
    again = tmp_path / "again.bin"
    again.write_bytes(rewrite_header(data, lambda h: None))
    assert isinstance(text.load(again), WordTfidf)


@pytest.mark.parametrize("meta", [
    {},
    {"format": "pecos_rs.text.Unknown", "format_version": 1, "params": {}},
    {"format": "pecos_rs.text.WordTfidf", "format_version": 99, "params": {}},
    {"format": "pecos_rs.text.WordTfidf", "format_version": 1, "params": {"no_such_param": 1}},
    {"format": "pecos_rs.text.WordTfidf", "format_version": 1},
])
def test_bad_metadata_is_a_format_error(meta, saved_word, tmp_path):
    path = tmp_path / "meta.bin"
    path.write_bytes(rewrite_header(saved_word.read_bytes(), lambda h: h.update(metadata=meta)))
    with pytest.raises(ModelFormatError):
        text.load(path)
    with pytest.raises(ModelFormatError):
        WordTfidf.load(path)


def test_corrupt_text_featurizer_directory(tmp_path):
    path = tmp_path / "tf"
    TextFeaturizer().fit(CORPUS).save(path)
    meta_file = path / "featurizer.json"
    good = meta_file.read_text()
    meta = json.loads(good)
    for bad in ["", "{", "[]", json.dumps({**meta, "format": "pecos_rs.text.WordTfidf"}),
                json.dumps({**meta, "format_version": 2}), json.dumps({k: v for k, v in meta.items() if k != "blocks"}),
                json.dumps({**meta, "blocks": [{"name": "word"}]})]:
        meta_file.write_text(bad)
        with pytest.raises(ModelFormatError):
            TextFeaturizer.load(path)
        with pytest.raises(ModelFormatError):
            text.load(path)
    meta_file.write_text(good)
    block = path / meta["blocks"][0]["file"]
    block.write_bytes(block.read_bytes()[:-3])
    with pytest.raises(ModelFormatError):
        text.load(path)


@pytest.mark.parametrize("content, message", [
    ("{", "corrupt featurizer.json in .*: Expecting property name"),
    ("\xff\xfe", "corrupt featurizer.json in .*utf-8"),
    ('{"format": "pecos_rs.XRLinearClassifier", "format_version": 1}', "does not hold a pecos_rs TextFeaturizer"),
    ('{"format": "pecos_rs.text.TextFeaturizer", "format_version": 2}', "featurizer format version 2 is not supported"),
])
def test_text_featurizer_directory_errors_say_what_is_wrong(content, message, tmp_path):
    path = tmp_path / "tf"
    TextFeaturizer().fit(CORPUS).save(path)
    (path / "featurizer.json").write_text(content, encoding="latin-1")
    with pytest.raises(ModelFormatError, match=message):
        text.load(path)


@pytest.mark.parametrize("edit", [{"block_weights": [1.0]}, {"block_weights": [1.0, -1.0]}, {"norm": "l3"}],
                         ids=repr)
def test_corrupt_text_featurizer_weights_are_a_format_error(edit, tmp_path):
    """Regression: these used to escape TextFeaturizer.load as InvalidParameterError."""
    path = tmp_path / "tf"
    TextFeaturizer().fit(CORPUS).save(path)
    meta = json.loads((path / "featurizer.json").read_text())
    (path / "featurizer.json").write_text(json.dumps({**meta, **edit}))
    with pytest.raises(ModelFormatError):
        text.load(path)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        WordTfidf.load(tmp_path / "missing.bin")
    with pytest.raises(FileNotFoundError):
        text.load(tmp_path / "missing.bin")
    with pytest.raises(FileNotFoundError):
        TextFeaturizer.load(tmp_path / "missing_dir")
    path = tmp_path / "tf"
    TextFeaturizer().fit(CORPUS).save(path)
    (path / "block1.bin").unlink()
    with pytest.raises(FileNotFoundError):
        text.load(path)


# --------------------------------------------------------------------------------- bad input

ALL_CLASSES = [WordTfidf, CharTfidf, PositionWeightedCharTfidf, TextFeaturizer]


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("docs", ["a bare string", b"bare bytes", None, 5, 3.5],
                         ids=["str", "bytes", "None", "int", "float"])
def test_not_an_iterable_of_documents(cls, docs):
    for method in ("fit", "fit_transform"):
        with pytest.raises(InvalidInputError):
            getattr(cls(), method)(docs)
    fitted = cls().fit(CORPUS)
    with pytest.raises(InvalidInputError):
        fitted.transform(docs)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_sparse_matrix_input(cls):
    X = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(InvalidInputError):
        cls().fit(X)
    with pytest.raises(InvalidInputError):
        cls().fit(X.tocoo())
    with pytest.raises(InvalidInputError):
        cls().fit(CORPUS).transform(X)


BAD_DOCUMENTS = [None, 7, float("nan"), b"\xff\xfe not utf-8", ["nested"], 2.5]


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", BAD_DOCUMENTS, ids=repr)
def test_bad_document_names_its_index(cls, bad):
    docs = ["echo", "with", bad, "screen"]
    for method in ("fit", "fit_transform"):
        with pytest.raises(InvalidInputError, match=r"document 2\b"):
            getattr(cls(), method)(docs)
    with pytest.raises(InvalidInputError, match=r"document 2\b"):
        cls().fit(CORPUS).transform(docs)


@pytest.mark.parametrize("bad", [None, float("nan"), b"\xff"], ids=repr)
def test_bad_document_index_is_global_across_batches(bad, monkeypatch):
    monkeypatch.setattr(text._documents, "BATCH_DOCS", 2)
    docs = ["a", "b", "c", "d", "e", bad]
    with pytest.raises(InvalidInputError, match=r"document 5\b"):
        WordTfidf().fit(docs)
    with pytest.raises(InvalidInputError, match=r"document 5\b"):
        WordTfidf().fit(["a"]).transform(docs)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_lone_surrogate(cls):
    with pytest.raises(InvalidInputError, match=r"document 1\b"):
        cls().fit(["ok", "\ud800", "fine"])
    with pytest.raises(InvalidInputError, match=r"document 0\b"):
        cls().fit(["a\udfffb"])
    fitted = cls().fit(CORPUS)
    with pytest.raises(InvalidInputError, match=r"document 1\b"):
        fitted.transform(["ok", "x\ud800"])


def test_lone_surrogate_index_is_global_across_batches(monkeypatch):
    """Regression: the surrogate check (in Rust) used to report the index within the batch."""
    monkeypatch.setattr(text._documents, "BATCH_DOCS", 2)
    with pytest.raises(InvalidInputError, match=r"document 3\b"):
        WordTfidf().fit(["a", "b", "c", "\ud800"])


INVALID_PARAMETERS = [
    ("ngram_range", (0, 1)), ("ngram_range", (3, 2)), ("ngram_range", "ab"), ("ngram_range", (1,)),
    ("ngram_range", (1, 65)), ("ngram_range", (1.0, 2.0)), ("ngram_range", None),
    ("min_df", -1), ("min_df", 1.5), ("min_df", -0.1), ("min_df", True), ("min_df", "1"),
    ("max_df", 1.5), ("max_df", -1), ("max_df", float("nan")),
    ("norm", "l3"), ("norm", "max"),
    ("max_features", 0), ("max_features", -3), ("max_features", 2.0),
    ("n_features", 0), ("n_features", -1), ("n_features", 2**31), ("n_features", 16.0),
    ("n_jobs", 0), ("n_jobs", 1.5),
    ("lowercase", "yes"), ("binary", None), ("use_idf", 1),
    ("unicode_normalization", "NFX"), ("unicode_normalization", "nfkc"),
    ("strip_accents", "latin"),
]
TOKEN_PATTERN_PARAMETERS = [("token_pattern", "("), ("token_pattern", r"(\w)(\w)"), ("token_pattern", None),
                            ("token_pattern", "[")]


@pytest.mark.parametrize("cls", FEATURIZERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name, value", INVALID_PARAMETERS, ids=repr)
def test_invalid_common_parameters(cls, name, value):
    f = cls(**{name: value})
    with pytest.raises(InvalidParameterError):
        f.fit(CORPUS)
    with pytest.raises(InvalidParameterError):
        clone(f).fit_transform(CORPUS)


@pytest.mark.parametrize("cls", [WordTfidf, CharTfidf], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name, value", TOKEN_PATTERN_PARAMETERS, ids=repr)
def test_invalid_token_patterns(cls, name, value):
    with pytest.raises(InvalidParameterError):
        cls(**{name: value}).fit(CORPUS)


@pytest.mark.parametrize("name, value", [("end_marker", None), ("start_marker", 1)])
def test_invalid_markers(name, value):
    with pytest.raises(InvalidParameterError):
        CharTfidf(**{name: value}).fit(CORPUS)


@pytest.mark.parametrize("name, value", [
    ("position_decay", "foo"), ("position_decay", None), ("decay_rate", 0), ("decay_rate", 0.0),
    ("decay_rate", 2), ("decay_rate", -0.5), ("decay_rate", float("nan")), ("decay_rate", True),
])
def test_invalid_position_parameters(name, value):
    params = {"position_decay": "exponential", name: value}
    with pytest.raises(InvalidParameterError):
        PositionWeightedCharTfidf(**params).fit(CORPUS)


def test_boundary_parameters_are_accepted():
    PositionWeightedCharTfidf(position_decay="exponential", decay_rate=1.0).fit(CORPUS)
    WordTfidf(ngram_range=(64, 64)).fit(["a " * 70])
    WordTfidf(min_df=0.0, max_df=1.0, n_features=1).fit(CORPUS)
    WordTfidf(max_df=np.float64(0.9), ngram_range=[1, 2]).fit(CORPUS)
    CharTfidf(min_df=2, max_df=2).fit(CORPUS)


@pytest.mark.parametrize("params", [
    dict(min_df=np.int64(1)), dict(max_features=np.int32(3)), dict(binary=np.bool_(True)),
    dict(ngram_range=(np.int64(1), np.int64(2))), dict(n_features=np.int64(16)),
], ids=repr)
def test_numpy_scalar_parameters_are_accepted(params):
    """Regression: numpy scalars passed validation, then fit failed in json.dumps (TypeError)."""
    X = WordTfidf(**params).fit_transform(CORPUS)
    plain = {k: (tuple(int(x) for x in v) if isinstance(v, tuple) else v.item()) for k, v in params.items()}
    assert_identical(X, WordTfidf(**plain).fit_transform(CORPUS))


@pytest.mark.parametrize("params", [
    dict(block_weights=[1.0]),
    dict(block_weights=[1.0, 1.0, 1.0]),
    dict(block_weights=[1.0, -1.0]),
    dict(block_weights=[1.0, float("nan")]),
    dict(block_weights=[1.0, float("inf")]),
    dict(blocks=[("a", WordTfidf()), ("a", CharTfidf())]),
    dict(blocks=[]),
    dict(blocks=[("a", WordTfidf()), ("b", "not a featurizer")]),
    dict(blocks=[("a", WordTfidf()), (3, CharTfidf())]),
    dict(blocks=[WordTfidf()]),
    dict(norm="l3"),
], ids=repr)
def test_invalid_text_featurizer_parameters(params):
    with pytest.raises(InvalidParameterError):
        TextFeaturizer(**params).fit(CORPUS)


def test_invalid_block_parameters_surface_from_text_featurizer():
    with pytest.raises(InvalidParameterError):
        TextFeaturizer([("w", WordTfidf(ngram_range=(2, 1)))]).fit(CORPUS)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_empty_vocabulary(cls):
    for docs in (["", "  ", "\t\n"], ["...", "!!! ---"]):
        if cls is PositionWeightedCharTfidf:
            continue  # whitespace and punctuation are character n-grams
        with pytest.raises(InvalidInputError, match="empty vocabulary"):
            cls().fit(docs)
    with pytest.raises(InvalidInputError, match="empty vocabulary"):
        PositionWeightedCharTfidf().fit(["", ""])
    with pytest.raises(InvalidInputError):
        cls().fit([])
    with pytest.raises(InvalidInputError):
        cls().fit(iter([]))


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_not_fitted(cls, tmp_path):
    f = cls()
    with pytest.raises(NotFittedError):
        f.transform(["a"])
    with pytest.raises(NotFittedError):
        f.get_feature_names_out()
    with pytest.raises(NotFittedError):
        f.save(tmp_path / "x")
    if cls is not TextFeaturizer:
        with pytest.raises(NotFittedError):
            f.idf_  # noqa: B018
        with pytest.raises(NotFittedError):
            f.vocabulary_  # noqa: B018


def test_exceptions_are_value_errors():
    assert issubclass(InvalidInputError, ValueError) and issubclass(InvalidParameterError, ValueError)
    assert issubclass(ModelFormatError, ValueError)
    with pytest.raises(ValueError):
        WordTfidf().fit("a string")


def test_failed_fit_keeps_nothing_half_done():
    f = WordTfidf().fit(["a b"])
    with pytest.raises(InvalidInputError):
        f.fit(["ok", None])
    # the previous fit is still usable
    assert f.get_feature_names_out().tolist() == ["a", "a b", "b"]


# ------------------------------------------------------------------------------- explicit zeros


def test_no_explicit_zeros_after_float32_cast():
    """Regression: values nonzero in float64 but 0 in float32 used to be stored as explicit zeros."""
    f = PositionWeightedCharTfidf(ngram_range=(1, 1), position_decay="exponential", decay_rate=1e-30)
    X = f.fit_transform(["abcdef"])
    assert X.data.size == 0 or np.all(X.data != 0), X.data


def test_text_featurizer_zero_weight_drops_the_block_values():
    """A block of weight 0 contributes columns but no stored values (no explicit zeros)."""
    f = TextFeaturizer(block_weights=[1.0, 0.0])
    X = f.fit_transform(["echo with screen", "abc"])
    assert np.all(X.data != 0), X.data
    n_word = len(f.blocks_[0][1].get_feature_names_out())
    assert X.indices.max() < n_word
    W = TextFeaturizer([("word", WordTfidf())]).fit_transform(["echo with screen", "abc"])
    assert X.shape[1] > W.shape[1]
    assert_identical(sp.csr_matrix(X[:, :n_word]), W)


def test_presets_are_the_documented_blocks():
    from pecos_rs.text import PRESETS, CharTfidf, TextFeaturizer, WordTfidf

    docs = ["Echo with screen", "kindle paperwhite 8GB", "echo dot"]
    explicit = TextFeaturizer([("word", WordTfidf(ngram_range=(1, 2), sublinear_tf=True)),
                               ("char", CharTfidf(ngram_range=(2, 4), token_pattern=r"\S+", start_marker=" ",
                                                  end_marker=" ", sublinear_tf=True))])
    by_name = TextFeaturizer(blocks="retrieval")
    assert (explicit.fit_transform(docs) != by_name.fit_transform(docs)).nnz == 0
    assert (TextFeaturizer(blocks="paper").fit_transform(docs) != TextFeaturizer().fit_transform(docs)).nnz == 0
    fast = TextFeaturizer([("word", WordTfidf(ngram_range=(1, 2), sublinear_tf=True)),
                           ("char", CharTfidf(ngram_range=(3, 3), token_pattern=r"\S+", start_marker=" ",
                                              end_marker=" ", sublinear_tf=True))])
    assert (fast.fit_transform(docs) != TextFeaturizer(blocks="fast").fit_transform(docs)).nnz == 0
    assert set(PRESETS) == {"paper", "sklearn", "retrieval", "fast"}
    with pytest.raises(InvalidParameterError, match="one of"):
        TextFeaturizer(blocks="fancy").fit(docs)


def test_preset_blocks_on_threads_give_the_same_features():
    from pecos_rs.text import TextFeaturizer, preset_blocks

    docs = [f"query {i} with words {i % 7} and {i % 13}" for i in range(5000)]
    blocks = preset_blocks("fast", n_jobs=2)
    assert [name for name, _ in blocks] == ["word", "char"]
    assert all(f.n_jobs == 2 for _, f in blocks)
    threaded = TextFeaturizer(blocks=blocks).fit_transform(docs)
    assert_identical(threaded, TextFeaturizer(blocks="fast").fit_transform(docs))
    with pytest.raises(InvalidParameterError, match="one of"):
        preset_blocks("fancy")

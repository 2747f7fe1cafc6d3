"""Pure-Python reference of the text featurizers of :mod:`pecos_rs.text`.

Written from the documented semantics, not from the Rust code, and without importing pecos_rs,
so that a bug in the library cannot leak into the expected values. Slow and simple on purpose.

* Preprocessing: ``unicodedata.normalize`` (default NFKC), ``str.lower``, scikit-learn's accent
  stripping.
* Tokens: the default pattern ``[\\p{L}\\p{N}\\p{M}\\p{Pc}]+`` is implemented with
  ``unicodedata.category`` (maximal runs of characters of category L*, N*, M* or Pc); any other
  pattern is run with Python's ``re`` (tests use ASCII-only patterns and text for those, where
  Python's and Rust's regex engines agree). With one capture group, the group is the token.
  Empty tokens are dropped.
* Analyzers emit ``(n-gram, occurrence weight)`` pairs:

  - ``word``: n-grams of consecutive tokens joined by one space;
  - ``char_in_words``: ``start_marker + token + end_marker`` cut into character n-grams (the
    whole marked token if it is shorter than the smallest n);
  - ``chars``: the whole string, whitespace runs (Rust's ``char::is_whitespace``) collapsed to
    one space, cut into character n-grams; the one starting at character ``i`` weighs ``w(i)``.

* Counting, vocabulary selection (``min_df``, ``max_df``, ``max_features``), hashing, tf-idf
  weighting and row normalisation as in scikit-learn's ``TfidfVectorizer`` (smooth idf keeps
  n-grams present in every document), in float64; the rows are float32 and store no zeros.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import strip_accents_ascii, strip_accents_unicode
from sklearn.preprocessing import normalize
from sklearn.utils import murmurhash3_32

DEFAULT_TOKEN_PATTERN = r"[\p{L}\p{N}\p{M}\p{Pc}]+"

#: Code points with the Unicode White_Space property (what Rust's ``char::is_whitespace`` tests).
#: Python's ``str.isspace`` differs (it accepts U+001C..U+001F), hence the explicit set.
WHITE_SPACE = frozenset(
    [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F,
     0x205F, 0x3000]
)

#: Fixed-point scale of the occurrence weights summed to rank n-grams for ``max_features``.
TOTAL_SCALE = 2**32



class EmptyVocabulary(ValueError):
    """No n-gram survives (the library raises InvalidInputError)."""


class BadBounds(ValueError):
    """max_df admits fewer documents than min_df (the library raises InvalidParameterError)."""


_STRIPPERS = {None: None, "unicode": strip_accents_unicode, "ascii": strip_accents_ascii}

#: The parameters shared by every featurizer, with the library's defaults.
COMMON_DEFAULTS = dict(
    lowercase=True, unicode_normalization="NFKC", strip_accents=None, min_df=1, max_df=1.0,
    max_features=None, binary=False, sublinear_tf=False, use_idf=True, smooth_idf=True, norm="l2",
    n_features=None,
)
#: Analyzer parameters of each featurizer kind, with the library's defaults.
ANALYZER_DEFAULTS = {
    "word": dict(ngram_range=(1, 3), token_pattern=DEFAULT_TOKEN_PATTERN),
    "char_in_words": dict(ngram_range=(3, 3), token_pattern=DEFAULT_TOKEN_PATTERN,
                          start_marker="", end_marker="#"),
    "chars": dict(ngram_range=(1, 3), position_decay="inverse", decay_rate=0.9),
}


# ------------------------------------------------------------------------------- preprocessing


def preprocess(doc: str, *, unicode_normalization="NFKC", lowercase=True, strip_accents=None) -> str:
    if unicode_normalization is not None:
        doc = unicodedata.normalize(unicode_normalization, doc)
    if lowercase:
        doc = doc.lower()
    if strip_accents is not None:
        doc = _STRIPPERS[strip_accents](doc)
    return doc


def _is_token_char(c: str) -> bool:
    cat = unicodedata.category(c)
    return cat[0] in "LNM" or cat == "Pc"


def tokenize(doc: str, token_pattern: str = DEFAULT_TOKEN_PATTERN) -> list[str]:
    """The non-empty tokens of `doc`, in order."""
    if token_pattern == DEFAULT_TOKEN_PATTERN:
        tokens, current = [], []
        for c in doc:
            if _is_token_char(c):
                current.append(c)
            elif current:
                tokens.append("".join(current))
                current = []
        if current:
            tokens.append("".join(current))
        return tokens
    pattern = re.compile(token_pattern)
    if pattern.groups > 1:
        raise ValueError("at most one capture group")
    group = 1 if pattern.groups == 1 else 0
    return [t for m in pattern.finditer(doc) if (t := m.group(group))]


def collapse_whitespace(doc: str) -> str:
    out, in_space = [], False
    for c in doc:
        if ord(c) in WHITE_SPACE:
            if not in_space:
                out.append(" ")
            in_space = True
        else:
            out.append(c)
            in_space = False
    return "".join(out)


def position_weight(i: int, decay: str, rate: float = 0.9) -> float:
    if decay == "inverse":
        return 1.0 / (i + 1)
    if decay == "inverse_sqrt":
        return 1.0 / math.sqrt(i + 1)
    if decay == "exponential":
        return math.pow(rate, i)
    if decay == "none":
        return 1.0
    raise ValueError(decay)


# ------------------------------------------------------------------------------------ analyzers


def word_ngrams(tokens: list[str], ngram_range) -> list[tuple[str, float]]:
    lo, hi = ngram_range
    return [(" ".join(tokens[i:i + n]), 1.0)
            for n in range(lo, hi + 1) for i in range(len(tokens) - n + 1)]


def char_ngrams(text: str, ngram_range) -> list[tuple[str, int]]:
    """``(n-gram, starting character)`` for every window of n characters, n in the range."""
    lo, hi = ngram_range
    return [(text[i:i + n], i) for n in range(lo, min(hi, len(text)) + 1)
            for i in range(len(text) - n + 1)]


def char_in_word_ngrams(tokens, ngram_range, start_marker="", end_marker="#"):
    out = []
    for t in tokens:
        w = start_marker + t + end_marker
        if len(w) < ngram_range[0]:
            out.append((w, 1.0))
        else:
            out.extend((g, 1.0) for g, _ in char_ngrams(w, ngram_range))
    return out


def position_char_ngrams(doc, ngram_range, position_decay="inverse", decay_rate=0.9):
    text = collapse_whitespace(doc)
    return [(g, position_weight(i, position_decay, decay_rate)) for g, i in char_ngrams(text, ngram_range)]


def hash_bucket(key: str, n_buckets: int) -> int:
    """scikit-learn's ``HashingVectorizer`` column of `key` (signed MurmurHash3, seed 0)."""
    h = int(murmurhash3_32(key.encode("utf-8"), seed=0, positive=False))
    if h == -(2**31):  # abs(INT_MIN) overflows in C; scikit-learn special-cases it
        return (2**31 - 1 - (n_buckets - 1)) % n_buckets
    return abs(h) % n_buckets


def _fixed(weight: float) -> int:
    """round(weight * 2^32), halves away from zero (as Rust's f64::round)."""
    x = weight * TOTAL_SCALE
    f = math.floor(x)
    return f + 1 if x - f >= 0.5 else f


# ----------------------------------------------------------------------------------- featurizer


class ReferenceTfidf:
    """One featurizer: `kind` is "word", "char_in_words" or "chars"; `params` are the library
    class's constructor parameters (``n_jobs`` is ignored)."""

    def __init__(self, kind: str, **params):
        params.pop("n_jobs", None)
        defaults = {**COMMON_DEFAULTS, **ANALYZER_DEFAULTS[kind]}
        unknown = set(params) - set(defaults)
        if unknown:
            raise TypeError(f"unknown parameters {unknown}")
        self.kind = kind
        self.p = {**defaults, **params}

    # -------------------------------------------------------------- documents -> n-grams

    def preprocess(self, doc: str) -> str:
        p = self.p
        return preprocess(doc, unicode_normalization=p["unicode_normalization"],
                          lowercase=p["lowercase"], strip_accents=p["strip_accents"])

    def analyze(self, raw_doc: str) -> list[tuple[str, float]]:
        """The ``(key, weight)`` occurrences of a raw document."""
        p, doc = self.p, self.preprocess(raw_doc)
        if self.kind == "word":
            return word_ngrams(tokenize(doc, p["token_pattern"]), p["ngram_range"])
        if self.kind == "char_in_words":
            return char_in_word_ngrams(tokenize(doc, p["token_pattern"]), p["ngram_range"],
                                       p["start_marker"], p["end_marker"])
        return position_char_ngrams(doc, p["ngram_range"], p["position_decay"], p["decay_rate"])

    def _key(self, g: str):
        """The column key of an n-gram: the n-gram itself, or its hash bucket."""
        m = self.p["n_features"]
        return g if m is None else hash_bucket(g, m)

    # ---------------------------------------------------------------------------- fit

    @staticmethod
    def _bound(v, n_docs) -> float:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return float(v)
        return float(v) * n_docs

    def fit(self, docs):
        p = self.p
        docs = list(docs)
        n = len(docs)
        df, total = Counter(), Counter()
        for doc in docs:
            occ = [(self._key(g), w) for g, w in self.analyze(doc)]
            df.update({k for k, _ in occ})
            for k, w in occ:
                total[k] += _fixed(w)
        lo, hi = self._bound(p["min_df"], n), self._bound(p["max_df"], n)
        if hi < lo:
            raise BadBounds("max_df corresponds to fewer documents than min_df")
        kept = [k for k in df if lo <= df[k] <= hi]
        if p["max_features"] is not None:
            rank = (lambda k: df[k]) if p["binary"] else (lambda k: total[k])
            kept = sorted(kept, key=lambda k: (-rank(k), k))[: p["max_features"]]
        if not kept:
            raise EmptyVocabulary("empty vocabulary")
        self.n_docs_ = n
        self.df_ = df
        if p["n_features"] is None:
            self.feature_names_ = sorted(kept)
            self.column_ = {g: i for i, g in enumerate(self.feature_names_)}
            self.idf_ = np.array([self._idf(df[g], n) for g in self.feature_names_])
        else:
            m = p["n_features"]
            self.feature_names_ = [f"hash_{i}" for i in range(m)]
            self.column_ = {b: b for b in kept}
            self.idf_ = np.zeros(m)
            for b in kept:
                self.idf_[b] = self._idf(df[b], n)
        return self

    def _idf(self, df: int, n: int) -> float:
        p = self.p
        if not p["use_idf"]:
            return 1.0
        if p["smooth_idf"]:
            return math.log((1 + n) / (1 + df)) + 1.0
        return math.log(n / df) + 1.0

    # ---------------------------------------------------------------------- transform

    def transform_row(self, doc: str) -> dict[int, float]:
        """Column -> float64 value of one document (before the float32 cast)."""
        p = self.p
        tf = defaultdict(float)
        for g, w in self.analyze(doc):
            c = self.column_.get(self._key(g))
            if c is not None:
                tf[c] += w
        row = {}
        for c, t in tf.items():
            if p["binary"]:
                t = 1.0
            if p["sublinear_tf"] and t > 0:
                t = 1.0 + math.log(t)
            v = t * self.idf_[c]
            if v != 0.0:
                row[c] = v
        if p["norm"] == "l2":
            norm = math.sqrt(sum(v * v for v in row.values()))
        elif p["norm"] == "l1":
            norm = sum(abs(v) for v in row.values())
        else:
            norm = 1.0
        if norm > 0:
            row = {c: v / norm for c, v in row.items()}
        return row

    def transform(self, docs) -> sp.csr_matrix:
        """Float32 rows; a value that is nonzero in float64 but 0 in float32 is not stored."""
        indptr, indices, data = [0], [], []
        for doc in docs:
            row = self.transform_row(doc)
            for c in sorted(row):
                if np.float32(row[c]) != 0:
                    indices.append(c)
                    data.append(row[c])
            indptr.append(len(indices))
        X = sp.csr_matrix((np.asarray(data, dtype=np.float64).astype(np.float32),
                           np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
                          shape=(len(indptr) - 1, len(self.feature_names_)))
        return X

    def fit_transform(self, docs):
        docs = list(docs)
        return self.fit(docs).transform(docs)


class ReferenceTextFeaturizer:
    """Blocks ``[(name, ReferenceTfidf)]`` side by side, each scaled by its weight, then every row
    renormalised."""

    def __init__(self, blocks=None, block_weights=None, norm="l2"):
        if blocks is None:
            blocks = [("word", ReferenceTfidf("word")), ("char", ReferenceTfidf("char_in_words"))]
        self.blocks = blocks
        self.block_weights = [1.0] * len(blocks) if block_weights is None else block_weights
        self.norm = norm

    def fit(self, docs):
        docs = list(docs)
        for _, b in self.blocks:
            b.fit(docs)
        return self

    def transform(self, docs):
        docs = list(docs)
        parts = [b.transform(docs) * np.float32(w) for (_, b), w in zip(self.blocks, self.block_weights)]
        X = sp.hstack(parts, format="csr", dtype=np.float32)
        X.eliminate_zeros()  # zero values (block weight 0) are dropped
        if self.norm is not None:
            X = normalize(X, norm=self.norm)
        X.eliminate_zeros()  # values that underflow float32
        return X

    def fit_transform(self, docs):
        docs = list(docs)
        return self.fit(docs).transform(docs)

    def get_feature_names_out(self):
        return [f"{name}__{g}" for name, b in self.blocks for g in b.feature_names_]

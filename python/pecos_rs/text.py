"""Text featurizers: word and character n-gram TF-IDF, position-weighted character TF-IDF.

scikit-learn transformers over a Rust kernel that tokenizes, counts and weighs in parallel with
the GIL released. Text goes in as an iterable of ``str``; a float32 CSR matrix with sorted indices
comes out.

* :class:`WordTfidf`: word n-grams (default 1- to 3-grams).
* :class:`CharTfidf`: character n-grams inside words, with an end-of-word marker (default ``"#"``)
  and an optional start-of-word marker: ``"Echo with screen"`` gives ``"ech", "cho", "ho#",
  "wit", "ith", "th#", ...``.
* :class:`PositionWeightedCharTfidf`: character n-grams of the whole string where an n-gram
  starting at character ``i`` counts ``w(i)`` (default ``1 / (i + 1)``), so the beginning of the
  string dominates (query autocompletion).
* :class:`TextFeaturizer`: stacks blocks (each L2-normalised, optionally weighted) and
  renormalises each row; its default is the product-search setting, word 1-3-grams + character
  3-grams with the end marker.

Preprocessing, in order: Unicode normalisation (``unicode_normalization``, default NFKC),
lower-casing, accent stripping. Tokens are the matches of ``token_pattern`` (Rust ``regex``
syntax; the default takes runs of letters, digits, combining marks and underscores). Weighting
follows scikit-learn's ``TfidfVectorizer``: ``tf`` (1 if ``binary``, ``1 + ln(tf)`` if
``sublinear_tf``) times ``idf = ln((1 + N) / (1 + df)) + 1`` (``smooth_idf``) or
``ln(N / df) + 1``, then each row is scaled to unit norm. Unlike PECOS's native vectorizer, an
n-gram present in every document keeps a nonzero weight.

Fitting streams: documents are read in batches and only the distinct n-grams are kept, so an
iterator over a large corpus is never materialised. Fitted featurizers save to and load from a
versioned, checksummed file (no pickle), and pickle as well.
"""

from __future__ import annotations

import itertools
import json
import numbers
import unicodedata
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.feature_extraction.text import strip_accents_ascii, strip_accents_unicode
from sklearn.utils.validation import check_is_fitted

from . import _pecos_rs
from ._sparse import csr_args
from ._threads import resolve_n_jobs
from .exceptions import InvalidInputError, InvalidParameterError, ModelFormatError

__all__ = [
    "DEFAULT_TOKEN_PATTERN",
    "CharTfidf",
    "PositionWeightedCharTfidf",
    "TextFeaturizer",
    "WordTfidf",
    "default_blocks",
    "load",
]

#: Runs of letters, digits, combining marks and connector punctuation (Unicode general categories
#: L, N, M and Pc).
DEFAULT_TOKEN_PATTERN = _pecos_rs.DEFAULT_TOKEN_PATTERN

# Documents handed to Rust per call: enough for both cores, small enough to stream.
_BATCH_DOCS = 50_000
_FEATURIZER_FORMAT = 1
_COMBINED_FILE = "featurizer.json"
_ACCENT_STRIPPERS = {None: None, "unicode": strip_accents_unicode, "ascii": strip_accents_ascii}
_NORMALIZATIONS = (None, "NFC", "NFKC", "NFD", "NFKD")
_DECAYS = ("inverse", "inverse_sqrt", "exponential", "none")


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _batches(raw_documents):
    """Yield lists of at most ``_BATCH_DOCS`` documents (rejecting a bare string)."""
    if isinstance(raw_documents, (str, bytes)):
        raise InvalidInputError(
            "an iterable of documents (str) is expected, got a single string; wrap it in a list"
        )
    if sp.issparse(raw_documents):
        raise InvalidInputError("an iterable of documents (str) is expected, got a sparse matrix")
    try:
        it = iter(raw_documents)
    except TypeError:
        raise InvalidInputError(
            f"an iterable of documents (str) is expected, got {type(raw_documents).__name__}"
        ) from None
    while batch := list(itertools.islice(it, _BATCH_DOCS)):
        yield batch


class _NgramTfidf(TransformerMixin, BaseEstimator):
    """Shared fit / transform / save logic; subclasses define the analyzer."""

    def _analyzer_config(self) -> dict:
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags

    # ------------------------------------------------------------------ parameters

    def _check_params(self):
        def check(name, ok, expected):
            if not ok:
                raise InvalidParameterError(f"{name} must be {expected}, got {getattr(self, name)!r}")

        r = self.ngram_range
        check("ngram_range",
              isinstance(r, (tuple, list)) and len(r) == 2 and all(_is_int(v) for v in r)
              and 1 <= r[0] <= r[1] <= 64,
              "a pair (min_n, max_n) of integers with 1 <= min_n <= max_n <= 64")
        for name in ("lowercase", "binary", "sublinear_tf", "use_idf", "smooth_idf"):
            check(name, isinstance(getattr(self, name), (bool, np.bool_)), "a bool")
        check("unicode_normalization", self.unicode_normalization in _NORMALIZATIONS,
              f"one of {_NORMALIZATIONS}")
        check("strip_accents", self.strip_accents in _ACCENT_STRIPPERS,
              'None, "unicode" or "ascii"')
        check("norm", self.norm in ("l1", "l2", None), '"l1", "l2" or None')
        for name in ("min_df", "max_df"):
            v = getattr(self, name)
            check(name, (_is_int(v) and v >= 0)
                  or (isinstance(v, numbers.Real) and not _is_int(v) and not isinstance(v, bool)
                      and 0.0 <= v <= 1.0),
                  "an int >= 0 (documents) or a float in [0, 1] (fraction of documents)")
        check("max_features", self.max_features is None or (_is_int(self.max_features)
                                                            and self.max_features >= 1),
              "None or an int >= 1")
        check("n_features", self.n_features is None
              or (_is_int(self.n_features) and 1 <= self.n_features < 2**31),
              "None or an int in [1, 2^31)")
        check("n_jobs", self.n_jobs is None or (_is_int(self.n_jobs) and self.n_jobs != 0),
              "None or a nonzero integer")
        if self.n_features is not None and self.max_features is not None:
            raise InvalidParameterError("max_features cannot be combined with hashing (n_features)")

    def _config_json(self) -> str:
        config = {
            "analyzer": _plain(self._analyzer_config()),
            "n_buckets": None if self.n_features is None else int(self.n_features),
            "binary": bool(self.binary),
            "sublinear_tf": bool(self.sublinear_tf),
            "use_idf": bool(self.use_idf),
            "smooth_idf": bool(self.smooth_idf),
            "norm": "none" if self.norm is None else self.norm,
        }
        return json.dumps(config)

    def _check_str_param(self, name):
        if not isinstance(getattr(self, name), str):
            raise InvalidParameterError(f"{name} must be a str, got {getattr(self, name)!r}")

    # ------------------------------------------------------------------ documents

    def _prepare(self, batch: list, offset: int) -> list:
        """Check that every document is a str and apply the preprocessing steps."""
        for i, doc in enumerate(batch):
            if not isinstance(doc, str):
                if isinstance(doc, bytes):
                    try:
                        batch[i] = doc.decode("utf-8")
                        continue
                    except UnicodeDecodeError as e:
                        raise InvalidInputError(f"document {offset + i} is not valid UTF-8: {e}") from None
                raise InvalidInputError(
                    f"document {offset + i} is a {type(doc).__name__}, not a str"
                )
        if self.unicode_normalization is not None:
            form = self.unicode_normalization
            batch = [unicodedata.normalize(form, d) for d in batch]
        if self.lowercase:
            batch = [d.lower() for d in batch]
        strip = _ACCENT_STRIPPERS[self.strip_accents]
        if strip is not None:
            batch = [strip(d) for d in batch]
        return batch

    # ------------------------------------------------------------------ API

    def fit(self, raw_documents, y=None):
        """Learn the n-gram vocabulary and idf weights of an iterable of documents.

        The documents are read once, in batches; a generator is fine.

        Raises
        ------
        InvalidInputError
            (a ValueError) If the input is not an iterable of str, or if no n-gram survives
            (empty vocabulary).
        InvalidParameterError
            (a ValueError) For invalid parameters.
        """
        self._fit(raw_documents, record=False)
        return self

    def _fit(self, raw_documents, *, record):
        """Fit; with `record`, also return the rows of the documents (one tokenization pass)."""
        self._check_params()
        n_threads = resolve_n_jobs(self.n_jobs)
        counter = _pecos_rs.NgramCounter(self._config_json(), record=record)
        seen = 0
        for batch in _batches(raw_documents):
            counter.update(self._prepare(batch, seen), first_doc=seen, n_threads=n_threads)
            seen += len(batch)
        if seen == 0:
            raise InvalidInputError("cannot fit on an empty collection of documents")
        vocab, rows = counter.finish(min_df=self.min_df, max_df=self.max_df,
                                     max_features=self.max_features,
                                     metadata=json.dumps(self._save_header()), n_threads=n_threads)
        self.tfidf_model_ = vocab
        self.__dict__.pop("_vocabulary_cache", None)
        return rows

    def transform(self, raw_documents):
        """TF-IDF rows of the documents: a float32 CSR matrix with sorted indices.

        N-grams not seen in fit are ignored; a document without known n-grams gives an empty row.
        """
        check_is_fitted(self, "tfidf_model_")
        n_threads = resolve_n_jobs(self.n_jobs)
        parts, seen = [], 0
        for batch in _batches(raw_documents):
            parts.append(self.tfidf_model_.transform(self._prepare(batch, seen), first_doc=seen,
                                                     n_threads=n_threads))
            seen += len(batch)
        return _stack_rows(parts, self.tfidf_model_.n_columns)

    def fit_transform(self, raw_documents, y=None):
        """Fit and return the rows of the same documents, tokenizing them once.

        Equal to ``fit(docs).transform(docs)``; an iterator is read once, in batches.
        """
        return _csr_from_arrays(*self._fit(raw_documents, record=True))

    def get_feature_names_out(self, input_features=None):
        """The n-gram of every column (``"hash_<i>"`` in hashing mode), as an object array."""
        check_is_fitted(self, "tfidf_model_")
        names = self.tfidf_model_.feature_names()
        if names is None:
            names = [f"hash_{i}" for i in range(self.tfidf_model_.n_columns)]
        return np.asarray(names, dtype=object)

    @property
    def idf_(self):
        """Per-column idf weights (in hashing mode 0 for buckets not kept in fit)."""
        check_is_fitted(self, "tfidf_model_")
        model = self.tfidf_model_
        if model.kept_buckets is None:
            return model.idf
        idf = np.zeros(model.n_columns)
        idf[model.kept_buckets] = model.idf
        return idf

    @property
    def vocabulary_(self) -> dict:
        """Mapping n-gram -> column (built on first access; not available in hashing mode)."""
        check_is_fitted(self, "tfidf_model_")
        if "_vocabulary_cache" not in self.__dict__:
            names = self.tfidf_model_.feature_names()
            if names is None:
                raise AttributeError("a hashing featurizer (n_features set) has no vocabulary_")
            self._vocabulary_cache = {name: i for i, name in enumerate(names)}
        return self._vocabulary_cache

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_vocabulary_cache", None)
        return state

    # ------------------------------------------------------------------ persistence

    def _save_header(self) -> dict:
        return {
            "format": f"pecos_rs.text.{type(self).__name__}",
            "format_version": _FEATURIZER_FORMAT,
            "pecos_rs_version": _pecos_rs.__version__,
            "params": _plain(self.get_params()),
        }

    def save(self, path):
        """Write the fitted featurizer (parameters, vocabulary, idf) to the file `path`."""
        check_is_fitted(self, "tfidf_model_")
        self.tfidf_model_.save(str(path))

    @classmethod
    def load(cls, path):
        """Load a featurizer written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If `path` does not exist.
        ModelFormatError
            If the file is corrupt, truncated, of an unknown version or of another featurizer.
        """
        vocab = _pecos_rs.TfidfVocabulary.load(str(path))
        est = _featurizer_from_vocab(vocab, path)
        if not isinstance(est, cls):
            raise ModelFormatError(f"{path} holds a {type(est).__name__}, not a {cls.__name__}")
        return est


def _plain(value):
    """`value` with numpy scalars (accepted as parameters) turned into Python ones, for JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _featurizer_from_vocab(vocab, where):
    try:
        meta = json.loads(vocab.metadata)
        kind, version = meta["format"], meta["format_version"]
        cls = _FEATURIZERS[kind.removeprefix("pecos_rs.text.")]
        if version != _FEATURIZER_FORMAT:
            raise ModelFormatError(f"featurizer format version {version!r} is not supported")
        params = dict(meta["params"])
        params["ngram_range"] = tuple(params["ngram_range"])
        est = cls(**params)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelFormatError(f"{where} does not hold a pecos_rs text featurizer: {e}") from e
    est.tfidf_model_ = vocab
    return est


def _csr_from_arrays(indptr, indices, data, shape) -> sp.csr_matrix:
    """A CSR matrix around arrays returned by the Rust core (sorted, canonical), without copying
    the entries (only the row pointers are narrowed to int32 when possible)."""
    if len(indices) < 2**31:
        indptr = indptr.astype(np.int32)
    else:
        indices = indices.astype(np.int64)
    X = sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    X.has_sorted_indices = True
    X.has_canonical_format = True
    return X


def _stack_rows(parts, n_columns) -> sp.csr_matrix:
    """One CSR matrix from the ``(indptr, indices, data, shape)`` tuples of consecutive batches."""
    if len(parts) == 1:
        return _csr_from_arrays(*parts[0])
    if not parts:
        return sp.csr_matrix((0, n_columns), dtype=np.float32)
    counts = np.concatenate([np.diff(p[0]) for p in parts])
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate([p[1] for p in parts])
    data = np.concatenate([p[2] for p in parts])
    return _csr_from_arrays(indptr, indices, data, (len(counts), n_columns))


_COMMON_DOC = """
    lowercase : bool, default=True
        Lower-case the text (Python's ``str.lower``).
    unicode_normalization : {"NFKC", "NFC", "NFKD", "NFD"} or None, default="NFKC"
        Unicode normal form applied first (``unicodedata.normalize``).
    strip_accents : {"unicode", "ascii"} or None, default=None
        Remove accents after lower-casing, as scikit-learn does.
    min_df, max_df : int or float, default=1 and 1.0
        Keep n-grams whose document frequency is within the bounds: an int is a number of
        documents, a float a fraction of the corpus.
    max_features : int or None, default=None
        Keep only the most frequent n-grams (by total count; ties to the earlier n-gram).
    binary : bool, default=False
        Term frequency 1 for every n-gram present.
    sublinear_tf : bool, default=False
        Replace tf by ``1 + ln(tf)``.
    use_idf, smooth_idf : bool, default=True
        Weigh by idf; add one to document frequencies (as if one extra document had every n-gram).
    norm : {"l2", "l1"} or None, default="l2"
        Row normalisation.
    n_features : int or None, default=None
        Hashing mode: map n-grams to this many columns with 32-bit MurmurHash3 (scikit-learn's
        ``HashingVectorizer(alternate_sign=False)`` columns) instead of keeping a vocabulary.
        Memory follows the buckets seen in fit (only their document frequencies are kept), not
        ``n_features``; buckets not seen in fit are ignored at transform.
        ``get_feature_names_out`` gives ``hash_<i>``.
    n_jobs : int or None, default=-1
        Threads (-1: all cores). The output does not depend on it.
"""


class WordTfidf(_NgramTfidf):
    __doc__ = f"""TF-IDF of word n-grams (tokens joined by one space).

    Parameters
    ----------
    ngram_range : (int, int), default=(1, 3)
        Smallest and largest n.
    token_pattern : str, default=DEFAULT_TOKEN_PATTERN
        Regular expression (Rust ``regex`` syntax) whose matches are the tokens; with one capture
        group, the group is the token.
    {_COMMON_DOC}
    Examples
    --------
    >>> from pecos_rs.text import WordTfidf
    >>> WordTfidf(ngram_range=(1, 2)).fit(["Echo with screen"]).get_feature_names_out().tolist()
    ['echo', 'echo with', 'screen', 'with', 'with screen']
    """

    def __init__(self, *, ngram_range=(1, 3), token_pattern=DEFAULT_TOKEN_PATTERN, lowercase=True,
                 unicode_normalization="NFKC", strip_accents=None, min_df=1, max_df=1.0,
                 max_features=None, binary=False, sublinear_tf=False, use_idf=True, smooth_idf=True,
                 norm="l2", n_features=None, n_jobs=-1):
        self.ngram_range = ngram_range
        self.token_pattern = token_pattern
        self.lowercase = lowercase
        self.unicode_normalization = unicode_normalization
        self.strip_accents = strip_accents
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.binary = binary
        self.sublinear_tf = sublinear_tf
        self.use_idf = use_idf
        self.smooth_idf = smooth_idf
        self.norm = norm
        self.n_features = n_features
        self.n_jobs = n_jobs

    def _analyzer_config(self):
        self._check_str_param("token_pattern")
        return {"kind": "word", "ngram_range": list(self.ngram_range),
                "token_pattern": self.token_pattern}


class CharTfidf(_NgramTfidf):
    __doc__ = f"""TF-IDF of character n-grams inside words, with word-boundary markers.

    Each token is wrapped as ``start_marker + token + end_marker`` and cut into character
    n-grams; a wrapped token shorter than the smallest n is one feature by itself (``"tv#"``).

    Parameters
    ----------
    ngram_range : (int, int), default=(3, 3)
        Smallest and largest n (in characters, markers included).
    end_marker, start_marker : str, default="#" and ""
        Strings appended to / prepended to every token ("" for none).
    token_pattern : str, default=DEFAULT_TOKEN_PATTERN
        Regular expression (Rust ``regex`` syntax) whose matches are the words.
    {_COMMON_DOC}
    Examples
    --------
    >>> from pecos_rs.text import CharTfidf
    >>> CharTfidf().fit(["Echo with screen"]).get_feature_names_out().tolist()[:6]
    ['cho', 'cre', 'ech', 'een', 'en#', 'ho#']
    """

    def __init__(self, *, ngram_range=(3, 3), end_marker="#", start_marker="",
                 token_pattern=DEFAULT_TOKEN_PATTERN, lowercase=True, unicode_normalization="NFKC",
                 strip_accents=None, min_df=1, max_df=1.0, max_features=None, binary=False,
                 sublinear_tf=False, use_idf=True, smooth_idf=True, norm="l2", n_features=None,
                 n_jobs=-1):
        self.ngram_range = ngram_range
        self.end_marker = end_marker
        self.start_marker = start_marker
        self.token_pattern = token_pattern
        self.lowercase = lowercase
        self.unicode_normalization = unicode_normalization
        self.strip_accents = strip_accents
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.binary = binary
        self.sublinear_tf = sublinear_tf
        self.use_idf = use_idf
        self.smooth_idf = smooth_idf
        self.norm = norm
        self.n_features = n_features
        self.n_jobs = n_jobs

    def _analyzer_config(self):
        for name in ("token_pattern", "end_marker", "start_marker"):
            self._check_str_param(name)
        return {"kind": "char_in_words", "ngram_range": list(self.ngram_range),
                "token_pattern": self.token_pattern, "start_marker": self.start_marker,
                "end_marker": self.end_marker}


class PositionWeightedCharTfidf(_NgramTfidf):
    __doc__ = f"""TF-IDF of character n-grams of the whole string, weighted by position.

    Whitespace runs become one space; the n-gram starting at character ``i`` (0-based) counts
    ``w(i)`` instead of 1, so that the first characters dominate and nearby vectors share a
    prefix, as in a trie (the prefix features of PECOS's session-aware autocompletion).

    Parameters
    ----------
    ngram_range : (int, int), default=(1, 3)
        Smallest and largest n.
    position_decay : {{"inverse", "inverse_sqrt", "exponential", "none"}}, default="inverse"
        ``w(i) = 1 / (i + 1)``, ``1 / sqrt(i + 1)``, ``decay_rate ** i``, or 1 (plain counts).
    decay_rate : float, default=0.9
        Base of the exponential decay, in (0, 1].
    {_COMMON_DOC}
    """

    def __init__(self, *, ngram_range=(1, 3), position_decay="inverse", decay_rate=0.9,
                 lowercase=True, unicode_normalization="NFKC", strip_accents=None, min_df=1,
                 max_df=1.0, max_features=None, binary=False, sublinear_tf=False, use_idf=True,
                 smooth_idf=True, norm="l2", n_features=None, n_jobs=-1):
        self.ngram_range = ngram_range
        self.position_decay = position_decay
        self.decay_rate = decay_rate
        self.lowercase = lowercase
        self.unicode_normalization = unicode_normalization
        self.strip_accents = strip_accents
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.binary = binary
        self.sublinear_tf = sublinear_tf
        self.use_idf = use_idf
        self.smooth_idf = smooth_idf
        self.norm = norm
        self.n_features = n_features
        self.n_jobs = n_jobs

    def _analyzer_config(self):
        if self.position_decay not in _DECAYS:
            raise InvalidParameterError(
                f"position_decay must be one of {_DECAYS}, got {self.position_decay!r}")
        rate = self.decay_rate
        if not (isinstance(rate, numbers.Real) and not isinstance(rate, bool) and 0 < rate <= 1):
            raise InvalidParameterError(f"decay_rate must be a number in (0, 1], got {rate!r}")
        decay = {"inverse": {"kind": "inverse"}, "inverse_sqrt": {"kind": "inverse_sqrt"},
                 "exponential": {"kind": "exponential", "rate": float(rate)},
                 "none": {"kind": "constant"}}[self.position_decay]
        return {"kind": "chars", "ngram_range": list(self.ngram_range), "position_decay": decay}


_FEATURIZERS = {c.__name__: c for c in (WordTfidf, CharTfidf, PositionWeightedCharTfidf)}


def default_blocks():
    r"""The default blocks of :class:`TextFeaturizer`: the product-search setting.

    ``[("word", WordTfidf(ngram_range=(1, 3), sublinear_tf=True)),
    ("char", CharTfidf(ngram_range=(3, 3), end_marker="#", token_pattern=r"\S+",
    sublinear_tf=True))]``: the char block's words are whitespace-separated (punctuation kept,
    as in scikit-learn's ``char_wb``) and term frequencies are dampened.

    For XR-Linear on the debian-depends and aol-click data sets, dropping the word 3-grams
    measured better: word 1-2-grams of tokens of 2+ characters and character 3-grams of
    space-padded words (scikit-learn's ``word`` + ``char_wb`` recipe) scored P@1/3/5 and R@10
    0.1-1.2 points above this default on debian-depends (test and validation splits) and about
    the same on aol-click; sublinear tf made no consistent difference (within 0.4 either way)::

        [("word", WordTfidf(ngram_range=(1, 2), token_pattern=r"(?u)\b\w\w+\b",
                            sublinear_tf=True)),
         ("char", CharTfidf(ngram_range=(3, 3), token_pattern=r"\S+", start_marker=" ",
                            end_marker=" ", sublinear_tf=True))]

    BENCHMARKS.md ("XR-Linear accuracy on these features") has the measurements.
    """
    return [("word", WordTfidf(ngram_range=(1, 3), sublinear_tf=True)),
            ("char", CharTfidf(ngram_range=(3, 3), end_marker="#", token_pattern=r"\S+",
                               sublinear_tf=True))]


class TextFeaturizer(TransformerMixin, BaseEstimator):
    """Several text featurizers side by side: ``[w_1 B_1(x), ..., w_k B_k(x)]``, each block
    normalised by its own featurizer, then every row renormalised.

    Parameters
    ----------
    blocks : list of (str, featurizer) or None, default=None
        Named featurizers (:class:`WordTfidf`, :class:`CharTfidf`,
        :class:`PositionWeightedCharTfidf`). None means the product-search setting of PECOS
        (Chang et al., KDD 2021), word 1-3-grams + character 3-grams with the end marker ``"#"``,
        as built by :func:`default_blocks`.
    block_weights : list of float or None, default=None
        Weight of each block before renormalisation (default: all 1).
    norm : {"l2", "l1"} or None, default="l2"
        Normalisation of the stacked rows.

    Attributes
    ----------
    blocks_ : list of (str, featurizer)
        The fitted featurizers (clones of ``blocks``).

    Examples
    --------
    >>> from pecos_rs.text import TextFeaturizer
    >>> X = TextFeaturizer().fit_transform(["echo with screen", "kindle paperwhite"])
    >>> X.shape, X.dtype
    ((2, 34), dtype('float32'))
    """

    def __init__(self, blocks=None, *, block_weights=None, norm="l2"):
        self.blocks = blocks
        self.block_weights = block_weights
        self.norm = norm

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags

    def _resolved_blocks(self):
        blocks = self.blocks
        if blocks is None:
            blocks = default_blocks()
        try:
            names = [name for name, _ in blocks]
        except (TypeError, ValueError):
            raise InvalidParameterError("blocks must be a list of (name, featurizer) pairs") from None
        if not blocks or len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            raise InvalidParameterError("blocks must be a non-empty list with unique str names")
        for name, f in blocks:
            if not isinstance(f, _NgramTfidf):
                raise InvalidParameterError(
                    f"block {name!r} must be a pecos_rs.text featurizer, got {type(f).__name__}")
        weights = self.block_weights
        if weights is None:
            weights = [1.0] * len(blocks)
        if (len(weights) != len(blocks)
                or not all(isinstance(w, numbers.Real) and np.isfinite(w) and w >= 0 for w in weights)):
            raise InvalidParameterError(
                "block_weights must hold one finite weight >= 0 per block")
        if self.norm not in ("l1", "l2", None):
            raise InvalidParameterError(f'norm must be "l1", "l2" or None, got {self.norm!r}')
        return blocks, [float(w) for w in weights]

    def fit(self, raw_documents, y=None):
        """Fit every block on the documents (an iterator is read into a list first)."""
        blocks, weights = self._resolved_blocks()
        docs = _as_list(raw_documents)
        self.blocks_ = [(name, clone(f).fit(docs)) for name, f in blocks]
        self.weights_ = weights
        return self

    def transform(self, raw_documents):
        """Stacked, renormalised rows: a float32 CSR matrix with sorted indices."""
        check_is_fitted(self, "blocks_")
        docs = _as_list(raw_documents)
        return self._stack([f.transform(docs) for _, f in self.blocks_])

    def fit_transform(self, raw_documents, y=None):
        """Fit every block and return the stacked rows, tokenizing the documents once per block."""
        blocks, weights = self._resolved_blocks()
        docs = _as_list(raw_documents)
        fitted = [(name, clone(f)) for name, f in blocks]
        parts = [f.fit_transform(docs) for _, f in fitted]
        self.blocks_, self.weights_ = fitted, weights
        return self._stack(parts)

    def _stack(self, parts):
        norm = "none" if self.norm is None else self.norm
        stacked = _pecos_rs.stack_blocks([csr_args(p) for p in parts], self.weights_, norm)
        return _csr_from_arrays(*stacked)

    def get_feature_names_out(self, input_features=None):
        """``"<block>__<n-gram>"`` for every column."""
        check_is_fitted(self, "blocks_")
        return np.concatenate([
            np.asarray([f"{name}__{n}" for n in f.get_feature_names_out()], dtype=object)
            for name, f in self.blocks_
        ])

    def save(self, path):
        """Write the fitted featurizer to directory `path`: ``featurizer.json`` and one file per block."""
        check_is_fitted(self, "blocks_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        files = []
        for i, (name, f) in enumerate(self.blocks_):
            files.append(f"block{i}.bin")
            f.save(path / files[-1])
        meta = {
            "format": "pecos_rs.text.TextFeaturizer",
            "format_version": _FEATURIZER_FORMAT,
            "pecos_rs_version": _pecos_rs.__version__,
            "blocks": [{"name": name, "file": file} for (name, _), file in zip(self.blocks_, files)],
            "block_weights": self.weights_,
            "norm": self.norm,
        }
        (path / _COMBINED_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path):
        """Load a featurizer written by :meth:`save` (raises ModelFormatError if corrupt)."""
        path = Path(path)
        try:
            meta = json.loads((path / _COMBINED_FILE).read_text(encoding="utf-8"))
            if meta["format"] != "pecos_rs.text.TextFeaturizer":
                raise ValueError(f"format {meta['format']!r}")
            if meta["format_version"] != _FEATURIZER_FORMAT:
                raise ValueError(f"unsupported format version {meta['format_version']!r}")
            names = [b["name"] for b in meta["blocks"]]
            files = [path / Path(b["file"]).name for b in meta["blocks"]]
            weights, norm = meta["block_weights"], meta["norm"]
        except (ValueError, KeyError, TypeError) as e:
            raise ModelFormatError(f"corrupt {_COMBINED_FILE} in {path}: {e}") from e
        blocks = [(name, _NgramTfidf.load(file)) for name, file in zip(names, files)]
        est = cls(blocks=[(n, clone(f)) for n, f in blocks], block_weights=weights, norm=norm)
        try:
            _, weights = est._resolved_blocks()
        except InvalidParameterError as e:
            raise ModelFormatError(f"corrupt {_COMBINED_FILE} in {path}: {e}") from e
        est.blocks_, est.weights_ = blocks, weights
        return est


def _as_list(raw_documents) -> list:
    """The documents as a list (rejected as `_batches` rejects them)."""
    if isinstance(raw_documents, list):
        return raw_documents
    return [doc for batch in _batches(raw_documents) for doc in batch]


def load(path):
    """Load any featurizer of this module saved with ``save`` (a directory for
    :class:`TextFeaturizer`, a file for the others)."""
    if Path(path).is_dir():
        return TextFeaturizer.load(path)
    return _featurizer_from_vocab(_pecos_rs.TfidfVocabulary.load(str(path)), path)

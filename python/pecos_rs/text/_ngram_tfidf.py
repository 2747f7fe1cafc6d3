"""What the n-gram TF-IDF featurizers share: parameters, fit / transform, persistence.

A subclass defines the parameters of its analyzer and ``_analyzer_config``, the analyzer's
configuration for the Rust kernel; decorated with :func:`loadable`, its saved files load back
through :func:`featurizer_from_vocab`.
"""

from __future__ import annotations

import json
import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .. import _pecos_rs
from .._artifact import metadata
from .._params import check_param, is_int
from .._threads import resolve_n_jobs
from ..exceptions import InvalidInputError, InvalidParameterError, ModelFormatError
from ._csr import csr_from_arrays, stack_rows
from ._documents import ACCENT_STRIPPERS, NORMALIZATIONS, DocumentsInputMixin, batches, preprocess

FORMAT_VERSION = 1
#: Saved formats are named "pecos_rs.text.<class name>".
FORMAT_PREFIX = "pecos_rs.text."

# Class name -> featurizer class, for the saved files that name them (see `loadable`).
_LOADABLE = {}


class NgramTfidf(DocumentsInputMixin, TransformerMixin, BaseEstimator):
    """Shared fit / transform / save logic; subclasses define the analyzer."""

    def _analyzer_config(self) -> dict:
        raise NotImplementedError

    # ------------------------------------------------------------------ parameters

    def _store_constructor_args(self, args: dict) -> None:
        """Keep every constructor argument, unchanged, as the attribute of the same name (what
        scikit-learn's get_params and clone expect); `args` is the constructor's ``locals()``."""
        for name, value in args.items():
            if name != "self":
                setattr(self, name, value)

    def _check_params(self):
        r = self.ngram_range
        check_param(self, "ngram_range",
                    isinstance(r, (tuple, list)) and len(r) == 2 and all(is_int(v) for v in r)
                    and 1 <= r[0] <= r[1] <= 64,
                    "a pair (min_n, max_n) of integers with 1 <= min_n <= max_n <= 64")
        for name in ("lowercase", "binary", "sublinear_tf", "use_idf", "smooth_idf"):
            check_param(self, name, isinstance(getattr(self, name), (bool, np.bool_)), "a bool")
        check_param(self, "unicode_normalization", self.unicode_normalization in NORMALIZATIONS,
                    f"one of {NORMALIZATIONS}")
        check_param(self, "strip_accents", self.strip_accents in ACCENT_STRIPPERS,
                    'None, "unicode" or "ascii"')
        check_norm(self)
        for name in ("min_df", "max_df"):
            v = getattr(self, name)
            check_param(self, name, (is_int(v) and v >= 0)
                        or (isinstance(v, numbers.Real) and not is_int(v) and not isinstance(v, bool)
                            and 0.0 <= v <= 1.0),
                        "an int >= 0 (documents) or a float in [0, 1] (fraction of documents)")
        check_param(self, "max_features",
                    self.max_features is None or (is_int(self.max_features) and self.max_features >= 1),
                    "None or an int >= 1")
        check_param(self, "n_features",
                    self.n_features is None or (is_int(self.n_features) and 1 <= self.n_features < 2**31),
                    "None or an int in [1, 2^31)")
        check_param(self, "n_jobs", self.n_jobs is None or (is_int(self.n_jobs) and self.n_jobs != 0),
                    "None or a nonzero integer")
        if self.n_features is not None and self.max_features is not None:
            raise InvalidParameterError("max_features cannot be combined with hashing (n_features)")

    def _config_json(self) -> str:
        config = {
            "analyzer": plain(self._analyzer_config()),
            "n_buckets": None if self.n_features is None else int(self.n_features),
            "binary": bool(self.binary),
            "sublinear_tf": bool(self.sublinear_tf),
            "use_idf": bool(self.use_idf),
            "smooth_idf": bool(self.smooth_idf),
            "norm": "none" if self.norm is None else self.norm,
        }
        return json.dumps(config)

    # ------------------------------------------------------------------ documents

    def _prepare(self, batch: list, offset: int) -> list:
        """Check that every document is a str and apply the preprocessing steps."""
        return preprocess(batch, offset, unicode_normalization=self.unicode_normalization,
                          lowercase=self.lowercase, strip_accents=self.strip_accents)

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
        for batch in batches(raw_documents):
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
        for batch in batches(raw_documents):
            parts.append(self.tfidf_model_.transform(self._prepare(batch, seen), first_doc=seen,
                                                     n_threads=n_threads))
            seen += len(batch)
        return stack_rows(parts, self.tfidf_model_.n_columns)

    def fit_transform(self, raw_documents, y=None):
        """Fit and return the rows of the same documents, tokenizing them once.

        Equal to ``fit(docs).transform(docs)``; an iterator is read once, in batches.
        """
        return csr_from_arrays(*self._fit(raw_documents, record=True))

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
        """The metadata that the saved file holds (written by the Rust core)."""
        return metadata(f"{FORMAT_PREFIX}{type(self).__name__}", FORMAT_VERSION,
                        params=plain(self.get_params()))

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
        est = featurizer_from_vocab(vocab, path)
        if not isinstance(est, cls):
            raise ModelFormatError(f"{path} holds a {type(est).__name__}, not a {cls.__name__}")
        return est


def check_norm(estimator) -> None:
    """Check the `norm` parameter of an estimator that normalises its rows like the featurizers."""
    check_param(estimator, "norm", estimator.norm in ("l1", "l2", None), '"l1", "l2" or None')


def plain(value):
    """`value` with numpy scalars (accepted as parameters) turned into Python ones, for JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def featurizer_from_vocab(vocab, where):
    """The featurizer of a loaded vocabulary, rebuilt from the parameters in its metadata (`where`
    names the file in errors)."""
    try:
        meta = json.loads(vocab.metadata)
        kind, version = meta["format"], meta["format_version"]
        cls = _LOADABLE[kind.removeprefix(FORMAT_PREFIX)]
        if version != FORMAT_VERSION:
            raise ModelFormatError(f"featurizer format version {version!r} is not supported")
        params = dict(meta["params"])
        params["ngram_range"] = tuple(params["ngram_range"])
        est = cls(**params)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelFormatError(f"{where} does not hold a pecos_rs text featurizer: {e}") from e
    est.tfidf_model_ = vocab
    return est


def loadable(cls):
    """Class decorator: let :func:`featurizer_from_vocab` rebuild featurizers of `cls` from the
    files they save (which name the class)."""
    _LOADABLE[cls.__name__] = cls
    return cls

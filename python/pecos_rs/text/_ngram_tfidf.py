"""What the n-gram TF-IDF featurizers share: parameters, fit / transform, persistence.

A subclass defines the parameters of its analyzer and ``_kind``, the analyzer of the Rust kernel,
which checks every parameter; decorated with :func:`loadable`, its saved files load back
through :func:`featurizer_from_vocab`.
"""

from __future__ import annotations

import json

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .. import _pecos_rs
from .._artifact import metadata
from .._params import plain
from .._threads import resolve_n_jobs
from ..exceptions import InvalidInputError, ModelFormatError
from ._csr import csr_from_arrays, stack_rows
from ._documents import DocumentsInputMixin, batches, preprocess

FORMAT_VERSION = 1
#: Saved formats are named "pecos_rs.text.<class name>".
FORMAT_PREFIX = "pecos_rs.text."

# Class name -> featurizer class, for the saved files that name them (see `loadable`).
_LOADABLE: dict[str, type] = {}


class NgramTfidf(DocumentsInputMixin, TransformerMixin, BaseEstimator):
    """Shared fit / transform / save logic; subclasses define the analyzer."""

    #: The Rust analyzer: "word", "char_in_words" or "chars".
    _kind: str

    # ------------------------------------------------------------------ parameters

    def _store_constructor_args(self, args: dict) -> None:
        """Keep every constructor argument, unchanged, as the attribute of the same name (what
        scikit-learn's get_params and clone expect); `args` is the constructor's ``locals()``."""
        for name, value in args.items():
            if name != "self":
                setattr(self, name, value)

    def _core_params(self) -> dict:
        """The parameters the Rust core checks and uses: all but the thread count."""
        params = self.get_params()
        del params["n_jobs"]
        return plain(params)

    # ------------------------------------------------------------------ documents

    def _prepare(self, batch: list, offset: int) -> list:
        """Check that every document is a str and apply the preprocessing steps."""
        return preprocess(batch, offset, unicode_normalization=self.unicode_normalization,
                          lowercase=self.lowercase, strip_accents=self.strip_accents)

    def _preprocessing(self) -> tuple:
        """What :meth:`_prepare` does: featurizers with equal values prepare documents alike."""
        return (self.unicode_normalization, self.lowercase, self.strip_accents)

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

    def _fit(self, raw_documents, *, record, prepared=False):
        """Fit; with `record`, also return the rows of the documents (one tokenization pass).
        `prepared`: the documents went through :meth:`_prepare` already."""
        n_threads = resolve_n_jobs(self.n_jobs)
        counter = _pecos_rs.NgramCounter(self._kind, self._core_params(), record=record)
        seen = 0
        for batch in batches(raw_documents):
            counter.update(batch if prepared else self._prepare(batch, seen), first_doc=seen, n_threads=n_threads)
            seen += len(batch)
        if seen == 0:
            raise InvalidInputError("cannot fit on an empty collection of documents")
        vocab, rows = counter.finish(metadata=json.dumps(self._save_header()), n_threads=n_threads)
        self.tfidf_model_ = vocab
        self.__dict__.pop("_vocabulary_cache", None)
        return rows

    def transform(self, raw_documents):
        """TF-IDF rows of the documents: a float32 CSR matrix with sorted indices.

        N-grams not seen in fit are ignored; a document without known n-grams gives an empty row.
        """
        check_is_fitted(self, "tfidf_model_")
        return self._transform(raw_documents)

    def _transform(self, raw_documents, prepared=False):
        """:meth:`transform`; `prepared` as in :meth:`_fit`."""
        n_threads = resolve_n_jobs(self.n_jobs)
        parts, seen = [], 0
        for batch in batches(raw_documents):
            parts.append(self.tfidf_model_.transform(batch if prepared else self._prepare(batch, seen),
                                                     first_doc=seen, n_threads=n_threads))
            seen += len(batch)
        return stack_rows(parts, self.tfidf_model_.n_columns)

    def _row_arrays(self, doc: str) -> tuple:
        """The TF-IDF row of one document as the core's ``(indptr, indices, data, n_rows, n_cols)``,
        on the calling thread, without a scipy matrix: the real-time path of the autocompleter
        (a fitted featurizer and a str are the caller's to guarantee)."""
        indptr, indices, data, (n_rows, n_cols) = self.tfidf_model_.transform(
            self._prepare([doc], 0), first_doc=0, n_threads=1
        )
        return indptr, indices, data, n_rows, n_cols

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

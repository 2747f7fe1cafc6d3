"""The most-frequent-query (MFQ) completion index: the prefix top-k search of the Rust core."""

from __future__ import annotations

import json

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from .. import _pecos_rs
from .._artifact import check_metadata, metadata
from .._params import plain
from .._threads import resolve_n_jobs
from ..exceptions import InvalidInputError, ModelFormatError

_FORMAT_NAME = "pecos_rs.qac.CompletionIndex"
FORMAT_VERSION = 1


class CompletionIndex(BaseEstimator):
    """The most frequent completions of a prefix, backing off to shorter prefixes.

    The query-autocompletion baseline of PECOS's ``examples/qp2q`` (its ``PrefFreqSuggester``, the
    "MFQ" of Yadav et al., KDD 2021), and the fallback of session-aware models. For a prefix ``p``
    the suggestions are the queries starting with ``p`` by count, then, if there are fewer than
    ``k``, those starting with ``p`` less its last character (and not with ``p``) by count, and so
    on down to the empty prefix (every query), until ``k`` are found. Characters are Unicode code
    points; a prefix is never cut inside one.

    Equal counts go to the query that sorts first in code point order, so results are
    deterministic; PECOS breaks such ties in whatever order its prefix dictionary holds, so its
    suggestions can differ from these in the order of equally frequent queries, never otherwise.

    Unlike PECOS, no top-k list is stored per prefix: the distinct queries are kept sorted in Rust
    with a range-minimum structure over their ranks by count, so an index takes memory in
    proportion to its queries (about 50 bytes for a query of 20 characters) and answers any ``k``
    in about a microsecond.

    Parameters
    ----------
    n_jobs : int or None, default=None
        Threads for :meth:`fit` and :meth:`suggest_batch`: None means 1, -1 all cores. Results do
        not depend on it; :meth:`suggest` always runs on the calling thread.

    Attributes
    ----------
    index_ : pecos_rs._pecos_rs.CompletionIndex
        The Rust index. Query ids (as in :meth:`prefix_range`) are positions in code point order.

    Examples
    --------
    >>> from pecos_rs.qac import CompletionIndex
    >>> mfq = CompletionIndex().fit(["ebay", "google", "gmail", "google", "goo"])
    >>> mfq.suggest("goo", k=2)
    [('google', 2.0), ('goo', 1.0)]
    >>> mfq.suggest("gx", k=3)     # nothing starts with "gx": back off to "g"
    [('google', 2.0), ('gmail', 1.0), ('goo', 1.0)]
    """

    def __init__(self, n_jobs=None):
        self.n_jobs = n_jobs

    def fit(self, queries, counts=None):
        """Index `queries` (an iterable of str, in any order) with their `counts` (numbers, finite
        and >= 0; default 1 each). A query given several times has its counts summed.

        Raises
        ------
        InvalidInputError
            (a ValueError) If a query is not a str, a count is NaN, infinite or negative, the
            lengths differ, or there are no queries.
        """
        queries = _str_list(queries, "queries")
        counts = np.ones(len(queries)) if counts is None else _counts(counts)
        header = metadata(_FORMAT_NAME, FORMAT_VERSION, params=plain(self.get_params()))
        self.index_ = _pecos_rs.CompletionIndex(queries, counts, metadata=json.dumps(header),
                                                n_threads=resolve_n_jobs(self.n_jobs))
        return self

    def suggest(self, prefix, k=10):
        """The top-`k` suggestions for `prefix` as a list of ``(query, count)``, best first; fewer
        than `k` only if the index holds fewer queries.

        Raises
        ------
        InvalidInputError
            If `prefix` is not a str.
        InvalidParameterError
            If `k` is not an integer >= 1.
        """
        # type() first: the real-time path skips plain()'s checks for a Python int.
        return self._index().top_k(prefix, k if type(k) is int else plain(k))

    def suggest_batch(self, prefixes, k=10):
        """:meth:`suggest` for each prefix of an iterable, in parallel (``n_jobs``) with the GIL
        released: a list of lists of ``(query, count)``."""
        prefixes = _str_list(prefixes, "prefixes")
        return self._index().top_k_batch(prefixes, plain(k), n_threads=resolve_n_jobs(self.n_jobs))

    def prefix_range(self, prefix):
        """The ids ``(start, end)`` of the queries starting with `prefix`: :attr:`queries_`
        ``[start:end]`` (empty, at the place `prefix` would take, if none does)."""
        return self._index().prefix_range(prefix)

    @property
    def queries_(self) -> list:
        """The distinct queries in id order (code point order), as a new list."""
        return self._index().queries

    @property
    def counts_(self) -> np.ndarray:
        """The count of every query (summed over repeats), in id order, as a new float64 array."""
        return self._index().counts

    @property
    def n_queries_(self) -> int:
        """Number of distinct queries."""
        return len(self._index())

    def save(self, path):
        """Write the fitted index (queries, counts, parameters) to the file `path`: a versioned,
        checksummed file, no pickle."""
        self._index().save(str(path))

    @classmethod
    def load(cls, path):
        """Load an index written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If `path` does not exist.
        ModelFormatError
            If the file is corrupt, truncated, foreign or of an unknown version.
        """
        index = _pecos_rs.CompletionIndex.load(str(path))
        meta = check_metadata(json.loads(index.metadata), _FORMAT_NAME, FORMAT_VERSION,
                              holder=path, label="completion index")
        try:
            est = cls(**meta["params"])
        except (KeyError, TypeError) as e:
            raise ModelFormatError(f"{path} holds unusable parameters: {e!r}") from e
        est.index_ = index
        return est

    def _index(self):
        try:
            return self.index_
        except AttributeError:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' first."
            ) from None


def _str_list(items, name: str) -> list:
    """`items` as a list (its elements are checked to be str by the Rust core)."""
    if isinstance(items, list):
        return items
    if isinstance(items, (str, bytes)):
        raise InvalidInputError(f"{name} must be an iterable of str, not a single {type(items).__name__}")
    try:
        return list(items)
    except TypeError:
        raise InvalidInputError(
            f"{name} must be an iterable of str, got {type(items).__name__}"
        ) from None


def _counts(counts) -> np.ndarray:
    """`counts` as a 1-D float64 array (their values are checked by the Rust core)."""
    if isinstance(counts, (str, bytes)):
        raise InvalidInputError(f"counts must be numbers, not a {type(counts).__name__}")
    try:
        counts = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"counts must be numbers: {e}") from None
    if counts.ndim != 1:
        raise InvalidInputError(f"counts must be one number per query, got shape {counts.shape}")
    return counts

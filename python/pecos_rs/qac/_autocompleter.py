"""Session-aware query autocompletion (PECOS's qp2q, Yadav et al. KDD 2021).

From the previous query of a session and the prefix typed so far, suggest the next queries. The
labels are the training next-queries, sorted as strings, so that the labels starting with a prefix
are one range of label ids: the XR-Linear model searches only tree nodes holding such labels
(prefix-aware search), and a most-frequent-completion index fills what the model leaves
(:class:`CompletionIndex`), so that an answer is never empty while a training query starts with
the prefix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from .. import _pecos_rs
from .._artifact import read_metadata, write_metadata
from .._params import check_param, is_int, str_list
from .._sparse import csr_args
from ..exceptions import InvalidInputError
from ..indexer import HierarchicalKMeans, HybridIndexer, TrieIndexer, pifa
from ..text import PositionWeightedCharTfidf, WordTfidf
from ..xlinear import XRLinearClassifier, _search_params
from ._completion import CompletionIndex

_FORMAT_NAME = "pecos_rs.qac.SessionAutocompleter"
_FORMAT_VERSION = 1
_META_FILE = "autocompleter.json"
_INDEXERS = ("hybrid", "trie", "kmeans")
#: Trie depth by indexer when `trie_depth` is None: the paper's hybrid and pure-trie settings.
_DEFAULT_TRIE_DEPTH = {"hybrid": 2, "trie": 16}


class SessionAutocompleter(BaseEstimator):
    """Suggest the next query from the previous one and the typed prefix.

    The input of the model is the word TF-IDF of the previous query next to the
    position-weighted character TF-IDF of the prefix (its first characters weigh most); the labels
    are the distinct training next-queries. The label tree follows the label strings: a trie on the
    top characters and balanced 2-means below (``"hybrid"``), a pure trie (``"trie"``), or PECOS's
    default k-means tree (``"kmeans"``). Suggestions start with the prefix whenever training
    queries do: the search enters only tree nodes holding such labels, and when the model finds
    fewer than ``k`` the most frequent completions of the prefix follow, backing off one character
    at a time (PECOS's most-frequent-query baseline), so the answer is empty only when no training
    query at all exists.

    Parameters
    ----------
    indexer : {"hybrid", "trie", "kmeans"}, default="hybrid"
    trie_depth : int or None, default=None
        Character levels of the trie: the hybrid's top levels (2 if None) or the pure trie's
        depth (16 if None); not used by ``"kmeans"``.
    label_features : {"prefix", "pifa"}, default="prefix"
        What the 2-means splits cluster: the prefix featurizer applied to the label strings (as
        the paper does), or PIFA embeddings.
    query_features, prefix_features : text featurizer or None
        Featurizers of the previous query and of the prefix; None means
        ``WordTfidf(ngram_range=(1, 1), strip_accents="unicode")`` and
        ``PositionWeightedCharTfidf(ngram_range=(1, 3))``.
    n_splits, max_leaf_size, beam_size, threshold : as in :class:`pecos_rs.XRLinearClassifier`
        Defaults 2, 100, 10, 0.1 (the paper's binary tree).
    label_queries : {"next", "all"}, default="all"
        The queries that can be suggested: the training next-queries, or also the previous
        queries (every query the training examples hold); with ``"all"`` each previous query
        also becomes an example of its own, typed at the start of a session (an empty previous
        query and a random prefix of it).
    prefix_samples : int, default=4
        Training rows per example: the example's own prefix, plus ``prefix_samples - 1`` other
        prefixes of its next query (lengths drawn without replacement, seeded by
        ``random_state``), so that the model learns the next query from any prefix, as a user may
        stop typing anywhere.
    candidates : int, default=30
        Labels taken from the model per query before the frequency re-ranking (at least ``k``
        are taken).
    frequency_weight : float in [0, 1], default=0.3
        Ranks the model's candidates by ``score ** (1 - w) * (count / max count) ** w``, the counts
        being training frequencies of the candidates; 0 keeps the model's order.

    The defaults were chosen on the validation split of AOL QAC (BENCHMARKS.md lists every
    configuration tried).
    n_jobs : int or None, default=None
    random_state : int, default=0
    """

    def __init__(
        self,
        *,
        indexer="hybrid",
        trie_depth=None,
        label_features="prefix",
        query_features=None,
        prefix_features=None,
        n_splits=2,
        max_leaf_size=100,
        beam_size=10,
        threshold=0.1,
        label_queries="all",
        prefix_samples=4,
        candidates=30,
        frequency_weight=0.3,
        n_jobs=None,
        random_state=0,
    ):
        self.indexer = indexer
        self.trie_depth = trie_depth
        self.label_features = label_features
        self.query_features = query_features
        self.prefix_features = prefix_features
        self.n_splits = n_splits
        self.max_leaf_size = max_leaf_size
        self.beam_size = beam_size
        self.threshold = threshold
        self.label_queries = label_queries
        self.prefix_samples = prefix_samples
        self.candidates = candidates
        self.frequency_weight = frequency_weight
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ training

    def _check_own_params(self):
        """The parameters this class handles itself; the rest are checked by the parts that use them."""
        check_param(self, "indexer", self.indexer in _INDEXERS, f"one of {_INDEXERS}")
        check_param(self, "label_features", self.label_features in ("prefix", "pifa"), '"prefix" or "pifa"')
        check_param(self, "label_queries", self.label_queries in ("next", "all"), '"next" or "all"')
        check_param(self, "candidates", is_int(self.candidates) and self.candidates >= 1, "an int >= 1")
        check_param(self, "prefix_samples", is_int(self.prefix_samples) and self.prefix_samples >= 1,
                    "an int >= 1")
        w = self.frequency_weight
        check_param(self, "frequency_weight",
                    isinstance(w, (int, float)) and not isinstance(w, bool) and 0.0 <= w <= 1.0,
                    "a number in [0, 1]")

    def fit(self, prev_queries, prefixes, next_queries):
        """Learn from ``(previous query, prefix, next query)`` triples; an empty previous query
        (the first query of a session) is a normal input.

        Returns
        -------
        self : SessionAutocompleter
        """
        self._check_own_params()
        prev_queries = str_list(prev_queries, "prev_queries")
        prefixes = str_list(prefixes, "prefixes")
        next_queries = str_list(next_queries, "next_queries")
        if not (len(prev_queries) == len(prefixes) == len(next_queries)):
            raise InvalidInputError(
                "prev_queries, prefixes and next_queries must have the same length, got "
                f"{len(prev_queries)}, {len(prefixes)} and {len(next_queries)}"
            )
        if not next_queries:
            raise InvalidInputError("cannot fit on no examples")
        if self.label_queries == "all":
            prev_queries, prefixes, next_queries = self._previous_as_first(prev_queries, prefixes, next_queries)
        self.completion_ = CompletionIndex(n_jobs=self.n_jobs).fit(next_queries)
        # The index sorts its queries as the labels must be (code point order): label i is query i.
        self.labels_ = np.array(self.completion_.queries_, dtype=object)
        self.label_counts_ = self.completion_.counts_
        label_id = {q: i for i, q in enumerate(self.labels_)}
        # After the index, whose counts are those of the examples given.
        prev_queries, prefixes, next_queries = self._more_prefixes(prev_queries, prefixes, next_queries)
        rows = np.arange(len(next_queries) + 1)
        Y = sp.csr_matrix(
            (np.ones(len(next_queries), np.float32), [label_id[q] for q in next_queries], rows),
            shape=(len(next_queries), len(self.labels_)),
        )
        query_f = self.query_features
        if query_f is None:
            query_f = WordTfidf(ngram_range=(1, 1), strip_accents="unicode")
        prefix_f = self.prefix_features
        if prefix_f is None:
            prefix_f = PositionWeightedCharTfidf(ngram_range=(1, 3))
        self.query_features_ = clone(query_f).fit(sorted(set(prev_queries)) or [""])
        self.prefix_features_ = clone(prefix_f).fit(prefixes)
        X = self._features(prev_queries, prefixes)
        chain = self._label_tree(Y, X)
        self.model_ = XRLinearClassifier(
            n_splits=self.n_splits, max_leaf_size=self.max_leaf_size, beam_size=self.beam_size,
            threshold=self.threshold, n_jobs=self.n_jobs, random_state=self.random_state,
        ).fit(X, Y, cluster_chain=chain)
        return self

    def _previous_as_first(self, prev_queries, prefixes, next_queries):
        """The examples followed by one per non-empty previous query, as the first query of a
        session: no previous query, a prefix of uniformly drawn length (seeded)."""
        rng = np.random.default_rng(self.random_state)
        firsts = [q for q in prev_queries if q]
        lengths = rng.integers(1, [len(q) + 1 for q in firsts]) if firsts else []
        return (prev_queries + [""] * len(firsts), prefixes + [q[:n] for q, n in zip(firsts, lengths)],
                next_queries + firsts)

    def _more_prefixes(self, prev_queries, prefixes, next_queries):
        """The examples, each followed by ``prefix_samples - 1`` rows with other prefixes of its
        next query (fewer when it has fewer other prefixes)."""
        extra = self.prefix_samples - 1
        if extra == 0:
            return prev_queries, prefixes, next_queries
        rng = np.random.default_rng(self.random_state)
        rows = ([], [], [])
        for prev, prefix, query in zip(prev_queries, prefixes, next_queries):
            others = [n for n in range(1, len(query) + 1) if n != len(prefix)]
            lengths = rng.permutation(others)[:extra] if others else []
            for p in [prefix] + [query[:n] for n in lengths]:
                rows[0].append(prev)
                rows[1].append(p)
                rows[2].append(query)
        return rows

    def _features(self, prev_queries, prefixes) -> sp.csr_matrix:
        """Model input rows: previous-query features beside prefix features, rows L2-normalised
        (stacked in Rust: scipy's hstack and normalize took most of a query's time)."""
        blocks = [self.query_features_.transform(prev_queries), self.prefix_features_.transform(prefixes)]
        indptr, indices, data, shape = _pecos_rs.stack_blocks([csr_args(b) for b in blocks], [1.0, 1.0], "l2")
        return sp.csr_matrix((data, indices, indptr), shape=shape)

    def _label_tree(self, Y, X):
        labels = list(self.labels_)
        depth = self.trie_depth if self.trie_depth is not None else _DEFAULT_TRIE_DEPTH.get(self.indexer)
        if self.indexer == "trie":
            return TrieIndexer(depth=depth).fit(labels)
        Z = self.prefix_features_.transform(labels) if self.label_features == "prefix" else pifa(Y, X)
        if self.indexer == "hybrid":
            return HybridIndexer(
                trie_depth=depth, n_splits=self.n_splits, max_leaf_size=self.max_leaf_size,
                random_state=self.random_state, n_jobs=self.n_jobs,
            ).fit(labels, Z)
        return HierarchicalKMeans(
            n_splits=self.n_splits, max_leaf_size=self.max_leaf_size, random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(Z)

    # ---------------------------------------------------------------- suggestions

    def suggest(self, prev_query: str, prefix: str, k: int = 10) -> list:
        """Up to `k` ``(query, score)`` suggestions, best first: the model's (scores in (0, 1]
        with the default post-processor), then completions of the prefix by frequency (score 0).

        The real-time path: the featurizers' and the model's Rust kernels are called directly on
        one row (no scipy matrix, no batch machinery), on the calling thread."""
        check_is_fitted(self, "model_")
        for name, value in (("prev_query", prev_query), ("prefix", prefix)):
            if not isinstance(value, str):
                raise InvalidInputError(f"{name} must be a str, got {type(value).__name__}")
        k = self._check_k(k)
        row = _pecos_rs.stack_blocks(
            [self.query_features_._row_arrays(prev_query), self.prefix_features_._row_arrays(prefix)],
            [1.0, 1.0], "l2",
        )
        indptr, indices, data, (n_rows, n_cols) = row
        ranges = np.array([self.completion_.prefix_range(prefix)], dtype=np.uint32)
        model = self.model_
        params = _search_params(model.beam_size, max(k, self.candidates), model.post_processor)
        labels, scores = model._search((indptr, indices, data, n_rows, n_cols), params, 1, ranges)
        return self._answer(prefix, labels[0], scores[0], k)

    def suggest_batch(self, prev_queries, prefixes, k: int = 10) -> list:
        """:meth:`suggest` for many ``(previous query, prefix)`` pairs: one list per pair."""
        check_is_fitted(self, "model_")
        prev_queries = str_list(prev_queries, "prev_queries")
        prefixes = str_list(prefixes, "prefixes")
        if len(prev_queries) != len(prefixes):
            raise InvalidInputError(
                f"prev_queries and prefixes must have the same length, got {len(prev_queries)} and {len(prefixes)}"
            )
        k = self._check_k(k)
        if not prefixes:
            return []
        ranges = np.array([self.completion_.prefix_range(p) for p in prefixes], dtype=np.int64)
        labels, scores = self.model_.predict_topk(
            self._features(prev_queries, prefixes), max(k, self.candidates), label_ranges=ranges
        )
        return [self._answer(prefix, row_labels, row_scores, k)
                for prefix, row_labels, row_scores in zip(prefixes, labels, scores)]

    @staticmethod
    def _check_k(k) -> int:
        if not is_int(k) or k < 1:
            raise InvalidInputError(f"k must be an int >= 1, got {k!r}")
        return int(k)

    def _answer(self, prefix, row_labels, row_scores, k):
        found = row_labels >= 0
        ids, scores = row_labels[found], row_scores[found].astype(np.float64)
        w = self.frequency_weight
        if w > 0 and ids.size:
            counts = self.label_counts_[ids]
            scores = scores ** (1 - w) * (counts / counts.max()) ** w
            order = np.argsort(-scores, kind="stable")
            ids, scores = ids[order], scores[order]
        ranked = [(self.labels_[i], float(s)) for i, s in zip(ids, scores)]
        answer = ranked[:k]
        if len(answer) < k:
            seen = {query for query, _ in answer}
            for query, _ in self.completion_.suggest(prefix, k):
                if query not in seen and len(answer) < k:
                    answer.append((query, 0.0))
                    seen.add(query)
        return answer

    # ------------------------------------------------------------------ persistence

    def save(self, path):
        """Write the fitted autocompleter to directory `path`: its parameters, the two
        featurizers, the model and the completion index, in the package's validated formats."""
        check_is_fitted(self, "model_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.query_features_.save(path / "query_features.bin")
        self.prefix_features_.save(path / "prefix_features.bin")
        self.model_.save(path / "model")
        self.completion_.save(path / "completion")
        params = {k: v for k, v in self.get_params(deep=False).items()
                  if k not in ("query_features", "prefix_features")}
        write_metadata(path / _META_FILE, _FORMAT_NAME, _FORMAT_VERSION, params=params)

    @classmethod
    def load(cls, path):
        """Load an autocompleter written by :meth:`save` (ModelFormatError if corrupt)."""
        from ..text import load as load_featurizer

        path = Path(path)
        meta = read_metadata(path / _META_FILE, _FORMAT_NAME, _FORMAT_VERSION)
        est = cls(**meta["params"])
        est.query_features_ = load_featurizer(path / "query_features.bin")
        est.prefix_features_ = load_featurizer(path / "prefix_features.bin")
        est.model_ = XRLinearClassifier.load(path / "model")
        est.completion_ = CompletionIndex.load(path / "completion")
        est.labels_ = np.array(est.completion_.queries_, dtype=object)
        est.label_counts_ = est.completion_.counts_
        return est

"""Session-aware query autocompletion (PECOS's qp2q, Yadav et al. KDD 2021).

From the previous query of a session and the prefix typed so far, suggest the next queries. The
labels are the training next-queries, sorted as strings, so that the labels starting with a prefix
are one range of label ids: the XR-Linear model searches only tree nodes holding such labels
(prefix-aware search), and a most-frequent-completion index fills what the model leaves
(:class:`CompletionIndex`), so that an answer is never empty while a training query starts with
the prefix. The candidates are re-ranked with what the previous query says directly: the words they
share with it, and how often they were next to it in a training session.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from .. import _pecos_rs
from .._artifact import corrupt, read_metadata, write_metadata
from .._params import check_param, is_int, is_number, str_list
from .._sparse import csr_args
from ..exceptions import InvalidInputError
from ..indexer import HierarchicalKMeans, HybridIndexer, TrieIndexer, pifa
from ..text import PositionWeightedCharTfidf, WordTfidf
from ..xlinear import XRLinearClassifier, _search_params
from ._completion import CompletionIndex

_FORMAT_NAME = "pecos_rs.qac.SessionAutocompleter"
_FORMAT_VERSION = 2  # 2: the session pairs and the re-ranking parameters
#: Version 1 files had neither: they load with the re-ranking of their time turned off.
_VERSION_1_PARAMS = {"overlap_weight": 0.0, "session_weight": 0.0, "exclude_previous": False}
_META_FILE = "autocompleter.json"
_PAIRS_FILE = "session_pairs.npz"
_INDEXERS = ("hybrid", "trie", "kmeans")
#: Trie depth by indexer when `trie_depth` is None: the paper's hybrid and pure-trie settings.
_DEFAULT_TRIE_DEPTH = {"hybrid": 2, "trie": 16}
#: The model score given to a session neighbour of the previous query that the model did not return
#: (its real score is unknown, below those returned, as far as the beam saw): small, so that only
#: the session bonus can lift it. On AOL val, 0.001 to 0.1 give MRR@10 within 0.0002 of each other.
_UNRETURNED_SCORE = 0.01


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
    candidates : int, default=100
        Labels taken from the model per query before the re-ranking (at least ``k`` are taken).
    frequency_weight : float in [0, 1], default=0.6
        Ranks the candidates by ``score ** (1 - w) * (count / max count) ** w``, the counts being
        training frequencies of the candidates; 0 keeps the model's order (before the factors
        below).
    overlap_weight : float >= 0, default=3.0
        Multiplies the score of a candidate by ``exp(overlap_weight * share)``, ``share`` being the
        fraction of its distinct words (split on whitespace) that the previous query holds: next
        queries are often reformulations of the previous one. 0 turns it off.
    session_weight : float >= 0, default=1.0
        Training examples are also remembered as session pairs: how often two label queries were
        consecutive in a session, in either order. The previous query's neighbours that start with
        the prefix join the candidates (with a small model score if the model did not return them)
        and their score is multiplied by ``1 + session_weight * times seen together``. 0 turns it
        off (and stores no pairs).
    exclude_previous : bool, default=True
        Never suggest the previous query itself: sessions collapse consecutive repeats of a query
        (in AOL QAC no next query equals its previous query), so it cannot be the next query.

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
        candidates=100,
        frequency_weight=0.6,
        overlap_weight=3.0,
        session_weight=1.0,
        exclude_previous=True,
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
        self.overlap_weight = overlap_weight
        self.session_weight = session_weight
        self.exclude_previous = exclude_previous
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
        check_param(self, "frequency_weight", is_number(w) and 0.0 <= w <= 1.0, "a number in [0, 1]")
        for name in ("overlap_weight", "session_weight"):
            value = getattr(self, name)
            check_param(self, name, is_number(value) and 0.0 <= value < float("inf"), "a finite number >= 0")
        check_param(self, "exclude_previous", isinstance(self.exclude_previous, bool), "True or False")

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
        pairs = list(zip(prev_queries, next_queries))  # the session pairs, before the rows added below
        if self.label_queries == "all":
            prev_queries, prefixes, next_queries = self._previous_as_first(prev_queries, prefixes, next_queries)
        self.completion_ = CompletionIndex(n_jobs=self.n_jobs).fit(next_queries)
        # The index sorts its queries as the labels must be (code point order): label i is query i.
        self.labels_ = np.array(self.completion_.queries_, dtype=object)
        self.label_counts_ = self.completion_.counts_
        label_id = {q: i for i, q in enumerate(self.labels_)}
        self.session_pairs_ = self._session_pairs(pairs, label_id)
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

    def _session_pairs(self, pairs, label_id):
        """A symmetric sparse matrix over the labels: entry (i, j) counts the examples whose
        previous and next queries are labels i and j, in either order; None if
        ``session_weight`` is 0."""
        if self.session_weight == 0:
            return None
        ids = [(label_id[p], label_id[q]) for p, q in pairs if p in label_id]
        rows = np.array([i for i, _ in ids] + [j for _, j in ids], dtype=np.int64)
        cols = np.array([j for _, j in ids] + [i for i, _ in ids], dtype=np.int64)
        n = len(self.labels_)
        pairs = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n)).tocsr()
        pairs.sum_duplicates()  # repeated pairs summed, the columns of each row sorted
        return pairs

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
        prefix_range = self.completion_.prefix_range(prefix)
        ranges = np.array([prefix_range], dtype=np.uint32)
        model = self.model_
        params = _search_params(model.beam_size, max(k, self.candidates), model.post_processor)
        labels, scores = model._search((indptr, indices, data, n_rows, n_cols), params, 1, ranges)
        return self._answer(prev_query, prefix, prefix_range, labels[0], scores[0], k)

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
        return [self._answer(prev, prefix, prefix_range, row_labels, row_scores, k)
                for prev, prefix, prefix_range, row_labels, row_scores
                in zip(prev_queries, prefixes, ranges, labels, scores)]

    @staticmethod
    def _check_k(k) -> int:
        if not is_int(k) or k < 1:
            raise InvalidInputError(f"k must be an int >= 1, got {k!r}")
        return int(k)

    def _label_id(self, query) -> int:
        """The label id of `query`, or -1 if it is not a label (it would be the first label of its
        own prefix range)."""
        start, end = self.completion_.prefix_range(query)
        return int(start) if query and start < end and self.labels_[start] == query else -1

    def _answer(self, prev_query, prefix, prefix_range, row_labels, row_scores, k):
        """The model's candidates (label ids and scores, -1 where none), re-ranked, then the
        completion index's fill."""
        found = row_labels >= 0
        ids, scores = row_labels[found].astype(np.int64), row_scores[found].astype(np.float64)
        prev_id = self._label_id(prev_query)
        together = np.zeros(ids.size)
        neighbours = self._neighbours(prev_id, prefix_range)
        if neighbours:  # usually none start with the prefix: plain Python for these few
            returned = set(ids.tolist())
            new = [i for i in neighbours if i not in returned]
            ids = np.concatenate([ids, np.array(new, dtype=np.int64)])
            scores = np.concatenate([scores, np.full(len(new), _UNRETURNED_SCORE)])
            together = np.array([neighbours.get(i, 0.0) for i in ids.tolist()])
        if self.exclude_previous and prev_id >= 0:
            keep = ids != prev_id
            ids, scores, together = ids[keep], scores[keep], together[keep]
        if ids.size:
            scores = self._rerank(prev_query, ids, scores, together)
            order = np.argsort(-scores, kind="stable")
            ids, scores = ids[order], scores[order]
        answer = [(self.labels_[i], float(s)) for i, s in zip(ids[:k], scores[:k])]
        if len(answer) < k:
            seen = {query for query, _ in answer}
            if self.exclude_previous:
                seen.add(prev_query)
            for query, _ in self.completion_.suggest(prefix, k + 1):  # + 1: the previous query
                if query not in seen and len(answer) < k:
                    answer.append((query, 0.0))
                    seen.add(query)
        return answer

    def _neighbours(self, prev_id, prefix_range) -> dict:
        """``{label id: times seen together}`` for the session neighbours of label `prev_id` that
        start with the prefix (label ids in `prefix_range`); empty without session pairs."""
        if self.session_weight == 0 or self.session_pairs_ is None or prev_id < 0:
            return {}
        pairs = self.session_pairs_
        start, end = pairs.indptr[prev_id], pairs.indptr[prev_id + 1]
        row = pairs.indices[start:end]  # sorted: a popular query has thousands of neighbours
        lo, hi = start + np.searchsorted(row, prefix_range)
        return dict(zip(pairs.indices[lo:hi].tolist(), pairs.data[lo:hi].tolist()))

    def _rerank(self, prev_query, ids, scores, together):
        """The scores of candidates `ids` (model `scores`, times seen `together` with the previous
        query) after the frequency, word-overlap and session factors."""
        w = self.frequency_weight
        if w > 0:
            counts = self.label_counts_[ids]
            scores = scores ** (1 - w) * (counts / counts.max()) ** w
        prev_words = set(prev_query.split())
        if self.overlap_weight > 0 and prev_words:
            shares = []
            for query in self.labels_[ids]:
                words = set(query.split())
                shares.append(len(words & prev_words) / len(words) if words else 0.0)
            scores = scores * np.exp(self.overlap_weight * np.array(shares))
        if self.session_weight > 0:
            scores = scores * (1 + self.session_weight * together)
        return scores

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
        if self.session_pairs_ is not None:
            pairs = self.session_pairs_
            np.savez(path / _PAIRS_FILE, indptr=pairs.indptr, indices=pairs.indices, data=pairs.data)
        params = {k: v for k, v in self.get_params(deep=False).items()
                  if k not in ("query_features", "prefix_features")}
        write_metadata(path / _META_FILE, _FORMAT_NAME, _FORMAT_VERSION, params=params)

    @classmethod
    def load(cls, path, mmap=None):
        """Load an autocompleter written by :meth:`save` (ModelFormatError if corrupt); `mmap`
        maps the model's weights (``True``), reads them (``False``) or maps a large model where
        it is safe (``None``), as :meth:`XRLinearClassifier.load` does (the featurizers and the
        completion index, a small part of the bytes, are read)."""
        from ..text import load as load_featurizer

        path = Path(path)
        meta = read_metadata(path / _META_FILE, _FORMAT_NAME, (1, _FORMAT_VERSION))
        try:
            params = {**(_VERSION_1_PARAMS if meta["format_version"] == 1 else {}), **meta["params"]}
            est = cls(**params)
        except (KeyError, TypeError) as e:
            raise corrupt(path / _META_FILE, e) from e
        est.query_features_ = load_featurizer(path / "query_features.bin")
        est.prefix_features_ = load_featurizer(path / "prefix_features.bin")
        est.model_ = XRLinearClassifier.load(path / "model", mmap=mmap)
        est.completion_ = CompletionIndex.load(path / "completion")
        est.labels_ = np.array(est.completion_.queries_, dtype=object)
        est.label_counts_ = est.completion_.counts_
        est.session_pairs_ = None
        if est.session_weight != 0:
            est.session_pairs_ = _load_pairs(path / _PAIRS_FILE, len(est.labels_))
        return est


def _load_pairs(file: Path, n_labels: int) -> sp.csr_matrix:
    """The session pairs saved by :meth:`SessionAutocompleter.save`, checked to be a CSR matrix
    over `n_labels` labels (ModelFormatError otherwise)."""
    try:
        # Opened here: np.load leaves its own handle open when the zip is damaged.
        with open(file, "rb") as f, np.load(f, allow_pickle=False) as arrays:
            indptr, indices, data = arrays["indptr"], arrays["indices"], arrays["data"]
        pairs = sp.csr_matrix((data, indices, indptr), shape=(n_labels, n_labels))
        pairs.check_format(full_check=True)
        if not pairs.has_canonical_format:
            raise ValueError("the columns of a row are not sorted and distinct")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise corrupt(file, err) from err
    return pairs

"""Benchmark ONE query-autocompletion method on aol-qac in this (fresh) process, one JSON result.

The task is PECOS's session-aware QAC (``examples/qp2q``, Yadav et al., KDD 2021): from the
previous query of a session and the typed prefix of the next query, suggest the 10 queries most
likely typed. Steps, in order:

1. load ``train`` and the evaluation split (``--split val|test``) of ``../shared/data/aol-qac``
   and import the method (untimed), record the RSS;
2. fit on ``train`` (timed; the parts, such as featurization, are timed too) and record the
   peak RSS;
3. save the model, measure its bytes on disk, drop it, load it back (timed);
4. every evaluation row one at a time from its raw strings (previous query, prefix), one
   thread, after ``N_WARMUP`` untimed warm-up calls: each call is timed (for libpecos:
   featurization + prediction + prefix filter) and its suggestions are the ones scored;
5. MRR@10, success@10, rank-weighted BLEU and the share of empty answers, over all rows and by
   prefix length (``pecos_rs.metrics.qac_report``, the same function for every method), and a
   SHA-256 of the suggestions (identical hashes mean identical answers); the peak RSS.

Methods (``--method``):

* ``mfq``: the most-frequent-query baseline with the semantics of qp2q's ``PrefFreqSuggester``,
  in plain Python as PECOS does it: a dict from every prefix of every training next query
  (the empty prefix included) to its 10 most frequent completions (ties by query string), and
  at query time the completions of the prefix, then of the prefix minus its last character
  that are not in yet, and so on down to the empty prefix, until there are 10.
* ``libpecos``: qp2q's XR-Linear recipe (config 2: word TF-IDF of the previous query + char
  TF-IDF of the prefix, PIFA + binary hierarchical k-means) with libpecos 1.2.8; see
  ``LibpecosRunner``.
* ``pecos_rs_mfq``, ``pecos_rs``: pecos_rs's completion index and autocompleter
  (``pecos_rs.qac``), reported as "missing" while that module does not import.

Usage: python benches/run_qac.py --method mfq --split val --out result.json
Exit status: 0 ok, 1 the run failed, 2 the method is not installed (the JSON says which).
"""

from __future__ import annotations

import argparse
import bisect
import gc
import gzip
import hashlib
import itertools
import json
import pickle
import time
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import features
from proc_stats import peak_rss_mb, rss_mb
from run_one import run_isolated, save_and_reload
from pecos_rs.metrics import qac_report

K = 10  # suggestions per query, as in qp2q's evaluation
N_WARMUP = 100
SPLITS = ("val", "test")


def load_split(data_root: Path, split: str, limit: int | None = None) -> list[dict]:
    """The rows ``{"prev_query", "prefix", "next_query"}`` of one aol-qac split, in file order;
    only the first `limit` of them when given (read no further)."""
    path = data_root / "aol-qac" / f"{split}.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in itertools.islice(f, limit)]


def coverage(train_targets: list[str], rows: list[dict]) -> dict:
    """Shares of the evaluation rows whose next query is a train next query (the ceiling of
    success@K for suggestions taken from train queries) and whose prefix starts at least one
    train next query (elsewhere a method that keeps only completions of the prefix among train
    queries has no answer). `train_targets`: the distinct train next queries, sorted."""
    def completed(prefix: str) -> bool:
        i = bisect.bisect_left(train_targets, prefix)
        return i < len(train_targets) and train_targets[i].startswith(prefix)
    known = set(train_targets)
    return {"eval_targets_in_train": float(np.mean([row["next_query"] in known for row in rows])),
            "eval_prefixes_completed_in_train": float(np.mean([completed(row["prefix"]) for row in rows]))}


class Runner:
    """One QAC method behind a common interface. Subclasses set ``package``, ``settings`` and
    ``model_attrs`` (the attributes that hold the model, cleared by ``drop``)."""

    package: str | None  # the distribution whose version is recorded
    settings: dict
    model_attrs: tuple = ()

    def __init__(self, threads: int, model_dir: Path):
        self.threads = threads
        self.model_dir = model_dir

    def fit(self, train: list[dict]) -> dict:
        """Build the model from the training rows; returns the timings of its parts (seconds)."""
        raise NotImplementedError

    def save(self) -> None:
        """Write the model into ``model_dir`` (created before)."""
        raise NotImplementedError

    def drop(self) -> None:
        for name in self.model_attrs:
            setattr(self, name, None)

    def load(self) -> None:
        """Load the model saved in ``model_dir`` for answering queries."""
        raise NotImplementedError

    def prepare_mapped(self) -> bool:
        """No memory-mapped load is timed for these methods (``run_one.save_and_reload`` asks)."""
        return False

    def suggest(self, prev_query: str, prefix: str) -> list[str]:
        """At most K suggestions, best first, for one query given as its raw strings (one thread)."""
        raise NotImplementedError


class MfqRunner(Runner):
    package = None  # plain Python: the version recorded is Python's
    settings = {
        "method": "qp2q's PrefFreqSuggester (most frequent query), plain Python",
        "model": "dict: every prefix (empty one included) of every train next_query -> its 10 most "
                 "frequent completions (frequency = occurrences as a train next_query; ties by query "
                 "string); saved as JSON",
        "suggest": "completions of the prefix, then those of the prefix minus its last character not "
                   "already in, and so on down to the empty prefix, first 10",
    }
    model_attrs = ("top",)

    def fit(self, train):
        counts = Counter(row["next_query"] for row in train)
        top: dict[str, list] = {}
        for query, count in sorted(counts.items(), key=lambda qc: (-qc[1], qc[0])):
            for end in range(len(query) + 1):
                completions = top.setdefault(query[:end], [])
                if len(completions) < K:
                    completions.append((query, count))
        self.top = top
        return {"n_prefixes": len(top)}

    def save(self):
        with open(self.model_dir / "prefix_to_top10.json", "w", encoding="utf-8") as f:
            json.dump(self.top, f)

    def load(self):
        with open(self.model_dir / "prefix_to_top10.json", encoding="utf-8") as f:
            self.top = json.load(f)

    def suggest(self, prev_query, prefix):
        out: list[str] = []
        seen: set[str] = set()
        while True:
            for query, _count in self.top.get(prefix, ()):
                if query not in seen:
                    out.append(query)
                    seen.add(query)
                    if len(out) == K:
                        return out
            if not prefix:
                return out
            prefix = prefix[:-1]


class LibpecosRunner(Runner):
    """qp2q's ``Trainer.train`` (``models/train_model.py``) and ``PecosQP2QModel.get_suggestions``
    (``models/pecosq2q.py``) with config 2 (``pref_vectorizer="c-tfidf"``, ``prefix_vect_data=
    "train_data"``, no label features, ``hierarchicalkmeans``), rewritten for libpecos 1.2.8."""

    package = "libpecos"
    BEAM = 10
    MAX_LEAF_SIZE = 100
    ONLY_TOPK = BEAM * MAX_LEAF_SIZE  # qp2q: topk = beam_size * max_leaf_size
    MAX_QUERY_TOKENS = 100  # qp2q answers [] to a longer (or empty) previous query
    settings = {
        "rows": "the unique (prev_query, prefix) pairs of train in order of first occurrence; labels = "
                "the unique train next_queries sorted by string; Y[row, label] = 1 if the pair occurs",
        "features": "L2-normalised hstack of TfidfVectorizer(strip_accents='unicode', analyzer='word', "
                    "ngram_range=(1, 1)) of prev_query, fit on the unique prev queries, and "
                    "TfidfVectorizer(strip_accents='unicode', analyzer='char', ngram_range=(1, 3)) of the "
                    "prefix, fit on the prefixes of the rows (float32; other scikit-learn defaults)",
        "label_embedding": "LabelEmbeddingFactory.create(Y, X, method='pifa')",
        "indexer": "Indexer.gen(Z, indexer_type='hierarchicalkmeans', nr_splits=2, max_leaf_size=100, "
                   "seed=121, kmeans_max_iter=20, spherical=True)",
        "train": "XLinearModel.train(X, Y, C=C, Cp=1, Cn=1, threshold=0.1) (other defaults: tfn, "
                 "L2R_L2LOSS_SVC_DUAL, bias 1)",
        "load": "XLinearModel.load(dir, is_predict_only=True); vectorizers pickled",
        "suggest": "[] if prev_query has no token or > 100; else predict(x, beam_size=10, only_topk=1000, "
                   "threads=1), labels by score (ties by label id), keep those that start with the "
                   "prefix, first 10",
        "train_time_covers": "featurization (fit of both vectorizers, X and Y of train) + PIFA + "
                             "hierarchical k-means + XLinearModel.train",
    }
    model_attrs = ("model", "query_vectorizer", "prefix_vectorizer", "labels")

    def __init__(self, threads, model_dir):
        super().__init__(threads, model_dir)
        from pecos.xmc import Indexer, LabelEmbeddingFactory
        from pecos.xmc.xlinear.model import XLinearModel
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import normalize
        self.Indexer, self.LabelEmbeddingFactory, self.XLinearModel = Indexer, LabelEmbeddingFactory, XLinearModel
        self.TfidfVectorizer, self.normalize = TfidfVectorizer, normalize

    def featurize(self, prev_queries: list[str], prefixes: list[str]) -> sp.csr_matrix:
        X = sp.hstack([self.query_vectorizer.transform(prev_queries),
                       self.prefix_vectorizer.transform(prefixes)], format="csr")
        X = self.normalize(X, norm="l2", axis=1)
        X.sort_indices()
        return X

    def fit(self, train):
        t0 = time.perf_counter()
        pairs = list(dict.fromkeys((row["prev_query"], row["prefix"]) for row in train))
        pair_id = {pair: i for i, pair in enumerate(pairs)}
        self.labels = sorted({row["next_query"] for row in train})
        label_id = {label: j for j, label in enumerate(self.labels)}
        Y = sp.csr_matrix((np.ones(len(train), dtype=np.float32),
                           ([pair_id[row["prev_query"], row["prefix"]] for row in train],
                            [label_id[row["next_query"]] for row in train])),
                          shape=(len(pairs), len(self.labels)))
        Y.data[:] = 1.0  # duplicate (pair, next_query) rows were summed: binarise, as qp2q does
        prev_queries = [prev for prev, _ in pairs]
        prefixes = [prefix for _, prefix in pairs]
        self.query_vectorizer = self.TfidfVectorizer(
            strip_accents="unicode", ngram_range=(1, 1), analyzer="word", dtype=np.float32,
        ).fit(sorted(set(prev_queries)))
        self.prefix_vectorizer = self.TfidfVectorizer(
            strip_accents="unicode", ngram_range=(1, 3), analyzer="char", dtype=np.float32, use_idf=True,
        ).fit(prefixes)
        X = self.featurize(prev_queries, prefixes)
        t1 = time.perf_counter()
        Z = self.LabelEmbeddingFactory.create(Y, X, method="pifa", threads=self.threads)
        C = self.Indexer.gen(Z, indexer_type="hierarchicalkmeans", nr_splits=2,
                             max_leaf_size=self.MAX_LEAF_SIZE, seed=121, kmeans_max_iter=20,
                             spherical=True, threads=self.threads)
        t2 = time.perf_counter()
        self.model = self.XLinearModel.train(X, Y.tocsc(), C=C, threads=self.threads,
                                             Cp=1.0, Cn=1.0, threshold=0.1)
        t3 = time.perf_counter()
        return {"featurize_s": t1 - t0, "pifa_index_s": t2 - t1, "xlinear_train_s": t3 - t2,
                "n_rows": X.shape[0], "n_features": X.shape[1], "n_labels": len(self.labels),
                "n_word_features": len(self.query_vectorizer.vocabulary_),
                "n_char_features": len(self.prefix_vectorizer.vocabulary_),
                "tree_layers": len(C), "leaf_clusters": C[-1].shape[1]}

    def save(self):
        self.model.save(str(self.model_dir / "xlinear"))
        with open(self.model_dir / "vectorizers.pkl", "wb") as f:
            pickle.dump((self.query_vectorizer, self.prefix_vectorizer), f, protocol=pickle.HIGHEST_PROTOCOL)
        with open(self.model_dir / "labels.json", "w", encoding="utf-8") as f:
            json.dump(self.labels, f)

    def load(self):
        self.model = self.XLinearModel.load(str(self.model_dir / "xlinear"), is_predict_only=True)
        with open(self.model_dir / "vectorizers.pkl", "rb") as f:
            self.query_vectorizer, self.prefix_vectorizer = pickle.load(f)
        with open(self.model_dir / "labels.json", encoding="utf-8") as f:
            self.labels = json.load(f)

    def suggest(self, prev_query, prefix):
        n_tokens = len(prev_query.split())
        if n_tokens == 0 or n_tokens > self.MAX_QUERY_TOKENS:
            return []
        pred = self.model.predict(self.featurize([prev_query], [prefix]), beam_size=self.BEAM,
                                  only_topk=self.ONLY_TOPK, threads=1)
        out = []
        for j in pred.indices[np.lexsort((pred.indices, -pred.data))]:
            label = self.labels[j]
            if label.startswith(prefix):
                out.append(label)
                if len(out) == K:
                    break
        return out


class PecosRsQacRunner(Runner):
    """Base of the pecos_rs runners: they need ``pecos_rs.qac`` and are "missing" until it imports.

    They train on the same rows and answer one raw query per call with one thread, as the peers
    do."""

    package = "pecos_rs"
    model_attrs = ("model",)

    def __init__(self, threads, model_dir):
        super().__init__(threads, model_dir)
        import pecos_rs.qac as qac  # ImportError (status "missing") until that module exists
        self.qac = qac



class PecosRsMfqRunner(PecosRsQacRunner):
    settings = {"method": "pecos_rs.qac.CompletionIndex: most frequent completions of the prefix with "
                          "the back-off of mfq; its suggestions should hash like mfq's"}

    def fit(self, train):
        self.model = self.qac.CompletionIndex().fit([row["next_query"] for row in train])
        return {}

    def save(self):
        self.model.save(self.model_dir / "mfq.bin")

    def load(self):
        self.model = self.qac.CompletionIndex.load(self.model_dir / "mfq.bin")

    def suggest(self, prev_query, prefix):
        return [query for query, _ in self.model.suggest(prefix, K)]


class PecosRsRunner(PecosRsQacRunner):
    """pecos_rs.qac.SessionAutocompleter with its defaults, or the parameters given (``--params``)."""

    def __init__(self, threads, model_dir, params=None):
        super().__init__(threads, model_dir)
        self.params = params or {}
        self.settings = {"method": "pecos_rs.qac.SessionAutocompleter (previous query + prefix)",
                         "params": self.params, "train_rows": "every train row"}

    def fit(self, train):
        self.model = self.qac.SessionAutocompleter(n_jobs=self.threads, **self.params)
        self.model.fit([r["prev_query"] for r in train], [r["prefix"] for r in train],
                       [r["next_query"] for r in train])
        return {}

    def save(self):
        self.model.save(self.model_dir / "autocompleter")

    def load(self):
        self.model = self.qac.SessionAutocompleter.load(self.model_dir / "autocompleter", mmap=False)

    def suggest(self, prev_query, prefix):
        return [query for query, _ in self.model.suggest(prev_query, prefix, K)]


RUNNERS = {"mfq": MfqRunner, "libpecos": LibpecosRunner,
           "pecos_rs_mfq": PecosRsMfqRunner, "pecos_rs": PecosRsRunner}


def run(args, runner: Runner, result: dict) -> None:
    """Fill ``result`` step by step, so a failure still leaves what was measured."""
    t0 = time.perf_counter()
    train, rows = (load_split(args.data_root, split, args.limit) for split in ("train", args.split))
    train_targets = sorted({row["next_query"] for row in train})
    result.update(
        data_load_s=time.perf_counter() - t0, rss_after_data_mb=rss_mb(),
        n_train=len(train), n_eval=len(rows), **coverage(train_targets, rows),
    )

    gc.collect()
    t0 = time.perf_counter()
    result["train_parts"] = runner.fit(train)
    result["train_s"] = time.perf_counter() - t0
    result["peak_rss_after_train_mb"] = peak_rss_mb()
    del train, train_targets

    runner.model_dir.mkdir(parents=True, exist_ok=True)
    result.update(save_and_reload(runner))

    for row in rows[:N_WARMUP]:
        runner.suggest(row["prev_query"], row["prefix"])
    suggestions, times = [], np.empty(len(rows))
    for i, row in enumerate(rows):
        t0 = time.perf_counter()
        suggestions.append(runner.suggest(row["prev_query"], row["prefix"]))
        times[i] = time.perf_counter() - t0
    times *= 1e3
    result["single_query"] = {"n": len(rows), "n_warmup": N_WARMUP, "mean_ms": float(times.mean()),
                              "p50_ms": float(np.percentile(times, 50)),
                              "p99_ms": float(np.percentile(times, 99))}
    result["metrics"] = qac_report([row["prefix"] for row in rows], [row["next_query"] for row in rows],
                                   suggestions, k=K)
    result["mean_suggestions"] = float(np.mean([len(s) for s in suggestions]))
    result["suggestions_sha256"] = hashlib.sha256(json.dumps(suggestions).encode()).hexdigest()
    result["peak_rss_mb"] = peak_rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, choices=sorted(RUNNERS))
    parser.add_argument("--split", required=True, choices=SPLITS, help="val to tune, test to report")
    parser.add_argument("--threads", type=int, default=2, help="threads for training (queries use one)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows of train and eval (a try)")
    parser.add_argument("--data-root", type=Path, default=features.DATA_ROOT)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--params", type=json.loads, default=None,
                        help="pecos_rs only: SessionAutocompleter parameters as a JSON object")
    args = parser.parse_args()
    if args.params is not None and args.method != "pecos_rs":
        parser.error("--params applies to --method pecos_rs only")
    extra = {} if args.params is None else {"params": args.params}

    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    result = {"method": args.method, "split": args.split, "threads": args.threads, "k": K, "limit": args.limit}
    run_isolated(lambda model_dir: RUNNERS[args.method](args.threads, model_dir, **extra),
                 lambda runner: run(args, runner, result), result, args.out, f"qac {args.method} {args.split}",
                 lambda r: f", MRR@{K} {r['metrics']['all'][f'MRR@{K}']:.4f}, train {r['train_s']:.1f} s")


if __name__ == "__main__":
    main()

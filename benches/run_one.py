"""Benchmark ONE library on ONE data set in this (fresh) process and write a JSON result.

Steps, in order (the features are loaded before any timer starts):

1. import the library, load the cached features (``features.py``), record the RSS;
2. train (timed: the library's fit call only) and record the peak RSS;
3. save the model and measure its bytes on disk, drop it, time a memory-mapped load of it in a
   fresh process (libraries that can map their models), load it back for prediction (timed);
4. batch prediction of the whole test set, beam 10, top 10, ``--threads`` threads (timed: the
   library's predict call only; turning its output into a label array is not timed);
5. P@1/3/5 and R@10 from that top 10 (``pecos_rs.metrics``, PECOS semantics, the same function for every library);
6. single-query latency: the first ``--n-single`` test rows one at a time from Python, each
   already sliced into the library's input format before its timer starts, after 10 untimed
   warm-up calls; ``--single-threads`` threads (default 1: no library parallelises one row, and
   libpecos's documented real-time path is ``predict(x, threads=1)``);
7. the peak RSS of the process (``ru_maxrss``).

Usage: python benches/run_one.py --lib libpecos --dataset bibtex --threads 2 --out result.json
Exit status: 0 ok, 1 the run failed, 2 the library is not installed (the JSON says which).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import features
from proc_stats import installed_version, peak_rss_mb, rss_mb
from pecos_rs.metrics import precision_recall_at_k

BEAM = 10
TOPK = 10
N_WARMUP = 10


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def save_and_reload(runner) -> dict:
    """Save the trained model of `runner` into its ``model_dir``, measure it on disk, drop it and
    time loading it back: ``{"model_bytes", "load_s"}`` (every benchmark's persistence step; the
    loaded model serves the predictions), plus ``mapped_load_s`` for a library that can map its
    model file instead of reading it, timed in a fresh process (``mapped_load_in_fresh_process``)
    before the read load. Both loads read a file just written, so its pages are in the page cache
    as far as memory allows (at 2M labels most had left it)."""
    runner.save()
    model_bytes = dir_bytes(runner.model_dir)
    runner.drop()
    gc.collect()
    timings = {"model_bytes": model_bytes}
    if runner.prepare_mapped():
        timings["mapped_load_s"] = mapped_load_in_fresh_process(runner)
    t0 = time.perf_counter()
    runner.load()
    timings["load_s"] = time.perf_counter() - t0
    return timings


def mapped_load_in_fresh_process(runner) -> float:
    """Seconds a new Python process takes in ``load_mapped`` of `runner`'s saved model: what a
    server starting on that file sees. A mapped load touches little memory, so timing it inside
    this process would measure this process instead: beside the training data and the pages of
    a multi-GB model just freed, the file's pages get evicted (at 1M labels: 61 ms in process,
    12 ms fresh). The child imports the library before its timer starts."""
    lib = next(name for name, cls in RUNNERS.items() if type(runner) is cls)
    child = subprocess.run([sys.executable, __file__, "--lib", lib, "--time-mapped-load", str(runner.model_dir)],
                           capture_output=True, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"the mapped load in a fresh process failed: {child.stderr.strip()}")
    return float(json.loads(child.stdout)["mapped_load_s"])


def time_mapped_load(lib: str, model_dir: Path) -> None:
    """The child of ``mapped_load_in_fresh_process``: print ``{"mapped_load_s": ...}``."""
    runner = RUNNERS[lib](1, model_dir)
    t0 = time.perf_counter()
    mapped = runner.load_mapped()
    elapsed = time.perf_counter() - t0
    del mapped
    print(json.dumps({"mapped_load_s": elapsed}))


def ranked_pairs_to_array(rows: list, k: int) -> np.ndarray:
    """Turn per-row lists of (label, score) into an (n, k) int64 array, best first, padded with -1."""
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for i, pairs in enumerate(rows):
        ranked = sorted(pairs, key=lambda p: -p[1])[:k]
        out[i, : len(ranked)] = [label for label, _ in ranked]
    return out


class Runner:
    """One library behind a common interface. Subclasses set ``package`` and ``settings``."""

    package: str
    settings: dict

    def __init__(self, threads: int, model_dir: Path):
        self.threads = threads
        self.model_dir = model_dir

    def prepare_fit(self, X: sp.csr_matrix, Y: sp.csr_matrix) -> dict:
        """Untimed preparation of the training data; returns extra timings to record."""
        self.X, self.Y = X, Y
        return {}

    def fit(self) -> None:
        raise NotImplementedError

    def save(self) -> None:
        raise NotImplementedError

    def drop(self) -> None:
        """Release the trained model (before ``load`` is timed)."""
        self.model = None

    def load(self) -> None:
        """Replace the trained model by one loaded from ``model_dir`` for prediction."""
        raise NotImplementedError

    def prepare_mapped(self) -> bool:
        """Untimed preparation of a memory-mapped load (a format conversion, say); False when the
        library cannot map its models."""
        return False

    def load_mapped(self):
        """Return a model memory-mapped from the saved one (the timed call)."""
        raise NotImplementedError

    def prepare_batch(self, X: sp.csr_matrix):
        """Untimed conversion of the test set into the input of ``predict_batch``."""
        return X

    def predict_batch(self, X):
        """Return the library's raw top-k output for every test row (the timed call)."""
        raise NotImplementedError

    def to_labels(self, raw) -> np.ndarray:
        """Turn ``predict_batch``'s output into an (n, TOPK) int64 label array padded with -1."""
        raise NotImplementedError

    def queries(self, X: sp.csr_matrix, n: int) -> list:
        """The first n rows of X, each in the input format of ``predict_one``."""
        return [X[i] for i in range(n)]

    def set_single_threads(self, n: int) -> None:
        raise NotImplementedError

    def predict_one(self, query) -> None:
        raise NotImplementedError


class PecosRsRunner(Runner):
    package = "pecos_rs"
    settings = {
        "api": "XRLinearClassifier(n_splits=16, max_leaf_size=100, beam_size=10, topk=10, n_jobs=threads)"
               ".fit(X, Y); predict_topk(X); save(dir); XRLinearClassifier.load(dir, mmap=False)",
        "single_query": "set_params(n_jobs=single_threads); predict_topk(X[i])",
    }

    def __init__(self, threads, model_dir):
        super().__init__(threads, model_dir)
        try:
            from pecos_rs import XRLinearClassifier
        except ImportError as e:
            raise ImportError(f"not installed: {e}; run benches/setup_env.sh") from e
        self.cls = XRLinearClassifier

    def fit(self):
        self.model = self.cls(n_splits=16, max_leaf_size=100, beam_size=BEAM, topk=TOPK,
                              n_jobs=self.threads).fit(self.X, self.Y)

    def save(self):
        self.model.save(str(self.model_dir))

    def load(self):
        self.model = self.cls.load(str(self.model_dir), mmap=False)
        self.model.set_params(n_jobs=self.threads)

    def prepare_mapped(self):
        return True

    def load_mapped(self):
        return self.cls.load(str(self.model_dir), mmap=True)

    def predict_batch(self, X):
        return self.model.predict_topk(X)

    def to_labels(self, raw):
        labels, _scores = raw
        return np.asarray(labels, dtype=np.int64)[:, :TOPK]

    def set_single_threads(self, n):
        self.model.set_params(n_jobs=n)

    def predict_one(self, query):
        self.model.predict_topk(query)


class LibpecosRunner(Runner):
    package = "libpecos"
    settings = {
        "label_embedding": "LabelEmbeddingFactory.create(Y, X, method='pifa', threads=threads)",
        "indexer": "Indexer.gen(Z, indexer_type='hierarchicalkmeans', nr_splits=16, max_leaf_size=100, "
                   "seed=0, threads=threads)",
        "train": "XLinearModel.train(X, Y.tocsc(), C=C, threads=threads) (defaults: threshold 0.1, "
                 "negative_sampling_scheme 'tfn', L2R_L2LOSS_SVC_DUAL, Cp=Cn=1, bias 1)",
        "load": "XLinearModel.load(dir, is_predict_only=True) (BINARY_SEARCH_CHUNKED)",
        "mapped_load": "XLinearModel.compile_mmap_model(dir, mmap_dir) (untimed), then "
                       "XLinearModel.load(mmap_dir, is_predict_only=True)",
        "predict": "predict(X, beam_size=10, only_topk=10, threads=threads); post_processor l3-hinge",
        "single_query": "predict(X[i], beam_size=10, only_topk=10, threads=single_threads)",
        "train_time_covers": "PIFA + hierarchical k-means + XLinearModel.train",
    }

    def __init__(self, threads, model_dir):
        super().__init__(threads, model_dir)
        from pecos.xmc import Indexer, LabelEmbeddingFactory
        from pecos.xmc.xlinear.model import XLinearModel
        self.Indexer, self.LabelEmbeddingFactory, self.XLinearModel = Indexer, LabelEmbeddingFactory, XLinearModel
        self.pred_threads = threads
        self.mapped_dir = model_dir.parent / "model-mmap"  # written by prepare_mapped

    def fit(self):
        Z = self.LabelEmbeddingFactory.create(self.Y, self.X, method="pifa", threads=self.threads)
        C = self.Indexer.gen(Z, indexer_type="hierarchicalkmeans", nr_splits=16, max_leaf_size=100,
                             seed=0, threads=self.threads)
        self.model = self.XLinearModel.train(self.X, self.Y.tocsc(), C=C, threads=self.threads)

    def save(self):
        self.model.save(str(self.model_dir))

    def load(self):
        self.model = self.XLinearModel.load(str(self.model_dir), is_predict_only=True)

    def prepare_mapped(self):
        self.XLinearModel.compile_mmap_model(str(self.model_dir), str(self.mapped_dir))
        return True

    def load_mapped(self):
        return self.XLinearModel.load(str(self.mapped_dir), is_predict_only=True)

    def predict_batch(self, X):
        return self.model.predict(X, beam_size=BEAM, only_topk=TOPK, threads=self.pred_threads)

    def to_labels(self, raw):
        raw = sp.csr_matrix(raw)
        return ranked_pairs_to_array(
            [zip(raw.indices[a:b], raw.data[a:b]) for a, b in zip(raw.indptr[:-1], raw.indptr[1:])], TOPK)

    def set_single_threads(self, n):
        self.pred_threads = n

    def predict_one(self, query):
        self.model.predict(query, beam_size=BEAM, only_topk=TOPK, threads=self.pred_threads)


class OmikujiRunner(Runner):
    package = "omikuji"
    settings = {
        "hyper_params": "Model.default_hyper_param() (Parabel-like: 3 trees, balanced 2-means, "
                        "min_branch_size 100, max_depth 20, hinge loss, C 1, eps 0.1, "
                        "weight_threshold 0.1, max_iter 20)",
        "train": "the data set parsed from an XC-repository text file by load_omikuji_data_set "
                 "(untimed, as omikuji.Model.train_on_data does), then train_omikuji_model with "
                 "n_threads=threads (timed)",
        "predict": "Model.predict(pairs, beam_size=10, top_k=10): the Python binding predicts one row "
                   "per call, so the batch is a Python loop over rows (one thread)",
        "single_query": "Model.predict(pairs, beam_size=10, top_k=10), prediction pool of single_threads",
    }

    def __init__(self, threads, model_dir):
        super().__init__(threads, model_dir)
        import omikuji
        from omikuji import _libomikuji
        self.omikuji, self.lib, self.ffi = omikuji, _libomikuji.lib, _libomikuji.ffi

    def prepare_fit(self, X, Y):
        path = self.model_dir.parent / "train.txt"
        with open(path, "w") as f:
            f.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
            for i in range(X.shape[0]):
                labels = ",".join(map(str, Y.indices[Y.indptr[i]:Y.indptr[i + 1]]))
                lo, hi = X.indptr[i], X.indptr[i + 1]
                feats = " ".join(f"{j}:{v:.8g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi]))
                f.write(f"{labels} {feats}\n")
        t0 = time.perf_counter()
        self.pool = self.omikuji._ThreadPoolHandle(self.threads)
        data = self.lib.load_omikuji_data_set(self.ffi.new("char[]", str(path).encode()), self.pool.ptr)
        if data == self.ffi.NULL:
            raise RuntimeError(f"omikuji could not load {path}")
        self.data = self.ffi.gc(data, self.lib.free_omikuji_data_set)
        return {"omikuji_data_load_s": time.perf_counter() - t0}

    def fit(self):
        ptr = self.lib.train_omikuji_model(self.data, self.omikuji.Model.default_hyper_param(), self.pool.ptr)
        if ptr == self.ffi.NULL:
            raise RuntimeError("omikuji training failed")
        self.model = self.omikuji.Model(ptr)
        del self.data

    def save(self):
        self.model.save(str(self.model_dir))

    def load(self):
        self.model = self.omikuji.Model.load(str(self.model_dir))
        self.model.init_prediction_thread_pool(self.threads)

    def queries(self, X, n):
        return [list(zip(X.indices[X.indptr[i]:X.indptr[i + 1]].tolist(),
                         X.data[X.indptr[i]:X.indptr[i + 1]].tolist())) for i in range(n)]

    def prepare_batch(self, X):
        return self.queries(X, X.shape[0])

    def predict_batch(self, X):
        return [self.model.predict(q, beam_size=BEAM, top_k=TOPK) for q in X]

    def to_labels(self, raw):
        return ranked_pairs_to_array(raw, TOPK)

    def set_single_threads(self, n):
        self.model.init_prediction_thread_pool(n)

    def predict_one(self, query):
        self.model.predict(query, beam_size=BEAM, top_k=TOPK)


class NapkinxcRunner(Runner):
    package = "napkinxc"
    settings = {
        "model": "napkinxc.models.PLT(output=dir, threads=threads, seed=0) with the documented defaults: "
                 "tree_type hierarchicalKmeans, arity 2, max_leaves 100, kmeans_balanced, loss log "
                 "(L2R_LR_DUAL), liblinear_c 10, liblinear_eps 0.1, weights_threshold 0.1, "
                 "tree_search_type exact, ensemble 1 (seed fixed for repeatability; default is time-based)",
        "train": "PLT.fit(X_csr, Y_csr) (writes the model into dir)",
        "load": "PLT(output=dir, threads=threads).load()",
        "predict": "predict_proba(X_csr, top_k=10)",
        "single_query": "set_params(threads=single_threads); predict_proba(X[i], top_k=10)",
    }

    def __init__(self, threads, model_dir):
        super().__init__(threads, model_dir)
        from napkinxc.models import PLT
        self.PLT = PLT

    def fit(self):
        self.model = self.PLT(str(self.model_dir), threads=self.threads, seed=0)
        self.model.fit(self.X, self.Y)

    def save(self):
        """napkinxc writes the model into its output folder while fitting."""

    def load(self):
        self.model = self.PLT(str(self.model_dir), threads=self.threads)
        self.model.load()

    def predict_batch(self, X):
        return self.model.predict_proba(X, top_k=TOPK)

    def to_labels(self, raw):
        return ranked_pairs_to_array(raw, TOPK)

    def set_single_threads(self, n):
        self.model.set_params(threads=n)

    def predict_one(self, query):
        self.model.predict_proba(query, top_k=TOPK)


RUNNERS = {"pecos_rs": PecosRsRunner, "libpecos": LibpecosRunner,
           "omikuji": OmikujiRunner, "napkinxc": NapkinxcRunner}


def run(args, runner: Runner, result: dict) -> None:
    """Fill ``result`` step by step, so a failure still leaves what was measured."""

    t0 = time.perf_counter()
    if args.data_dir:  # a synthetic set (benches/synth_xmr.py): rows are L2-normalised already
        X_trn, Y_trn, X_tst, Y_tst = (sp.load_npz(args.data_dir / f"{m}.{s}.npz").tocsr()
                                      for s in ("trn", "tst") for m in ("X", "Y"))
    else:
        X_trn, Y_trn, X_tst, Y_tst = features.load(args.dataset, args.data_root)
    if args.n_test:
        X_tst, Y_tst = X_tst[:args.n_test], Y_tst[:args.n_test]
    result.update(
        data_load_s=time.perf_counter() - t0, rss_after_data_mb=rss_mb(),
        n_train=X_trn.shape[0], nnz_train=int(X_trn.nnz), n_test=X_tst.shape[0], n_features=X_trn.shape[1],
        n_labels=Y_trn.shape[1],
        n_test_rows_without_labels=int(np.sum(np.diff(Y_tst.indptr) == 0)),
    )

    result["train_extra"] = runner.prepare_fit(X_trn, Y_trn)
    gc.collect()
    t0 = time.perf_counter()
    runner.fit()
    result["train_s"] = time.perf_counter() - t0
    result["peak_rss_after_train_mb"] = peak_rss_mb()

    result.update(save_and_reload(runner))

    batch = runner.prepare_batch(X_tst)
    t0 = time.perf_counter()
    raw = runner.predict_batch(batch)
    result["batch_predict_s"] = time.perf_counter() - t0
    result["batch_ms_per_query"] = 1e3 * result["batch_predict_s"] / X_tst.shape[0]
    del batch
    result["metrics"] = precision_recall_at_k(Y_tst, runner.to_labels(raw))

    n_single = min(args.n_single, X_tst.shape[0])
    queries = runner.queries(X_tst, n_single)
    runner.set_single_threads(args.single_threads)
    for q in queries[:N_WARMUP]:
        runner.predict_one(q)
    times = np.empty(n_single)
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        runner.predict_one(q)
        times[i] = time.perf_counter() - t0
    times *= 1e3
    result["single_query"] = {"n": n_single, "mean_ms": float(times.mean()),
                              "p50_ms": float(np.percentile(times, 50)),
                              "p99_ms": float(np.percentile(times, 99))}
    result["peak_rss_mb"] = peak_rss_mb()


def run_isolated(make_runner, measure, result: dict, out: Path, name: str, headline) -> None:
    """Create a runner with ``make_runner(model_dir)`` (model_dir inside a temporary folder),
    record the version of its ``package`` (Python's when that is None) and its settings in
    `result`, call ``measure(runner)`` (which fills `result`), write `result` as JSON to `out`,
    print a line (`name`, the status, ``headline(result)`` when ok, the message if any) and exit.
    The start time and the 1-minute load average are recorded first. Every outcome is recorded
    in ``result["status"]``: "ok", exit status 0; "missing" (ImportError while creating the
    runner: the library is not installed), 2; "error" (any other exception, while creating the
    runner or measuring, with its traceback), 1."""
    result.update(started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  loadavg_1m_at_start=os.getloadavg()[0], status="ok")
    exit_code = 0
    with tempfile.TemporaryDirectory(prefix=name.replace(" ", "-") + "-") as tmp:
        try:
            try:
                runner = make_runner(Path(tmp) / "model")
                result.update(version=installed_version(runner.package) if runner.package
                              else f"Python {platform.python_version()}", settings=runner.settings)
            except ImportError as e:  # includes PackageNotFoundError
                result.update(status="missing", message=str(e))
                exit_code = 2
            else:
                measure(runner)
        except Exception as e:  # noqa: BLE001 - every failure is reported, never dropped
            result.update(status="error", message=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            exit_code = 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{name}: {result['status']}" + (headline(result) if result["status"] == "ok" else "")
          + (f" ({result['message']})" if "message" in result else ""))
    sys.exit(exit_code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lib", required=True, choices=sorted(RUNNERS))
    parser.add_argument("--dataset",
                        help=f"one of {', '.join(features.DATASETS)}, or a name for --data-dir")
    parser.add_argument("--data-dir", type=Path,
                        help="read X/Y.{trn,tst}.npz from this folder (benches/synth_xmr.py's output)")
    parser.add_argument("--n-test", type=int, default=0, help="use only the first N test rows (0: all)")
    parser.add_argument("--threads", type=int, default=2, help="threads for training and batch prediction")
    parser.add_argument("--single-threads", type=int, default=1, help="threads for single-query prediction")
    parser.add_argument("--n-single", type=int, default=1000, help="test rows timed one at a time")
    parser.add_argument("--data-root", type=Path, default=features.DATA_ROOT)
    parser.add_argument("--out", type=Path, help="where to write the JSON result")
    parser.add_argument("--time-mapped-load", type=Path, metavar="MODEL_DIR",
                        help="only time a memory-mapped load of this saved model and print it as JSON")
    args = parser.parse_args()
    if args.time_mapped_load is not None:
        time_mapped_load(args.lib, args.time_mapped_load)
        return
    if args.dataset is None or args.out is None:
        parser.error("--dataset and --out are required")
    if args.data_dir is None and args.dataset not in features.DATASETS:
        parser.error(f"unknown data set {args.dataset!r} (without --data-dir)")

    result = {"lib": args.lib, "dataset": args.dataset, "threads": args.threads,
              "single_threads": args.single_threads, "beam_size": BEAM, "topk": TOPK}
    run_isolated(lambda model_dir: RUNNERS[args.lib](args.threads, model_dir),
                 lambda runner: run(args, runner, result), result, args.out, f"{args.lib} {args.dataset}",
                 lambda r: f", P@1 {r['metrics']['P@1']:.2f}, train {r['train_s']:.2f} s")


if __name__ == "__main__":
    main()

"""Training an :class:`~pecos_rs.XRLinearClassifier` over a Dask cluster (``dask.distributed``).

The driver (the process calling :func:`fit`) computes the PIFA embeddings of all labels, splits
them into the top levels of the 2-means tree and cuts the tree at one of its layers: each node of
that layer roots a sub-tree. Every sub-tree is one task, which a worker runs from the rows that
reach it (the rows with a label in the sub-tree), read from storage that every machine sees:
it embeds its labels, splits them into the rest of the tree and trains its layers. Meanwhile the
driver trains the top layers over all rows. The pieces are joined into one model, equal (chain,
every weight bit, predictions) to ``estimator.fit(X, Y)`` on one machine: every split and every
solve is seeded by its place in the whole tree and depends only on its rows, and the core
functions reproduce the one-machine order of every floating-point sum.

Tasks are pure (their inputs are paths, label ids and parameters), so Dask re-runs the tasks of a
lost worker elsewhere and the model is the same. Importing :mod:`pecos_rs` does not import Dask;
this module needs the ``distributed`` extra (``pip install "pecos_rs[distributed]"``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import validate_data

from . import _pecos_rs
from ._params import is_int
from ._sparse import csr_args, to_csr32
from ._threads import resolve_n_jobs
from .exceptions import InvalidInputError, InvalidParameterError
from .indexer import pifa
from .xlinear import XRLinearClassifier, _tree_seed, sparse_indicator

try:
    from distributed import as_completed, get_worker
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "pecos_rs.distributed needs dask.distributed: pip install 'pecos_rs[distributed]'"
    ) from e

__all__ = ["fit"]

logger = logging.getLogger("pecos_rs")


def fit(estimator, X, Y, client, *, min_subtrees=16, storage_options=None, progress=None):
    """Fit `estimator` (an unfitted or fitted :class:`~pecos_rs.XRLinearClassifier`) on the
    Dask cluster of `client`, to the model ``estimator.fit(load(X), load(Y))`` would give.

    Parameters
    ----------
    estimator : XRLinearClassifier
        Its parameters are used as they are (``n_jobs``: threads of the driver and of each task).
        ``negative_sampling`` must be ``"tfn"``: matcher-aware negatives (``"tfn+man"``) of a
        node come from the beam of the whole model above it, which a sub-tree's worker does not
        have. With ``n_trees > 1`` every tree is split into sub-trees the same way (tree ``i``
        seeded ``random_state + i``, as in ``fit``).
    X, Y : str or os.PathLike
        Where the features (n_samples, n_features) and the label indicator (n_samples, n_labels)
        are, as written by ``scipy.sparse.save_npz``: a local path, or an fsspec URL
        (``s3://...``, needs ``fsspec`` and its backend on every machine). The driver and every
        worker read them there, so a path must mean the same file on every machine (a shared
        disk). They are not sent through the scheduler.
    client : dask.distributed.Client
    min_subtrees : int, default=16
        The tree is cut at its highest layer with at least this many nodes, which root the
        sub-trees (one task each). More sub-trees: smaller, better balanced tasks, and more of the
        model trained on the workers rather than on the driver.
    storage_options : dict, optional
        Options of the fsspec file system of URL `X` and `Y`, as pandas and Dask take them (for
        an S3-compatible store, say ``{"endpoint_url": "http://minio:9000"}``). They travel to
        the workers with every task: leave credentials to the environment or the store's
        configuration files of each machine rather than putting them here.
    progress : callable, optional
        Called in the driver with a dict (the entry of ``distributed_stats_``, plus ``"done"``
        and ``"total"``) each time a sub-tree's result arrives. With ``estimator.verbose`` set,
        the same is logged as INFO records on the ``"pecos_rs"`` logger.

    Returns
    -------
    estimator : XRLinearClassifier
        Fitted, with the attribute ``distributed_stats_``: one dict per sub-tree (``tree``,
        ``subtree``, ``n_labels``, ``n_rows`` and ``nnz`` of its rows, ``worker`` that ran it,
        ``seconds``), in the order the tasks were given to the scheduler (largest ``nnz``
        first, which is how the load is balanced).

    Raises
    ------
    FileNotFoundError
        If `X` or `Y` does not exist.
    InvalidInputError
        If a file is not a sparse matrix or their shapes disagree.
    InvalidParameterError
        For an invalid estimator parameter, ``"tfn+man"``, an invalid `min_subtrees` or one that
        the tree cannot give, a tree of a single layer (nothing to distribute), or
        ``storage_options`` that is not a dict or comes with a local path.
    """
    if not isinstance(estimator, XRLinearClassifier):
        raise InvalidParameterError(f"estimator must be an XRLinearClassifier, got {type(estimator).__name__}")
    params = estimator._core_params()
    _pecos_rs.check_xlinear_params(params)
    if params["negative_sampling"] != "tfn":
        raise InvalidParameterError(
            f"distributed training supports negative_sampling='tfn' only, got {params['negative_sampling']!r}: "
            "matcher-aware negatives of a node come from the beam of the whole model above it, "
            "which the worker training the node's sub-tree does not have"
        )
    if not is_int(min_subtrees) or isinstance(min_subtrees, bool) or min_subtrees < 1:
        raise InvalidParameterError(f"min_subtrees must be an integer >= 1, got {min_subtrees!r}")
    if progress is not None and not callable(progress):
        raise InvalidParameterError(f"progress must be callable, got {type(progress).__name__}")
    if not hasattr(client, "submit"):
        raise InvalidParameterError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    n_threads = resolve_n_jobs(estimator.n_jobs)
    if storage_options is not None and not isinstance(storage_options, dict):
        raise InvalidParameterError(f"storage_options must be a dict, got {type(storage_options).__name__}")
    sources = _Sources(_source(X, "X", storage_options), _source(Y, "Y", storage_options))

    X_all, Y_all = _read(sources)
    X_all = validate_data(estimator, X_all, accept_sparse="csr", dtype=(np.float32, np.float64), reset=True)
    Y_all = estimator._encode_targets(Y_all, X_all.shape[0])
    n_labels = Y_all.shape[1]
    shape = _TreeShape.of(n_labels, params, min_subtrees)
    Z = pifa(Y_all, X_all, n_jobs=estimator.n_jobs)
    row_nnz = np.diff(X_all.indptr).astype(np.float64)

    log = estimator._logger()
    tasks, stats, tops = [], [], []
    for tree in range(estimator.n_trees):
        seed = _tree_seed(estimator.random_state, tree)
        top_codes = _pecos_rs.balanced_kmeans_leaves(
            csr_args(Z), depth=shape.cut_level, max_iter=params["kmeans_max_iter"],
            spherical=params["spherical"], seed=seed, n_threads=n_threads,
        )
        labels_per_subtree = np.bincount(top_codes, minlength=shape.n_subtrees)
        if not labels_per_subtree.all():
            raise InvalidParameterError(
                f"the cut at {shape.n_subtrees} nodes leaves sub-tree {np.argmin(labels_per_subtree)} "
                f"without labels: use a smaller min_subtrees (got {min_subtrees})"
            )
        members = sp.csr_matrix(
            (np.ones(n_labels, dtype=np.float32), top_codes, np.arange(n_labels + 1)),
            shape=(n_labels, shape.n_subtrees),
        )
        Y_top = sparse_indicator(Y_all @ members)
        tops.append((seed, Y_top))
        rows_per_subtree = np.diff(Y_top.tocsc().indptr)
        nnz_per_subtree = Y_top.T @ row_nnz
        labels_of = np.split(np.argsort(top_codes, kind="stable").astype(np.uint32),
                             np.cumsum(labels_per_subtree)[:-1])
        for root in range(shape.n_subtrees):
            tasks.append(_SubTreeTask(sources, labels_of[root], root, seed, shape, int(Z.nnz), params, n_threads))
            stats.append({"tree": tree, "subtree": root, "n_labels": int(labels_per_subtree[root]),
                          "n_rows": int(rows_per_subtree[root]), "nnz": int(nnz_per_subtree[root])})
    # Largest first (by the nonzeros of their rows), which balances the load over the workers.
    order = sorted(range(len(tasks)), key=lambda i: -stats[i]["nnz"])
    tasks, stats = [tasks[i] for i in order], [stats[i] for i in order]
    run = uuid.uuid4().hex
    futures = [
        client.submit(_fit_subtree, task, key=f"pecos-rs-subtree-{run}-{stat['tree']}-{stat['subtree']}",
                      priority=stat["nnz"], pure=False)
        for task, stat in zip(tasks, stats)
    ]
    del Z
    solver_passes: list[int] = []
    passes_lock = threading.Lock()

    def note_passes(layer, n_layers, n_problems, nnz, max_solver_iter, seconds):
        with passes_lock:
            solver_passes.append(max_solver_iter)

    def train_tops():
        top_chain = shape.top_chain()
        return [
            _pecos_rs.XLinearModel.train(csr_args(X_all), csr_args(Y_top), top_chain,
                                         {**params, "n_trees": 1, "random_state": seed},
                                         n_threads=n_threads, progress=note_passes)
            for seed, Y_top in tops
        ]

    # The top layers train in a thread of the driver (the core releases the GIL) while the
    # results of the sub-trees are collected here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        top_models = pool.submit(train_tops)
        index_of = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                i = index_of[future.key]
                results[i] = future.result()
                # The driver has its copy: the worker's can go (at 1M labels the sub-tree models
                # add up to the whole model's size, which would otherwise stay on the workers).
                future.release()
                stats[i].update(worker=results[i].worker, seconds=results[i].seconds)
                report = {**stats[i], "done": done, "total": len(futures)}
                log(f"distributed: sub-tree {done}/{len(futures)} (tree {report['tree']}, node "
                    f"{report['subtree']}, {report['n_labels']} labels, {report['nnz']} nonzeros) "
                    f"from {report['worker']} in {report['seconds']:.2f} s")
                if progress is not None:
                    progress(report)
        except BaseException:  # a failed task, a failing callback or Ctrl-C: stop the others
            client.cancel(futures)
            raise
        top_models = top_models.result()
    del X_all, Y_all, tops  # the driver needs neither rows nor labels to join the pieces

    client.run(_forget_matrices)  # the workers' copies of X and Y
    n_iter = max(solver_passes + [r.max_solver_iter for r in results], default=0)
    parts_of_tree: list[list] = [[] for _ in top_models]
    for stat, result in zip(stats, results):
        parts_of_tree[stat["tree"]].append(result)
    del results
    models = []
    for top in top_models:
        parts = sorted(parts_of_tree.pop(0), key=lambda r: r.root)
        # Aligned copies of the unpickled node ids (the core borrows aligned arrays only).
        node_ids = [[np.array(ids, dtype=np.uint32) for ids in r.node_ids] for r in parts]
        models.append(_pecos_rs.XLinearModel.join_subtrees(
            top, [r.model for r in parts], [r.root for r in parts], node_ids))
        del parts  # this tree's pieces, before the next tree is joined
    estimator._set_models(models)
    estimator.n_iter_ = n_iter
    estimator.distributed_stats_ = stats
    return estimator


@dataclass(frozen=True)
class _Source:
    """A matrix file: its path or URL and what identifies its content (size and modification
    time), so that a worker's cached copy of an older file is never used; for a URL, the options
    of its file system."""

    url: str
    fingerprint: tuple
    storage_options: dict | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class _Sources:
    x: _Source
    y: _Source


def _is_url(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def _source(location, name, storage_options) -> _Source:
    if not isinstance(location, (str, os.PathLike)):
        raise InvalidParameterError(
            f"{name} must be a path or URL of a scipy.sparse.save_npz file, got {type(location).__name__}"
        )
    url = os.fspath(location)
    if _is_url(url):
        import fsspec  # optional: only URLs need it

        info = fsspec.open(url, **(storage_options or {})).fs.info(url)
        fingerprint = (info.get("size"), str(info.get("mtime", info.get("LastModified", ""))))
        return _Source(url, fingerprint, storage_options)
    if storage_options is not None:
        raise InvalidParameterError(f"storage_options is for URLs; {name} is a local path: {url}")
    path = url.removeprefix("file://")
    stat = os.stat(path)  # FileNotFoundError for a missing file
    return _Source(path, (stat.st_size, stat.st_mtime_ns))


def _read_npz(source: _Source, name: str) -> sp.csr_matrix:
    try:
        if _is_url(source.url):
            import fsspec

            with fsspec.open(source.url, "rb", **(source.storage_options or {})) as f:
                M = sp.load_npz(f)
        else:
            M = sp.load_npz(source.url)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, KeyError) as e:  # not an npz, or not a sparse matrix's
        raise InvalidInputError(f"{name} ({source.url}) is not a scipy.sparse.save_npz file: {e}") from e
    return sp.csr_matrix(M)


def _read(sources: _Sources) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """X as float32 CSR and Y as the 0/1 indicator, as fit trains on them."""
    return to_csr32(_read_npz(sources.x, "X")), sparse_indicator(_read_npz(sources.y, "Y"))


# The matrices a worker process read last (one pair): the tasks of a fit read the same files,
# and the fit ends by forgetting them (_forget_matrices).
_cache: dict[_Sources, tuple] = {}
_cache_lock = threading.Lock()


def _load(sources: _Sources) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    with _cache_lock:
        if sources not in _cache:
            _cache.clear()  # the previous pair first: never two copies in memory
            _cache[sources] = _read(sources)
        return _cache[sources]


def _forget_matrices() -> None:
    with _cache_lock:
        _cache.clear()


@dataclass(frozen=True)
class _TreeShape:
    """The shape of the whole tree and where it is cut into sub-trees: binary levels of the 2-means
    tree, and which of them the chain keeps as its layers (grouping ``log2(n_splits)`` levels per
    layer: the core's ``kmeans_tree_shape``)."""

    depth: int
    cut_level: int
    chain_levels: tuple  # binary level of each node layer of the chain below the root, top first

    @property
    def n_subtrees(self) -> int:
        return 1 << self.cut_level

    @classmethod
    def of(cls, n_labels, params, min_subtrees):
        """The shape for `n_labels` labels under the (checked, plain) estimator `params`."""
        max_leaf_size, n_splits = params["max_leaf_size"], params["n_splits"]
        if max_leaf_size >= n_labels:
            raise InvalidParameterError(
                f"max_leaf_size={max_leaf_size} >= {n_labels} labels gives a single "
                "one-vs-all layer: there are no sub-trees to distribute (use estimator.fit)"
            )
        min_codes = n_splits if params["min_codes"] is None else params["min_codes"]
        depth, sizes = _pecos_rs.kmeans_tree_shape(
            n_labels, max_leaf_size=max_leaf_size, n_splits=n_splits, min_codes=min_codes)
        levels = [size.bit_length() - 1 for size in sizes]  # sizes are powers of 2
        cuts = [level for level in levels if 1 << level >= min_subtrees]
        if not cuts:
            raise InvalidParameterError(
                f"min_subtrees={min_subtrees}: the tree over {n_labels} labels has at most "
                f"{1 << depth} nodes in a layer; use a smaller min_subtrees"
            )
        return cls(depth, min(cuts), tuple(levels))

    def top_chain(self) -> list[np.ndarray]:
        """The chain of the layers above the cut, whose labels are the sub-tree roots."""
        levels = [level for level in self.chain_levels if level <= self.cut_level]
        return _grouping_layers(levels, 0)

    def subtree_chain(self, root: int, leaf_codes: np.ndarray) -> tuple[list, list]:
        """The chain of a sub-tree (root first) and the whole tree's ids of its nodes, given its
        labels' leaf codes within it (the labels in increasing id order)."""
        levels = [self.cut_level] + [level for level in self.chain_levels if level > self.cut_level]
        chain = _grouping_layers(levels, self.cut_level)[1:] if len(levels) > 1 else []
        node_ids = [np.arange(1 << (level - self.cut_level), dtype=np.uint32) + (root << (level - self.cut_level))
                    for level in levels[1:]]
        chain.append(leaf_codes.astype(np.uint32))
        return chain, node_ids


def _grouping_layers(levels, root_level) -> list[np.ndarray]:
    """Parent arrays of nodes at binary `levels` (increasing) under a root at `root_level`: a node's
    ancestor `k` levels up is its index shifted right by `k`."""
    layers, above = [], root_level
    for level in levels:
        layers.append((np.arange(1 << (level - root_level), dtype=np.uint32) >> (level - above)).astype(np.uint32))
        above = level
    return layers


@dataclass(frozen=True)
class _SubTreeTask:
    """Everything a worker needs for one sub-tree (small: no matrix)."""

    sources: _Sources
    labels: np.ndarray  # the sub-tree's labels, increasing
    root: int
    seed: int
    shape: _TreeShape
    tree_nnz: int  # nonzeros of the PIFA embeddings of all labels
    params: dict
    n_threads: int


@dataclass(frozen=True)
class _SubTreeResult:
    model: Any
    root: int
    node_ids: list
    worker: str
    seconds: float
    max_solver_iter: int


def _fit_subtree(task: _SubTreeTask) -> _SubTreeResult:
    """Runs on a worker: embed, cluster and train one sub-tree from the rows that reach it."""
    start = time.perf_counter()
    X, Y = _load(task.sources)
    labels = np.array(task.labels, dtype=np.uint32)  # an aligned copy of what was unpickled
    rows = np.flatnonzero(np.diff(Y[:, labels].tocsr().indptr))
    X_rows, Y_rows = X[rows], Y[rows]
    Z = sp.csr_matrix(
        _pifa_of_labels(X_rows, Y_rows, labels, task.n_threads)
    )
    shape = task.shape
    below = shape.depth - shape.cut_level
    if below == 0:  # the sub-trees are the leaf clusters
        leaf_codes = np.zeros(len(task.labels), dtype=np.uint32)
    else:
        p = task.params
        leaf_codes = _pecos_rs.balanced_kmeans_subtree(
            csr_args(Z), depth=below, max_iter=p["kmeans_max_iter"], spherical=p["spherical"],
            seed=task.seed, root_level=shape.cut_level, root_node=task.root, tree_nnz=task.tree_nnz,
            n_threads=task.n_threads,
        )
    del Z
    chain, node_ids = shape.subtree_chain(task.root, leaf_codes)
    node_ids.append(labels)
    passes = []
    model = _pecos_rs.XLinearModel.train_subtree(
        csr_args(X_rows), csr_args(sparse_indicator(Y_rows[:, labels])), chain,
        {**task.params, "n_trees": 1, "random_state": task.seed},
        first_layer=len(shape.top_chain()), root=task.root, node_ids=node_ids, n_threads=task.n_threads,
        progress=lambda *report: passes.append(report[4]),
    )
    return _SubTreeResult(model, task.root, node_ids, _worker_name(), time.perf_counter() - start,
                          max(passes, default=0))


def _pifa_of_labels(X, Y, labels, n_threads):
    indptr, indices, data, shape = _pecos_rs.pifa_of_labels(csr_args(X), csr_args(Y), labels, n_threads=n_threads)
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def _worker_name() -> str:
    try:
        return get_worker().address
    except ValueError:  # not in a worker (the task was run by hand)
        return f"pid {os.getpid()}"


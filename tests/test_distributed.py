"""pecos_rs.distributed: a fit over a Dask LocalCluster of 2 worker processes is the one-machine fit,
bit for bit (chain, weights, predictions), for single trees and ensembles, with several layers below
the cut, and when a worker dies during the fit; bad input gets clear errors."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from helpers import make_planted
from pecos_rs import HierarchicalKMeans, InvalidInputError, InvalidParameterError, XRLinearClassifier


def optional_module(name):
    """dask[distributed] (and s3fs and moto for the object store) are optional: their tests are
    skipped without them, except where PECOS_RS_REQUIRE_DASK=1 (CI installs them), which makes a
    missing one fail."""
    if os.environ.get("PECOS_RS_REQUIRE_DASK") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name)


distributed = optional_module("distributed")

from pecos_rs import distributed as pd  # noqa: E402

# 300 labels: with max_leaf_size=4 a binary tree of 7 levels, so the cut leaves several layers below.
N_LABELS = 300


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    X, Y = make_planted(n_rows=900, n_features=400, n_labels=N_LABELS, n_groups=12, seed=3)
    folder = tmp_path_factory.mktemp("distributed")
    sp.save_npz(folder / "X.npz", X)
    sp.save_npz(folder / "Y.npz", Y)
    return X, Y, folder / "X.npz", folder / "Y.npz"


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


def assert_same_model(local, dist, X):
    assert dist.cluster_chain_ == local.cluster_chain_
    assert len(dist.models_) == len(local.models_)
    for a, b in zip(local.models_, dist.models_):
        for t in range(a.depth):
            for x, y in zip(a.layer_weights(t)[:3], b.layer_weights(t)[:3]):
                np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(a.layer_parents(t), b.layer_parents(t))
        assert a.to_bytes() == b.to_bytes()
    for u, v in zip(local.predict_topk(X), dist.predict_topk(X)):
        np.testing.assert_array_equal(u, v)
    assert dist.n_iter_ == local.n_iter_
    np.testing.assert_array_equal(dist.classes_, local.classes_)


@pytest.mark.parametrize("params, min_subtrees, n_layers_below", [
    ({"n_splits": 4, "max_leaf_size": 10}, 8, 2),
    ({"n_splits": 4, "max_leaf_size": 10}, 16, 1),  # the sub-trees are the leaf clusters
    ({"n_splits": 2, "max_leaf_size": 4, "min_codes": 2}, 4, 6),
    ({"n_splits": 8, "max_leaf_size": 2, "loss": "logistic", "threshold": 0.05}, 2, 3),
    # Coarse layers above and below the cut (the sub-trees place theirs in the whole tree).
    ({"n_splits": 2, "max_leaf_size": 4, "min_codes": 2, "coarse_layers": 3, "coarse_n_features": 150,
      "coarse_max_iter": 2}, 4, 6),
])
def test_equals_the_one_machine_fit(data_files, client, params, min_subtrees, n_layers_below):
    X, Y, x_path, y_path = data_files
    local = XRLinearClassifier(**params).fit(X, Y)
    reports = []
    dist = pd.fit(XRLinearClassifier(**params), x_path, y_path, client, min_subtrees=min_subtrees,
                  progress=reports.append)
    assert_same_model(local, dist, X)
    stats = dist.distributed_stats_
    n_subtrees = len(stats)
    assert n_subtrees >= min_subtrees
    # The cut: the layer of the chain with n_subtrees nodes, n_layers_below layers above the labels.
    assert local.cluster_chain_.layer_sizes[-n_layers_below - 1] == n_subtrees
    assert sorted(s["subtree"] for s in stats) == list(range(n_subtrees))
    assert sum(s["n_labels"] for s in stats) == N_LABELS
    nnz = [s["nnz"] for s in stats]
    assert nnz == sorted(nnz, reverse=True)  # given to the scheduler largest first
    row_nnz = np.diff(X.indptr)
    # Each sub-tree's nnz is that of the rows holding one of its labels.
    subtree_of_label = _subtree_of_labels(local.cluster_chain_, n_layers_below)
    for s in stats:
        rows = np.flatnonzero((Y[:, subtree_of_label == s["subtree"]]).getnnz(axis=1))
        assert (s["n_rows"], s["nnz"]) == (len(rows), row_nnz[rows].sum())
    workers = set(client.scheduler_info()["workers"])
    assert {s["worker"] for s in stats} <= workers
    assert [r["done"] for r in reports] == list(range(1, n_subtrees + 1))
    assert all(r["total"] == n_subtrees for r in reports)


def _subtree_of_labels(chain, n_layers_below):
    """The node of the cut layer above each label."""
    node = np.arange(chain.n_labels)
    for layer in chain.assignments[::-1][:n_layers_below]:
        node = layer[node]
    return node


def test_an_ensemble_equals_the_one_machine_ensemble(data_files, client):
    X, Y, x_path, y_path = data_files
    params = {"n_splits": 4, "max_leaf_size": 6, "n_trees": 2, "random_state": 7}
    local = XRLinearClassifier(**params).fit(X, Y)
    dist = pd.fit(XRLinearClassifier(**params), str(x_path), str(y_path), client, min_subtrees=8)
    assert_same_model(local, dist, X)
    assert local.models_[0].to_bytes() != local.models_[1].to_bytes()
    assert {s["tree"] for s in dist.distributed_stats_} == {0, 1}


def _kill_the_first_task(marker):
    """Runs in each worker: the first sub-tree task that starts, on any worker, kills its process."""
    import pecos_rs.distributed as module

    original = module._fit_subtree

    def killing(task):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return original(task)
        os._exit(1)

    module._fit_subtree = killing


def test_a_worker_killed_during_the_fit_gives_the_same_model(data_files, client, tmp_path):
    X, Y, x_path, y_path = data_files
    params = {"n_splits": 2, "max_leaf_size": 4, "min_codes": 2}
    local = XRLinearClassifier(**params).fit(X, Y)
    marker = tmp_path / "killed"
    client.run(_kill_the_first_task, str(marker))
    dist = pd.fit(XRLinearClassifier(**params), x_path, y_path, client, min_subtrees=8)
    assert marker.exists()  # a task did kill its worker; Dask ran it again elsewhere
    assert_same_model(local, dist, X)
    client.wait_for_workers(2)


def test_rows_read_from_an_s3_object_store(data_files, client):
    """X and Y as s3:// URLs of an S3-compatible store (moto's server, on localhost), given to the
    workers as URLs plus storage_options: the same model as the one-machine fit."""
    s3fs = optional_module("s3fs")
    ThreadedMotoServer = optional_module("moto.server").ThreadedMotoServer
    X, Y, x_path, y_path = data_files
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"endpoint_url": f"http://{host}:{port}", "key": "test", "secret": "test"}
        store = s3fs.S3FileSystem(**options)
        store.mkdir("pecos-rs-test")
        store.put(str(x_path), "pecos-rs-test/X.npz")
        store.put(str(y_path), "pecos-rs-test/Y.npz")
        params = {"n_splits": 4, "max_leaf_size": 10}
        local = XRLinearClassifier(**params).fit(X, Y)
        dist = pd.fit(XRLinearClassifier(**params), "s3://pecos-rs-test/X.npz", "s3://pecos-rs-test/Y.npz",
                      client, min_subtrees=8, storage_options=options)
        assert_same_model(local, dist, X)
        with pytest.raises(FileNotFoundError):
            pd.fit(XRLinearClassifier(**params), "s3://pecos-rs-test/missing.npz", "s3://pecos-rs-test/Y.npz",
                   client, storage_options=options)
    finally:
        server.stop()


def test_a_joined_sub_tree_gives_its_weights_away(data_files):
    """join_subtrees moves the sub-trees' weights into the model (so that the join needs little
    more memory than its parts): a sub-tree model is spent afterwards, and says so."""
    import pickle

    from pecos_rs import _pecos_rs
    from pecos_rs._sparse import csr_args
    from pecos_rs.xlinear import sparse_indicator

    X, Y, _, _ = data_files
    params = XRLinearClassifier()._core_params()
    half = N_LABELS // 2
    subtree_of = (np.arange(N_LABELS) >= half).astype(np.uint32)
    Y_top = sparse_indicator(Y @ sp.csr_matrix((np.ones(N_LABELS), (np.arange(N_LABELS), subtree_of))))
    top = _pecos_rs.XLinearModel.train(csr_args(X), csr_args(Y_top), [np.zeros(2, dtype=np.uint32)],
                                       params, n_threads=1)
    parts, node_ids = [], []
    for root in (0, 1):
        labels = np.flatnonzero(subtree_of == root).astype(np.uint32)
        rows = np.flatnonzero(np.diff(Y[:, labels].tocsr().indptr))
        leaves = (np.arange(len(labels)) % 4).astype(np.uint32)
        ids = [np.arange(4, dtype=np.uint32) + 4 * root, labels]
        part = _pecos_rs.XLinearModel.train_subtree(
            csr_args(X[rows]), csr_args(sparse_indicator(Y[rows][:, labels])),
            [np.zeros(4, dtype=np.uint32), leaves], params, first_layer=1, root=root, node_ids=ids,
            n_threads=1)
        copy = pickle.loads(pickle.dumps(part))
        assert copy.to_bytes() == part.to_bytes() and copy.nnz == part.nnz > 0
        parts.append(copy)
        node_ids.append(ids)
    nnz = sum(p.nnz for p in parts)
    joined = _pecos_rs.XLinearModel.join_subtrees(top, parts, [0, 1], node_ids)
    assert joined.n_labels == N_LABELS and joined.nnz == top.nnz + nnz
    for part in parts:
        with pytest.raises(InvalidInputError, match="joined already"):
            part.nnz
        with pytest.raises(InvalidInputError, match="joined already"):
            pickle.dumps(part)
    with pytest.raises(InvalidInputError, match="joined already"):
        _pecos_rs.XLinearModel.join_subtrees(top, parts, [0, 1], node_ids)


def test_importing_pecos_rs_does_not_import_dask():
    code = "import sys, pecos_rs, pecos_rs.xlinear; print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("n_labels, max_leaf_size, n_splits, min_codes", [
    (300, 4, 2, 2), (300, 10, 4, None), (300, 2, 8, None), (1000, 3, 16, 4), (97, 5, 32, 1),
    (4096, 1, 4, 3), (65, 64, 2, None), (5000, 7, 8, 100),
])
def test_the_tree_shape_is_the_indexers(n_labels, max_leaf_size, n_splits, min_codes):
    rng = np.random.default_rng(n_labels)
    Z = sp.random(n_labels, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    chain = HierarchicalKMeans(n_splits=n_splits, max_leaf_size=max_leaf_size, min_codes=min_codes).fit(Z)
    est = XRLinearClassifier(n_splits=np.int64(n_splits), max_leaf_size=np.int32(max_leaf_size), min_codes=min_codes)
    shape = pd._TreeShape.of(n_labels, est._core_params(), 1)
    assert [1 << level for level in shape.chain_levels] + [n_labels] == chain.layer_sizes


# ------------------------------------------------------------------------------------ bad input


def test_bad_input_is_refused_clearly(data_files, client, tmp_path):
    X, Y, x_path, y_path = data_files
    est = XRLinearClassifier(max_leaf_size=10)
    with pytest.raises(FileNotFoundError):
        pd.fit(est, tmp_path / "missing.npz", y_path, client)
    with pytest.raises(FileNotFoundError):
        pd.fit(est, x_path, tmp_path / "missing.npz", client)
    short = tmp_path / "Y_short.npz"
    sp.save_npz(short, Y[:-1])
    with pytest.raises(InvalidInputError, match="rows"):
        pd.fit(est, x_path, short, client)
    not_npz = tmp_path / "junk.npz"
    not_npz.write_bytes(b"not a zip file")
    with pytest.raises(InvalidInputError, match="save_npz"):
        pd.fit(est, not_npz, y_path, client)
    with pytest.raises(InvalidParameterError, match="path or URL"):
        pd.fit(est, X, y_path, client)
    with pytest.raises(InvalidParameterError, match="tfn\\+man|matcher-aware"):
        pd.fit(XRLinearClassifier(negative_sampling="tfn+man"), x_path, y_path, client)
    for bad in (0, -1, 2.5, "16", True, None):
        with pytest.raises(InvalidParameterError, match="min_subtrees"):
            pd.fit(est, x_path, y_path, client, min_subtrees=bad)
    with pytest.raises(InvalidParameterError, match="min_subtrees"):
        pd.fit(est, x_path, y_path, client, min_subtrees=10**6)
    with pytest.raises(InvalidParameterError, match="one-vs-all"):
        pd.fit(XRLinearClassifier(max_leaf_size=N_LABELS), x_path, y_path, client)
    with pytest.raises(InvalidParameterError, match="n_splits"):
        pd.fit(XRLinearClassifier(n_splits=3), x_path, y_path, client)
    with pytest.raises(InvalidParameterError, match="XRLinearClassifier"):
        pd.fit(HierarchicalKMeans(), x_path, y_path, client)
    with pytest.raises(InvalidParameterError, match="storage_options is for URLs"):
        pd.fit(est, x_path, y_path, client, storage_options={"anon": True})
    with pytest.raises(InvalidParameterError, match="storage_options must be a dict"):
        pd.fit(est, "s3://bucket/X.npz", y_path, client, storage_options="anon")
    with pytest.raises(InvalidParameterError, match="progress"):
        pd.fit(est, x_path, y_path, client, progress="print")
    with pytest.raises(InvalidParameterError, match="Client"):
        pd.fit(est, x_path, y_path, object())

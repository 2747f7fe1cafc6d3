"""PECOS interop: XRLinearClassifier.load_pecos reads a model saved by libpecos's XLinearModel.save and
predicts what libpecos predicts; save_pecos writes a model libpecos loads and predicts the same with.

The tests of the first part run everywhere, against a tiny model saved by libpecos 1.2.8 and its
predictions (tests/data, written by tests/data/make_pecos_fixture.py). Those of the second part
("live") train and predict with libpecos itself; libpecos needs numpy < 2, so they are skipped when
it cannot be imported, except where PECOS_RS_REQUIRE_LIBPECOS=1 (CI's numpy 1.26 run of
scripts/wheel_test.sh, which installs libpecos): there they fail instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import struct
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from helpers import l2_normalize_rows, make_planted
from pecos_rs import InvalidParameterError, ModelFormatError, XRLinearClassifier

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "pecos_xlinear"
EXPECTED = DATA / "pecos_xlinear_expected.npz"
# Scores agree to float32 rounding: relative for the usual scores, absolute for those near 0
# (e.g. raw "noop" scores, sums whose terms cancel).
RTOL, ATOL = 1e-5, 1e-6


def pecos_topk(P: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """libpecos's prediction rows (best first, in libpecos's order) as predict_topk's arrays."""
    labels = np.full((P.shape[0], k), -1, dtype=np.int64)
    scores = np.zeros((P.shape[0], k), dtype=np.float32)
    for i in range(P.shape[0]):
        row = slice(P.indptr[i], P.indptr[i + 1])
        row_scores = P.data[row]
        assert (np.diff(row_scores) <= 0).all(), "libpecos rows come sorted by decreasing score"
        n = min(k, len(row_scores))
        labels[i, :n], scores[i, :n] = P.indices[row][:n], row_scores[:n]
    return labels, scores


def assert_predicts_like_pecos(clf, X, P, **predict_kwargs):
    """clf.predict_topk(X, k, ...) returns libpecos's prediction P: the same labels in the same
    order, scores to float32 rounding; k is the widest row of P (its only_topk or fewer)."""
    k = int(np.diff(P.indptr).max())
    labels, scores = clf.predict_topk(X, k, **predict_kwargs)
    expected_labels, expected_scores = pecos_topk(P, k)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(scores, expected_scores, rtol=RTOL, atol=ATOL)


def fixture_expected():
    """The fixture's queries and libpecos's predictions for them, by name (make_pecos_fixture.py)."""
    z = np.load(EXPECTED, allow_pickle=False)
    X = sp.csr_matrix((z["x_data"], z["x_indices"], z["x_indptr"]), shape=tuple(z["x_shape"]))
    n_labels = 10

    def prediction(name):
        return sp.csr_matrix((z[f"{name}_data"], z[f"{name}_indices"], z[f"{name}_indptr"]),
                             shape=(X.shape[0], n_labels))
    return X, prediction("default"), prediction("narrow")


def copy_fixture(tmp_path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(FIXTURE, target)
    return target


def edit_json(file: Path, edit) -> None:
    param = json.loads(file.read_text())
    edit(param)
    file.write_text(json.dumps(param))


def layer(model_dir: Path, t: int) -> Path:
    return model_dir / "ranker" / f"{t}.model"


def assert_same_model(a, b):
    assert a.model_.depth == b.model_.depth and a.model_.bias == b.model_.bias
    for t in range(a.model_.depth):
        for x, y in zip(a.model_.layer_weights(t), b.model_.layer_weights(t)):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(a.model_.layer_parents(t), b.model_.layer_parents(t))


# ----------------------------------------------------------------- the libpecos fixture (no libpecos)


def test_load_pecos_predicts_what_libpecos_predicted():
    clf = XRLinearClassifier.load_pecos(FIXTURE)
    X, default, narrow = fixture_expected()
    # libpecos's defaults: only_topk 20 at every layer (beam and top-k), l3-hinge, bias 1.
    params = clf.get_params()
    assert (params["beam_size"], params["topk"], params["post_processor"], params["bias"]) == (20, 20, "l3-hinge", 1.0)
    assert clf.n_features_in_ == 12 and list(clf.classes_) == list(range(10))
    assert clf.cluster_chain_.layer_sizes == [2, 4, 10]
    assert_predicts_like_pecos(clf, X, default)
    np.testing.assert_allclose(clf.predict_scores(X).toarray(), default.toarray(), rtol=RTOL, atol=ATOL)
    assert_predicts_like_pecos(clf, X, narrow, beam_size=2, post_processor="sigmoid")


def test_a_loaded_model_pickles_saves_and_predicts(tmp_path):
    clf = XRLinearClassifier.load_pecos(FIXTURE)
    X, default, _ = fixture_expected()
    expected = clf.predict_topk(X)
    for copy in (pickle.loads(pickle.dumps(clf)), XRLinearClassifier.load(_saved(clf, tmp_path / "saved"))):
        assert copy.get_params() == clf.get_params()
        for got, want in zip(copy.predict_topk(X), expected):
            np.testing.assert_array_equal(got, want)
    # An indicator of the labels scoring >= 0.5, sparse like PECOS's label matrices.
    Y = clf.predict(X)
    assert sp.issparse(Y) and Y.shape == (X.shape[0], 10)
    np.testing.assert_array_equal(Y.toarray(), (default.toarray() >= 0.5).astype(np.int64))


def _saved(clf, path):
    clf.save(path)
    return path


def test_only_topk_zero_means_no_limit(tmp_path):
    """PECOS's only_topk 0 keeps every node: the beam becomes the largest layer above the last
    and the top-k the number of labels, which here predicts what beam 20 / top-k 20 did."""
    model = copy_fixture(tmp_path)
    _every_layer(lambda p: p["pred_kwargs"].update(only_topk=0))(model)
    clf = XRLinearClassifier.load_pecos(model)
    assert (clf.beam_size, clf.topk) == (4, 10)
    X, default, _ = fixture_expected()
    assert_predicts_like_pecos(clf, X, default)


@pytest.mark.parametrize("only_topks, beam", [((20, 3), 3), ((2, 3), 3), ((1, 1), 1), ((0, 4), 4)])
def test_per_layer_beams_that_one_beam_reproduces(tmp_path, only_topks, beam):
    """Layers 0 and 1 hold 2 and 4 nodes: a beam of 3 keeps all of layer 0 and 3 of layer 1,
    as only_topk (20, 3) or (2, 3) do."""
    model = copy_fixture(tmp_path)
    for t, k in enumerate(only_topks):
        edit_json(layer(model, t) / "param.json", lambda p, k=k: p["pred_kwargs"].update(only_topk=k))
    assert XRLinearClassifier.load_pecos(model).beam_size == beam


def fit_small(**params):
    X, Y = make_planted(n_rows=120, n_features=30, n_labels=24, seed=3)
    return XRLinearClassifier(**{"n_splits": 2, "max_leaf_size": 4, **params}).fit(X, Y), X


@pytest.mark.parametrize("params", [
    {},
    {"beam_size": 3, "topk": 5, "post_processor": "sigmoid"},
    {"bias": 0.0},  # PECOS's layout has no bias row then
    {"bias": 2.5, "post_processor": "log-l2-hinge"},
    {"max_leaf_size": 100},  # one layer
], ids=["defaults", "beam3-top5-sigmoid", "bias0", "bias2.5", "one-layer"])
def test_save_pecos_then_load_pecos_is_the_same_model(tmp_path, params):
    clf, X = fit_small(**params)
    clf.save_pecos(tmp_path / "pecos")
    loaded = XRLinearClassifier.load_pecos(tmp_path / "pecos")
    assert_same_model(clf, loaded)
    for key in ("topk", "post_processor", "bias") + (("beam_size",) if clf.model_.depth > 1 else ()):
        assert loaded.get_params()[key] == clf.get_params()[key], key
    for got, want in zip(loaded.predict_topk(X), clf.predict_topk(X)):
        np.testing.assert_array_equal(got, want)


def test_save_pecos_writes_the_files_libpecos_writes(tmp_path):
    """The same files, JSON keys and array dtypes as the fixture libpecos wrote."""
    X, Y = make_planted(n_rows=60, n_features=20, n_labels=10, seed=1)
    clf = XRLinearClassifier(n_splits=2, max_leaf_size=3).fit(X, Y)  # layers of 2, 4, 10 nodes as there
    clf.save_pecos(tmp_path / "pecos")
    ours = sorted(str(f.relative_to(tmp_path / "pecos")) for f in (tmp_path / "pecos").rglob("*") if f.is_file())
    theirs = sorted(str(f.relative_to(FIXTURE)) for f in FIXTURE.rglob("*") if f.is_file())
    assert ours == theirs
    for name in theirs:
        if name.endswith(".json"):
            a, b = json.loads((tmp_path / "pecos" / name).read_text()), json.loads((FIXTURE / name).read_text())
            assert a.keys() == b.keys() and a["__meta__"] == b["__meta__"], name
            if "pred_kwargs" in a:
                assert a["pred_kwargs"].keys() == b["pred_kwargs"].keys()
        else:
            with np.load(tmp_path / "pecos" / name) as a, np.load(FIXTURE / name) as b:
                assert sorted(a.files) == sorted(b.files)
                assert {k: a[k].dtype for k in a.files} == {k: b[k].dtype for k in b.files}, name
                assert a["format"] == b"csc"


def test_save_pecos_refuses_an_ensemble_and_bad_search_parameters(tmp_path):
    X, Y = make_planted(n_rows=60, n_features=20, n_labels=10, seed=1)
    with pytest.raises(InvalidParameterError, match="n_trees=2"):
        XRLinearClassifier(n_splits=2, max_leaf_size=3, n_trees=2).fit(X, Y).save_pecos(tmp_path / "a")
    clf = XRLinearClassifier(n_splits=2, max_leaf_size=3).fit(X, Y).set_params(beam_size=0)
    with pytest.raises(InvalidParameterError, match="beam_size"):
        clf.save_pecos(tmp_path / "b")


# ------------------------------------------------------------------------------------- bad input


def _save_matrix(file: Path, M):
    sp.save_npz(file, M, compressed=False)


def _load_matrix(file: Path):
    return sp.load_npz(file)


def _with_w(t, edit):
    def mutate(model):
        file = layer(model, t) / "W.npz"
        _save_matrix(file, edit(_load_matrix(file)))
    return mutate


def _nan(W):
    W = W.copy()
    W.data[0] = np.nan
    return W


def _out_of_bounds(W):
    W = W.copy()
    W.indices[0] = W.shape[0] + 5
    return W


def _two_parents(model):
    file = layer(model, 1) / "C.npz"
    C = _load_matrix(file).tolil()
    C[0, 0] = C[0, 1] = 1
    _save_matrix(file, C.tocsc())


def _huge_header(model):
    """W's data array declares 2**40 values but holds a few: refused before numpy allocates it."""
    file = layer(model, 0) / "W.npz"
    with zipfile.ZipFile(file) as z:
        members = {name: z.read(name) for name in z.namelist()}
    data = members["data.npy"]
    header_len = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + header_len].decode("latin1")
    start, end = header.index("'shape': (") + len("'shape': ("), header.index(")")
    new_header = (header[:start] + str(2**40) + "," + header[end:]).rstrip().ljust(header_len - 1) + "\n"
    members["data.npy"] = data[:10] + new_header.encode("latin1") + data[10 + header_len:]
    with zipfile.ZipFile(file, "w") as z:
        for name, payload in members.items():
            z.writestr(name, payload)


def _truncate(file_of):
    def mutate(model):
        file = file_of(model)
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    return mutate


def _param(t, edit):
    def mutate(model):
        edit_json((layer(model, t) if t is not None else model / "ranker") / "param.json", edit)
    return mutate


def _every_layer(edit):
    def mutate(model):
        for t in range(3):
            _param(t, edit)(model)
    return mutate


BAD = {
    "truncated W": (_truncate(lambda m: layer(m, 2) / "W.npz"), ModelFormatError, "corrupt W.npz"),
    "garbage C": (lambda m: (layer(m, 1) / "C.npz").write_bytes(b"not a zip file"), ModelFormatError, "corrupt C.npz"),
    "not an array": (lambda m: np.savez(layer(m, 0) / "W.npz", x=np.zeros(3)), ModelFormatError, "not a scipy sparse"),
    "W one column short": (_with_w(2, lambda W: W[:, :-1]), ModelFormatError, r"shape \(13, 9\), expected \(13, 10\)"),
    "W without its bias row": (_with_w(1, lambda W: W[:-1]), ModelFormatError, r"expected \(13, 4\)"),
    "W float64": (_with_w(0, lambda W: W.astype(np.float64)), ModelFormatError, "float64 values, not float32"),
    "W holds NaN": (_with_w(2, _nan), ModelFormatError, "NaN"),
    "W index out of bounds": (_with_w(2, _out_of_bounds), ModelFormatError, "corrupt W.npz"),
    "W as COO": (_with_w(0, lambda W: W.tocoo()), ModelFormatError, "'coo' matrix"),
    "huge declared array": (_huge_header, ModelFormatError, "declares"),
    "C of another layer": (lambda m: shutil.copy(layer(m, 2) / "C.npz", layer(m, 1) / "C.npz"), ModelFormatError,
                           "columns"),
    "a node with two parents": (_two_parents, ModelFormatError, "exactly one parent"),
    "C declaring 2**31 - 1 nodes": (lambda m: _save_matrix(layer(m, 1) / "C.npz", sp.csc_matrix(
        (np.ones(4, np.float32), np.arange(4), [0, 2, 4]), shape=(2**31 - 1, 2))), ModelFormatError,
        "exactly one parent"),
    "missing W": (lambda m: (layer(m, 1) / "W.npz").unlink(), FileNotFoundError, "W.npz"),
    "missing layer": (_param(None, lambda p: p.update(depth=4)), FileNotFoundError, "3.model"),
    "param.json not JSON": (lambda m: (layer(m, 0) / "param.json").write_text("{"), ModelFormatError, "corrupt param"),
    "not an XLinearModel": (lambda m: (m / "param.json").write_text('{"__meta__": {"class_fullname": "x###Y"}}'),
                            ModelFormatError, "does not hold a PECOS XLinearModel"),
    "memory-mapped": (_param(None, lambda p: p.update(is_mmap=True)), ModelFormatError, "memory-mapped"),
    "nr_labels disagree": (_param(2, lambda p: p.update(nr_labels=11)), ModelFormatError, "nr_labels is 11"),
    "unknown post-processor": (_every_layer(lambda p: p["pred_kwargs"].update(post_processor="l9-hinge")),
                               ModelFormatError, "post-processors"),
    "post-processor per layer": (_param(0, lambda p: p["pred_kwargs"].update(post_processor="sigmoid")),
                                 ModelFormatError, "post-processors"),
    "bias per layer": (_param(1, lambda p: p.update(bias=2.0)), ModelFormatError, "different biases"),
    "bias not a number": (_param(1, lambda p: p.update(bias="1")), ModelFormatError, "bias must be"),
    "beam per layer": (_param(0, lambda p: p["pred_kwargs"].update(only_topk=1)), ModelFormatError, "one beam size"),
    "negative only_topk": (_param(2, lambda p: p["pred_kwargs"].update(only_topk=-1)), ModelFormatError, "only_topk"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_directories_raise_clear_errors(tmp_path, case):
    mutate, error, message = BAD[case]
    model = copy_fixture(tmp_path)
    mutate(model)
    start = time.perf_counter()
    with pytest.raises(error, match=message):
        XRLinearClassifier.load_pecos(model)
    assert time.perf_counter() - start < 5


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        XRLinearClassifier.load_pecos(tmp_path / "nothing")


def test_a_pecos_rs_directory_is_not_a_pecos_one(tmp_path):
    clf, _ = fit_small()
    clf.save(tmp_path / "ours")
    with pytest.raises(FileNotFoundError, match="param.json"):
        XRLinearClassifier.load_pecos(tmp_path / "ours")


# --------------------------------------------------------------------------------- live libpecos


@pytest.fixture(scope="module")
def libpecos():
    """libpecos's XLinearModel, Indexer and LabelEmbeddingFactory, or a skip (a failure where
    PECOS_RS_REQUIRE_LIBPECOS=1)."""
    try:
        from pecos.xmc import Indexer, LabelEmbeddingFactory
        from pecos.xmc.xlinear.model import XLinearModel
    except ImportError as e:
        if os.environ.get("PECOS_RS_REQUIRE_LIBPECOS") == "1":
            pytest.fail(f"PECOS_RS_REQUIRE_LIBPECOS=1 but libpecos cannot be imported: {e}")
        pytest.skip(f"libpecos is not importable ({e}); it needs numpy < 2: pip install --no-deps libpecos")
    return XLinearModel, Indexer, LabelEmbeddingFactory


@contextlib.contextmanager
def libpecos_warnings_ignored():
    """libpecos's own warnings (pyproject turns warnings into errors): it leaves files open
    (ResourceWarning) and uses deprecated APIs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def live_data():
    X, Y = make_planted(n_rows=400, n_features=60, n_labels=40, seed=5)
    return l2_normalize_rows(X), sp.csr_matrix(Y, dtype=np.float32)


LIVE_PECOS_SETTINGS = {
    "defaults": ({}, {}),
    "beam3-top5-log-l2-hinge": ({}, {"beam_size": 3, "only_topk": 5, "post_processor": "log-l2-hinge"}),
    "bias0": ({"bias": 0.0}, {}),
    "bias3-sigmoid": ({"bias": 3.0}, {"post_processor": "sigmoid", "only_topk": 7}),
    "one-layer": (None, {}),
}


@pytest.mark.parametrize("setting", list(LIVE_PECOS_SETTINGS))
def test_a_model_trained_by_libpecos_predicts_the_same_in_pecos_rs(tmp_path, libpecos, setting):
    XLinearModel, Indexer, LabelEmbeddingFactory = libpecos
    train_kwargs, pred_kwargs = LIVE_PECOS_SETTINGS[setting]
    X, Y = live_data()
    with libpecos_warnings_ignored():
        if train_kwargs is None:
            model = XLinearModel.train(X, Y.tocsc())  # 40 labels <= max_leaf_size: no clustering
        else:
            Z = LabelEmbeddingFactory.create(Y, X, method="pifa")
            C = Indexer.gen(Z, indexer_type="hierarchicalkmeans", nr_splits=4, max_leaf_size=4, seed=0)
            model = XLinearModel.train(X, Y.tocsc(), C=C, pred_kwargs=pred_kwargs or None, **train_kwargs)
        model.save(str(tmp_path / "pecos"))
        P = XLinearModel.load(str(tmp_path / "pecos")).predict(X, threads=1)
        P_narrow = model.predict(X, beam_size=2, only_topk=4, post_processor="l2-hinge", threads=1)
    clf = XRLinearClassifier.load_pecos(tmp_path / "pecos")
    assert_predicts_like_pecos(clf, X, P)
    if len(clf.cluster_chain_) > 1:
        assert_predicts_like_pecos(clf, X, P_narrow, beam_size=2, post_processor="l2-hinge")


LIVE_OURS_SETTINGS = {
    "defaults": {},
    "beam3-top5-sigmoid": {"beam_size": 3, "topk": 5, "post_processor": "sigmoid"},
    "bias0-noop": {"bias": 0.0, "post_processor": "noop"},
    "bias2-log-l3-hinge": {"bias": 2.0, "post_processor": "log-l3-hinge", "topk": 15},
    "one-layer": {"max_leaf_size": 100},
}


@pytest.mark.parametrize("setting", list(LIVE_OURS_SETTINGS))
@pytest.mark.parametrize("is_predict_only", [False, True], ids=["python", "predict-only"])
def test_a_model_saved_by_pecos_rs_predicts_the_same_in_libpecos(tmp_path, libpecos, setting, is_predict_only):
    XLinearModel = libpecos[0]
    X, Y = live_data()
    clf = XRLinearClassifier(**{"n_splits": 4, "max_leaf_size": 4, **LIVE_OURS_SETTINGS[setting]}).fit(X, Y)
    clf.save_pecos(tmp_path / "pecos")
    with libpecos_warnings_ignored():
        pecos_model = XLinearModel.load(str(tmp_path / "pecos"), is_predict_only=is_predict_only)
        P = pecos_model.predict(X, threads=1)
    labels, scores = clf.predict_topk(X)
    expected_labels, expected_scores = pecos_topk(P, clf.topk)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(scores, expected_scores, rtol=RTOL, atol=ATOL)

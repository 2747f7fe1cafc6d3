"""Persistence: save/load, pickle, joblib, raw model bytes."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

import reference as ref
from helpers import raw_predict, raw_train
from pecos_rs import ModelFormatError, XRLinearClassifier
from pecos_rs import _pecos_rs
from pecos_rs._sparse import csr_args

TREE = dict(n_splits=2, max_leaf_size=8)


@pytest.fixture(scope="module")
def fitted(planted):
    clf = XRLinearClassifier(beam_size=3, topk=7, post_processor="log-l2-hinge", **TREE).fit(planted.X, planted.Y)
    return clf


def assert_same_predictions(a, b, X, **kw):
    la, sa = a.predict_topk(X, **kw)
    lb, sb = b.predict_topk(X, **kw)
    np.testing.assert_array_equal(la, lb)
    assert sa.tobytes() == sb.tobytes(), "scores differ bitwise"


def assert_same_weights(ma, mb):
    assert ma.depth == mb.depth and ma.n_features == mb.n_features and ma.n_labels == mb.n_labels
    assert ma.bias == mb.bias and ma.nnz == mb.nnz
    for t in range(ma.depth):
        for x, y in zip(ma.layer_weights(t)[:3], mb.layer_weights(t)[:3]):
            assert x.tobytes() == y.tobytes()
        np.testing.assert_array_equal(ma.layer_parents(t), mb.layer_parents(t))


def test_save_load_round_trip(fitted, planted, tmp_path):
    assert fitted.model_.nnz > 0, "the solver learned nothing"
    fitted.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["classes.npy", "estimator.json", "model.bin"]
    loaded = XRLinearClassifier.load(tmp_path / "m")
    assert loaded.get_params() == fitted.get_params()
    assert loaded.n_features_in_ == fitted.n_features_in_
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    assert loaded.cluster_chain_ == fitted.cluster_chain_
    assert_same_weights(loaded.model_, fitted.model_)
    assert_same_predictions(loaded, fitted, planted.X_test)
    assert_same_predictions(loaded, fitted, planted.X_test[:1])
    assert_same_predictions(loaded, fitted, planted.X_test, k=20, beam_size=5, post_processor="sigmoid")
    pa, pb = loaded.predict(planted.X_test), fitted.predict(planted.X_test)
    assert sp.issparse(pa) and (pa != pb).nnz == 0
    np.testing.assert_array_equal(loaded.predict_proba(planted.X_test), fitted.predict_proba(planted.X_test))


def test_load_accepts_str_path(fitted, planted, tmp_path):
    fitted.save(str(tmp_path / "m"))
    assert_same_predictions(XRLinearClassifier.load(str(tmp_path / "m")), fitted, planted.X_test)


def test_save_creates_nested_dirs_and_overwrites(fitted, planted, small_clf, tmp_path):
    path = tmp_path / "a" / "b" / "c"
    small_clf.save(path)
    fitted.save(path)  # overwrite a different model
    loaded = XRLinearClassifier.load(path)
    assert_same_predictions(loaded, fitted, planted.X_test)
    assert not list(path.glob("*.tmp")), "temporary files left behind"


@pytest.fixture(scope="module")
def small_clf():
    rng = np.random.default_rng(0)
    X = sp.random(40, 60, density=0.2, format="csr", random_state=1, dtype=np.float32)
    y = np.array(["x", "y", "z"])[rng.integers(0, 3, 40)]
    return XRLinearClassifier(max_leaf_size=2).fit(X, y)


@pytest.mark.parametrize("kind", ["str", "int", "dense-indicator", "float"])
def test_round_trip_keeps_target_kind(planted, tmp_path, kind):
    n = planted.X.shape[0]
    codes = np.arange(n) % 5
    y = {
        "str": np.array(["ant", "bee", "cat", "dog", "eel"])[codes],
        "int": codes * 3 - 4,
        "dense-indicator": planted.Y.toarray().astype(np.int8),
        "float": codes.astype(np.float64) - 2.0,
    }[kind]
    clf = XRLinearClassifier(max_leaf_size=4, n_splits=2).fit(planted.X, y)
    clf.save(tmp_path / kind)
    loaded = XRLinearClassifier.load(tmp_path / kind)
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.classes_.dtype == clf.classes_.dtype
    a, b = loaded.predict(planted.X_test), clf.predict(planted.X_test)
    assert type(a) is type(b)
    np.testing.assert_array_equal(a, b)


def test_save_object_dtype_string_classes(planted, tmp_path):
    y = np.array(["ant", "bee", "cat"], dtype=object)[np.arange(planted.X.shape[0]) % 3]
    clf = XRLinearClassifier(max_leaf_size=2).fit(planted.X, y)
    clf.save(tmp_path / "obj")
    loaded = XRLinearClassifier.load(tmp_path / "obj")
    np.testing.assert_array_equal(loaded.predict(planted.X_test), clf.predict(planted.X_test))


def test_estimator_json_is_plain_json(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "estimator.json").read_text())
    assert meta["format"] == "pecos_rs.XRLinearClassifier"
    assert meta["format_version"] == 1
    assert meta["params"] == fitted.get_params()
    assert meta["n_features_in"] == fitted.n_features_in_


def test_saving_is_deterministic(fitted, tmp_path):
    fitted.save(tmp_path / "a")
    fitted.save(tmp_path / "b")
    for name in ("model.bin", "estimator.json", "classes.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "model.bin").read_bytes() == fitted.model_.to_bytes()


def test_pickle_estimator(fitted, planted):
    for proto in (2, pickle.HIGHEST_PROTOCOL):
        back = pickle.loads(pickle.dumps(fitted, protocol=proto))
        assert back.get_params() == fitted.get_params()
        assert back.cluster_chain_ == fitted.cluster_chain_
        assert_same_weights(back.model_, fitted.model_)
        assert_same_predictions(back, fitted, planted.X_test)


def test_pickle_unfitted_estimator():
    clf = XRLinearClassifier(beam_size=4)
    back = pickle.loads(pickle.dumps(clf))
    assert back.get_params() == clf.get_params()


def test_deepcopy_estimator(fitted, planted):
    back = copy.deepcopy(fitted)
    assert_same_predictions(back, fitted, planted.X_test)


def test_pickle_raw_model(fitted, planted):
    m = fitted.model_
    back = pickle.loads(pickle.dumps(m))
    assert type(back) is _pecos_rs.XLinearModel
    assert back.to_bytes() == m.to_bytes()
    kw = dict(beam_size=3, topk=5, post_processor="l3-hinge", n_threads=1)
    a, b = raw_predict(m, csr_args(planted.X_test), **kw), raw_predict(back, csr_args(planted.X_test), **kw)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].tobytes() == b[1].tobytes()


def test_joblib_round_trip(fitted, planted, tmp_path):
    joblib = pytest.importorskip("joblib")
    joblib.dump(fitted, tmp_path / "m.joblib")
    back = joblib.load(tmp_path / "m.joblib")
    assert back.cluster_chain_ == fitted.cluster_chain_
    assert_same_predictions(back, fitted, planted.X_test)


def test_raw_bytes_round_trip_is_exact(fitted):
    blob = fitted.model_.to_bytes()
    assert isinstance(blob, bytes)
    again = _pecos_rs.XLinearModel.from_bytes(blob)
    assert again.to_bytes() == blob
    assert_same_weights(again, fitted.model_)
    assert repr(again) == repr(fitted.model_)


def test_raw_save_load(fitted, tmp_path):
    path = tmp_path / "raw.bin"
    fitted.model_.save(str(path))
    assert path.read_bytes() == fitted.model_.to_bytes()
    back = _pecos_rs.XLinearModel.load(str(path))
    assert back.to_bytes() == fitted.model_.to_bytes()
    back2 = _pecos_rs.XLinearModel.load(path)  # PathLike
    assert back2.to_bytes() == fitted.model_.to_bytes()


def test_raw_save_to_missing_directory(fitted, tmp_path):
    with pytest.raises(FileNotFoundError):
        fitted.model_.save(str(tmp_path / "no" / "such" / "dir" / "m.bin"))


def test_metadata_survives_round_trips(planted, tmp_path):
    meta = {"name": "planted", "params": {"k": [1, 2, 3]}, "unicode": "é"}
    m = raw_train(
        csr_args(planted.X), csr_args(planted.Y), [np.zeros(planted.n_labels, np.uint32)],
        max_iter=20, threshold=0.0, beam_size=2, post_processor="noop", metadata=json.dumps(meta),
    )
    assert json.loads(m.metadata) == meta
    assert json.loads(_pecos_rs.XLinearModel.from_bytes(m.to_bytes()).metadata) == meta
    m.save(str(tmp_path / "m.bin"))
    assert json.loads(_pecos_rs.XLinearModel.load(str(tmp_path / "m.bin")).metadata) == meta
    assert json.loads(pickle.loads(pickle.dumps(m)).metadata) == meta


def test_file_format_matches_the_documented_layout(fitted):
    """The Python reader/writer in reference.py (io.rs's documented layout) round-trips the file."""
    blob = fitted.model_.to_bytes()
    parsed = ref.parse_model_bytes(blob)
    assert parsed["version"] == _pecos_rs.FORMAT_VERSION
    assert parsed["header"]["n_features"] == fitted.model_.n_features
    Ws, Ps = ref.model_layers(fitted.model_)
    rebuilt = ref.model_to_bytes(
        fitted.model_.n_features, fitted.model_.bias, list(zip(Ps, Ws)), metadata=parsed["header"]["metadata"]
    )
    assert rebuilt == blob


def test_model_with_chosen_weights_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    W0 = rng.normal(size=(6, 3)).astype(np.float32)
    W1 = rng.normal(size=(6, 7)).astype(np.float32) * (rng.random((6, 7)) < 0.5)
    P1 = np.array([0, 2, 2, 1, 0, 2, 0])
    blob = ref.model_to_bytes(5, 0.5, [(np.zeros(3), W0), (P1, W1)])
    m = _pecos_rs.XLinearModel.from_bytes(blob)
    assert m.to_bytes() == blob
    assert m.bias == 0.5 and m.n_features == 5 and m.n_labels == 7 and m.depth == 2
    assert m.nnz == np.count_nonzero(W0) + np.count_nonzero(W1)
    Ws, Ps = ref.model_layers(m)
    np.testing.assert_array_equal(Ws[0], W0)
    np.testing.assert_array_equal(Ws[1], W1)
    np.testing.assert_array_equal(Ps[1], P1)
    m.save(str(tmp_path / "m.bin"))
    assert (tmp_path / "m.bin").read_bytes() == blob


def test_load_of_wrong_version_through_estimator(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    blob = bytearray((tmp_path / "m" / "model.bin").read_bytes())
    for version, message in ((5, "version 5"), (1, "version 1.*re-train")):
        blob[8] = version
        (tmp_path / "m" / "model.bin").write_bytes(ref.fix_crc(bytes(blob)))
        with pytest.raises(ModelFormatError, match=message):
            XRLinearClassifier.load(tmp_path / "m")

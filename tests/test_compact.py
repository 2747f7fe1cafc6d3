"""Compact weights (`XRLinearClassifier.compact`): the quantised weights against a pure-Python
reference of the rule, scores within the proven error bound of the float32 model, save / load /
mmap / pickle bit-identical to the compact model in memory, independence of n_jobs, and the
refusals (bad dtype, a compact model compacted to another dtype or pruned, float16 overflow)."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from pecos_rs import (InvalidInputError, InvalidParameterError, ModelFormatError, TextXRLinear,
                      XRLinearClassifier)
from pecos_rs import _pecos_rs
from pecos_rs._sparse import csr_args

import reference as ref

DTYPES = ("float32", "float16", "int8")


# ------------------------------------------------------------------- the reference of the rule


def reference_weights(W: np.ndarray, dtype: str) -> np.ndarray:
    """The weights the kernels use for the float32 weights `W` (features x labels, the bias row
    excluded), by the documented rule, in float32 arithmetic as the Rust code does it."""
    W = W.astype(np.float32)
    if dtype == "float32":
        return W
    if dtype == "float16":
        return W.astype(np.float16).astype(np.float32)
    scale = np.abs(W).max(axis=0) / np.float32(127)  # one per label (column)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(scale > 0, np.rint(W / scale), 0).clip(-127, 127).astype(np.float32)
    return (scale * q).astype(np.float32)


def weight_error_bound(W: np.ndarray, dtype: str) -> np.ndarray:
    """Per weight, the bound of `XRLinearClassifier.compact`'s docstring on |w - w'|."""
    W = np.abs(W.astype(np.float64))
    if dtype == "float32":
        return np.zeros_like(W)
    if dtype == "float16":
        return np.maximum(W * 2.0**-11, 2.0**-25)
    return np.broadcast_to(W.max(axis=0) / 127 * (0.5 + 2.0**-17), W.shape)


def one_layer_model(W: np.ndarray, bias_row: np.ndarray) -> _pecos_rs.XLinearModel:
    """A model of one layer (every label under the root) with weights `W` (features x labels)
    and bias weights `bias_row`: its `noop` scores are the raw scores `x . w_c + b_c`."""
    n_features, n_labels = W.shape
    Wt = sp.csr_matrix(np.vstack([W, bias_row[None, :]]).T.astype(np.float32))
    return _pecos_rs.XLinearModel.from_weight_columns(
        [np.zeros(n_labels, dtype=np.uint32)], [csr_args(Wt)], n_features=n_features, bias=1.0)


def dense_layer_weights(model: _pecos_rs.XLinearModel) -> np.ndarray:
    indptr, indices, data, shape = model.layer_weights(0)
    return sp.csc_matrix((data, indices, indptr), shape=shape).toarray()


@st.composite
def weight_matrices(draw):
    """Sparse float32 weights of both signs over several decades (some tiny: float16
    subnormals), within float16's range, and bias weights."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_features, n_labels = draw(st.integers(1, 40)), draw(st.integers(1, 300))
    exponent = rng.uniform(-20, 4, size=(n_features, n_labels))
    W = (np.sign(rng.standard_normal((n_features, n_labels))) * 2.0**exponent).astype(np.float32)
    W[rng.random(W.shape) > draw(st.floats(0.05, 1.0))] = 0
    bias_row = rng.standard_normal(n_labels).astype(np.float32)
    return W, bias_row


@settings(max_examples=40, deadline=None)
@given(wb=weight_matrices(), dtype=st.sampled_from(DTYPES))
def test_compact_weights_follow_the_reference_rule(wb, dtype):
    W, bias_row = wb
    compact = one_layer_model(W, bias_row).compacted(dtype, n_threads=1)
    assert compact.weight_dtype == dtype
    got = dense_layer_weights(compact)
    np.testing.assert_array_equal(got[:-1], reference_weights(W, dtype))
    np.testing.assert_array_equal(got[-1], bias_row)  # bias weights stay float32
    assert np.all(np.abs(got[:-1] - W) <= weight_error_bound(W, dtype))


@settings(max_examples=40, deadline=None)
@given(wb=weight_matrices(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_scores_stay_within_the_error_bound(wb, dtype, seed):
    W, bias_row = wb
    n_features, n_labels = W.shape
    rng = np.random.default_rng(seed)
    X = sp.random(20, n_features, density=0.5, format="csr", random_state=rng, dtype=np.float32)
    X.data = (X.data * 4 - 2).astype(np.float32)
    compact = one_layer_model(W, bias_row).compacted(dtype, n_threads=1)
    params = _pecos_rs.SearchParams({"beam_size": 1, "topk": n_labels, "post_processor": "noop"})
    labels, scores = compact.predict_topk(csr_args(X), params, n_threads=1)
    exact = X.astype(np.float64) @ W.astype(np.float64) + bias_row  # the float32 model's scores
    abs_x = abs(X).astype(np.float64)
    bound = abs_x @ weight_error_bound(W, dtype)
    # float32 rounding of the dot products, a few ulps of their terms' magnitude.
    rounding = 1e-6 * (abs_x @ np.abs(W).astype(np.float64) + np.abs(bias_row)) * (n_features + 2)
    rows = np.arange(X.shape[0])[:, None]
    assert np.all(labels >= 0)
    err = np.abs(scores - exact[rows, labels])
    allowed = (bound + rounding)[rows, labels]
    assert np.all(err <= allowed), float((err - allowed).max())


# ------------------------------------------------------------------------- the estimator API


@pytest.fixture(scope="module")
def fitted(planted):
    return XRLinearClassifier(n_splits=2, max_leaf_size=8, beam_size=3, topk=7).fit(planted.X, planted.Y)


def assert_same_predictions(a, b, X):
    la, sa = a.predict_topk(X)
    lb, sb = b.predict_topk(X)
    np.testing.assert_array_equal(la, lb)
    assert sa.tobytes() == sb.tobytes(), "scores differ bitwise"


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_load_mmap_and_pickle_give_the_compact_model(fitted, planted, dtype, tmp_path):
    compact = fitted.compact(dtype)
    assert compact is not fitted and fitted.model_.weight_dtype == "float32"
    assert compact.model_.weight_dtype == dtype
    assert compact.model_.nnz == fitted.model_.nnz
    assert len(compact.model_.to_bytes()) < len(fitted.model_.to_bytes())
    compact.save(tmp_path / "m")
    for mmap in (False, True):
        back = XRLinearClassifier.load(tmp_path / "m", mmap=mmap)
        assert back.model_.is_memory_mapped == mmap
        assert back.model_.to_bytes() == compact.model_.to_bytes()
        assert_same_predictions(back, compact, planted.X_test)
        assert_same_predictions(back, compact, planted.X_test[:1])
        assert back.verify() is back
    assert_same_predictions(pickle.loads(pickle.dumps(compact)), compact, planted.X_test)


def test_float32_compaction_changes_no_score(fitted, planted):
    # The float32 "compaction" narrows the child slots only.
    assert_same_predictions(fitted.compact("float32"), fitted, planted.X_test)


def test_compact_models_stay_close_to_the_float32_model(fitted, planted):
    labels, _ = fitted.predict_topk(planted.X_test)
    for dtype, min_agreement in (("float16", 0.99), ("int8", 0.9)):
        compact_labels, _ = fitted.compact(dtype).predict_topk(planted.X_test)
        assert np.mean(compact_labels[:, 0] == labels[:, 0]) >= min_agreement, dtype


def test_compact_results_do_not_depend_on_n_jobs(planted):
    X, Y = planted.X, planted.Y
    one = XRLinearClassifier(n_splits=2, max_leaf_size=8, n_jobs=1).fit(X, Y)
    two = XRLinearClassifier(n_splits=2, max_leaf_size=8, n_jobs=2).fit(X, Y)
    for dtype in DTYPES:
        a, b = one.compact(dtype), two.compact(dtype)
        assert a.model_.to_bytes() == b.model_.to_bytes()
        la, sa = a.predict_topk(planted.X_test)
        lb, sb = b.set_params(n_jobs=1).predict_topk(planted.X_test)
        np.testing.assert_array_equal(la, lb)
        assert sa.tobytes() == sb.tobytes()


@pytest.mark.parametrize("bad", ["float64", "INT8", "", "int4", None, 8, np.float16])
def test_a_bad_dtype_is_refused(fitted, bad):
    with pytest.raises(InvalidParameterError, match="weight_dtype"):
        fitted.compact(bad)


def test_compacting_twice_and_then_pruning(fitted):
    int8 = fitted.compact("int8")
    assert int8.compact("int8").model_.to_bytes() == int8.model_.to_bytes()
    for other in ("float32", "float16"):
        with pytest.raises(InvalidParameterError, match="compact the float32 model"):
            int8.compact(other)
    with pytest.raises(InvalidParameterError, match="prune the model before compacting"):
        int8.prune(threshold=0.2)
    # Pruning first, then compacting, works.
    pruned = fitted.prune(threshold=0.2).compact("int8")
    assert pruned.model_.nnz < int8.model_.nnz


def test_float16_refuses_weights_beyond_its_range():
    W = np.array([[70000.0, 1.0]], dtype=np.float32)
    model = one_layer_model(W, np.zeros(2, dtype=np.float32))
    with pytest.raises(InvalidInputError, match="float16"):
        model.compacted("float16", n_threads=1)
    assert model.compacted("int8", n_threads=1).weight_dtype == "int8"


def test_ensembles_compact_every_tree(planted):
    ens = XRLinearClassifier(n_splits=2, max_leaf_size=8, n_trees=2).fit(planted.X, planted.Y)
    compact = ens.compact("float16")
    assert [m.weight_dtype for m in compact.models_] == ["float16", "float16"]
    assert compact.predict_topk(planted.X_test)[0].shape == ens.predict_topk(planted.X_test)[0].shape


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_a_damaged_compact_file_is_refused(fitted, dtype, tmp_path):
    compact = fitted.compact(dtype)
    compact.save(tmp_path / "m")
    path = tmp_path / "m" / "model.bin"
    data = bytearray(path.read_bytes())
    data[len(data) - 40] ^= 0x5A  # in the last arrays: the bias weights
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError):
        XRLinearClassifier.load(tmp_path / "m")
    with pytest.raises(ModelFormatError):
        XRLinearClassifier.load(tmp_path / "m", mmap=True).verify()
    path.write_bytes(bytes(data[:-100]))
    for mmap in (False, True):
        with pytest.raises(ModelFormatError):
            XRLinearClassifier.load(tmp_path / "m", mmap=mmap)


def test_text_model_compacts_classifier_and_matchers():
    texts = ["red apple pie", "green apple tart", "blue sky", "dark blue sea", "apple juice", "sky high"]
    labels = [["food"], ["food"], ["sky"], ["sea"], ["food"], ["sky"]]
    model = TextXRLinear().fit(texts, labels, label_texts=["apple food", "the sky", "the sea"],
                               label_names=["food", "sky", "sea"])
    compact = model.compact("float16")
    assert compact.classifier_.model_.weight_dtype == "float16"
    assert compact.matcher_.weight_dtype == "float16"
    assert compact.centroid_matcher_ is None or compact.centroid_matcher_.weight_dtype == "float16"
    assert model.classifier_.model_.weight_dtype == "float32"
    assert compact.n_bytes_ < model.n_bytes_
    assert [p[0][0] for p in compact.predict(["apple", "blue sea"], k=1)] == \
        [p[0][0] for p in model.predict(["apple", "blue sea"], k=1)]


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_the_file_layout_is_the_documented_one(fitted, dtype):
    """The reference parser (tests/reference.py, written from io/model_file.rs's layout) reads a
    compact file: narrow slots, the dtype's weights, int8's scales, the same weights as exported."""
    blob = fitted.compact(dtype).model_.to_bytes()
    parsed = ref.parse_model_bytes(blob)
    assert parsed["version"] == 4
    Ws, _ = ref.model_layers(fitted.compact(dtype).model_)
    for lh, arrays, W in zip(parsed["header"]["layers"], parsed["layers"], Ws):
        assert lh["weight_dtype"] == dtype and lh["slot_type"] == "u8"  # at most 8 children per node
        assert arrays["entry_value"].dtype == np.dtype(ref.WEIGHT_TYPES[dtype])
        assert ("scale" in arrays) == (dtype == "int8")
        values = arrays["entry_value"].astype(np.float32)
        if dtype == "int8":
            assert values.min() >= -127 and values.max() <= 127
        n_weights = np.count_nonzero(W[:-1])
        assert len(values) == n_weights


def test_invalid_int8_values_and_scales_are_refused(fitted, tmp_path):
    blob = fitted.compact("int8").model_.to_bytes()
    parsed = ref.parse_model_bytes(blob)
    sections = {(t, name): (start, end) for t, name, start, end, _ in parsed["sections"]}
    for (t, name), value in (((1, "entry_value"), struct.pack("<b", -128)),
                             ((0, "scale"), struct.pack("<f", -1.0)),
                             ((0, "scale"), struct.pack("<f", float("inf")))):
        start, _ = sections[(t, name)]
        bad = bytearray(blob)
        bad[start:start + len(value)] = value
        bad = ref.fix_crc(bytes(bad))
        with pytest.raises(ModelFormatError):
            _pecos_rs.XLinearModel.from_bytes(bad)
        path = tmp_path / f"bad-{t}-{name}.bin"
        path.write_bytes(bad)
        if name == "scale":  # checked with the layout, at load
            with pytest.raises(ModelFormatError, match="scale"):
                _pecos_rs.XLinearModel.load(path, mmap=True)
        else:  # checked with its chunk, at first use
            with pytest.raises(ModelFormatError, match="weight"):
                _pecos_rs.XLinearModel.load(path, mmap=True).verify()


def test_save_pecos_writes_the_compact_weights_as_float32(fitted, planted, tmp_path):
    compact = fitted.compact("int8")
    compact.save_pecos(tmp_path / "p")
    back = XRLinearClassifier.load_pecos(tmp_path / "p")
    assert back.model_.weight_dtype == "float32"
    np.testing.assert_array_equal(ref.model_layers(back.model_)[0][-1], ref.model_layers(compact.model_)[0][-1])
    (la, sa), (lb, sb) = compact.predict_topk(planted.X_test), back.predict_topk(planted.X_test)
    # The same weights; int8 scales the dot product once instead of every weight: float rounding.
    np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-6)
    assert np.mean(la == lb) > 0.99

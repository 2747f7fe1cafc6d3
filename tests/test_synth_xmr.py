"""The synthetic XMR generator of benches/synth_xmr.py: byte-identical output for a seed whatever
the chunk size, valid CSR files that scipy loads, every label with a training positive, and
features that carry the labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from pecos_rs import XRLinearClassifier
from pecos_rs.metrics import precision_recall_at_k

# Appended, not prepended: the benches' module names must not shadow anything.
sys.path.append(str(Path(__file__).resolve().parents[1] / "benches"))
import synth_xmr  # noqa: E402

FILES = ("X.trn.npz", "Y.trn.npz", "X.tst.npz", "Y.tst.npz", "meta.json")
SMALL = synth_xmr.SynthParams(labels=500, seed=3)


def _bytes(directory: Path) -> dict:
    return {name: (directory / name).read_bytes() for name in FILES}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    synth_xmr.generate(SMALL, out, chunk_rows=1024)
    return out


def test_same_seed_same_bytes_whatever_the_chunk_size(small, tmp_path):
    # 1,500 train rows: chunks of 256 rows cut them at other places than chunks of 1024.
    synth_xmr.generate(SMALL, tmp_path / "b", chunk_rows=256)
    synth_xmr.generate(SMALL, tmp_path / "c", chunk_rows=1024)
    reference = _bytes(small)
    assert _bytes(tmp_path / "b") == reference
    assert _bytes(tmp_path / "c") == reference
    assert sorted(p.name for p in small.iterdir()) == sorted(FILES)  # no temporary files left


def test_another_seed_other_data(small, tmp_path):
    synth_xmr.generate(synth_xmr.SynthParams(labels=500, seed=4), tmp_path, chunk_rows=1024)
    for name in FILES[:4]:
        assert (tmp_path / name).read_bytes() != (small / name).read_bytes()


def test_files_are_valid_csr(small):
    meta = json.loads((small / "meta.json").read_text())
    p = meta["params"]
    n_rows = {"trn": p["train_rows"], "tst": p["test_rows"]}
    for split in ("trn", "tst"):
        X = sp.load_npz(small / f"X.{split}.npz")
        Y = sp.load_npz(small / f"Y.{split}.npz")
        assert X.format == Y.format == "csr"
        assert X.shape == (n_rows[split], p["features"]) and Y.shape == (n_rows[split], p["labels"])
        assert X.dtype == Y.dtype == np.float32
        for M in (X, Y):
            M.check_format(full_check=True)
            assert M.has_canonical_format  # sorted indices, no duplicates
        assert (X.nnz, Y.nnz) == (meta["nnz"][f"X.{split}"], meta["nnz"][f"Y.{split}"])
        assert np.allclose(sp.linalg.norm(X, axis=1), 1.0, atol=1e-5)
        assert (X.data > 0).all() and (Y.data == 1).all()
        assert (np.diff(Y.indptr) >= 1).all()
    Y_trn = sp.load_npz(small / "Y.trn.npz")
    assert (np.diff(Y_trn.tocsc().indptr) >= 1).all()  # every label has a training positive
    X_trn = sp.load_npz(small / "X.trn.npz")
    assert 40 < X_trn.nnz / X_trn.shape[0] < 120  # TF-IDF-like rows of a realistic density


def test_features_carry_the_labels(small):
    """XR-Linear beats predicting the most frequent training labels by far (P@1 62 against 23 at
    this size), and falls to about that when the training rows' features are shuffled against
    their labels."""
    X, Y = sp.load_npz(small / "X.trn.npz"), sp.load_npz(small / "Y.trn.npz")
    X_tst, Y_tst = sp.load_npz(small / "X.tst.npz"), sp.load_npz(small / "Y.tst.npz")
    popular = np.argsort(-np.asarray(Y.sum(axis=0)).ravel(), kind="stable")[:10]
    baseline = precision_recall_at_k(Y_tst, np.tile(popular, (X_tst.shape[0], 1)), ks=(1,))["P@1"]

    def p_at_1(X_train):
        labels, _ = XRLinearClassifier(n_jobs=1).fit(X_train, Y).predict_topk(X_tst)
        return precision_recall_at_k(Y_tst, labels, ks=(1,))["P@1"]

    shuffled = X[np.random.default_rng(0).permutation(X.shape[0])]
    assert p_at_1(X) > baseline + 20
    assert p_at_1(shuffled) < baseline + 5


@pytest.mark.parametrize(
    "params, chunk_rows, message",
    [
        (SMALL, 100, "multiple of 256"),
        (synth_xmr.SynthParams(labels=500, train_rows=400), 1024, "every label gets a positive"),
        (synth_xmr.SynthParams(labels=1), 1024, "labels must be >= 2"),
        (synth_xmr.SynthParams(labels=500, noise_share=1.0), 1024, "noise_share"),
    ],
)
def test_bad_parameters_are_refused(params, chunk_rows, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        synth_xmr.generate(params, tmp_path, chunk_rows)
    assert not any(tmp_path.iterdir())  # refused before writing anything

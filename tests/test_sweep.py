"""The threshold x beam sweep of a TextXRLinear: its rows against direct measurements, its files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import scipy.sparse as sp

from pecos_rs import InvalidInputError, InvalidParameterError, TextXRLinear
from pecos_rs.cli import main
from pecos_rs.metrics import precision_recall_at_k
from pecos_rs.sweep import COLUMNS, markdown_table, plot, sweep, write_csv

from test_retrieval import make_catalogue, small_classifier


@pytest.fixture(scope="module")
def fitted():
    texts, labels, names, titles = make_catalogue(n_texts=240)
    model = TextXRLinear(classifier=small_classifier(threshold=0.05)).fit(
        texts[:180], labels[:180], label_names=names, label_texts=titles)
    Y = sp.csr_matrix([[float(n in row) for n in names] for row in labels[180:]])
    return model, texts[180:], Y


def test_rows_equal_direct_measurements(fitted):
    model, texts, Y = fitted
    rows = sweep(model, texts, Y, thresholds=(0.3, 0.05), beam_sizes=(2, 1), n_latency_queries=10, passes=2)
    assert [(r["threshold"], r["beam_size"]) for r in rows] == [(0.05, 1), (0.05, 2), (0.3, 1), (0.3, 2)]
    for row in rows:
        assert list(row) == list(COLUMNS)
        pruned = model.prune(threshold=row["threshold"])
        pruned.classifier_.set_params(beam_size=row["beam_size"])
        expected = precision_recall_at_k(Y, pruned.predict_topk(texts, 100)[0], (1, 10, 100))
        assert row["R@10"] == pytest.approx(expected["R@10"] / 100)
        assert row["R@100"] == pytest.approx(expected["R@100"] / 100)
        assert row["P@1"] == pytest.approx(expected["P@1"] / 100)
        assert row["nnz"] == pruned.classifier_.model_.nnz
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["batch_qps"] > 0
    assert rows[0]["nnz"] > rows[2]["nnz"] and rows[0]["model_mb"] > rows[2]["model_mb"]
    # The model itself is left as it was.
    assert model.classifier_.threshold == 0.05 and model.classifier_.beam_size == TextXRLinear().beam_size


def test_files_written(fitted, tmp_path):
    model, texts, Y = fitted
    rows = sweep(model, texts, Y, thresholds=(0.05, 0.2), beam_sizes=(1, 3), n_latency_queries=5)
    write_csv(rows, tmp_path / "s.csv")
    with open(tmp_path / "s.csv") as f:
        read = list(csv.DictReader(f))
    assert [float(r["R@10"]) for r in read] == pytest.approx([r["R@10"] for r in rows])
    table = markdown_table(rows)
    assert table.count("\n") == 2 + len(rows) and table.startswith("| threshold | beam_size |")
    for path in plot(rows, tmp_path):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_bad_sweeps_are_refused(fitted):
    model, texts, Y = fitted
    with pytest.raises(InvalidParameterError, match="threshold"):
        sweep(model, texts, Y, thresholds=(0.01,), beam_sizes=(1,))
    with pytest.raises(InvalidParameterError, match="beam_sizes"):
        sweep(model, texts, Y, thresholds=(0.1,), beam_sizes=(0,))
    with pytest.raises(InvalidParameterError, match="thresholds"):
        sweep(model, texts, Y, thresholds=(), beam_sizes=(1,))
    with pytest.raises(InvalidInputError, match="shape"):
        sweep(model, texts[:-1], Y)
    with pytest.raises(InvalidParameterError, match="passes"):
        sweep(model, texts, Y, passes=0)


def test_the_sweep_command(tmp_path, capsys):
    texts, labels, names, titles = make_catalogue(n_texts=160)
    for name, part in (("train.txt", slice(0, 120)), ("val.txt", slice(120, None))):
        (tmp_path / name).write_text("".join(f"{','.join(ls)}\t{t}\n" for t, ls in zip(texts[part], labels[part])))
    assert main(["train", "--data", str(tmp_path / "train.txt"), "--model", str(tmp_path / "m"),
                 "--n-splits", "2", "--max-leaf-size", "4", "--threshold", "0.05"]) == 0
    code = main(["sweep", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "val.txt"), "--out",
                 str(tmp_path / "out"), "--thresholds", "0.05", "0.5", "--beams", "1", "4", "--latency-queries", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("| threshold |") and out.count("\n") == 6
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "sweep.csv", "sweep.md", "recall_latency.png", "size_threshold.png"}
    code = main(["sweep", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "val.txt"), "--out",
                 str(tmp_path / "out"), "--thresholds", "0.01"])
    assert code == 2 and "threshold" in capsys.readouterr().err

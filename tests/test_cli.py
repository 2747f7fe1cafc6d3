"""The pecos-rs command line: every command on a small made-up catalogue, and bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from unittest.mock import ANY

import numpy as np
import pytest
import scipy.sparse as sp

from pecos_rs import TextXRLinear
from pecos_rs.cli import main

from test_retrieval import make_catalogue


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The catalogue in both layouts: PECOS's 'labels<TAB>text' lines, and texts + Y.npz + names + titles."""
    root = tmp_path_factory.mktemp("cli")
    texts, labels, names, titles = make_catalogue(n_texts=160)
    (root / "train.txt").write_text("".join(f"{','.join(ls)}\t{t}\n" for t, ls in zip(texts[:120], labels[:120])))
    (root / "test.txt").write_text("".join(f"{','.join(ls)}\t{t}\n" for t, ls in zip(texts[120:], labels[120:])))
    with gzip.open(root / "X.trn.txt.gz", "wt") as f:
        f.write("".join(t + "\n" for t in texts[:120]))
    Y = sp.csr_matrix([[float(n in row) for n in names] for row in labels[:120]], dtype=np.float32)
    sp.save_npz(root / "Y.trn.npz", Y)
    (root / "names.txt").write_text("".join(n + "\n" for n in names))
    (root / "titles.txt").write_text("".join(t + "\n" for t in titles))
    return root, texts, labels, names


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


SMALL = ("--n-splits", 2, "--max-leaf-size", 4, "--threshold", 0, "--n-jobs", 1)


def test_train_predict_evaluate_from_pecos_text_format(files, tmp_path, capsys):
    root, texts, labels, _ = files
    code, out, err = run(capsys, "train", "--data", root / "train.txt", "--model", tmp_path / "m", *SMALL)
    assert code == 0, err
    assert "trained in" in err and out == ""
    queries = tmp_path / "q.txt"
    queries.write_text("cordless drill\n\ngarden hose\n")
    code, out, err = run(capsys, "predict", "--model", tmp_path / "m", "--input", queries, "-k", 3)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in records] == ["cordless drill", "", "garden hose"]
    assert records[1] == {"text": "", "labels": [], "error": "empty query"}
    model = TextXRLinear.load(tmp_path / "m")
    assert [(x["label"], pytest.approx(x["score"], abs=1e-6)) for x in records[0]["labels"]] == \
        model.predict_one("cordless drill", k=3)
    code, out, err = run(capsys, "evaluate", "--model", tmp_path / "m", "--data", root / "test.txt", "--json", "-k", 1, 5)
    assert code == 0, err
    report = json.loads(out)
    assert report["rows"] == 40 and set(report) >= {"P@1", "R@5", "nDCG@5"}
    assert report["P@1"] > 30  # learnable: the queries are title words of their products
    code, out, _ = run(capsys, "evaluate", "--model", tmp_path / "m", "--data", root / "test.txt")
    assert code == 0 and "nDCG@10" in out


def test_train_from_the_xmc_layout_with_label_titles(files, tmp_path, capsys):
    root, _, _, names = files
    code, _, err = run(capsys, "train", "--texts", root / "X.trn.txt.gz", "--labels", root / "Y.trn.npz",
                       "--label-names", root / "names.txt", "--label-texts", root / "titles.txt",
                       "--model", tmp_path / "m", *SMALL)
    assert code == 0, err
    model = TextXRLinear.load(tmp_path / "m")
    assert list(model.labels_) == names and model.matcher_ is not None


def test_unknown_test_labels_count_as_misses(files, tmp_path, capsys):
    root, texts, labels, _ = files
    assert run(capsys, "train", "--data", root / "train.txt", "--model", tmp_path / "m", *SMALL)[0] == 0
    test = tmp_path / "test.txt"
    test.write_text(f"{labels[0][0]}\t{texts[0]}\nnever_seen\t{texts[0]}\n")
    code, out, err = run(capsys, "evaluate", "--model", tmp_path / "m", "--data", test, "--json", "-k", 10)
    assert code == 0 and "1 test labels are unknown" in err
    assert json.loads(out)["R@10"] <= 50.0


@pytest.mark.parametrize("content, message", [
    (b"p01\tdrill\nno tab here\n", "line 2: expected 'label1,label2<TAB>text', found no tab"),
    (b"p01,,p02\tdrill\n", "line 1: empty label name"),
    (b"", "no lines"),
    (b"\xff\xfe\tbad bytes\n", "not UTF-8"),
])
def test_malformed_training_files(tmp_path, capsys, content, message):
    data = tmp_path / "bad.txt"
    data.write_bytes(content)
    code, _, err = run(capsys, "train", "--data", data, "--model", tmp_path / "m")
    assert code == 2 and message in err and "Traceback" not in err


def test_bad_arguments_and_files(files, tmp_path, capsys):
    root, _, _, _ = files
    code, _, err = run(capsys, "train", "--data", tmp_path / "missing.txt", "--model", tmp_path / "m")
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, "train", "--texts", root / "X.trn.txt.gz", "--labels", root / "Y.trn.npz",
                       "--model", tmp_path / "m")
    assert code == 2 and "needs --label-names" in err
    code, _, err = run(capsys, "train", "--data", root / "train.txt", "--label-names", root / "names.txt",
                       "--model", tmp_path / "m", *SMALL)
    assert code == 0, err  # every training label is among the names
    short = tmp_path / "short.txt"
    short.write_text("p00\n")
    code, _, err = run(capsys, "train", "--data", root / "train.txt", "--label-names", short, "--model", tmp_path / "m")
    assert code == 2 and "unknown label" in err
    truncated = tmp_path / "X.txt.gz"
    truncated.write_bytes(gzip.compress(b"a\nb\n" * 1000)[:40])
    code, _, err = run(capsys, "train", "--texts", truncated, "--labels", root / "Y.trn.npz",
                       "--label-names", root / "names.txt", "--model", tmp_path / "m")
    assert code == 2 and "cannot be read" in err
    not_npz = tmp_path / "Y.npz"
    not_npz.write_bytes(b"garbage")
    code, _, err = run(capsys, "train", "--texts", root / "X.trn.txt.gz", "--labels", not_npz,
                       "--label-names", root / "names.txt", "--model", tmp_path / "m")
    assert code == 2 and "not a scipy sparse .npz" in err
    code, _, err = run(capsys, "predict", "--model", tmp_path / "no_model")
    assert code == 2 and "no such model directory" in err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "text_xrlinear.json").write_text("{")
    code, _, err = run(capsys, "predict", "--model", tmp_path / "broken", "--input", short)
    assert code == 2 and "Traceback" not in err
    for argv in (["predict", "--model", tmp_path, "-k", "0"], ["evaluate"], ["nonsense"]):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        assert exit_info.value.code == 2
    capsys.readouterr()


def test_the_module_runs_as_a_command():
    result = subprocess.run([sys.executable, "-m", "pecos_rs.cli", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "pecos-rs train" in result.stdout


# ------------------------------------------------------------------------------------- serve


@pytest.fixture(scope="module")
def served_model(files, tmp_path_factory):
    root = files[0]
    model_dir = tmp_path_factory.mktemp("served") / "m"
    assert main(["train", "--data", str(root / "train.txt"), "--model", str(model_dir),
                 *map(str, SMALL)]) == 0
    return model_dir


def http(url, body=None):
    """(status, JSON answer) of a GET, or of a POST when `body` (bytes) is given."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_answers_a_real_http_client_and_a_concurrent_burst(served_model, capsys):
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import quote

    from pecos_rs._predict_server import PredictServer

    model = TextXRLinear.load(served_model)
    server = PredictServer(("127.0.0.1", 0), model)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = server.url
        queries = ["cordless drill", "garden hose", "paint roller brush", "tape measure", "lamp bulb"] * 20

        def ask(i):
            q = queries[i]
            return q, http(f"{url}predict?text={quote(q)}&k={1 + i % 7}"), 1 + i % 7

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(ask, range(len(queries))))
        for q, (status, body), k in answers:
            assert status == 200 and body["text"] == q
            assert [(x["label"], pytest.approx(x["score"], rel=1e-6)) for x in body["labels"]] == \
                model.predict_one(q, k=k)
        status, body = http(f"{url}predict", json.dumps({"texts": queries[:5], "k": 3}).encode())
        assert status == 200
        assert [[x["label"] for x in r["labels"]] for r in body["results"]] == \
            [[name for name, _ in a] for a in model.predict(queries[:5], k=3)]
        status, body = http(f"{url}health")
        assert status == 200 and body["status"] == "ok" and body["labels"] == len(model.labels_)
        for bad_url, message in ((f"{url}predict?text=%20", "empty query"), (f"{url}predict", "missing parameter"),
                                 (f"{url}predict?text=a&k=0", "k must be"), (f"{url}predict?text=a&text=b", "2 times"),
                                 (f"{url}nowhere", "no such path")):
            status, body = http(bad_url)
            assert status in (400, 404) and message in body["error"]
        for bad_body, message in ((b"{not json", "not JSON"), (b'{"texts": "drill"}', "must be"),
                                  (b'{"texts": []}', "1..1000"), (b'{"texts": ["a", 3]}', "texts[1]"),
                                  (b'{"texts": ["a"], "k": "many"}', "k must be")):
            status, body = http(f"{url}predict", bad_body)
            assert status == 400 and message in body["error"]
    finally:
        server.shutdown()
        server.server_close()


def serve_and_get(model_dir, path, *options):
    """Start `pecos-rs serve` on a free port, GET `path`, stop it with Ctrl-C; the (status, JSON)."""
    import signal

    process = subprocess.Popen([sys.executable, "-m", "pecos_rs.cli", "serve", "--model", str(model_dir),
                                "--port", "0", *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"serving {model_dir} at http://127.0.0.1:"), line + process.stderr.read()
        url = line.split(" at ")[1].split(" ")[0]
        return http(url + path)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        process.stdout.close()
        process.stderr.close()


def test_the_serve_command_serves_either_model_until_stopped(served_model, tmp_path):
    from pecos_rs.qac import SessionAutocompleter

    status, body = serve_and_get(served_model, "predict?text=garden%20hose&k=2")
    assert status == 200 and len(body["labels"]) == 2
    assert serve_and_get(served_model, "predict?text=garden%20hose&k=2", "--mmap")[1]["labels"] == body["labels"]
    assert [serve_and_get(served_model, "health", *options)[1]["memory_mapped"]
            for options in ((), ("--mmap",))] == [False, True]
    queries = ["weather today", "weather tomorrow", "news", "new york times", "recipes"] * 4
    SessionAutocompleter(max_leaf_size=2).fit(queries[1:] + [""], [q[:2] for q in queries], queries).save(tmp_path / "qac")
    status, body = serve_and_get(tmp_path / "qac", "suggest?prev=news&prefix=wea&k=2")
    assert status == 200 and [s["query"] for s in body["suggestions"]] and \
        all(s["query"].startswith("wea") for s in body["suggestions"])
    assert serve_and_get(tmp_path / "qac", "suggest?prev=news&prefix=wea&k=2", "--mmap")[1] == body | {
        "ms": ANY}
    bad = subprocess.run([sys.executable, "-m", "pecos_rs.cli", "serve", "--model", str(served_model.parent / "x")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no such model directory" in bad.stderr


def test_train_options_reach_the_model(files, tmp_path, capsys):
    root = files[0]
    code, _, err = run(capsys, "train", "--data", root / "train.txt", "--model", tmp_path / "m", *SMALL,
                       "--n-trees", 2, "--features", "paper", "--centroid-weight", 0.01, "--beam-size", 3,
                       "--neighbour-weight", 0, "--label-name-weight", 0, "--rank-weight", 0.5,
                       "--co-click-weight", 0)
    assert code == 0, err
    model = TextXRLinear.load(tmp_path / "m")
    assert model.rank_weight_ == 0.5 and model.co_click_matrix_ is None and model.co_click_weight_ == 0.0
    assert len(model.classifier_.models_) == 2 and model.classifier_.beam_size == 3
    assert model.centroid_matcher_ is not None and model.centroid_weight == 0.01
    assert model.neighbour_index_ is None and model.neighbour_weight_ == 0.0
    assert model.name_matcher_ is None and model.label_name_weight_ == 0.0
    (_, word), (_, char) = model.featurizer_.blocks_
    assert tuple(word.ngram_range) == (1, 3) and tuple(char.ngram_range) == (3, 3) and char.end_marker == "#"
    code, _, err = run(capsys, "train", "--data", root / "train.txt", "--model", tmp_path / "m",
                       "--centroid-weight", 2)
    assert code == 2 and "centroid_weight" in err
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, "train", "--data", root / "train.txt", "--model", tmp_path / "m", "--neighbour-weight", "lots")
    assert exit_info.value.code == 2 and "number or auto" in capsys.readouterr().err


def test_weight_dtype_compacts_the_saved_model(files, tmp_path, capsys):
    root = files[0]
    code, _, err = run(capsys, "train", "--data", root / "train.txt", "--model", tmp_path / "m", *SMALL,
                       "--weight-dtype", "int8", "--centroid-weight", 0.005)
    assert code == 0, err
    model = TextXRLinear.load(tmp_path / "m")
    assert model.classifier_.model_.weight_dtype == "int8" and model.centroid_matcher_.weight_dtype == "int8"
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, "train", "--data", root / "train.txt", "--model", tmp_path / "m", "--weight-dtype", "int4")
    assert exit_info.value.code == 2 and "int4" in capsys.readouterr().err


def test_predict_batches_keep_the_input_order(files, tmp_path, capsys, monkeypatch):
    import pecos_rs.cli

    root = files[0]
    assert run(capsys, "train", "--data", root / "train.txt", "--model", tmp_path / "m", *SMALL)[0] == 0
    monkeypatch.setattr(pecos_rs.cli, "PREDICT_BATCH", 2)
    texts = ["garden hose", "", "drill", "paint brush", " ", "ladder step", "saw blade"]
    (tmp_path / "q.txt").write_text("".join(t + "\n" for t in texts))
    code, out, err = run(capsys, "predict", "--model", tmp_path / "m", "--input", tmp_path / "q.txt", "-k", 2)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    model = TextXRLinear.load(tmp_path / "m")
    assert [r["text"] for r in records] == texts
    for r in records:
        expected = [name for name, _ in model.predict_one(r["text"], k=2)] if r["text"].strip() else []
        assert [x["label"] for x in r["labels"]] == expected

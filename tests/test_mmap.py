"""Memory-mapped models: `load(path, mmap=True)` against a normal load, loading without reading
the weights, `verify()`, files changed on disk after mapping, and two processes sharing one
mapping. Damaged files under a mapped load are in test_bad_input.py (truncated, extended and
garbage files refused at load; structurally invalid weights refused by every use that reads
them)."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import reference as ref
from pecos_rs import InvalidParameterError, ModelFormatError, TextXRLinear, XRLinearClassifier
from pecos_rs import _pecos_rs, xlinear
from pecos_rs._sparse import csr_args

TREE = dict(n_splits=2, max_leaf_size=8)


@pytest.fixture(scope="module")
def fitted(planted):
    return XRLinearClassifier(beam_size=3, topk=7, **TREE).fit(planted.X, planted.Y)


@pytest.fixture(scope="module")
def ensemble(planted):
    return XRLinearClassifier(beam_size=3, topk=7, n_trees=2, **TREE).fit(planted.X, planted.Y)


def assert_same_predictions(a, b, X, **kw):
    la, sa = a.predict_topk(X, **kw)
    lb, sb = b.predict_topk(X, **kw)
    np.testing.assert_array_equal(la, lb)
    assert sa.tobytes() == sb.tobytes(), "scores differ bitwise"


def weight_offset(blob: bytes) -> int:
    """Byte offset of the first weight (entry_value) of the last layer in a model file."""
    sections = ref.parse_model_bytes(blob)["sections"]
    starts = [start for _, name, start, end, _ in sections if name == "entry_value" and end > start]
    assert starts, "the model has no weights"
    return starts[-1]


@pytest.mark.parametrize("model", ["fitted", "ensemble"])
def test_mapped_load_predicts_bit_identically(model, planted, tmp_path, request):
    clf = request.getfixturevalue(model)
    clf.save(tmp_path / "m")
    read = XRLinearClassifier.load(tmp_path / "m")
    mapped = XRLinearClassifier.load(tmp_path / "m", mmap=True)
    assert all(m.is_memory_mapped for m in mapped.models_)
    assert not any(m.is_memory_mapped for m in read.models_)
    for m, r in zip(mapped.models_, read.models_):
        assert m.to_bytes() == r.to_bytes()
    for kw in ({}, {"k": 20, "beam_size": 5, "post_processor": "sigmoid"}):
        assert_same_predictions(mapped, read, planted.X_test, **kw)
        assert_same_predictions(mapped, read, planted.X_test[:1], **kw)
    assert mapped.verify() is mapped and read.verify() is read
    # Pickling copies the weights out; pruning builds new ones: both give models in memory.
    for other in (pickle.loads(pickle.dumps(mapped)), mapped.prune(threshold=0.2)):
        assert not other.model_.is_memory_mapped
    assert_same_predictions(pickle.loads(pickle.dumps(mapped)), read, planted.X_test)
    assert_same_predictions(mapped.prune(threshold=0.2), read.prune(threshold=0.2), planted.X_test)


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/<pid>/smaps")
def test_a_mapped_load_does_not_read_the_weights(tmp_path):
    """Loading checks the layout only: most pages of the weights are first touched by predictions."""
    n_labels, n_features = 20000, 1000
    W = sp.random(n_labels, n_features + 1, density=0.1, format="csr", random_state=0, dtype=np.float32)
    model = _pecos_rs.XLinearModel.from_weight_columns([np.zeros(n_labels, np.uint32)], [csr_args(W)],
                                                       n_features=n_features, bias=1.0)
    path = (tmp_path / "big.bin").resolve()
    model.save(path)
    size_kb = path.stat().st_size // 1024
    # Out of the page cache first: pages cached by the write may be mapped in large blocks.
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    mapped = _pecos_rs.XLinearModel.load(path, mmap=True)
    resident_kb = mapping_of(os.getpid(), path)["Rss"]
    assert size_kb > 10_000 and resident_kb < size_kb / 4, (resident_kb, size_kb)
    X = sp.random(50, n_features, density=0.5, format="csr", random_state=1, dtype=np.float32)
    params = _pecos_rs.SearchParams({"beam_size": 1, "topk": 5, "post_processor": "sigmoid"})
    assert_topk_equal(mapped.predict_topk(csr_args(X), params, n_threads=1),
                      model.predict_topk(csr_args(X), params, n_threads=1))
    assert mapping_of(os.getpid(), path)["Rss"] > size_kb / 2
    mapped.verify()


def assert_topk_equal(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].tobytes() == b[1].tobytes(), "scores differ bitwise"


def test_text_model_passes_mmap_through(tmp_path):
    texts = ["red apple", "green apple", "red car", "blue car", "green tree", "tall tree"] * 5
    labels = [["fruit"], ["fruit"], ["car"], ["car"], ["tree"], ["tree"]] * 5
    model = TextXRLinear().fit(texts, labels)
    model.save(tmp_path / "t")
    mapped = TextXRLinear.load(tmp_path / "t", mmap=True)
    assert mapped.classifier_.model_.is_memory_mapped
    assert mapped.predict(["red apple", "tall car"]) == TextXRLinear.load(tmp_path / "t").predict(["red apple", "tall car"])


@pytest.mark.skipif(sys.platform != "linux", reason="the default maps on Linux only (its guard of truncated maps)")
def test_the_default_maps_large_files_only(fitted, planted, tmp_path, monkeypatch):
    fitted.save(tmp_path / "m")
    size = (tmp_path / "m" / "model.bin").stat().st_size
    read = XRLinearClassifier.load(tmp_path / "m", mmap=False)
    monkeypatch.setattr(xlinear, "AUTO_MMAP_MIN_BYTES", size + 1)
    assert not XRLinearClassifier.load(tmp_path / "m").model_.is_memory_mapped
    monkeypatch.setattr(xlinear, "AUTO_MMAP_MIN_BYTES", size)
    by_default = XRLinearClassifier.load(tmp_path / "m")
    assert by_default.model_.is_memory_mapped
    assert not read.model_.is_memory_mapped
    assert_same_predictions(by_default, read, planted.X_test)


@pytest.mark.skipif(sys.platform != "linux", reason="the default maps on Linux only (its guard of truncated maps)")
def test_the_default_maps_every_file_of_a_text_model(tmp_path, monkeypatch):
    texts = ["red apple", "green apple", "red car", "blue car", "green tree", "tall tree"] * 5
    labels = [["fruit"], ["fruit"], ["car"], ["car"], ["tree"], ["tree"]] * 5
    titles = {"fruit": "apples and pears", "car": "cars and vans", "tree": "trees and shrubs"}
    TextXRLinear(centroid_weight=0.005).fit(texts, labels, label_texts=titles).save(tmp_path / "t")
    monkeypatch.setattr(xlinear, "AUTO_MMAP_MIN_BYTES", 0)
    model = TextXRLinear.load(tmp_path / "t")
    assert model.classifier_.model_.is_memory_mapped
    assert model.matcher_.is_memory_mapped and model.centroid_matcher_.is_memory_mapped
    assert model.predict(["red apple"]) == TextXRLinear.load(tmp_path / "t", mmap=False).predict(["red apple"])


def test_the_default_reads_what_cannot_be_mapped(fitted, tmp_path, monkeypatch):
    """A version-2 file (unaligned arrays) is read by default; damaged or foreign files are left
    to the read load, which names the problem."""
    monkeypatch.setattr(xlinear, "AUTO_MMAP_MIN_BYTES", 0)
    parsed = ref.parse_model_bytes(fitted.model_.to_bytes())
    Ws, Ps = ref.model_layers(fitted.model_)
    packed = ref.model_to_bytes(fitted.model_.n_features, fitted.model_.bias, list(zip(Ps, Ws)),
                                metadata=parsed["header"]["metadata"], version=2)
    (tmp_path / "v2.bin").write_bytes(packed)
    model = xlinear.load_model_file(tmp_path / "v2.bin")
    assert not model.is_memory_mapped and model.to_bytes() == _pecos_rs.XLinearModel.from_bytes(packed).to_bytes()
    (tmp_path / "short.bin").write_bytes(b"PECOSRS\0")
    with pytest.raises(ModelFormatError):
        xlinear.load_model_file(tmp_path / "short.bin")
    with pytest.raises(FileNotFoundError):
        xlinear.load_model_file(tmp_path / "missing.bin")


@pytest.mark.parametrize("bad", ["yes", 1, 0.0])
def test_mmap_must_be_a_bool_or_none(fitted, tmp_path, bad):
    fitted.save(tmp_path / "m")
    with pytest.raises(InvalidParameterError, match="mmap must be"):
        XRLinearClassifier.load(tmp_path / "m", mmap=bad)


def test_corrupt_weights_load_mapped_but_fail_verify(fitted, planted, tmp_path):
    fitted.save(tmp_path / "m")
    path = tmp_path / "m" / "model.bin"
    blob = bytearray(path.read_bytes())
    blob[weight_offset(bytes(blob))] ^= 0x01  # a slightly different, still finite weight
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelFormatError, match="checksum"):
        XRLinearClassifier.load(tmp_path / "m")
    mapped = XRLinearClassifier.load(tmp_path / "m", mmap=True)
    with pytest.raises(ModelFormatError, match="checksum"):
        mapped.verify()


def test_version_2_files_cannot_be_mapped_but_can_be_upgraded(fitted, tmp_path):
    parsed = ref.parse_model_bytes(fitted.model_.to_bytes())
    Ws, Ps = ref.model_layers(fitted.model_)
    packed = ref.model_to_bytes(fitted.model_.n_features, fitted.model_.bias, list(zip(Ps, Ws)),
                                metadata=parsed["header"]["metadata"], version=2)
    (tmp_path / "v2.bin").write_bytes(packed)
    with pytest.raises(ModelFormatError, match="version 2.*save it again"):
        _pecos_rs.XLinearModel.load(tmp_path / "v2.bin", mmap=True)
    _pecos_rs.XLinearModel.load(tmp_path / "v2.bin").save(tmp_path / "v3.bin")
    upgraded = _pecos_rs.XLinearModel.load(tmp_path / "v3.bin", mmap=True)
    assert upgraded.to_bytes() == _pecos_rs.XLinearModel.from_bytes(packed).to_bytes()


def test_saving_over_a_mapped_model_leaves_it_intact(fitted, planted, tmp_path):
    """`save` writes a new file and renames it over the old one: the mapping keeps the old file."""
    fitted.save(tmp_path / "m")
    mapped = XRLinearClassifier.load(tmp_path / "m", mmap=True)
    before = mapped.predict_topk(planted.X_test)
    other = fitted.prune(threshold=0.3)
    other.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.bin").read_bytes() != fitted.model_.to_bytes()
    after = mapped.predict_topk(planted.X_test)
    np.testing.assert_array_equal(before[0], after[0])
    assert before[1].tobytes() == after[1].tobytes()
    mapped.verify()
    assert_same_predictions(XRLinearClassifier.load(tmp_path / "m", mmap=True), other, planted.X_test)


def test_weights_changed_in_place_are_caught_by_verify(fitted, planted, tmp_path):
    """Writing into a mapped file in place is outside the contract (the mapping may see the new
    bytes); a changed weight gives other scores but no crash, and verify() reports it."""
    fitted.save(tmp_path / "m")
    path = tmp_path / "m" / "model.bin"
    mapped = XRLinearClassifier.load(tmp_path / "m", mmap=True)
    offset = weight_offset(path.read_bytes())
    with open(path, "r+b") as f:
        f.seek(offset)
        (value,) = struct.unpack("<f", f.read(4))
        f.seek(offset)
        f.write(struct.pack("<f", value * 2 + 1))
    mapped.predict_topk(planted.X_test)
    with pytest.raises(ModelFormatError, match="checksum"):
        mapped.verify()


TRUNCATED = textwrap.dedent("""
    import os, sys
    import numpy as np
    import scipy.sparse as sp
    from pecos_rs import ModelFormatError, XRLinearClassifier
    X = sp.random(3000, 400, density=0.05, format="csr", random_state=0, dtype=np.float32)
    Y = sp.random(3000, 300, density=0.01, format="csr", random_state=1, dtype=np.float32)
    Y.data[:] = 1
    path = sys.argv[1]
    XRLinearClassifier(threshold=0.0).fit(X, Y).save(path)
    mapped = XRLinearClassifier.load(path, mmap=True)
    mapped.predict_topk(X[:50])
    model_file = os.path.join(path, "model.bin")
    print("size", os.path.getsize(model_file))
    os.truncate(model_file, 4096)
    for name, call in [("batch", lambda: mapped.predict_topk(X[:50])), ("one row", lambda: mapped.predict_topk(X[:1])),
                       ("verify", mapped.verify), ("save", lambda: mapped.save(path + "-copy")),
                       ("pickle", lambda: __import__("pickle").dumps(mapped))]:
        try:
            call()
            print(name, "no error")
        except ModelFormatError as e:
            print(name, "ModelFormatError", "truncated" in str(e))
    print("copy written", os.path.exists(os.path.join(path + "-copy", "model.bin")))
""")


@pytest.mark.skipif(sys.platform != "linux", reason="the guard of truncated maps is Linux's (SIGBUS handler)")
def test_a_file_truncated_under_its_map_raises_instead_of_crashing(tmp_path):
    """Another program truncating a mapped model file: the reads of the missing pages would kill
    the process (SIGBUS); every use of the model raises ModelFormatError instead, and nothing
    computed from the missing pages is returned or written."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", TRUNCATED, str(tmp_path / "m")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert int(lines[0].split()[1]) > 16 * 4096, "the model file is too small to lose pages"
    assert lines[1:] == [f"{name} ModelFormatError True" for name in ("batch", "one row", "verify", "save", "pickle")
                         ] + ["copy written False"], done.stdout


SERVER = textwrap.dedent("""
    import sys
    import scipy.sparse as sp
    from pecos_rs import XRLinearClassifier
    clf = XRLinearClassifier.load(sys.argv[1], mmap=True)
    X = sp.random(20, clf.n_features_in_, density=0.3, format="csr", random_state=0, dtype="float32")
    clf.predict_topk(X)
    print("ready", flush=True)
    sys.stdin.readline()
""")


def mapping_of(pid: int, path: Path) -> dict[str, int]:
    """The kB counters of `path`'s mapping in process `pid` (from /proc/pid/smaps)."""
    counters: dict[str, int] = {}
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line: range perms offset dev inode [path]
            inside = len(fields) == 6 and fields[5] == str(path)
        elif inside and fields[0].endswith(":") and len(fields) == 3:
            counters[fields[0][:-1]] = counters.get(fields[0][:-1], 0) + int(fields[1])
    return counters


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/<pid>/smaps")
def test_two_processes_share_one_mapping(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    model_file = (tmp_path / "m" / "model.bin").resolve()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    servers = [subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / "m")], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for s in servers:
            assert s.stdout.readline().strip() == "ready"
        for s in servers:
            mapping = mapping_of(s.pid, model_file)
            assert mapping.get("Rss", 0) > 0, f"the model file is not mapped: {mapping}"
            # Every resident page of the file is mapped by both processes (none private; the pages
            # may still be dirty in the page cache after the save), so each process's
            # proportional share is half of them.
            shared = mapping["Shared_Clean"] + mapping["Shared_Dirty"]
            private = mapping["Private_Clean"] + mapping["Private_Dirty"]
            assert (shared, private) == (mapping["Rss"], 0), str(mapping)
            assert abs(mapping["Pss"] - mapping["Rss"] / 2) <= 1, str(mapping)
    finally:
        for s in servers:
            s.communicate("\n", timeout=30)
    assert [s.returncode for s in servers] == [0, 0]


def test_autocompleter_passes_mmap_through(tmp_path):
    from pecos_rs.qac import SessionAutocompleter

    queries = ["weather today", "weather tomorrow", "news", "new york times", "recipes"] * 4
    SessionAutocompleter(max_leaf_size=2).fit(queries[1:] + [""], [q[:2] for q in queries], queries).save(tmp_path / "q")
    mapped = SessionAutocompleter.load(tmp_path / "q", mmap=True)
    read = SessionAutocompleter.load(tmp_path / "q")
    assert mapped.model_.model_.is_memory_mapped and not read.model_.model_.is_memory_mapped
    for prev, prefix in (("news", "wea"), ("", "re"), ("recipes", "n")):
        assert mapped.suggest(prev, prefix, k=3) == read.suggest(prev, prefix, k=3)

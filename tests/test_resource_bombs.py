"""No resource bombs: a small artifact file whose header declares huge counts (billions of rows,
labels, n-grams or queries) or a huge header is refused with ModelFormatError, quickly, before
anything is allocated from those counts (every loader checks that the file is exactly as long as
its header says first)."""

from __future__ import annotations

import json
import struct
import time
import zlib

import numpy as np
import pytest

from helpers import make_planted
from pecos_rs import ModelFormatError, XRLinearClassifier, _pecos_rs
from pecos_rs.qac import CompletionIndex
from pecos_rs.text import WordTfidf

PREFIX = 8 + 4 + 8  # magic, format version u32, header length u64


def artifacts(tmp_path):
    """(name, file, loader) of one saved file of every kind."""
    X, Y = make_planted(n_rows=60, n_features=20, n_labels=10, seed=1)
    XRLinearClassifier(n_splits=2, max_leaf_size=3).fit(X, Y).model_.save(str(tmp_path / "model.bin"))
    WordTfidf().fit(["drill bits", "garden hose", "drill"]).save(tmp_path / "vocab.bin")
    CompletionIndex().fit(["drill", "drill bits", "garden hose"]).save(tmp_path / "completion")
    return [("model", tmp_path / "model.bin", _pecos_rs.XLinearModel.load),
            ("vocabulary", tmp_path / "vocab.bin", lambda p: WordTfidf.load(p)),
            ("completion index", tmp_path / "completion", lambda p: CompletionIndex.load(p))]


def rewrite(data: bytes, header: bytes | None = None, header_len: int | None = None) -> bytes:
    """`data` with another header (and its length), the checksum recomputed so that only the
    declared counts are wrong."""
    (length,) = struct.unpack_from("<Q", data, 12)
    old_header = data[PREFIX:PREFIX + length]
    header = old_header if header is None else header
    body = data[PREFIX + length:-4]
    payload = data[:12] + struct.pack("<Q", len(header) if header_len is None else header_len) + header + body
    return payload + struct.pack("<I", zlib.crc32(payload))


def inflate_counts(value, factor):
    """Every non-negative integer in a JSON value multiplied by `factor`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value * factor if value > 0 else value
    if isinstance(value, list):
        return [inflate_counts(v, factor) for v in value]
    if isinstance(value, dict):
        return {k: inflate_counts(v, factor) for k, v in value.items()}
    return value


def the_file(path):
    """The artifact file itself (a completion index is saved as a file too)."""
    return path if path.is_file() else next(p for p in path.iterdir() if p.suffix == ".bin")


@pytest.mark.parametrize("factor", [10**9, 2**40])
def test_huge_declared_counts_are_refused_before_allocation(tmp_path, factor):
    for name, path, load in artifacts(tmp_path):
        file = the_file(path)
        data = file.read_bytes()
        (length,) = struct.unpack_from("<Q", data, 12)
        header = json.loads(data[PREFIX:PREFIX + length])
        bomb = json.dumps(inflate_counts(header, factor)).encode()
        assert bomb != json.dumps(header).encode(), name  # the header declares counts
        file.write_bytes(rewrite(data, bomb))
        start = time.perf_counter()
        with pytest.raises(ModelFormatError):
            load(path)
        assert time.perf_counter() - start < 2, name
        assert file.stat().st_size < 100_000  # a small file, so nothing large could be justified


def test_a_huge_declared_header_is_refused(tmp_path):
    for name, path, load in artifacts(tmp_path):
        file = the_file(path)
        data = file.read_bytes()
        for header_len in (2**62, len(data)):
            file.write_bytes(rewrite(data, header_len=header_len))
            with pytest.raises(ModelFormatError):
                load(path)
        file.write_bytes(rewrite(data))
        load(path)  # rewritten with its own header it still loads: the rewriting itself is sound

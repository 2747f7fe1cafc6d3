"""Writes the seed inputs of the fuzz targets into fuzz/corpus/<target>/ with the Python API:
small real artifacts (a model with a two-layer tree, also with compact weights, word / character / position-weighted /
hashing featurizers, a completion index, the neighbour index of a text model) and a few structured inputs for the
other targets.

Run from the repository root with the built package importable:
    python fuzz/scripts/make_seeds.py
"""

import pathlib
import struct
import tempfile

import numpy as np
import scipy.sparse as sp

from pecos_rs import ClusterChain, TextXRLinear, XRLinearClassifier
from pecos_rs.qac import CompletionIndex
from pecos_rs.text import CharTfidf, PositionWeightedCharTfidf, WordTfidf

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "corpus"
DOCS = ["usb cable for phone", "phone case", "wireless charger pad", "usb c hub",
        "caf\u00e9 au lait", "\u65e5\u672c\u8a9e \u30c6\u30ad\u30b9\u30c8"]


def write(target: str, name: str, data: bytes) -> None:
    (CORPUS / target).mkdir(parents=True, exist_ok=True)
    (CORPUS / target / name).write_bytes(data)


def model_seeds(tmp: pathlib.Path) -> None:
    rng = np.random.default_rng(0)
    X = sp.random(40, 12, density=0.3, format="csr", random_state=1, dtype=np.float32)
    Y = sp.csr_matrix((rng.random((40, 6)) < 0.3).astype(np.float32))
    for name, params in [("tree", dict(n_splits=2, max_leaf_size=2)),
                         ("flat", dict(n_splits=8, max_leaf_size=100))]:
        clf = XRLinearClassifier(**params, threshold=0.05, random_state=0).fit(X, Y)
        clf.save(tmp / name)
        write("model_file", f"seed-{name}.bin", (tmp / name / "model.bin").read_bytes())
        for dtype in ("float16", "int8"):
            clf.compact(dtype).save(tmp / f"{name}-{dtype}")
            write("model_file", f"seed-{name}-{dtype}.bin", (tmp / f"{name}-{dtype}" / "model.bin").read_bytes())


def vocab_seeds(tmp: pathlib.Path) -> None:
    featurizers = {
        "word": WordTfidf(ngram_range=(1, 2)),
        "char": CharTfidf(ngram_range=(2, 3)),
        "position": PositionWeightedCharTfidf(ngram_range=(1, 2)),
        "hashing": WordTfidf(n_features=64),
    }
    for name, featurizer in featurizers.items():
        featurizer.fit(DOCS).save(tmp / f"{name}.bin")
        write("vocab_file", f"seed-{name}.bin", (tmp / f"{name}.bin").read_bytes())


def completion_seeds(tmp: pathlib.Path) -> None:
    index = CompletionIndex().fit(["ebay", "google", "gmail", "google", "goo", "caf\u00e9", ""])
    index.save(tmp / "index.bin")
    write("completion_file", "seed-index.bin", (tmp / "index.bin").read_bytes())


def neighbour_seeds(tmp: pathlib.Path) -> None:
    labels = [["cables"], ["cases"], ["chargers"], ["cables", "hubs"], ["food"], ["books"]]
    for name, max_df in (("all-features", 1.0), ("max-df", 2)):
        model = TextXRLinear(neighbour_max_df=max_df).fit(DOCS + DOCS[:2], labels + [["cables"], []])
        model.neighbour_index_.save(str(tmp / f"{name}.bin"))
        write("neighbour_file", f"seed-{name}.bin", (tmp / f"{name}.bin").read_bytes())


def chain_seeds() -> None:
    # n_layers, then per layer a length byte and one parent byte per node, then the bias byte.
    write("cluster_chain", "seed-two-layers", bytes([2, 2, 0, 0, 5, 0, 1, 0, 1, 1, 200]))
    write("cluster_chain", "seed-three-layers", bytes([3, 1, 0, 3, 0, 0, 0, 4, 2, 1, 0, 2, 7]))


def csr_seeds() -> None:
    # flags 0: n_rows, n_cols, then row increments (indptr), column bytes, i16 values.
    write("csr_parts", "seed-small", bytes([0, 3, 5, 2, 0, 1]) + bytes([0, 4, 1]) +
          struct.pack("<3h", 64, -32, 128))
    write("csr_parts", "seed-wide", bytes([2]) + bytes([2]) + struct.pack("<Q", (1 << 31) - 1) +
          bytes([1, 1]) + bytes([7, 9]) + struct.pack("<2h", 1, 2))


def text_seeds() -> None:
    # kind, min_n, width, pattern, markers, decay, hashing, weighting, bounds, split, documents.
    docs = "\n".join(DOCS).encode()
    write("text_analyzers", "seed-word", bytes([0, 1, 1, 0, 0, 0, 0, 0x0c, 0, 1]) + docs)
    write("text_analyzers", "seed-char-in-words", bytes([1, 2, 1, 0, 0x05, 0, 0, 0x1c, 0, 2]) + docs)
    write("text_analyzers", "seed-chars", bytes([2, 1, 2, 0, 0, 1, 0, 0x0e, 0, 3]) + docs)
    write("text_analyzers", "seed-hashing", bytes([2, 3, 0, 0, 0, 3, 100, 1, 64, 0, 0, 0, 0]) + docs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        model_seeds(tmp)
        vocab_seeds(tmp)
        completion_seeds(tmp)
        neighbour_seeds(tmp)
    chain_seeds()
    csr_seeds()
    text_seeds()


if __name__ == "__main__":
    main()

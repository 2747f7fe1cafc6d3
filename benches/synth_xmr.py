"""Synthetic extreme multi-label (XMR) problems of any size, streamed to disk.

Writes X.trn.npz, Y.trn.npz, X.tst.npz, Y.tst.npz (scipy CSR, float32, the layout of the real
sets in ../shared/data) and meta.json (the parameters and the counts) into --out.

The generative model, chosen to be learnable the way real XMR data is:

* Labels sit at the leaves of a latent tree of `--branching` children per node. Every node has a
  topic: `--topic-words` feature slots, each slot a feature drawn from a power law over the
  vocabulary (`--topic-exponent`); a label's own slots are its specific words, its ancestors'
  slots are shared with its siblings, so clustering the labels helps, as it does on real data.
* Label popularity is a power law (`--label-exponent`) over a random order of the labels. A row's
  first label is a popular one, except on a share labels/train_rows of the rows, where it is drawn
  uniformly: in train exactly every label once (so every label has a training positive), in test
  independently at the same rate. A row has 1 + Poisson(`--labels-per-row` - 1) labels; the
  extra ones come, with probability `--near-share`, from the first label's subtree (deeper
  levels likelier), so labels co-occur within the hierarchy, else from the whole popularity law.
* A row has a log-normal number of word tokens (mean `--tokens-per-row`). A share
  `--noise-share` of them are background words (a Zipf law over the vocabulary, exponent
  `--noise-exponent`), the others come from the topic of one of the row's labels or one of its
  ancestors (level weights decaying by `--level-decay` per step up), a slot chosen by a Zipf law
  over the slots. Counts become TF-IDF weights, (1 + ln tf) * idf with the smoothed idf of the
  training split, and rows are L2-normalised.

Feature and label ids are random permutations of the popularity and tree orders, as a real
vocabulary's ids are unrelated to frequency.

Every random draw is keyed by (seed, split, block of BLOCK_ROWS rows), and node topics by a hash
of (seed, level, node, slot), so the same parameters give byte-identical files whatever
`--chunk-rows` is. Rows are generated and appended to raw files chunk by chunk, the training
counts rewritten in place as TF-IDF once the document frequencies are known, and each raw file
is streamed into the .npz as a .npy member: memory holds one chunk plus O(labels + features)
arrays, never the matrix.

Usage: python benches/synth_xmr.py --labels 100000 --seed 0 --out DIR [options]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np

BLOCK_ROWS = 256
# Fixed zip timestamps keep the archives byte-identical between runs.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SPLITS = {"trn": 0, "tst": 1}


def _param(default, help_text: str):
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class SynthParams:
    labels: int = _param(0, "number of labels (required)")
    seed: int = _param(0, "random seed")
    train_rows: int = _param(0, "training rows (0: 3 x labels)")
    test_rows: int = _param(0, "test rows (0: train rows / 4)")
    features: int = _param(0, "vocabulary size (0: 1000 x sqrt(labels), at most 2,000,000)")
    branching: int = _param(16, "children per node of the latent label tree")
    labels_per_row: float = _param(5.5, "mean label draws per row (1 + Poisson)")
    label_exponent: float = _param(0.8, "power-law exponent of label popularity")
    near_share: float = _param(0.8, "share of a row's extra labels drawn from its first label's subtree")
    tokens_per_row: float = _param(100.0, "mean word tokens per row (log-normal)")
    noise_share: float = _param(0.75, "share of tokens that are background words")
    noise_exponent: float = _param(1.0, "Zipf exponent of the background words over the vocabulary")
    topic_words: int = _param(30, "feature slots in the topic of every tree node")
    topic_exponent: float = _param(0.8, "power-law exponent of topic words over the vocabulary")
    level_decay: float = _param(0.8, "weight ratio of a topic level to the level below it")

    def resolved(self, chunk_rows: int = BLOCK_ROWS) -> SynthParams:
        """The parameters with the size defaults filled in and every value (and `chunk_rows`)
        checked."""
        p = dataclasses.replace(
            self,
            train_rows=self.train_rows or 3 * self.labels,
            features=self.features or min(2_000_000, round(1000 * math.sqrt(self.labels))),
        )
        p = dataclasses.replace(p, test_rows=self.test_rows or max(1, p.train_rows // 4))
        checks = [
            (p.labels >= 2, "labels must be >= 2"),
            (p.train_rows >= p.labels, "train_rows must be >= labels (every label gets a positive)"),
            (p.test_rows >= 1, "test_rows must be >= 1"),
            (p.features >= 2, "features must be >= 2"),
            (p.branching >= 2, "branching must be >= 2"),
            (p.labels_per_row >= 1, "labels_per_row must be >= 1"),
            (p.tokens_per_row >= 1, "tokens_per_row must be >= 1"),
            (p.topic_words >= 1, "topic_words must be >= 1"),
            (0 <= p.near_share <= 1 and 0 <= p.noise_share < 1,
             "near_share must be in [0, 1] and noise_share in [0, 1)"),
            (0 < p.level_decay <= 1, "level_decay must be in (0, 1]"),
            (min(p.label_exponent, p.noise_exponent, p.topic_exponent) >= 0,
             "exponents must be >= 0"),
            (0 <= p.seed < 2**63, "seed must be in [0, 2**63)"),
            (chunk_rows >= BLOCK_ROWS and chunk_rows % BLOCK_ROWS == 0,
             f"chunk_rows must be a positive multiple of {BLOCK_ROWS}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return p


# ------------------------------------------------------------------------------- random helpers


def power_law_rank(u: np.ndarray, n: int, exponent: float) -> np.ndarray:
    """Ranks in [0, n) with density proportional to (rank + 1) ** -exponent, from uniforms `u`
    in [0, 1) (the inverse of the continuous distribution function)."""
    if exponent == 1.0:
        x = np.exp(u * math.log(n + 1)) - 1
    else:
        e = 1.0 - exponent
        x = (1 + u * ((n + 1) ** e - 1)) ** (1 / e) - 1
    return np.minimum(x.astype(np.int64), n - 1)


def hash_unit(keys: np.ndarray, seed: int) -> np.ndarray:
    """Uniforms in [0, 1) from non-negative int64 `keys` (splitmix64 of key xor seed): the same
    key and seed always give the same number, with no table to hold."""
    z = keys.astype(np.uint64) ^ np.uint64(seed)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def block_rng(seed: int, split: str, block: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], block]))


# ------------------------------------------------------------------------------ the label space


class LabelSpace:
    """The latent tree, label popularity and id permutations: O(labels + features) memory.

    Labels are handled by tree position p in [0, labels); the node of p at level h (1 = under the
    root, `depth` = the label itself) is p // level_size[h-1]. Output ids are permutations."""

    def __init__(self, p: SynthParams):
        self.p = p
        rng = np.random.default_rng(np.random.SeedSequence([p.seed, 2]))
        self.depth = max(1, math.ceil(math.log(p.labels) / math.log(p.branching) - 1e-9))
        self.level_size = np.array(
            [p.branching ** (self.depth - h) for h in range(1, self.depth + 1)], dtype=np.int64
        )
        popularity_rank = rng.permutation(p.labels)
        weights = (popularity_rank + 1.0) ** -p.label_exponent
        self.cum_weight = np.concatenate([[0.0], np.cumsum(weights)])
        self.label_id = rng.permutation(p.labels).astype(np.int64)
        self.coverage_order = rng.permutation(p.labels).astype(np.int64)
        self.feature_id = rng.permutation(p.features).astype(np.int64)
        # Level h gets weight level_decay ** (depth - h): the label's own words weigh most.
        level_weights = p.level_decay ** np.arange(self.depth - 1, -1, -1, dtype=np.float64)
        self.level_cdf = np.cumsum(level_weights) / level_weights.sum()
        # The subtree levels a co-occurring label is drawn from: 1 .. depth-1 (not the label).
        near = level_weights[:-1]
        self.near_cdf = np.cumsum(near) / near.sum() if near.size else np.ones(1)
        self.topic_seed = int(hash_unit(np.array([p.seed]), 0x5EED)[0] * 2.0**53)

    def popular_in(self, lo: np.ndarray, hi: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Positions drawn by popularity within [lo, hi), from uniforms `u`."""
        c = self.cum_weight
        target = c[lo] + u * (c[hi] - c[lo])
        pos = np.searchsorted(c, target, side="right") - 1
        return np.clip(pos, lo, hi - 1)

    def node_range(self, pos: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = self.level_size[level - 1]
        lo = pos // size * size
        return lo, np.minimum(lo + size, self.p.labels)

    def topic_features(self, pos: np.ndarray, level: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """Feature ids of slot `slot` of the topic of the level-`level` ancestor of `pos`."""
        node = pos // self.level_size[level - 1]
        key = (node * (self.depth + 1) + level) * self.p.topic_words + slot
        rank = power_law_rank(hash_unit(key, self.topic_seed), self.p.features, self.p.topic_exponent)
        return self.feature_id[rank]


# ------------------------------------------------------------------------------- row generation


def generate_block(space: LabelSpace, split: str, block: int, n_rows: int, n_total: int):
    """Rows block*BLOCK_ROWS .. + n_rows of a split: (label counts per row, sorted label ids,
    feature counts per row, sorted feature ids, term counts)."""
    p = space.p
    rng = block_rng(p.seed, split, block)
    rows = np.arange(block * BLOCK_ROWS, block * BLOCK_ROWS + n_rows, dtype=np.int64)
    L = p.labels

    # First label: uniform on a share L / train_rows of rows (train: each label exactly once).
    anchor = space.popular_in(np.zeros(n_rows, np.int64), np.full(n_rows, L), rng.random(n_rows))
    if split == "trn":
        slot_end = (rows + 1) * L // n_total
        covered = slot_end > rows * L // n_total
        anchor[covered] = space.coverage_order[slot_end[covered] - 1]
    else:
        covered = rng.random(n_rows) < L / p.train_rows
        anchor[covered] = rng.integers(0, L, covered.sum())

    n_extra = rng.poisson(p.labels_per_row - 1, n_rows)
    extra_row = np.repeat(np.arange(n_rows), n_extra)
    extra_anchor = anchor[extra_row]
    near = rng.random(extra_row.size) < p.near_share
    level = np.searchsorted(space.near_cdf, rng.random(extra_row.size), side="right") + 1
    level = np.minimum(level, max(1, space.depth - 1))
    lo, hi = space.node_range(extra_anchor, level)
    lo = np.where(near, lo, 0)
    hi = np.where(near, hi, L)
    extra = space.popular_in(lo, hi, rng.random(extra_row.size))

    label_row = np.concatenate([np.arange(n_rows), extra_row])
    label_pos = np.concatenate([anchor, extra])
    label_keys = np.unique(label_row * L + label_pos)  # one (row, position) pair each
    label_row, label_pos = label_keys // L, label_keys % L
    labels_per_row = np.bincount(label_row, minlength=n_rows)
    label_start = np.concatenate([[0], np.cumsum(labels_per_row)[:-1]])

    # Tokens: log-normal length (sigma 0.6) with mean tokens_per_row, at least one.
    sigma = 0.6
    lengths = rng.lognormal(math.log(p.tokens_per_row) - sigma**2 / 2, sigma, n_rows)
    lengths = np.maximum(1, np.rint(lengths)).astype(np.int64)
    token_row = np.repeat(np.arange(n_rows), lengths)
    n_tokens = token_row.size
    noise = rng.random(n_tokens) < p.noise_share
    pick = (rng.random(n_tokens) * labels_per_row[token_row]).astype(np.int64)
    token_label = label_pos[label_start[token_row] + pick]
    token_level = np.searchsorted(space.level_cdf, rng.random(n_tokens), side="right") + 1
    token_level = np.minimum(token_level, space.depth)
    slot = power_law_rank(rng.random(n_tokens), p.topic_words, 1.0)
    noise_rank = power_law_rank(rng.random(n_tokens), p.features, p.noise_exponent)
    feature = np.where(
        noise,
        space.feature_id[noise_rank],
        space.topic_features(token_label, token_level, slot),
    )

    feature_keys, counts = np.unique(token_row * p.features + feature, return_counts=True)
    feature_row = feature_keys // p.features
    label_ids = space.label_id[label_pos]
    # Output label ids are permuted, so re-sort each row's labels by id.
    order = np.lexsort((label_ids, label_row))
    return (
        labels_per_row,
        label_ids[order],
        np.bincount(feature_row, minlength=n_rows),
        feature_keys % p.features,
        counts,
    )


# ---------------------------------------------------------------------------------- the writers


class RawCsr:
    """A CSR matrix appended row chunk by row chunk to raw files indptr/indices/data under `tmp`."""

    def __init__(self, tmp: Path, name: str, n_rows: int, n_cols: int):
        self.paths = {k: tmp / f"{name}.{k}.raw" for k in ("indptr", "indices", "data")}
        self.dtypes = {"indptr": np.int64, "indices": np.int32, "data": np.float32}
        self.shape = (n_rows, n_cols)
        self.nnz = 0
        self.files = {k: open(path, "wb") for k, path in self.paths.items()}
        self.files["indptr"].write(np.zeros(1, np.int64).tobytes())

    def append(self, row_nnz: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        ptr = self.nnz + np.cumsum(row_nnz, dtype=np.int64)
        self.files["indptr"].write(ptr.tobytes())
        self.files["indices"].write(indices.astype(np.int32).tobytes())
        self.files["data"].write(data.astype(np.float32).tobytes())
        self.nnz = int(ptr[-1]) if ptr.size else self.nnz

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        dtype = np.dtype(self.dtypes[key])
        return np.fromfile(self.paths[key], dtype, stop - start, offset=start * dtype.itemsize)

    def rewrite_data(self, chunk_rows: int, transform) -> None:
        """Replaces data chunk by chunk with transform(row_nnz, indices, data)."""
        with open(self.paths["data"], "r+b") as f:
            for r0 in range(0, self.shape[0], chunk_rows):
                r1 = min(r0 + chunk_rows, self.shape[0])
                ptr = self.read("indptr", r0, r1 + 1)
                lo, hi = int(ptr[0]), int(ptr[-1])
                data = transform(np.diff(ptr), self.read("indices", lo, hi), self.read("data", lo, hi))
                f.seek(lo * 4)
                f.write(np.asarray(data, np.float32).tobytes())

    def write_npz(self, path: Path) -> None:
        """Streams the raw files into a scipy.sparse.save_npz-compatible archive (uncompressed)."""
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, raw in self.paths.items():
                dtype = np.dtype(self.dtypes[key])
                with zf.open(zipfile.ZipInfo(f"{key}.npy", ZIP_DATE), "w", force_zip64=True) as f:
                    length = raw.stat().st_size // dtype.itemsize
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                            "shape": (length,)})
                    with open(raw, "rb") as src:
                        shutil.copyfileobj(src, f, 1 << 24)
            for key, value in (("format", np.array(b"csr")), ("shape", np.array(self.shape, np.int64))):
                with zf.open(zipfile.ZipInfo(f"{key}.npy", ZIP_DATE), "w") as f:
                    np.lib.format.write_array(f, value, allow_pickle=False)
        for raw in self.paths.values():
            raw.unlink()


# ------------------------------------------------------------------------------------ the driver


def tfidf(idf: np.ndarray):
    """The row transform: (1 + ln tf) * idf, each row L2-normalised."""

    def transform(row_nnz: np.ndarray, indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
        w = (1.0 + np.log(counts.astype(np.float64))) * idf[indices]
        row = np.repeat(np.arange(row_nnz.size), row_nnz)
        norms = np.sqrt(np.bincount(row, weights=w * w, minlength=row_nnz.size))
        return w / norms[row]

    return transform


def generate_split(space: LabelSpace, split: str, n_rows: int, chunk_rows: int, tmp: Path):
    """Appends the rows of a split, as raw term counts, to a RawCsr for X and one for Y; returns
    them with the document frequency of every feature."""
    p = space.p
    X = RawCsr(tmp, f"X.{split}", n_rows, p.features)
    Y = RawCsr(tmp, f"Y.{split}", n_rows, p.labels)
    df = np.zeros(p.features, np.int64)
    n_blocks = -(-n_rows // BLOCK_ROWS)
    per_chunk = chunk_rows // BLOCK_ROWS
    for b0 in range(0, n_blocks, per_chunk):
        parts = [
            generate_block(space, split, b, min(BLOCK_ROWS, n_rows - b * BLOCK_ROWS), n_rows)
            for b in range(b0, min(b0 + per_chunk, n_blocks))
        ]
        y_nnz, y_idx, x_nnz, x_idx, counts = (np.concatenate(a) for a in zip(*parts))
        Y.append(y_nnz, y_idx, np.ones(y_idx.size, np.float32))
        X.append(x_nnz, x_idx, counts)
        df += np.bincount(x_idx, minlength=p.features)
    X.close()
    Y.close()
    return X, Y, df


def generate(params: SynthParams, out: Path, chunk_rows: int = 8192) -> dict:
    """Writes the four .npz files and meta.json into `out`; returns the meta dict."""
    p = params.resolved(chunk_rows)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".synth-tmp"
    tmp.mkdir(exist_ok=True)
    space = LabelSpace(p)

    X_trn, Y_trn, df = generate_split(space, "trn", p.train_rows, chunk_rows, tmp)
    idf = np.log((1.0 + p.train_rows) / (1.0 + df)) + 1.0
    X_tst, Y_tst, _ = generate_split(space, "tst", p.test_rows, chunk_rows, tmp)
    for X in (X_trn, X_tst):
        X.rewrite_data(chunk_rows, tfidf(idf))
    for name, M in (("X.trn", X_trn), ("Y.trn", Y_trn), ("X.tst", X_tst), ("Y.tst", Y_tst)):
        M.write_npz(out / f"{name}.npz")
    tmp.rmdir()

    meta = {
        "generator": "benches/synth_xmr.py",
        "params": dataclasses.asdict(p),
        "block_rows": BLOCK_ROWS,
        "tree_depth": space.depth,
        "nnz": {"X.trn": X_trn.nnz, "Y.trn": Y_trn.nnz, "X.tst": X_tst.nnz, "Y.tst": Y_tst.nnz},
        "features_used_in_train": int((df > 0).sum()),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--chunk-rows", type=int, default=8192,
                    help=f"rows generated and written at a time, a multiple of {BLOCK_ROWS} "
                    "(memory only: the output does not depend on it)")
    for field in dataclasses.fields(SynthParams):
        ap.add_argument("--" + field.name.replace("_", "-"), type=type(field.default),
                        default=field.default, required=field.name == "labels",
                        help=field.metadata["help"])
    args = vars(ap.parse_args(argv))
    out, chunk_rows = args.pop("out"), args.pop("chunk_rows")
    try:
        params = SynthParams(**args).resolved(chunk_rows)
    except ValueError as exc:
        ap.error(str(exc))
    start = time.perf_counter()
    meta = generate(params, out, chunk_rows)
    from proc_stats import peak_rss_mb  # benches/ is on sys.path when run as a script

    p = meta["params"]
    print(f"{p['labels']:,} labels, {p['features']:,} features, {p['train_rows']:,} train / "
          f"{p['test_rows']:,} test rows, X.trn nnz {meta['nnz']['X.trn']:,} "
          f"({meta['nnz']['X.trn'] / p['train_rows']:.1f}/row), Y.trn nnz {meta['nnz']['Y.trn']:,}: "
          f"{time.perf_counter() - start:.1f} s, peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()

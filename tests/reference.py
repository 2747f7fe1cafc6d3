"""Pure-numpy references for the tests: beam search, exhaustive scoring, the binary linear solvers,
and a reader/writer of the model file format (to build models with chosen weights).

Nothing here imports the Rust extension except for the list of post-processor names, so a bug in the
library cannot leak into the expected values.

Conventions (PECOS, spec sections 1.4 and 2.1):

* a layer's weights are a dense ``(d + 1, K)`` array ``W`` (the last row holds the bias weights), so the
  raw score of node ``c`` for query ``x`` is ``W[:d, c] . x + bias * W[d, c]``;
* ``parents[t][c]`` is the parent (a node of layer ``t - 1``, or the root 0) of node ``c`` of layer ``t``.
"""

from __future__ import annotations

import json
import re
import struct
import zlib

import numpy as np
import scipy.optimize
import scipy.sparse as sp

POST_PROCESSORS = (
    "noop",
    "sigmoid",
    "log-sigmoid",
    "l1-hinge",
    "l2-hinge",
    "l3-hinge",
    "l4-hinge",
    "log-l1-hinge",
    "log-l2-hinge",
    "log-l3-hinge",
    "log-l4-hinge",
)

# ---------------------------------------------------------------------------------- post-processors


def _parse(name: str) -> tuple[str, int]:
    if name in ("noop", "sigmoid", "log-sigmoid"):
        return name, 0
    m = re.fullmatch(r"(log-)?l([1-4])-hinge", name)
    if not m:
        raise ValueError(f"unknown post-processor {name!r}")
    return ("log-hinge" if m.group(1) else "hinge"), int(m.group(2))


def transform(name: str, v):
    """The score transform, in float64."""
    kind, p = _parse(name)
    v = np.asarray(v, dtype=np.float64)
    if kind == "noop":
        return v.copy()
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-v))
    if kind == "log-sigmoid":
        return -np.logaddexp(0.0, -v)
    hinge = np.maximum(0.0, 1.0 - v) ** p
    return np.exp(-hinge) if kind == "hinge" else -hinge


def combine(name: str, score, parent_score):
    """Combines a transformed score with its parent's score (same dtype as the inputs)."""
    kind, _ = _parse(name)
    if kind == "noop":
        return score
    if kind in ("sigmoid", "hinge"):
        return score * parent_score
    return score + parent_score


# ---------------------------------------------------------------------------------------- layers


def dense_layer(W) -> np.ndarray:
    """A layer's weights as a dense float32 ``(d + 1, K)`` array."""
    if sp.issparse(W):
        W = W.toarray()
    return np.ascontiguousarray(W, dtype=np.float32)


def children_lists(parents: np.ndarray, n_parents: int) -> list[np.ndarray]:
    """Children of each parent, in increasing id order (the candidate order of beam search)."""
    parents = np.asarray(parents)
    order = np.argsort(parents, kind="stable")
    bounds = np.searchsorted(parents[order], np.arange(n_parents + 1))
    return [order[bounds[p] : bounds[p + 1]] for p in range(n_parents)]


def _raw_scores_f32(W: np.ndarray, x: np.ndarray, bias: float, children: np.ndarray) -> np.ndarray:
    """Raw scores of `children`, computed in float32 in the same order as the Rust kernel
    (bias term first, then the query's nonzero features in increasing order, skipping zero weights),
    so that they are bit-identical to it."""
    d = W.shape[0] - 1
    raw = np.float32(bias) * W[d, children]
    for f in np.flatnonzero(x):
        w = W[f, children]
        raw = np.where(w != 0, raw + np.float32(x[f]) * w, raw).astype(np.float32)
    return raw.astype(np.float32)


def _exact_tie(kind, raw_a, raw_b, parent_a, parent_b) -> bool:
    """Whether two candidates with equal reference scores also tie exactly in any float32
    implementation: identical inputs, or both hinge transforms saturated (``v >= 1`` gives exactly
    1 or 0) under the same parent score."""
    if parent_a != parent_b:
        return False
    if raw_a == raw_b:
        return True
    return kind in ("hinge", "log-hinge") and raw_a >= 1 and raw_b >= 1


def beam_search(
    weights_per_layer,
    parents_per_layer,
    x_dense,
    bias,
    beam_size,
    topk,
    post_processor,
    *,
    tie_tol=1e-6,
    return_ambiguous=False,
):
    """PECOS beam search for one query (spec 2.1), as ``(labels int64 (topk,), scores float32 (topk,))``
    padded with -1 / 0.

    Raw scores are computed in float32 exactly like the Rust kernel; transforms in float64 rounded to
    float32; combinations in float32. Candidates are ordered by parent beam order then child id, and a
    stable sort by descending score keeps the earlier candidate among equal scores. Above the last
    layer, clusters without children are not candidates (they lead to no label).

    With ``return_ambiguous=True`` also returns an ambiguity level: 2 if a beam cut (at any layer, the
    last included) fell between two candidates whose scores are within `tie_tol` without being an exact
    tie (see :func:`_exact_tie`), where a 1-ulp difference in ``exp`` may legitimately keep the other
    candidate and change everything below; 1 if only the order inside a kept beam has such near-ties
    (the result may be permuted among near-tied scores); 0 if the result is exactly determined.
    """
    x = np.asarray(x_dense, dtype=np.float32).ravel()
    Ws = [dense_layer(W) for W in weights_per_layer]
    depth = len(Ws)
    kind, _ = _parse(post_processor)
    beam_nodes = np.zeros(1, dtype=np.int64)
    beam_scores = np.ones(1, dtype=np.float32)
    ambiguous = 0
    n_parents = 1
    for t, (W, parents) in enumerate(zip(Ws, parents_per_layer)):
        parents = np.asarray(parents, dtype=np.int64)
        kids = children_lists(parents, n_parents)
        keep = topk if t + 1 == depth else beam_size
        if t + 1 < depth:
            n_grandchildren = np.bincount(np.asarray(parents_per_layer[t + 1], np.int64), minlength=parents.size)
        nodes, scores, raws, pscores = [], [], [], []
        for node, pscore in zip(beam_nodes, beam_scores):
            ch = kids[node]
            if t + 1 < depth:
                ch = ch[n_grandchildren[ch] > 0]
            raw = _raw_scores_f32(W, x, bias, ch)
            s = transform(post_processor, raw).astype(np.float32)
            if t > 0:
                s = combine(post_processor, s, np.float32(pscore)).astype(np.float32)
            nodes.append(ch)
            scores.append(s)
            raws.append(raw)
            pscores.append(np.full(ch.size, pscore if (t > 0 and kind != "noop") else 0, np.float32))
        nodes = np.concatenate(nodes) if nodes else np.zeros(0, np.int64)
        scores = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        raws = np.concatenate(raws) if raws else np.zeros(0, np.float32)
        pscores = np.concatenate(pscores) if pscores else np.zeros(0, np.float32)
        order = np.argsort(-scores.astype(np.float64), kind="stable")

        def close(a, b):
            return abs(float(scores[a]) - float(scores[b])) <= tie_tol * max(1.0, abs(float(scores[a])))

        def near_tie(a, b):
            """Equal up to `tie_tol` but not provably an exact tie in every float32 implementation."""
            if not close(a, b):
                return False
            if scores[a] != scores[b]:
                return True
            return not _exact_tie(kind, raws[a], raws[b], pscores[a], pscores[b])

        kept, dropped = order[:keep], order[keep:]
        # a kept candidate near-tied with a dropped one: either may survive the cut
        for i in kept[::-1]:
            if dropped.size == 0 or not close(i, dropped[0]):
                break
            for j in dropped:
                if not close(i, j):
                    break
                if near_tie(i, j):
                    ambiguous = 2
        # near-ties inside the kept beam: their order may differ
        for pos, i in enumerate(kept):
            for j in kept[pos + 1 :]:
                if not close(i, j):
                    break
                if near_tie(i, j):
                    ambiguous = max(ambiguous, 1)
        order = order[:keep]
        beam_nodes, beam_scores = nodes[order], scores[order]
        n_parents = parents.size
    labels = np.full(topk, -1, dtype=np.int64)
    out = np.zeros(topk, dtype=np.float32)
    labels[: beam_nodes.size] = beam_nodes
    out[: beam_scores.size] = beam_scores
    if return_ambiguous:
        return labels, out, ambiguous
    return labels, out


def beam_search_batch(weights_per_layer, parents_per_layer, X, bias, beam_size, topk, post_processor):
    """`beam_search` for every row of `X` (dense or sparse): ``(labels, scores, ambiguity)`` arrays."""
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    Ws = [dense_layer(W) for W in weights_per_layer]
    res = [
        beam_search(Ws, parents_per_layer, row, bias, beam_size, topk, post_processor, return_ambiguous=True)
        for row in X
    ]
    if not res:
        return np.zeros((0, topk), np.int64), np.zeros((0, topk), np.float32), np.zeros(0, int)
    labels, scores, amb = zip(*res)
    return np.array(labels), np.array(scores), np.array(amb)


def exhaustive_scores(weights_per_layer, parents_per_layer, x_dense, bias, post_processor):
    """Every label's score, combined along its root-to-leaf path (float64, shape (L,))."""
    x = np.asarray(x_dense, dtype=np.float64).ravel()
    path = None
    for t, (W, parents) in enumerate(zip(weights_per_layer, parents_per_layer)):
        W = dense_layer(W).astype(np.float64)
        d = W.shape[0] - 1
        s = transform(post_processor, W[:d].T @ x + bias * W[d])
        path = s if t == 0 else combine(post_processor, s, path[np.asarray(parents, dtype=np.int64)])
    return path


def topk_of_scores(scores, k):
    """Top-k (labels, scores) of a score vector, ties to the lower label id, padded with -1 / 0."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]
    labels = np.full(k, -1, dtype=np.int64)
    out = np.zeros(k, dtype=np.float64)
    labels[: order.size] = order
    out[: order.size] = np.asarray(scores)[order]
    return labels, out


def assert_rankings_match(labels, scores, ref_labels, ref_scores, ref_label_score, *, rtol=1e-5, atol=1e-5, tie=1e-6, msg=""):
    """Checks one row of top-k output against a reference.

    Scores must agree position by position; labels must agree except where the reference scores tie
    (within `tie`), in which case the returned label must have (by `ref_label_score`) the score of that
    position. Labels must be distinct.
    """
    labels = np.asarray(labels)
    np.testing.assert_allclose(scores, ref_scores, rtol=rtol, atol=atol, err_msg=msg)
    valid = labels >= 0
    np.testing.assert_array_equal(valid, np.asarray(ref_labels) >= 0, err_msg=msg)
    assert len(set(labels[valid].tolist())) == valid.sum(), f"duplicate labels {labels} {msg}"
    for i in np.flatnonzero(labels != ref_labels):
        own = float(ref_label_score(int(labels[i])))
        assert abs(own - float(ref_scores[i])) <= tie * max(1.0, abs(own)) + atol, (
            f"position {i}: label {labels[i]} (score {own}) instead of {ref_labels[i]} "
            f"(score {ref_scores[i]}) {msg}"
        )


# -------------------------------------------------------------------------------- model files

MAGIC = b"PECOSRS\0"


#: The arrays of one layer of float32 weights in file order: (name, element type).
LAYER_ARRAYS = (
    ("parent_of", "<u4"),
    ("chunk_ptr", "<u8"),
    ("chunk_entry_ptr", "<u8"),
    ("row_feature", "<u4"),
    ("row_ptr", "<u4"),
    ("entry_slot", "<u4"),
    ("entry_value", "<f4"),
    ("bias_weight", "<f4"),
)


#: Element types of the compact layers of version 4 (header fields ``slot_type``, ``weight_dtype``).
SLOT_TYPES = {"u8": "<u1", "u16": "<u2", "u32": "<u4"}
WEIGHT_TYPES = {"float32": "<f4", "float16": "<f2", "int8": "<i1"}


def layer_arrays(lh: dict) -> list:
    """The arrays of the layer of header `lh` in file order: float32 weights and 32-bit slots
    unless the header says otherwise; int8 weights are followed by one float32 scale per child."""
    out = []
    for name, dt in LAYER_ARRAYS:
        if name == "entry_slot":
            dt = SLOT_TYPES[lh.get("slot_type", "u32")]
        if name == "entry_value":
            dt = WEIGHT_TYPES[lh.get("weight_dtype", "float32")]
        out.append((name, dt))
        if name == "entry_value" and lh.get("weight_dtype") == "int8":
            out.append(("scale", "<f4"))
    return out


def _array_lengths(lh: dict) -> dict:
    return {
        "parent_of": lh["n_children"],
        "chunk_ptr": lh["n_parents"] + 1,
        "chunk_entry_ptr": lh["n_parents"] + 1,
        "row_feature": lh["n_rows"],
        "row_ptr": lh["n_rows"] + lh["n_parents"],
        "entry_slot": lh["n_entries"],
        "entry_value": lh["n_entries"],
        "bias_weight": lh["n_children"],
        "scale": lh["n_children"],
    }


def _aligned(version: int) -> bool:
    """Versions 3 and 4 start every array at a multiple of 8 bytes; version 2 packs them."""
    return version >= 3


def _assemble(version: int, header: bytes, arrays: list) -> bytes:
    """Envelope (io/envelope.rs): magic, version, header length, header, the arrays (zero padding
    before each to a multiple of 8 when aligned), CRC-32."""
    out = bytearray(MAGIC + struct.pack("<IQ", version, len(header)) + header)
    for raw in arrays:
        if _aligned(version):
            out += bytes(-len(out) % 8)
        out += raw
    return with_crc(bytes(out))


def model_to_bytes(n_features, bias, layers, *, metadata=None, version=4) -> bytes:
    """Serialises a model in the pecos_rs file format (io/model_file.rs) from ``[(parents, W), ...]``
    with ``W`` of shape ``(n_features + 1, K)``; zero weights are not stored. Each chunk's row
    pointers are relative to the chunk's first entry (format versions 2 to 4; float32 weights and
    32-bit slots, which version 4 writes as version 3 did)."""
    d = int(n_features)
    heads, arrays = [], []
    n_parents = 1
    for parents, W in layers:
        parents = np.asarray(parents, dtype=np.uint32)
        W = dense_layer(W)
        assert W.shape == (d + 1, parents.size), (W.shape, d, parents.size)
        chunk_ptr, chunk_entry_ptr, row_feature, row_ptr, entry_slot, entry_value = [0], [0], [], [], [], []
        for children in children_lists(parents, n_parents):
            sub = W[:d, children]
            row_ptr.append(0)
            for f in np.flatnonzero((sub != 0).any(axis=1)):
                slots = np.flatnonzero(sub[f] != 0)
                row_feature.append(f)
                entry_slot.extend(slots.tolist())
                entry_value.extend(sub[f, slots].tolist())
                row_ptr.append(len(entry_slot) - chunk_entry_ptr[-1])
            chunk_ptr.append(len(row_feature))
            chunk_entry_ptr.append(len(entry_slot))
        values = (parents, chunk_ptr, chunk_entry_ptr, row_feature, row_ptr, entry_slot, entry_value, W[d])
        arrays += [np.asarray(v).astype(dt).tobytes() for (_, dt), v in zip(LAYER_ARRAYS, values)]
        heads.append(
            {"n_parents": n_parents, "n_children": int(parents.size), "n_rows": len(row_feature), "n_entries": len(entry_slot)}
        )
        n_parents = parents.size
    header = json.dumps(
        {"n_features": d, "bias": float(np.float32(bias)), "layers": heads, "metadata": metadata},
        separators=(",", ":"),
    ).encode()
    return _assemble(version, header, arrays)


def with_crc(payload_without_crc: bytes) -> bytes:
    """Appends the CRC-32 (IEEE, as crc32fast) of the payload."""
    return bytes(payload_without_crc) + struct.pack("<I", zlib.crc32(payload_without_crc) & 0xFFFFFFFF)


def fix_crc(data: bytes) -> bytes:
    """Recomputes the trailing checksum of an edited model file."""
    return with_crc(data[:-4])


def parse_model_bytes(data: bytes) -> dict:
    """Parses a model file: ``{"version", "header", "header_span", "sections": [(layer, name, start,
    end, dtype)], "layers": [{name: array}]}``; offsets are byte positions in `data`."""
    assert data[:8] == MAGIC
    version, hlen = struct.unpack_from("<IQ", data, 8)
    hstart = 8 + 12
    header = json.loads(data[hstart : hstart + hlen])
    pos = hstart + hlen
    sections, layers = [], []
    for t, lh in enumerate(header["layers"]):
        arrays = {}
        lengths = _array_lengths(lh)
        for name, dt in layer_arrays(lh):
            if _aligned(version):
                assert not any(data[pos : pos + (-pos % 8)]), "nonzero padding"
                pos += -pos % 8
            n = lengths[name]
            size = n * np.dtype(dt).itemsize
            arrays[name] = np.frombuffer(data, dtype=dt, count=n, offset=pos)
            sections.append((t, name, pos, pos + size, dt))
            pos += size
        layers.append(arrays)
    assert pos + 4 == len(data), "size mismatch"
    return {
        "version": version,
        "header": header,
        "header_span": (hstart, hstart + hlen),
        "sections": sections,
        "layers": layers,
    }


def replace_header(data: bytes, header: dict) -> bytes:
    """The same arrays under another header JSON (lengths, padding and checksum updated)."""
    p = parse_model_bytes(data)
    new = json.dumps(header, separators=(",", ":")).encode()
    return _assemble(p["version"], new, [data[start:end] for _, _, start, end, _ in p["sections"]])


def model_layers(model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A compiled model's ``(weights_per_layer dense (d+1, K), parents_per_layer)``."""
    Ws, Ps = [], []
    for t in range(model.depth):
        indptr, indices, data, shape = model.layer_weights(t)
        Ws.append(sp.csc_matrix((data, indices, indptr), shape=shape).toarray())
        Ps.append(np.asarray(model.layer_parents(t), dtype=np.int64))
    return Ws, Ps


# -------------------------------------------------------------------------------------- solvers


def _augment(X, bias):
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    X = X.astype(np.float64)
    return np.hstack([X, np.full((X.shape[0], 1), float(bias))])


def _costs(y, Cp, Cn):
    return np.where(y > 0, float(Cp), float(Cn))


def primal_objective(w, X, y, loss, *, Cp=1.0, Cn=1.0, bias=1.0) -> float:
    """``0.5 ||w||^2 + sum_i C_i loss(y_i w . [x_i, bias])`` with the bias weight last in `w`
    (regularised like the others), as in LIBLINEAR / PECOS."""
    Xa = _augment(X, bias)
    y = np.where(np.asarray(y) > 0, 1.0, -1.0)
    w = np.asarray(w, dtype=np.float64)
    m = y * (Xa @ w)
    C = _costs(y, Cp, Cn)
    if loss == "squared_hinge":
        lv = np.maximum(0.0, 1.0 - m) ** 2
    elif loss == "hinge":
        lv = np.maximum(0.0, 1.0 - m)
    elif loss == "logistic":
        lv = np.logaddexp(0.0, -m)
    else:
        raise ValueError(loss)
    return float(0.5 * w @ w + C @ lv)


def solve_primal(X, y, loss, *, Cp=1.0, Cn=1.0, bias=1.0) -> np.ndarray:
    """The exact minimiser of :func:`primal_objective` (weights, bias weight last).

    Squared hinge and logistic: L-BFGS-B on the (smooth, strongly convex) primal. Hinge: L-BFGS-B on
    the box-constrained dual, ``w = sum_i alpha_i y_i [x_i, bias]``.
    """
    Xa = _augment(X, bias)
    y = np.where(np.asarray(y) > 0, 1.0, -1.0)
    C = _costs(y, Cp, Cn)
    n, d1 = Xa.shape
    if loss in ("squared_hinge", "logistic"):

        def fun(w):
            m = y * (Xa @ w)
            if loss == "squared_hinge":
                slack = np.maximum(0.0, 1.0 - m)
                f = 0.5 * w @ w + C @ slack**2
                g = w - Xa.T @ (2.0 * C * slack * y)
            else:
                f = 0.5 * w @ w + C @ np.logaddexp(0.0, -m)
                sig = np.exp(-np.logaddexp(0.0, m))  # 1 / (1 + e^m)
                g = w - Xa.T @ (C * sig * y)
            return f, g

        res = scipy.optimize.minimize(
            fun, np.zeros(d1), jac=True, method="L-BFGS-B", options={"maxiter": 10000, "gtol": 1e-12, "ftol": 1e-15}
        )
        return res.x
    if loss == "hinge":
        Q = (y[:, None] * Xa) @ (y[:, None] * Xa).T

        def dual(a):
            Qa = Q @ a
            return 0.5 * a @ Qa - a.sum(), Qa - 1.0

        res = scipy.optimize.minimize(
            dual,
            np.zeros(n),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, c) for c in C],
            options={"maxiter": 10000, "gtol": 1e-12, "ftol": 1e-15},
        )
        return Xa.T @ (res.x * y)
    raise ValueError(loss)


def dual_lower_bound_hinge(X, y, *, Cp=1.0, Cn=1.0, bias=1.0) -> float:
    """A lower bound of the hinge primal optimum: the dual value at the clipped reference dual point."""
    Xa = _augment(X, bias)
    y = np.where(np.asarray(y) > 0, 1.0, -1.0)
    C = _costs(y, Cp, Cn)
    Q = (y[:, None] * Xa) @ (y[:, None] * Xa).T
    res = scipy.optimize.minimize(
        lambda a: (0.5 * a @ Q @ a - a.sum(), Q @ a - 1.0),
        np.zeros(len(y)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, c) for c in C],
        options={"maxiter": 10000, "gtol": 1e-12, "ftol": 1e-15},
    )
    return float(-res.fun)


# ------------------------------------------------------------------------ nearest training texts

def neighbour_vote(texts, text_labels, x, n_neighbours, power, k):
    """The top-`k` labels voted by the `n_neighbours` texts (rows of dense `texts`) of highest
    similarity ``texts @ x`` (> 0; ties to the lower text id), each vote ``similarity ** power``
    times the label's share (dense `text_labels`); scores divided by the best label's; padded
    with -1 / 0 to ``min(k, n_labels)`` (equal votes to the lower label id)."""
    sims = np.asarray(texts, dtype=np.float64) @ np.asarray(x, dtype=np.float64)
    near = sorted((t for t in range(len(sims)) if sims[t] > 0), key=lambda t: (-sims[t], t))[:n_neighbours]
    votes = np.zeros(text_labels.shape[1])
    for t in near:
        votes += sims[t] ** power * np.asarray(text_labels[t], dtype=np.float64)
    width = min(k, text_labels.shape[1])
    ranked = sorted((l for l in range(len(votes)) if votes[l] > 0), key=lambda l: (-votes[l], l))[:width]
    labels = np.full(width, -1, dtype=np.int64)
    scores = np.zeros(width)
    labels[: len(ranked)] = ranked
    if ranked:
        scores[: len(ranked)] = votes[ranked] / votes[ranked[0]]
    return labels, scores


def blend(lists, k, rank_weight=0.0, rank_offset=0.0, co_click=None):
    """TextXRLinear's blend of one row: `lists` are ``(weight, rank_share, labels, scores)``; a
    label's score is ``sum(weight * score)`` over the lists it is in, its total that plus
    ``rank_weight * rank_share / (rank_offset + rank)`` (1-based rank) per list; `co_click` is
    ``(P, weight, offset, from_top, topk)`` with `P` dense labels x labels: the top `from_top`
    totals weighted by total / best select ``q @ P``, whose `topk` best (> 0, ties to the lower
    label) add ``weight / (offset + rank)``. Returns the labels and totals: the best score
    first (ties to the lower label), then by total (ties to the lower label), at most `k`."""
    score, bonus = {}, {}
    for weight, share, labels, scores in lists:
        for rank, (j, v) in enumerate(zip(labels, scores), start=1):
            if j >= 0:
                score[j] = score.get(j, 0.0) + weight * v
                bonus[j] = bonus.get(j, 0.0) + rank_weight * share / (rank_offset + rank)
    total = lambda j: score[j] + bonus[j]  # noqa: E731
    if co_click is not None and score:
        P, weight, offset, from_top, topk = co_click
        first = sorted(score, key=lambda j: (-total(j), j))[:from_top]
        best = total(first[0])
        if best > 0:
            q = np.zeros(P.shape[0])
            for j in first:
                q[j] = max(total(j) / best, 0.0)
            co = q @ np.asarray(P, dtype=np.float64)
            found = sorted((j for j in range(len(co)) if co[j] > 0), key=lambda j: (-co[j], j))[:topk]
            for rank, j in enumerate(found, start=1):
                score.setdefault(j, 0.0)
                bonus[j] = bonus.get(j, 0.0) + weight / (offset + rank)
    if not score:
        return [], []
    top = min(score, key=lambda j: (-score[j], j))
    rest = sorted((j for j in score if j != top), key=lambda j: (-total(j), j))
    labels = [top] + rest[: k - 1]
    return labels, [total(j) for j in labels]

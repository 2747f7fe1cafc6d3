"""Pure-Python reference of the balanced hierarchical 2-means kernel, for differential tests.

It transcribes ``balanced_kmeans_leaves`` and ``split_node`` of rust/pecos-core/src/indexer.rs one
node at a time, written for clarity rather than speed. Given the same start pairs it must give the
core's leaf codes exactly, so it reproduces the details that decide the order of (near-)tied labels:

* the random start: :func:`rust_start` ports ``SplitMix64`` (rust/pecos-core/src/rng.rs) and the
  core's ``node_seed``; any other ``start`` function can be passed instead;
* float64 arithmetic on the float32 values, with the half sums updated incrementally (only the
  labels that changed side are added or subtracted) exactly as the core does;
* sums taken left to right, starting from -0.0 (Rust's ``Iterator::sum`` for floats), so that a
  score is -0.0 exactly when all its products are -0.0 (an empty row, or a row with only negative
  values on columns where the center is 0);
* labels sorted by ``(score, label id)`` under IEEE total order (``f64::total_cmp``), which puts
  -0.0 before +0.0.

What it does not reproduce is the order in which the core adds the terms of a dot product or a
squared norm (it follows its own local column numbering, an implementation detail that changes with
optimisations). That order only changes results by rounding, so labels whose scores differ by a few
ulps (near-ties, such as the cancellations small integer data produce) may be ordered differently.
Differential tests therefore use random real values, where scores are equal only when they are
equal for a structural reason (duplicate rows, zero rows, rows sharing no column with the center),
and such ties come out the same in any summation order.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

MASK64 = (1 << 64) - 1


class SplitMix64:
    """Port of the core's ``SplitMix64`` (Steele, Lea, Flood 2014)."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """Uniform in ``range(n)`` by Lemire's multiply-shift; 0 when ``n == 0``."""
        return (self.next_u64() * n) >> 64


def node_seed(seed: int, level: int, node: int) -> int:
    """Seed of node ``node`` (its index among the ``2**level`` nodes of its level)."""
    return SplitMix64(seed ^ (level << 48) ^ node).next_u64()


StartFn = Callable[[int, int, int], tuple[int, int]]


def rust_start(seed: int) -> StartFn:
    """The core's random start: ``start(level, node, n) -> (r, l)``, positions (in label id order)
    of the two labels of an ``n``-label node whose difference ``z_r - z_l`` is the first center."""

    def start(level: int, node: int, n: int) -> tuple[int, int]:
        rng = SplitMix64(node_seed(seed, level, node))
        r = rng.below(n)
        return r, (r + 1 + rng.below(n - 1)) % n

    return start


def seq_sum(values) -> float:
    """``values[0] + values[1] + ...`` left to right from -0.0, like Rust's float ``sum()``
    (Python's built-in ``sum`` and numpy's reductions use other orders)."""
    total = -0.0
    for v in values:
        total += float(v)
    return total


def _inverse_or_zero(v: float) -> float:
    return 1.0 / v if v > 0.0 else 0.0


def split_node(
    Z: sp.csr_matrix, elements: list[int], r: int, l: int, max_iter: int, spherical: bool
) -> tuple[list[int], list[int]]:
    """Balanced 2-means of one node: its left (``len // 2`` labels) and right halves, sorted by id.

    ``elements`` are the node's label ids in increasing order and ``(r, l)`` the positions of its
    start pair.
    """
    n = len(elements)
    half = n // 2
    # (columns, float64 values) of every label of the node, in id order.
    spans = [slice(Z.indptr[e], Z.indptr[e + 1]) for e in elements]
    rows = [(Z.indices[span], Z.data[span].astype(np.float64)) for span in spans]

    def add_row(acc: np.ndarray, i: int, sign: float) -> None:
        cols, vals = rows[i]
        acc[cols] += sign * vals  # the columns of a row are distinct

    d = Z.shape[1]
    c = np.zeros(d)
    add_row(c, r, 1.0)
    add_row(c, l, -1.0)
    total = np.zeros(d)
    for i in range(n):
        add_row(total, i, 1.0)
    right_sum = np.zeros(d)
    is_left = [False] * n
    for it in range(max_iter):
        scores = [seq_sum(c[cols] * vals) for cols, vals in rows]
        # (value, sign) is f64::total_cmp for non-NaN values: -0.0 sorts before +0.0.
        order = sorted(
            range(n), key=lambda i: (scores[i], math.copysign(1.0, scores[i]), elements[i])
        )
        now_left = [False] * n
        for i in order[:half]:
            now_left[i] = True
        if it > 0 and now_left == is_left:
            break
        for i in range(n):
            if it == 0:
                if not now_left[i]:
                    add_row(right_sum, i, 1.0)
            elif now_left[i] != is_left[i]:
                add_row(right_sum, i, -1.0 if now_left[i] else 1.0)
        is_left = now_left
        if it + 1 == max_iter:
            break
        left_sum = total - right_sum
        if spherical:
            scale_right = _inverse_or_zero(math.sqrt(seq_sum(right_sum * right_sum)))
            scale_left = _inverse_or_zero(math.sqrt(seq_sum(left_sum * left_sum)))
        else:
            scale_right, scale_left = 1.0 / (n - half), 1.0 / half
        c = right_sum * scale_right - left_sum * scale_left
    left = [e for e, go_left in zip(elements, is_left) if go_left]
    right = [e for e, go_left in zip(elements, is_left) if not go_left]
    return left, right


def as_kernel_input(Z) -> sp.csr_matrix:
    """``Z`` as the library hands it to the core: float32 CSR, sorted indices, no explicit zeros."""
    Z = sp.csr_matrix(Z, dtype=np.float32, copy=True)
    Z.sum_duplicates()
    Z.eliminate_zeros()
    Z.sort_indices()
    return Z


def balanced_kmeans_leaves(
    Z,
    depth: int,
    max_iter: int,
    spherical: bool,
    seed: int = 0,
    start: StartFn | None = None,
) -> np.ndarray:
    """Leaf code (``0 .. 2**depth``, left to right) of every row of ``Z`` in the complete balanced
    binary 2-means tree, like ``pecos_rs._pecos_rs.balanced_kmeans_leaves``.

    ``start(level, node, n)`` gives the start pair of every node of ``n >= 2`` labels, ``node``
    being its index in its level (empty and one-label nodes included); by default the core's
    :func:`rust_start` with ``seed``.
    """
    Z = as_kernel_input(Z)
    start = rust_start(seed) if start is None else start
    nodes = [list(range(Z.shape[0]))]
    for level in range(depth):
        children = []
        for k, elements in enumerate(nodes):
            if len(elements) >= 2:
                r, l = start(level, k, len(elements))
                children += split_node(Z, elements, r, l, max_iter, spherical)
            else:
                # Nothing to split: the (at most one) label goes right, as floor(n / 2) = 0.
                children += [[], elements]
        nodes = children
    codes = np.empty(Z.shape[0], dtype=np.int64)
    for leaf, elements in enumerate(nodes):
        codes[elements] = leaf
    return codes

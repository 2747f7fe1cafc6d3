"""Label representation and hierarchical label indexing for XR-Linear.

This module holds the two steps that turn a training set into a label tree:

* :func:`pifa` builds Positive Instance Feature Aggregation label embeddings.
* :class:`HierarchicalKMeans` clusters those embeddings into a complete binary tree with exactly
  balanced spherical 2-means splits, then collapses it into a B-ary :class:`ClusterChain`.

Everything here is plain numpy/scipy. The clustering processes all nodes of a tree level at once,
so the Python overhead is per level and per iteration, never per node.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from .exceptions import InvalidInputError, InvalidParameterError

__all__ = ["ClusterChain", "HierarchicalKMeans", "pifa"]

logger = logging.getLogger("pecos_rs")


def _row_norms_csr(mat: sp.csr_matrix) -> np.ndarray:
    """Euclidean norm of every row of a CSR matrix, accumulated in float64."""
    rows = np.repeat(np.arange(mat.shape[0]), np.diff(mat.indptr))
    data = mat.data.astype(np.float64)
    return np.sqrt(np.bincount(rows, weights=data * data, minlength=mat.shape[0]))


def _inverse_or_zero(values: np.ndarray) -> np.ndarray:
    """Elementwise ``1 / values``, with 0 where ``values`` is 0 (all-zero rows stay zero)."""
    out = np.zeros_like(values, dtype=np.float64)
    np.divide(1.0, values, out=out, where=values > 0)
    return out


def _normalize_rows_csr(mat: sp.csr_matrix) -> sp.csr_matrix:
    """A copy of ``mat`` with every nonzero row scaled to unit L2 norm (``mat`` may be the caller's)."""
    scale = _inverse_or_zero(_row_norms_csr(mat))
    data = mat.data * np.repeat(scale, np.diff(mat.indptr)).astype(mat.dtype)
    return sp.csr_matrix((data, mat.indices, mat.indptr), shape=mat.shape)


def _normalize_rows_dense(mat: np.ndarray) -> np.ndarray:
    """Scale every nonzero row of a dense float matrix to unit L2 norm, in place, and return it."""
    norms = np.sqrt(np.einsum("ij,ij->i", mat, mat, dtype=np.float64))
    mat *= _inverse_or_zero(norms).astype(mat.dtype)[:, None]
    return mat


def _check_2d(name: str, mat) -> sp.csr_matrix | np.ndarray:
    """Return ``mat`` as a float32 CSR matrix or 2-D array (possibly sharing memory with it)."""
    if sp.issparse(mat):
        out = sp.csr_matrix(mat, dtype=np.float32)
    else:
        try:
            out = np.asarray(mat, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{name} must be a numeric matrix, got {type(mat).__name__}"
            ) from exc
        if out.ndim != 2:
            raise InvalidInputError(f"{name} must be 2-D, got an array with {out.ndim} dimension(s)")
    return out


def pifa(Y, X) -> sp.csr_matrix | np.ndarray:
    """Positive Instance Feature Aggregation (PIFA) label embeddings.

    Each label is represented by the sum of the feature vectors of its positive instances, with every
    instance weighted by ``1 / sqrt(number of its labels)``, then scaled to unit length:
    ``Z = normalize_rows(normalize_rows(Y).T @ X)``.

    Parameters
    ----------
    Y : sparse matrix or array-like of shape (n_samples, n_labels)
        Instance-to-label indicator (or relevance) matrix.
    X : sparse matrix or array-like of shape (n_samples, n_features)
        Instance features. They are used as given (PIFA does not normalise them).

    Returns
    -------
    Z : scipy.sparse.csr_matrix or numpy.ndarray of shape (n_labels, n_features), float32
        CSR with sorted indices when ``X`` is sparse, a dense array otherwise. Labels without any
        positive instance get an all-zero row.

    Raises
    ------
    InvalidInputError
        (a ValueError) If ``Y`` or ``X`` is not a 2-D numeric matrix, or their numbers of rows differ.
    """
    Y = _check_2d("Y", Y)
    X = _check_2d("X", X)
    if Y.shape[0] != X.shape[0]:
        raise InvalidInputError(
            f"Y and X must have the same number of rows (instances), got {Y.shape[0]} and {X.shape[0]}"
        )
    # A dense Y is made sparse so that the product below is one sparse-times-X kernel either way.
    Y = _normalize_rows_csr(Y if sp.issparse(Y) else sp.csr_matrix(Y))
    Yt = Y.T.tocsr()
    if sp.issparse(X):
        Z = (Yt @ X).tocsr()
        Z.sort_indices()
        return _normalize_rows_csr(Z)
    return _normalize_rows_dense(np.asarray(Yt @ X, dtype=np.float32))


class ClusterChain:
    """A label tree stored as one parent-assignment array per layer.

    Layer ``t`` maps every node of depth ``t + 1`` to its parent at depth ``t``: ``assignments[t]`` is a
    1-D ``np.uint32`` array of length ``K_{t+1}`` with values in ``range(K_t)``, where ``K_0 = 1`` is
    the root. The last layer maps the ``L`` labels to their leaf clusters. Nodes without children
    (empty clusters) are allowed.

    Parameters
    ----------
    assignments : list of 1-D integer arrays
        The parent of every node, top layer first. ``assignments[0]`` must be all zeros.

    Raises
    ------
    InvalidInputError
        (a ValueError) If ``assignments`` is empty, a layer is not a non-empty 1-D integer array,
        or a value does not name a node of the previous layer.
    """

    def __init__(self, assignments: Sequence[np.ndarray]) -> None:
        if not isinstance(assignments, (list, tuple)) or len(assignments) == 0:
            raise InvalidInputError("assignments must be a non-empty list of 1-D integer arrays")
        layers = []
        n_parents = 1
        for t, layer in enumerate(assignments):
            arr = np.asarray(layer)
            if arr.ndim != 1 or arr.size == 0:
                raise InvalidInputError(
                    f"assignments[{t}] must be a non-empty 1-D array, got shape {arr.shape}"
                )
            if arr.dtype.kind not in "iu":
                raise InvalidInputError(f"assignments[{t}] must have an integer dtype, got {arr.dtype}")
            if arr.min() < 0 or arr.max() >= n_parents:
                if t == 0:
                    what = "the root (all zeros)"
                else:
                    what = f"range({n_parents}), the nodes of layer {t - 1}"
                raise InvalidInputError(
                    f"assignments[{t}] values must lie in {what}; "
                    f"got values in [{arr.min()}, {arr.max()}]"
                )
            layers.append(arr.astype(np.uint32))
            n_parents = arr.size
        self.assignments: list[np.ndarray] = layers

    def __len__(self) -> int:
        return len(self.assignments)

    @property
    def n_labels(self) -> int:
        """Number of labels ``L`` (the size of the last layer)."""
        return int(self.assignments[-1].size)

    @property
    def layer_sizes(self) -> list[int]:
        """Node counts ``[K_1, ..., K_D]`` of every layer below the root."""
        return [int(a.size) for a in self.assignments]

    @classmethod
    def one_layer(cls, n_labels: int) -> ClusterChain:
        """A single layer attaching every label to the root (one-versus-all).

        Parameters
        ----------
        n_labels : int
            Number of labels, at least 1.

        Returns
        -------
        ClusterChain

        Raises
        ------
        InvalidParameterError
            (a ValueError) If ``n_labels`` < 1.
        """
        if int(n_labels) < 1:
            raise InvalidParameterError(f"n_labels must be >= 1, got {n_labels}")
        return cls([np.zeros(int(n_labels), dtype=np.uint32)])

    @classmethod
    def from_matrices(cls, matrices: Sequence) -> ClusterChain:
        """Build a chain from PECOS-style child-by-parent indicator matrices.

        Parameters
        ----------
        matrices : list of sparse matrices or 2-D arrays
            ``matrices[t]`` has shape ``(K_{t+1}, K_t)`` with a single 1 per row (the child's parent);
            ``matrices[0]`` has shape ``(K_1, 1)``.

        Returns
        -------
        ClusterChain

        Raises
        ------
        InvalidInputError
            (a ValueError) If the shapes do not chain up, or a row does not hold exactly one
            nonzero equal to 1.
        """
        if not isinstance(matrices, (list, tuple)) or len(matrices) == 0:
            raise InvalidInputError(
                "matrices must be a non-empty list of (K_{t+1} x K_t) indicator matrices"
            )
        assignments = []
        n_parents = 1
        for t, mat in enumerate(matrices):
            csr = sp.csr_matrix(mat)
            csr.eliminate_zeros()
            if csr.shape[1] != n_parents:
                raise InvalidInputError(
                    f"matrices[{t}] must have {n_parents} columns (the nodes of the previous layer), "
                    f"got shape {csr.shape}"
                )
            per_row = np.diff(csr.indptr)
            if np.any(per_row != 1):
                row = int(np.flatnonzero(per_row != 1)[0])
                raise InvalidInputError(
                    f"matrices[{t}] row {row} has {per_row[row]} nonzeros; "
                    "every child needs exactly one parent"
                )
            if np.any(csr.data != 1):
                raise InvalidInputError(f"matrices[{t}] must be a 0/1 indicator matrix")
            assignments.append(csr.indices.copy())
            n_parents = csr.shape[0]
        return cls(assignments)

    def to_matrices(self) -> list[sp.csc_matrix]:
        """PECOS-style layout: one float32 CSC ``(K_{t+1} x K_t)`` child-by-parent indicator per layer.

        Returns
        -------
        list of scipy.sparse.csc_matrix
        """
        matrices = []
        n_parents = 1
        for parents in self.assignments:
            n_children = parents.size
            matrices.append(
                sp.csc_matrix(
                    (
                        np.ones(n_children, dtype=np.float32),
                        (np.arange(n_children), parents.astype(np.int64)),
                    ),
                    shape=(n_children, n_parents),
                )
            )
            n_parents = n_children
        return matrices

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClusterChain):
            return NotImplemented
        return len(self) == len(other) and all(
            np.array_equal(a, b) for a, b in zip(self.assignments, other.assignments)
        )

    # Mutable arrays inside: equal chains could hash differently after an in-place edit.
    __hash__ = None

    def __repr__(self) -> str:
        return f"ClusterChain(n_labels={self.n_labels}, layer_sizes={self.layer_sizes})"


def _check_int(name: str, value, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``; raise otherwise."""
    is_integer = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not is_integer or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _concat_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`` without a Python loop."""
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(counts.sum())


class _LevelOperator:
    """The nodes of one tree level, factored so that each 2-means round is one or two mat-vecs.

    The rows are the level's label positions, node by node. The columns are the distinct
    (feature, node) pairs ("groups") present among the rows: column ``g`` holds ``z_{i,f}`` for every
    row ``i`` of node ``k`` that has feature ``f``. Hence ``Q.T @ w`` is, for every node at once, the
    sparse vector ``sum_i w_i z_i`` over that node's rows ("group sums"), and ``Q @ v`` scores every
    row against its own node's vector. No (nodes x features) matrix is ever formed, and both products
    stream through ``Q`` while touching only row-sized vectors at random.

    Parameters
    ----------
    Z : scipy.sparse.csr_matrix
        The (L, d) float64 embeddings, canonical format.
    elements : numpy.ndarray
        Label id of each row.
    sizes : numpy.ndarray
        Number of rows of every node, in row order.
    """

    def __init__(self, Z: sp.csr_matrix, elements: np.ndarray, sizes: np.ndarray) -> None:
        self.Z = Z
        self.elements = elements
        self.row_nnz = np.diff(Z.indptr)[elements]
        self.n_nodes = sizes.size
        # 16-bit node ids let np.lexsort use its radix sort on the node key.
        node_dtype = np.uint16 if sizes.size <= np.iinfo(np.uint16).max else np.int64
        self.node = np.repeat(np.arange(sizes.size, dtype=node_dtype), sizes)
        # With each feature column's rows increasing (scipy's transpose already yields that, so the
        # sort is a no-op), the entries of a (feature, node) group are contiguous: a group starts
        # where the column or the node changes.
        Zc = Z[elements].tocsc()
        Zc.sort_indices()
        entry_node = self.node[Zc.indices]
        group_start = np.ones(entry_node.size, dtype=bool)
        group_start[1:] = entry_node[1:] != entry_node[:-1]
        group_start[Zc.indptr[:-1][np.diff(Zc.indptr) > 0]] = True
        group_ptr = np.append(np.flatnonzero(group_start), entry_node.size)
        groups_per_feature = np.diff(np.searchsorted(group_ptr, Zc.indptr))
        group_feature = np.repeat(np.arange(Z.shape[1], dtype=np.int64), groups_per_feature)
        # Groups are ordered by feature then node, so these keys are sorted and a (feature, node)
        # pair is found by binary search.
        self.group_key = group_feature * self.n_nodes + entry_node[group_ptr[:-1]]
        self.Q = sp.csc_matrix(
            (Zc.data, Zc.indices, group_ptr), shape=(elements.size, group_ptr.size - 1)
        )

    @property
    def nnz(self) -> int:
        """Number of stored entries still taking part in the mat-vecs."""
        return self.Q.nnz

    def group_sums(self, weights: np.ndarray) -> np.ndarray:
        """``sum_{i in node} weights_i z_i`` for every node, as a vector over the groups."""
        return self.Q.T @ weights

    def scores(self, group_vector: np.ndarray) -> np.ndarray:
        """Every row's dot product with its own node's slice of ``group_vector``."""
        return self.Q @ group_vector

    def add_rows(self, group_vector: np.ndarray, rows: np.ndarray, weights: np.ndarray) -> None:
        """``group_vector += group_sums(w)`` for ``w`` zero except ``w[rows] = weights``, in place.

        Costs O(entries of those rows) instead of a pass over ``Q``: their entries are read from
        ``Z``'s rows and each (feature, node) pair is located by binary search.
        """
        elements = self.elements[rows]
        counts = self.row_nnz[rows]
        entries = _concat_ranges(self.Z.indptr[elements], counts)
        node = np.repeat(self.node[rows].astype(np.int64), counts)
        feature = self.Z.indices[entries].astype(np.int64)
        groups = np.searchsorted(self.group_key, feature * self.n_nodes + node)
        np.add.at(group_vector, groups, self.Z.data[entries] * np.repeat(weights, counts))

    def drop_nodes(self, keep: np.ndarray) -> np.ndarray:
        """Remove the groups of nodes with ``keep[node]`` False (their rows then score 0).

        Returns the kept group indices, to subset group vectors computed before the call.
        """
        columns = np.flatnonzero(keep[self.group_key % self.n_nodes])
        self.Q = self.Q[:, columns]
        self.group_key = self.group_key[columns]
        return columns


def _split_level(
    Z: sp.csr_matrix,
    perm: np.ndarray,
    starts: np.ndarray,
    rng: np.random.Generator,
    spherical: bool,
    max_iter: int,
) -> tuple[np.ndarray, int]:
    """Balanced 2-means on every node of one level at once.

    Each node sorts its labels by ``<c, z_i>`` ascending (ties by label id) and sends the first
    ``floor(n / 2)`` left. Round 1 uses ``c = z_r - z_l`` for two distinct random labels of the node;
    later rounds use the difference of the right and left half sums (unit-normalised if spherical,
    averaged otherwise). A node stops as soon as a round leaves its left half unchanged.

    Parameters
    ----------
    Z : scipy.sparse.csr_matrix
        The (L, d) float64 embeddings, canonical format.
    perm : numpy.ndarray
        Label ids by position; node ``k`` owns ``perm[starts[k]:starts[k + 1]]``, sorted by id.
    starts : numpy.ndarray
        Node boundaries, length ``n_nodes + 1``.
    rng : numpy.random.Generator
        Source of the two-point initialisations.
    spherical : bool
        Whether to L2-normalise the half sums (else use half means).
    max_iter : int
        Maximum number of assignment rounds, the random initialisation included.

    Returns
    -------
    is_left : numpy.ndarray of bool
        For every position, whether its label goes to the left child.
    n_rounds : int
        Number of assignment rounds run (by the slowest node).
    """
    sizes = np.diff(starts)
    half = sizes // 2
    offset = np.arange(perm.size) - np.repeat(starts[:-1], sizes)
    # The pre-split arrangement (lower ids left) is what round 1 is compared against.
    is_left = offset < np.repeat(half, sizes)
    splittable = sizes >= 2
    if not splittable.any():
        return is_left, 0
    # From here on, "node" means one of the splittable nodes and "row" one of their positions.
    rows = np.flatnonzero(np.repeat(splittable, sizes))
    sizes, half = sizes[splittable], half[splittable]
    node_start = np.cumsum(sizes) - sizes
    first = rng.integers(0, sizes)
    second = (first + rng.integers(1, sizes)) % sizes

    op = _LevelOperator(Z, perm[rows], sizes)
    left = is_left[rows]
    active = np.ones(sizes.size, dtype=bool)
    left_sums = None
    total_score = None
    n_rounds = 0
    for n_rounds in range(1, max_iter + 1):
        if n_rounds == 1:
            center = np.zeros(op.Q.shape[1])
            pair_rows = np.concatenate((node_start + first, node_start + second))
            op.add_rows(center, pair_rows, np.repeat([1.0, -1.0], sizes.size))
            score = op.scores(center)
        else:
            if total_score is None:
                # Node sums are fixed within a level: score every row against its node sum once.
                total_score = op.scores(op.group_sums(np.ones(rows.size)))
            left_f = left.astype(np.float64)
            if left_sums is None:
                left_sums = op.group_sums(left_f)
            left_score = op.scores(left_sums)
            right_score = total_score - left_score
            if spherical:
                # |sum_{i in S} z_i|^2 = sum_{i in S} <sum_{j in S} z_j, z_i>: reuse the row scores.
                # Clipping at 0 only absorbs rounding when a half sums to the zero vector.
                left_norm = np.bincount(op.node, left_score * left_f, minlength=sizes.size)
                right_norm = np.bincount(op.node, right_score * (1.0 - left_f), minlength=sizes.size)
                left_norm = np.sqrt(np.maximum(left_norm, 0.0))
                right_norm = np.sqrt(np.maximum(right_norm, 0.0))
            else:
                left_norm = half.astype(np.float64)
                right_norm = (sizes - half).astype(np.float64)
            score = (
                right_score * _inverse_or_zero(right_norm)[op.node]
                - left_score * _inverse_or_zero(left_norm)[op.node]
            )
        # Only the rows of active nodes are re-split; nodes that stopped keep their halves.
        sub = np.flatnonzero(active[op.node])
        sub_node = op.node[sub]
        # Stable sort by (node, score): ties keep row order, which is label id order within a node.
        order = np.lexsort((score[sub], sub_node))
        sorted_node = sub_node[order]
        sub_start = np.cumsum(np.where(active, sizes, 0)) - sizes
        new_left = np.empty(sub.size, dtype=bool)
        new_left[order] = np.arange(sub.size) - sub_start[sorted_node] < half[sorted_node]
        moved = sub[new_left != left[sub]]
        left[sub] = new_left
        active = np.zeros(sizes.size, dtype=bool)
        active[op.node[moved]] = True
        if not active.any():
            break
        # Stopped nodes would still cost full passes: drop their groups once they hold most entries.
        active_nnz = op.row_nnz[active[op.node]].sum()
        if 2 * active_nnz < op.nnz:
            kept = op.drop_nodes(active)
            if left_sums is not None:
                left_sums = left_sums[kept]
        if left_sums is not None:
            # Few moves: patch the left sums from the moved rows alone. That costs a binary search
            # per entry, so past ~1/128 of the active entries one streamed pass next round is cheaper.
            if 128 * op.row_nnz[moved].sum() < active_nnz:
                op.add_rows(left_sums, moved, np.where(left[moved], 1.0, -1.0))
            else:
                left_sums = None
    is_left[rows] = left
    return is_left, n_rounds


def _group_codes(leaf_codes: np.ndarray, n_leaves: int, n_splits: int, min_codes: int) -> ClusterChain:
    """Collapse a binary tree's leaf codes into a B-ary chain by grouping consecutive codes.

    Sibling leaves have consecutive codes, so ``code // n_splits`` merges ``log2(n_splits)`` binary
    levels into one layer. Grouping repeats while a layer has more than ``min_codes`` nodes; a root
    layer is added on top unless the grouping already reached a single node.
    """
    layers = [leaf_codes]
    n_codes = n_leaves
    while n_codes > min_codes:
        parents = np.arange(n_codes) // n_splits
        layers.append(parents)
        n_codes = int(parents[-1]) + 1
    if n_codes > 1:
        layers.append(np.zeros(n_codes, dtype=np.uint32))
    return ClusterChain(layers[::-1])


class HierarchicalKMeans:
    """Balanced hierarchical spherical 2-means label indexer (PECOS's default).

    The labels are split recursively into a complete binary tree of depth
    ``max(1, ceil(log2(L / max_leaf_size)))`` with exactly balanced 2-means: every node of ``n``
    labels gives ``floor(n / 2)`` to its left child and the rest to its right child, so leaves hold at
    most ``max_leaf_size`` labels. The binary tree is then collapsed into a ``n_splits``-ary
    :class:`ClusterChain` by grouping consecutive leaf codes.

    Parameters
    ----------
    n_splits : int, default=16
        Branching factor B of the final tree; a power of 2, at least 2.
    max_leaf_size : int, default=100
        Maximum number of labels per leaf cluster. If it is at least the number of labels, the chain is
        a single one-versus-all layer.
    kmeans_max_iter : int, default=20
        Maximum number of assignment rounds per split (the random initialisation counts as one).
    spherical : bool, default=True
        Compare against unit-normalised half sums (spherical k-means) instead of half means.
    random_state : int, default=0
        Non-negative seed. Level ``t`` draws its initial pairs from
        ``numpy.random.default_rng([random_state, t])``, so results depend only on the inputs.
    min_codes : int or None, default=None
        Stop grouping once the top layer has at most this many nodes; ``None`` means ``n_splits``.
    verbose : int, default=0
        If positive, log one INFO line per tree level on the ``"pecos_rs"`` logger.
    """

    def __init__(
        self,
        n_splits: int = 16,
        max_leaf_size: int = 100,
        kmeans_max_iter: int = 20,
        spherical: bool = True,
        random_state: int = 0,
        min_codes: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_splits = n_splits
        self.max_leaf_size = max_leaf_size
        self.kmeans_max_iter = kmeans_max_iter
        self.spherical = spherical
        self.random_state = random_state
        self.min_codes = min_codes
        self.verbose = verbose

    def fit(self, Z) -> ClusterChain:
        """Cluster label embeddings into a label tree.

        Parameters
        ----------
        Z : sparse matrix or array-like of shape (n_labels, n_features)
            Label embeddings, e.g. from :func:`pifa`. Dense and sparse inputs with the same values give
            the same chain.

        Returns
        -------
        ClusterChain
            The tree; its last layer maps the ``n_labels`` labels to the leaf clusters.

        Raises
        ------
        InvalidParameterError
            (a ValueError) If a parameter is invalid.
        InvalidInputError
            (a ValueError) If ``Z`` is not a finite 2-D matrix with at least one row.
        """
        n_splits = _check_int("n_splits", self.n_splits, 2)
        if n_splits & (n_splits - 1):
            raise InvalidParameterError(f"n_splits must be a power of 2 (2, 4, 8, ...), got {n_splits}")
        max_leaf_size = _check_int("max_leaf_size", self.max_leaf_size, 1)
        max_iter = _check_int("kmeans_max_iter", self.kmeans_max_iter, 1)
        seed = _check_int("random_state", self.random_state, 0)
        min_codes = n_splits if self.min_codes is None else _check_int("min_codes", self.min_codes, 1)
        if not isinstance(self.spherical, (bool, np.bool_)):
            raise InvalidParameterError(f"spherical must be a bool, got {self.spherical!r}")
        Z = _check_embeddings(Z)

        n_labels = Z.shape[0]
        if max_leaf_size >= n_labels:
            return ClusterChain.one_layer(n_labels)
        # Smallest depth with 2^depth * max_leaf_size >= L: ceil(log2(L / max_leaf_size)), exactly.
        depth = 1
        while max_leaf_size << depth < n_labels:
            depth += 1

        perm = np.arange(n_labels)
        starts = np.array([0, n_labels])
        for level in range(depth):
            tic = time.perf_counter()
            rng = np.random.default_rng([seed, level])
            is_left, n_rounds = _split_level(Z, perm, starts, rng, bool(self.spherical), max_iter)
            sizes = np.diff(starts)
            half = sizes // 2
            child = 2 * np.repeat(np.arange(sizes.size), sizes) + ~is_left
            # A stable sort keeps each child's labels in position order, i.e. sorted by id.
            perm = perm[np.argsort(child, kind="stable")]
            starts = np.concatenate(([0], np.cumsum(np.column_stack((half, sizes - half)).ravel())))
            if self.verbose:
                logger.info(
                    "HierarchicalKMeans level %d/%d: split %d nodes in %d rounds (%.3f s)",
                    level + 1, depth, sizes.size, n_rounds, time.perf_counter() - tic,
                )
        # Leaves are numbered left to right, so a label's code is the index of the leaf holding it.
        leaf_codes = np.empty(n_labels, dtype=np.int64)
        leaf_codes[perm] = np.repeat(np.arange(starts.size - 1), np.diff(starts))
        return _group_codes(leaf_codes, 1 << depth, n_splits, min_codes)


def _check_embeddings(Z) -> sp.csr_matrix:
    """Return ``Z`` as a canonical float64 CSR matrix without explicit zeros, or raise.

    Dense input goes through the same CSR form as sparse input, so both give bit-identical results.
    The result may share its index arrays with the caller's matrix; they are never written to.
    """
    if sp.issparse(Z):
        Z = sp.csr_matrix(Z)
        if not Z.has_canonical_format:
            Z = Z.copy()
            Z.sum_duplicates()
        values = Z.data.astype(np.float64)
        stored = values != 0
        if stored.all():
            Z = sp.csr_matrix((values, Z.indices, Z.indptr), shape=Z.shape)
        else:
            indptr = np.concatenate(([0], np.cumsum(stored)))[Z.indptr]
            Z = sp.csr_matrix((values[stored], Z.indices[stored], indptr), shape=Z.shape)
    else:
        try:
            values = np.asarray(Z, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"Z must be a numeric matrix, got {type(Z).__name__}") from exc
        if values.ndim != 2:
            raise InvalidInputError(f"Z must be 2-D, got an array with {values.ndim} dimension(s)")
        Z = sp.csr_matrix(values)
    if Z.shape[0] < 1:
        raise InvalidInputError("Z must have at least one row (label)")
    if not np.all(np.isfinite(values)):
        raise InvalidInputError("Z contains NaN or infinite values")
    return Z

"""Label representation and hierarchical label indexing for XR-Linear.

This module holds the steps that turn a training set into a label tree:

* :func:`pifa` builds Positive Instance Feature Aggregation label embeddings.
* :class:`HierarchicalKMeans` clusters those embeddings into a complete binary tree with exactly
  balanced spherical 2-means splits, then collapses it into a B-ary :class:`ClusterChain`.
* For labels that are strings (query autocompletion), :class:`TrieIndexer` builds the character
  trie of the labels, and :class:`HybridIndexer` the top levels of that trie with a 2-means tree
  of label embeddings under each of its nodes.

The kernels (the PIFA product, the 2-means tree and its grouping into layers, the tries) run in the
Rust core, multithreaded and without the GIL, and give the same result for every thread count; the
core validates the parameters. This module checks and converts the inputs to the core's float32
CSR layout and wraps the result in a :class:`ClusterChain`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from . import _pecos_rs
from ._params import plain
from ._sparse import csr_args, to_csr32
from ._threads import resolve_n_jobs
from .exceptions import InvalidInputError, InvalidParameterError

__all__ = ["ClusterChain", "HierarchicalKMeans", "HybridIndexer", "TrieIndexer", "pifa"]

logger = logging.getLogger("pecos_rs")


def pifa(Y, X, *, n_jobs: int | None = None) -> sp.csr_matrix | np.ndarray:
    """Positive Instance Feature Aggregation (PIFA) label embeddings.

    Each label is represented by the sum of the feature vectors of its positive instances, with every
    instance weighted by ``1 / ||y_i||`` (``1 / sqrt(number of its labels)`` for a binary ``Y``),
    then scaled to unit length: ``Z = normalize_rows(normalize_rows(Y).T @ X)``. Sums are
    accumulated in float64.

    Parameters
    ----------
    Y : sparse matrix or array-like of shape (n_samples, n_labels)
        Instance-to-label indicator (or relevance) matrix; its values are used as given.
    X : sparse matrix or array-like of shape (n_samples, n_features)
        Instance features. They are used as given (PIFA does not normalise them).
    n_jobs : int or None, default=None
        Threads: ``None`` means 1, ``-1`` all cores, ``-k`` all cores but ``k - 1``. The result does
        not depend on it.

    Returns
    -------
    Z : scipy.sparse.csr_matrix or numpy.ndarray of shape (n_labels, n_features), float32
        CSR with sorted indices when ``X`` is sparse, a dense array otherwise. Labels without any
        positive instance get an all-zero row.

    Raises
    ------
    InvalidInputError
        (a ValueError) If ``Y`` or ``X`` is not a finite 2-D numeric matrix, or their numbers of rows
        differ.
    InvalidParameterError
        (a ValueError) If ``n_jobs`` is not None or a nonzero integer.
    """
    n_threads = resolve_n_jobs(n_jobs)
    dense_output = not sp.issparse(X)
    Y = to_csr32(Y, name="Y")
    X = to_csr32(X, name="X")
    if Y.shape[0] != X.shape[0]:
        raise InvalidInputError(
            f"Y and X must have the same number of rows (instances), got {Y.shape[0]} and {X.shape[0]}"
        )
    indptr, indices, data, shape = _pecos_rs.pifa(csr_args(X), csr_args(Y), n_threads=n_threads)
    Z = sp.csr_matrix((data, indices, indptr), shape=shape)
    return Z.toarray() if dense_output else Z


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
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ClusterChain(n_labels={self.n_labels}, layer_sizes={self.layer_sizes})"


class HierarchicalKMeans:
    """Balanced hierarchical spherical 2-means label indexer (PECOS's default).

    The labels are split recursively into a complete binary tree of depth
    ``max(1, ceil(log2(L / max_leaf_size)))`` with exactly balanced 2-means: every node of ``n``
    labels gives ``floor(n / 2)`` to its left child and the rest to its right child, so leaves hold at
    most ``max_leaf_size`` labels. The binary tree is then collapsed into a ``n_splits``-ary
    :class:`ClusterChain` by grouping consecutive leaf codes.

    Each split starts from ``c = z_r - z_l`` for two distinct random labels of the node, then
    repeatedly sorts the node's labels by ``<c, z_i>`` (ties by label id), sends the lower half left
    and sets ``c`` to the difference of the right and left half sums (unit-normalised if spherical,
    averaged otherwise), until the left half stops changing. The splits run in the Rust core.

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
        Seed, an integer in ``[0, 2**64)``. Every node draws its random start from a seed derived from
        ``random_state``, its level and its position in the level, so results depend only on the
        inputs, never on ``n_jobs``.
    min_codes : int or None, default=None
        Stop grouping once the top layer has at most this many nodes; ``None`` means ``n_splits``.
    verbose : int, default=0
        If positive, log one INFO line with the tree's size and the clustering time on the
        ``"pecos_rs"`` logger.
    n_jobs : int or None, default=None
        Threads: ``None`` means 1, ``-1`` all cores, ``-k`` all cores but ``k - 1``.
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
        n_jobs: int | None = None,
    ) -> None:
        self.n_splits = n_splits
        self.max_leaf_size = max_leaf_size
        self.kmeans_max_iter = kmeans_max_iter
        self.spherical = spherical
        self.random_state = random_state
        self.min_codes = min_codes
        self.verbose = verbose
        self.n_jobs = n_jobs

    def fit(self, Z) -> ClusterChain:
        """Cluster label embeddings into a label tree.

        Parameters
        ----------
        Z : sparse matrix or array-like of shape (n_labels, n_features)
            Label embeddings, e.g. from :func:`pifa`, used in float32. Dense and sparse inputs with the
            same values give the same chain.

        Returns
        -------
        ClusterChain
            The tree; its last layer maps the ``n_labels`` labels to the leaf clusters.

        Raises
        ------
        InvalidParameterError
            (a ValueError) If a parameter is invalid.
        InvalidInputError
            (a ValueError) If ``Z`` is not a 2-D numeric matrix with at least one row and finite
            float32 values.
        """
        n_threads = resolve_n_jobs(self.n_jobs)
        Z = _check_embeddings(Z)
        params = plain({
            "n_splits": self.n_splits,
            "max_leaf_size": self.max_leaf_size,
            "kmeans_max_iter": self.kmeans_max_iter,
            "spherical": self.spherical,
            "random_state": self.random_state,
            "min_codes": self.min_codes,
        })
        tic = time.perf_counter()
        chain = ClusterChain(_pecos_rs.hierarchical_kmeans(csr_args(Z), params, n_threads=n_threads))
        if self.verbose and len(chain) > 1:
            n_leaves = chain.layer_sizes[-2]
            logger.info(
                "HierarchicalKMeans: %d labels into %d leaves (depth %d) with %d thread(s) in %.3f s",
                chain.n_labels, n_leaves, n_leaves.bit_length() - 1, n_threads,
                time.perf_counter() - tic,
            )
        return chain


class TrieIndexer:
    """Character-trie label indexer for labels that are strings (PECOS's qp2q ``TrieIndexer``).

    Level ``d`` of the tree (``1 <= d <= depth``) has one node per distinct ``key_d(label)``: the
    label's first ``d`` characters, or, for a shorter label, the label followed by end markers that
    sort before every character. So a label that ends at an inner node of the trie gets a branch of
    its own, a path shorter than ``depth`` goes on through single-child nodes, and all the labels
    below a level-``depth`` node form one leaf cluster. Nodes of a level are numbered in label
    order, so every node covers a contiguous range of label ids.

    Parameters
    ----------
    depth : int, default=16
        Number of trie levels between the root and the labels, at least 1. The chain has
        ``depth + 1`` layers.
    """

    def __init__(self, depth: int = 16) -> None:
        self.depth = depth

    def fit(self, labels) -> ClusterChain:
        """Build the trie of the label strings.

        Parameters
        ----------
        labels : sequence of str
            The labels, sorted (code point order, as :func:`sorted` sorts) and unique; label ``i``
            is column ``i`` of the label matrix the chain is trained with.

        Returns
        -------
        ClusterChain
            ``depth + 1`` layers; the last maps every label to its level-``depth`` node.

        Raises
        ------
        InvalidParameterError
            (a ValueError) If ``depth`` is invalid.
        InvalidInputError
            (a ValueError) If ``labels`` is empty, holds something else than a str, or is not
            sorted and unique.
        """
        labels = _check_labels(labels)
        return ClusterChain(_pecos_rs.trie_chain(labels, plain({"depth": self.depth})))


class HybridIndexer:
    """Trie over 2-means label indexer (PECOS's qp2q ``HybridIndexer``).

    The top ``trie_depth`` levels are those of :class:`TrieIndexer`. Under each level-``trie_depth``
    node, the node's labels are clustered by :class:`HierarchicalKMeans` over their rows of the
    embeddings alone (with ``min_codes=n_splits``, so the node has at most ``n_splits`` children): a
    node of at most ``max_leaf_size`` labels is a single leaf. Sub-trees shallower than the deepest
    one reach their labels through chains of single-child nodes below their leaves, so that every
    label sits at the same depth. Every sub-tree stays within its trie node: its labels are the
    node's contiguous range of label ids.

    Parameters
    ----------
    trie_depth : int, default=2
        Trie levels above the 2-means sub-trees, at least 1 (the paper uses 1 to 3).
    n_splits : int, default=2
        Branching factor of the sub-trees; a power of 2, at least 2.
    max_leaf_size : int, default=100
        Maximum number of labels per leaf of a sub-tree.
    kmeans_max_iter : int, default=20
        Maximum number of assignment rounds per 2-means split.
    spherical : bool, default=True
        Spherical 2-means (unit-normalised half sums) instead of half means.
    random_state : int, default=0
        Seed, an integer in ``[0, 2**64)``. The sub-tree of the ``k``-th trie node is seeded with a
        seed derived from ``random_state``, ``trie_depth`` and ``k``, so results never depend on
        ``n_jobs``.
    n_jobs : int or None, default=None
        Threads: ``None`` means 1, ``-1`` all cores, ``-k`` all cores but ``k - 1``.
    """

    def __init__(
        self,
        trie_depth: int = 2,
        n_splits: int = 2,
        max_leaf_size: int = 100,
        kmeans_max_iter: int = 20,
        spherical: bool = True,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.trie_depth = trie_depth
        self.n_splits = n_splits
        self.max_leaf_size = max_leaf_size
        self.kmeans_max_iter = kmeans_max_iter
        self.spherical = spherical
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, labels, Z) -> ClusterChain:
        """Build the trie of the label strings and cluster the labels of each of its nodes.

        Parameters
        ----------
        labels : sequence of str
            The labels, sorted (code point order, as :func:`sorted` sorts) and unique; label ``i``
            is column ``i`` of the label matrix the chain is trained with.
        Z : sparse matrix or array-like of shape (n_labels, n_features)
            Label embeddings, row ``i`` for label ``i`` (for instance the labels' own
            :class:`pecos_rs.text.PositionWeightedCharTfidf` rows, or :func:`pifa`), used in float32.
            Dense and sparse inputs with the same values give the same chain.

        Returns
        -------
        ClusterChain
            ``trie_depth`` trie layers, then the layers of the deepest sub-tree; the last maps
            every label to its leaf.

        Raises
        ------
        InvalidParameterError
            (a ValueError) If a parameter is invalid.
        InvalidInputError
            (a ValueError) If ``labels`` is empty, holds something else than a str, or is not
            sorted and unique; if ``Z`` is not a finite 2-D numeric matrix with one row per label.
        """
        n_threads = resolve_n_jobs(self.n_jobs)
        labels = _check_labels(labels)
        Z = _check_embeddings(Z)
        params = plain({
            "trie_depth": self.trie_depth,
            "n_splits": self.n_splits,
            "max_leaf_size": self.max_leaf_size,
            "kmeans_max_iter": self.kmeans_max_iter,
            "spherical": self.spherical,
            "random_state": self.random_state,
        })
        return ClusterChain(_pecos_rs.hybrid_chain(labels, csr_args(Z), params, n_threads=n_threads))


def _check_labels(labels) -> list:
    """``labels`` as a list, for the core to copy (it checks the items and their order), or raise
    for what is not a sequence of strings at all."""
    if isinstance(labels, (str, bytes)):
        raise InvalidInputError(f"labels must be a sequence of str, got a single {type(labels).__name__}")
    try:
        return list(labels)
    except TypeError as exc:
        raise InvalidInputError(
            f"labels must be a sequence of str, got {type(labels).__name__}"
        ) from exc


def _check_embeddings(Z) -> sp.csr_matrix:
    """Return ``Z`` as a canonical float32 CSR matrix without explicit zeros, or raise.

    Dense input goes through the same CSR form as sparse input, so both give bit-identical results.
    The result may share its arrays with the caller's matrix; they are never written to.
    """
    Z = to_csr32(Z, name="Z")
    if Z.shape[0] < 1:
        raise InvalidInputError("Z must have at least one row (label)")
    if not Z.data.all():
        # Explicit zeros (also from float32 underflow) would change nothing but the core's work.
        Z = Z.copy()
        Z.eliminate_zeros()
    return Z

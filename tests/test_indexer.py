"""Tests for pecos_rs.indexer: PIFA embeddings, ClusterChain and the balanced hierarchical 2-means.

The 2-means tree runs in the Rust core; tests/kmeans_reference.py is its per-node Python reference,
and the differential tests below require the same leaf codes from both.
"""

import logging
import os

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import kmeans_reference as ref
import pecos_rs.indexer
import pecos_rs.xlinear
from helpers import load_xmc
from pecos_rs import XRLinearClassifier, _pecos_rs
from pecos_rs._sparse import csr_args
from pecos_rs._threads import resolve_n_jobs
from pecos_rs.exceptions import InvalidInputError, InvalidParameterError
from pecos_rs.indexer import ClusterChain, HierarchicalKMeans, pifa


def leaf_sizes(chain: ClusterChain) -> np.ndarray:
    """Number of labels in every leaf cluster (empty leaves included)."""
    n_leaves = chain.layer_sizes[-2] if len(chain) > 1 else 1
    return np.bincount(chain.assignments[-1], minlength=n_leaves)


def binary_depth(n_labels: int, max_leaf_size: int) -> int:
    """ceil(log2(L / max_leaf_size)), at least 1, computed independently of the implementation."""
    return max(1, int(np.ceil(np.log2(n_labels / max_leaf_size) - 1e-12)))


def random_embeddings(n_labels: int, n_features: int, seed: int, density: float = 0.3) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.random(n_labels, n_features, density=density, format="csr", random_state=rng)


def tie_free_embeddings(n_labels: int, n_features: int, seed: int, density: float) -> np.ndarray:
    """Signed random float32 embeddings whose only exact score ties have a structural cause.

    Random real values make two labels' scores equal only when they must be: duplicated rows (a tenth
    of the labels copy another one), an all-zero row, and rows sharing no column with the center
    (likely at low density). Those ties come out the same whatever the order in which the core adds
    terms, while the cancellations of small integer values would not (see kmeans_reference).
    """
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n_labels, n_features)) * (rng.random((n_labels, n_features)) < density)
    n_copies = n_labels // 10
    Z[rng.integers(0, n_labels, n_copies)] = Z[rng.integers(0, n_labels, n_copies)]
    Z[rng.integers(0, n_labels)] = 0.0
    return Z.astype(np.float32)


def core_leaves(Z, depth: int, max_iter: int, spherical: bool, seed: int, n_threads: int = 1) -> np.ndarray:
    """The Rust kernel's leaf codes for ``Z`` (any matrix), converted as the library converts it."""
    args = csr_args(ref.as_kernel_input(Z))
    codes = _pecos_rs.balanced_kmeans_leaves(
        args, depth=depth, max_iter=max_iter, spherical=spherical, seed=seed, n_threads=n_threads
    )
    assert codes.dtype == np.uint32 and codes.shape == (Z.shape[0],)
    return codes.astype(np.int64)


# ---------------------------------------------------------------------------------------------- pifa


def dense_pifa(Y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Reference PIFA written directly from the definition."""
    y_norm = np.linalg.norm(Y, axis=1, keepdims=True)
    Yn = np.divide(Y, y_norm, out=np.zeros_like(Y), where=y_norm > 0)
    Z = Yn.T @ X
    z_norm = np.linalg.norm(Z, axis=1, keepdims=True)
    return np.divide(Z, z_norm, out=np.zeros_like(Z), where=z_norm > 0)


@pytest.fixture
def pifa_data():
    rng = np.random.default_rng(0)
    Y = (rng.random((40, 12)) < 0.2).astype(np.float64)
    Y[:, 5] = 0.0  # a label with no positive instance
    Y[7, :] = 0.0  # an instance with no label
    X = rng.random((40, 30)) * (rng.random((40, 30)) < 0.3)
    return Y, X


def test_pifa_sparse_matches_dense_reference(pifa_data):
    Y, X = pifa_data
    Z = pifa(sp.csr_matrix(Y), sp.csr_matrix(X))
    assert sp.isspmatrix_csr(Z)
    assert Z.dtype == np.float32
    assert Z.has_sorted_indices
    np.testing.assert_allclose(Z.toarray(), dense_pifa(Y, X), rtol=1e-5, atol=1e-6)


def test_pifa_dense_input_gives_dense_output(pifa_data):
    Y, X = pifa_data
    Z = pifa(Y, X)
    assert isinstance(Z, np.ndarray) and Z.dtype == np.float32
    np.testing.assert_allclose(Z, dense_pifa(Y, X), rtol=1e-5, atol=1e-6)
    # Dense Y with sparse X (and CSC input) still yields CSR.
    np.testing.assert_allclose(pifa(Y, sp.csc_matrix(X)).toarray(), Z, rtol=1e-6, atol=1e-7)


def test_pifa_zero_label_rows_and_unit_norms(pifa_data):
    Y, X = pifa_data
    Z = pifa(sp.csr_matrix(Y), sp.csr_matrix(X)).toarray()
    norms = np.linalg.norm(Z, axis=1)
    assert norms[5] == 0.0
    has_positive = Y.sum(axis=0) > 0
    np.testing.assert_allclose(norms[has_positive], 1.0, rtol=1e-5)


def test_pifa_leaves_its_inputs_alone(pifa_data):
    Y, X = pifa_data
    Y32, X32 = sp.csr_matrix(Y, dtype=np.float32), sp.csr_matrix(X, dtype=np.float32)
    Y_before, X_before = Y32.toarray(), X32.toarray()
    pifa(Y32, X32)
    pifa(Y32, X32.toarray())
    np.testing.assert_array_equal(Y32.toarray(), Y_before)
    np.testing.assert_array_equal(X32.toarray(), X_before)


def test_pifa_rejects_mismatched_rows(pifa_data):
    Y, X = pifa_data
    with pytest.raises(ValueError, match="same number of rows"):
        pifa(Y, X[:-1])
    with pytest.raises(ValueError, match="2-D"):
        pifa(Y[0], X)


def test_pifa_uses_relevance_values_as_given():
    # Non-binary Y: every instance is weighted by y_ij / ||y_i||, not by an indicator.
    rng = np.random.default_rng(1)
    Y = rng.random((30, 6)) * (rng.random((30, 6)) < 0.5)
    X = rng.standard_normal((30, 9)) * (rng.random((30, 9)) < 0.5)
    expected = dense_pifa(Y, X)
    Z = pifa(sp.csr_matrix(Y), sp.csr_matrix(X)).toarray()
    np.testing.assert_allclose(Z, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(dense_pifa((Y > 0).astype(float), X), expected, atol=1e-3)


def test_pifa_is_the_same_for_any_n_jobs(pifa_data):
    Y, X = pifa_data
    Y, X = sp.csr_matrix(Y), sp.csr_matrix(X)
    Z1 = pifa(Y, X)
    for n_jobs in (1, 2, -1):
        Z = pifa(Y, X, n_jobs=n_jobs)
        np.testing.assert_array_equal(Z.indptr, Z1.indptr)
        np.testing.assert_array_equal(Z.indices, Z1.indices)
        np.testing.assert_array_equal(Z.data, Z1.data)


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2", True])
def test_pifa_rejects_invalid_n_jobs(pifa_data, n_jobs):
    Y, X = pifa_data
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        pifa(Y, X, n_jobs=n_jobs)


def test_pifa_rejects_non_finite_values(pifa_data):
    Y, X = pifa_data
    X = X.copy()
    X[3, 4] = np.nan
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        pifa(Y, X)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        pifa(sp.csr_matrix(np.where(Y > 0, np.inf, 0.0)), sp.csr_matrix(np.nan_to_num(X)))


# ------------------------------------------------------------------------------------------ n_jobs


def test_resolve_n_jobs(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert resolve_n_jobs(None) == 1
    assert resolve_n_jobs(3) == 3
    assert resolve_n_jobs(np.int64(2)) == 2
    assert resolve_n_jobs(-1) == 8
    assert resolve_n_jobs(-3) == 6
    assert resolve_n_jobs(-100) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert resolve_n_jobs(-1) == 1


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2", True, np.float64(2.0)])
def test_resolve_n_jobs_rejects_invalid_values(n_jobs):
    with pytest.raises(InvalidParameterError, match="n_jobs must be None or a nonzero integer"):
        resolve_n_jobs(n_jobs)


def test_n_jobs_reaches_the_kernels(monkeypatch, pifa_data):
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    seen = []

    class Spy:
        def __getattr__(self, name):
            def call(*args, **kwargs):
                seen.append((name, kwargs["n_threads"]))
                return getattr(_pecos_rs, name)(*args, **kwargs)

            return call

    monkeypatch.setattr(pecos_rs.indexer, "_pecos_rs", Spy())
    Y, X = pifa_data
    pifa(Y, X)
    pifa(Y, X, n_jobs=3)
    pifa(Y, X, n_jobs=-2)
    Z = random_embeddings(40, 5, seed=0)
    HierarchicalKMeans(max_leaf_size=10).fit(Z)
    HierarchicalKMeans(max_leaf_size=10, n_jobs=-1).fit(Z)
    assert seen == [
        ("pifa", 1),
        ("pifa", 3),
        ("pifa", 5),
        ("hierarchical_kmeans", 1),
        ("hierarchical_kmeans", 6),
    ]


def test_classifier_passes_n_jobs_to_the_indexer(monkeypatch, planted):
    seen = []
    real_pifa, real_fit = pecos_rs.xlinear.pifa, HierarchicalKMeans.fit

    def spy_pifa(Y, X, **kwargs):
        seen.append(("pifa", kwargs.get("n_jobs")))
        return real_pifa(Y, X, **kwargs)

    def spy_fit(self, Z):
        seen.append(("kmeans", self.n_jobs))
        return real_fit(self, Z)

    monkeypatch.setattr(pecos_rs.xlinear, "pifa", spy_pifa)
    monkeypatch.setattr(HierarchicalKMeans, "fit", spy_fit)
    XRLinearClassifier(n_splits=2, max_leaf_size=4, n_jobs=2).fit(planted.X, planted.Y)
    assert seen == [("pifa", 2), ("kmeans", 2)]


# -------------------------------------------------------------------------------------- ClusterChain


def test_cluster_chain_basic_properties():
    chain = ClusterChain([[0, 0], [0, 1, 1, 0, 1], np.array([4, 3, 2, 1, 0, 0], dtype=np.int64)])
    assert len(chain) == 3
    assert chain.n_labels == 6
    assert chain.layer_sizes == [2, 5, 6]
    assert all(a.dtype == np.uint32 for a in chain.assignments)
    assert repr(chain) == "ClusterChain(n_labels=6, layer_sizes=[2, 5, 6])"
    assert chain == ClusterChain([[0, 0], [0, 1, 1, 0, 1], [4, 3, 2, 1, 0, 0]])
    assert chain != ClusterChain([[0, 0], [0, 1, 1, 0, 1], [4, 3, 2, 1, 0, 1]])
    assert chain != ClusterChain([[0, 0, 0, 0, 0], [4, 3, 2, 1, 0, 0]])
    assert chain != "not a chain"


def test_cluster_chain_stores_copies():
    layer = np.zeros(4, dtype=np.int64)
    chain = ClusterChain([layer])
    layer[0] = 7
    assert chain.assignments[0][0] == 0


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        ([], "non-empty list"),
        (np.zeros(3, dtype=np.int64), "non-empty list"),
        ([np.zeros((2, 2), dtype=np.int64)], "1-D"),
        ([np.array([], dtype=np.int64)], "non-empty 1-D"),
        ([np.zeros(3)], "integer dtype"),
        ([[0, 1]], "root"),
        ([[0, 0], [0, 2]], r"range\(2\)"),
        ([[0, 0], [0, -1]], r"range\(2\)"),
    ],
)
def test_cluster_chain_validation(assignments, message):
    with pytest.raises(ValueError, match=message):
        ClusterChain(assignments)


def test_one_layer():
    chain = ClusterChain.one_layer(5)
    assert len(chain) == 1
    assert chain.layer_sizes == [5]
    (C,) = chain.to_matrices()
    assert C.shape == (5, 1)
    np.testing.assert_array_equal(C.toarray(), np.ones((5, 1)))
    with pytest.raises(ValueError, match="n_labels"):
        ClusterChain.one_layer(0)


def test_matrices_round_trip():
    chain = ClusterChain([[0, 0, 0], [2, 0, 1, 1], [3, 3, 0, 1, 2, 0, 3]])
    matrices = chain.to_matrices()
    assert [C.shape for C in matrices] == [(3, 1), (4, 3), (7, 4)]
    for C, parents in zip(matrices, chain.assignments):
        assert sp.isspmatrix_csc(C)
        assert C.dtype == np.float32
        dense = C.toarray()
        np.testing.assert_array_equal(dense.sum(axis=1), 1.0)
        np.testing.assert_array_equal(dense.argmax(axis=1), parents)
    assert ClusterChain.from_matrices(matrices) == chain
    assert ClusterChain.from_matrices([C.tocsr() for C in matrices]) == chain


@pytest.mark.parametrize(
    ("matrices", "message"),
    [
        ([], "non-empty list"),
        ([sp.csc_matrix(np.ones((3, 2)))], "1 columns"),
        ([sp.csc_matrix(np.ones((2, 1))), sp.csc_matrix(np.eye(3))], "2 columns"),
        ([sp.csc_matrix(np.ones((2, 1))), sp.csc_matrix([[1.0, 1.0], [0.0, 1.0]])], "row 0 has 2"),
        ([sp.csc_matrix(np.ones((2, 1))), sp.csc_matrix([[1.0, 0.0], [0.0, 0.0]])], "row 1 has 0"),
        ([sp.csc_matrix(np.full((2, 1), 2.0))], "0/1 indicator"),
    ],
)
def test_from_matrices_validation(matrices, message):
    with pytest.raises(ValueError, match=message):
        ClusterChain.from_matrices(matrices)


# ----------------------------------------------------------------------- reference and random starts


def test_splitmix64_port_matches_the_reference_stream():
    # First outputs for seed 0 of Vigna's splitmix64.c, as pinned by rust/pecos-core/src/rng.rs.
    rng = ref.SplitMix64(0)
    assert rng.next_u64() == 0xE220A8397B1DCDAF
    assert rng.next_u64() == 0x6E789E6AA1B965F4
    rng = ref.SplitMix64(7)
    draws = [rng.below(10) for _ in range(1000)]
    assert set(draws) == set(range(10))
    assert ref.SplitMix64(3).below(0) == 0


def test_rust_start_gives_two_distinct_positions():
    start = ref.rust_start(5)
    for n in (2, 3, 17, 1000):
        pairs = {start(level, node, n) for level in range(4) for node in range(40)}
        assert all(0 <= r < n and 0 <= l < n and r != l for r, l in pairs)
        assert len(pairs) > 1  # the start depends on the node's position
    # The seed derivation covers the level and the node index: same node, other level, other start.
    assert {start(level, 0, 1000) for level in range(8)} != {start(0, 0, 1000)}


def test_reference_with_another_start_differs():
    # The differential tests below can only pass if the core's random starts are reproduced exactly.
    Z = tie_free_embeddings(200, 12, seed=0, density=0.6)
    codes = ref.balanced_kmeans_leaves(Z, 4, 3, True, seed=1)
    np.testing.assert_array_equal(core_leaves(Z, 4, 3, True, seed=1), codes)
    assert not np.array_equal(ref.balanced_kmeans_leaves(Z, 4, 3, True, seed=2), codes)
    swapped = ref.rust_start(1)
    other = ref.balanced_kmeans_leaves(
        Z, 4, 3, True, start=lambda level, node, n: swapped(level, node, n)[::-1]
    )
    assert not np.array_equal(other, codes)


# ------------------------------------------------------------------ core kernel == Python reference


@pytest.mark.parametrize(
    ("n_labels", "n_features", "density", "depth", "max_iter"),
    [
        (2, 3, 1.0, 1, 20),
        (9, 4, 0.5, 4, 20),  # depth beyond log2(n): one-label and empty nodes
        (37, 5, 0.7, 3, 20),
        (64, 5, 0.6, 5, 1),  # the random start alone
        (100, 7, 0.3, 4, 3),
        (150, 20, 1.0, 3, 20),  # dense
        (300, 40, 0.05, 6, 20),  # very sparse: many rows share no column with the center
        (600, 40, 0.1, 6, 20),
    ],
)
@pytest.mark.parametrize("spherical", [True, False])
@pytest.mark.parametrize("seed", [0, 11, 2**64 - 1])
def test_core_matches_reference(n_labels, n_features, density, depth, max_iter, spherical, seed):
    Z = tie_free_embeddings(n_labels, n_features, seed=seed % 1000 + n_labels, density=density)
    expected = ref.balanced_kmeans_leaves(Z, depth, max_iter, spherical, seed)
    np.testing.assert_array_equal(core_leaves(Z, depth, max_iter, spherical, seed), expected)


@pytest.mark.parametrize("spherical", [True, False])
@pytest.mark.parametrize("sparse_input", [True, False])
def test_fit_matches_reference(spherical, sparse_input):
    # Through the estimator: depth, kmeans_max_iter, spherical and random_state reach the kernel.
    Z = tie_free_embeddings(500, 30, seed=3, density=0.2)
    model = HierarchicalKMeans(
        n_splits=4, max_leaf_size=9, kmeans_max_iter=4, spherical=spherical, random_state=123
    )
    chain = model.fit(sp.csr_matrix(Z) if sparse_input else Z)
    depth = binary_depth(500, 9)
    expected = ref.balanced_kmeans_leaves(Z, depth, 4, spherical, seed=123)
    np.testing.assert_array_equal(chain.assignments[-1], expected)


def test_signed_zero_scores_follow_total_order():
    # Rows 2 and 3 share no column with the center c = z_0 - z_1, so both score zero: +0.0 for row 2
    # (a positive value) and -0.0 for row 3 (sums start at -0.0, and -0.0 + -0.0 = -0.0). The core
    # sorts scores with f64::total_cmp, which puts -0.0 first, so row 3 goes left although its id is
    # larger; the reference reproduces that.
    Z = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, -1.0]], dtype=np.float32)
    seed = next(s for s in range(100) if ref.rust_start(s)(0, 0, 4) == (0, 1))
    codes = core_leaves(Z, 1, 1, True, seed)
    np.testing.assert_array_equal(codes, ref.balanced_kmeans_leaves(Z, 1, 1, True, seed))
    np.testing.assert_array_equal(codes, [1, 0, 1, 0])


@settings(max_examples=40, deadline=None)
@given(
    n_labels=st.integers(1, 120),
    n_features=st.integers(1, 15),
    density=st.floats(0.05, 1.0),
    depth=st.integers(1, 6),
    max_iter=st.integers(1, 25),
    spherical=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
    column_order=st.randoms(use_true_random=False),
)
def test_core_matches_reference_property(
    n_labels, n_features, density, depth, max_iter, spherical, seed, column_order
):
    Z = tie_free_embeddings(n_labels, n_features, seed=seed % 2**32, density=density)
    expected = ref.balanced_kmeans_leaves(Z, depth, max_iter, spherical, seed)
    np.testing.assert_array_equal(core_leaves(Z, depth, max_iter, spherical, seed), expected)
    # The tree does not depend on the column order (which changes the core's summation order).
    perm = list(range(n_features))
    column_order.shuffle(perm)
    np.testing.assert_array_equal(core_leaves(Z[:, perm], depth, max_iter, spherical, seed), expected)


def test_same_tree_for_any_thread_count():
    # Large enough for every path: nodes of >= 4096 labels score in parallel, and deep levels split
    # many nodes in parallel.
    Z = random_embeddings(9000, 300, seed=5, density=0.02)
    for spherical in (True, False):
        codes = core_leaves(Z, 9, 20, spherical, seed=4, n_threads=1)
        for n_threads in (2, 3):
            other = core_leaves(Z, 9, 20, spherical, seed=4, n_threads=n_threads)
            np.testing.assert_array_equal(other, codes)
    chains = [
        HierarchicalKMeans(n_splits=8, max_leaf_size=20, random_state=4, n_jobs=n).fit(Z)
        for n in (None, 1, 2, -1)
    ]
    assert all(chain == chains[0] for chain in chains[1:])


def test_kernel_rejects_bad_parameters():
    args = csr_args(ref.as_kernel_input(np.eye(4)))
    kwargs = dict(max_iter=5, spherical=True, seed=0, n_threads=1)
    with pytest.raises(InvalidParameterError, match="depth"):
        _pecos_rs.balanced_kmeans_leaves(args, depth=0, **kwargs)
    with pytest.raises(InvalidParameterError, match="depth"):
        _pecos_rs.balanced_kmeans_leaves(args, depth=32, **kwargs)
    with pytest.raises(InvalidParameterError, match="kmeans_max_iter"):
        _pecos_rs.balanced_kmeans_leaves(args, depth=1, **{**kwargs, "max_iter": 0})
    indptr, indices, data, n_rows, n_cols = args
    with pytest.raises(InvalidInputError):
        _pecos_rs.balanced_kmeans_leaves((indptr, indices + 10, data, n_rows, n_cols), depth=1, **kwargs)


# -------------------------------------------------------------------------------- HierarchicalKMeans


@pytest.mark.parametrize("spherical", [True, False])
def test_leaf_sizes_are_balanced(spherical):
    n_labels, max_leaf = 1000, 7
    chain = HierarchicalKMeans(n_splits=4, max_leaf_size=max_leaf, spherical=spherical).fit(
        random_embeddings(n_labels, 20, seed=1)
    )
    depth = binary_depth(n_labels, max_leaf)
    assert depth == 8
    sizes = leaf_sizes(chain)
    assert sizes.size == 2**depth
    # Exact halving keeps every node of depth t at floor or ceil of L / 2^t.
    assert set(sizes.tolist()) == {n_labels // 2**depth, -(-n_labels // 2**depth)}
    assert chain.layer_sizes == [4, 16, 64, 256, n_labels]
    # The left child of every node holds floor(n / 2) labels: check it on the binary levels above.
    codes = chain.assignments[-1].astype(np.int64)
    for level in range(1, depth + 1):
        node_sizes = np.bincount(codes >> (depth - level), minlength=2**level)
        parent_sizes = node_sizes[0::2] + node_sizes[1::2]
        np.testing.assert_array_equal(node_sizes[0::2], parent_sizes // 2)


@pytest.mark.parametrize(
    ("n_labels", "expected"),
    [(22908, [16, 256, 22908]), (30938, [2, 32, 512, 30938])],
)
def test_layer_sizes_of_worked_examples(n_labels, expected):
    Z = np.random.default_rng(0).standard_normal((n_labels, 3))
    chain = HierarchicalKMeans(kmeans_max_iter=3).fit(Z)
    assert chain.layer_sizes == expected
    assert leaf_sizes(chain).max() <= 100


def test_single_label_nodes_leave_empty_leaves():
    chain = HierarchicalKMeans(n_splits=2, max_leaf_size=1).fit(np.eye(3))
    # 3 labels at depth 2: 3 -> (1, 2) -> (0, 1), (1, 1).
    np.testing.assert_array_equal(leaf_sizes(chain), [0, 1, 1, 1])
    assert chain.layer_sizes == [2, 4, 3]


def test_max_leaf_size_at_least_n_labels_gives_one_layer():
    Z = random_embeddings(50, 5, seed=0)
    assert HierarchicalKMeans(max_leaf_size=50).fit(Z) == ClusterChain.one_layer(50)
    assert HierarchicalKMeans(max_leaf_size=49).fit(Z).layer_sizes == [2, 50]


@pytest.mark.parametrize(
    ("min_codes", "expected"),
    [
        (None, [2, 4, 8, 16, 1600]),
        (1, [2, 4, 8, 16, 1600]),
        (5, [4, 8, 16, 1600]),
        (8, [8, 16, 1600]),
        (100, [16, 1600]),
    ],
)
def test_min_codes_controls_grouping(min_codes, expected):
    Z = random_embeddings(1600, 4, seed=0)
    model = HierarchicalKMeans(n_splits=2, max_leaf_size=100, min_codes=min_codes, kmeans_max_iter=2)
    chain = model.fit(Z)
    assert chain.layer_sizes == expected


def test_grouping_merges_consecutive_leaves():
    Z = random_embeddings(640, 4, seed=0)
    chain = HierarchicalKMeans(n_splits=4, max_leaf_size=10, kmeans_max_iter=2).fit(Z)
    assert chain.layer_sizes == [4, 16, 64, 640]
    for parents in chain.assignments[1:-1]:
        np.testing.assert_array_equal(parents, np.arange(parents.size) // 4)
    np.testing.assert_array_equal(chain.assignments[0], 0)


def test_same_seed_same_chain_and_different_seed_differs():
    Z = random_embeddings(500, 30, seed=3)
    chain = HierarchicalKMeans(max_leaf_size=20, n_splits=4, random_state=7).fit(Z)
    assert HierarchicalKMeans(max_leaf_size=20, n_splits=4, random_state=7).fit(Z) == chain
    others = [HierarchicalKMeans(max_leaf_size=20, n_splits=4, random_state=s).fit(Z) for s in range(3)]
    assert any(other != chain for other in others)


@pytest.mark.parametrize("spherical", [True, False])
def test_dense_and_sparse_inputs_give_the_same_chain(spherical):
    Z = random_embeddings(300, 25, seed=4)
    Z.data[::7] = 0.0  # explicit zeros must not matter
    Z.data[1::5] *= -1.0
    model = HierarchicalKMeans(max_leaf_size=10, n_splits=2, spherical=spherical)
    chain = model.fit(Z)
    assert model.fit(Z.toarray()) == chain
    assert model.fit(Z.toarray().astype(np.float32)) == chain
    assert model.fit(Z.tocoo()) == chain
    assert model.fit(sp.csr_array(Z)) == chain
    assert model.fit(Z.toarray().tolist()) == chain
    assert np.count_nonzero(Z.data == 0) > 0  # the caller's explicit zeros are left in place


def test_fit_leaves_its_input_alone():
    Z = random_embeddings(200, 10, seed=2).astype(np.float32)
    Z.data[::3] = 0.0
    before = (Z.data.copy(), Z.indices.copy(), Z.indptr.copy())
    HierarchicalKMeans(max_leaf_size=10).fit(Z)
    for after, old in zip((Z.data, Z.indices, Z.indptr), before):
        np.testing.assert_array_equal(after, old)


def separated_groups(seed: int, group_size: int = 50):
    """Four groups of labels in two super-groups ({0, 1} and {2, 3}), in shuffled label order.

    Each label has a super-group feature, a group feature and a label-specific feature, with random
    per-label weights: with exactly equal weights the data is so symmetric that a balanced split
    mixing two groups half and half is a genuine fixed point of 2-means (seeds 0 and 3 find one),
    which real data never is. The weights vary little, though: with a wide spread (0.5 to 1.5) on the
    feature that two groups share, splitting their node by that weight alone is a fixed point too
    (seed 57, non-spherical, finds one), and then two leaves mix groups for a good reason.
    The first split need not follow the super-groups: pairing groups across them ({0, 3} | {1, 2})
    is a fixed point as well, since the super-group features then cancel out in the center.
    """
    rng = np.random.default_rng(seed)
    group = rng.permutation(np.repeat(np.arange(4), group_size))
    n = group.size
    Z = np.zeros((n, 6 + n))
    Z[np.arange(n), group // 2] = rng.uniform(0.8, 1.2, n)
    Z[np.arange(n), 2 + group] = rng.uniform(0.8, 1.2, n)
    Z[np.arange(n), 6 + np.arange(n)] = rng.uniform(0.0, 0.1, n)
    return Z, group


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("spherical", [True, False])
def test_well_separated_groups_become_leaves(seed, spherical):
    group_size = 50
    Z, group = separated_groups(seed, group_size)
    model = HierarchicalKMeans(n_splits=2, max_leaf_size=group_size, random_state=seed, spherical=spherical)
    chain = model.fit(Z)
    assert chain.layer_sizes == [2, 4, 4 * group_size]
    leaves = chain.assignments[-1].astype(np.int64)
    for leaf in range(4):
        members = group[leaves == leaf]
        assert members.size == group_size
        assert np.unique(members).size == 1, f"leaf {leaf} mixes groups {np.unique(members)}"


def test_all_zero_embeddings_still_give_a_balanced_tree():
    for Z in (sp.csr_matrix((20, 6)), np.zeros((20, 0))):
        chain = HierarchicalKMeans(n_splits=2, max_leaf_size=5).fit(Z)
        np.testing.assert_array_equal(chain.assignments[-1], np.repeat(np.arange(4), 5))


def test_identical_rows_are_split_by_label_id():
    # Every score ties, so each node's lower ids go left: the leaves are consecutive id blocks.
    chain = HierarchicalKMeans(n_splits=2, max_leaf_size=4).fit(np.ones((16, 3)))
    np.testing.assert_array_equal(chain.assignments[-1], np.repeat(np.arange(4), 4))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_splits": 3}, "power of 2"),
        ({"n_splits": 1}, "n_splits must be an integer >= 2"),
        ({"n_splits": 2.0}, "n_splits must be an integer"),
        ({"max_leaf_size": 0}, "max_leaf_size"),
        ({"max_leaf_size": True}, "max_leaf_size"),
        ({"kmeans_max_iter": 0}, "kmeans_max_iter"),
        ({"random_state": -1}, "random_state"),
        ({"random_state": 2**64}, "random_state"),
        ({"random_state": 1.0}, "random_state"),
        ({"random_state": None}, "random_state"),
        ({"min_codes": 0}, "min_codes"),
        ({"spherical": "yes"}, "spherical"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"n_jobs": 1.5}, "n_jobs"),
    ],
)
def test_invalid_parameters(params, message):
    with pytest.raises(InvalidParameterError, match=message):
        HierarchicalKMeans(**params).fit(np.eye(4))


def test_largest_seed_is_accepted():
    Z = random_embeddings(64, 5, seed=0)
    chain = HierarchicalKMeans(max_leaf_size=8, random_state=np.uint64(2**64 - 1)).fit(Z)
    assert chain == HierarchicalKMeans(max_leaf_size=8, random_state=2**64 - 1).fit(Z)


@pytest.mark.parametrize(
    ("Z", "message"),
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or infinite"),
        (sp.csr_matrix(np.array([[1.0, np.inf], [0.0, 1.0]])), "NaN or infinite"),
        (np.array([[1e300, 0.0], [0.0, 1.0]]), "NaN or infinite"),  # overflows float32
        (np.ones(4), "2-D"),
        (np.ones((0, 3)), "at least one row"),
        (sp.csr_matrix((0, 3)), "at least one row"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_invalid_embeddings(Z, message):
    with pytest.raises(InvalidInputError, match=message):
        HierarchicalKMeans().fit(Z)


def test_verbose_logs_one_summary_line(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="pecos_rs"):
        HierarchicalKMeans(max_leaf_size=10, verbose=1).fit(random_embeddings(100, 5, seed=0))
    messages = [r.getMessage() for r in caplog.records if r.name == "pecos_rs"]
    assert len(messages) == 1
    assert messages[0].startswith("HierarchicalKMeans: 100 labels into 16 leaves (depth 4)")
    assert capsys.readouterr() == ("", "")


def test_silent_by_default(caplog):
    with caplog.at_level(logging.DEBUG, logger="pecos_rs"):
        HierarchicalKMeans(max_leaf_size=10).fit(random_embeddings(100, 5, seed=0))
    assert not caplog.records


@settings(max_examples=60, deadline=None)
@given(
    n_labels=st.integers(1, 300),
    max_leaf_size=st.integers(1, 64),
    log2_splits=st.integers(1, 4),
    spherical=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
)
def test_chain_is_a_valid_balanced_tree(n_labels, max_leaf_size, log2_splits, spherical, seed):
    n_splits = 2**log2_splits
    Z = random_embeddings(n_labels, 6, seed=seed % 1000, density=0.5)
    model = HierarchicalKMeans(
        n_splits=n_splits,
        max_leaf_size=max_leaf_size,
        spherical=spherical,
        random_state=seed,
        kmeans_max_iter=5,
    )
    chain = model.fit(Z)
    # Re-validating the arrays checks that every node points at an existing parent.
    assert ClusterChain(chain.assignments) == chain
    assert chain.n_labels == n_labels
    if max_leaf_size >= n_labels:
        assert chain == ClusterChain.one_layer(n_labels)
        return
    depth = binary_depth(n_labels, max_leaf_size)
    sizes = leaf_sizes(chain)
    assert sizes.size == 2**depth
    assert sizes.sum() == n_labels
    assert sizes.max() == -(-n_labels // 2**depth) <= max_leaf_size
    assert sizes.min() == n_labels // 2**depth
    assert chain.layer_sizes[0] <= n_splits
    for t in range(1, len(chain) - 1):
        # Internal layers come from grouping: each node has exactly n_splits children (or all of them).
        children = np.bincount(chain.assignments[t], minlength=chain.layer_sizes[t - 1])
        assert np.all(children == min(n_splits, chain.layer_sizes[t]))


# ------------------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", ["bibtex", "delicious"])
def test_real_data_smoke(name):
    X, Y = load_xmc(name, n_rows=3000)  # skips when ../shared/data is absent
    Z = pifa(Y, X)
    assert Z.shape == (Y.shape[1], X.shape[1])
    np.testing.assert_allclose(Z.toarray(), dense_pifa(Y.toarray(), X.toarray()), rtol=1e-4, atol=1e-6)
    Z2 = pifa(Y, X, n_jobs=2)
    assert (Z2 != Z).nnz == 0
    model = HierarchicalKMeans(n_splits=4, max_leaf_size=8)
    chain = model.fit(Z)
    assert HierarchicalKMeans(n_splits=4, max_leaf_size=8, n_jobs=2).fit(Z) == chain
    sizes = leaf_sizes(chain)
    assert sizes.max() <= 8 and sizes.max() - sizes.min() <= 1
    assert sizes.sum() == Y.shape[1]
    # PIFA rows are real-valued unit vectors: the per-node reference gives the same tree.
    depth = binary_depth(Y.shape[1], 8)
    np.testing.assert_array_equal(chain.assignments[-1], ref.balanced_kmeans_leaves(Z, depth, 20, True, 0))

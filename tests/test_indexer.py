"""Tests for pecos_rs.indexer: PIFA embeddings, ClusterChain and the balanced hierarchical 2-means."""

import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from pecos_rs.exceptions import InvalidInputError, InvalidParameterError
from pecos_rs.indexer import ClusterChain, HierarchicalKMeans, pifa

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


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


def reference_leaf_codes(Z: np.ndarray, max_leaf_size: int, max_iter: int, spherical: bool, seed: int):
    """Per-node, dense transcription of the balanced 2-means tree, for comparison.

    Uses the documented initialisation stream: level t draws, for its nodes of >= 2 labels in order,
    all first offsets r then all second offsets from numpy.random.default_rng([seed, t]).
    """
    n_labels = Z.shape[0]
    nodes = [np.arange(n_labels)]
    for level in range(binary_depth(n_labels, max_leaf_size)):
        rng = np.random.default_rng([seed, level])
        sizes = np.array([members.size for members in nodes])
        big = sizes[sizes >= 2]
        first = rng.integers(0, big)
        second = (first + rng.integers(1, big)) % big
        pairs = iter(zip(first, second))
        children = []
        for members in nodes:  # members are sorted by label id
            half = members.size // 2
            left = members[:half]
            if members.size >= 2:
                r, l = next(pairs)
                for it in range(max_iter):
                    if it == 0:
                        center = Z[members[r]] - Z[members[l]]
                    else:
                        in_left = np.isin(members, left)
                        right_sum, left_sum = Z[members[~in_left]].sum(0), Z[members[in_left]].sum(0)
                        if spherical:
                            right_sum /= max(np.linalg.norm(right_sum), 1e-300)
                            left_sum /= max(np.linalg.norm(left_sum), 1e-300)
                        else:
                            right_sum /= members.size - half
                            left_sum /= half
                        center = right_sum - left_sum
                    order = np.lexsort((members, Z[members] @ center))
                    new_left = np.sort(members[order[:half]])
                    if np.array_equal(new_left, left):
                        break
                    left = new_left
            children += [left, np.setdiff1d(members, left)]
        nodes = children
    codes = np.empty(n_labels, dtype=np.int64)
    for leaf, members in enumerate(nodes):
        codes[members] = leaf
    return codes


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
    assert model.fit(Z.tocoo()) == chain
    assert model.fit(sp.csr_array(Z)) == chain


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("spherical", [True, False])
def test_well_separated_groups_become_leaves(seed, spherical):
    rng = np.random.default_rng(seed)
    n_groups, group_size, n_features = 4, 50, 12
    centers = np.zeros((n_groups, n_features))
    for g in range(n_groups):
        centers[g, 3 * g : 3 * g + 3] = 1.0
    group = rng.permutation(np.repeat(np.arange(n_groups), group_size))
    Z = centers[group] + 0.1 * rng.random((group.size, n_features))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    model = HierarchicalKMeans(n_splits=2, max_leaf_size=group_size, random_state=seed, spherical=spherical)
    chain = model.fit(Z)
    assert chain.layer_sizes == [2, 4, n_groups * group_size]
    leaves = chain.assignments[-1]
    for leaf in range(n_groups):
        assert np.unique(group[leaves == leaf]).size == 1
        assert np.count_nonzero(leaves == leaf) == group_size


@pytest.mark.parametrize(
    ("n_labels", "max_leaf_size", "max_iter", "spherical"),
    [(37, 3, 20, True), (37, 3, 20, False), (64, 5, 1, True), (100, 7, 3, True), (9, 1, 20, True)],
)
@pytest.mark.parametrize("seed", [0, 11])
def test_matches_per_node_reference(n_labels, max_leaf_size, max_iter, spherical, seed):
    # Signed features, a few duplicated labels (exact score ties) and an all-zero label.
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n_labels, 5)) * (rng.random((n_labels, 5)) < 0.7)
    Z[1] = Z[4] = Z[7]
    Z[2] = 0.0
    expected = reference_leaf_codes(Z, max_leaf_size, max_iter, spherical, seed)
    model = HierarchicalKMeans(
        n_splits=2,
        max_leaf_size=max_leaf_size,
        kmeans_max_iter=max_iter,
        spherical=spherical,
        random_state=seed,
    )
    np.testing.assert_array_equal(model.fit(Z).assignments[-1], expected)
    # Large sparse problem: many nodes per level, node dropping and patched left sums all kick in.
    Zs = random_embeddings(600, 40, seed=seed, density=0.1).toarray()
    expected = reference_leaf_codes(Zs, 9, max_iter, spherical, seed)
    model.max_leaf_size = 9
    np.testing.assert_array_equal(model.fit(sp.csr_matrix(Zs)).assignments[-1], expected)


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
        ({"kmeans_max_iter": 0}, "kmeans_max_iter"),
        ({"random_state": -1}, "random_state"),
        ({"min_codes": 0}, "min_codes"),
        ({"spherical": "yes"}, "spherical"),
    ],
)
def test_invalid_parameters(params, message):
    with pytest.raises(InvalidParameterError, match=message):
        HierarchicalKMeans(**params).fit(np.eye(4))


@pytest.mark.parametrize(
    ("Z", "message"),
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or infinite"),
        (sp.csr_matrix(np.array([[1.0, np.inf], [0.0, 1.0]])), "NaN or infinite"),
        (np.ones(4), "2-D"),
        (np.ones((0, 3)), "at least one row"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_invalid_embeddings(Z, message):
    with pytest.raises(InvalidInputError, match=message):
        HierarchicalKMeans().fit(Z)


def test_verbose_logs_each_level(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="pecos_rs"):
        HierarchicalKMeans(max_leaf_size=10, verbose=1).fit(random_embeddings(100, 5, seed=0))
    messages = [r.getMessage() for r in caplog.records if r.name == "pecos_rs"]
    assert len(messages) == 4
    assert messages[0].startswith("HierarchicalKMeans level 1/4")
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
    seed=st.integers(0, 2**32 - 1),
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


@pytest.mark.parametrize("name", ["bibtex", "delicious"])
def test_real_data_pifa_tree(name):
    folder = DATA_ROOT / name
    if not (folder / "X.trn.npz").exists():
        pytest.skip(f"{folder} not found: real-data test needs ../shared/data beside the repo")
    X = sp.load_npz(folder / "X.trn.npz").tocsr()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X)
    Y = sp.load_npz(folder / "Y.trn.npz")
    Z = pifa(Y, X)
    assert Z.shape == (Y.shape[1], X.shape[1])
    chain = HierarchicalKMeans(n_splits=4, max_leaf_size=8).fit(Z)
    assert chain == HierarchicalKMeans(n_splits=4, max_leaf_size=8).fit(Z)
    sizes = leaf_sizes(chain)
    assert sizes.max() <= 8 and sizes.max() - sizes.min() <= 1
    assert sizes.sum() == Y.shape[1]

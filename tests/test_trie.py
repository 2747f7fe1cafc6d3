"""Tests for the indexers over label strings: TrieIndexer and HybridIndexer.

Both run in the Rust core. The references below build the same chains in pure Python from the
definitions: the trie from the padded keys of every level, the hybrid from that trie and one
HierarchicalKMeans per trie node (itself tested against kmeans_reference in test_indexer.py),
padded and joined.
"""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import kmeans_reference as ref
from pecos_rs import XRLinearClassifier
from pecos_rs.exceptions import InvalidInputError, InvalidParameterError, PecosError
from pecos_rs.indexer import ClusterChain, HierarchicalKMeans, HybridIndexer, TrieIndexer

# ------------------------------------------------------------------------------------- references


def trie_key(label: str, level: int) -> tuple[int, ...]:
    """``key_level(label)``: the first ``level`` code points, or the whole label followed by end
    markers (-1, below every code point) if it is shorter."""
    return tuple(map(ord, label[:level])) + (-1,) * (level - len(label))


def reference_trie(labels: list[str], depth: int) -> list[np.ndarray]:
    """The trie chain by its definition: level ``d`` has one node per distinct ``key_d``, numbered
    in key order; a node's parent is the node of its key less the last character; the labels
    hang from their level-``depth`` node."""
    node_ids = [{(): 0}]  # level 0: the root, whose key is empty
    for level in range(1, depth + 1):
        keys = sorted({trie_key(label, level) for label in labels})
        node_ids.append({key: i for i, key in enumerate(keys)})
    layers = [
        np.array([node_ids[level - 1][key[:-1]] for key in node_ids[level]], dtype=np.uint32)
        for level in range(1, depth + 1)
    ]
    layers.append(np.array([node_ids[depth][trie_key(label, depth)] for label in labels], dtype=np.uint32))
    return layers


def reference_hybrid(labels, Z, trie_depth, n_splits, max_leaf_size, kmeans_max_iter, spherical, seed):
    """The hybrid chain: the top ``trie_depth`` trie layers, then the HierarchicalKMeans chain of
    every level-``trie_depth`` node's rows (seeded like the core's nodes of level ``trie_depth``),
    the shallower ones padded with single children between their leaves and their labels, joined
    side by side in node order."""
    trie = reference_trie(labels, trie_depth)
    node_of_label = trie[-1]
    Z = sp.csr_matrix(Z)
    subtrees = []
    for node in range(int(node_of_label.max()) + 1):
        rows = np.flatnonzero(node_of_label == node)
        kmeans = HierarchicalKMeans(
            n_splits=n_splits,
            max_leaf_size=max_leaf_size,
            kmeans_max_iter=kmeans_max_iter,
            spherical=spherical,
            random_state=ref.node_seed(seed, trie_depth, node),
        )
        subtrees.append(kmeans.fit(Z[rows]).assignments)
    depth = max(map(len, subtrees))
    joined = [[] for _ in range(depth)]
    n_parents = [0] * depth  # per layer: the parents that the trees joined so far hang from
    for tree in subtrees:
        n_leaves = tree[-2].size if len(tree) > 1 else 1
        tree = tree[:-1] + [np.arange(n_leaves)] * (depth - len(tree)) + [tree[-1]]
        for j, layer in enumerate(tree):
            joined[j].append(layer + n_parents[j])
            n_parents[j] += 1 if j == 0 else tree[j - 1].size
    return trie[:-1] + [np.concatenate(layer).astype(np.uint32) for layer in joined]


def nodes_of_labels(chain: ClusterChain) -> list[np.ndarray]:
    """For every depth of inner nodes (1 .. len(chain) - 1), the node above each label there."""
    node = chain.assignments[-1].astype(np.int64)
    levels = [node]
    for parents in reversed(chain.assignments[1:-1]):
        node = parents[node].astype(np.int64)
        levels.append(node)
    return levels[::-1]


def assert_chain(chain: ClusterChain, expected: list[np.ndarray]) -> None:
    assert isinstance(chain, ClusterChain)
    assert chain.layer_sizes == [len(layer) for layer in expected]
    for got, want in zip(chain.assignments, expected):
        np.testing.assert_array_equal(got, want)


def assert_contiguous(node_of_label: np.ndarray) -> None:
    """Every node covers a contiguous range of label ids and the nodes come in label order: the
    label -> node map never decreases and takes every value in between."""
    steps = np.diff(node_of_label)
    assert node_of_label[0] == 0 and np.isin(steps, [0, 1]).all()


# ------------------------------------------------------------------------------------ strategies

# Characters that make prefixes collide and cover every UTF-8 length: "é" and "ê" share their first
# byte, U+FFFF and U+1F600 compare differently in UTF-16 and in code points, "\x00" is the lowest.
SHARP_CHARS = st.sampled_from(["a", "b", "\x00", "é", "ê", "日", "\uffff", "😀"])
# Lone surrogates are no Unicode scalar values, so no label can hold one (see test_bad_labels).
ANY_CHAR = st.characters(codec="utf-8")


def label_sets(min_size: int = 1, heads: str = ""):
    """Sorted sets of labels, two thirds of whose characters come from SHARP_CHARS, so that
    labels share prefixes; with ``heads``, each label starts with up to 3 of those characters,
    so that the top trie nodes hold many labels."""
    chars = st.one_of(SHARP_CHARS, SHARP_CHARS, ANY_CHAR)
    head = st.text(st.sampled_from(heads), max_size=3) if heads else st.just("")
    label = st.builds(str.__add__, head, st.text(chars, max_size=7))
    return st.lists(label, min_size=min_size, max_size=60).map(lambda labels: sorted(set(labels)))


def random_embeddings(n_labels: int, n_features: int, seed: int) -> np.ndarray:
    """Signed random float32 rows, a third of them zero per entry: ties only for a structural cause."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n_labels, n_features)) * (rng.random((n_labels, n_features)) < 0.7)
    return Z.astype(np.float32)


def words(n: int, seed: int, alphabet: str = "abc", max_len: int = 5) -> list[str]:
    """``n`` distinct sorted strings over ``alphabet``, of 1 to ``max_len`` characters."""
    pool = ["".join(p) for k in range(1, max_len + 1) for p in itertools.product(alphabet, repeat=k)]
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(pool, size=n, replace=False).tolist())


# ------------------------------------------------------------------------------------------- trie


def test_trie_of_a_worked_example():
    # Level 1: "", "a", "b"; level 2: "" + end, "a" + end, "ab", "ac", "b" + end; level 3: one
    # node per label ("ab" + end and "abc" part there); depth 1: one leaf per first character.
    labels = ["", "a", "ab", "abc", "ac", "b"]
    chain = TrieIndexer(depth=3).fit(labels)
    assert_chain(chain, [[0, 0, 0], [0, 1, 1, 1, 2], [0, 1, 2, 2, 3, 4], [0, 1, 2, 3, 4, 5]])
    assert_chain(TrieIndexer(depth=1).fit(labels), [[0, 0, 0], [0, 1, 1, 1, 1, 2]])
    # A path shorter than the depth goes on through single children.
    assert_chain(TrieIndexer(depth=4).fit(["x"]), [[0], [0], [0], [0], [0]])


def test_trie_counts_characters_not_bytes():
    labels = ["aé", "aêx", "aêy", "日本", "日本語", "😀"]
    chain = TrieIndexer(depth=2).fit(labels)
    assert_chain(chain, reference_trie(labels, 2))
    assert chain.layer_sizes == [3, 4, 6]


@settings(max_examples=200, deadline=None)
@given(labels=label_sets(), depth=st.integers(1, 20))
def test_trie_matches_the_reference(labels, depth):
    chain = TrieIndexer(depth=depth).fit(labels)
    assert len(chain) == depth + 1
    assert_chain(chain, reference_trie(labels, depth))
    for node_of_label in nodes_of_labels(chain):
        assert_contiguous(node_of_label)


def test_trie_accepts_any_sequence_of_str():
    labels = ["ab", "b", "c"]
    expected = TrieIndexer(depth=2).fit(labels)
    assert TrieIndexer(depth=2).fit(tuple(labels)) == expected
    assert TrieIndexer(depth=2).fit(np.array(labels)) == expected  # numpy's str_ items are str
    assert TrieIndexer(depth=2).fit(iter(labels)) == expected
    assert TrieIndexer(depth=np.int64(2)).fit(labels) == expected
    assert TrieIndexer().fit(labels) == TrieIndexer(depth=16).fit(labels)


# ----------------------------------------------------------------------------------------- hybrid


@settings(max_examples=60, deadline=None)
@given(
    labels=label_sets(min_size=20, heads="ab"),
    trie_depth=st.integers(1, 3),
    n_splits=st.sampled_from([2, 4]),
    max_leaf_size=st.integers(1, 6),
    spherical=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
)
def test_hybrid_matches_the_reference(labels, trie_depth, n_splits, max_leaf_size, spherical, seed):
    Z = random_embeddings(len(labels), 6, seed=seed % 2**32)
    params = dict(
        trie_depth=trie_depth,
        n_splits=n_splits,
        max_leaf_size=max_leaf_size,
        kmeans_max_iter=10,
        spherical=spherical,
    )
    chain = HybridIndexer(**params, random_state=seed).fit(labels, Z)
    assert_chain(chain, reference_hybrid(labels, Z, seed=seed, **params))


@pytest.mark.parametrize("trie_depth", [1, 2, 3])
def test_hybrid_structure(trie_depth):
    labels = words(400, seed=trie_depth, alphabet="abcd")
    Z = random_embeddings(len(labels), 10, seed=1)
    max_leaf_size = 3
    chain = HybridIndexer(trie_depth=trie_depth, n_splits=4, max_leaf_size=max_leaf_size).fit(labels, Z)
    trie = reference_trie(labels, trie_depth)
    # The top is the trie; every label sits below its own trie node, at the same depth.
    for got, want in zip(chain.assignments[:trie_depth], trie[:-1]):
        np.testing.assert_array_equal(got, want)
    levels = nodes_of_labels(chain)
    np.testing.assert_array_equal(levels[trie_depth - 1], trie[-1])
    assert chain.n_labels == len(labels)
    # Below it, the sub-tree of each trie node holds a contiguous block of the nodes of every
    # layer, empty leaves included, and no leaf holds more than max_leaf_size labels.
    trie_node = np.arange(trie[-1].max() + 1)
    for parents in chain.assignments[trie_depth:-1]:
        trie_node = trie_node[parents]
        assert_contiguous(trie_node)
    np.testing.assert_array_equal(trie_node[chain.assignments[-1]], trie[-1])
    assert np.bincount(chain.assignments[-1]).max() <= max_leaf_size
    # The chain is as deep as the deepest sub-tree requires: balanced halving down to leaves of
    # at most max_leaf_size labels, grouped by 4 above them.
    largest = np.bincount(trie[-1]).max()
    if largest <= max_leaf_size:
        assert len(chain) == trie_depth + 1
    else:
        binary_levels = int(np.ceil(np.log2(largest / max_leaf_size)))
        assert len(chain) == trie_depth + 1 + (binary_levels + 1) // 2


def test_hybrid_with_one_trie_node_is_the_kmeans_tree():
    # Every label starts with "ab": the trie is a single path and its one node's sub-tree is the
    # HierarchicalKMeans tree of all the labels, seeded as node 0 of level trie_depth.
    labels = ["ab" + w for w in words(300, seed=5)]
    Z = random_embeddings(len(labels), 8, seed=2)
    chain = HybridIndexer(trie_depth=2, n_splits=4, max_leaf_size=10, random_state=9).fit(labels, Z)
    kmeans = HierarchicalKMeans(n_splits=4, max_leaf_size=10, random_state=ref.node_seed(9, 2, 0)).fit(Z)
    assert_chain(chain, [[0], [0]] + kmeans.assignments)


def test_hybrid_with_large_leaves_is_the_trie():
    labels = words(200, seed=3)
    Z = random_embeddings(len(labels), 4, seed=3)
    for trie_depth in (1, 2, 4):
        chain = HybridIndexer(trie_depth=trie_depth, max_leaf_size=len(labels)).fit(labels, Z)
        assert chain == TrieIndexer(depth=trie_depth).fit(labels)


def test_hybrid_dense_and_sparse_embeddings_give_the_same_chain():
    labels = words(150, seed=4)
    Z = random_embeddings(len(labels), 12, seed=4)
    model = HybridIndexer(trie_depth=1, max_leaf_size=5)
    chain = model.fit(labels, Z)
    assert model.fit(labels, sp.csr_matrix(Z)) == chain
    assert model.fit(labels, sp.csc_matrix(Z.astype(np.float64))) == chain
    assert model.fit(labels, Z.tolist()) == chain


def test_hybrid_is_the_same_for_any_thread_count():
    labels = words(3000, seed=6, alphabet="abcdef")
    Z = sp.random(len(labels), 200, density=0.05, format="csr", random_state=6, dtype=np.float32)
    for trie_depth in (1, 2):
        chains = [
            HybridIndexer(trie_depth=trie_depth, max_leaf_size=4, random_state=3, n_jobs=n).fit(labels, Z)
            for n in (None, 1, 2, 3, -1)
        ]
        assert all(chain == chains[0] for chain in chains[1:])


def test_hybrid_seed_changes_the_subtrees_only():
    labels = words(300, seed=7)
    Z = random_embeddings(len(labels), 8, seed=7)
    chains = [HybridIndexer(trie_depth=1, max_leaf_size=5, random_state=s).fit(labels, Z) for s in range(4)]
    assert any(chain != chains[0] for chain in chains[1:])
    assert all(chain.layer_sizes == chains[0].layer_sizes for chain in chains)


# ---------------------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    "indexer",
    [
        TrieIndexer(depth=3),
        TrieIndexer(depth=16),
        HybridIndexer(trie_depth=1, max_leaf_size=4),
        HybridIndexer(trie_depth=2, n_splits=4, max_leaf_size=2),
    ],
    ids=["trie-3", "trie-16", "hybrid-1", "hybrid-2"],
)
def test_classifier_trains_over_the_chains(planted, indexer):
    labels = words(planted.n_labels, seed=8)
    if isinstance(indexer, TrieIndexer):
        chain = indexer.fit(labels)
    else:
        chain = indexer.fit(labels, np.asarray(planted.Y.T @ planted.X.toarray()))
    clf = XRLinearClassifier(beam_size=10, topk=5).fit(planted.X, planted.Y, cluster_chain=chain)
    assert clf.cluster_chain_ is chain
    top, scores = clf.predict_topk(planted.X_test)
    assert top.shape == (planted.X_test.shape[0], 5)
    assert ((top >= 0) & (top < planted.n_labels)).all()
    # Better than chance (1/40): the tree routes queries to their labels.
    hits = planted.Y_test[np.arange(top.shape[0]), top[:, 0]]
    assert np.asarray(hits).mean() > 0.3


# --------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["a", "c", "b"], r"label 2 \('b'\) is not after label 1 \('c'\)"),
        (["a", "b", "b"], r"sorted and unique: label 2 \('b'\) is not after label 1 \('b'\)"),
        (["é", "z"], r"label 1 \('z'\) is not after label 0 \('é'\)"),  # code point order
        (["a", 3], "label 1 is a int, not a str"),
        (["a", b"b"], "label 1 is a bytes, not a str"),
        (["a", None], "label 1 is a NoneType, not a str"),
        (["a", "b\ud800"], "label 1 is not valid Unicode"),
        ([], "at least one label"),
        ("abc", "sequence of str, got a single str"),
        (b"abc", "sequence of str, got a single bytes"),
        (3, "sequence of str, got int"),
    ],
)
def test_bad_labels(labels, message):
    with pytest.raises(InvalidInputError, match=message):
        TrieIndexer(depth=2).fit(labels)
    n_rows = max(1, len(labels)) if hasattr(labels, "__len__") else 1
    with pytest.raises(InvalidInputError, match=message):
        HybridIndexer().fit(labels, np.ones((n_rows, 2)))


@pytest.mark.parametrize(
    ("Z", "message"),
    [
        (np.ones((2, 3)), r"embedding rows \(one per label\): expected 3, got 2"),
        (np.ones((4, 3)), "expected 3, got 4"),
        (np.ones(3), "2-D"),
        (np.full((3, 2), np.nan), "NaN or infinite"),
        ("text", "numeric matrix"),
    ],
)
def test_bad_embeddings(Z, message):
    with pytest.raises(InvalidInputError, match=message):
        HybridIndexer().fit(["a", "b", "c"], Z)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(depth=0), "depth must be an integer >= 1, got 0"),
        (dict(depth=2.0), "depth must be an integer >= 1, got 2.0"),
        (dict(depth=True), "depth must be an integer >= 1, got True"),
        (dict(depth=None), "depth must be an integer >= 1, got None"),
    ],
)
def test_bad_trie_parameters(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        TrieIndexer(**kwargs).fit(["a", "b"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(trie_depth=0), "trie_depth must be an integer >= 1, got 0"),
        (dict(n_splits=3), r"n_splits must be a power of 2 \(2, 4, 8, ...\), got 3"),
        (dict(n_splits=1), "n_splits must be an integer >= 2, got 1"),
        (dict(max_leaf_size=0), "max_leaf_size must be an integer >= 1, got 0"),
        (dict(kmeans_max_iter=0), "kmeans_max_iter must be an integer >= 1, got 0"),
        (dict(spherical=1), "spherical must be a bool, got 1"),
        (dict(random_state=-1), r"random_state must be an integer in \[0, 2\*\*64\), got -1"),
        (dict(n_jobs=0), "n_jobs must be None or a nonzero integer"),
    ],
)
def test_bad_hybrid_parameters(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        HybridIndexer(**kwargs).fit(["a", "b"], np.eye(2))


def test_errors_are_pecos_errors_and_value_errors():
    for call in (
        lambda: TrieIndexer().fit(["b", "a"]),
        lambda: TrieIndexer(depth=-1).fit(["a"]),
        lambda: HybridIndexer().fit(["a"], np.ones((2, 2))),
    ):
        with pytest.raises(PecosError) as info:
            call()
        assert isinstance(info.value, ValueError)

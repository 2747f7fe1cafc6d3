//! Indexing: PIFA embeddings, the balanced 2-means kernel, and the indexers that build the label
//! tree: hierarchical k-means, the trie and the hybrid (trie + k-means).

use crate::convert::{chain_arrays, csr_arrays, CsrArgs, CsrArrays, ParamsArg, StrList};
use crate::error::core;
use crate::threads::{run_detached, run_interruptible};
use numpy::PyArray1;
use numpy::PyReadonlyArray1;
use pecos_core::index::{
    balanced_kmeans_leaves, balanced_kmeans_subtree, binary_depth, node_layer_sizes, pifa,
    pifa_of_labels, EmbeddedLabels, HierarchicalKMeans, HybridIndexer, Indexer, KMeansParams,
    SubTreeRoot, TrieIndexer,
};
use pecos_core::PecosError;
use pyo3::prelude::*;
use pyo3::types::PyList;

/// PIFA label embeddings of `y` (n x L) over `x` (n x d), as CSR arrays (L x d). Releases the GIL.
#[pyfunction]
#[pyo3(name = "pifa", signature = (x, y, *, n_threads))]
pub fn py_pifa<'py>(
    py: Python<'py>,
    x: CsrArgs<'py>,
    y: CsrArgs<'py>,
    n_threads: usize,
) -> PyResult<CsrArrays<'py>> {
    let (xv, yv) = (x.view()?, y.view()?);
    let z = run_detached(py, n_threads, || pifa(&xv, &yv))?;
    let (n_rows, n_cols, indptr, indices, data) = z.into_parts();
    Ok(csr_arrays(py, indptr, indices, data, (n_rows, n_cols)))
}

/// The rows of `pifa(x, y)` for the columns `labels` of `y` only, bit for bit (each row of `y`
/// weighted by the norm of the whole row), as CSR arrays (len(labels) x d). Releases the GIL.
#[pyfunction]
#[pyo3(name = "pifa_of_labels", signature = (x, y, labels, *, n_threads))]
pub fn py_pifa_of_labels<'py>(
    py: Python<'py>,
    x: CsrArgs<'py>,
    y: CsrArgs<'py>,
    labels: PyReadonlyArray1<'py, u32>,
    n_threads: usize,
) -> PyResult<CsrArrays<'py>> {
    let (xv, yv) = (x.view()?, y.view()?);
    let labels = labels.as_slice()?;
    let z = run_detached(py, n_threads, || pifa_of_labels(&xv, &yv, labels))?;
    let (n_rows, n_cols, indptr, indices, data) = z.into_parts();
    Ok(csr_arrays(py, indptr, indices, data, (n_rows, n_cols)))
}

/// Leaf codes (`0..2^depth`) of the rows of `z`, the labels of node `root_node` at level
/// `root_level` of a balanced 2-means tree over embeddings of `tree_nnz` nonzeros, split `depth`
/// more levels: those of the whole tree's leaves under that node, bit for bit. Releases the GIL.
#[pyfunction]
#[pyo3(name = "balanced_kmeans_subtree", signature = (z, *, depth, max_iter, spherical, seed, root_level, root_node, tree_nnz, n_threads))]
#[allow(clippy::too_many_arguments)]
pub fn py_balanced_kmeans_subtree<'py>(
    py: Python<'py>,
    z: CsrArgs<'py>,
    depth: usize,
    max_iter: usize,
    spherical: bool,
    seed: u64,
    root_level: usize,
    root_node: usize,
    tree_nnz: usize,
    n_threads: usize,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let zv = z.view()?;
    let params = KMeansParams {
        depth,
        max_iter,
        spherical,
        seed,
    };
    let root = SubTreeRoot {
        level: root_level,
        node: root_node,
        tree_nnz,
    };
    let codes = run_detached(py, n_threads, || {
        balanced_kmeans_subtree(&zv, &params, &root, None)
    })?;
    Ok(PyArray1::from_vec(py, codes))
}

/// The shape of the k-means indexer's tree over `n_labels` labels: the depth of its binary tree
/// and the node counts of the chain's layers between the root and the labels, top first (the
/// grouping `chain_from_leaf_codes` does). Distributed training cuts the tree along them.
#[pyfunction]
#[pyo3(name = "kmeans_tree_shape", signature = (n_labels, *, max_leaf_size, n_splits, min_codes))]
pub fn py_kmeans_tree_shape(
    n_labels: usize,
    max_leaf_size: usize,
    n_splits: usize,
    min_codes: usize,
) -> PyResult<(usize, Vec<usize>)> {
    let depth = binary_depth(n_labels, max_leaf_size);
    if depth > 31 {
        // As balanced_kmeans_leaves: deeper trees are refused (and 1 << depth must not overflow).
        return core(Err(PecosError::param(
            "max_leaf_size",
            format!("gives a tree of depth {depth} over {n_labels} labels; at most 31"),
        )));
    }
    Ok((depth, node_layer_sizes(1 << depth, n_splits, min_codes)))
}

/// Leaf code of every row of `z` in the balanced 2-means tree of the given depth (the kernel of
/// the k-means indexer, exposed to test it against a reference). Releases the GIL.
#[pyfunction]
#[pyo3(name = "balanced_kmeans_leaves", signature = (z, *, depth, max_iter, spherical, seed, n_threads))]
pub fn py_balanced_kmeans_leaves<'py>(
    py: Python<'py>,
    z: CsrArgs<'py>,
    depth: usize,
    max_iter: usize,
    spherical: bool,
    seed: u64,
    n_threads: usize,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let zv = z.view()?;
    let params = KMeansParams {
        depth,
        max_iter,
        spherical,
        seed,
    };
    let codes = run_detached(py, n_threads, || balanced_kmeans_leaves(&zv, &params, None))?;
    Ok(PyArray1::from_vec(py, codes))
}

/// The label tree of the rows of `z` (label embeddings) by the hierarchical k-means indexer with
/// the given parameters (a dict, validated here), as one parent array per layer. Releases the
/// GIL; Ctrl-C stops it with `KeyboardInterrupt`.
#[pyfunction]
#[pyo3(name = "hierarchical_kmeans", signature = (z, params, *, n_threads))]
pub fn py_hierarchical_kmeans<'py>(
    py: Python<'py>,
    z: CsrArgs<'py>,
    params: ParamsArg,
    n_threads: usize,
) -> PyResult<Vec<Bound<'py, PyArray1<u32>>>> {
    let indexer = params.read(HierarchicalKMeans::from_params)?;
    let zv = z.view()?;
    let chain = run_interruptible(py, n_threads, |stop| indexer.build(&zv, stop))?;
    Ok(chain_arrays(py, &chain))
}

/// The label tree of `labels` (sorted, unique strings) by the trie indexer with the given
/// parameters (a dict, validated here), as one parent array per layer. Releases the GIL; Ctrl-C
/// stops it with `KeyboardInterrupt`.
#[pyfunction]
#[pyo3(name = "trie_chain", signature = (labels, params))]
pub fn py_trie_chain<'py>(
    py: Python<'py>,
    labels: &Bound<'py, PyList>,
    params: ParamsArg,
) -> PyResult<Vec<Bound<'py, PyArray1<u32>>>> {
    let indexer = params.read(TrieIndexer::from_params)?;
    let labels = StrList::from_list(labels, "label", 0)?;
    let strings = labels.slices();
    // The trie is built in one pass per level, on one thread.
    let chain = run_interruptible(py, 1, |stop| indexer.build(&strings, stop))?;
    Ok(chain_arrays(py, &chain))
}

/// The label tree of `labels` (sorted, unique strings) embedded by the rows of `z`, by the
/// hybrid trie + 2-means indexer with the given parameters (a dict, validated here), as one
/// parent array per layer. Releases the GIL; Ctrl-C stops it with `KeyboardInterrupt`.
#[pyfunction]
#[pyo3(name = "hybrid_chain", signature = (labels, z, params, *, n_threads))]
pub fn py_hybrid_chain<'py>(
    py: Python<'py>,
    labels: &Bound<'py, PyList>,
    z: CsrArgs<'py>,
    params: ParamsArg,
    n_threads: usize,
) -> PyResult<Vec<Bound<'py, PyArray1<u32>>>> {
    let indexer = params.read(HybridIndexer::from_params)?;
    let labels = StrList::from_list(labels, "label", 0)?;
    let input = EmbeddedLabels {
        strings: &labels.slices(),
        embeddings: z.view()?,
    };
    let chain = run_interruptible(py, n_threads, |stop| indexer.build(&input, stop))?;
    Ok(chain_arrays(py, &chain))
}

/// Checks every parameter of the XR-Linear estimator (a dict of its `get_params()` less
/// `n_jobs` and `verbose`) without computing anything, so that a bad one fails before a fit
/// spends time on indexing.
#[pyfunction]
#[pyo3(name = "check_xlinear_params", signature = (params))]
pub fn py_check_xlinear_params(params: ParamsArg) -> PyResult<()> {
    core(pecos_core::train::XLinearParams::from_params(params.0)).map(drop)
}

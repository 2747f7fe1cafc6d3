//! Indexing kernels: PIFA embeddings and the balanced 2-means tree.

use crate::model::{csr_arrays, CsrArgs, CsrArrays};
use crate::threads::run_detached;
use numpy::PyArray1;
use pecos_core::indexer::{balanced_kmeans_leaves, pifa, KMeansParams};
use pyo3::prelude::*;

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

/// Leaf code of every row of `z` in the balanced 2-means tree of the given depth. Releases the GIL.
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
    let codes = run_detached(py, n_threads, || balanced_kmeans_leaves(&zv, &params))?;
    Ok(PyArray1::from_vec(py, codes))
}

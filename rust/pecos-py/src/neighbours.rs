//! The labels of a query's nearest training texts (`pecos_core::infer::NeighbourIndex`).
//!
//! A single query runs on the calling thread with reused buffers, batches in parallel; both
//! with the GIL released.

use crate::convert::{parse_metadata, reduce_by_bytes, topk_arrays, CsrArgs, TopKArrays};
use crate::error::core;
use crate::threads::run_detached;
use numpy::PyArray1;
use pecos_core::infer::{NeighbourIndex, NeighbourParams, Votes};
use pecos_core::io::Artifact;
use pecos_core::sparse::{CsrMatrix, CsrView};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use std::path::PathBuf;

/// Training texts by feature and their labels: a query's top labels are voted by its most
/// similar texts. Immutable and safe to share between threads.
#[pyclass(name = "NeighbourIndex", module = "pecos_rs._pecos_rs", frozen)]
pub struct PyNeighbourIndex {
    index: NeighbourIndex,
    /// Caller metadata saved with the index.
    metadata: serde_json::Value,
}

#[pymethods]
impl PyNeighbourIndex {
    /// The index of `postings` (CSR `n_features x n_texts`: the texts' rows transposed) and
    /// `text_labels` (CSR `n_texts x n_labels`: each text's labels with their shares), both
    /// copied, weights and shares >= 0; `metadata` is a JSON string saved with it.
    #[new]
    #[pyo3(signature = (postings, text_labels, *, metadata = "null"))]
    fn new(postings: CsrArgs<'_>, text_labels: CsrArgs<'_>, metadata: &str) -> PyResult<Self> {
        let metadata = parse_metadata(metadata)?;
        let index = core(NeighbourIndex::try_new(
            CsrMatrix::from_view(&postings.view()?),
            CsrMatrix::from_view(&text_labels.view()?),
        ))?;
        Ok(PyNeighbourIndex { index, metadata })
    }

    /// The top-`topk` labels of every row of `x` (CSR, one column per feature), voted by its
    /// `n_neighbours` most similar texts with `similarity ** power` each, as `(labels int64,
    /// scores float32)` of shape `(n, min(topk, n_labels))`, the best label scoring 1, padded
    /// with -1 / 0; with `return_nearest`, a third array (float32, one per row): the similarity
    /// of the row's nearest text (0 if none shares a feature with it). The answers do not
    /// depend on `n_threads`.
    #[pyo3(signature = (x, *, n_neighbours, power, topk, n_threads = 1, return_nearest = false))]
    #[allow(clippy::too_many_arguments)]
    fn predict_topk<'py>(
        &self,
        py: Python<'py>,
        x: CsrArgs<'py>,
        n_neighbours: usize,
        power: f32,
        topk: usize,
        n_threads: usize,
        return_nearest: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let xv = x.view()?;
        let params = NeighbourParams {
            n_neighbours,
            power,
            topk,
        };
        let votes = self.votes(py, &xv, &params, n_threads)?;
        let (labels, scores): TopKArrays<'py> = topk_arrays(py, votes.top, xv.n_rows())?;
        if return_nearest {
            let nearest = PyArray1::from_vec(py, votes.nearest);
            PyTuple::new(
                py,
                [labels.into_any(), scores.into_any(), nearest.into_any()],
            )
        } else {
            PyTuple::new(py, [labels.into_any(), scores.into_any()])
        }
    }

    #[getter]
    fn n_features(&self) -> usize {
        self.index.n_features()
    }

    #[getter]
    fn n_texts(&self) -> usize {
        self.index.n_texts()
    }

    #[getter]
    fn n_labels(&self) -> usize {
        self.index.n_labels()
    }

    /// Caller metadata stored with the index, as a JSON string.
    #[getter]
    fn metadata(&self) -> String {
        self.metadata.to_string()
    }

    /// Writes the index to one file (format version `NEIGHBOUR_FORMAT_VERSION`, checksummed).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        core(py.detach(|| self.index.save(&self.metadata, &path)))
    }

    /// Reads an index written by `save`; raises `ModelFormatError` for a corrupt, truncated or
    /// foreign file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let (index, metadata) = core(py.detach(|| NeighbourIndex::load(&path)))?;
        Ok(PyNeighbourIndex { index, metadata })
    }

    /// The index in the file format, as bytes (used for pickling).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.index.to_bytes(&self.metadata))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let (index, metadata) = core(py.detach(|| NeighbourIndex::from_bytes(data)))?;
        Ok(PyNeighbourIndex { index, metadata })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        reduce_by_bytes(slf.as_any(), slf.get().to_bytes(slf.py()))
    }

    fn __repr__(&self) -> String {
        format!(
            "NeighbourIndex(n_features={}, n_texts={}, n_labels={})",
            self.index.n_features(),
            self.index.n_texts(),
            self.index.n_labels()
        )
    }
}

impl PyNeighbourIndex {
    pub(crate) fn index(&self) -> &NeighbourIndex {
        &self.index
    }

    /// The votes for `xv`'s rows: a single row on the calling thread, a batch in a pool of
    /// `n_threads`; without the GIL.
    pub(crate) fn votes(
        &self,
        py: Python<'_>,
        xv: &CsrView<'_>,
        params: &NeighbourParams,
        n_threads: usize,
    ) -> PyResult<Votes> {
        let index = &self.index;
        if xv.n_rows() <= 1 {
            core(py.detach(|| index.search(xv, params)))
        } else {
            run_detached(py, n_threads, || index.search(xv, params))
        }
    }
}

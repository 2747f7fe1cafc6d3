//! Query autocompletion: the prefix top-k completion index (`pecos_core::qac`).
//!
//! Single lookups run on the calling thread with reused buffers and the GIL held (a lookup takes
//! about a microsecond, less than releasing and taking back the GIL); batches run in parallel
//! with the GIL released.

use crate::convert::{count_arg, floats_arg, parse_metadata, reduce_by_bytes, str_arg, StrList};
use crate::error::core;
use crate::threads::run_detached;
use numpy::PyArray1;
use pecos_core::io::Artifact;
use pecos_core::qac::{CompletionIndex, Suggestions};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use rayon::prelude::*;
use std::cell::RefCell;
use std::path::PathBuf;

/// `(ids int64, counts float64)` of some suggestions.
type IdsAndCounts<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>);

thread_local! {
    /// Buffers for single lookups on the calling thread, kept between calls.
    static SUGGESTIONS: RefCell<Suggestions> = RefCell::new(Suggestions::new());
}

/// Distinct queries with their counts, suggesting the most frequent completions of a prefix
/// (backing off to shorter prefixes); ids are positions in code point order of the queries.
/// Immutable and safe to share between threads.
#[pyclass(name = "CompletionIndex", module = "pecos_rs._pecos_rs", frozen)]
pub struct PyCompletionIndex {
    index: CompletionIndex,
    /// Caller metadata saved with the index (the Python wrapper's format and parameters).
    metadata: serde_json::Value,
}

#[pymethods]
impl PyCompletionIndex {
    /// The index of `queries` (a list of str, in any order; repeats have their counts summed)
    /// and their `counts` (a float64 array or a list of numbers, finite and >= 0), built on
    /// `n_threads` threads with the GIL released; `metadata` is a JSON string saved with it.
    #[new]
    #[pyo3(signature = (queries, counts, *, metadata = "null", n_threads = 1))]
    fn new(
        py: Python<'_>,
        queries: &Bound<'_, PyList>,
        counts: &Bound<'_, PyAny>,
        metadata: &str,
        n_threads: usize,
    ) -> PyResult<Self> {
        let queries = StrList::from_list(queries, "query", 0)?;
        let counts = floats_arg(counts, "counts")?;
        let counts = counts.values();
        let metadata = parse_metadata(metadata)?;
        let index = run_detached(py, n_threads, || {
            CompletionIndex::new(&queries.slices(), &counts)
        })?;
        Ok(PyCompletionIndex { index, metadata })
    }

    /// The top-`k` suggestions for `prefix` as a list of `(query, count)`, best first (fewer
    /// than `k` only if the index holds fewer queries).
    fn top_k<'py>(
        &self,
        py: Python<'py>,
        prefix: &Bound<'py, PyAny>,
        k: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let ids = self.lookup(prefix_arg(prefix)?, count_arg("k", k, 1)?);
        self.pairs(py, &ids)
    }

    /// The top-`k` suggestions for `prefix` as `(ids int64, counts float64)` arrays.
    fn top_k_ids<'py>(
        &self,
        py: Python<'py>,
        prefix: &Bound<'py, PyAny>,
        k: &Bound<'py, PyAny>,
    ) -> PyResult<IdsAndCounts<'py>> {
        let ids = self.lookup(prefix_arg(prefix)?, count_arg("k", k, 1)?);
        let counts = ids.iter().map(|&id| self.index.count(id as usize));
        Ok((
            PyArray1::from_iter(py, ids.iter().map(|&id| i64::from(id))),
            PyArray1::from_iter(py, counts.map(Option::unwrap_or_default)),
        ))
    }

    /// `top_k` of every prefix of a list, on `n_threads` threads with the GIL released (the
    /// answers do not depend on the thread count).
    #[pyo3(signature = (prefixes, k, *, n_threads = 1))]
    fn top_k_batch<'py>(
        &self,
        py: Python<'py>,
        prefixes: &Bound<'py, PyList>,
        k: &Bound<'py, PyAny>,
        n_threads: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let prefixes = StrList::from_list(prefixes, "prefix", 0)?;
        let k = count_arg("k", k, 1)?;
        let index = &self.index;
        let answers: Vec<Vec<u32>> = run_detached(py, n_threads, || {
            Ok(prefixes
                .slices()
                .par_iter()
                .map_init(Suggestions::new, |buffer, prefix| {
                    index.top_k_into(prefix, k, buffer);
                    buffer.ids().to_vec()
                })
                .collect())
        })?;
        let lists = answers
            .iter()
            .map(|ids| self.pairs(py, ids))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, lists)
    }

    /// The ids `(start, end)` of the queries starting with `prefix` (an empty range where it
    /// would be if none does).
    fn prefix_range(&self, prefix: &Bound<'_, PyAny>) -> PyResult<(usize, usize)> {
        Ok(self.index.prefix_range(prefix_arg(prefix)?))
    }

    fn __len__(&self) -> usize {
        self.index.len()
    }

    /// The queries in id order (code point order), as a new list.
    #[getter]
    fn queries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.index.queries())
    }

    /// The count of every query, in id order (a new array).
    #[getter]
    fn counts<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, self.index.counts())
    }

    /// Caller metadata stored with the index, as a JSON string.
    #[getter]
    fn metadata(&self) -> String {
        self.metadata.to_string()
    }

    /// Writes the index to one file (format version `QAC_FORMAT_VERSION`, checksummed).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        core(py.detach(|| self.index.save(&self.metadata, &path)))
    }

    /// Reads an index written by `save`; raises `ModelFormatError` for a corrupt, truncated or
    /// foreign file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let (index, metadata) = core(py.detach(|| CompletionIndex::load(&path)))?;
        Ok(PyCompletionIndex { index, metadata })
    }

    /// The index in the file format, as bytes (used for pickling).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.index.to_bytes(&self.metadata))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let (index, metadata) = core(py.detach(|| CompletionIndex::from_bytes(data)))?;
        Ok(PyCompletionIndex { index, metadata })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        reduce_by_bytes(slf.as_any(), slf.get().to_bytes(slf.py()))
    }

    fn __repr__(&self) -> String {
        format!("CompletionIndex(n_queries={})", self.index.len())
    }
}

impl PyCompletionIndex {
    /// The ids of the top-`k` suggestions for `prefix`, found with this thread's buffers. They
    /// are copied out before any Python object is made: making one can run Python code (a
    /// finalizer) that looks up again on this thread.
    fn lookup(&self, prefix: &str, k: usize) -> Vec<u32> {
        SUGGESTIONS.with_borrow_mut(|buffer| {
            self.index.top_k_into(prefix, k, buffer);
            buffer.ids().to_vec()
        })
    }

    /// `[(query, count), ...]` of the ids.
    fn pairs<'py>(&self, py: Python<'py>, ids: &[u32]) -> PyResult<Bound<'py, PyList>> {
        let index = &self.index;
        let pairs = ids.iter().map(|&id| {
            let id = id as usize;
            // Ids come from the index, so both are present.
            (
                index.query(id).unwrap_or_default(),
                index.count(id).unwrap_or_default(),
            )
        });
        PyList::new(py, pairs)
    }
}

fn prefix_arg<'a>(prefix: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    str_arg(prefix, || "prefix".to_string())
}

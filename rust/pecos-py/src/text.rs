//! Text featurization kernels: the n-gram counter (fit) and the fitted vocabulary (transform).
//!
//! A featurizer's parameters cross the boundary as one dict (validated by
//! `pecos_core::text::FeaturizerParams`), documents as Python lists of `str`, copied once into one
//! Rust buffer so that the GIL can be released.

use crate::convert::{
    csr_arrays, parse_metadata, reduce_by_bytes, CsrArgs, CsrArrays, ParamsArg, StrList, ValueArg,
};
use crate::error::core;
use crate::threads::run_detached;
use numpy::PyArray1;
use pecos_core::io::Artifact;
use pecos_core::params::Params;
use pecos_core::text::{
    read_norm, stack_blocks, CombineParams, FeaturizerParams, NgramCounter, Vocabulary,
};
use pecos_core::PecosError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::path::PathBuf;

/// Document-frequency counts of n-grams, fed batch by batch (`update`), then turned into a
/// vocabulary (`finish`).
#[pyclass(name = "NgramCounter", module = "pecos_rs._pecos_rs")]
pub struct PyNgramCounter {
    /// `None` once `finish` has consumed it.
    counter: Option<NgramCounter>,
    /// The featurizer's parameters (`finish` applies the document-frequency bounds).
    params: FeaturizerParams,
}

#[pymethods]
impl PyNgramCounter {
    /// A counter for the featurizer whose analyzer is `kind` ("word", "char_in_words" or
    /// "chars") and whose parameters are `params` (its `get_params()` less `n_jobs`, validated
    /// here). With `record`, `finish` also returns the rows of the documents counted
    /// (`fit_transform`).
    #[new]
    #[pyo3(signature = (kind, params, *, record))]
    fn new(kind: &str, params: ParamsArg, record: bool) -> PyResult<Self> {
        let params = core(FeaturizerParams::from_params(kind, params.0))?;
        let counter = core(NgramCounter::new(params.config.clone(), record))?;
        Ok(PyNgramCounter {
            counter: Some(counter),
            params,
        })
    }

    /// Counts a list of documents on `n_threads` threads (`first_doc`: the position of the first
    /// one in the whole input, for error messages). Releases the GIL.
    #[pyo3(signature = (docs, *, first_doc = 0, n_threads))]
    fn update(
        &mut self,
        py: Python<'_>,
        docs: &Bound<'_, PyList>,
        first_doc: usize,
        n_threads: usize,
    ) -> PyResult<()> {
        let docs = StrList::from_list(docs, "document", first_doc)?;
        let counter = self.counter_mut()?;
        run_detached(py, n_threads, || counter.update(&docs.slices()))
    }

    /// The vocabulary of the n-grams within the document-frequency bounds, carrying `metadata`
    /// (a JSON string saved with it), and the CSR rows of the documents counted if recording
    /// (else None). The counter is spent.
    #[pyo3(signature = (*, metadata, n_threads))]
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        metadata: &str,
        n_threads: usize,
    ) -> PyResult<(PyVocabulary, Option<CsrArrays<'py>>)> {
        let metadata = parse_metadata(metadata)?;
        let (lo, hi) = (self.params.min_df, self.params.max_df);
        let max_features = self.params.max_features;
        self.counter_mut()?;
        let counter = self.counter.take();
        let (vocab, rows) = run_detached(py, n_threads, move || match counter {
            Some(c) => c.finish(lo, hi, max_features),
            None => Err(PecosError::InvalidInput("counter already finished".into())),
        })?;
        release_free_memory();
        let rows = rows.map(|x| {
            let shape = (x.indptr.len() - 1, x.n_cols);
            csr_arrays(py, x.indptr, x.indices, x.data, shape)
        });
        let vocab = PyVocabulary { vocab, metadata };
        Ok((vocab, rows))
    }

    #[getter]
    fn n_docs(&self) -> u64 {
        self.counter.as_ref().map_or(0, NgramCounter::n_docs)
    }
}

impl PyNgramCounter {
    fn counter_mut(&mut self) -> PyResult<&mut NgramCounter> {
        let msg = "this counter was already turned into a vocabulary";
        core(
            self.counter
                .as_mut()
                .ok_or_else(|| PecosError::InvalidInput(msg.into())),
        )
    }
}

/// Hands freed heap memory back to the system. Fitting frees large hash tables just before
/// the rows and the next feature block are built; glibc keeps such memory resident by
/// default, which raised the peak of a multi-block fit by more than 100 MB.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns unused pages of the allocator's heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A fitted n-gram vocabulary with idf weights; immutable and safe to share between threads.
#[pyclass(name = "TfidfVocabulary", module = "pecos_rs._pecos_rs", frozen)]
pub struct PyVocabulary {
    vocab: Vocabulary,
    /// Caller metadata saved with the vocabulary (the featurizer's parameters).
    metadata: serde_json::Value,
}

#[pymethods]
impl PyVocabulary {
    /// TF-IDF rows of a list of documents as CSR `(indptr, indices, data, shape)`
    /// (`first_doc`: as in `NgramCounter.update`). Releases the GIL.
    #[pyo3(signature = (docs, *, first_doc = 0, n_threads))]
    fn transform<'py>(
        &self,
        py: Python<'py>,
        docs: &Bound<'py, PyList>,
        first_doc: usize,
        n_threads: usize,
    ) -> PyResult<CsrArrays<'py>> {
        let docs = StrList::from_list(docs, "document", first_doc)?;
        let x = if docs.len() == 1 {
            // A real-time query: on the calling thread, as the vocabulary does for one chunk.
            py.detach(|| self.vocab.transform(&docs.slices()))
        } else {
            run_detached(py, n_threads, || Ok(self.vocab.transform(&docs.slices())))?
        };
        let shape = (x.indptr.len() - 1, x.n_cols);
        Ok(csr_arrays(py, x.indptr, x.indices, x.data, shape))
    }

    /// The n-grams in column order, or `None` in hashing mode.
    fn feature_names<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        self.vocab
            .feature_names()
            .map(|names| PyList::new(py, names))
            .transpose()
    }

    /// The idf of each kept n-gram (column order) or kept hash bucket (see `kept_buckets`).
    #[getter]
    fn idf<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, self.vocab.idf())
    }

    /// Hashing mode: the columns (buckets) seen in fit and kept, increasing; else None.
    #[getter]
    fn kept_buckets<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArray1<u32>>> {
        self.vocab
            .kept_buckets()
            .map(|b| PyArray1::from_slice(py, b))
    }

    #[getter]
    fn n_columns(&self) -> usize {
        self.vocab.n_columns()
    }

    #[getter]
    fn n_docs(&self) -> u64 {
        self.vocab.n_docs()
    }

    /// The configuration as JSON.
    #[getter]
    fn config(&self) -> String {
        serde_json::to_string(self.vocab.config()).unwrap_or_default()
    }

    /// Caller metadata stored with the vocabulary, as a JSON string.
    #[getter]
    fn metadata(&self) -> String {
        self.metadata.to_string()
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        core(py.detach(|| self.vocab.save(&self.metadata, &path)))
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let (vocab, metadata) = core(py.detach(|| Vocabulary::load(&path)))?;
        Ok(PyVocabulary { vocab, metadata })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.vocab.to_bytes(&self.metadata))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let (vocab, metadata) = core(py.detach(|| Vocabulary::from_bytes(data)))?;
        Ok(PyVocabulary { vocab, metadata })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        reduce_by_bytes(slf.as_any(), slf.get().to_bytes(slf.py()))
    }

    fn __repr__(&self) -> String {
        format!(
            "TfidfVocabulary(n_columns={}, n_docs={})",
            self.vocab.n_columns(),
            self.vocab.n_docs()
        )
    }
}

/// Stacks CSR blocks side by side, block `b` scaled by `weights[b]`, each row rescaled to unit
/// `norm` ("l1", "l2" or None). Releases the GIL.
#[pyfunction]
#[pyo3(name = "stack_blocks", signature = (blocks, weights, norm))]
pub fn py_stack_blocks<'py>(
    py: Python<'py>,
    blocks: Vec<CsrArgs<'py>>,
    weights: Vec<f32>,
    norm: ValueArg,
) -> PyResult<CsrArrays<'py>> {
    let mut p = Params::new([("norm".to_string(), norm.0)]);
    let norm = core(read_norm(&mut p))?;
    let views = blocks
        .iter()
        .map(CsrArgs::view)
        .collect::<PyResult<Vec<_>>>()?;
    let x = core(py.detach(|| stack_blocks(&views, &weights, norm)))?;
    let (n_rows, n_cols, indptr, indices, data) = x.into_parts();
    Ok(csr_arrays(py, indptr, indices, data, (n_rows, n_cols)))
}

/// The weights (one per block, `n_blocks` of them) and norm of a multi-block featurizer, checked:
/// `params` holds `block_weights` and `norm`. Returns the weights.
#[pyfunction]
#[pyo3(name = "combine_params", signature = (params, n_blocks))]
pub fn py_combine_params(params: ParamsArg, n_blocks: usize) -> PyResult<Vec<f32>> {
    Ok(core(CombineParams::from_params(params.0, n_blocks))?.weights)
}

//! Text featurization kernels: the n-gram counter (fit) and the fitted vocabulary (transform).
//!
//! Configurations cross the boundary as JSON (`pecos_core::text::TfidfConfig`), documents as
//! Python lists of `str`, copied once into one Rust buffer so that the GIL can be released.

use crate::convert::{csr_arrays, parse_metadata, CsrArgs, CsrArrays, Docs};
use crate::error::core;
use crate::threads::run_detached;
use numpy::PyArray1;
use pecos_core::text::{stack_blocks, DfBound, NgramCounter, Norm, TfidfConfig, Vocabulary};
use pecos_core::PecosError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::path::PathBuf;

fn parse_config(json: &str) -> PyResult<TfidfConfig> {
    core(serde_json::from_str(json).map_err(|e| PecosError::param("config", e.to_string())))
}

/// A `min_df` / `max_df` from Python: an int is a document count, a float a corpus fraction.
fn df_bound(name: &str, value: &Bound<'_, PyAny>) -> PyResult<DfBound> {
    if let Ok(count) = value.extract::<u64>() {
        return Ok(DfBound::Count(count));
    }
    match value.extract::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(DfBound::Fraction(f)),
        _ => core(Err(PecosError::param(
            name,
            "must be a non-negative int (documents) or a float in [0, 1] (fraction)",
        ))),
    }
}

/// Document-frequency counts of n-grams, fed batch by batch (`update`), then turned into a
/// vocabulary (`finish`).
#[pyclass(name = "NgramCounter", module = "pecos_rs._pecos_rs")]
pub struct PyNgramCounter {
    /// `None` once `finish` has consumed it.
    counter: Option<NgramCounter>,
}

#[pymethods]
impl PyNgramCounter {
    /// With `record`, `finish` also returns the rows of the documents counted (`fit_transform`).
    #[new]
    #[pyo3(signature = (config, *, record))]
    fn new(config: &str, record: bool) -> PyResult<Self> {
        let counter = core(NgramCounter::new(parse_config(config)?, record))?;
        Ok(PyNgramCounter {
            counter: Some(counter),
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
        let docs = Docs::from_list(docs, first_doc)?;
        let counter = self.counter_mut()?;
        run_detached(py, n_threads, || counter.update(&docs.slices()))
    }

    /// The vocabulary of the n-grams within the document-frequency bounds, carrying `metadata`
    /// (a JSON string saved with it), and the CSR rows of the documents counted if recording
    /// (else None). The counter is spent.
    #[pyo3(signature = (*, min_df, max_df, max_features, metadata, n_threads))]
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        min_df: &Bound<'py, PyAny>,
        max_df: &Bound<'py, PyAny>,
        max_features: Option<usize>,
        metadata: &str,
        n_threads: usize,
    ) -> PyResult<(PyVocabulary, Option<CsrArrays<'py>>)> {
        let metadata = parse_metadata(metadata)?;
        let (lo, hi) = (df_bound("min_df", min_df)?, df_bound("max_df", max_df)?);
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
        let docs = Docs::from_list(docs, first_doc)?;
        let x = run_detached(py, n_threads, || Ok(self.vocab.transform(&docs.slices())))?;
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
        let py = slf.py();
        let from_bytes = slf.get_type().getattr("from_bytes")?;
        let args = PyTuple::new(py, [slf.get().to_bytes(py)])?;
        PyTuple::new(py, [from_bytes, args.into_any()])
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
/// `norm` ("l1", "l2" or "none"). Releases the GIL.
#[pyfunction]
#[pyo3(name = "stack_blocks", signature = (blocks, weights, norm))]
pub fn py_stack_blocks<'py>(
    py: Python<'py>,
    blocks: Vec<CsrArgs<'py>>,
    weights: Vec<f32>,
    norm: &str,
) -> PyResult<CsrArrays<'py>> {
    let norm = match norm {
        "l1" => Norm::L1,
        "l2" => Norm::L2,
        "none" => Norm::None,
        other => {
            let msg = format!("must be \"l1\", \"l2\" or \"none\", got {other:?}");
            return core(Err(PecosError::param("norm", msg)));
        }
    };
    let views = blocks
        .iter()
        .map(CsrArgs::view)
        .collect::<PyResult<Vec<_>>>()?;
    let x = core(py.detach(|| stack_blocks(&views, &weights, norm)))?;
    let (n_rows, n_cols, indptr, indices, data) = x.into_parts();
    Ok(csr_arrays(py, indptr, indices, data, (n_rows, n_cols)))
}

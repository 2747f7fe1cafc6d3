//! `XLinearModel`: the trained Rust model as a Python object.

use crate::error::CoreResult;
use crate::threads::run_detached;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pecos_core::beam::{
    check_query_width, output_width, predict_batch, PredictParams, Searcher, TopK,
};
use pecos_core::chain::ClusterChain;
use pecos_core::model::XLinearModel;
use pecos_core::postprocess::PostProcessor;
use pecos_core::solver::{Loss, SolverParams};
use pecos_core::sparse::CsrView;
use pecos_core::train::{train, LayerReport, NegativeSampling, TrainParams};
use pecos_core::{io, PecosError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use std::cell::RefCell;
use std::path::PathBuf;

/// A scipy CSR matrix passed as `(indptr int64, indices int32, data float32, n_rows, n_cols)`;
/// the arrays are borrowed, not copied.
#[derive(FromPyObject)]
pub struct CsrArgs<'py>(
    PyReadonlyArray1<'py, i64>,
    PyReadonlyArray1<'py, i32>,
    PyReadonlyArray1<'py, f32>,
    usize,
    usize,
);

impl CsrArgs<'_> {
    pub fn view(&self) -> PyResult<CsrView<'_>> {
        let v = CsrView::try_new(
            self.3,
            self.4,
            self.0.as_slice()?,
            self.1.as_slice()?,
            self.2.as_slice()?,
        );
        Ok(CoreResult::from(v.map_err(Into::into))?)
    }
}

/// A CSR (or CSC) matrix for Python: `(indptr, indices, data, shape)`.
pub type CsrArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i32>>,
    Bound<'py, PyArray1<f32>>,
    (usize, usize),
);

/// Moves the arrays of a compressed sparse matrix into numpy (no copy).
pub fn csr_arrays(
    py: Python<'_>,
    indptr: Vec<i64>,
    indices: Vec<i32>,
    data: Vec<f32>,
    shape: (usize, usize),
) -> CsrArrays<'_> {
    (
        PyArray1::from_vec(py, indptr),
        PyArray1::from_vec(py, indices),
        PyArray1::from_vec(py, data),
        shape,
    )
}

/// `(labels int64 (n, k), scores float32 (n, k))`.
type TopKArrays<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);

thread_local! {
    /// Buffers for single-query prediction on the calling thread.
    static SEARCHER: RefCell<Searcher> = RefCell::new(Searcher::new());
}

/// A trained XR-Linear model (tree of sparse linear scorers). Built by `XLinearModel.train` or
/// `XLinearModel.load`; immutable and safe to share between threads.
#[pyclass(name = "XLinearModel", module = "pecos_rs._pecos_rs", frozen)]
pub struct PyXLinearModel {
    model: XLinearModel,
    metadata: serde_json::Value,
}

pub fn core<T>(r: Result<T, PecosError>) -> PyResult<T> {
    Ok(CoreResult::from(r.map_err(Into::into))?)
}

pub fn parse_metadata(json: &str) -> PyResult<serde_json::Value> {
    core(
        serde_json::from_str(json)
            .map_err(|e| PecosError::InvalidInput(format!("metadata is not JSON: {e}"))),
    )
}

#[pymethods]
impl PyXLinearModel {
    /// Trains a model on `x` (n x d CSR) and the label indicator `y` (n x L CSR) over the cluster
    /// chain given as one parent array (uint32) per layer. Releases the GIL.
    #[staticmethod]
    #[pyo3(signature = (x, y, chain, *, loss, cp, cn, tol, max_iter, bias, threshold,
        max_nonzeros_per_label, negative_sampling, man_beam_size, post_processor, seed, n_threads,
        metadata = "null", progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn train(
        py: Python<'_>,
        x: CsrArgs<'_>,
        y: CsrArgs<'_>,
        chain: Vec<PyReadonlyArray1<'_, u32>>,
        loss: &str,
        cp: f32,
        cn: f32,
        tol: f32,
        max_iter: usize,
        bias: f32,
        threshold: f32,
        max_nonzeros_per_label: usize,
        negative_sampling: &str,
        man_beam_size: usize,
        post_processor: &str,
        seed: u64,
        n_threads: usize,
        metadata: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let params = TrainParams {
            solver: SolverParams {
                loss: core(Loss::parse(loss))?,
                cp,
                cn,
                tol,
                max_iter,
                bias,
            },
            threshold,
            max_nonzeros_per_label,
            negative_sampling: core(NegativeSampling::parse(negative_sampling))?,
            man_beam_size,
            man_post_processor: core(PostProcessor::parse(post_processor))?,
            seed,
        };
        let assignments = chain
            .iter()
            .map(|a| Ok(a.as_slice()?.to_vec()))
            .collect::<PyResult<Vec<_>>>()?;
        let chain = core(ClusterChain::try_new(assignments))?;
        let metadata = parse_metadata(metadata)?;
        let (xv, yv) = (x.view()?, y.view()?);
        let report = |r: &LayerReport| {
            if let Some(cb) = &progress {
                Python::attach(|py| {
                    let args = (
                        r.layer,
                        r.n_layers,
                        r.n_problems,
                        r.nnz,
                        r.max_solver_iter,
                        r.seconds,
                    );
                    if let Err(e) = cb.call1(py, args) {
                        e.write_unraisable(py, None);
                    }
                });
            }
        };
        let model = run_detached(py, n_threads, || train(&xv, &yv, &chain, &params, &report))?;
        Ok(PyXLinearModel { model, metadata })
    }

    /// Top-`topk` labels and scores per row of `x`: `(labels int64 (n, w), scores float32 (n, w))`
    /// with `w = min(topk, n_labels)`, best first, padded with -1 / 0. A single row runs on the calling thread with reused buffers;
    /// larger batches run in parallel. Releases the GIL.
    #[pyo3(signature = (x, *, beam_size, topk, post_processor, n_threads))]
    fn predict_topk<'py>(
        &self,
        py: Python<'py>,
        x: CsrArgs<'py>,
        beam_size: usize,
        topk: usize,
        post_processor: &str,
        n_threads: usize,
    ) -> PyResult<TopKArrays<'py>> {
        let params = PredictParams {
            beam_size,
            topk,
            post_processor: core(PostProcessor::parse(post_processor))?,
        };
        let xv = x.view()?;
        let m = &self.model;
        let top = if xv.n_rows() == 1 {
            core(py.detach(|| predict_one(m, &xv, &params)))?
        } else {
            run_detached(py, n_threads, || {
                predict_batch(m.layers(), m.n_features(), m.bias(), &xv, &params)
            })?
        };
        let TopK { k, labels, scores } = top;
        let n = xv.n_rows();
        Ok((
            PyArray1::from_vec(py, labels).reshape([n, k])?,
            PyArray1::from_vec(py, scores).reshape([n, k])?,
        ))
    }

    /// Writes the model to one file (format version `FORMAT_VERSION`, checksummed).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        core(py.detach(|| io::save(&self.model, &self.metadata, &path)))
    }

    /// Reads a model written by `save`; raises `ModelFormatError` for a corrupt, truncated or
    /// foreign file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let (model, metadata) = core(py.detach(|| io::load(&path)))?;
        Ok(PyXLinearModel { model, metadata })
    }

    /// The model in the file format, as bytes (used for pickling).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &io::to_bytes(&self.model, &self.metadata))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let (model, metadata) = core(py.detach(|| io::from_bytes(data)))?;
        Ok(PyXLinearModel { model, metadata })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let from_bytes = slf.get_type().getattr("from_bytes")?;
        let args = PyTuple::new(py, [slf.get().to_bytes(py)])?;
        PyTuple::new(py, [from_bytes, args.into_any()])
    }

    /// Layer `t`'s weights as CSC `(indptr, indices, data, shape)` of shape (n_features + 1, K_{t+1});
    /// the last row holds the bias weights (PECOS's `W` layout).
    fn layer_weights<'py>(&self, py: Python<'py>, t: usize) -> PyResult<CsrArrays<'py>> {
        let layer = self.layer(t)?;
        let (indptr, indices, data) = layer.to_csc(self.model.n_features());
        let shape = (self.model.n_features() + 1, layer.chain().n_children());
        Ok(csr_arrays(py, indptr, indices, data, shape))
    }

    /// Layer `t`'s parent array: entry `c` is the parent (at depth t) of node `c` (at depth t + 1).
    fn layer_parents<'py>(&self, py: Python<'py>, t: usize) -> PyResult<Bound<'py, PyArray1<u32>>> {
        Ok(PyArray1::from_slice(py, self.layer(t)?.chain().parent_of()))
    }

    #[getter]
    fn n_features(&self) -> usize {
        self.model.n_features()
    }

    #[getter]
    fn n_labels(&self) -> usize {
        self.model.n_labels()
    }

    #[getter]
    fn depth(&self) -> usize {
        self.model.layers().len()
    }

    #[getter]
    fn bias(&self) -> f32 {
        self.model.bias()
    }

    /// Number of nonzero weights, bias weights included.
    #[getter]
    fn nnz(&self) -> usize {
        self.model.nnz()
    }

    /// Caller metadata stored with the model, as a JSON string.
    #[getter]
    fn metadata(&self) -> String {
        self.metadata.to_string()
    }

    fn __repr__(&self) -> String {
        let sizes: Vec<usize> = self
            .model
            .layers()
            .iter()
            .map(|l| l.chain().n_children())
            .collect();
        format!(
            "XLinearModel(n_features={}, n_labels={}, layer_sizes={sizes:?}, nnz={})",
            self.model.n_features(),
            self.model.n_labels(),
            self.model.nnz()
        )
    }
}

impl PyXLinearModel {
    fn layer(&self, t: usize) -> PyResult<&pecos_core::model::Layer> {
        let depth = self.model.layers().len();
        core(self.model.layers().get(t).ok_or_else(|| {
            PecosError::InvalidInput(format!("layer {t} does not exist (the model has {depth})"))
        }))
    }
}

/// Beam search for a one-row matrix on the calling thread, with that thread's reused buffers.
fn predict_one(
    m: &XLinearModel,
    x: &CsrView<'_>,
    params: &PredictParams,
) -> Result<TopK, PecosError> {
    check_query_width(x, m.n_features())?;
    let k = output_width(m.layers(), params)?;
    let mut labels = vec![-1i64; k];
    let mut scores = vec![0f32; k];
    SEARCHER.with_borrow_mut(|s| {
        s.search(m.layers(), m.bias(), &[x.row(0)], params);
        for ((l, sc), (label, score)) in labels.iter_mut().zip(scores.iter_mut()).zip(s.results(0))
        {
            *l = i64::from(label);
            *sc = score;
        }
    });
    Ok(TopK { k, labels, scores })
}

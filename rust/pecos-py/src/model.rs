//! `XLinearModel`: the trained Rust model as a Python object.

use crate::convert::{
    cluster_chain, csr_arrays, label_range_rows, parse_metadata, reduce_by_bytes, topk_arrays,
    topk_of, CsrArgs, CsrArrays, ParamsArg, TopKArgs, TopKArrays,
};
use crate::error::core;
use crate::threads::{run_detached, run_interruptible};
use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pecos_core::infer::{
    mean_of_trees, predict_batch, predict_batch_filtered, predict_one, predict_one_filtered,
    weighted_sum, LabelRangeFilter, LabelSets, PredictParams, TopK,
};
use pecos_core::model::{Layer, WeightDtype, XLinearModel};
use pecos_core::sparse::CsrView;
use pecos_core::train::{
    join_subtrees, train, train_ensemble, train_subtree, LayerReport, Pruning, SubTreePlace,
    XLinearParams,
};
use pecos_core::{io, PecosError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The search parameters of a prediction (`beam_size`, `topk`, `post_processor`), checked once
/// when built from their dict, so that a real-time caller builds them once and reuses them.
#[pyclass(name = "SearchParams", module = "pecos_rs._pecos_rs", frozen)]
pub struct PySearchParams(pub(crate) PredictParams);

#[pymethods]
impl PySearchParams {
    #[new]
    fn new(params: ParamsArg) -> PyResult<Self> {
        Ok(PySearchParams(params.read(PredictParams::from_params)?))
    }

    fn __repr__(&self) -> String {
        let PredictParams {
            beam_size,
            topk,
            post_processor,
        } = self.0;
        format!(
            "SearchParams(beam_size={beam_size}, topk={topk}, post_processor={:?})",
            post_processor.name()
        )
    }
}

/// A trained XR-Linear model (tree of sparse linear scorers). Built by `XLinearModel.train` or
/// `XLinearModel.load`; immutable and safe to share between threads.
#[pyclass(name = "XLinearModel", module = "pecos_rs._pecos_rs", frozen)]
pub struct PyXLinearModel {
    model: XLinearModel,
    metadata: serde_json::Value,
    /// The labels under each node, built on the first prediction restricted to label ranges.
    label_sets: OnceLock<LabelSets>,
}

/// The layers of a sub-tree of a larger model, from `XLinearModel.train_subtree`: sent (pickled)
/// to the process that joins the sub-trees, where `XLinearModel.join_subtrees` takes its weights.
#[pyclass(name = "SubTreeModel", module = "pecos_rs._pecos_rs")]
pub struct PySubTreeModel {
    /// `None` once joined.
    model: Option<XLinearModel>,
}

impl PySubTreeModel {
    fn model(&self) -> PyResult<&XLinearModel> {
        core(self.model.as_ref().ok_or_else(Self::joined))
    }

    fn take(&mut self) -> PyResult<XLinearModel> {
        core(self.model.take().ok_or_else(Self::joined))
    }

    fn joined() -> PecosError {
        PecosError::InvalidInput(
            "this sub-tree model was joined already (its weights moved into the joined model)"
                .into(),
        )
    }
}

#[pymethods]
impl PySubTreeModel {
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(
            py,
            &io::to_bytes(self.model()?, &serde_json::Value::Null),
        ))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let (model, _) = core(py.detach(|| io::from_bytes(data)))?;
        Ok(PySubTreeModel { model: Some(model) })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let bytes = slf.borrow().to_bytes(slf.py())?;
        reduce_by_bytes(slf.as_any(), bytes)
    }

    /// Number of stored weights (bias weights included when nonzero).
    #[getter]
    fn nnz(&self) -> PyResult<usize> {
        Ok(self.model()?.nnz())
    }
}

#[pymethods]
impl PyXLinearModel {
    /// Trains a model on `x` (n x d CSR) and the label indicator `y` (n x L CSR) over the cluster
    /// chain given as one parent array (uint32) per layer, with the estimator's parameters
    /// (`params`: a dict, validated here); `row_weights` (float32, one per row, finite and >= 0)
    /// multiply each row's cost. Releases the GIL; Ctrl-C stops it with `KeyboardInterrupt`.
    #[staticmethod]
    #[pyo3(signature = (x, y, chain, params, *, n_threads, metadata = "null", progress = None, row_weights = None))]
    #[allow(clippy::too_many_arguments)]
    fn train(
        py: Python<'_>,
        x: CsrArgs<'_>,
        y: CsrArgs<'_>,
        chain: Vec<PyReadonlyArray1<'_, u32>>,
        params: ParamsArg,
        n_threads: usize,
        metadata: &str,
        progress: Option<Py<PyAny>>,
        row_weights: Option<PyReadonlyArray1<'_, f32>>,
    ) -> PyResult<Self> {
        let weights = row_weights.as_ref().map(|w| w.as_slice()).transpose()?;
        let params = core(XLinearParams::from_params(params.0))?.train;
        let chain = cluster_chain(&chain)?;
        let metadata = parse_metadata(metadata)?;
        let (xv, yv) = (x.view()?, y.view()?);
        let report = |r: &LayerReport| report_layer(progress.as_ref(), r, None);
        let model = run_interruptible(py, n_threads, |stop| {
            train(&xv, &yv, weights, &chain, &params, &report, stop)
        })?;
        Ok(PyXLinearModel::new(model, metadata))
    }

    /// The layers of a sub-tree of a larger model (`pecos_core::train::train_subtree`): `x` and
    /// `y` are the rows of the whole training set that have a label in the sub-tree (in order),
    /// `y`'s columns the sub-tree's labels; `chain` the sub-tree (as in `train`, its root the one
    /// parent of its first layer); `first_layer`, `root` and `node_ids` (per layer, the whole
    /// tree's id of each child, increasing) place it in the whole tree. `params` and `progress`
    /// as in `train` (teacher-forced negatives only). Releases the GIL; Ctrl-C stops it with
    /// `KeyboardInterrupt`.
    #[staticmethod]
    #[pyo3(signature = (x, y, chain, params, *, first_layer, root, node_ids, n_threads, progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn train_subtree(
        py: Python<'_>,
        x: CsrArgs<'_>,
        y: CsrArgs<'_>,
        chain: Vec<PyReadonlyArray1<'_, u32>>,
        params: ParamsArg,
        first_layer: usize,
        root: u32,
        node_ids: Vec<PyReadonlyArray1<'_, u32>>,
        n_threads: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<PySubTreeModel> {
        let params = core(XLinearParams::from_params(params.0))?.train;
        let chain = cluster_chain(&chain)?;
        let place = SubTreePlace {
            first_layer,
            root,
            node_ids: node_ids
                .iter()
                .map(|ids| Ok(ids.as_slice()?.to_vec()))
                .collect::<PyResult<_>>()?,
        };
        let (xv, yv) = (x.view()?, y.view()?);
        let report = |r: &LayerReport| report_layer(progress.as_ref(), r, None);
        let model = run_interruptible(py, n_threads, |stop| {
            train_subtree(&xv, &yv, &chain, &place, &params, &report, stop)
        })?;
        Ok(PySubTreeModel { model: Some(model) })
    }

    /// The whole model from its top layers (`top`, whose labels are the sub-tree roots) and its
    /// sub-trees (`pecos_core::train::join_subtrees`): `subtrees[i]` (from `train_subtree`) is
    /// placed by `roots[i]` and `node_ids[i]` as it was trained. The weights of the sub-trees
    /// move into the result (each is empty afterwards, also when the join fails), so that the
    /// join needs little more memory than they do. Keeps `top`'s metadata. Releases the GIL.
    #[staticmethod]
    fn join_subtrees(
        py: Python<'_>,
        top: PyRef<'_, Self>,
        mut subtrees: Vec<PyRefMut<'_, PySubTreeModel>>,
        roots: Vec<u32>,
        node_ids: Vec<Vec<PyReadonlyArray1<'_, u32>>>,
    ) -> PyResult<Self> {
        if roots.len() != subtrees.len() || node_ids.len() != subtrees.len() {
            return core(Err(PecosError::InvalidInput(format!(
                "{} sub-trees need as many roots and node id lists, got {} and {}",
                subtrees.len(),
                roots.len(),
                node_ids.len()
            ))));
        }
        let first_layer = top.model.layers().len();
        let parts = subtrees
            .iter_mut()
            .zip(roots)
            .zip(&node_ids)
            .map(|((sub, root), ids)| {
                let node_ids = ids
                    .iter()
                    .map(|a| Ok(a.as_slice()?.to_vec()))
                    .collect::<PyResult<_>>()?;
                let place = SubTreePlace {
                    first_layer,
                    root,
                    node_ids,
                };
                Ok((sub.take()?, place))
            })
            .collect::<PyResult<Vec<_>>>()?;
        drop(subtrees);
        let top_model = &top.model;
        let model = core(py.detach(|| join_subtrees(top_model, parts)))?;
        Ok(PyXLinearModel::new(model, top.metadata.clone()))
    }

    /// A model from given weights (not trained here): `chain` as in `train`, and per layer PECOS's
    /// `W` (shape `(n_features + 1, n_children)`, the last row the bias weights) given as the CSR
    /// arrays of `W^T`, which are the CSC arrays of `W`.
    #[staticmethod]
    #[pyo3(signature = (chain, weights, *, n_features, bias, metadata = "null"))]
    fn from_weight_columns(
        py: Python<'_>,
        chain: Vec<PyReadonlyArray1<'_, u32>>,
        weights: Vec<CsrArgs<'_>>,
        n_features: usize,
        bias: f32,
        metadata: &str,
    ) -> PyResult<Self> {
        let chain = cluster_chain(&chain)?;
        let metadata = parse_metadata(metadata)?;
        let views = weights
            .iter()
            .map(CsrArgs::view)
            .collect::<PyResult<Vec<_>>>()?;
        let model =
            core(py.detach(|| XLinearModel::from_weight_columns(n_features, bias, chain, &views)))?;
        Ok(PyXLinearModel::new(model, metadata))
    }

    /// Trains an ensemble: one model per cluster chain of `chains` (`n_trees` of them, each a list
    /// of parent arrays as in `train`), model `i` with the solver seed `random_state + i`
    /// (wrapping at 2**64), all trained at once in one pool of `n_threads` threads. Each model
    /// equals the one `train` gives with that seed, for every thread count. `progress` gets the
    /// tree's index as a seventh argument; `row_weights` as in `train`. Releases the GIL; Ctrl-C
    /// stops it with `KeyboardInterrupt`.
    #[staticmethod]
    #[pyo3(signature = (x, y, chains, params, *, n_threads, metadata = "null", progress = None, row_weights = None))]
    #[allow(clippy::too_many_arguments)]
    fn train_ensemble(
        py: Python<'_>,
        x: CsrArgs<'_>,
        y: CsrArgs<'_>,
        chains: Vec<Vec<PyReadonlyArray1<'_, u32>>>,
        params: ParamsArg,
        n_threads: usize,
        metadata: &str,
        progress: Option<Py<PyAny>>,
        row_weights: Option<PyReadonlyArray1<'_, f32>>,
    ) -> PyResult<Vec<Self>> {
        let weights = row_weights.as_ref().map(|w| w.as_slice()).transpose()?;
        let XLinearParams {
            train: params,
            n_trees,
            ..
        } = core(XLinearParams::from_params(params.0))?;
        if chains.len() != n_trees {
            return core(Err(PecosError::InvalidInput(format!(
                "got {} cluster chains for n_trees={n_trees}: one chain per tree is needed",
                chains.len()
            ))));
        }
        let chains = chains
            .iter()
            .map(|chain| cluster_chain(chain))
            .collect::<PyResult<Vec<_>>>()?;
        let metadata = parse_metadata(metadata)?;
        let (xv, yv) = (x.view()?, y.view()?);
        let report = |tree: usize, r: &LayerReport| report_layer(progress.as_ref(), r, Some(tree));
        let models = run_interruptible(py, n_threads, |stop| {
            train_ensemble(&xv, &yv, weights, &chains, &params, &report, stop)
        })?;
        Ok(models
            .into_iter()
            .map(|model| PyXLinearModel::new(model, metadata.clone()))
            .collect())
    }

    /// A smaller model: this one with every scorer pruned again at `params` (`threshold`,
    /// `max_nonzeros_per_label`: a dict, validated here), without retraining; see
    /// `pecos_core::model::XLinearModel::pruned`. Keeps the metadata. Releases the GIL.
    #[pyo3(signature = (params, *, n_threads))]
    fn pruned(&self, py: Python<'_>, params: ParamsArg, n_threads: usize) -> PyResult<Self> {
        let pruning = params.read(Pruning::from_params)?;
        let model = &self.model;
        let pruned = run_detached(py, n_threads, || model.pruned(&pruning))?;
        self.check_intact()?;
        Ok(PyXLinearModel::new(pruned, self.metadata.clone()))
    }

    /// This model with its weights stored as `weight_dtype` ("float32", "float16" or "int8", one
    /// scale per label or cluster) and its child slots in the narrowest integer type; see
    /// `pecos_core::model::XLinearModel::compacted`. Keeps the metadata. Releases the GIL.
    #[pyo3(signature = (weight_dtype, *, n_threads))]
    fn compacted(&self, py: Python<'_>, weight_dtype: &str, n_threads: usize) -> PyResult<Self> {
        let dtype = core(WeightDtype::from_name(weight_dtype))?;
        let model = &self.model;
        let compact = run_detached(py, n_threads, || model.compacted(dtype))?;
        self.check_intact()?;
        Ok(PyXLinearModel::new(compact, self.metadata.clone()))
    }

    /// How the weights are stored: "float32" as trained, or the dtype given to `compacted`.
    #[getter]
    fn weight_dtype(&self) -> &'static str {
        self.model.weight_dtype().name()
    }

    /// Top-`topk` labels and scores per row of `x`: `(labels int64 (n, w), scores float32 (n, w))`
    /// with `w = min(topk, n_labels)`, best first, padded with -1 / 0. With `label_ranges`
    /// (uint32 `(n, 2)`: `[start, end)` per row), row `i`'s search enters only nodes holding a
    /// label in its range and returns only such labels. A single row runs on the calling thread
    /// with reused buffers; larger batches run in parallel. Releases the GIL.
    #[pyo3(signature = (x, params, *, n_threads, label_ranges = None))]
    fn predict_topk<'py>(
        &self,
        py: Python<'py>,
        x: CsrArgs<'py>,
        params: PyRef<'py, PySearchParams>,
        n_threads: usize,
        label_ranges: Option<PyReadonlyArray2<'py, u32>>,
    ) -> PyResult<TopKArrays<'py>> {
        let xv = x.view()?;
        let ranges = label_ranges
            .map(|r| label_range_rows(&r, xv.n_rows(), self.model.n_labels()))
            .transpose()?;
        let top = self.search(py, &xv, &params.0, n_threads, ranges.as_deref())?;
        topk_arrays(py, top, xv.n_rows())
    }

    /// As `predict_topk`, for an ensemble of models over the same labels (`trees`): each tree is
    /// searched with the same parameters for its top-`topk`, and a label's score is the mean over
    /// the trees of its score in each tree's top-`topk` (0 where it is missing: PECOS's average
    /// ensemble), best first, equal means in increasing label order.
    #[staticmethod]
    #[pyo3(signature = (trees, x, params, *, n_threads, label_ranges = None))]
    fn predict_topk_ensemble<'py>(
        py: Python<'py>,
        trees: Vec<PyRef<'py, Self>>,
        x: CsrArgs<'py>,
        params: PyRef<'py, PySearchParams>,
        n_threads: usize,
        label_ranges: Option<PyReadonlyArray2<'py, u32>>,
    ) -> PyResult<TopKArrays<'py>> {
        let n_labels = trees.first().map_or(0, |t| t.model.n_labels());
        let xv = x.view()?;
        let ranges = label_ranges
            .map(|r| label_range_rows(&r, xv.n_rows(), n_labels))
            .transpose()?;
        let top = Self::search_trees(py, &trees, &xv, &params.0, n_threads, ranges.as_deref())?;
        topk_arrays(py, top, xv.n_rows())
    }

    /// Writes the model to one file (format version `FORMAT_VERSION`, checksummed).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        core(py.detach(|| io::save(&self.model, &self.metadata, &path)))
    }

    /// Reads a model written by `save`; raises `ModelFormatError` for a corrupt, truncated or
    /// foreign file. With `mmap`, maps the file instead (`pecos_core::io::load_mapped`): sizes and
    /// layout are checked at once, each parent's weights at their first use, the checksum only by
    /// `verify`.
    #[staticmethod]
    #[pyo3(signature = (path, *, mmap = false))]
    fn load(py: Python<'_>, path: PathBuf, mmap: bool) -> PyResult<Self> {
        let load = if mmap { io::load_mapped } else { io::load };
        let (model, metadata) = core(py.detach(|| load(&path)))?;
        Ok(PyXLinearModel::new(model, metadata))
    }

    /// Checks the checksum and every weight of the file a memory-mapped model reads its weights
    /// from (reading the whole file, without the GIL), as a normal load does; raises
    /// `ModelFormatError` if it no longer matches. A model in memory passes (checked when made).
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        core(py.detach(|| io::verify(&self.model)))
    }

    /// Whether the weights are read from a memory-mapped file (`load(path, mmap=True)`).
    #[getter]
    fn is_memory_mapped(&self) -> bool {
        self.model.is_memory_mapped()
    }

    /// The model in the file format, as bytes (used for pickling).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = io::to_bytes(&self.model, &self.metadata);
        self.check_intact()?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let (model, metadata) = core(py.detach(|| io::from_bytes(data)))?;
        Ok(PyXLinearModel::new(model, metadata))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        reduce_by_bytes(slf.as_any(), slf.get().to_bytes(slf.py())?)
    }

    /// Layer `t`'s weights as CSC `(indptr, indices, data, shape)` of shape (n_features + 1, K_{t+1});
    /// the last row holds the bias weights (PECOS's `W` layout).
    fn layer_weights<'py>(&self, py: Python<'py>, t: usize) -> PyResult<CsrArrays<'py>> {
        let layer = self.layer(t)?;
        let (indptr, indices, data) = core(layer.to_csc(self.model.n_features()))?;
        self.check_intact()?;
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
    /// The top-k of `x`'s rows by one tree (`search`) or the mean of several (`mean_of_trees`).
    pub(crate) fn search_trees(
        py: Python<'_>,
        trees: &[PyRef<'_, Self>],
        xv: &CsrView<'_>,
        params: &PredictParams,
        n_threads: usize,
        ranges: Option<&[Range<u32>]>,
    ) -> PyResult<TopK> {
        let n_labels = trees.first().map_or(0, |t| t.model.n_labels());
        if let Some(other) = trees.iter().find(|t| t.model.n_labels() != n_labels) {
            return core(Err(PecosError::InvalidInput(format!(
                "the trees of an ensemble must share their labels, got {n_labels} and {}",
                other.model.n_labels()
            ))));
        }
        if let [tree] = trees {
            return tree.search(py, xv, params, n_threads, ranges);
        }
        let per_tree = trees
            .iter()
            .map(|tree| tree.search(py, xv, params, n_threads, ranges))
            .collect::<PyResult<Vec<_>>>()?;
        let (n_rows, k) = (xv.n_rows(), per_tree.first().map_or(1, |t| t.k));
        // A single row is merged in well under a microsecond: not worth leaving the GIL.
        if n_rows == 1 {
            core(mean_of_trees(&per_tree, n_rows, k))
        } else {
            run_detached(py, n_threads, || mean_of_trees(&per_tree, n_rows, k))
        }
    }

    /// The top-k of `x`'s rows, restricted to `ranges` (one per row) if given: a single row on
    /// the calling thread with reused buffers, larger batches in parallel; without the GIL.
    pub(crate) fn search(
        &self,
        py: Python<'_>,
        xv: &CsrView<'_>,
        params: &PredictParams,
        n_threads: usize,
        ranges: Option<&[Range<u32>]>,
    ) -> PyResult<TopK> {
        let m = &self.model;
        let run = || {
            match ranges {
                None if xv.n_rows() == 1 => core(py.detach(|| predict_one(m, xv, params))),
                None => run_detached(py, n_threads, || {
                    predict_batch(m.layers(), m.n_features(), m.bias(), xv, params)
                }),
                Some(ranges) => {
                    // Built once per model, without the GIL (it reads every layer's chain).
                    let sets =
                        py.detach(|| self.label_sets.get_or_init(|| LabelSets::new(m.layers())));
                    let filter = LabelRangeFilter { sets, ranges };
                    if xv.n_rows() == 1 {
                        core(py.detach(|| predict_one_filtered(m, xv, params, &filter)))
                    } else {
                        run_detached(py, n_threads, || {
                            let (layers, d, bias) = (m.layers(), m.n_features(), m.bias());
                            predict_batch_filtered(layers, d, bias, xv, params, &filter)
                        })
                    }
                }
            }
        };
        // A mapped model whose file another program truncated reads zeros where the file is
        // gone (`io::GuardedMap`), which can break the layout the search relies on: whether it
        // then panics or returns scores computed from zeros, the damage is what gets reported.
        let searched = panic::catch_unwind(AssertUnwindSafe(run));
        self.check_intact()?;
        searched.unwrap_or_else(|payload| panic::resume_unwind(payload))
    }

    /// `ModelFormatError` if this model is memory-mapped and its file was truncated under it
    /// (see `pecos_core::io::check_intact`): call after reading its weights.
    fn check_intact(&self) -> PyResult<()> {
        core(io::check_intact(&self.model))
    }

    fn new(model: XLinearModel, metadata: serde_json::Value) -> Self {
        PyXLinearModel {
            model,
            metadata,
            label_sets: OnceLock::new(),
        }
    }

    fn layer(&self, t: usize) -> PyResult<&Layer> {
        let depth = self.model.layers().len();
        core(self.model.layers().get(t).ok_or_else(|| {
            PecosError::InvalidInput(format!("layer {t} does not exist (the model has {depth})"))
        }))
    }
}

/// Calls the Python `progress` callback (if any) with a layer's report, and the tree's index for
/// an ensemble; an exception it raises is reported as unraisable, not propagated (training goes on).
fn report_layer(progress: Option<&Py<PyAny>>, r: &LayerReport, tree: Option<usize>) {
    let Some(callback) = progress else {
        return;
    };
    Python::attach(|py| {
        let (layer, n_layers, n_problems, nnz, iters, seconds) = (
            r.layer,
            r.n_layers,
            r.n_problems,
            r.nnz,
            r.max_solver_iter,
            r.seconds,
        );
        let result = match tree {
            None => callback.call1(py, (layer, n_layers, n_problems, nnz, iters, seconds)),
            Some(tree) => {
                callback.call1(py, (layer, n_layers, n_problems, nnz, iters, seconds, tree))
            }
        };
        if let Err(e) = result {
            e.write_unraisable(py, None);
        }
    });
}

/// The weighted sum of several top-k results over the same labels (`(labels int64 (n, k_i),
/// scores float32 (n, k_i))` pairs, labels padded with -1), as the top `k` per row: a label
/// missing from a result counts 0 there; best first, equal sums by increasing label. More than one
/// row is merged in a pool of `n_threads` threads, the GIL released.
#[pyfunction]
#[pyo3(name = "merge_topk", signature = (results, weights, k, *, n_threads = 1))]
pub fn py_merge_topk<'py>(
    py: Python<'py>,
    results: Vec<TopKArgs<'py>>,
    weights: Vec<f32>,
    k: usize,
    n_threads: usize,
) -> PyResult<TopKArrays<'py>> {
    let n_rows = results.first().map_or(0, |(labels, _)| labels.shape()[0]);
    let per_result = results
        .iter()
        .map(|(labels, scores)| topk_of(labels, scores))
        .collect::<PyResult<Vec<_>>>()?;
    // As for ensembles: a single row is merged in well under a microsecond, a batch off the GIL.
    let top = if n_rows <= 1 {
        core(weighted_sum(&per_result, &weights, n_rows, k))?
    } else {
        run_detached(py, n_threads, || {
            weighted_sum(&per_result, &weights, n_rows, k)
        })?
    };
    topk_arrays(py, top, n_rows)
}

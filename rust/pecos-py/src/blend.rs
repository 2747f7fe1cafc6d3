//! The blend of `TextXRLinear` in one call: the model's search, its matchers' and the merge
//! (`pecos_core::infer::blend`), so that a real-time query crosses into Rust once.

use crate::convert::{topk_arrays, topk_of, CsrArgs, TopKArgs, TopKArrays};
use crate::error::core;
use crate::model::{PySearchParams, PyXLinearModel};
use crate::neighbours::PyNeighbourIndex;
use crate::threads::run_detached;
use pecos_core::infer::{blend, Blend, NameMatch, NeighbourParams, PostProcessor, PredictParams};
use pecos_core::PecosError;
use pyo3::prelude::*;

/// The model's part of a blend: its trees searched with these parameters (the mean of their
/// top-k if several), or a top-k computed by the caller.
#[derive(FromPyObject)]
pub enum ModelPart<'py> {
    Search(Vec<PyRef<'py, PyXLinearModel>>, PyRef<'py, PySearchParams>),
    Given(TopKArgs<'py>),
}

/// The top `k` per row of `x` of the model's top `n` (`model`) blended with the top `n` of each
/// matcher: `matchers` are exact matchers (searched with beam 1 and no post-processor) with
/// their weights; `vote` the neighbour vote's index and weight (`n_neighbours` texts, votes
/// `similarity ** power`); `names` the label-name match's index and greatest weight, which
/// needs `vote` for each row's nearest similarity. A matcher weighing 0 is not searched (the
/// vote's index still is for the names). One row is searched on the calling thread, a batch in
/// a pool of `n_threads`; without the GIL. The answer does not depend on `n_threads`.
#[pyfunction]
#[pyo3(
    name = "blend_topk",
    signature = (x, model, *, matchers, vote = None, names = None, n_neighbours, power, k, n, n_threads = 1)
)]
#[allow(clippy::too_many_arguments)]
pub fn py_blend_topk<'py>(
    py: Python<'py>,
    x: CsrArgs<'py>,
    model: ModelPart<'py>,
    matchers: Vec<(PyRef<'py, PyXLinearModel>, f32)>,
    vote: Option<(PyRef<'py, PyNeighbourIndex>, f32)>,
    names: Option<(PyRef<'py, PyNeighbourIndex>, f32)>,
    n_neighbours: usize,
    power: f32,
    k: usize,
    n: usize,
    n_threads: usize,
) -> PyResult<TopKArrays<'py>> {
    let xv = x.view()?;
    let n_rows = xv.n_rows();
    let model = match model {
        ModelPart::Search(trees, params) => {
            PyXLinearModel::search_trees(py, &trees, &xv, &params.0, n_threads, None)?
        }
        ModelPart::Given((labels, scores)) => topk_of(&labels, &scores)?,
    };
    let exact = PredictParams {
        beam_size: 1,
        topk: n,
        post_processor: PostProcessor::Noop,
    };
    let mut matched = Vec::with_capacity(matchers.len() + 1);
    for (matcher, weight) in &matchers {
        if *weight != 0.0 {
            matched.push((matcher.search(py, &xv, &exact, n_threads, None)?, *weight));
        }
    }
    let vote_params = NeighbourParams {
        n_neighbours,
        power,
        topk: n,
    };
    let mut nearest = None;
    if let Some((index, weight)) = &vote {
        if *weight != 0.0 || names.is_some() {
            let votes = index.votes(py, &xv, &vote_params, n_threads)?;
            nearest = Some(votes.nearest);
            if *weight != 0.0 {
                matched.push((votes.top, *weight));
            }
        }
    }
    let names = match (names, nearest) {
        (None, _) => None,
        (Some(_), None) => {
            return core(Err(PecosError::InvalidInput(
                "the name match is weighed by the neighbour vote's index: give vote too".into(),
            )))
        }
        (Some((index, weight)), Some(nearest)) => {
            // Each name is its label's one text: the top n names hold the top n labels.
            let params = NeighbourParams {
                n_neighbours: n,
                ..vote_params
            };
            let top = index.votes(py, &xv, &params, n_threads)?.top;
            Some(NameMatch {
                top,
                weight,
                nearest,
            })
        }
    };
    let parts = Blend {
        model,
        matched,
        names,
    };
    // As for ensembles: one row is merged in about a microsecond, a batch off the GIL.
    let top = if n_rows <= 1 {
        core(blend(parts, n_rows, k))?
    } else {
        run_detached(py, n_threads, || blend(parts, n_rows, k))?
    };
    topk_arrays(py, top, n_rows)
}

//! The blend of `TextXRLinear` in one call: the model's search, its matchers', and the merge with
//! rank bonuses and the co-click list (`pecos_core::infer::blend`), so that a real-time query
//! crosses into Rust once.

use crate::convert::{topk_arrays, topk_of, CsrArgs, TopKArgs, TopKArrays};
use crate::error::core;
use crate::model::{PySearchParams, PyXLinearModel};
use crate::neighbours::PyNeighbourIndex;
use crate::threads::run_detached;
use pecos_core::infer::{
    blend, Blend, CoClick, NameMatch, NeighbourParams, PostProcessor, PredictParams, RankBonus,
    Ranked,
};
use pecos_core::PecosError;
use pyo3::prelude::*;

/// The model's part of a blend: its trees searched with these parameters (the mean of their
/// top-k if several), or a top-k computed by the caller.
#[derive(FromPyObject)]
pub enum ModelPart<'py> {
    Search(Vec<PyRef<'py, PyXLinearModel>>, PyRef<'py, PySearchParams>),
    Given(TopKArgs<'py>),
}

/// A matcher with its weight and its share of the rank bonus.
type Weighted<'py, T> = (PyRef<'py, T>, f32, f32);

/// The top `k` per row of `x` of the model's top `n` (`model`) blended with the top `n` of each
/// matcher, as `pecos_core::infer::blend` says: `matchers` are exact matchers (searched with
/// beam 1 and no post-processor), `vote` the neighbour vote's index (`n_neighbours` texts,
/// votes `similarity ** power`), `names` the label-name match's, whose weight is the most it
/// may weigh and which needs `vote` for each row's nearest similarity; each with its weight and
/// its share of the rank bonus `rank_weight * share / (rank_offset + rank)`. `co_click` is
/// `(matrix, weight, offset, from_top)`: its top `n` join the blend. A matcher weighing 0 is
/// not searched (the vote's index still is for the names). One row is searched on the calling
/// thread, a batch in a pool of `n_threads`; without the GIL. The answer does not depend on
/// `n_threads`.
#[pyfunction]
#[pyo3(
    name = "blend_topk",
    signature = (x, model, *, model_rank_share = 1.0, matchers, vote = None, names = None,
                 n_neighbours, power, rank_weight = 0.0, rank_offset = 0.0, co_click = None, k, n,
                 n_threads = 1)
)]
#[allow(clippy::too_many_arguments)]
pub fn py_blend_topk<'py>(
    py: Python<'py>,
    x: CsrArgs<'py>,
    model: ModelPart<'py>,
    model_rank_share: f32,
    matchers: Vec<Weighted<'py, PyXLinearModel>>,
    vote: Option<Weighted<'py, PyNeighbourIndex>>,
    names: Option<Weighted<'py, PyNeighbourIndex>>,
    n_neighbours: usize,
    power: f32,
    rank_weight: f32,
    rank_offset: f32,
    co_click: Option<(PyRef<'py, PyNeighbourIndex>, f32, f32, usize)>,
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
    for (matcher, weight, rank_share) in &matchers {
        if *weight != 0.0 {
            let top = matcher.search(py, &xv, &exact, n_threads, None)?;
            matched.push(Ranked {
                top,
                weight: *weight,
                rank_share: *rank_share,
            });
        }
    }
    let vote_params = NeighbourParams {
        n_neighbours,
        power,
        topk: n,
    };
    let mut nearest = None;
    if let Some((index, weight, rank_share)) = &vote {
        if *weight != 0.0 || names.is_some() {
            let votes = index.votes(py, &xv, &vote_params, n_threads)?;
            nearest = Some(votes.nearest);
            if *weight != 0.0 {
                matched.push(Ranked {
                    top: votes.top,
                    weight: *weight,
                    rank_share: *rank_share,
                });
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
        (Some((index, weight, rank_share)), Some(nearest)) => {
            // Each name is its label's one text: the top n names hold the top n labels.
            let params = NeighbourParams {
                n_neighbours: n,
                ..vote_params
            };
            let top = index.votes(py, &xv, &params, n_threads)?.top;
            let list = Ranked {
                top,
                weight,
                rank_share,
            };
            Some(NameMatch { list, nearest })
        }
    };
    let co_click = co_click.filter(|(_, weight, _, _)| *weight != 0.0);
    let parts = Blend {
        model,
        model_rank_share,
        matched,
        names,
        bonus: RankBonus {
            weight: rank_weight,
            offset: rank_offset,
        },
        co_click: co_click
            .as_ref()
            .map(|(matrix, weight, offset, from_top)| CoClick {
                matrix: matrix.index(),
                weight: *weight,
                offset: *offset,
                from_top: *from_top,
                topk: n,
            }),
    };
    // A single row on the calling thread, a batch off the GIL.
    let top = if n_rows <= 1 {
        core(py.detach(|| blend(&parts, n_rows, k)))?
    } else {
        run_detached(py, n_threads, || blend(&parts, n_rows, k))?
    };
    topk_arrays(py, top, n_rows)
}

//! Inference: beam search down the model's layers (`beam`), the score transforms and combiners
//! applied on the way (`postprocess`), restricting the search to part of the label space
//! (`filter`: a typed prefix's labels), the mean of an ensemble's predictions (`ensemble`), the
//! labels of a query's nearest training texts (`neighbours`), the product-retrieval blend of a
//! model with its matchers (`blend`), batch
//! prediction in parallel and the single-query path.
//!
//! Uses [`crate::model`] (the scoring kernels) and [`crate::sparse`] (the queries).

mod beam;
mod blend;
mod ensemble;
mod filter;
mod neighbours;
mod postprocess;

pub use beam::{
    check_query_width, output_width, predict_batch, predict_batch_filtered, PredictParams,
    Searcher, TopK,
};
pub use blend::{blend, Blend, CoClick, NameMatch, RankBonus, Ranked};
pub use ensemble::{mean_of_trees, weighted_sum};
pub use filter::{LabelRangeFilter, LabelSets, NodeFilter, Unfiltered};
pub use neighbours::{NeighbourIndex, NeighbourParams, Votes, NEIGHBOUR_FORMAT_VERSION};
pub use postprocess::PostProcessor;

use crate::error::Result;
use crate::model::XLinearModel;
use crate::sparse::CsrView;
use std::cell::RefCell;

thread_local! {
    /// Buffers for single-query prediction on the calling thread, kept between calls so that a
    /// real-time query allocates nothing once they have grown.
    static SEARCHER: RefCell<Searcher> = RefCell::new(Searcher::new());
}

/// Beam search for the first row of `x` on the calling thread (no thread pool), with that
/// thread's reused buffers: the real-time path. Gives the same result as [`predict_batch`].
///
/// # Errors
/// Invalid parameters, a feature-count mismatch, or a matrix without rows.
pub fn predict_one(model: &XLinearModel, x: &CsrView<'_>, params: &PredictParams) -> Result<TopK> {
    predict_one_filtered(model, x, params, &Unfiltered)
}

/// As [`predict_one`], the search restricted by `filter` (the row is its query 0).
///
/// # Errors
/// As [`predict_one`].
pub fn predict_one_filtered<F: NodeFilter>(
    model: &XLinearModel,
    x: &CsrView<'_>,
    params: &PredictParams,
    filter: &F,
) -> Result<TopK> {
    check_query_width(x, model.n_features())?;
    if x.n_rows() == 0 {
        return Err(crate::PecosError::shape("rows of a single query", 1, 0));
    }
    let k = output_width(model.layers(), params)?;
    let mut labels = vec![-1i64; k];
    let mut scores = vec![0f32; k];
    SEARCHER.with_borrow_mut(|s| {
        s.search_filtered(model.layers(), model.bias(), &[x.row(0)], params, filter)?;
        for ((l, sc), (label, score)) in labels.iter_mut().zip(scores.iter_mut()).zip(s.results(0))
        {
            *l = i64::from(label);
            *sc = score;
        }
        Ok::<_, crate::PecosError>(())
    })?;
    Ok(TopK { k, labels, scores })
}

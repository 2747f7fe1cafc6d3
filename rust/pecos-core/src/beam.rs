//! Beam search over the layers of a model (PECOS spec 2.1).
//!
//! At each layer every child of every node in the beam is scored, transformed and combined with its
//! parent's score; the best `beam_size` survive (the best `topk` at the last layer). Ties go to the
//! earlier candidate (parent beam order, then child id), so results never depend on scheduling.

use crate::error::{PecosError, Result};
use crate::model::Layer;
use crate::postprocess::PostProcessor;
use crate::sparse::{CsrView, SparseRow};
use rayon::prelude::*;
use std::cmp::Ordering;

/// Search-time knobs; any of them can differ from the values used in training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictParams {
    /// Nodes kept per layer above the last.
    pub beam_size: usize,
    /// Labels returned per query.
    pub topk: usize,
    pub post_processor: PostProcessor,
}

impl PredictParams {
    /// # Errors
    /// [`PecosError::InvalidParam`] for a zero beam or top-k.
    pub fn validate(&self) -> Result<()> {
        if self.beam_size == 0 {
            return Err(PecosError::param("beam_size", "must be >= 1"));
        }
        if self.topk == 0 {
            return Err(PecosError::param("topk", "must be >= 1"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    node: u32,
    score: f32,
}

/// Best score first; equal scores keep candidate order (slot = position in the candidate list).
fn by_score_then_slot(a: &(usize, Candidate), b: &(usize, Candidate)) -> Ordering {
    b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0))
}

/// Reusable buffers for one thread's searches: a search allocates nothing once they have grown.
#[derive(Debug, Default)]
pub struct Searcher {
    beam: Vec<Candidate>,
    candidates: Vec<(usize, Candidate)>,
    raw: Vec<f32>,
}

impl Searcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs beam search for one query over `layers` and leaves the result, best first, in
    /// `self.results()`. Query indices must be sorted and inside the model's feature range (both
    /// guaranteed by [`SparseRow`]s coming from a validated [`CsrView`]).
    pub fn search(
        &mut self,
        layers: &[Layer],
        bias: f32,
        query: SparseRow<'_>,
        params: &PredictParams,
    ) {
        self.beam.clear();
        self.beam.push(Candidate {
            node: 0,
            score: 1.0,
        });
        let pp = params.post_processor;
        for (t, layer) in layers.iter().enumerate() {
            let next = layers.get(t + 1);
            let keep = if next.is_none() {
                params.topk
            } else {
                params.beam_size
            };
            self.candidates.clear();
            for parent in &self.beam {
                layer.score_children(parent.node as usize, query, bias, &mut self.raw);
                let children = layer.chain().children(parent.node as usize);
                for (&child, &raw) in children.iter().zip(&self.raw) {
                    // An empty cluster leads to no label: keeping it would waste a beam slot.
                    if next.is_some_and(|l| l.chain().children(child as usize).is_empty()) {
                        continue;
                    }
                    let mut score = pp.transform(raw);
                    // The root carries no score of its own: layer 0 is not combined.
                    if t > 0 {
                        score = pp.combine(score, parent.score);
                    }
                    // NaN (from overflowing products) ranks last; -0.0 becomes +0.0, which
                    // `total_cmp` would otherwise rank apart, breaking the tie rule.
                    score = if score.is_nan() {
                        f32::NEG_INFINITY
                    } else {
                        score + 0.0
                    };
                    let slot = self.candidates.len();
                    self.candidates
                        .push((slot, Candidate { node: child, score }));
                }
            }
            if self.candidates.len() > keep {
                self.candidates
                    .select_nth_unstable_by(keep - 1, by_score_then_slot);
                self.candidates.truncate(keep);
            }
            self.candidates.sort_unstable_by(by_score_then_slot);
            self.beam.clear();
            self.beam.extend(self.candidates.iter().map(|&(_, c)| c));
        }
    }

    /// `(label, score)` pairs of the last search, best first.
    pub fn results(&self) -> impl ExactSizeIterator<Item = (u32, f32)> + '_ {
        self.beam.iter().map(|c| (c.node, c.score))
    }
}

/// Top-k predictions of a batch: row `i` occupies `labels[i*k..(i+1)*k]`, best first, padded with
/// label `-1` and score `0` when fewer than `k` labels were reachable.
#[derive(Clone, Debug, PartialEq)]
pub struct TopK {
    pub k: usize,
    pub labels: Vec<i64>,
    pub scores: Vec<f32>,
}

/// Columns of the padded output: `topk`, capped at the number of labels (more could never be filled).
///
/// # Errors
/// [`PecosError::InvalidParam`] if `topk` is zero.
pub fn output_width(layers: &[Layer], params: &PredictParams) -> Result<usize> {
    params.validate()?;
    let n_labels = layers.last().map_or(0, |l| l.chain().n_children());
    Ok(params.topk.min(n_labels).max(1))
}

/// Checks that a query matrix fits a model with `n_features` features.
///
/// # Errors
/// [`PecosError::ShapeMismatch`] on a feature-count mismatch.
pub fn check_query_width(x: &CsrView<'_>, n_features: usize) -> Result<()> {
    if x.n_cols() != n_features {
        return Err(PecosError::shape(
            "number of features",
            n_features,
            x.n_cols(),
        ));
    }
    Ok(())
}

/// Beam search for every row of `x`, parallel over rows in the current rayon pool.
///
/// # Errors
/// Invalid parameters or a feature-count mismatch.
pub fn predict_batch(
    layers: &[Layer],
    n_features: usize,
    bias: f32,
    x: &CsrView<'_>,
    params: &PredictParams,
) -> Result<TopK> {
    params.validate()?;
    check_query_width(x, n_features)?;
    let k = output_width(layers, params)?;
    let size = x
        .n_rows()
        .checked_mul(k)
        .ok_or_else(|| PecosError::param("topk", "too large"))?;
    let mut labels = vec![-1i64; size];
    let mut scores = vec![0f32; size];
    // Rows are independent; chunks of 64 amortise scheduling without hurting balance.
    labels
        .par_chunks_mut(k * 64)
        .zip(scores.par_chunks_mut(k * 64))
        .enumerate()
        .for_each_init(Searcher::new, |searcher, (block, (lab, sco))| {
            for (j, (lrow, srow)) in lab.chunks_mut(k).zip(sco.chunks_mut(k)).enumerate() {
                searcher.search(layers, bias, x.row(block * 64 + j), params);
                for ((l, s), (label, score)) in
                    lrow.iter_mut().zip(srow.iter_mut()).zip(searcher.results())
                {
                    *l = i64::from(label);
                    *s = score;
                }
            }
        });
    Ok(TopK { k, labels, scores })
}

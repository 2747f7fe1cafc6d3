//! Beam search over the layers of a model (PECOS spec 2.1).
//!
//! At each layer every child of every node in the beam is scored, transformed and combined with its
//! parent's score; the best `beam_size` survive (the best `topk` at the last layer). Ties go to the
//! earlier candidate (parent beam order, then child id), so results never depend on scheduling.

use super::postprocess::PostProcessor;
use crate::error::{PecosError, Result};
use crate::model::{Layer, ScoreScratch};
use crate::params::{Params, Value};
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
    /// Reads `beam_size`, `topk` and `post_processor` (the estimator's names).
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] naming the first invalid parameter.
    pub fn from_params(p: &mut Params) -> Result<Self> {
        Ok(PredictParams {
            beam_size: p.count("beam_size", 1)?,
            topk: p.count("topk", 1)?,
            post_processor: PostProcessor::from_value(p.value("post_processor")?)?,
        })
    }

    /// Checks parameters built in Rust, in the words of [`PredictParams::from_params`].
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for a zero beam or top-k.
    pub fn validate(&self) -> Result<()> {
        let mut p = Params::new([
            ("beam_size".to_string(), Value::Int(self.beam_size as i128)),
            ("topk".to_string(), Value::Int(self.topk as i128)),
            (
                "post_processor".to_string(),
                Value::Str(self.post_processor.name()),
            ),
        ]);
        Self::from_params(&mut p).map(drop)
    }
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    node: u32,
    score: f32,
}

/// Best score first; equal scores keep candidate order, given by `key` = (position of the parent
/// in the beam, position of the child among its siblings).
fn by_score_then_key(a: &(u64, Candidate), b: &(u64, Candidate)) -> Ordering {
    b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0))
}

/// Candidates are pruned to the best `keep` whenever `2 * max(keep, PRUNE_BATCH)` have gathered.
const PRUNE_BATCH: usize = 32;

/// Keeps the best `keep` candidates (in no particular order) and returns the lowest score among
/// them, or -inf if there were not more than `keep`.
fn keep_best(cands: &mut Vec<(u64, Candidate)>, keep: usize) -> f32 {
    if cands.len() <= keep {
        return f32::NEG_INFINITY;
    }
    cands.select_nth_unstable_by(keep - 1, by_score_then_key);
    cands.truncate(keep);
    cands[keep - 1].1.score
}

/// Reusable buffers for one thread's searches: a search allocates nothing once they have grown.
///
/// A search handles a block of queries one layer at a time: the (parent, query) pairs of a layer
/// are grouped by parent and each group is scored in one pass over the parent's chunk of weights
/// ([`Layer::score_children_many`]), so a chunk is read from memory once per block rather than
/// once per query (what makes batch prediction fast); a single query is a block of one.
#[derive(Debug, Default)]
pub struct Searcher {
    beams: Vec<Vec<Candidate>>,
    candidates: Vec<Vec<(u64, Candidate)>>,
    /// Per query, the score of its `keep`-th best candidate at the last [`keep_best`]: a candidate
    /// scoring below it can never be kept, so it is not even stored.
    floors: Vec<f32>,
    /// `(parent, query, position of the parent in that query's beam)`.
    pairs: Vec<(u32, u32, u32)>,
    scratch: ScoreScratch,
}

impl Searcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs beam search for each query over `layers`; `self.results(q)` then holds query `q`'s
    /// labels, best first. Query indices must be sorted and inside the model's feature range (both
    /// guaranteed by [`SparseRow`]s coming from a validated [`CsrView`]).
    pub fn search(
        &mut self,
        layers: &[Layer],
        bias: f32,
        queries: &[SparseRow<'_>],
        params: &PredictParams,
    ) {
        let n = queries.len();
        self.beams.resize_with(n.max(self.beams.len()), Vec::new);
        self.candidates
            .resize_with(n.max(self.candidates.len()), Vec::new);
        for beam in &mut self.beams[..n] {
            beam.clear();
            beam.push(Candidate {
                node: 0,
                score: 1.0,
            });
        }
        let pp = params.post_processor;
        let mut group_queries = Vec::new();
        for (t, layer) in layers.iter().enumerate() {
            let next = layers.get(t + 1);
            let keep = if next.is_none() {
                params.topk
            } else {
                params.beam_size
            };
            self.pairs.clear();
            for (q, beam) in self.beams[..n].iter().enumerate() {
                self.pairs.extend(
                    beam.iter()
                        .enumerate()
                        .map(|(pos, c)| (c.node, q as u32, pos as u32)),
                );
            }
            self.pairs.sort_unstable();
            self.candidates[..n].iter_mut().for_each(Vec::clear);
            self.floors.clear();
            self.floors.resize(n, f32::NEG_INFINITY);
            // Pairs are sorted by parent: each run of equal parents is scored in one call.
            let mut rest = &self.pairs[..];
            while let Some(&(parent, ..)) = rest.first() {
                let (group, tail) = rest.split_at(rest.partition_point(|p| p.0 == parent));
                rest = tail;
                if let [(_, q, _)] = group {
                    layer.score_children(
                        parent as usize,
                        queries[*q as usize],
                        bias,
                        &mut self.scratch,
                    );
                } else {
                    group_queries.clear();
                    group_queries.extend(group.iter().map(|&(_, q, _)| queries[q as usize]));
                    layer.score_children_many(
                        parent as usize,
                        &group_queries,
                        bias,
                        &mut self.scratch,
                    );
                }
                let children = layer.chain().children(parent as usize);
                let raw_scores = self.scratch.scores().chunks_exact(children.len());
                for (&(_, q, pos), raw_scores) in group.iter().zip(raw_scores) {
                    let (q, pos) = (q as usize, pos as usize);
                    let parent_score = self.beams[q][pos].score;
                    for (ci, (&child, &raw)) in children.iter().zip(raw_scores).enumerate() {
                        // An empty cluster leads to no label: keeping it would waste a beam slot.
                        if next.is_some_and(|l| l.chain().children(child as usize).is_empty()) {
                            continue;
                        }
                        let mut score = pp.transform(raw);
                        // The root carries no score of its own: layer 0 is not combined.
                        if t > 0 {
                            score = pp.combine(score, parent_score);
                        }
                        // NaN (from overflowing products) ranks last; -0.0 becomes +0.0, which
                        // `total_cmp` would otherwise rank apart, breaking the tie rule.
                        score = if score.is_nan() {
                            f32::NEG_INFINITY
                        } else {
                            score + 0.0
                        };
                        if score < self.floors[q] {
                            continue; // `keep` better candidates are known already
                        }
                        let key = ((pos as u64) << 32) | ci as u64;
                        let cands = &mut self.candidates[q];
                        cands.push((key, Candidate { node: child, score }));
                        if cands.len() == 2 * keep.max(PRUNE_BATCH) {
                            self.floors[q] = keep_best(cands, keep);
                        }
                    }
                }
            }
            for (cands, beam) in self.candidates[..n].iter_mut().zip(&mut self.beams[..n]) {
                keep_best(cands, keep);
                cands.sort_unstable_by(by_score_then_key);
                beam.clear();
                beam.extend(cands.iter().map(|&(_, c)| c));
            }
        }
    }

    /// `(label, score)` pairs of query `q` of the last search, best first.
    pub fn results(&self, q: usize) -> impl ExactSizeIterator<Item = (u32, f32)> + '_ {
        self.beams[q].iter().map(|c| (c.node, c.score))
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

/// Rows per task of batch prediction: the larger a block, the more of its rows share each chunk
/// read (512 is where the gain levels off on debian-depends), as long as every thread still gets
/// a few blocks to balance the load. Results do not depend on the block size.
fn block_size(n_rows: usize) -> usize {
    const MAX: usize = 512;
    const MIN: usize = 16;
    let per_thread = n_rows.div_ceil(4 * rayon::current_num_threads());
    per_thread.clamp(MIN, MAX)
}

/// Beam search for every row of `x`, parallel over blocks of rows in the current rayon pool.
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
    check_query_width(x, n_features)?;
    let k = output_width(layers, params)?;
    let size = x
        .n_rows()
        .checked_mul(k)
        .ok_or_else(|| PecosError::param("topk", "too large"))?;
    let mut labels = vec![-1i64; size];
    let mut scores = vec![0f32; size];
    // Blocks of rows are independent tasks; within a block, rows share each chunk's reads.
    let block_rows = block_size(x.n_rows());
    labels
        .par_chunks_mut(k * block_rows)
        .zip(scores.par_chunks_mut(k * block_rows))
        .enumerate()
        .for_each_init(
            || (Searcher::new(), Vec::with_capacity(block_rows)),
            |(searcher, queries), (block, (lab, sco))| {
                let first = block * block_rows;
                queries.clear();
                queries.extend((first..first + lab.len() / k).map(|i| x.row(i)));
                searcher.search(layers, bias, queries, params);
                for (q, (lrow, srow)) in lab.chunks_mut(k).zip(sco.chunks_mut(k)).enumerate() {
                    for ((l, s), (label, score)) in lrow
                        .iter_mut()
                        .zip(srow.iter_mut())
                        .zip(searcher.results(q))
                    {
                        *l = i64::from(label);
                        *s = score;
                    }
                }
            },
        );
    Ok(TopK { k, labels, scores })
}

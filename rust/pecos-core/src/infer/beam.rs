//! Beam search over the layers of a model (PECOS spec 2.1).
//!
//! At each layer every child of every node in the beam is scored, transformed and combined with its
//! parent's score; the best `beam_size` survive (the best `topk` at the last layer). Ties go to the
//! earlier candidate (parent beam order, then child id), so results never depend on scheduling.

use super::filter::{NodeFilter, Unfiltered};
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

/// Children compared with the floor at once (see [`raw_floor`]).
const SKIP_BLOCK: usize = 16;

/// The raw score below which a child cannot be kept, when the post-processor leaves raw scores
/// as they are (the exact matchers' `noop`): the score of the worst of the `keep` better
/// candidates known (`floor`). Such children are skipped before any other work, most of the
/// labels of a wide one-layer matcher once the floor has risen. A child at the floor's score
/// may still be kept (ties go by position), a NaN raw score is never skipped (it is offered and
/// ranks last), and a floor of -inf skips nothing (NaNs tie there).
fn raw_floor(pp: PostProcessor, floor: &Option<(u64, Candidate)>) -> Option<f32> {
    match (pp, floor) {
        (PostProcessor::Noop, Some((_, f))) if f.score > f32::NEG_INFINITY => Some(f.score),
        _ => None,
    }
}

/// Keeps the best `keep` candidates (in no particular order) and returns the worst of them, or
/// `None` if there were not more than `keep`.
fn keep_best(cands: &mut Vec<(u64, Candidate)>, keep: usize) -> Option<(u64, Candidate)> {
    if cands.len() <= keep {
        return None;
    }
    cands.select_nth_unstable_by(keep - 1, by_score_then_key);
    cands.truncate(keep);
    cands.last().copied()
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
    /// Per query, its `keep`-th best candidate at the last [`keep_best`]: a candidate ranking
    /// after it (lower score, or equal score and later key) can never be kept, so it is not even
    /// stored. Ties matter: most children of a large one-layer matcher score exactly 0.
    floors: Vec<Option<(u64, Candidate)>>,
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
    ///
    /// # Errors
    /// [`PecosError::Format`] if a chunk of a memory-mapped layer that the search reaches is
    /// invalid (see [`Layer::score_children`]).
    pub fn search(
        &mut self,
        layers: &[Layer],
        bias: f32,
        queries: &[SparseRow<'_>],
        params: &PredictParams,
    ) -> Result<()> {
        self.search_filtered(layers, bias, queries, params, &Unfiltered)
    }

    /// As [`Searcher::search`], entering only the nodes that `filter` accepts for each query (at
    /// the last layer, the labels it accepts): no beam slot goes to a node it refuses. The
    /// filter is a type parameter, so the unfiltered search pays nothing for it.
    ///
    /// # Errors
    /// As [`Searcher::search`].
    pub fn search_filtered<F: NodeFilter>(
        &mut self,
        layers: &[Layer],
        bias: f32,
        queries: &[SparseRow<'_>],
        params: &PredictParams,
        filter: &F,
    ) -> Result<()> {
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
            self.floors.resize(n, None);
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
                    )?;
                } else {
                    group_queries.clear();
                    group_queries.extend(group.iter().map(|&(_, q, _)| queries[q as usize]));
                    layer.score_children_many(
                        parent as usize,
                        &group_queries,
                        bias,
                        &mut self.scratch,
                    )?;
                }
                let children = layer.chain().children(parent as usize);
                // On the last layer, children still at a starting score shared by all of them
                // (no query feature reached them) score alike and rank by position, so only the
                // first `keep` of those the filter accepts can be kept: the others are skipped
                // at the cost of one comparison (most labels of a wide one-layer matcher).
                let untouched = match next {
                    None => layer.shared_bias(parent as usize).map(|b| bias * b),
                    Some(_) => None,
                };
                let raw_scores = self.scratch.scores().chunks_exact(children.len());
                for (&(_, q, pos), raw_scores) in group.iter().zip(raw_scores) {
                    let (q, pos) = (q as usize, pos as usize);
                    let parent_score = self.beams[q][pos].score;
                    let (cands, floor) = (&mut self.candidates[q], &mut self.floors[q]);
                    // Offers child `ci` with raw score `raw`; false if the filter refuses it.
                    let mut offer =
                        |floor: &mut Option<(u64, Candidate)>, ci: usize, raw: f32| -> bool {
                            let child = children[ci];
                            // An empty cluster leads to no label: keeping it would waste a beam slot.
                            if next.is_some_and(|l| l.chain().children(child as usize).is_empty())
                                || !filter.accepts(q, t, child)
                            {
                                return false;
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
                            let key = ((pos as u64) << 32) | ci as u64;
                            // `keep` better candidates are known already (plain comparisons equal
                            // `by_score_then_key` here: no NaN, no -0.0).
                            if floor.is_some_and(|(floor_key, f)| {
                                score < f.score || (score == f.score && key > floor_key)
                            }) {
                                return true;
                            }
                            cands.push((key, Candidate { node: child, score }));
                            if cands.len() == 2 * keep.max(PRUNE_BATCH) {
                                *floor = keep_best(cands, keep);
                            }
                            true
                        };
                    let mut offered_untouched = 0;
                    for (b, block) in raw_scores.chunks(SKIP_BLOCK).enumerate() {
                        // One comparison per child, vectorised, for a block `offer` would refuse.
                        if raw_floor(pp, floor).is_some_and(|f| {
                            block.iter().fold(true, |below, &raw| below & (raw < f))
                        }) {
                            continue;
                        }
                        for (i, &raw) in block.iter().enumerate() {
                            if raw_floor(pp, floor).is_some_and(|f| raw < f) {
                                continue;
                            }
                            let ci = b * SKIP_BLOCK + i;
                            match untouched {
                                Some(start) if raw == start => {
                                    if offered_untouched < keep && offer(floor, ci, raw) {
                                        offered_untouched += 1;
                                    }
                                }
                                _ => {
                                    offer(floor, ci, raw);
                                }
                            }
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
        Ok(())
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
    predict_batch_filtered(layers, n_features, bias, x, params, &Unfiltered)
}

/// As [`predict_batch`], each row's search restricted by `filter` (row `i` is its query `i`).
///
/// # Errors
/// As [`predict_batch`].
pub fn predict_batch_filtered<F: NodeFilter + Sync>(
    layers: &[Layer],
    n_features: usize,
    bias: f32,
    x: &CsrView<'_>,
    params: &PredictParams,
    filter: &F,
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
        .try_for_each_init(
            || (Searcher::new(), Vec::with_capacity(block_rows)),
            |(searcher, queries), (block, (lab, sco))| {
                let first = block * block_rows;
                queries.clear();
                queries.extend((first..first + lab.len() / k).map(|i| x.row(i)));
                let block_filter = Shifted {
                    inner: filter,
                    first,
                };
                searcher.search_filtered(layers, bias, queries, params, &block_filter)?;
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
                Ok::<_, PecosError>(())
            },
        )?;
    Ok(TopK { k, labels, scores })
}

/// A filter seen from a block of rows starting at row `first`: the block's query `q` is row
/// `first + q`.
struct Shifted<'a, F> {
    inner: &'a F,
    first: usize,
}

impl<F: NodeFilter> NodeFilter for Shifted<'_, F> {
    #[inline(always)]
    fn accepts(&self, q: usize, layer: usize, node: u32) -> bool {
        self.inner.accepts(self.first + q, layer, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ChainLayer;
    use crate::model::{ChildWeights, XLinearModel};
    use crate::rng::SplitMix64;
    use crate::sparse::CsrMatrix;

    /// One layer of a test model: `parent_of` and, per child id, dense weights and a bias weight.
    struct DenseLayer {
        parent_of: Vec<u32>,
        n_parents: usize,
        weights: Vec<(Vec<f32>, f32)>,
    }

    impl DenseLayer {
        /// The layer in the model's layout (weights given in parent-major child order).
        fn build(&self) -> Layer {
            let chain = ChainLayer::try_new(self.parent_of.clone(), self.n_parents).unwrap();
            let mut ordered = Vec::new();
            for p in 0..self.n_parents {
                for &c in chain.children(p) {
                    let (w, bias) = &self.weights[c as usize];
                    let features = (0..w.len() as u32).filter(|&j| w[j as usize] != 0.0);
                    ordered.push(ChildWeights {
                        features: features.clone().collect(),
                        values: features.map(|j| w[j as usize]).collect(),
                        bias: *bias,
                    });
                }
            }
            Layer::from_child_weights(chain, &ordered).unwrap()
        }

        /// Raw score `w_c . x + bias * b_c` of child `c` for a dense query.
        fn raw(&self, c: usize, x: &[f32], bias: f32) -> f32 {
            let (w, b) = &self.weights[c];
            w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + bias * b
        }
    }

    fn model(n_features: usize, bias: f32, layers: &[DenseLayer]) -> XLinearModel {
        XLinearModel::new(
            n_features,
            bias,
            layers.iter().map(DenseLayer::build).collect(),
        )
        .unwrap()
    }

    /// Root -> clusters {0, 1} -> labels: cluster 0 holds labels [0, 2], cluster 1 [1, 3, 4].
    /// Every weight is a small multiple of 1/4, so the raw scores of the queries below are exact
    /// whatever the summation order.
    fn toy() -> Vec<DenseLayer> {
        vec![
            DenseLayer {
                parent_of: vec![0, 0],
                n_parents: 1,
                weights: vec![(vec![1.0, 0.0, 0.0], 0.0), (vec![0.0, 1.0, 0.0], -0.5)],
            },
            DenseLayer {
                parent_of: vec![0, 1, 0, 1, 1],
                n_parents: 2,
                weights: vec![
                    (vec![0.5, 0.0, 0.25], 0.0),
                    (vec![0.0, 1.0, -0.5], 0.25),
                    (vec![-1.0, 0.0, 1.0], 0.0),
                    (vec![0.0, 0.5, 0.5], -0.25),
                    (vec![0.25, 0.25, 0.0], 0.5),
                ],
            },
        ]
    }

    const QUERIES: [[f32; 3]; 8] = [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.5, 0.5, 0.5],
        [0.0, 0.0, 0.0],
        [2.0, -1.0, 0.5],
        [-1.0, 0.5, 2.0],
        [0.25, 4.0, -2.0],
    ];

    fn csr(rows: &[[f32; 3]], n_cols: usize) -> CsrMatrix {
        let rows: Vec<Vec<(usize, f32)>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .copied()
                    .enumerate()
                    .filter(|e| e.1 != 0.0)
                    .collect()
            })
            .collect();
        CsrMatrix::from_rows(n_cols, &rows).unwrap()
    }

    fn params(name: &str, beam_size: usize, topk: usize) -> PredictParams {
        PredictParams {
            beam_size,
            topk,
            post_processor: PostProcessor::parse(name).unwrap(),
        }
    }

    /// The search's scores as the search canonicalizes them (NaN last, -0.0 as +0.0).
    fn canon(s: f32) -> f32 {
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s + 0.0
        }
    }

    /// Brute force over a two-layer model: the `beam_size` best clusters (ties to the lower id),
    /// then every label under them scored and sorted, ties to (position of the parent in the
    /// beam, position among its siblings); the first `topk`.
    fn brute_force(
        layers: &[DenseLayer],
        bias: f32,
        x: &[f32],
        p: &PredictParams,
    ) -> Vec<(u32, f32)> {
        let pp = p.post_processor;
        let (top, bottom) = (&layers[0], &layers[1]);
        let cluster_score: Vec<f32> = (0..top.parent_of.len())
            .map(|c| canon(pp.transform(top.raw(c, x, bias))))
            .collect();
        let mut beam: Vec<usize> = (0..cluster_score.len()).collect();
        beam.sort_by(|&a, &b| {
            cluster_score[b]
                .total_cmp(&cluster_score[a])
                .then(a.cmp(&b))
        });
        beam.truncate(p.beam_size);
        let mut cands = Vec::new();
        for (pos, &c) in beam.iter().enumerate() {
            let children =
                (0..bottom.parent_of.len()).filter(|&l| bottom.parent_of[l] as usize == c);
            for (slot, l) in children.enumerate() {
                let s = canon(pp.combine(pp.transform(bottom.raw(l, x, bias)), cluster_score[c]));
                cands.push(((pos, slot), l as u32, s));
            }
        }
        cands.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        cands
            .into_iter()
            .take(p.topk)
            .map(|(_, l, s)| (l, s))
            .collect()
    }

    fn search_one(m: &XLinearModel, x: &CsrMatrix, i: usize, p: &PredictParams) -> Vec<(u32, f32)> {
        let mut s = Searcher::new();
        s.search(m.layers(), m.bias(), &[x.view().row(i)], p)
            .unwrap();
        s.results(0).collect()
    }

    #[test]
    fn exact_top_k_when_the_beam_covers_the_tree() {
        let layers = toy();
        let m = model(3, 1.0, &layers);
        let x = csr(&QUERIES, 3);
        for name in PostProcessor::NAMES {
            for (beam_size, topk) in [(2, 5), (2, 3), (5, 1)] {
                let p = params(name, beam_size, topk);
                for (i, q) in QUERIES.iter().enumerate() {
                    let want = brute_force(&layers, 1.0, q, &p);
                    assert_eq!(want.len(), topk);
                    assert_eq!(search_one(&m, &x, i, &p), want, "{name}, query {i}");
                }
            }
        }
    }

    #[test]
    fn a_beam_of_one_follows_the_greedy_path() {
        let layers = toy();
        let m = model(3, 1.0, &layers);
        let x = csr(&QUERIES, 3);
        // Query 0 by hand (noop): clusters 1.0 and -0.5, so a beam of one keeps cluster 0 and
        // misses label 4, the best label overall.
        let greedy = predict_batch(m.layers(), 3, 1.0, &x.view(), &params("noop", 1, 5)).unwrap();
        assert_eq!(greedy.labels[..5], [0, 2, -1, -1, -1]);
        assert_eq!(greedy.scores[..5], [0.5, -1.0, 0.0, 0.0, 0.0]);
        let full = predict_batch(m.layers(), 3, 1.0, &x.view(), &params("noop", 2, 5)).unwrap();
        assert_eq!(full.labels[..5], [4, 0, 1, 3, 2]);
        assert_eq!(full.scores[..5], [0.75, 0.5, 0.25, -0.25, -1.0]);
        for name in PostProcessor::NAMES {
            let p = params(name, 1, 5);
            for (i, q) in QUERIES.iter().enumerate() {
                assert_eq!(
                    search_one(&m, &x, i, &p),
                    brute_force(&layers, 1.0, q, &p),
                    "{name}, query {i}"
                );
            }
        }
    }

    #[test]
    fn ties_go_to_the_earlier_candidate() {
        // Every label scores the same; candidate order is the parent's place in the beam, then
        // the child's place among its siblings (not the label id).
        let mut layers = toy();
        for (label_bias, b1, beam_size, want) in [
            (0.5, 0.0, 2, vec![0, 2, 1, 3, 4]), // clusters tie: cluster 0 first
            (0.5, 1.0, 2, vec![1, 3, 4, 0, 2]), // cluster 1 scores higher: its children first
            (0.5, 0.0, 1, vec![0, 2]),          // tie at the beam's cut: the earlier cluster stays
            (-0.0, 0.0, 2, vec![0, 2, 1, 3, 4]), // -0.0 ties with +0.0 (labels 1, 3 below)
        ] {
            layers[0].weights = vec![(vec![0.0; 3], 0.0), (vec![0.0; 3], b1)];
            for (l, w) in layers[1].weights.iter_mut().enumerate() {
                *w = (
                    vec![0.0; 3],
                    if l % 2 == 1 {
                        label_bias
                    } else {
                        label_bias.abs()
                    },
                );
            }
            let m = model(3, 1.0, &layers);
            let x = csr(&QUERIES[..1], 3);
            let got: Vec<u32> = search_one(&m, &x, 0, &params("noop", beam_size, 5))
                .into_iter()
                .map(|(l, s)| {
                    assert_eq!(s.to_bits(), label_bias.abs().to_bits());
                    l
                })
                .collect();
            assert_eq!(
                got, want,
                "label bias {label_bias}, cluster 1 bias {b1}, beam {beam_size}"
            );
        }
    }

    /// Wide clusters whose labels share one bias weight and have few weights each, so that most
    /// labels are reached by no query feature: the search skips those beyond the first `topk`
    /// of each cluster (and, with `noop`, blocks of labels below the floor), and must still return
    /// exactly the brute-force answer (ties included).
    #[test]
    fn skipping_untouched_labels_of_a_shared_bias_keeps_the_exact_top_k() {
        let mut rng = SplitMix64::new(11);
        let n_features = 40;
        for label_bias in [0.0, 0.5, -1.0] {
            let n_labels = 300;
            let layers = vec![
                DenseLayer {
                    parent_of: vec![0, 0],
                    n_parents: 1,
                    weights: vec![(vec![0.0; n_features], 0.25), (vec![0.0; n_features], 0.0)],
                },
                DenseLayer {
                    parent_of: (0..n_labels as u32).map(|l| l % 2).collect(),
                    n_parents: 2,
                    weights: (0..n_labels)
                        .map(|_| {
                            let w = (0..n_features)
                                .map(|_| match rng.below(40) {
                                    0 => 0.5,
                                    1 => -0.75,
                                    _ => 0.0,
                                })
                                .collect();
                            (w, label_bias)
                        })
                        .collect(),
                },
            ];
            let m = model(n_features, 1.0, &layers);
            assert_eq!(m.layers()[1].shared_bias(0), Some(label_bias));
            let rows: Vec<Vec<(usize, f32)>> = (0..30)
                .map(|_| {
                    let mut row = Vec::new();
                    for j in 0..n_features {
                        if rng.below(8) == 0 {
                            row.push((j, 0.25 * (1 + rng.below(4)) as f32));
                        }
                    }
                    row
                })
                .chain([vec![], vec![(3, 1.0)]]) // nothing reached; a few labels reached
                .collect();
            let x = CsrMatrix::from_rows(n_features, &rows).unwrap();
            for name in PostProcessor::NAMES {
                for (beam_size, topk) in [(1, 5), (2, 1), (2, 40), (2, 300)] {
                    let p = params(name, beam_size, topk);
                    for (i, row) in rows.iter().enumerate() {
                        let mut dense = vec![0.0; n_features];
                        row.iter().for_each(|&(j, v)| dense[j] = v);
                        let want = brute_force(&layers, 1.0, &dense, &p);
                        let got = search_one(&m, &x, i, &p);
                        let bits = |r: &[(u32, f32)]| -> Vec<(u32, u32)> {
                            r.iter().map(|&(l, s)| (l, s.to_bits())).collect()
                        };
                        assert_eq!(bits(&got), bits(&want), "{name} {beam_size} {topk} row {i}");
                    }
                }
            }
        }
    }

    /// Root -> 4 -> 12 -> 40 labels over 25 features, random weights (about 40% nonzero).
    fn random_model(seed: u64) -> (XLinearModel, CsrMatrix) {
        let mut rng = SplitMix64::new(seed);
        let value = |rng: &mut SplitMix64| (rng.below(2000) as f32 - 1000.0) / 337.0;
        let n_features = 25;
        let sizes = [1, 4, 12, 40];
        let layers: Vec<DenseLayer> = sizes
            .windows(2)
            .map(|w| DenseLayer {
                parent_of: (0..w[1] as u32).map(|c| c % w[0] as u32).collect(),
                n_parents: w[0],
                weights: (0..w[1])
                    .map(|_| {
                        let dense = (0..n_features)
                            .map(|_| {
                                if rng.below(5) < 2 {
                                    value(&mut rng)
                                } else {
                                    0.0
                                }
                            })
                            .collect();
                        (dense, value(&mut rng))
                    })
                    .collect(),
            })
            .collect();
        let rows: Vec<Vec<(usize, f32)>> = (0..150)
            .map(|_| {
                let mut row = Vec::new();
                for j in 0..n_features {
                    if rng.below(4) == 0 {
                        row.push((j, value(&mut rng)));
                    }
                }
                row
            })
            .collect();
        (
            model(n_features, 1.0, &layers),
            CsrMatrix::from_rows(n_features, &rows).unwrap(),
        )
    }

    #[test]
    fn predict_batch_equals_searching_one_row_at_a_time() {
        let (m, x) = random_model(7);
        let xv = x.view();
        for name in ["l3-hinge", "log-sigmoid", "noop"] {
            let p = params(name, 3, 7);
            let pool = |n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
            };
            let batch = pool(1)
                .install(|| predict_batch(m.layers(), 25, 1.0, &xv, &p))
                .unwrap();
            let parallel = pool(3)
                .install(|| predict_batch(m.layers(), 25, 1.0, &xv, &p))
                .unwrap();
            assert_eq!(batch, parallel, "{name}");
            assert_eq!(batch.k, 7);
            let mut searcher = Searcher::new(); // reused across rows, as the binding does
            let mut whole = Searcher::new();
            let all: Vec<SparseRow<'_>> = (0..xv.n_rows()).map(|i| xv.row(i)).collect();
            whole.search(m.layers(), 1.0, &all, &p).unwrap();
            for i in 0..xv.n_rows() {
                searcher.search(m.layers(), 1.0, &[xv.row(i)], &p).unwrap();
                let one: Vec<(u32, f32)> = searcher.results(0).collect();
                assert_eq!(one, whole.results(i).collect::<Vec<_>>(), "{name}, row {i}");
                let mut labels = vec![-1i64; 7];
                let mut scores = vec![0f32; 7];
                for (j, &(l, s)) in one.iter().enumerate() {
                    (labels[j], scores[j]) = (i64::from(l), s);
                }
                assert_eq!(batch.labels[i * 7..(i + 1) * 7], labels, "{name}, row {i}");
                assert_eq!(batch.scores[i * 7..(i + 1) * 7], scores, "{name}, row {i}");
            }
        }
    }

    #[test]
    fn output_width_caps_topk_at_the_number_of_labels() {
        let m = model(3, 1.0, &toy());
        assert_eq!(output_width(m.layers(), &params("noop", 2, 3)).unwrap(), 3);
        assert_eq!(output_width(m.layers(), &params("noop", 2, 5)).unwrap(), 5);
        assert_eq!(
            output_width(m.layers(), &params("noop", 2, 100)).unwrap(),
            5
        );
        let x = csr(&QUERIES, 3);
        let top = predict_batch(m.layers(), 3, 1.0, &x.view(), &params("noop", 2, 100)).unwrap();
        assert_eq!((top.k, top.labels.len()), (5, 5 * QUERIES.len()));
        for row in top.labels.chunks(5) {
            let mut seen = row.to_vec();
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2, 3, 4]); // a full beam reaches every label
        }
    }

    #[test]
    fn check_query_width_rejects_other_widths() {
        let m = model(3, 1.0, &toy());
        let p = params("noop", 2, 5);
        for n_cols in [2, 4] {
            let x = CsrMatrix::from_rows(n_cols, &[vec![(1, 1.0)]]).unwrap();
            let shape = |r: Result<_>| matches!(r, Err(PecosError::ShapeMismatch { expected: 3, got, .. }) if got == n_cols);
            assert!(shape(check_query_width(&x.view(), 3)), "{n_cols} columns");
            assert!(shape(
                predict_batch(m.layers(), 3, 1.0, &x.view(), &p).map(|_| ())
            ));
        }
        check_query_width(&csr(&QUERIES, 3).view(), 3).unwrap();
    }

    #[test]
    fn validate_rejects_a_zero_beam_or_topk() {
        let m = model(3, 1.0, &toy());
        let x = csr(&QUERIES, 3);
        params("noop", 1, 1).validate().unwrap();
        for (beam_size, topk, bad) in [(0, 5, "beam_size"), (2, 0, "topk"), (0, 0, "beam_size")] {
            let p = params("noop", beam_size, topk);
            let named = |r: Result<()>| matches!(r, Err(PecosError::InvalidParam { name, .. }) if name == bad);
            assert!(named(p.validate()), "beam {beam_size}, topk {topk}");
            assert!(named(output_width(m.layers(), &p).map(|_| ())));
            assert!(named(
                predict_batch(m.layers(), 3, 1.0, &x.view(), &p).map(|_| ())
            ));
        }
    }
}

//! Layer-wise training of an XR-Linear model over a cluster chain (PECOS spec 1.3).
//!
//! Layer `t` learns one binary scorer per node at depth `t + 1`, trained on the rows "matched" to its
//! parent: every row for the top layer, and below it the rows whose true labels fall under the parent
//! (teacher-forced negatives, TFN), optionally plus the rows for which the already-trained upper
//! layers put the parent in their beam (matcher-aware negatives, MAN). Siblings' positives are the
//! negatives.
//!
//! Every parent's problems share one compact copy of its rows restricted to the features that occur in
//! them ([`LocalRows`]), so a solver's dense weight vector is only as long as that local vocabulary.
//! Under the hinge losses a parent's children are solved together in groups of
//! [`LANES`] consecutive siblings ([`crate::siblings`]); under the logistic loss one at a time. Work
//! runs in parallel over parents and, inside a parent, over its groups (or children); each group
//! (or problem) is seeded from its first child's id and results are gathered in order, so the
//! model is identical for every thread count.

use crate::beam::{predict_batch, PredictParams};
use crate::chain::{ChainLayer, ClusterChain};
use crate::error::{PecosError, Result};
use crate::model::{ChildWeights, Layer, XLinearModel};
use crate::postprocess::PostProcessor;
use crate::rng::SplitMix64;
use crate::siblings::{solve_svc_group, GroupWorkspace, LANES};
use crate::solver::{solve, Loss, ProblemRows, SolverParams, Workspace};
use crate::sparse::{CsrView, LocalRows};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Which rows train the children of a parent, besides the parent's own positive rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NegativeSampling {
    /// Teacher-forced negatives: rows with a true label under the parent.
    Tfn,
    /// TFN plus matcher-aware negatives: rows whose beam (from the upper layers) reaches the parent.
    TfnMan,
}

impl NegativeSampling {
    /// Parses `"tfn"` or `"tfn+man"`.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for any other name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "tfn" => Ok(Self::Tfn),
            "tfn+man" => Ok(Self::TfnMan),
            _ => Err(PecosError::param(
                "negative_sampling",
                format!("unknown scheme {name:?}; expected \"tfn\" or \"tfn+man\""),
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Tfn => "tfn",
            Self::TfnMan => "tfn+man",
        }
    }
}

/// Everything that shapes training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    pub solver: SolverParams,
    /// Weights with `|w| < threshold` are dropped (the bias weight included).
    pub threshold: f32,
    /// Keep at most this many weights per scorer, largest `|w|` first; 0 keeps all.
    pub max_nonzeros_per_label: usize,
    pub negative_sampling: NegativeSampling,
    /// Beam used to find matcher-aware negatives.
    pub man_beam_size: usize,
    pub man_post_processor: PostProcessor,
    /// Seeds the solvers' shuffles; each problem derives its own seed from it.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            solver: SolverParams::default(),
            threshold: 0.1,
            max_nonzeros_per_label: 0,
            negative_sampling: NegativeSampling::Tfn,
            man_beam_size: 10,
            man_post_processor: PostProcessor::Hinge(3),
            seed: 0,
        }
    }
}

impl TrainParams {
    /// # Errors
    /// [`PecosError::InvalidParam`] naming the first bad parameter.
    pub fn validate(&self) -> Result<()> {
        self.solver.validate()?;
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err(PecosError::param(
                "threshold",
                format!("must be finite and >= 0, got {}", self.threshold),
            ));
        }
        if self.man_beam_size == 0 {
            return Err(PecosError::param("man_beam_size", "must be >= 1"));
        }
        Ok(())
    }
}

/// Reported after each layer is trained.
#[derive(Clone, Debug)]
pub struct LayerReport {
    pub layer: usize,
    pub n_layers: usize,
    pub n_problems: usize,
    pub nnz: usize,
    /// The most passes any of the layer's solves took.
    pub max_solver_iter: usize,
    pub seconds: f64,
}

/// For each row, the sorted set of tree nodes at one depth (labels at the bottom).
struct NodeSets {
    indptr: Vec<usize>,
    nodes: Vec<u32>,
}

impl NodeSets {
    fn row(&self, i: usize) -> &[u32] {
        &self.nodes[self.indptr[i]..self.indptr[i + 1]]
    }

    fn from_labels(y: &CsrView<'_>) -> Self {
        let mut indptr = Vec::with_capacity(y.n_rows() + 1);
        let mut nodes = Vec::with_capacity(y.nnz());
        indptr.push(0);
        for i in 0..y.n_rows() {
            nodes.extend(
                y.row(i)
                    .iter()
                    .filter(|&(_, v)| v != 0.0)
                    .map(|(j, _)| j as u32),
            );
            indptr.push(nodes.len());
        }
        NodeSets { indptr, nodes }
    }

    /// The parents of each row's nodes, one level up.
    fn parents(&self, layer: &ChainLayer) -> Self {
        let n_rows = self.indptr.len() - 1;
        let mut indptr = Vec::with_capacity(n_rows + 1);
        let mut nodes = Vec::with_capacity(self.nodes.len());
        indptr.push(0);
        let parent_of = layer.parent_of();
        for i in 0..n_rows {
            let start = nodes.len();
            nodes.extend(self.row(i).iter().map(|&c| parent_of[c as usize]));
            nodes[start..].sort_unstable();
            let kept = dedup_in_place(&mut nodes[start..]);
            nodes.truncate(start + kept);
            indptr.push(nodes.len());
        }
        NodeSets { indptr, nodes }
    }

    /// Row ids per node (the transpose), rows increasing.
    fn rows_per_node(&self, n_nodes: usize) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); n_nodes];
        for i in 0..self.indptr.len() - 1 {
            for &k in self.row(i) {
                out[k as usize].push(i as u32);
            }
        }
        out
    }
}

/// Removes consecutive duplicates from a sorted slice; returns the number of distinct values kept at the front.
fn dedup_in_place(v: &mut [u32]) -> usize {
    if v.is_empty() {
        return 0;
    }
    let mut kept = 1;
    for i in 1..v.len() {
        if v[i] != v[kept - 1] {
            v[kept] = v[i];
            kept += 1;
        }
    }
    kept
}

/// A seed for one problem, decorrelated across layers and nodes.
fn problem_seed(seed: u64, layer: usize, node: u32) -> u64 {
    let mut rng = SplitMix64::new(seed ^ ((layer as u64) << 40) ^ u64::from(node));
    rng.next_u64()
}

/// Keeps the weights that survive pruning, mapped back to global feature ids.
fn prune(w: &[f32], bias_w: f32, features: &[u32], params: &TrainParams) -> ChildWeights {
    let t = params.threshold;
    let mut kept: Vec<(u32, f32)> = w
        .iter()
        .zip(features)
        .filter(|(v, _)| v.abs() >= t && **v != 0.0)
        .map(|(&v, &f)| (f, v))
        .collect();
    let mut bias = if bias_w.abs() >= t { bias_w } else { 0.0 };
    let cap = params.max_nonzeros_per_label;
    if cap > 0 && kept.len() + usize::from(bias != 0.0) > cap {
        // The bias competes with the feature weights for the kept slots (u32::MAX marks it).
        if bias != 0.0 {
            kept.push((u32::MAX, bias));
        }
        kept.select_nth_unstable_by(cap - 1, |a, b| {
            b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0))
        });
        kept.truncate(cap);
        bias = kept.iter().find(|e| e.0 == u32::MAX).map_or(0.0, |e| e.1);
        kept.retain(|e| e.0 != u32::MAX);
        kept.sort_unstable_by_key(|e| e.0);
    }
    ChildWeights {
        features: kept.iter().map(|e| e.0).collect(),
        values: kept.iter().map(|e| e.1).collect(),
        bias,
    }
}

/// Trains the scorers of all children of one parent; also returns the most solver passes taken.
fn train_parent(
    x: &CsrView<'_>,
    rows: &[u32],
    children: &[u32],
    positives: &NodeSets,
    layer: usize,
    params: &TrainParams,
) -> Vec<(ChildWeights, usize)> {
    if rows.is_empty() {
        return vec![(ChildWeights::default(), 0); children.len()];
    }
    // One compact copy of the parent's rows serves all of its children's problems.
    let local = LocalRows::gather(x, rows);
    let sq_norms: Vec<f32> = (0..rows.len())
        .map(|i| local.row(i).1.iter().map(|v| v * v).sum())
        .collect();
    let problem = ProblemRows {
        indptr: &local.indptr,
        indices: &local.indices,
        data: &local.data,
        sq_norms: &sq_norms,
        n_features: local.columns.len(),
    };
    if params.solver.loss == Loss::Logistic {
        return children
            .par_iter()
            .map_init(Workspace::new, |ws, &child| {
                let labels: Vec<bool> = rows
                    .iter()
                    .map(|&r| positives.row(r as usize).binary_search(&child).is_ok())
                    .collect();
                let seed = problem_seed(params.seed, layer, child);
                let sol = solve(&problem, &labels, None, &params.solver, seed, ws);
                (prune(sol.w, sol.bias_w, &local.columns, params), sol.n_iter)
            })
            .collect();
    }
    // Hinge losses: siblings in groups of LANES, solved together (seeded by the group's first child).
    children
        .par_chunks(LANES)
        .map_init(GroupWorkspace::new, |ws, group| {
            let labels: Vec<u8> = rows
                .iter()
                .map(|&r| {
                    let row_nodes = positives.row(r as usize);
                    group.iter().enumerate().fold(0u8, |bits, (k, c)| {
                        bits | (u8::from(row_nodes.binary_search(c).is_ok()) << k)
                    })
                })
                .collect();
            let seed = problem_seed(params.seed, layer, group[0]);
            let sol = solve_svc_group(&problem, group.len(), &labels, &params.solver, seed, ws);
            (0..group.len())
                .map(|k| {
                    let cw = prune(ws.weights(k), sol.bias_w[k], &local.columns, params);
                    (cw, sol.n_iter[k])
                })
                .collect::<Vec<_>>()
        })
        .flatten()
        .collect()
}

/// Trains a model for `x` (rows = instances) and the label indicator `y` over `chain`.
/// Runs in the current rayon pool; `progress` is called after each layer.
///
/// # Errors
/// Invalid parameters, or shapes of `x`, `y` and `chain` that do not agree.
pub fn train(
    x: &CsrView<'_>,
    y: &CsrView<'_>,
    chain: &ClusterChain,
    params: &TrainParams,
    progress: &(dyn Fn(&LayerReport) + Sync),
) -> Result<XLinearModel> {
    params.validate()?;
    if y.n_rows() != x.n_rows() {
        return Err(PecosError::shape(
            "rows of Y (instances)",
            x.n_rows(),
            y.n_rows(),
        ));
    }
    if y.n_cols() != chain.n_labels() {
        return Err(PecosError::shape(
            "columns of Y (labels in the cluster chain)",
            chain.n_labels(),
            y.n_cols(),
        ));
    }
    let depth = chain.depth();
    // node_sets[t]: each row's positive nodes at depth t (node_sets[depth] holds the labels).
    let mut node_sets = vec![NodeSets::from_labels(y)];
    for layer in chain.layers().iter().rev() {
        let below = node_sets.last().map(|s| s.parents(layer));
        node_sets.extend(below);
    }
    node_sets.reverse();

    let mut layers: Vec<Layer> = Vec::with_capacity(depth);
    for (t, chain_layer) in chain.layers().iter().enumerate() {
        let start = Instant::now();
        let n_parents = chain_layer.n_parents();
        let rows_per_parent: Vec<Vec<u32>> = if t == 0 {
            vec![(0..x.n_rows() as u32).collect()]
        } else {
            let mut rows = node_sets[t].rows_per_node(n_parents);
            if params.negative_sampling == NegativeSampling::TfnMan {
                add_matcher_negatives(&mut rows, &layers, x, params)?;
            }
            rows
        };
        let per_parent: Vec<Vec<(ChildWeights, usize)>> = (0..n_parents)
            .into_par_iter()
            .map(|p| {
                train_parent(
                    x,
                    &rows_per_parent[p],
                    chain_layer.children(p),
                    &node_sets[t + 1],
                    t,
                    params,
                )
            })
            .collect();
        let (weights, n_iters): (Vec<ChildWeights>, Vec<usize>) =
            per_parent.into_iter().flatten().unzip();
        let layer = Layer::from_child_weights(chain_layer.clone(), &weights)?;
        progress(&LayerReport {
            layer: t,
            n_layers: depth,
            n_problems: chain_layer.n_children(),
            nnz: layer.nnz(),
            max_solver_iter: n_iters.iter().copied().max().unwrap_or(0),
            seconds: start.elapsed().as_secs_f64(),
        });
        layers.push(layer);
    }
    XLinearModel::new(x.n_cols(), params.solver.bias, layers)
}

/// Adds to each parent's rows those rows whose beam through the trained upper layers reaches it.
fn add_matcher_negatives(
    rows: &mut [Vec<u32>],
    upper: &[Layer],
    x: &CsrView<'_>,
    params: &TrainParams,
) -> Result<()> {
    let b = params.man_beam_size;
    let predicted = predict_batch(
        upper,
        x.n_cols(),
        params.solver.bias,
        x,
        &PredictParams {
            beam_size: b,
            topk: b,
            post_processor: params.man_post_processor,
        },
    )?;
    for (i, row_nodes) in predicted.labels.chunks(b).enumerate() {
        for &k in row_nodes.iter().filter(|&&k| k >= 0) {
            rows[k as usize].push(i as u32);
        }
    }
    for r in rows.iter_mut() {
        r.sort_unstable();
        let n = dedup_in_place(r);
        r.truncate(n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::CsrMatrix;

    /// Two well separated groups of labels: label j fires on feature j; rows hold one label each.
    fn toy() -> (CsrMatrix, CsrMatrix, ClusterChain) {
        let n_labels = 8;
        let mut xr = Vec::new();
        let mut yr = Vec::new();
        for i in 0..64 {
            let j = i % n_labels;
            xr.push(vec![(j, 1.0), (8 + (i % 3), 0.3)]);
            yr.push(vec![(j, 1.0)]);
        }
        let x = CsrMatrix::from_rows(11, &xr).unwrap();
        let y = CsrMatrix::from_rows(n_labels, &yr).unwrap();
        let chain = ClusterChain::try_new(vec![vec![0, 0], vec![0, 0, 0, 0, 1, 1, 1, 1]]).unwrap();
        (x, y, chain)
    }

    #[test]
    fn learns_separable_toy_problem() {
        let (x, y, chain) = toy();
        for ns in [NegativeSampling::Tfn, NegativeSampling::TfnMan] {
            let params = TrainParams {
                negative_sampling: ns,
                ..TrainParams::default()
            };
            let model = train(&x.view(), &y.view(), &chain, &params, &|_| {}).unwrap();
            let pred = predict_batch(
                model.layers(),
                model.n_features(),
                model.bias(),
                &x.view(),
                &PredictParams {
                    beam_size: 2,
                    topk: 1,
                    post_processor: PostProcessor::Hinge(3),
                },
            )
            .unwrap();
            for i in 0..64 {
                assert_eq!(pred.labels[i], (i % 8) as i64, "row {i} with {ns:?}");
            }
        }
    }

    #[test]
    fn identical_for_any_thread_count() {
        let (x, y, chain) = toy();
        let params = TrainParams {
            threshold: 0.0,
            ..TrainParams::default()
        };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| train(&x.view(), &y.view(), &chain, &params, &|_| {}).unwrap())
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn rejects_mismatched_shapes() {
        let (x, _, chain) = toy();
        let y = CsrMatrix::from_rows(5, &vec![vec![]; 64]).unwrap();
        assert!(train(
            &x.view(),
            &y.view(),
            &chain,
            &TrainParams::default(),
            &|_| {}
        )
        .is_err());
    }

    #[test]
    fn prune_caps_nonzeros_with_bias_competing() {
        let params = TrainParams {
            threshold: 0.1,
            max_nonzeros_per_label: 2,
            ..TrainParams::default()
        };
        let cw = prune(&[0.05, -0.9, 0.3, 0.5], 0.7, &[10, 11, 12, 13], &params);
        assert_eq!(cw.features, vec![11]);
        assert_eq!(cw.values, vec![-0.9]);
        assert_eq!(cw.bias, 0.7);
    }
}

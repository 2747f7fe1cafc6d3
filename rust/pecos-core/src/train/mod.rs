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
//! `LANES` consecutive siblings (`siblings`); under the logistic loss one at a time. Work
//! runs in parallel over parents and, inside a parent, over its groups (or children); each group
//! (or problem) is seeded from its first child's id and results are gathered in order, so the
//! model is identical for every thread count.
//!
//! Ensembles ([`train_ensemble`]) train several such models at once, over differently seeded
//! chains.
//!
//! Owns the training parameters (`params`), the rows each node trains on (`targets`), the
//! solvers (`solver`, `siblings`) and pruning (`prune`, also applied to a trained model by
//! [`XLinearModel::pruned`]), and the training of a sub-tree apart from the rest, joined to it
//! afterwards ([`train_subtree`], [`join_subtrees`]: distributed training). Uses [`crate::sparse`],
//! [`crate::index`] (the chain), [`crate::model`] (what it builds) and [`crate::infer`] (the beam
//! that finds matcher-aware negatives).

mod params;
mod prune;
mod siblings;
mod solver;
mod subtree;
mod targets;

pub use params::{CoarseLayers, LayerReport, NegativeSampling, TrainParams, XLinearParams};
pub use prune::Pruning;
pub use solver::{Loss, SolverParams};
pub use subtree::{join_subtrees, train_subtree, SubTreePlace};

use crate::error::{PecosError, Result, StopFlag};
use crate::index::ClusterChain;
use crate::model::{ChildWeights, Layer, XLinearModel};
use crate::rng::SplitMix64;
use crate::sparse::{CsrView, LocalRows};
use prune::prune_solution;
use rayon::prelude::*;
use siblings::{solve_svc_group, GroupWorkspace, LANES};
use solver::{solve_logistic, ProblemRows, Workspace};
use std::time::Instant;
use targets::{add_matcher_negatives, NodeSets};

/// A seed for one problem, decorrelated across layers and nodes.
fn problem_seed(seed: u64, layer: usize, node: u32) -> u64 {
    let mut rng = SplitMix64::new(seed ^ ((layer as u64) << 40) ^ u64::from(node));
    rng.next_u64()
}

/// Trains the scorers of all children of one parent on the first `n_columns` columns of `x`;
/// also returns the most solver passes taken. `layer` and `node_ids` (the whole tree's id of each
/// child of the layer; `None`: the ids are the whole tree's) place the problems in the whole
/// tree, which seeds them.
#[allow(clippy::too_many_arguments)]
fn train_parent(
    x: &CsrView<'_>,
    n_columns: usize,
    row_weights: Option<&[f32]>,
    rows: &[u32],
    children: &[u32],
    positives: &NodeSets,
    layer: usize,
    node_ids: Option<&[u32]>,
    params: &TrainParams,
    stop: &StopFlag,
) -> Vec<(ChildWeights, usize)> {
    let seed_of = |child: u32| {
        let id = node_ids.map_or(child, |ids| ids[child as usize]);
        problem_seed(params.seed, layer, id)
    };
    if rows.is_empty() || stop.is_raised() {
        return vec![(ChildWeights::default(), 0); children.len()];
    }
    // One compact copy of the parent's rows serves all of its children's problems.
    let local = LocalRows::gather_leading(x, rows, n_columns);
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
    let local_weights: Option<Vec<f32>> =
        row_weights.map(|w| rows.iter().map(|&r| w[r as usize]).collect());
    let costs = local_weights.as_deref();
    if params.solver.loss == Loss::Logistic {
        return children
            .par_iter()
            .map_init(Workspace::new, |ws, &child| {
                if stop.is_raised() {
                    return (ChildWeights::default(), 0);
                }
                let labels: Vec<bool> = rows
                    .iter()
                    .map(|&r| positives.row(r as usize).binary_search(&child).is_ok())
                    .collect();
                let seed = seed_of(child);
                let sol = solve_logistic(&problem, &labels, costs, &params.solver, seed, ws);
                let pruning = &params.pruning;
                (
                    prune_solution(sol.w, sol.bias_w, &local.columns, pruning),
                    sol.n_iter,
                )
            })
            .collect();
    }
    // Hinge losses: siblings in groups of LANES, solved together (seeded by the group's first child).
    children
        .par_chunks(LANES)
        .map_init(GroupWorkspace::new, |ws, group| {
            if stop.is_raised() {
                return vec![(ChildWeights::default(), 0); group.len()];
            }
            let labels: Vec<u8> = rows
                .iter()
                .map(|&r| {
                    let row_nodes = positives.row(r as usize);
                    group.iter().enumerate().fold(0u8, |bits, (k, c)| {
                        bits | (u8::from(row_nodes.binary_search(c).is_ok()) << k)
                    })
                })
                .collect();
            let seed = seed_of(group[0]);
            let sol = solve_svc_group(
                &problem,
                group.len(),
                &labels,
                costs,
                &params.solver,
                seed,
                ws,
            );
            (0..group.len())
                .map(|k| {
                    let pruning = &params.pruning;
                    let cw = prune_solution(ws.weights(k), sol.bias_w[k], &local.columns, pruning);
                    (cw, sol.n_iter[k])
                })
                .collect::<Vec<_>>()
        })
        .flatten()
        .collect()
}

/// Trains a model for `x` (rows = instances) and the label indicator `y` over `chain`.
/// `row_weights` (one per row, finite and >= 0) multiply each row's cost in every problem: a
/// row of weight 2 counts as that row twice, weight 0 as no row. Runs in the current rayon
/// pool; `progress` is called after each layer, in the order the layers finish (with
/// teacher-forced negatives only, all layers are trained at once; with matcher-aware ones, top
/// down). Raising `stop` ends the training after the sibling groups being solved at that moment.
///
/// # Errors
/// Invalid parameters or row weights, shapes of `x`, `y` and `chain` that do not agree, or
/// [`PecosError::Interrupted`] once `stop` is raised.
pub fn train(
    x: &CsrView<'_>,
    y: &CsrView<'_>,
    row_weights: Option<&[f32]>,
    chain: &ClusterChain,
    params: &TrainParams,
    progress: &(dyn Fn(&LayerReport) + Sync),
    stop: &StopFlag,
) -> Result<XLinearModel> {
    train_layers(x, y, row_weights, chain, None, params, progress, stop)
}

/// [`train`] of the layers of `chain`, placed in a whole tree by `place` (`None`: `chain` is
/// the whole tree).
#[allow(clippy::too_many_arguments)]
fn train_layers(
    x: &CsrView<'_>,
    y: &CsrView<'_>,
    row_weights: Option<&[f32]>,
    chain: &ClusterChain,
    place: Option<&SubTreePlace>,
    params: &TrainParams,
    progress: &(dyn Fn(&LayerReport) + Sync),
    stop: &StopFlag,
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
    check_row_weights(row_weights, x.n_rows())?;
    if let Some(n) = params.coarse.n_features.filter(|&n| n > x.n_cols()) {
        return Err(PecosError::param(
            "coarse_n_features",
            format!(
                "must be at most the number of features ({}), got {n}",
                x.n_cols()
            ),
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

    // One layer's scorers, given the layers above it (read by matcher-aware negatives only).
    let train_layer = |t: usize, above: &[Layer]| -> Result<Layer> {
        let start = Instant::now();
        let layer_in_tree = place.map_or(t, |place| place.first_layer + t);
        let layer_params = params.for_layer(layer_in_tree);
        let n_columns = params.columns_for_layer(layer_in_tree, x.n_cols());
        let chain_layer = &chain.layers()[t];
        let n_parents = chain_layer.n_parents();
        let rows_per_parent: Vec<Vec<u32>> = if t == 0 {
            vec![(0..x.n_rows() as u32).collect()]
        } else {
            let mut rows = node_sets[t].rows_per_node(n_parents);
            if params.negative_sampling == NegativeSampling::TfnMan {
                add_matcher_negatives(&mut rows, above, x, params)?;
            }
            rows
        };
        let per_parent: Vec<Vec<(ChildWeights, usize)>> = (0..n_parents)
            .into_par_iter()
            .map(|p| {
                train_parent(
                    x,
                    n_columns,
                    row_weights,
                    &rows_per_parent[p],
                    chain_layer.children(p),
                    &node_sets[t + 1],
                    layer_in_tree,
                    place.map(|place| place.node_ids[t].as_slice()),
                    &layer_params,
                    stop,
                )
            })
            .collect();
        stop.check()?;
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
        Ok(layer)
    };
    let layers: Vec<Layer> = if params.negative_sampling == NegativeSampling::TfnMan {
        let mut layers = Vec::with_capacity(depth);
        for t in 0..depth {
            let layer = train_layer(t, &layers)?;
            layers.push(layer);
        }
        layers
    } else {
        // Teacher-forced rows depend on the labels only, so the layers are independent problems:
        // training them all at once keeps every thread busy where a layer has fewer sibling
        // groups than threads (the root's two scorers are one group).
        (0..depth)
            .into_par_iter()
            .map(|t| train_layer(t, &[]))
            .collect::<Result<_>>()?
    };
    XLinearModel::new(x.n_cols(), params.solver.bias, layers)
}

fn check_row_weights(row_weights: Option<&[f32]>, n_rows: usize) -> Result<()> {
    let Some(w) = row_weights else {
        return Ok(());
    };
    if w.len() != n_rows {
        return Err(PecosError::shape("row weights", n_rows, w.len()));
    }
    match w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        Some(i) => Err(PecosError::InvalidInput(format!(
            "row weights must be finite and >= 0; row {i} has {}",
            w[i]
        ))),
        None => Ok(()),
    }
}

/// Trains one model per chain of `chains` (an ensemble), all at once in the current rayon pool:
/// tree `i` is [`train`]ed over `chains[i]` with the solver seed `params.seed + i` (wrapping), so
/// tree `i` equals a single model trained with that seed, for every thread count. `progress` is
/// called with the tree's index after each of its layers; `stop` ends every tree's training.
///
/// Training the trees concurrently keeps every thread busy where one tree's layers have few
/// parents (the top ones), at the cost of holding every tree's training state at once.
///
/// # Errors
/// As [`train`], for the first tree that fails; [`PecosError::InvalidInput`] without chains.
pub fn train_ensemble(
    x: &CsrView<'_>,
    y: &CsrView<'_>,
    row_weights: Option<&[f32]>,
    chains: &[ClusterChain],
    params: &TrainParams,
    progress: &(dyn Fn(usize, &LayerReport) + Sync),
    stop: &StopFlag,
) -> Result<Vec<XLinearModel>> {
    if chains.is_empty() {
        return Err(PecosError::InvalidInput(
            "an ensemble needs at least one cluster chain".into(),
        ));
    }
    chains
        .par_iter()
        .enumerate()
        .map(|(tree, chain)| {
            let tree_params = TrainParams {
                seed: params.seed.wrapping_add(tree as u64),
                ..params.clone()
            };
            train(
                x,
                y,
                row_weights,
                chain,
                &tree_params,
                &|r| progress(tree, r),
                stop,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::{predict_batch, PostProcessor, PredictParams};

    /// Trains without progress reports or interruption.
    fn fit(
        x: &CsrMatrix,
        y: &CsrMatrix,
        chain: &ClusterChain,
        params: &TrainParams,
    ) -> Result<XLinearModel> {
        train(
            &x.view(),
            &y.view(),
            None,
            chain,
            params,
            &|_| {},
            &StopFlag::default(),
        )
    }
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
            let model = fit(&x, &y, &chain, &params).unwrap();
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
            pruning: Pruning {
                threshold: 0.0,
                ..Pruning::default()
            },
            ..TrainParams::default()
        };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| fit(&x, &y, &chain, &params).unwrap())
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn pruning_a_trained_model_equals_training_with_the_stricter_setting() {
        let (x, y, chain) = toy();
        let with = |threshold, max_nonzeros_per_label| TrainParams {
            pruning: Pruning {
                threshold,
                max_nonzeros_per_label,
            },
            ..TrainParams::default()
        };
        let loose = fit(&x, &y, &chain, &with(0.0, 0)).unwrap();
        let mut previous_nnz = loose.nnz();
        for (threshold, cap) in [(0.05, 0), (0.2, 0), (0.2, 3), (0.4, 2), (0.4, 1)] {
            let direct = fit(&x, &y, &chain, &with(threshold, cap)).unwrap();
            let pruned = loose.pruned(&with(threshold, cap).pruning).unwrap();
            assert_eq!(pruned, direct, "threshold {threshold}, cap {cap}");
            assert!(pruned.nnz() <= previous_nnz);
            previous_nnz = pruned.nnz();
        }
        assert!(previous_nnz < loose.nnz());
    }

    #[test]
    fn an_ensemble_tree_equals_the_single_model_of_its_seed() {
        let (x, y, chain) = toy();
        let other = ClusterChain::try_new(vec![vec![0, 0], vec![0, 1, 0, 1, 0, 1, 0, 1]]).unwrap();
        let params = TrainParams {
            seed: 5,
            ..TrainParams::default()
        };
        let chains = [chain, other];
        let trees = train_ensemble(
            &x.view(),
            &y.view(),
            None,
            &chains,
            &params,
            &|_, _| {},
            &StopFlag::default(),
        )
        .unwrap();
        for (i, tree) in trees.iter().enumerate() {
            let single = TrainParams {
                seed: 5 + i as u64,
                ..params.clone()
            };
            assert_eq!(*tree, fit(&x, &y, &chains[i], &single).unwrap());
        }
    }

    /// Dense `W` of every layer (features + bias row, by child).
    fn dense_weights(model: &XLinearModel) -> Vec<Vec<f32>> {
        let n_rows = model.n_features() + 1;
        model
            .layers()
            .iter()
            .map(|layer| {
                let (indptr, indices, data) = layer.to_csc(model.n_features()).unwrap();
                let mut dense = vec![0f32; n_rows * (indptr.len() - 1)];
                for c in 0..indptr.len() - 1 {
                    for e in indptr[c] as usize..indptr[c + 1] as usize {
                        dense[c * n_rows + indices[e] as usize] = data[e];
                    }
                }
                dense
            })
            .collect()
    }

    #[test]
    fn a_row_weight_counts_as_copies_of_the_row() {
        let mut rng = SplitMix64::new(3);
        let (n_rows, n_features, n_labels) = (60, 12, 8);
        let mut x_rows = Vec::new();
        let mut y_rows = Vec::new();
        for _ in 0..n_rows {
            let label = rng.below(n_labels);
            let mut row = vec![(label, 1.0)];
            row.extend(
                (n_labels..n_features)
                    .filter(|_| rng.below(3) == 0)
                    .map(|j| (j, 0.5)),
            );
            x_rows.push(row);
            y_rows.push(vec![(label, 1.0)]);
        }
        let weights: Vec<f32> = (0..n_rows).map(|_| rng.below(4) as f32).collect();
        let copies = |rows: &[Vec<(usize, f32)>], n_cols| {
            let repeated: Vec<Vec<(usize, f32)>> = rows
                .iter()
                .zip(&weights)
                .flat_map(|(r, &w)| std::iter::repeat_n(r.clone(), w as usize))
                .collect();
            CsrMatrix::from_rows(n_cols, &repeated).unwrap()
        };
        let x = CsrMatrix::from_rows(n_features, &x_rows).unwrap();
        let y = CsrMatrix::from_rows(n_labels, &y_rows).unwrap();
        let (x_copies, y_copies) = (copies(&x_rows, n_features), copies(&y_rows, n_labels));
        let chain = ClusterChain::try_new(vec![vec![0, 0], vec![0, 0, 0, 0, 1, 1, 1, 1]]).unwrap();
        let run = |x: &CsrMatrix, y: &CsrMatrix, w: Option<&[f32]>, params: &TrainParams| {
            let stop = StopFlag::default();
            train(&x.view(), &y.view(), w, &chain, params, &|_| {}, &stop).unwrap()
        };
        for loss in [Loss::SquaredHinge, Loss::Hinge, Loss::Logistic] {
            let params = TrainParams {
                solver: SolverParams {
                    loss,
                    tol: 1e-6,
                    max_iter: 100_000,
                    ..SolverParams::default()
                },
                pruning: Pruning {
                    threshold: 0.0,
                    max_nonzeros_per_label: 0,
                },
                ..TrainParams::default()
            };
            // Weights of 1 are no weights, bit for bit.
            let plain = run(&x, &y, None, &params);
            assert_eq!(
                run(&x, &y, Some(&vec![1.0; n_rows]), &params),
                plain,
                "{loss:?}"
            );
            // Weight k equals k copies of the row (0: no row), to the solver's tolerance.
            let weighted = dense_weights(&run(&x, &y, Some(&weights), &params));
            let copied = dense_weights(&run(&x_copies, &y_copies, None, &params));
            for (a, b) in weighted.iter().flatten().zip(copied.iter().flatten()) {
                assert!((a - b).abs() < 2e-3, "{loss:?}: {a} vs {b}");
            }
            assert!(weighted.iter().flatten().any(|&v| v.abs() > 0.1));
        }
        for bad in [
            vec![1.0; n_rows - 1],
            {
                let mut w = vec![1.0; n_rows];
                w[7] = -1.0;
                w
            },
            {
                let mut w = vec![1.0; n_rows];
                w[3] = f32::NAN;
                w
            },
        ] {
            let stop = StopFlag::default();
            let params = TrainParams::default();
            let result = train(
                &x.view(),
                &y.view(),
                Some(&bad),
                &chain,
                &params,
                &|_| {},
                &stop,
            );
            assert!(result.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_mismatched_shapes() {
        let (x, _, chain) = toy();
        let y = CsrMatrix::from_rows(5, &vec![vec![]; 64]).unwrap();
        assert!(fit(&x, &y, &chain, &TrainParams::default()).is_err());
    }

    #[test]
    fn a_raised_stop_flag_interrupts_training() {
        let (x, y, chain) = toy();
        let stop = StopFlag::default();
        stop.raise();
        let result = train(
            &x.view(),
            &y.view(),
            None,
            &chain,
            &TrainParams::default(),
            &|_| {},
            &stop,
        );
        assert!(matches!(result, Err(PecosError::Interrupted)));
    }
}

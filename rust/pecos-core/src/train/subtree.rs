//! Training a model a sub-tree at a time: the layers below a node of the tree depend only on the
//! rows that reach it, so they can be trained apart (on another machine, from those rows alone)
//! and joined to the layers above into the model [`super::train`] makes of the whole tree.

use super::{train_layers, LayerReport, NegativeSampling, TrainParams};
use crate::error::{PecosError, Result, StopFlag};
use crate::index::{ChainLayer, ClusterChain};
use crate::model::{Layer, LayerBuilder, XLinearModel};
use crate::sparse::CsrView;

/// Where the layers of a sub-tree sit in the whole tree they belong to (see [`train_subtree`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SubTreePlace {
    /// The whole tree's layer that the sub-tree's first layer (below its root) is part of.
    pub first_layer: usize,
    /// The whole tree's id of the sub-tree's root (a node at depth `first_layer`).
    pub root: u32,
    /// Per layer of the sub-tree, the whole tree's id of each of the layer's children (nodes,
    /// and labels in the last layer), strictly increasing.
    pub node_ids: Vec<Vec<u32>>,
}

/// The layers of a sub-tree of a larger model, trained exactly as [`super::train`] trains them in the
/// whole tree with teacher-forced negatives: a parent's problems depend only on its rows, its
/// children's ids in the whole tree (which seed them) and the parameters. `chain` is the
/// sub-tree (its root the single parent of its first layer) and `place` puts it in the whole
/// tree; the rows of `x` and `y` must be those of the whole training set that have a label in
/// the sub-tree, in their order, and `y`'s columns the sub-tree's labels (in `place`'s order).
/// The result is a model whose layers are the whole model's layers restricted to the sub-tree
/// (see [`join_subtrees`]).
///
/// # Errors
/// As [`super::train`]; [`PecosError::InvalidParam`] for matcher-aware negatives (they need the beam
/// of the whole upper model); [`PecosError::ShapeMismatch`] or [`PecosError::InvalidInput`] if
/// `place` does not fit `chain`.
pub fn train_subtree(
    x: &CsrView<'_>,
    y: &CsrView<'_>,
    chain: &ClusterChain,
    place: &SubTreePlace,
    params: &TrainParams,
    progress: &(dyn Fn(&LayerReport) + Sync),
    stop: &StopFlag,
) -> Result<XLinearModel> {
    if params.negative_sampling == NegativeSampling::TfnMan {
        return Err(PecosError::param(
            "negative_sampling",
            "a sub-tree is trained with teacher-forced negatives only (\"tfn\"): matcher-aware \
             negatives come from the beam of the whole model above it",
        ));
    }
    place.check(chain)?;
    train_layers(x, y, None, chain, Some(place), params, progress, stop)
}

impl SubTreePlace {
    /// Checks that the place has one strictly increasing id per node of every layer of `chain`.
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] or [`PecosError::InvalidInput`] if not.
    fn check(&self, chain: &ClusterChain) -> Result<()> {
        if self.node_ids.len() != chain.depth() {
            return Err(PecosError::shape(
                "node id lists (layers of the sub-tree)",
                chain.depth(),
                self.node_ids.len(),
            ));
        }
        for (t, (ids, layer)) in self.node_ids.iter().zip(chain.layers()).enumerate() {
            if ids.len() != layer.n_children() {
                return Err(PecosError::shape(
                    "node ids of a sub-tree layer",
                    layer.n_children(),
                    ids.len(),
                ));
            }
            if ids.windows(2).any(|w| w[1] <= w[0]) {
                return Err(PecosError::InvalidInput(format!(
                    "the node ids of sub-tree layer {t} must be strictly increasing (the order of \
                     siblings is that of their ids)"
                )));
            }
        }
        Ok(())
    }
}

/// The whole model from its top layers and its sub-trees (from [`train_subtree`], in any order):
/// `top`'s labels are the roots of the sub-trees, and a sub-tree's place gives the whole tree's
/// id of its root and of each of its nodes, below `top` (`first_layer == top.depth()`). Every
/// label of `top` and every node below it must belong to exactly one sub-tree. Equal, layer for
/// layer, to the model [`super::train`] makes of the whole tree when `top` was trained over
/// the top layers with the sub-tree roots as labels.
///
/// The sub-trees are taken by value: each layer of one is dropped as soon as its chunks are
/// copied, so that joining a model needs little more memory than its parts (at a million labels
/// the parts are most of the model).
///
/// # Errors
/// [`PecosError::InvalidInput`] if the sub-trees do not fit `top` or each other (numbers of
/// features, bias, depths, places, compacted weights) or do not cover every node of a layer
/// exactly once.
pub fn join_subtrees(
    top: &XLinearModel,
    subtrees: Vec<(XLinearModel, SubTreePlace)>,
) -> Result<XLinearModel> {
    let mismatch = |what: String| {
        Err(PecosError::InvalidInput(format!(
            "joining sub-trees: {what}"
        )))
    };
    if subtrees.len() != top.n_labels() {
        return mismatch(format!(
            "{} sub-trees for the {} labels of the top layers",
            subtrees.len(),
            top.n_labels()
        ));
    }
    let Some((first, _)) = subtrees.first() else {
        return mismatch("no sub-trees".into());
    };
    let depth = first.layers().len();
    for (s, (model, place)) in subtrees.iter().enumerate() {
        if model.n_features() != top.n_features()
            || model.bias().to_bits() != top.bias().to_bits()
            || model.layers().len() != depth
            || place.first_layer != top.layers().len()
        {
            return mismatch(format!(
                "sub-tree {s} differs from the top in features, bias, depth or first layer"
            ));
        }
        let chain = ClusterChain::try_new(
            model
                .layers()
                .iter()
                .map(|l| l.chain().parent_of().to_vec())
                .collect(),
        )?;
        place.check(&chain)?;
    }
    let (mut below_top, places): (Vec<_>, Vec<_>) = subtrees
        .into_iter()
        .map(|(model, place)| (model.layers.into_iter(), place))
        .unzip();
    let mut layers = top.layers().to_vec();
    let mut n_parents = top.n_labels();
    for j in 0..depth {
        // Layer j of every sub-tree (all have `depth` layers), each dropped once copied.
        let mut parts: Vec<Option<Layer>> = below_top.iter_mut().map(Iterator::next).collect();
        let n_children: usize = places.iter().map(|p| p.node_ids[j].len()).sum();
        // The whole tree's parent of each node, and the (sub-tree, local parent) of each parent.
        let mut parent_of = vec![u32::MAX; n_children];
        let mut owner = vec![None; n_parents];
        let (mut n_rows, mut n_entries) = (0, 0);
        let mut chunks_left = vec![0usize; parts.len()];
        for (s, (part, place)) in parts.iter().zip(&places).enumerate() {
            let Some(local) = part else {
                return mismatch(format!("sub-tree {s} has no layer {j}"));
            };
            n_rows += local.arrays().n_rows();
            n_entries += local.arrays().n_entries();
            let global_parent = |q: usize| {
                if j == 0 {
                    place.root
                } else {
                    place.node_ids[j - 1][q]
                }
            };
            let local = local.chain();
            chunks_left[s] = local.n_parents();
            for q in 0..local.n_parents() {
                let slot = owner.get_mut(global_parent(q) as usize);
                match slot {
                    Some(slot @ None) => *slot = Some((s, q)),
                    _ => {
                        return mismatch(format!(
                            "a parent of layer {j} of sub-tree {s} is out of range or taken"
                        ))
                    }
                }
            }
            for (c, &q) in local.parent_of().iter().enumerate() {
                match parent_of.get_mut(place.node_ids[j][c] as usize) {
                    Some(p) if *p == u32::MAX => *p = global_parent(q as usize),
                    _ => {
                        return mismatch(format!(
                            "a node of layer {j} of sub-tree {s} is out of range or taken"
                        ))
                    }
                }
            }
        }
        if owner.iter().any(Option::is_none) {
            return mismatch(format!(
                "a parent of layer {j} below the top is in no sub-tree"
            ));
        }
        // One parent's chunk at a time, copied as it is: siblings keep their order (and so their
        // slots), as node ids increase within every sub-tree layer.
        let chain = ChainLayer::try_new(parent_of, n_parents)?;
        let mut builder = LayerBuilder::with_capacity(chain, n_rows, n_entries);
        for &(s, q) in owner.iter().flatten() {
            // Each (s, q) comes once, so a part is dropped after its last chunk only.
            let Some(local) = &parts[s] else {
                return mismatch(format!("layer {j} of sub-tree {s} was copied already"));
            };
            builder.push_chunk_of(local, q)?;
            chunks_left[s] -= 1;
            if chunks_left[s] == 0 {
                parts[s] = None;
                release_freed_memory();
            }
        }
        layers.push(builder.finish()?);
        n_parents = n_children;
    }
    XLinearModel::new(top.n_features(), top.bias(), layers)
}

/// Hands the memory freed so far back to the system. glibc's `malloc` keeps freed blocks
/// smaller than its mapping threshold (at most 32 MB) for reuse, so the sub-tree layers a join
/// drops (most of their arrays are smaller) would otherwise stay in the process beside the joined
/// layer they were copied into: at 100k labels 0.46 GB more at the end of a distributed fit.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and only returns free pages of the allocator's
    // heaps to the kernel; glibc makes it safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::sparse::CsrMatrix;
    use crate::train::{train, Loss, SolverParams};

    /// 16 labels scattered over 4 leaves (by a seeded shuffle) under 2 nodes under the root, and
    /// 120 rows of 1-3 labels whose features follow their labels.
    fn problem() -> (CsrMatrix, Vec<Vec<(usize, f32)>>, ClusterChain) {
        let mut rng = SplitMix64::new(21);
        let mut labels: Vec<u32> = (0..16).collect();
        rng.shuffle(&mut labels);
        let mut leaf_of = vec![0u32; 16];
        for (pos, &l) in labels.iter().enumerate() {
            leaf_of[l as usize] = pos as u32 / 4;
        }
        let chain =
            ClusterChain::try_new(vec![vec![0, 0], vec![0, 0, 1, 1], leaf_of.clone()]).unwrap();
        let (mut xr, mut yr) = (Vec::new(), Vec::new());
        for _ in 0..120 {
            let mut ys: Vec<usize> = (0..1 + rng.below(3)).map(|_| rng.below(16)).collect();
            ys.sort_unstable();
            ys.dedup();
            let mut row: Vec<(usize, f32)> = ys
                .iter()
                .flat_map(|&l| [(l, 1.0), (16 + leaf_of[l] as usize, 0.5)])
                .collect();
            row.push((20 + rng.below(6), 0.3));
            row.sort_unstable_by_key(|e| e.0);
            row.dedup_by_key(|e| e.0);
            xr.push(row);
            yr.push(ys.into_iter().map(|l| (l, 1.0)).collect());
        }
        (CsrMatrix::from_rows(26, &xr).unwrap(), yr, chain)
    }

    #[test]
    fn sub_trees_trained_apart_and_joined_equal_the_whole_model() {
        let (x, yr, chain) = problem();
        let y = CsrMatrix::from_rows(16, &yr).unwrap();
        let leaf_of = chain.layers()[2].parent_of().to_vec();
        let stop = StopFlag::default();
        for loss in [Loss::SquaredHinge, Loss::Logistic] {
            let params = TrainParams {
                solver: SolverParams {
                    loss,
                    ..SolverParams::default()
                },
                seed: 3,
                ..TrainParams::default()
            };
            let whole = train(&x.view(), &y.view(), None, &chain, &params, &|_| {}, &stop).unwrap();
            // The top layer over the two sub-tree roots (node s holds leaves 2s and 2s+1).
            let subtree_of = |l: usize| leaf_of[l] / 2;
            let y_top: Vec<Vec<(usize, f32)>> = yr
                .iter()
                .map(|ys| {
                    let mut s: Vec<usize> =
                        ys.iter().map(|&(l, _)| subtree_of(l) as usize).collect();
                    s.dedup();
                    s.into_iter().map(|s| (s, 1.0)).collect()
                })
                .collect();
            let y_top = CsrMatrix::from_rows(2, &y_top).unwrap();
            let top_chain = ClusterChain::try_new(vec![vec![0, 0]]).unwrap();
            let top = train(
                &x.view(),
                &y_top.view(),
                None,
                &top_chain,
                &params,
                &|_| {},
                &stop,
            )
            .unwrap();
            let mut models = Vec::new();
            for s in 0..2u32 {
                let labels: Vec<u32> = (0..16).filter(|&l| subtree_of(l as usize) == s).collect();
                let rows: Vec<usize> = (0..yr.len())
                    .filter(|&i| yr[i].iter().any(|&(l, _)| subtree_of(l) == s))
                    .collect();
                let xs: Vec<Vec<(usize, f32)>> = rows
                    .iter()
                    .map(|&i| x.view().row(i).iter().collect())
                    .collect();
                let ys: Vec<Vec<(usize, f32)>> = rows
                    .iter()
                    .map(|&i| {
                        yr[i]
                            .iter()
                            .filter_map(|&(l, v)| {
                                labels.iter().position(|&k| k as usize == l).map(|k| (k, v))
                            })
                            .collect()
                    })
                    .collect();
                let local_leaf: Vec<u32> = labels
                    .iter()
                    .map(|&l| leaf_of[l as usize] - 2 * s)
                    .collect();
                let sub_chain = ClusterChain::try_new(vec![vec![0, 0], local_leaf]).unwrap();
                let place = SubTreePlace {
                    first_layer: 1,
                    root: s,
                    node_ids: vec![vec![2 * s, 2 * s + 1], labels],
                };
                let xs = CsrMatrix::from_rows(26, &xs).unwrap();
                let ys = CsrMatrix::from_rows(place.node_ids[1].len(), &ys).unwrap();
                let model = train_subtree(
                    &xs.view(),
                    &ys.view(),
                    &sub_chain,
                    &place,
                    &params,
                    &|_| {},
                    &stop,
                )
                .unwrap();
                models.push((model, place));
            }
            let mut subtrees = models;
            assert_eq!(
                join_subtrees(&top, subtrees.clone()).unwrap(),
                whole,
                "{loss:?}"
            );
            assert!(whole.nnz() > 0);
            // The order of the sub-trees does not matter; two with the same root do not fit.
            subtrees.swap(0, 1);
            assert_eq!(join_subtrees(&top, subtrees.clone()).unwrap(), whole);
            subtrees.swap(0, 1);
            let mut twice = subtrees.clone();
            twice[1].1.root = 0;
            assert!(join_subtrees(&top, twice).is_err());
            let man = TrainParams {
                negative_sampling: NegativeSampling::TfnMan,
                ..params.clone()
            };
            let (model, place) = &subtrees[0];
            let chain = ClusterChain::try_new(
                model
                    .layers()
                    .iter()
                    .map(|l| l.chain().parent_of().to_vec())
                    .collect(),
            )
            .unwrap();
            assert!(
                train_subtree(&x.view(), &y.view(), &chain, place, &man, &|_| {}, &stop).is_err()
            );
            let unsorted = SubTreePlace {
                first_layer: 1,
                root: 1,
                node_ids: vec![vec![1, 0], place.node_ids[1].clone()],
            };
            assert!(join_subtrees(
                &top,
                vec![subtrees[0].clone(), (subtrees[1].0.clone(), unsorted)]
            )
            .is_err());
        }
    }
}

//! The balanced hierarchical spherical 2-means tree over label embeddings (PECOS spec 1.2), the
//! default indexer.
//!
//! The tree is complete and binary: every node's labels are sorted by their score against
//! `c = normalize(sum of right) - normalize(sum of left)` and cut exactly in half, repeated until
//! the left half stops changing. The B-ary cluster chain is then made by grouping leaf codes
//! ([`super::tree`]). Nodes of a level are split in parallel, and so are the scores inside a
//! large node; every node draws its random start from a seed derived from its position, so the
//! tree is the same for every thread count.

use super::chain::ClusterChain;
use super::tree::{binary_depth, chain_from_leaf_codes};
use super::Indexer;
use crate::error::{PecosError, Result, StopFlag};
use crate::params::{invalid, Params, Value};
use crate::rng::SplitMix64;
use crate::sparse::{CsrView, LocalRows};
use rayon::prelude::*;

/// The balanced hierarchical spherical 2-means indexer (PECOS's default): labels split
/// recursively into a complete binary tree whose leaves hold at most `max_leaf_size` labels, the
/// tree then collapsed into an `n_splits`-ary chain.
#[derive(Clone, Debug, PartialEq)]
pub struct HierarchicalKMeans {
    /// Branching factor of the chain: a power of 2, at least 2.
    pub n_splits: usize,
    pub max_leaf_size: usize,
    /// Assignment rounds per split, the random start included.
    pub max_iter: usize,
    pub spherical: bool,
    pub seed: u64,
    /// Grouping stops once the top layer has at most this many nodes.
    pub min_codes: usize,
}

impl Default for HierarchicalKMeans {
    fn default() -> Self {
        HierarchicalKMeans {
            n_splits: 16,
            max_leaf_size: 100,
            max_iter: 20,
            spherical: true,
            seed: 0,
            min_codes: 16,
        }
    }
}

impl HierarchicalKMeans {
    /// Reads `n_splits`, `max_leaf_size`, `kmeans_max_iter`, `spherical`, `random_state` and
    /// `min_codes` (None: `n_splits`).
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] naming the first invalid parameter.
    pub fn from_params(p: &mut Params) -> Result<Self> {
        let kmeans = Self::from_split_params(p)?;
        Ok(HierarchicalKMeans {
            min_codes: p.count_or("min_codes", 1, kmeans.n_splits)?,
            ..kmeans
        })
    }

    /// Reads the parameters of [`HierarchicalKMeans::from_params`] but `min_codes`, which is
    /// `n_splits`: the k-means sub-trees of another indexer branch like its own tree.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] naming the first invalid parameter.
    pub(super) fn from_split_params(p: &mut Params) -> Result<Self> {
        let n_splits = p.count("n_splits", 2)?;
        if !n_splits.is_power_of_two() {
            return Err(invalid(
                "n_splits",
                "a power of 2 (2, 4, 8, ...)",
                &Value::Int(n_splits as i128),
            ));
        }
        Ok(HierarchicalKMeans {
            n_splits,
            max_leaf_size: p.count("max_leaf_size", 1)?,
            max_iter: p.count("kmeans_max_iter", 1)?,
            spherical: p.flag("spherical")?,
            seed: p.seed("random_state")?,
            min_codes: n_splits,
        })
    }
}

impl Indexer for HierarchicalKMeans {
    type Labels<'a> = CsrView<'a>;

    /// The chain over the labels whose embeddings are the rows of `z`; a single one-versus-all
    /// layer if `max_leaf_size` covers every label.
    fn build(&self, z: &CsrView<'_>, stop: &StopFlag) -> Result<ClusterChain> {
        let n_labels = z.n_rows();
        if n_labels == 0 {
            return Err(PecosError::InvalidInput(
                "Z must have at least one row (label)".into(),
            ));
        }
        if self.max_leaf_size >= n_labels {
            return Ok(ClusterChain::one_layer(n_labels));
        }
        let depth = binary_depth(n_labels, self.max_leaf_size);
        let params = KMeansParams {
            depth,
            max_iter: self.max_iter,
            spherical: self.spherical,
            seed: self.seed,
        };
        let codes = balanced_kmeans_leaves(z, &params, Some(stop))?;
        chain_from_leaf_codes(codes, 1 << depth, self.n_splits, self.min_codes)
    }
}

/// Settings of the balanced 2-means tree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KMeansParams {
    /// Levels of binary splits: the tree has `2^depth` leaves.
    pub depth: usize,
    /// Assignment rounds per split, the random start included.
    pub max_iter: usize,
    /// Normalised centroids (spherical k-means) rather than means.
    pub spherical: bool,
    pub seed: u64,
}

/// Leaf code (`0..2^depth`, left to right) of each row of `z` in the balanced 2-means tree.
/// Within a node, rows are ordered by id, so the result depends only on `z` and `params`.
///
/// `stop` is checked between the assignment rounds of every split.
///
/// # Errors
/// [`PecosError::InvalidParam`] for a depth outside `1..=31` or `max_iter == 0`;
/// [`PecosError::Interrupted`] once `stop` is raised.
pub fn balanced_kmeans_leaves(
    z: &CsrView<'_>,
    params: &KMeansParams,
    stop: Option<&StopFlag>,
) -> Result<Vec<u32>> {
    let root = SubTreeRoot {
        level: 0,
        node: 0,
        tree_nnz: z.nnz(),
    };
    balanced_kmeans_subtree(z, params, &root, stop)
}

/// Where a sub-tree's root sits in a whole balanced 2-means tree, which is all that a node's
/// split depends on besides its rows (see [`balanced_kmeans_subtree`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubTreeRoot {
    /// Binary level of the root in the whole tree (0: the whole tree's root).
    pub level: usize,
    /// Position of the root among the `2^level` nodes of its level, left to right.
    pub node: usize,
    /// Nonzeros of the whole tree's embeddings (of all its labels): it decides which nodes are
    /// split over their rows in place and which over a compact copy, whose sums run over the
    /// columns in different orders and so may differ in the last bits.
    pub tree_nnz: usize,
}

/// [`balanced_kmeans_leaves`] of a sub-tree of a larger tree: the rows of `z` are the labels of
/// the node `root` of that tree (in increasing id order), split `params.depth` more levels.
/// The leaf codes (`0..2^depth`) are those of the whole tree's leaves under `root`, numbered from
/// the first: leaf `c` here is leaf `root.node * 2^depth + c` of the whole tree of depth
/// `root.level + params.depth`, bit for bit (every node draws its seed from its place in the
/// whole tree, and a node's rows are sorted by id at every level).
///
/// # Errors
/// As [`balanced_kmeans_leaves`]; [`PecosError::InvalidParam`] if the whole tree would be deeper
/// than 31 levels or `root.node` is not a node of its level.
pub fn balanced_kmeans_subtree(
    z: &CsrView<'_>,
    params: &KMeansParams,
    root: &SubTreeRoot,
    stop: Option<&StopFlag>,
) -> Result<Vec<u32>> {
    if !(1..=31).contains(&params.depth) {
        return Err(PecosError::param(
            "depth",
            format!("must be in 1..=31, got {}", params.depth),
        ));
    }
    if root.level > 31 - params.depth || root.node >> root.level != 0 {
        return Err(PecosError::param(
            "root",
            format!(
                "node {} of level {} is not in a tree of at most 31 levels holding {} more",
                root.node, root.level, params.depth
            ),
        ));
    }
    if params.max_iter == 0 {
        return Err(PecosError::param("kmeans_max_iter", "must be >= 1"));
    }
    let n = z.n_rows();
    let mut elements: Vec<u32> = (0..n as u32).collect();
    let mut bounds = vec![0usize, n];
    for depth in 0..params.depth {
        let level = root.level + depth;
        let first_node = root.node << depth;
        let nodes: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        let split: Vec<Vec<u32>> = nodes
            .par_iter()
            .enumerate()
            .map(|(k, &(lo, hi))| {
                let seed = node_seed(params.seed, level, first_node + k);
                split_node(z, &elements[lo..hi], root.tree_nnz, seed, params, stop)
            })
            .collect();
        if let Some(stop) = stop {
            stop.check()?;
        }
        let mut next = Vec::with_capacity(2 * bounds.len());
        next.push(0);
        for ((lo, hi), order) in nodes.into_iter().zip(split) {
            elements[lo..hi].copy_from_slice(&order);
            next.push(lo + (hi - lo) / 2);
            next.push(hi);
        }
        bounds = next;
    }
    let mut codes = vec![0u32; n];
    for (leaf, w) in bounds.windows(2).enumerate() {
        for &e in &elements[w[0]..w[1]] {
            codes[e as usize] = leaf as u32;
        }
    }
    Ok(codes)
}

/// The seed of node `node` (its position in its level) at depth `level` of a tree seeded with
/// `seed`.
pub(super) fn node_seed(seed: u64, level: usize, node: usize) -> u64 {
    SplitMix64::new(seed ^ ((level as u64) << 48) ^ node as u64).next_u64()
}

/// Node size from which scores are computed in parallel inside the node.
const PARALLEL_SCORES: usize = 4096;

/// A node whose rows hold more than `1 / IN_PLACE_SHARE` of the nonzeros of the whole tree's
/// embeddings reads them in place instead of gathering a compact copy: near the root, the copies
/// of the nodes being split would take as much memory as the embeddings themselves.
const IN_PLACE_SHARE: usize = 4;

/// Splits one node of a tree over embeddings of `tree_nnz` nonzeros: returns its elements with
/// the left half (the `n/2` lowest scores) first, each half sorted by id.
fn split_node(
    z: &CsrView<'_>,
    elements: &[u32],
    tree_nnz: usize,
    seed: u64,
    params: &KMeansParams,
    stop: Option<&StopFlag>,
) -> Vec<u32> {
    if elements.len() < 2 {
        return elements.to_vec();
    }
    let node_nnz: usize = elements.iter().map(|&e| z.row(e as usize).nnz()).sum();
    if node_nnz.saturating_mul(IN_PLACE_SHARE) > tree_nnz {
        split_rows(
            &InPlaceRows { z: *z, elements },
            elements,
            seed,
            params,
            stop,
        )
    } else {
        split_rows(
            &LocalRows::gather(z, elements),
            elements,
            seed,
            params,
            stop,
        )
    }
}

/// The rows of a node, row `i` being the node's `i`-th element, over some column space.
trait NodeRows: Sync {
    fn n_cols(&self) -> usize;
    /// (column, value) pairs of row `i`, in the source row's order.
    fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_;
}

impl NodeRows for LocalRows {
    fn n_cols(&self) -> usize {
        self.columns.len()
    }

    fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let (idx, val) = LocalRows::row(self, i);
        idx.iter().zip(val).map(|(&j, &v)| (j as usize, v))
    }
}

/// A node's rows read from `z` itself, over all of its columns.
struct InPlaceRows<'a> {
    z: CsrView<'a>,
    elements: &'a [u32],
}

impl NodeRows for InPlaceRows<'_> {
    fn n_cols(&self) -> usize {
        self.z.n_cols()
    }

    fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        self.z.row(self.elements[i] as usize).iter()
    }
}

/// [`split_node`] over the node's rows in either layout.
fn split_rows(
    rows: &impl NodeRows,
    elements: &[u32],
    seed: u64,
    params: &KMeansParams,
    stop: Option<&StopFlag>,
) -> Vec<u32> {
    let n = elements.len();
    let d = rows.n_cols();
    let mut rng = SplitMix64::new(seed);
    let r = rng.below(n);
    let l = (r + 1 + rng.below(n - 1)) % n;
    let mut c = vec![0f64; d];
    add_row(&mut c, rows, r, 1.0);
    add_row(&mut c, rows, l, -1.0);

    let mut total = vec![0f64; d];
    (0..n).for_each(|i| add_row(&mut total, rows, i, 1.0));
    let mut right_sum = vec![0f64; d];
    let mut is_left = vec![false; n];
    let mut scores = vec![0f64; n];
    let mut order: Vec<usize> = (0..n).collect();
    let half = n / 2;
    for iter in 0..params.max_iter {
        // An interrupted split stops early; its caller then discards the whole tree.
        if stop.is_some_and(StopFlag::is_raised) {
            break;
        }
        let score = |i: usize| rows.row(i).map(|(f, v)| c[f] * f64::from(v)).sum::<f64>();
        if n >= PARALLEL_SCORES {
            scores
                .par_iter_mut()
                .enumerate()
                .for_each(|(i, s)| *s = score(i));
        } else {
            scores
                .iter_mut()
                .enumerate()
                .for_each(|(i, s)| *s = score(i));
        }
        order.sort_unstable_by(|&a, &b| {
            scores[a]
                .total_cmp(&scores[b])
                .then(elements[a].cmp(&elements[b]))
        });
        let mut now_left = vec![false; n];
        order[..half].iter().for_each(|&i| now_left[i] = true);
        if iter > 0 && now_left == is_left {
            break;
        }
        // Keep the right-half sum up to date by moving only the rows that changed side.
        for i in 0..n {
            if iter == 0 {
                if !now_left[i] {
                    add_row(&mut right_sum, rows, i, 1.0);
                }
            } else if now_left[i] != is_left[i] {
                add_row(
                    &mut right_sum,
                    rows,
                    i,
                    if now_left[i] { -1.0 } else { 1.0 },
                );
            }
        }
        is_left = now_left;
        if iter + 1 == params.max_iter {
            break;
        }
        let (n_right, n_left) = ((n - half) as f64, half as f64);
        let (scale_right, scale_left) = if params.spherical {
            let left = total
                .iter()
                .zip(&right_sum)
                .map(|(t, r)| (t - r).powi(2))
                .sum::<f64>();
            let right = right_sum.iter().map(|r| r * r).sum::<f64>();
            (inverse_or_zero(right.sqrt()), inverse_or_zero(left.sqrt()))
        } else {
            (1.0 / n_right, 1.0 / n_left)
        };
        for ((ci, &t), &r) in c.iter_mut().zip(&total).zip(&right_sum) {
            *ci = r * scale_right - (t - r) * scale_left;
        }
    }
    let mut left: Vec<u32> = (0..n)
        .filter(|&i| is_left[i])
        .map(|i| elements[i])
        .collect();
    let mut right: Vec<u32> = (0..n)
        .filter(|&i| !is_left[i])
        .map(|i| elements[i])
        .collect();
    left.sort_unstable();
    right.sort_unstable();
    left.extend(right);
    left
}

fn inverse_or_zero(v: f64) -> f64 {
    if v > 0.0 {
        1.0 / v
    } else {
        0.0
    }
}

/// `acc += sign * row i`.
fn add_row(acc: &mut [f64], rows: &impl NodeRows, i: usize, sign: f64) {
    for (f, v) in rows.row(i) {
        acc[f] += sign * f64::from(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::CsrMatrix;

    /// Four groups of 8 labels in two super-groups ({0, 1} and {2, 3}), the hierarchy a 2-means
    /// tree can recover. Membership is a seeded shuffle of the ids, so neither id order nor a
    /// regular interleaving can produce the groups by accident, and weights vary per label (exactly
    /// equal weights create symmetric fixed points that no real data has).
    fn groups() -> (CsrMatrix, Vec<usize>) {
        let mut rng = SplitMix64::new(7);
        let mut ids: Vec<usize> = (0..32).collect();
        rng.shuffle(&mut ids);
        let mut group = vec![0; 32];
        for (pos, &id) in ids.iter().enumerate() {
            group[id] = pos / 8;
        }
        let mut weight = || 0.5 + (rng.below(1000) as f32) / 1000.0;
        let rows: Vec<Vec<(usize, f32)>> = (0..32)
            .map(|i| {
                vec![
                    (group[i] / 2, weight()),
                    (2 + group[i], weight()),
                    (6 + i, 0.05),
                ]
            })
            .collect();
        (CsrMatrix::from_rows(38, &rows).unwrap(), group)
    }

    #[test]
    fn splits_separated_groups_exactly_and_balanced() {
        let (z, group) = groups();
        for seed in 0..10 {
            let params = KMeansParams {
                depth: 2,
                max_iter: 20,
                spherical: true,
                seed,
            };
            let codes = balanced_kmeans_leaves(&z.view(), &params, None).unwrap();
            for leaf in 0..4 {
                let g: Vec<usize> = (0..32)
                    .filter(|&i| codes[i] == leaf)
                    .map(|i| group[i])
                    .collect();
                assert_eq!(g.len(), 8);
                assert!(
                    g.iter().all(|&x| x == g[0]),
                    "seed {seed}, leaf {leaf}: groups {g:?}"
                );
            }
        }
    }

    #[test]
    fn same_tree_for_any_thread_count_and_degenerate_sizes_work() {
        let (z, _) = groups();
        let params = KMeansParams {
            depth: 3,
            max_iter: 5,
            spherical: false,
            seed: 1,
        };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| balanced_kmeans_leaves(&z.view(), &params, None).unwrap())
        };
        assert_eq!(run(1), run(4));
        let one = CsrMatrix::from_rows(2, &[vec![(0, 1.0)]]).unwrap();
        let deep = KMeansParams { depth: 2, ..params };
        assert_eq!(
            balanced_kmeans_leaves(&one.view(), &deep, None).unwrap(),
            vec![3]
        );
        assert!(
            balanced_kmeans_leaves(&one.view(), &KMeansParams { depth: 0, ..params }, None)
                .is_err()
        );
    }

    /// Random embeddings of `n` labels over `d` features.
    fn random_embeddings(n: usize, d: usize, seed: u64) -> CsrMatrix {
        let mut rng = SplitMix64::new(seed);
        let mut rows: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
        for row in &mut rows {
            for f in 0..d {
                if rng.below(4) == 0 {
                    row.push((f, 0.05 + rng.below(1000) as f32 / 1000.0));
                }
            }
        }
        CsrMatrix::from_rows(d, &rows).unwrap()
    }

    #[test]
    fn a_subtree_splits_its_labels_as_the_whole_tree_does() {
        let z = random_embeddings(203, 40, 5);
        for spherical in [true, false] {
            let params = |depth| KMeansParams {
                depth,
                max_iter: 20,
                spherical,
                seed: 9,
            };
            let full = balanced_kmeans_leaves(&z.view(), &params(5), None).unwrap();
            for top in 1..5 {
                let below = 5 - top;
                let meta = balanced_kmeans_leaves(&z.view(), &params(top), None).unwrap();
                for node in 0..1usize << top {
                    let labels: Vec<usize> =
                        (0..203).filter(|&l| meta[l] as usize == node).collect();
                    let rows: Vec<Vec<(usize, f32)>> = labels
                        .iter()
                        .map(|&l| z.view().row(l).iter().collect())
                        .collect();
                    let sub = CsrMatrix::from_rows(40, &rows).unwrap();
                    let root = SubTreeRoot {
                        level: top,
                        node,
                        tree_nnz: z.view().nnz(),
                    };
                    let codes =
                        balanced_kmeans_subtree(&sub.view(), &params(below), &root, None).unwrap();
                    for (&label, &code) in labels.iter().zip(&codes) {
                        assert_eq!(
                            full[label],
                            ((node as u32) << below) + code,
                            "top {top}, node {node}, label {label}"
                        );
                    }
                }
            }
        }
        let root = SubTreeRoot {
            level: 2,
            node: 4,
            tree_nnz: z.view().nnz(),
        };
        let params = KMeansParams {
            depth: 1,
            max_iter: 5,
            spherical: true,
            seed: 0,
        };
        assert!(balanced_kmeans_subtree(&z.view(), &params, &root, None).is_err());
        let deep = SubTreeRoot {
            level: 31,
            node: 0,
            ..root
        };
        assert!(balanced_kmeans_subtree(&z.view(), &params, &deep, None).is_err());
    }
}

//! Indexing: PIFA label embeddings and the balanced hierarchical spherical 2-means tree (PECOS
//! spec 1.1, 1.2).
//!
//! The tree is complete and binary: every node's labels are sorted by their score against
//! `c = normalize(sum of right) - normalize(sum of left)` and cut exactly in half, repeated until
//! the left half stops changing. The B-ary cluster chain is then made by grouping leaf codes
//! (done by the caller). Nodes of a level are split in parallel, and so are the scores inside a
//! large node; every node draws its random start from a seed derived from its position, so the
//! tree is the same for every thread count.

use crate::error::{PecosError, Result};
use crate::rng::SplitMix64;
use crate::sparse::{CsrMatrix, CsrView, LocalRows};
use rayon::prelude::*;

/// PIFA embeddings `Z = normalize_rows(normalize_rows(Y)^T X)`: each label is the normalised sum of
/// its instances' feature vectors, each instance weighted by `1 / ||y_i||`. Labels without instances
/// get empty rows. Parallel over labels.
///
/// # Errors
/// [`PecosError::ShapeMismatch`] if `x` and `y` have different numbers of rows.
pub fn pifa(x: &CsrView<'_>, y: &CsrView<'_>) -> Result<CsrMatrix> {
    if x.n_rows() != y.n_rows() {
        return Err(PecosError::shape(
            "rows of Y (instances)",
            x.n_rows(),
            y.n_rows(),
        ));
    }
    let row_scale: Vec<f32> = (0..y.n_rows())
        .map(|i| {
            let norm = y.row(i).data.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                1.0 / norm
            } else {
                0.0
            }
        })
        .collect();
    // Instances of each label, with their weights (Y transposed).
    let mut instances: Vec<Vec<(u32, f32)>> = vec![Vec::new(); y.n_cols()];
    for (i, &scale) in row_scale.iter().enumerate() {
        for (j, v) in y.row(i).iter() {
            if v != 0.0 {
                instances[j].push((i as u32, v * scale));
            }
        }
    }
    let d = x.n_cols();
    let mut indptr = Vec::with_capacity(y.n_cols() + 1);
    indptr.push(0i64);
    let mut indices = Vec::new();
    let mut data = Vec::new();
    // Labels are embedded a block at a time and appended to the output, so that the per-label
    // vectors in flight are one block's, not a second copy of the whole output.
    for block in instances.chunks(PIFA_BLOCK) {
        let rows: Vec<(Vec<i32>, Vec<f32>)> = block
            .par_iter()
            .map_init(
                || (vec![0f64; d], Vec::<u32>::new()),
                |(acc, touched), inst| embed_label(x, inst, acc, touched),
            )
            .collect();
        for (cols, vals) in rows {
            indices.extend(cols);
            data.extend(vals);
            indptr.push(indices.len() as i64);
        }
    }
    CsrMatrix::try_new(y.n_cols(), d, indptr, indices, data)
}

/// Labels per block of [`pifa`].
const PIFA_BLOCK: usize = 4096;

/// One PIFA row: the normalised sum of `x`'s rows `inst` (with their weights), as sorted
/// (columns, values). `acc` (zero, `x.n_cols()` long) and `touched` (empty) are scratch space
/// and are left as they were found.
fn embed_label(
    x: &CsrView<'_>,
    inst: &[(u32, f32)],
    acc: &mut [f64],
    touched: &mut Vec<u32>,
) -> (Vec<i32>, Vec<f32>) {
    for &(i, w) in inst {
        for (f, v) in x.row(i as usize).iter() {
            if acc[f] == 0.0 {
                touched.push(f as u32);
            }
            acc[f] += f64::from(w) * f64::from(v);
        }
    }
    // An exact cancellation to 0 may list a feature twice; dedup after sorting.
    touched.sort_unstable();
    touched.dedup();
    let norm = touched
        .iter()
        .map(|&f| acc[f as usize].powi(2))
        .sum::<f64>()
        .sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    let mut cols = Vec::with_capacity(touched.len());
    let mut vals = Vec::with_capacity(touched.len());
    for &f in touched.iter() {
        let v = acc[f as usize] * scale;
        acc[f as usize] = 0.0;
        if v != 0.0 {
            cols.push(f as i32);
            vals.push(v as f32);
        }
    }
    touched.clear();
    (cols, vals)
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
/// # Errors
/// [`PecosError::InvalidParam`] for a depth outside `1..=31` or `max_iter == 0`.
pub fn balanced_kmeans_leaves(z: &CsrView<'_>, params: &KMeansParams) -> Result<Vec<u32>> {
    if !(1..=31).contains(&params.depth) {
        return Err(PecosError::param(
            "depth",
            format!("must be in 1..=31, got {}", params.depth),
        ));
    }
    if params.max_iter == 0 {
        return Err(PecosError::param("kmeans_max_iter", "must be >= 1"));
    }
    let n = z.n_rows();
    let mut elements: Vec<u32> = (0..n as u32).collect();
    let mut bounds = vec![0usize, n];
    for level in 0..params.depth {
        let nodes: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        let split: Vec<Vec<u32>> = nodes
            .par_iter()
            .enumerate()
            .map(|(k, &(lo, hi))| {
                let seed = node_seed(params.seed, level, k);
                split_node(z, &elements[lo..hi], seed, params)
            })
            .collect();
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

fn node_seed(seed: u64, level: usize, node: usize) -> u64 {
    SplitMix64::new(seed ^ ((level as u64) << 48) ^ node as u64).next_u64()
}

/// Node size from which scores are computed in parallel inside the node.
const PARALLEL_SCORES: usize = 4096;

/// A node whose rows hold more than `1 / IN_PLACE_SHARE` of the nonzeros of `z` reads them in
/// place instead of gathering a compact copy: near the root, the copies of the nodes being split
/// would take as much memory as `z` itself.
const IN_PLACE_SHARE: usize = 4;

/// Splits one node: returns its elements with the left half (the `n/2` lowest scores) first, each
/// half sorted by id.
fn split_node(z: &CsrView<'_>, elements: &[u32], seed: u64, params: &KMeansParams) -> Vec<u32> {
    if elements.len() < 2 {
        return elements.to_vec();
    }
    let node_nnz: usize = elements.iter().map(|&e| z.row(e as usize).nnz()).sum();
    if node_nnz.saturating_mul(IN_PLACE_SHARE) > z.nnz() {
        split_rows(&InPlaceRows { z: *z, elements }, elements, seed, params)
    } else {
        split_rows(&LocalRows::gather(z, elements), elements, seed, params)
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

    #[test]
    fn pifa_normalises_rows_and_label_sums() {
        let x = CsrMatrix::from_rows(3, &[vec![(0, 1.0)], vec![(1, 2.0)], vec![(2, 1.0)]]).unwrap();
        // row 0 has labels {0, 1}: weight 1/sqrt(2); row 1 label 0; row 2 no label.
        let y =
            CsrMatrix::from_rows(3, &[vec![(0, 1.0), (1, 1.0)], vec![(0, 1.0)], vec![]]).unwrap();
        let z = pifa(&x.view(), &y.view()).unwrap();
        let z = z.view();
        let r0: Vec<_> = z.row(0).iter().collect();
        let (a, b) = (1.0 / 2f32.sqrt(), 2.0);
        let norm = (a * a + b * b).sqrt();
        assert_eq!(r0.len(), 2);
        assert!((r0[0].1 - a / norm).abs() < 1e-6 && (r0[1].1 - b / norm).abs() < 1e-6);
        assert_eq!(z.row(1).iter().collect::<Vec<_>>(), vec![(0, 1.0)]);
        assert_eq!(z.row(2).nnz(), 0);
    }

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
            let codes = balanced_kmeans_leaves(&z.view(), &params).unwrap();
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
            pool.install(|| balanced_kmeans_leaves(&z.view(), &params).unwrap())
        };
        assert_eq!(run(1), run(4));
        let one = CsrMatrix::from_rows(2, &[vec![(0, 1.0)]]).unwrap();
        let deep = KMeansParams { depth: 2, ..params };
        assert_eq!(balanced_kmeans_leaves(&one.view(), &deep).unwrap(), vec![3]);
        assert!(balanced_kmeans_leaves(&one.view(), &KMeansParams { depth: 0, ..params }).is_err());
    }
}

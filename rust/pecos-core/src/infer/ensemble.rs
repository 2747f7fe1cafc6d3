//! Ensembles: the predictions of several models over the same labels (differently seeded trees,
//! or a model and a matcher) merged into one ranking.
//!
//! [`mean_of_trees`] is PECOS's average ensemble (`CsrEnsembler.average`): a label's score is the mean over
//! the trees of its score in each tree's top-k, a label missing from a tree's top-k counting 0
//! for that tree. So it suits post-processors whose scores are >= 0 with 0 meaning "no evidence"
//! (the hinge ones, sigmoid); a tree asked for more labels than the output keeps makes the mean
//! closer to the mean of the full scores.

use super::beam::TopK;
use crate::error::{PecosError, Result};
use rayon::prelude::*;

/// Rows per parallel task of the merge (cheap per row: this only amortises the scheduling). A
/// batch of at most this many rows, a single query above all, is merged on the calling thread.
const MERGE_BLOCK_ROWS: usize = 256;

/// The mean of `per_tree` (the top-k of each tree for the same rows, `n_rows` each), as a top-`k`
/// per row: best first, equal means in increasing label order, padded with label `-1` and score
/// 0. A label's mean sums its scores in tree order and divides by the number of trees, so it is
/// the same for every thread count. Parallel over rows in the current rayon pool.
///
/// # Errors
/// [`PecosError::InvalidInput`] without trees, [`PecosError::ShapeMismatch`] if a tree's
/// predictions do not hold `n_rows` rows, and [`PecosError::InvalidParam`] for `k` = 0.
pub fn mean_of_trees(per_tree: &[TopK], n_rows: usize, k: usize) -> Result<TopK> {
    merge(per_tree, Combine::Mean, n_rows, k)
}

/// The sum over `per_result` of each label's score times the result's weight, as a top-`k` per
/// row, as [`mean_of_trees`] otherwise (a label missing from a result counts 0 there).
///
/// # Errors
/// As [`mean_of_trees`], and [`PecosError::ShapeMismatch`] if there is not one finite weight per
/// result.
pub fn weighted_sum(per_result: &[TopK], weights: &[f32], n_rows: usize, k: usize) -> Result<TopK> {
    if weights.len() != per_result.len() {
        return Err(PecosError::shape(
            "weights (one per result)",
            per_result.len(),
            weights.len(),
        ));
    }
    if let Some(w) = weights.iter().find(|w| !w.is_finite()) {
        return Err(PecosError::InvalidInput(format!(
            "weights must be finite, got {w}"
        )));
    }
    merge(per_result, Combine::Weighted(weights), n_rows, k)
}

/// How the scores of a label in several results become one.
#[derive(Clone, Copy)]
enum Combine<'a> {
    /// Summed in result order, divided by the number of results.
    Mean,
    /// Each times its result's weight, summed in result order.
    Weighted(&'a [f32]),
}

fn merge(per_tree: &[TopK], combine: Combine, n_rows: usize, k: usize) -> Result<TopK> {
    if per_tree.is_empty() {
        return Err(PecosError::InvalidInput(
            "an ensemble needs at least one tree".into(),
        ));
    }
    if k == 0 {
        return Err(PecosError::param("topk", "must be an integer >= 1, got 0"));
    }
    for tree in per_tree {
        let rows = tree.labels.len().checked_div(tree.k).unwrap_or(0);
        let consistent =
            tree.labels.len() == rows * tree.k && tree.scores.len() == tree.labels.len();
        if !consistent || rows != n_rows {
            return Err(PecosError::shape(
                "rows of a tree's predictions",
                n_rows,
                rows,
            ));
        }
    }
    let size = n_rows
        .checked_mul(k)
        .ok_or_else(|| PecosError::param("topk", "is too large"))?;
    let mut labels = vec![-1i64; size];
    let mut scores = vec![0f32; size];
    let merge_block =
        |pairs: &mut Vec<(i64, f32)>, block: usize, lab: &mut [i64], sco: &mut [f32]| {
            let first = block * MERGE_BLOCK_ROWS;
            for (r, (lrow, srow)) in lab.chunks_mut(k).zip(sco.chunks_mut(k)).enumerate() {
                merge_row(per_tree, combine, first + r, pairs, lrow, srow);
            }
        };
    if n_rows <= MERGE_BLOCK_ROWS {
        merge_block(&mut Vec::new(), 0, &mut labels, &mut scores);
    } else {
        labels
            .par_chunks_mut(k * MERGE_BLOCK_ROWS)
            .zip(scores.par_chunks_mut(k * MERGE_BLOCK_ROWS))
            .enumerate()
            .for_each_init(Vec::new, |pairs, (block, (lab, sco))| {
                merge_block(pairs, block, lab, sco)
            });
    }
    Ok(TopK { k, labels, scores })
}

/// Writes the best means of row `row` into `labels` and `scores` (already padded); `pairs` is
/// scratch space.
fn merge_row(
    per_tree: &[TopK],
    combine: Combine,
    row: usize,
    pairs: &mut Vec<(i64, f32)>,
    labels: &mut [i64],
    scores: &mut [f32],
) {
    pairs.clear();
    for (t, tree) in per_tree.iter().enumerate() {
        let weight = match combine {
            Combine::Mean => 1.0,
            Combine::Weighted(weights) => weights[t],
        };
        let span = row * tree.k..(row + 1) * tree.k;
        let entries = tree.labels[span.clone()].iter().zip(&tree.scores[span]);
        pairs.extend(
            entries
                .filter(|(&l, _)| l >= 0)
                .map(|(&l, &s)| (l, s * weight)),
        );
    }
    // Stable: each label's scores stay in tree order, so their sum does too.
    pairs.sort_by_key(|&(l, _)| l);
    let mut n_distinct = 0;
    for i in 0..pairs.len() {
        if n_distinct > 0 && pairs[n_distinct - 1].0 == pairs[i].0 {
            pairs[n_distinct - 1].1 += pairs[i].1;
        } else {
            pairs[n_distinct] = pairs[i];
            n_distinct += 1;
        }
    }
    pairs.truncate(n_distinct);
    if let Combine::Mean = combine {
        let n_trees = per_tree.len() as f32;
        for pair in pairs.iter_mut() {
            pair.1 /= n_trees;
        }
    }
    let keep = labels.len().min(pairs.len());
    if keep > 0 && keep < pairs.len() {
        pairs.select_nth_unstable_by(keep - 1, by_mean_then_label);
        pairs.truncate(keep);
    }
    pairs.sort_unstable_by(by_mean_then_label);
    for ((l, s), &(label, score)) in labels.iter_mut().zip(scores.iter_mut()).zip(pairs.iter()) {
        *l = label;
        *s = score;
    }
}

/// Best mean first; equal means in increasing label order (labels are distinct: a total order).
fn by_mean_then_label(a: &(i64, f32), b: &(i64, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topk(k: usize, labels: Vec<i64>, scores: Vec<f32>) -> TopK {
        TopK { k, labels, scores }
    }

    #[test]
    fn a_label_missing_from_a_tree_counts_zero_for_it() {
        let a = topk(2, vec![3, 1, 0, -1], vec![1.0, 0.25, 0.5, 0.0]);
        let b = topk(2, vec![1, 2, 0, 4], vec![0.75, 0.5, 0.25, 0.125]);
        let mean = mean_of_trees(&[a, b], 2, 3).unwrap();
        assert_eq!(mean.labels, vec![1, 3, 2, 0, 4, -1]);
        assert_eq!(mean.scores, vec![0.5, 0.5, 0.25, 0.375, 0.0625, 0.0]);
    }

    #[test]
    fn weighted_sums_weigh_each_result() {
        let a = topk(2, vec![3, 1, 0, -1], vec![1.0, 0.25, 0.5, 0.0]);
        let b = topk(1, vec![1, 4], vec![0.75, 0.125]);
        let sum = weighted_sum(&[a.clone(), b.clone()], &[0.5, 2.0], 2, 2).unwrap();
        assert_eq!(sum.labels, vec![1, 3, 0, 4]); // equal sums: the smaller label first
        assert_eq!(sum.scores, vec![1.625, 0.5, 0.25, 0.25]);
        assert!(weighted_sum(&[a.clone(), b.clone()], &[0.5], 2, 2).is_err());
        assert!(weighted_sum(&[a, b], &[0.5, f32::NAN], 2, 2).is_err());
    }

    #[test]
    fn one_tree_is_its_own_mean() {
        let a = topk(2, vec![3, 1, 0, -1], vec![0.9, 0.3, 0.5, 0.0]);
        assert_eq!(mean_of_trees(std::slice::from_ref(&a), 2, 2).unwrap(), a);
    }

    #[test]
    fn inconsistent_trees_are_refused() {
        let a = topk(2, vec![3, 1], vec![0.9, 0.3]);
        assert!(mean_of_trees(&[], 1, 2).is_err());
        assert!(mean_of_trees(std::slice::from_ref(&a), 2, 2).is_err());
        assert!(mean_of_trees(std::slice::from_ref(&a), 1, 0).is_err());
        assert!(mean_of_trees(&[topk(2, vec![3, 1, 0], vec![0.9, 0.3, 0.1])], 1, 2).is_err());
        assert!(mean_of_trees(&[a], 1, 2).is_ok());
    }
}

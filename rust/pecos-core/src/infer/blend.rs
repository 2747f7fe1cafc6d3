//! The product-retrieval blend: a model's top labels and its matchers' merged into one ranking.
//!
//! A label's score is the weighted sum of its scores in the lists (0 where it is missing), the
//! name match weighing more for a text the training texts do not know, plus a **rank bonus**:
//! `a * share / (offset + rank)` for each list the label is in at 1-based `rank`. Far down the
//! lists the weighted scores are tiny and close together, so there the bonus decides: a label
//! several lists agree on comes first. The **co-click** list adds labels that are in none of
//! the lists: the blend's top labels, each weighted by its score relative to the best, select
//! the labels the same training texts have (a label x label matrix of shares, searched as a
//! [`NeighbourIndex`] whose features and texts are the labels), and those join the blend with
//! a rank bonus of their own. The label of the best weighted score (without bonuses) stays
//! first: the bonuses order the rest.

use super::beam::TopK;
use super::neighbours::{NeighbourIndex, NeighbourParams};
use crate::error::{PecosError, Result};
use crate::sparse::CsrView;
use rayon::prelude::*;
use std::cmp::Ordering;

/// Rows per parallel task (each row is cheap: this amortises the scheduling and the scratch).
const BLOCK_ROWS: usize = 256;

/// A list of a blend: its top labels for the rows, its weight, and its share of the rank bonus.
#[derive(Clone, Debug)]
pub struct Ranked {
    pub top: TopK,
    pub weight: f32,
    pub rank_share: f32,
}

/// The label-name match: its list (its weight the most it may weigh) and each row's nearest
/// training-text similarity `s` (the neighbour vote's), which sets the row's weight.
#[derive(Clone, Debug)]
pub struct NameMatch {
    pub list: Ranked,
    pub nearest: Vec<f32>,
}

/// `a * share / (offset + rank)` for a label at 1-based `rank` of a list of that share.
#[derive(Clone, Copy, Debug)]
pub struct RankBonus {
    pub weight: f32,
    pub offset: f32,
}

/// The co-click list: the top `from_top` labels of the blend so far, each weighted by its score
/// relative to the best, searched in `matrix` (feature `i`'s posting list holds the labels `j`
/// with their share for `i`; text `j` is label `j`) for its top `topk` by summed share, which
/// join with the bonus `weight / (offset + rank)`.
#[derive(Clone, Copy, Debug)]
pub struct CoClick<'a> {
    pub matrix: &'a NeighbourIndex,
    pub weight: f32,
    pub offset: f32,
    pub from_top: usize,
    pub topk: usize,
}

/// A model's top labels and its matchers' for the same rows. The model weighs what the matchers
/// leave: one minus their weights and the row's name weight.
#[derive(Clone, Debug)]
pub struct Blend<'a> {
    pub model: TopK,
    pub model_rank_share: f32,
    pub matched: Vec<Ranked>,
    pub names: Option<NameMatch>,
    pub bonus: RankBonus,
    pub co_click: Option<CoClick<'a>>,
}

/// One label's sums in a row: the weighted scores and the bonuses.
#[derive(Clone, Copy, Debug)]
struct Entry {
    label: i64,
    score: f32,
    bonus: f32,
}

impl Entry {
    fn total(&self) -> f32 {
        self.score + self.bonus
    }
}

#[derive(Default)]
struct Scratch {
    entries: Vec<Entry>,
    first: Vec<Entry>,
    query: Vec<(i32, f32)>,
    indices: Vec<i32>,
    data: Vec<f32>,
}

/// The top `k` labels of each of `n_rows` rows (see the module documentation): the label of the
/// best weighted score first, then by score with bonuses, equal ones by increasing label; padded
/// with label -1 and score 0. Each label's score includes its bonuses. The name match of a row
/// weighs `w_l (1 - s)^2`, `s` clamped to at most 1 (rows normalised, features non-negative, up
/// to rounding). Without bonuses and co-click this is [`super::weighted_sum`] of the weighted
/// lists. Parallel over rows in the current rayon pool; the same for every thread count.
///
/// # Errors
/// [`PecosError::ShapeMismatch`] for lists without `n_rows` rows or without one nearest
/// similarity per row, [`PecosError::InvalidInput`] for a weight, share, offset or similarity
/// that is not finite (or an offset < 0) or a co-click matrix without a feature per label,
/// [`PecosError::InvalidParam`] for `k`, `from_top` or `topk` of 0, and the co-click search's
/// errors.
pub fn blend(parts: &Blend<'_>, n_rows: usize, k: usize) -> Result<TopK> {
    check(parts, n_rows, k)?;
    let size = n_rows
        .checked_mul(k)
        .ok_or_else(|| PecosError::param("topk", "is too large"))?;
    let mut labels = vec![-1i64; size];
    let mut scores = vec![0f32; size];
    let block = |s: &mut Scratch, b: usize, lab: &mut [i64], sco: &mut [f32]| -> Result<()> {
        for (r, (lrow, srow)) in lab.chunks_mut(k).zip(sco.chunks_mut(k)).enumerate() {
            blend_row(parts, b * BLOCK_ROWS + r, s, lrow, srow)?;
        }
        Ok(())
    };
    if n_rows <= BLOCK_ROWS {
        block(&mut Scratch::default(), 0, &mut labels, &mut scores)?;
    } else {
        labels
            .par_chunks_mut(k * BLOCK_ROWS)
            .zip(scores.par_chunks_mut(k * BLOCK_ROWS))
            .enumerate()
            .try_for_each_init(Scratch::default, |s, (b, (lab, sco))| block(s, b, lab, sco))?;
    }
    Ok(TopK { k, labels, scores })
}

fn check(parts: &Blend<'_>, n_rows: usize, k: usize) -> Result<()> {
    if k == 0 {
        return Err(PecosError::param("topk", "must be an integer >= 1, got 0"));
    }
    let names = parts.names.iter().map(|n| &n.list);
    let mut numbers = vec![
        parts.model_rank_share,
        parts.bonus.weight,
        parts.bonus.offset,
    ];
    let lists = std::iter::once(&parts.model)
        .chain(parts.matched.iter().chain(names.clone()).map(|l| &l.top));
    for top in lists {
        let rows = top.labels.len().checked_div(top.k).unwrap_or(0);
        if top.labels.len() != rows * top.k
            || top.scores.len() != top.labels.len()
            || rows != n_rows
        {
            return Err(PecosError::shape(
                "rows of a list of the blend",
                n_rows,
                rows,
            ));
        }
    }
    numbers.extend(
        parts
            .matched
            .iter()
            .chain(names)
            .flat_map(|l| [l.weight, l.rank_share]),
    );
    if let Some(n) = &parts.names {
        if n.nearest.len() != n_rows {
            return Err(PecosError::shape(
                "nearest similarities (one per row)",
                n_rows,
                n.nearest.len(),
            ));
        }
        numbers.extend(&n.nearest);
    }
    if let Some(c) = &parts.co_click {
        if c.from_top == 0 || c.topk == 0 {
            return Err(PecosError::param(
                "co-click",
                "from_top and topk must be >= 1",
            ));
        }
        let m = c.matrix;
        if m.n_features() != m.n_labels() || m.n_texts() != m.n_labels() {
            return Err(PecosError::InvalidInput(format!(
                "a co-click matrix has a feature and a text per label, got {} features and {} \
                 texts for {} labels",
                m.n_features(),
                m.n_texts(),
                m.n_labels()
            )));
        }
        numbers.extend([c.weight, c.offset]);
    }
    if let Some(v) = numbers.iter().find(|v| !v.is_finite()) {
        return Err(PecosError::InvalidInput(format!(
            "the blend's weights must be finite, got {v}"
        )));
    }
    if parts.bonus.offset < 0.0 || parts.co_click.is_some_and(|c| c.offset < 0.0) {
        return Err(PecosError::InvalidInput(
            "a rank bonus's offset must be >= 0".into(),
        ));
    }
    Ok(())
}

/// Blends row `row` into `labels` and `scores` (already padded).
fn blend_row(
    parts: &Blend<'_>,
    row: usize,
    s: &mut Scratch,
    labels: &mut [i64],
    scores: &mut [f32],
) -> Result<()> {
    let bonus = parts.bonus;
    s.entries.clear();
    let name_weight = parts.names.as_ref().map_or(0.0, |n| {
        let far = (1.0 - n.nearest[row]).max(0.0);
        n.list.weight * far * far
    });
    let leftover = 1.0 - parts.matched.iter().map(|l| l.weight).sum::<f32>() - name_weight;
    let lists = std::iter::once((&parts.model, leftover, parts.model_rank_share))
        .chain(
            parts
                .matched
                .iter()
                .map(|l| (&l.top, l.weight, l.rank_share)),
        )
        .chain(
            parts
                .names
                .iter()
                .map(|n| (&n.list.top, name_weight, n.list.rank_share)),
        );
    for (top, weight, share) in lists {
        let span = row * top.k..(row + 1) * top.k;
        let ranked = top.labels[span.clone()]
            .iter()
            .zip(&top.scores[span])
            .enumerate();
        s.entries.extend(
            ranked
                .filter(|(_, (&l, _))| l >= 0)
                .map(|(rank, (&label, &score))| Entry {
                    label,
                    score: score * weight,
                    bonus: bonus.weight * share / (bonus.offset + (rank + 1) as f32),
                }),
        );
    }
    combine(&mut s.entries);
    if let Some(co) = &parts.co_click {
        co_click(co, s)?;
    }
    let entries = &mut s.entries;
    // The best weighted score first, then the best totals.
    let Some(first) = entries.iter().copied().min_by(by_score) else {
        return Ok(());
    };
    entries.retain(|e| e.label != first.label);
    let keep = (labels.len() - 1).min(entries.len());
    if keep > 0 && keep < entries.len() {
        entries.select_nth_unstable_by(keep - 1, by_total);
        entries.truncate(keep);
    }
    entries.sort_unstable_by(by_total);
    let ranked = std::iter::once(&first).chain(entries.iter());
    for ((l, sc), e) in labels.iter_mut().zip(scores.iter_mut()).zip(ranked) {
        *l = e.label;
        *sc = e.total();
    }
    Ok(())
}

/// Adds the co-click list of the row whose combined entries `s.entries` holds.
fn co_click(co: &CoClick<'_>, s: &mut Scratch) -> Result<()> {
    s.first.clear();
    s.first.extend_from_slice(&s.entries);
    let m = co.from_top.min(s.first.len());
    if m == 0 {
        return Ok(());
    }
    if m < s.first.len() {
        s.first.select_nth_unstable_by(m - 1, by_total);
        s.first.truncate(m);
    }
    let best = s.first.iter().map(Entry::total).fold(f32::MIN, f32::max);
    if best <= 0.0 {
        return Ok(());
    }
    let n_labels = co.matrix.n_features();
    s.query.clear();
    for e in &s.first {
        let label = i32::try_from(e.label)
            .ok()
            .filter(|&l| (l as usize) < n_labels);
        let Some(label) = label else {
            return Err(PecosError::InvalidInput(format!(
                "label {} is not a feature of the co-click matrix ({n_labels} labels)",
                e.label
            )));
        };
        let weight = e.total() / best;
        if weight > 0.0 {
            s.query.push((label, weight));
        }
    }
    s.query.sort_unstable_by_key(|&(l, _)| l);
    s.indices.clear();
    s.data.clear();
    s.indices.extend(s.query.iter().map(|&(l, _)| l));
    s.data.extend(s.query.iter().map(|&(_, w)| w));
    let indptr = [0, s.indices.len() as i64];
    let query = CsrView::try_new(1, n_labels, &indptr, &s.indices, &s.data)?;
    // Power 1: a label's vote is its summed share (relative to the best: only the order counts).
    let params = NeighbourParams {
        n_neighbours: co.topk,
        power: 1.0,
        topk: co.topk,
    };
    let found = co.matrix.search(&query, &params)?.top;
    let ranked = found.labels.iter().filter(|&&l| l >= 0).enumerate();
    s.entries.extend(ranked.map(|(rank, &label)| Entry {
        label,
        score: 0.0,
        bonus: co.weight / (co.offset + (rank + 1) as f32),
    }));
    combine(&mut s.entries);
    Ok(())
}

/// Sums the entries of each label (in the order they came: a stable sort), one entry per label.
fn combine(entries: &mut Vec<Entry>) {
    entries.sort_by_key(|e| e.label);
    let mut n_distinct = 0;
    for i in 0..entries.len() {
        if n_distinct > 0 && entries[n_distinct - 1].label == entries[i].label {
            entries[n_distinct - 1].score += entries[i].score;
            entries[n_distinct - 1].bonus += entries[i].bonus;
        } else {
            entries[n_distinct] = entries[i];
            n_distinct += 1;
        }
    }
    entries.truncate(n_distinct);
}

/// Best total first; equal totals by increasing label (labels are distinct: a total order).
fn by_total(a: &Entry, b: &Entry) -> Ordering {
    b.total().total_cmp(&a.total()).then(a.label.cmp(&b.label))
}

/// Best weighted score first, as [`by_total`].
fn by_score(a: &Entry, b: &Entry) -> Ordering {
    b.score.total_cmp(&a.score).then(a.label.cmp(&b.label))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topk(k: usize, labels: Vec<i64>, scores: Vec<f32>) -> TopK {
        TopK { k, labels, scores }
    }

    fn ranked(top: TopK, weight: f32) -> Ranked {
        Ranked {
            top,
            weight,
            rank_share: 1.0,
        }
    }

    const NO_BONUS: RankBonus = RankBonus {
        weight: 0.0,
        offset: 0.0,
    };

    fn with_names(nearest: Vec<f32>, bonus: RankBonus) -> Blend<'static> {
        Blend {
            model: topk(1, vec![0, 1], vec![1.0, 1.0]),
            model_rank_share: 1.0,
            matched: vec![ranked(topk(1, vec![2, 2], vec![1.0, 1.0]), 0.25)],
            names: Some(NameMatch {
                list: ranked(topk(1, vec![3, 3], vec![1.0, 1.0]), 0.5),
                nearest,
            }),
            bonus,
            co_click: None,
        }
    }

    #[test]
    fn the_name_match_weighs_by_how_far_the_nearest_text_is() {
        // Row 0 is a training text (s = 1): no name weight; row 1's: 0.5 (1 - 0.5)^2.
        let b = blend(&with_names(vec![1.0, 0.5], NO_BONUS), 2, 3).unwrap();
        assert_eq!(b.labels, vec![0, 2, 3, 1, 2, 3]);
        assert_eq!(b.scores, vec![0.75, 0.25, 0.0, 0.625, 0.25, 0.125]);
        assert!(blend(&with_names(vec![1.0], NO_BONUS), 2, 3).is_err());
        assert!(blend(&with_names(vec![1.0, f32::NAN], NO_BONUS), 2, 3).is_err());
        let b = blend(
            &Blend {
                names: None,
                ..with_names(vec![], NO_BONUS)
            },
            2,
            2,
        )
        .unwrap();
        assert_eq!(b.scores, vec![0.75, 0.25, 0.75, 0.25]);
    }

    #[test]
    fn the_rank_bonus_orders_all_but_the_best_scored_label() {
        // Lists of two: label 5 is second in both, label 0 first of the model's only.
        let parts = Blend {
            model: topk(2, vec![0, 5], vec![0.5, 0.25]),
            model_rank_share: 1.0,
            matched: vec![ranked(topk(2, vec![4, 5], vec![1.0, 0.0]), 0.5)],
            names: None,
            bonus: RankBonus {
                weight: 1.0,
                offset: 1.0,
            },
            co_click: None,
        };
        let b = blend(&parts, 1, 3).unwrap();
        // Scores: 0: 0.25 + 1/2; 4: 0.5 + 1/2; 5: 0.125 + 1/3 + 1/3. Label 4 has the best
        // weighted score, label 5 the best total after it.
        assert_eq!(b.labels, vec![4, 5, 0]);
        assert_eq!(b.scores, vec![1.0, 0.125 + 2.0 / 3.0, 0.75]);
        assert!(blend(
            &Blend {
                bonus: RankBonus {
                    weight: 1.0,
                    offset: -1.0
                },
                ..parts
            },
            1,
            3
        )
        .is_err());
    }
}

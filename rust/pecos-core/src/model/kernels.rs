//! The scoring kernels: raw scores of every child of one parent for one query, or for several
//! queries at once. Beam search asks this over and over, so this is where prediction time goes.
//!
//! Scoring locates the query's sorted features among the chunk's features (a [`RowCursor`] over
//! the chunk's search index) and adds each hit's entries into a small dense buffer of size
//! `#children`.

use super::layer::Layer;
use super::row_index::RowCursor;
use super::storage::{with_entries, Slot, Weight};
use crate::error::Result;
use crate::sparse::SparseRow;

/// Reusable buffers of [`Layer::score_children`].
#[derive(Debug, Default)]
pub struct ScoreScratch {
    scores: Vec<f32>,
    /// (chunk row, query value) per query feature; value 0 where the feature is not in the chunk.
    hits: Vec<(u32, f32)>,
    /// (first entry, end entry, query value) per row found.
    spans: Vec<(u32, u32, f32)>,
    /// (feature << 32 | query, value) of several queries, in increasing order.
    merged: Vec<(u64, f32)>,
    /// Second buffer of the radix sort of `merged`.
    spare: Vec<(u64, f32)>,
    /// (chunk row, first item, end item) of each feature of `merged` present in the chunk.
    runs: Vec<(u32, u32, u32)>,
}

impl ScoreScratch {
    /// The scores of the last [`Layer::score_children`] call, by child slot.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }
}

impl Layer {
    /// Sets `scores` to `copies` consecutive copies of the bias terms `bias * b_c` of `parent`'s
    /// children, in slot order: the starting point of every query's scores. With int8 weights,
    /// to zeros instead: the dot products are scaled first and the bias terms added after (see
    /// [`Layer::finish_scores`]).
    fn init_scores(&self, parent: usize, copies: usize, bias: f32, scores: &mut Vec<f32>) {
        let children = self.chain.children(parent);
        scores.clear();
        if self.arrays.entry_value.scale().is_some() {
            scores.resize(copies * children.len(), 0.0);
            return;
        }
        if let Some(b) = self.shared_bias(parent) {
            // One value for all (the same product): a fill instead of a gather.
            scores.resize(copies * children.len(), bias * b);
            return;
        }
        for _ in 0..copies {
            scores.extend(
                children
                    .iter()
                    .map(|&c| bias * self.arrays.bias_weight[c as usize]),
            );
        }
    }

    /// With int8 weights, turns the `copies` dot products of quantised weights in `scores` into
    /// raw scores: `scale_c * dot + bias * b_c` (one multiplication per child instead of one per
    /// entry). Other weights already are raw scores.
    fn finish_scores(&self, parent: usize, bias: f32, scores: &mut [f32]) {
        let Some(scale) = self.arrays.entry_value.scale() else {
            return;
        };
        let children = self.chain.children(parent);
        let b = &self.arrays.bias_weight;
        for copy in scores.chunks_exact_mut(children.len().max(1)) {
            for (score, &c) in copy.iter_mut().zip(children) {
                *score = scale[c as usize] * *score + bias * b[c as usize];
            }
        }
    }

    /// A cursor locating increasing features among the rows of `parent`'s chunk.
    ///
    /// # Errors
    /// As [`Layer::row_index`].
    fn row_cursor(&self, parent: usize) -> Result<RowCursor<'_>> {
        let rows = &self.arrays.row_feature[self.chunk_rows(parent)];
        Ok(self.row_index(parent)?.cursor(rows))
    }

    /// Raw scores `w_c · x + bias * b_c` of every child `c` of `parent`, written to
    /// `scratch.scores()[slot]`.
    ///
    /// The weights rarely fit in cache, so the time goes into memory misses: locating a query
    /// feature's row, reading its entry range, reading its entries. Each is a dependent miss; done
    /// one feature after the other they cost a full memory latency each. Done in three passes over
    /// all of the query's features instead (locate every row, then read every range, then every
    /// entry list), the misses of one pass are independent of each other and overlap.
    ///
    /// # Errors
    /// [`crate::PecosError::Format`] if the chunk of a memory-mapped layer is invalid (see
    /// `Layer::row_index`).
    pub fn score_children(
        &self,
        parent: usize,
        query: SparseRow<'_>,
        bias: f32,
        scratch: &mut ScoreScratch,
    ) -> Result<()> {
        let ScoreScratch {
            scores,
            hits,
            spans,
            ..
        } = scratch;
        let mut rows = self.row_cursor(parent)?;
        self.init_scores(parent, 1, bias, scores);
        // Pass 1: the chunk row of every query feature present in the chunk.
        hits.clear();
        for (&f, &xv) in query.indices.iter().zip(query.data) {
            if let Some((k, found)) = rows.seek(f as u32) {
                hits.push((k, if found { xv } else { 0.0 }));
            }
        }
        // Pass 2: the entry range of each row found.
        let row_ptr = self.chunk_row_ptr(parent);
        spans.clear();
        spans.extend(hits.iter().filter(|h| h.1 != 0.0).map(|&(k, xv)| {
            let k = k as usize;
            (row_ptr[k], row_ptr[k + 1], xv)
        }));
        // Pass 3: the entries.
        with_entries!(self.arrays, self.chunk_entries(parent), |slots, values| {
            add_spans(slots, values, spans, scores)
        });
        self.finish_scores(parent, bias, scores);
        Ok(())
    }

    /// Raw scores of every child of `parent` for each of several `queries` at once:
    /// `scratch.scores()[i * n + slot]` for query `i`, with `n` the parent's number of children.
    ///
    /// The queries' features are merged into one increasing list first, so that the chunk is
    /// walked once, in order, and each of its rows is located and read once for all the queries
    /// that share its feature (queries reaching the same parent tend to share many). Every score
    /// receives its terms in the same order as in [`Layer::score_children`], so both give
    /// identical results.
    ///
    /// # Errors
    /// As [`Layer::score_children`].
    pub fn score_children_many(
        &self,
        parent: usize,
        queries: &[SparseRow<'_>],
        bias: f32,
        scratch: &mut ScoreScratch,
    ) -> Result<()> {
        let ScoreScratch {
            scores,
            merged,
            spare,
            runs,
            ..
        } = scratch;
        let mut rows = self.row_cursor(parent)?;
        let n = self.chain.children(parent).len();
        self.init_scores(parent, queries.len(), bias, scores);
        merged.clear();
        for (i, query) in queries.iter().enumerate() {
            merged.extend(
                query
                    .indices
                    .iter()
                    .zip(query.data)
                    .map(|(&f, &xv)| ((u64::from(f as u32) << 32) | i as u64, xv)),
            );
        }
        sort_by_feature(merged, spare);
        // Pass 1: the chunk row of each distinct feature, with its run of (query, value) items.
        runs.clear();
        let mut run_start = 0;
        while let Some(&(key, _)) = merged.get(run_start) {
            let f = (key >> 32) as u32;
            let run_end = run_start
                + merged[run_start..]
                    .iter()
                    .take_while(|&&(k, _)| (k >> 32) as u32 == f)
                    .count();
            if let Some((k, true)) = rows.seek(f) {
                runs.push((k, run_start as u32, run_end as u32));
            }
            run_start = run_end;
        }
        // Pass 2: each row's entries, for every query of its run (rows are located before
        // any is read, so the reads of different rows overlap).
        let row_ptr = self.chunk_row_ptr(parent);
        with_entries!(self.arrays, self.chunk_entries(parent), |slots, values| {
            add_runs(slots, values, row_ptr, runs, merged, n, scores)
        });
        self.finish_scores(parent, bias, scores);
        Ok(())
    }
}

/// Adds `xv * w` of the entries `e0..e1` of each span to the score of their slot.
#[inline]
fn add_spans<S: Slot, W: Weight>(
    slots: &[S],
    values: &[W],
    spans: &[(u32, u32, f32)],
    scores: &mut [f32],
) {
    for &(e0, e1, xv) in spans {
        let (e0, e1) = (e0 as usize, e1 as usize);
        for (&slot, &w) in slots[e0..e1].iter().zip(&values[e0..e1]) {
            scores[slot.index()] += xv * w.widen();
        }
    }
}

/// Adds, for each run `(row k, items r0..r1 of merged)`, `xv * w` of row `k`'s entries to the
/// scores (`n` per query) of every query of the run, in the same order as [`add_spans`].
#[inline]
fn add_runs<S: Slot, W: Weight>(
    slots: &[S],
    values: &[W],
    row_ptr: &[u32],
    runs: &[(u32, u32, u32)],
    merged: &[(u64, f32)],
    n: usize,
    scores: &mut [f32],
) {
    for &(k, r0, r1) in runs {
        let k = k as usize;
        let (e0, e1) = (row_ptr[k] as usize, row_ptr[k + 1] as usize);
        for &(key, xv) in &merged[r0 as usize..r1 as usize] {
            let out = &mut scores[(key as u32) as usize * n..][..n];
            for (&slot, &w) in slots[e0..e1].iter().zip(&values[e0..e1]) {
                out[slot.index()] += xv * w.widen();
            }
        }
    }
}

/// Sorts `(feature << 32 | query, value)` items, gathered query after query, into increasing
/// `(feature, query)` order: a stable least-significant-digit radix sort on the feature bits, much
/// cheaper than a comparison sort on the tens of thousands of items of a block of queries.
fn sort_by_feature(items: &mut Vec<(u64, f32)>, spare: &mut Vec<(u64, f32)>) {
    const DIGIT: u32 = 11;
    const SMALL: usize = 256;
    if items.len() <= SMALL {
        items.sort_unstable_by_key(|&(key, _)| key);
        return;
    }
    let max_feature = items.iter().map(|&(key, _)| key >> 32).max().unwrap_or(0);
    let bits = u64::BITS - max_feature.leading_zeros();
    let mut counts = [0usize; 1 << DIGIT];
    let mut shift = 32;
    while shift < 32 + bits {
        let digit = |key: u64| ((key >> shift) & ((1 << DIGIT) - 1)) as usize;
        counts.fill(0);
        for &(key, _) in items.iter() {
            counts[digit(key)] += 1;
        }
        let mut total = 0;
        for c in &mut counts {
            (*c, total) = (total, total + *c);
        }
        spare.clear();
        spare.resize(items.len(), (0, 0.0));
        for &item in items.iter() {
            let d = digit(item.0);
            spare[counts[d]] = item;
            counts[d] += 1;
        }
        std::mem::swap(items, spare);
        shift += DIGIT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ChainLayer;
    use crate::model::layer::tests::toy_layer;
    use crate::model::ChildWeights;

    #[test]
    fn scores_children_of_a_parent() {
        let layer = toy_layer();
        layer.validate(4).unwrap();
        let q = SparseRow {
            indices: &[0, 1, 3],
            data: &[1.0, 0.5, 2.0],
        };
        let mut scratch = ScoreScratch::default();
        layer.score_children(0, q, 1.0, &mut scratch).unwrap();
        assert_eq!(scratch.scores(), [1.0 + 4.0 + 0.5, -2.0]);
        layer.score_children(1, q, 1.0, &mut scratch).unwrap();
        assert_eq!(scratch.scores(), [2.0 - 1.0]);
    }

    #[test]
    fn search_indexes_match_dense_scoring_on_large_chunks() {
        // A chunk of a third of the features (dense index) and one of 3% (sparse index).
        for (n_features, one_in) in [(500, 3), (20000, 100)] {
            check_against_dense_scoring(n_features, one_in);
        }
    }

    fn check_against_dense_scoring(n_features: usize, one_in: usize) {
        use crate::rng::SplitMix64;
        let mut rng = SplitMix64::new(5);
        let n_children = 3;
        let chain = ChainLayer::try_new(vec![0; n_children], 1).unwrap();
        let mut dense = vec![vec![0f32; n_features]; n_children];
        let weights: Vec<ChildWeights> = dense
            .iter_mut()
            .map(|w| {
                let mut cw = ChildWeights::default();
                let features: Vec<usize> =
                    (0..n_features).filter(|_| rng.below(one_in) == 0).collect();
                for f in features {
                    w[f] = rng.below(100) as f32 / 10.0 - 5.0;
                    cw.features.push(f as u32);
                    cw.values.push(w[f]);
                }
                cw
            })
            .collect();
        let layer = Layer::from_child_weights(chain, &weights).unwrap();
        let queries: Vec<(Vec<i32>, Vec<f32>)> = (0..50)
            .map(|_| {
                let idx: Vec<i32> = (0..n_features as i32)
                    .filter(|_| rng.below(10) == 0)
                    .collect();
                let val = idx.iter().map(|_| rng.below(100) as f32 / 7.0).collect();
                (idx, val)
            })
            .collect();
        let rows: Vec<SparseRow<'_>> = queries
            .iter()
            .map(|(indices, data)| SparseRow { indices, data })
            .collect();
        let mut scratch = ScoreScratch::default();
        let mut one_by_one = Vec::new();
        for (row, (idx, val)) in rows.iter().zip(&queries) {
            layer.score_children(0, *row, 0.5, &mut scratch).unwrap();
            let out = scratch.scores();
            for (c, w) in dense.iter().enumerate() {
                let dot: f32 = idx.iter().zip(val).map(|(&f, &v)| w[f as usize] * v).sum();
                let expected = dot + 0.5 * weights[c].bias;
                assert!((out[c] - expected).abs() < 1e-3, "{} vs {expected}", out[c]);
            }
            one_by_one.extend_from_slice(out);
        }
        // Scoring the queries together gives bit-identical scores (same order of additions).
        layer
            .score_children_many(0, &rows, 0.5, &mut scratch)
            .unwrap();
        assert_eq!(scratch.scores(), one_by_one);
    }

    #[test]
    fn radix_sort_orders_by_feature_then_query() {
        use crate::rng::SplitMix64;
        let mut rng = SplitMix64::new(9);
        for (n, max_feature) in [
            (10, 100),
            (1000, 50),
            (5000, 1 << 20),
            (3000, i32::MAX as usize),
        ] {
            let mut items: Vec<(u64, f32)> = (0..n)
                .map(|i| {
                    let f = rng.below(max_feature) as u64;
                    ((f << 32) | (i as u64 / 37), i as f32)
                })
                .collect();
            let mut expected = items.clone();
            expected.sort_by_key(|&(key, _)| key);
            sort_by_feature(&mut items, &mut Vec::new());
            assert_eq!(items, expected);
        }
    }
}

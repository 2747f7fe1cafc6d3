//! Nearest training texts: a query's labels voted by the training texts most similar to it.
//!
//! The index holds the training texts' feature rows transposed (one posting list of
//! `(text, weight)` per feature) and each text's labels, each with a share (of the text's
//! training rows that had it, say). A query's similarity to a text is the dot product of their
//! rows (their cosine, the rows being normalised), summed over the query's posting lists. Its
//! `n_neighbours` most similar texts (similarity > 0) vote for their labels, each vote
//! `similarity^power` times the label's share; the labels with the most votes come out, their
//! votes divided by the best label's, so that the best label scores 1 whatever the scale of
//! the similarities (a blend weight then means the same for every query). Similarities and votes
//! that overflow f32 count as `f32::MAX` (an undefined one, `inf - inf` from negative query
//! values, as none), so that every score is finite.
//!
//! What it adds to a label's centroid (the mean of its texts): one training text close to the
//! query counts fully, though the label's other texts are far from it.

use super::beam::TopK;
use crate::error::{PecosError, Result};
use crate::io::envelope::{self, Writer};
use crate::io::Artifact;
use crate::sparse::{CsrMatrix, CsrView, SparseRow};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::cmp::Ordering;

/// Rows per parallel task of a batch (each task clears its scratch row by row, so this only
/// amortises the scheduling and the scratch allocation).
const BLOCK_ROWS: usize = 64;

/// A query whose posting lists hold at least `1 / DENSE_SCAN_FRACTION` entries per text is
/// summed without tracking the texts it reaches, then every text is scanned.
const DENSE_SCAN_FRACTION: usize = 4;

/// Texts compared at once with the current limit in that scan.
const SCAN_LANES: usize = 16;

/// What [`NeighbourIndex::search`] finds: the voted labels and, per query, the similarity of its
/// nearest text (how well the training texts know it; 0 if it shares no feature with any, and
/// for every query of an index without labels, which searches nothing).
#[derive(Clone, Debug, PartialEq)]
pub struct Votes {
    pub top: TopK,
    pub nearest: Vec<f32>,
}

/// The search settings of [`NeighbourIndex::search`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NeighbourParams {
    /// Texts that vote (the most similar ones), >= 1.
    pub n_neighbours: usize,
    /// Exponent of a text's similarity in its vote, finite and > 0: higher powers give the
    /// closest texts more say.
    pub power: f32,
    /// Labels returned per query, >= 1.
    pub topk: usize,
}

impl NeighbourParams {
    /// # Errors
    /// [`PecosError::InvalidParam`] naming the first setting out of range.
    pub fn validate(&self) -> Result<()> {
        if self.n_neighbours == 0 {
            return Err(PecosError::param("n_neighbours", "must be >= 1, got 0"));
        }
        if !(self.power.is_finite() && self.power > 0.0) {
            return Err(PecosError::param(
                "power",
                format!("must be finite and > 0, got {}", self.power),
            ));
        }
        if self.topk == 0 {
            return Err(PecosError::param("topk", "must be an integer >= 1, got 0"));
        }
        Ok(())
    }
}

/// Training texts' rows by feature and their labels (see the module documentation).
#[derive(Clone, Debug)]
pub struct NeighbourIndex {
    /// `n_features x n_texts`: row `f` lists the texts having feature `f`, with its weight.
    postings: CsrMatrix,
    /// `n_texts x n_labels`: each text's labels with their shares.
    text_labels: CsrMatrix,
}

impl NeighbourIndex {
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if `postings` does not have one column per row (text) of
    /// `text_labels`, or [`PecosError::InvalidInput`] if a weight or a share is negative (votes
    /// and similarities are sums of products that must not cancel out).
    pub fn try_new(postings: CsrMatrix, text_labels: CsrMatrix) -> Result<Self> {
        if postings.view().n_cols() != text_labels.view().n_rows() {
            return Err(PecosError::shape(
                "texts (columns of the postings, rows of the text labels)",
                text_labels.view().n_rows(),
                postings.view().n_cols(),
            ));
        }
        for (what, m) in [("feature weight", &postings), ("label share", &text_labels)] {
            if let Some(v) = m.view().data().iter().find(|v| **v < 0.0) {
                return Err(PecosError::InvalidInput(format!(
                    "a {what} is negative ({v}); the neighbour index takes weights >= 0"
                )));
            }
        }
        Ok(NeighbourIndex {
            postings,
            text_labels,
        })
    }

    pub fn n_features(&self) -> usize {
        self.postings.view().n_rows()
    }

    pub fn n_texts(&self) -> usize {
        self.text_labels.view().n_rows()
    }

    pub fn n_labels(&self) -> usize {
        self.text_labels.view().n_cols()
    }

    pub fn postings(&self) -> CsrView<'_> {
        self.postings.view()
    }

    pub fn text_labels(&self) -> CsrView<'_> {
        self.text_labels.view()
    }

    /// The top labels of every row of `queries`: `params.topk` columns (at most one per label),
    /// best first, equal scores by increasing label, padded with label -1 and score 0; and each
    /// row's nearest similarity. Parallel over rows in the current rayon pool; each row's result
    /// is the same for any thread count.
    ///
    /// # Errors
    /// Invalid `params`, or queries without one column per feature of the index.
    pub fn search(&self, queries: &CsrView<'_>, params: &NeighbourParams) -> Result<Votes> {
        let k = self.check(queries, params)?;
        let n_rows = queries.n_rows();
        let mut nearest = vec![0f32; n_rows];
        if k == 0 {
            // An index without labels: empty rows (chunks of width 0 cannot be split).
            let top = TopK {
                k,
                labels: Vec::new(),
                scores: Vec::new(),
            };
            return Ok(Votes { top, nearest });
        }
        let size = n_rows
            .checked_mul(k)
            .ok_or_else(|| PecosError::param("topk", "is too large"))?;
        let mut labels = vec![-1i64; size];
        let mut scores = vec![0f32; size];
        let search_block =
            |scratch: &mut Scratch,
             block: usize,
             (lab, sco, near): (&mut [i64], &mut [f32], &mut [f32])| {
                let first = block * BLOCK_ROWS;
                let rows = lab
                    .chunks_mut(k)
                    .zip(sco.chunks_mut(k))
                    .zip(near.iter_mut());
                for (r, ((lrow, srow), nrow)) in rows.enumerate() {
                    *nrow = self.search_row(queries.row(first + r), params, scratch, lrow, srow);
                }
            };
        if n_rows <= BLOCK_ROWS {
            SCRATCH
                .with_borrow_mut(|s| search_block(s, 0, (&mut labels, &mut scores, &mut nearest)));
        } else {
            labels
                .par_chunks_mut(k * BLOCK_ROWS)
                .zip(scores.par_chunks_mut(k * BLOCK_ROWS))
                .zip(nearest.par_chunks_mut(BLOCK_ROWS))
                .enumerate()
                .for_each_init(Scratch::default, |s, (block, ((lab, sco), near))| {
                    search_block(s, block, (lab, sco, near))
                });
        }
        let top = TopK { k, labels, scores };
        Ok(Votes { top, nearest })
    }

    /// The output width after checking the arguments.
    fn check(&self, queries: &CsrView<'_>, params: &NeighbourParams) -> Result<usize> {
        params.validate()?;
        if queries.n_cols() != self.n_features() {
            return Err(PecosError::shape(
                "query features",
                self.n_features(),
                queries.n_cols(),
            ));
        }
        Ok(params.topk.min(self.n_labels()))
    }

    /// Writes the labels of one query into `labels` and `scores` (already padded); returns the
    /// similarity of its nearest text.
    fn search_row(
        &self,
        query: SparseRow<'_>,
        params: &NeighbourParams,
        s: &mut Scratch,
        labels: &mut [i64],
        scores: &mut [f32],
    ) -> f32 {
        s.fit(self.n_texts(), self.n_labels());
        let postings = self.postings.view();
        let lists = || query.iter().map(|(feature, q)| (postings.row(feature), q));
        s.best.reset(params.n_neighbours);
        let n_entries: usize = lists().map(|(list, _)| list.nnz()).sum();
        if n_entries >= self.n_texts() / DENSE_SCAN_FRACTION {
            // Most texts reached: sum without tracking them, then scan every text once in order
            // (cheaper than revisiting the reached ones in the order they were reached).
            for (list, q) in lists() {
                for (&text, &w) in list.indices.iter().zip(list.data) {
                    s.similarity[text as usize] += q * w;
                }
            }
            let n_texts = self.n_texts();
            for (block, chunk) in s.similarity[..n_texts].chunks_mut(SCAN_LANES).enumerate() {
                // Without a branch per text (vectorised): most blocks hold no candidate.
                let limit = s.best.limit;
                if chunk.iter().fold(false, |any, &v| any | (v > limit)) {
                    for (i, &v) in chunk.iter().enumerate() {
                        if v > s.best.limit {
                            s.best
                                .offer((block * SCAN_LANES + i) as u32, v.min(f32::MAX));
                        }
                    }
                }
                chunk.fill(0.0);
            }
        } else {
            // The texts reached, in order of first reach, without a branch per entry: a text is
            // written at the end of the list each time and kept there if its sum was 0 (it
            // would be kept again if its sum came back to exactly 0: the scan below zeroes it at
            // its first place, so its later places offer nothing).
            if s.texts.len() < n_entries {
                s.texts.resize(n_entries, 0);
            }
            let mut n_reached = 0;
            for (list, q) in lists() {
                for (&text, &w) in list.indices.iter().zip(list.data) {
                    let t = text as usize;
                    let sum = s.similarity[t];
                    s.texts[n_reached] = text as u32;
                    n_reached += usize::from(sum == 0.0);
                    s.similarity[t] = sum + q * w;
                }
            }
            for &text in &s.texts[..n_reached] {
                let t = text as usize;
                if s.similarity[t] > s.best.limit {
                    s.best.offer(text, s.similarity[t].min(f32::MAX));
                }
                s.similarity[t] = 0.0;
            }
        }
        s.best.sorted_into(&mut s.ranked);

        let text_labels = self.text_labels.view();
        // Votes relative to the nearest text's (the scores are relative anyway), so that no
        // power of a large similarity overflows: each vote is in (0, 1] times the share.
        let nearest = s.ranked.first().map_or(0.0, |&(_, v)| v);
        for &(text, similarity) in &s.ranked {
            let vote = (similarity / nearest).powf(params.power);
            let row = text_labels.row(text as usize);
            for (&label, &share) in row.indices.iter().zip(row.data) {
                let l = label as usize;
                if !s.label_seen[l] {
                    s.label_seen[l] = true;
                    s.labels.push(label as u32);
                }
                s.votes[l] += vote * share;
            }
        }
        s.best.reset(labels.len());
        for &label in &s.labels {
            let l = label as usize;
            if s.votes[l] > s.best.limit {
                s.best.offer(label, s.votes[l].min(f32::MAX));
            }
            s.votes[l] = 0.0;
            s.label_seen[l] = false;
        }
        s.labels.clear();
        s.best.sorted_into(&mut s.ranked);
        let best = s.ranked.first().map_or(1.0, |&(_, v)| v);
        for ((label, score), &(l, v)) in labels.iter_mut().zip(scores.iter_mut()).zip(&s.ranked) {
            *label = i64::from(l);
            *score = v / best;
        }
        nearest
    }
}

const MAGIC: &[u8; 8] = b"PECOSKNN";
/// Bump when the layout changes; loading refuses versions it does not know.
pub const NEIGHBOUR_FORMAT_VERSION: u32 = 1;

/// The sizes of the two matrices, and the caller's metadata.
#[derive(Serialize, Deserialize)]
struct Header {
    n_features: usize,
    n_texts: usize,
    n_labels: usize,
    postings_nnz: usize,
    text_labels_nnz: usize,
    /// Free-form metadata kept with the index (e.g. the Python wrapper's), opaque here.
    metadata: serde_json::Value,
}

impl Artifact for NeighbourIndex {
    /// Body: per matrix (postings, then text labels) its row pointers (u64), column indices
    /// (u32) and values (f32).
    fn to_bytes(&self, metadata: &serde_json::Value) -> Vec<u8> {
        let header = Header {
            n_features: self.n_features(),
            n_texts: self.n_texts(),
            n_labels: self.n_labels(),
            postings_nnz: self.postings().nnz(),
            text_labels_nnz: self.text_labels().nnz(),
            metadata: metadata.clone(),
        };
        let mut w = Writer::new(MAGIC, NEIGHBOUR_FORMAT_VERSION, &header, true);
        for m in [self.postings(), self.text_labels()] {
            // Validated matrices: row pointers and column indices are >= 0.
            let indptr: Vec<u64> = m.indptr().iter().map(|&p| p as u64).collect();
            let indices: Vec<u32> = m.indices().iter().map(|&j| j as u32).collect();
            w.u64s(&indptr);
            w.u32s(&indices);
            w.elements(m.data());
        }
        w.finish()
    }

    /// The file's size is checked against its header before anything is allocated, then both
    /// matrices as [`CsrMatrix::try_new`] and [`NeighbourIndex::try_new`] check them.
    fn from_bytes(bytes: &[u8]) -> Result<(Self, serde_json::Value)> {
        let file =
            envelope::open_version(bytes, MAGIC, "neighbour index", NEIGHBOUR_FORMAT_VERSION)?;
        let h: Header = file.header()?;
        let shapes = [
            (h.n_features, h.n_texts, h.postings_nnz),
            (h.n_texts, h.n_labels, h.text_labels_nnz),
        ];
        let mut layout = file.layout(true)?;
        for &(rows, _, nnz) in &shapes {
            layout
                .array(rows.saturating_add(1), 8)
                .array(nnz, 4)
                .array(nnz, 4);
        }
        let mut r = file.body(&layout)?;
        let invalid = |e: PecosError| PecosError::Format(format!("corrupt neighbour index: {e}"));
        let mut matrices = Vec::with_capacity(2);
        for &(rows, cols, nnz) in &shapes {
            // The layout matched the file size, so `rows + 1` does not overflow.
            let indptr = r
                .u64s(rows + 1)?
                .into_iter()
                .map(|p| {
                    i64::try_from(p).map_err(|_| PecosError::Format("row pointer overflows".into()))
                })
                .collect::<Result<Vec<_>>>()?;
            let indices = r
                .u32s(nnz)?
                .into_iter()
                .map(|j| {
                    i32::try_from(j)
                        .map_err(|_| PecosError::Format("column index overflows".into()))
                })
                .collect::<Result<Vec<_>>>()?;
            let data = r.elements::<f32>(nnz)?;
            matrices.push(CsrMatrix::try_new(rows, cols, indptr, indices, data).map_err(invalid)?);
        }
        let text_labels = matrices.pop();
        let postings = matrices.pop();
        match (postings, text_labels) {
            (Some(p), Some(t)) => Ok((Self::try_new(p, t).map_err(invalid)?, h.metadata)),
            _ => Err(PecosError::Format("corrupt neighbour index".into())),
        }
    }
}

/// The `n` best `(id, value)` pairs offered, highest value first and equal values by increasing
/// id: a total order, so the result does not depend on the order of the offers. Callers offer
/// only values above [`Best::limit`], which rises each time `2n` pairs are held and the worse
/// half is dropped, so that most candidates cost one comparison.
#[derive(Default)]
struct Best {
    n: usize,
    pairs: Vec<(u32, f32)>,
    /// 0 until `n` pairs were kept (only values > 0 count), then the float just below the worst
    /// kept value (an equal value may still win on its id).
    limit: f32,
}

fn best_first(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

impl Best {
    fn reset(&mut self, n: usize) {
        self.n = n;
        self.pairs.clear();
        self.limit = 0.0;
    }

    /// Offers a pair whose value is above [`Best::limit`] (so > 0).
    fn offer(&mut self, id: u32, value: f32) {
        self.pairs.push((id, value));
        if self.pairs.len() >= 2 * self.n {
            self.keep_n();
        }
    }

    /// Drops all but the `n` best pairs (n >= 1 when pairs are offered: the callers' `n` are
    /// a validated `n_neighbours` and an output width > 0).
    fn keep_n(&mut self) {
        if self.pairs.len() > self.n && self.n > 0 {
            self.pairs.select_nth_unstable_by(self.n - 1, best_first);
            self.pairs.truncate(self.n);
            // Values kept are > 0: the bits below a positive float's are the next float down.
            let worst = self.pairs[self.n - 1].1;
            self.limit = f32::from_bits(worst.to_bits() - 1);
        }
    }

    /// The `n` best pairs, best first, into `out`.
    fn sorted_into(&mut self, out: &mut Vec<(u32, f32)>) {
        self.keep_n();
        self.pairs.sort_unstable_by(best_first);
        out.clear();
        out.extend_from_slice(&self.pairs);
    }
}

/// Per-thread buffers of a search, all zero (or false, or empty) between queries; `texts` is
/// only written before it is read, so it keeps its length (the most entries a query reached).
#[derive(Default)]
struct Scratch {
    similarity: Vec<f32>,
    texts: Vec<u32>,
    votes: Vec<f32>,
    label_seen: Vec<bool>,
    labels: Vec<u32>,
    best: Best,
    ranked: Vec<(u32, f32)>,
}

impl Scratch {
    /// Grows the dense buffers to an index's sizes (kept between calls: they stay cleared).
    fn fit(&mut self, n_texts: usize, n_labels: usize) {
        if self.similarity.len() < n_texts {
            self.similarity.resize(n_texts, 0.0);
        }
        if self.votes.len() < n_labels {
            self.votes.resize(n_labels, 0.0);
            self.label_seen.resize(n_labels, false);
        }
    }
}

thread_local! {
    /// The buffers of small batches (a real-time query above all) on the calling thread, kept
    /// between calls so that a query allocates nothing once they have grown.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// texts: t0 = {f0: 1}, t1 = {f0: 0.6, f1: 0.8}, t2 = {f1: 1}; labels: t0 -> l0, t1 -> l1
    /// (0.5) and l2 (0.5), t2 -> l2.
    fn index() -> NeighbourIndex {
        let texts = CsrMatrix::from_rows(
            2,
            &[vec![(0, 1.0)], vec![(0, 0.6), (1, 0.8)], vec![(1, 1.0)]],
        )
        .unwrap();
        let (n_texts, n_features, indptr, indices, data) = texts.into_parts();
        let mut by_feature = vec![Vec::new(); n_features];
        for t in 0..n_texts {
            for p in indptr[t] as usize..indptr[t + 1] as usize {
                by_feature[indices[p] as usize].push((t, data[p]));
            }
        }
        let postings = CsrMatrix::from_rows(n_texts, &by_feature).unwrap();
        let labels = CsrMatrix::from_rows(
            3,
            &[vec![(0, 1.0)], vec![(1, 0.5), (2, 0.5)], vec![(2, 1.0)]],
        )
        .unwrap();
        NeighbourIndex::try_new(postings, labels).unwrap()
    }

    fn params(n_neighbours: usize, power: f32, topk: usize) -> NeighbourParams {
        NeighbourParams {
            n_neighbours,
            power,
            topk,
        }
    }

    #[test]
    fn votes_of_the_nearest_texts() {
        let q = CsrMatrix::from_rows(2, &[vec![(0, 1.0)]]).unwrap();
        // Similarities: t0 1.0, t1 0.6, t2 0. Votes (power 1): l0 1.0, l1 0.3, l2 0.3.
        let top = index().search(&q.view(), &params(3, 1.0, 3)).unwrap();
        assert_eq!(top.nearest, vec![1.0]);
        let top = top.top;
        assert_eq!(top.labels, vec![0, 1, 2]);
        assert_eq!(top.scores, vec![1.0, 0.3, 0.3]);
        // One neighbour: t0 only.
        let top = index().search(&q.view(), &params(1, 1.0, 3)).unwrap().top;
        assert_eq!(top.labels, vec![0, -1, -1]);
        assert_eq!(top.scores, vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn power_favours_the_closest_text() {
        // Similarities: t1 0.8, t2 1.0 (query f1) -> votes l1 0.4 * ..., l2 0.5*0.8^p + 1.
        let q = CsrMatrix::from_rows(2, &[vec![(1, 1.0)]]).unwrap();
        let votes = index().search(&q.view(), &params(5, 2.0, 2)).unwrap();
        assert_eq!(votes.nearest, vec![1.0]);
        let top = votes.top;
        assert_eq!(top.labels, vec![2, 1]);
        let l2 = 0.5 * 0.8f32.powf(2.0) + 1.0;
        let l1 = 0.5 * 0.8f32.powf(2.0);
        assert_eq!(top.scores, vec![1.0, l1 / l2]);
    }

    #[test]
    fn empty_query_and_checks() {
        let q = CsrMatrix::from_rows(2, &[vec![]]).unwrap();
        let votes = index().search(&q.view(), &params(5, 1.0, 10)).unwrap();
        assert_eq!(votes.nearest, vec![0.0]);
        let top = votes.top;
        assert_eq!(top.k, 3);
        assert_eq!(top.labels, vec![-1, -1, -1]);
        let wide = CsrMatrix::from_rows(3, &[vec![]]).unwrap();
        assert!(index().search(&wide.view(), &params(5, 1.0, 1)).is_err());
        for bad in [
            params(0, 1.0, 1),
            params(1, 0.0, 1),
            params(1, f32::NAN, 1),
            params(1, 1.0, 0),
        ] {
            assert!(index().search(&q.view(), &bad).is_err());
        }
        let labels = CsrMatrix::from_rows(3, &[vec![(0, 1.0)]]).unwrap();
        assert!(NeighbourIndex::try_new(index().postings.clone(), labels).is_err());
        let negative = CsrMatrix::from_rows(3, &[vec![(0, -1.0)], vec![], vec![]]).unwrap();
        assert!(NeighbourIndex::try_new(index().postings.clone(), negative).is_err());
    }

    #[test]
    fn huge_weights_give_finite_scores() {
        // Similarities of 1e38 * 1e38 overflow f32, and so would their powers and sums of
        // votes with huge shares: every score must still be finite, the best 1 (found by fuzzing).
        let postings = CsrMatrix::from_rows(3, &[vec![(0, 1e38), (1, 1e38), (2, 1.0)]]).unwrap();
        let labels = CsrMatrix::from_rows(
            2,
            &[vec![(0, 3e38)], vec![(0, 3e38), (1, 1.0)], vec![(1, 1.0)]],
        )
        .unwrap();
        let index = NeighbourIndex::try_new(postings, labels).unwrap();
        let q = CsrMatrix::from_rows(1, &[vec![(0, 1e38)], vec![(0, 1.0)]]).unwrap();
        let votes = index.search(&q.view(), &params(3, 8.0, 2)).unwrap();
        assert!(votes.nearest.iter().all(|v| v.is_finite()));
        let top = votes.top;
        assert!(top
            .scores
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        assert_eq!(top.labels[0], 0);
        assert_eq!(top.scores[0], 1.0);
        assert_eq!(top.scores[2], 1.0);
    }

    #[test]
    fn file_round_trip_and_corruption() {
        let meta = serde_json::json!({"owner": "test"});
        let bytes = index().to_bytes(&meta);
        let (back, m) = NeighbourIndex::from_bytes(&bytes).unwrap();
        assert_eq!(m, meta);
        assert_eq!(back.postings, index().postings);
        assert_eq!(back.text_labels, index().text_labels);
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(NeighbourIndex::from_bytes(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 1;
        assert!(NeighbourIndex::from_bytes(&flipped).is_err());
    }

    #[test]
    fn batch_equals_rows_one_by_one() {
        let rows: Vec<Vec<(usize, f32)>> = (0..200)
            .map(|i| match i % 4 {
                0 => vec![(0, 1.0)],
                1 => vec![(1, 0.5)],
                2 => vec![(0, 0.3), (1, 0.9)],
                _ => vec![],
            })
            .collect();
        let q = CsrMatrix::from_rows(2, &rows).unwrap();
        let p = params(2, 3.0, 2);
        let batch = index().search(&q.view(), &p).unwrap();
        for (i, row) in rows.iter().enumerate() {
            let one = CsrMatrix::from_rows(2, std::slice::from_ref(row)).unwrap();
            let single = index().search(&one.view(), &p).unwrap();
            assert_eq!(&batch.top.labels[2 * i..2 * i + 2], &single.top.labels[..]);
            assert_eq!(&batch.top.scores[2 * i..2 * i + 2], &single.top.scores[..]);
            assert_eq!(batch.nearest[i], single.nearest[0]);
        }
    }
}

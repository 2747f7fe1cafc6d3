//! The trained model: one [`Layer`] of linear scorers per tree layer, in a chunked sparse layout.
//!
//! Beam search asks one question over and over: "score every child of parent `p` for query `x`".
//! So the weights of a layer are stored per parent ("chunk"), in the doubly sparse layout of PECOS's
//! `BINARY_SEARCH_CHUNKED` (spec 2.2): a chunk lists only the features that have a nonzero weight
//! for at least one of its children (sorted), and for each such feature the (child slot, weight)
//! entries. Scoring marches the query's sorted features against the chunk's features and adds each
//! hit's entries into a small dense buffer of size `#children`.

use crate::chain::ChainLayer;
use crate::error::{PecosError, Result};
use crate::sparse::SparseRow;

/// The learned weights of one child: sorted feature ids, their weights, and the bias weight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChildWeights {
    pub features: Vec<u32>,
    pub values: Vec<f32>,
    pub bias: f32,
}

/// One tree layer: the children of each parent and their weights, chunked by parent.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub(crate) chain: ChainLayer,
    /// Rows of parent `p`'s chunk are `chunk_ptr[p]..chunk_ptr[p + 1]`.
    pub(crate) chunk_ptr: Vec<u64>,
    /// Entries of parent `p`'s chunk are `chunk_entry_ptr[p]..chunk_entry_ptr[p + 1]`.
    pub(crate) chunk_entry_ptr: Vec<u64>,
    /// Feature id of each chunk row, increasing within a chunk.
    pub(crate) row_feature: Vec<u32>,
    /// Row pointers of each chunk, relative to the chunk's first entry (so 32 bits suffice): chunk
    /// `p` owns `row_ptr[chunk_ptr[p] + p..=chunk_ptr[p + 1] + p]` (one more than its rows, the
    /// first 0), and its `k`-th row has entries `chunk_entry_ptr[p] + row_ptr[chunk_ptr[p] + p + k]`
    /// up to (excluding) `chunk_entry_ptr[p] + row_ptr[chunk_ptr[p] + p + k + 1]`.
    pub(crate) row_ptr: Vec<u32>,
    /// Child slot (position among the parent's children) of each entry.
    pub(crate) entry_slot: Vec<u32>,
    pub(crate) entry_value: Vec<f32>,
    /// Bias weight of each child, indexed by child id.
    pub(crate) bias_weight: Vec<f32>,
    /// Derived search index (not stored in files): every `SKIP`-th feature of each chunk, so that
    /// locating a query feature reads a small array that stays in cache plus one block of rows,
    /// instead of a binary search that misses the cache at every step on large chunks.
    skip: Vec<u32>,
    /// Entries of chunk `p` in `skip` are `skip_ptr[p]..skip_ptr[p + 1]`.
    skip_ptr: Vec<usize>,
}

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

/// Rows per block of the chunk search index (16 u32 features fill one 64-byte cache line).
const SKIP: usize = 16;

impl Layer {
    /// Assembles a layer from the weights of every child, given in the chain's parent-major child
    /// order (`weights[chain.children_offset(p) + slot]`).
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if the number of weight vectors differs from the number of
    /// children; as [`LayerBuilder::push_chunk`] otherwise.
    pub fn from_child_weights(chain: ChainLayer, weights: &[ChildWeights]) -> Result<Self> {
        if weights.len() != chain.n_children() {
            return Err(PecosError::shape(
                "child weight vectors",
                chain.n_children(),
                weights.len(),
            ));
        }
        let mut builder = LayerBuilder::new(chain);
        for p in 0..builder.chain.n_parents() {
            let offset = builder.chain.children_offset(p);
            let n = builder.chain.children(p).len();
            builder.push_chunk(&weights[offset..offset + n])?;
        }
        builder.finish()
    }

    /// Assembles a layer from its stored arrays and builds the derived search index. The arrays
    /// are not checked here; see [`Layer::validate`].
    pub(crate) fn with_index(chain: ChainLayer, arrays: LayerArrays) -> Self {
        let LayerArrays {
            chunk_ptr,
            chunk_entry_ptr,
            row_feature,
            row_ptr,
            entry_slot,
            entry_value,
            bias_weight,
        } = arrays;
        let mut skip = Vec::with_capacity(row_feature.len() / SKIP + chunk_ptr.len());
        let mut skip_ptr = Vec::with_capacity(chunk_ptr.len());
        skip_ptr.push(0);
        for w in chunk_ptr.windows(2) {
            // Out-of-range pointers (a corrupt file) give an empty index; validate() reports them.
            let rows = row_feature.get(w[0] as usize..w[1] as usize).unwrap_or(&[]);
            skip.extend(rows.iter().step_by(SKIP));
            skip_ptr.push(skip.len());
        }
        Layer {
            chain,
            chunk_ptr,
            chunk_entry_ptr,
            row_feature,
            row_ptr,
            entry_slot,
            entry_value,
            bias_weight,
            skip,
            skip_ptr,
        }
    }

    /// Rows of parent `p`'s chunk, as a range of `row_feature`.
    fn chunk_rows(&self, p: usize) -> std::ops::Range<usize> {
        self.chunk_ptr[p] as usize..self.chunk_ptr[p + 1] as usize
    }

    /// Entries of parent `p`'s chunk, as a range of `entry_slot` and `entry_value`.
    fn chunk_entries(&self, p: usize) -> std::ops::Range<usize> {
        self.chunk_entry_ptr[p] as usize..self.chunk_entry_ptr[p + 1] as usize
    }

    /// Parent `p`'s row pointers (one more than its rows), relative to its first entry.
    fn chunk_row_ptr(&self, p: usize) -> &[u32] {
        let rows = self.chunk_rows(p);
        &self.row_ptr[rows.start + p..=rows.end + p]
    }

    pub fn chain(&self) -> &ChainLayer {
        &self.chain
    }

    /// Number of stored weights, bias weights included when nonzero.
    pub fn nnz(&self) -> usize {
        self.entry_value.len() + self.bias_weight.iter().filter(|&&b| b != 0.0).count()
    }

    /// Sets `scores` to `copies` consecutive copies of the bias terms `bias * b_c` of `parent`'s
    /// children, in slot order: the starting point of every query's scores.
    fn init_scores(&self, parent: usize, copies: usize, bias: f32, scores: &mut Vec<f32>) {
        let children = self.chain.children(parent);
        scores.clear();
        for _ in 0..copies {
            scores.extend(
                children
                    .iter()
                    .map(|&c| bias * self.bias_weight[c as usize]),
            );
        }
    }

    /// A cursor locating increasing features among the rows of `parent`'s chunk.
    fn row_cursor(&self, parent: usize) -> RowCursor<'_> {
        RowCursor {
            rows: &self.row_feature[self.chunk_rows(parent)],
            skip: &self.skip[self.skip_ptr[parent]..self.skip_ptr[parent + 1]],
            next_block: 0,
        }
    }

    /// Raw scores `w_c · x + bias * b_c` of every child `c` of `parent`, written to
    /// `scratch.scores()[slot]`.
    ///
    /// The weights rarely fit in cache, so the time goes into memory misses: locating a query
    /// feature's row, reading its entry range, reading its entries. Each is a dependent miss; done
    /// one feature after the other they cost a full memory latency each. Done in three passes over
    /// all of the query's features instead (locate every row, then read every range, then every
    /// entry list), the misses of one pass are independent of each other and overlap.
    pub fn score_children(
        &self,
        parent: usize,
        query: SparseRow<'_>,
        bias: f32,
        scratch: &mut ScoreScratch,
    ) {
        let ScoreScratch {
            scores,
            hits,
            spans,
            ..
        } = scratch;
        self.init_scores(parent, 1, bias, scores);
        // Pass 1: the chunk row of every query feature present in the chunk.
        hits.clear();
        let mut rows = self.row_cursor(parent);
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
        let entries = self.chunk_entries(parent);
        let (slots, values) = (
            &self.entry_slot[entries.clone()],
            &self.entry_value[entries],
        );
        for &(e0, e1, xv) in spans.iter() {
            let (e0, e1) = (e0 as usize, e1 as usize);
            for (&slot, &w) in slots[e0..e1].iter().zip(&values[e0..e1]) {
                scores[slot as usize] += xv * w;
            }
        }
    }

    /// Raw scores of every child of `parent` for each of several `queries` at once:
    /// `scratch.scores()[i * n + slot]` for query `i`, with `n` the parent's number of children.
    ///
    /// The queries' features are merged into one increasing list first, so that the chunk is
    /// walked once, in order, and each of its rows is located and read once for all the queries
    /// that share its feature (queries reaching the same parent tend to share many). Every score
    /// receives its terms in the same order as in [`Layer::score_children`], so both give
    /// identical results.
    pub fn score_children_many(
        &self,
        parent: usize,
        queries: &[SparseRow<'_>],
        bias: f32,
        scratch: &mut ScoreScratch,
    ) {
        let ScoreScratch {
            scores,
            merged,
            spare,
            runs,
            ..
        } = scratch;
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
        let row_ptr = self.chunk_row_ptr(parent);
        let entries = self.chunk_entries(parent);
        let (slots, values) = (
            &self.entry_slot[entries.clone()],
            &self.entry_value[entries],
        );
        // Pass 1: the chunk row of each distinct feature, with its run of (query, value) items.
        runs.clear();
        let mut rows = self.row_cursor(parent);
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
        for &(k, r0, r1) in runs.iter() {
            let k = k as usize;
            let (e0, e1) = (row_ptr[k] as usize, row_ptr[k + 1] as usize);
            for &(key, xv) in &merged[r0 as usize..r1 as usize] {
                let out = &mut scores[(key as u32) as usize * n..][..n];
                for (&slot, &w) in slots[e0..e1].iter().zip(&values[e0..e1]) {
                    out[slot as usize] += xv * w;
                }
            }
        }
    }

    /// The weights as a CSC matrix of shape `(n_features + 1) x n_children` (PECOS's `W`; the last
    /// row holds the bias weights): `(indptr, indices, data)`.
    pub fn to_csc(&self, n_features: usize) -> (Vec<i64>, Vec<i32>, Vec<f32>) {
        let n_children = self.chain.n_children();
        let mut columns: Vec<Vec<(i32, f32)>> = vec![Vec::new(); n_children];
        for p in 0..self.chain.n_parents() {
            let children = self.chain.children(p);
            let row_ptr = self.chunk_row_ptr(p);
            let base = self.chunk_entry_ptr[p] as usize;
            for (k, r) in self.chunk_rows(p).enumerate() {
                for e in base + row_ptr[k] as usize..base + row_ptr[k + 1] as usize {
                    let child = children[self.entry_slot[e] as usize] as usize;
                    columns[child].push((self.row_feature[r] as i32, self.entry_value[e]));
                }
            }
        }
        let mut indptr = Vec::with_capacity(n_children + 1);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        indptr.push(0i64);
        for (child, col) in columns.into_iter().enumerate() {
            for (f, v) in col {
                indices.push(f);
                data.push(v);
            }
            let b = self.bias_weight[child];
            if b != 0.0 {
                indices.push(n_features as i32);
                data.push(b);
            }
            indptr.push(indices.len() as i64);
        }
        (indptr, indices, data)
    }

    /// Checks every structural invariant the scoring kernel relies on (used after loading a file).
    ///
    /// # Errors
    /// [`PecosError::Format`] naming the first violated invariant.
    pub fn validate(&self, n_features: usize) -> Result<()> {
        let bad = |what: &str| Err(PecosError::Format(format!("layer weights: {what}")));
        let n_rows = self.row_feature.len();
        if self.chunk_ptr.len() != self.chain.n_parents() + 1
            || self.chunk_ptr.first() != Some(&0)
            || self.chunk_ptr.last() != Some(&(n_rows as u64))
            || self.chunk_ptr.windows(2).any(|w| w[1] < w[0])
        {
            return bad("chunk pointers are inconsistent");
        }
        let n_entries = self.entry_slot.len();
        if self.chunk_entry_ptr.len() != self.chain.n_parents() + 1
            || self.chunk_entry_ptr.first() != Some(&0)
            || self.chunk_entry_ptr.last() != Some(&(n_entries as u64))
            || self.chunk_entry_ptr.windows(2).any(|w| w[1] < w[0])
            || self.entry_value.len() != n_entries
        {
            return bad("chunk entry pointers are inconsistent");
        }
        if self.row_ptr.len() != n_rows + self.chain.n_parents() {
            return bad("row pointers have the wrong length");
        }
        if self.bias_weight.len() != self.chain.n_children() {
            return bad("bias vector has the wrong length");
        }
        for p in 0..self.chain.n_parents() {
            let row_ptr = self.chunk_row_ptr(p);
            let entries = self.chunk_entries(p);
            if row_ptr.first() != Some(&0)
                || row_ptr.last().map(|&e| e as usize) != Some(entries.len())
                || row_ptr.windows(2).any(|w| w[1] < w[0])
            {
                return bad("row pointers are inconsistent");
            }
            let rows = &self.row_feature[self.chunk_rows(p)];
            if rows.windows(2).any(|w| w[1] <= w[0])
                || rows.iter().any(|&f| f as usize >= n_features)
            {
                return bad("chunk features are unsorted or out of range");
            }
            let n_slots = self.chain.children(p).len() as u32;
            if self.entry_slot[entries].iter().any(|&s| s >= n_slots) {
                return bad("entry refers to a child outside its parent");
            }
        }
        if self
            .entry_value
            .iter()
            .chain(&self.bias_weight)
            .any(|v| !v.is_finite())
        {
            return bad("non-finite weight");
        }
        Ok(())
    }
}

/// The stored arrays of a [`Layer`] (see its fields), as read from or written to a file.
pub(crate) struct LayerArrays {
    pub chunk_ptr: Vec<u64>,
    pub chunk_entry_ptr: Vec<u64>,
    pub row_feature: Vec<u32>,
    pub row_ptr: Vec<u32>,
    pub entry_slot: Vec<u32>,
    pub entry_value: Vec<f32>,
    pub bias_weight: Vec<f32>,
}

/// Builds a [`Layer`] one parent at a time, so that a trainer need not hold the weights of every
/// child of a layer at once.
pub struct LayerBuilder {
    chain: ChainLayer,
    arrays: LayerArrays,
    /// (feature, slot, weight) of the chunk being added; kept to reuse its allocation.
    triples: Vec<(u32, u32, f32)>,
}

impl LayerBuilder {
    pub fn new(chain: ChainLayer) -> Self {
        let arrays = LayerArrays {
            chunk_ptr: Vec::with_capacity(chain.n_parents() + 1),
            chunk_entry_ptr: Vec::with_capacity(chain.n_parents() + 1),
            row_feature: Vec::new(),
            row_ptr: Vec::new(),
            entry_slot: Vec::new(),
            entry_value: Vec::new(),
            bias_weight: vec![0f32; chain.n_children()],
        };
        let mut builder = LayerBuilder {
            chain,
            arrays,
            triples: Vec::new(),
        };
        builder.arrays.chunk_ptr.push(0);
        builder.arrays.chunk_entry_ptr.push(0);
        builder
    }

    /// Number of chunks added so far: the next one belongs to this parent.
    pub fn n_chunks(&self) -> usize {
        self.arrays.chunk_ptr.len() - 1
    }

    /// Adds the chunk of the next parent from the weights of its children, in slot order.
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if the number of weight vectors differs from the parent's
    /// number of children or every parent has its chunk already; [`PecosError::InvalidInput`] if
    /// the children hold more than `u32::MAX` weights together (the limit of the layout).
    pub fn push_chunk(&mut self, weights: &[ChildWeights]) -> Result<()> {
        let p = self.n_chunks();
        if p >= self.chain.n_parents() {
            return Err(PecosError::shape(
                "chunks of the layer",
                self.chain.n_parents(),
                p + 1,
            ));
        }
        let children = self.chain.children(p);
        if weights.len() != children.len() {
            return Err(PecosError::shape(
                "child weight vectors of a parent",
                children.len(),
                weights.len(),
            ));
        }
        let a = &mut self.arrays;
        let triples = &mut self.triples;
        triples.clear();
        for (slot, (cw, &child)) in weights.iter().zip(children).enumerate() {
            a.bias_weight[child as usize] = cw.bias;
            triples.extend(
                cw.features
                    .iter()
                    .zip(&cw.values)
                    .map(|(&f, &v)| (f, slot as u32, v)),
            );
        }
        if u32::try_from(triples.len()).is_err() {
            return Err(PecosError::InvalidInput(format!(
                "the children of parent {p} have {} weights together; at most {} are supported",
                triples.len(),
                u32::MAX
            )));
        }
        triples.sort_unstable_by_key(|&(f, slot, _)| (f, slot));
        a.row_ptr.push(0);
        for (i, &(f, slot, v)) in triples.iter().enumerate() {
            if i > 0 && triples[i - 1].0 != f {
                a.row_ptr.push(i as u32);
            }
            if i == 0 || triples[i - 1].0 != f {
                a.row_feature.push(f);
            }
            a.entry_slot.push(slot);
            a.entry_value.push(v);
        }
        if !triples.is_empty() {
            a.row_ptr.push(triples.len() as u32);
        }
        a.chunk_ptr.push(a.row_feature.len() as u64);
        a.chunk_entry_ptr.push(a.entry_slot.len() as u64);
        Ok(())
    }

    /// The layer, once every parent has its chunk.
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if some parents have no chunk yet.
    pub fn finish(self) -> Result<Layer> {
        if self.n_chunks() != self.chain.n_parents() {
            return Err(PecosError::shape(
                "chunks of the layer",
                self.chain.n_parents(),
                self.n_chunks(),
            ));
        }
        Ok(Layer::with_index(self.chain, self.arrays))
    }
}

/// Index of the first element of sorted `rows` that is `>= target` (exponential then binary search),
/// so that marching a sorted query through a chunk costs O(q log(R / q)).
#[inline]
fn gallop(rows: &[u32], target: u32) -> usize {
    let mut bound = 1usize;
    while bound < rows.len() && rows[bound - 1] < target {
        bound *= 2;
    }
    let lo = bound / 2;
    let hi = bound.min(rows.len());
    lo + rows[lo..hi].partition_point(|&f| f < target)
}

/// Locates features, given in increasing order, among a chunk's sorted rows: the search resumes
/// where the previous one ended (`next_block` is the first block of [`SKIP`] rows whose first
/// feature exceeds the previous feature), gallops over the block index, then scans one block.
struct RowCursor<'a> {
    rows: &'a [u32],
    skip: &'a [u32],
    next_block: usize,
}

impl RowCursor<'_> {
    /// `None` if `f` precedes every row of the chunk; otherwise `(k, found)`: row `k` holds `f`
    /// if `found`. The block scan is branch-free, so that its (often missing) data gates no jump.
    #[inline]
    fn seek(&mut self, f: u32) -> Option<(u32, bool)> {
        self.next_block += gallop(&self.skip[self.next_block..], f + 1);
        let start = self.next_block.checked_sub(1)? * SKIP;
        let block = &self.rows[start..(start + SKIP).min(self.rows.len())];
        let below = block.iter().filter(|&&g| g < f).count();
        Some(((start + below) as u32, block.contains(&f)))
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

/// A trained XR-Linear model: the layers from the root down to the labels.
#[derive(Clone, Debug, PartialEq)]
pub struct XLinearModel {
    pub(crate) n_features: usize,
    pub(crate) bias: f32,
    pub(crate) layers: Vec<Layer>,
}

impl XLinearModel {
    /// # Errors
    /// [`PecosError::Format`] if the layers do not form a chain from a single root.
    pub fn new(n_features: usize, bias: f32, layers: Vec<Layer>) -> Result<Self> {
        if layers.is_empty() {
            return Err(PecosError::Format(
                "a model needs at least one layer".into(),
            ));
        }
        let mut n_parents = 1;
        for (t, layer) in layers.iter().enumerate() {
            if layer.chain.n_parents() != n_parents {
                return Err(PecosError::Format(format!(
                    "layer {t} has {} parents but the layer above has {n_parents} nodes",
                    layer.chain.n_parents()
                )));
            }
            layer.validate(n_features)?;
            n_parents = layer.chain.n_children();
        }
        if !bias.is_finite() {
            return Err(PecosError::Format("bias is not finite".into()));
        }
        Ok(XLinearModel {
            n_features,
            bias,
            layers,
        })
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_labels(&self) -> usize {
        self.layers.last().map_or(0, |l| l.chain.n_children())
    }

    pub fn bias(&self) -> f32 {
        self.bias
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    pub fn nnz(&self) -> usize {
        self.layers.iter().map(Layer::nnz).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_layer() -> Layer {
        let chain = ChainLayer::try_new(vec![0, 1, 0], 2).unwrap();
        // parent-major order: parent 0 -> children [0, 2], parent 1 -> [1]
        let w = vec![
            ChildWeights {
                features: vec![0, 3],
                values: vec![1.0, 2.0],
                bias: 0.5,
            },
            ChildWeights {
                features: vec![3],
                values: vec![-1.0],
                bias: 0.0,
            },
            ChildWeights {
                features: vec![1],
                values: vec![4.0],
                bias: -1.0,
            },
        ];
        Layer::from_child_weights(chain, &w).unwrap()
    }

    #[test]
    fn scores_children_of_a_parent() {
        let layer = toy_layer();
        layer.validate(4).unwrap();
        let q = SparseRow {
            indices: &[0, 1, 3],
            data: &[1.0, 0.5, 2.0],
        };
        let mut scratch = ScoreScratch::default();
        layer.score_children(0, q, 1.0, &mut scratch);
        assert_eq!(scratch.scores(), [1.0 + 4.0 + 0.5, -2.0]);
        layer.score_children(1, q, 1.0, &mut scratch);
        assert_eq!(scratch.scores(), [2.0 - 1.0]);
    }

    #[test]
    fn row_pointers_are_relative_to_each_chunk() {
        let layer = toy_layer();
        // chunk 0: feature 0 (1 entry), feature 3 (2 entries); chunk 1: feature 1 (1 entry).
        assert_eq!(layer.chunk_ptr, vec![0, 2, 3]);
        assert_eq!(layer.chunk_entry_ptr, vec![0, 3, 4]);
        assert_eq!(layer.row_ptr, vec![0, 1, 3, 0, 1]);
    }

    #[test]
    fn builder_checks_the_number_of_chunks_and_children() {
        let chain = ChainLayer::try_new(vec![0, 1, 0], 2).unwrap();
        let mut b = LayerBuilder::new(chain);
        assert!(b.push_chunk(&[ChildWeights::default()]).is_err()); // parent 0 has 2 children
        b.push_chunk(&[ChildWeights::default(), ChildWeights::default()])
            .unwrap();
        let mut early = LayerBuilder::new(b.chain.clone());
        early
            .push_chunk(&[ChildWeights::default(), ChildWeights::default()])
            .unwrap();
        assert!(early.finish().is_err()); // parent 1 has no chunk
        b.push_chunk(&[ChildWeights::default()]).unwrap();
        assert!(b.push_chunk(&[ChildWeights::default()]).is_err()); // no parent 2
        let layer = b.finish().unwrap();
        layer.validate(1).unwrap();
        assert_eq!(layer.row_ptr, vec![0, 0]);
    }

    #[test]
    fn csc_export_places_bias_last() {
        let (indptr, indices, data) = toy_layer().to_csc(4);
        assert_eq!(indptr, vec![0, 3, 5, 6]);
        assert_eq!(indices, vec![0, 3, 4, 1, 4, 3]);
        assert_eq!(data, vec![1.0, 2.0, 0.5, 4.0, -1.0, -1.0]);
    }

    #[test]
    fn block_search_matches_dense_scoring_on_large_chunks() {
        use crate::rng::SplitMix64;
        let mut rng = SplitMix64::new(5);
        let (n_features, n_children) = (500, 3);
        let chain = ChainLayer::try_new(vec![0; n_children], 1).unwrap();
        let mut dense = vec![vec![0f32; n_features]; n_children];
        let weights: Vec<ChildWeights> = dense
            .iter_mut()
            .map(|w| {
                let mut cw = ChildWeights::default();
                let features: Vec<usize> = (0..n_features).filter(|_| rng.below(3) == 0).collect();
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
            layer.score_children(0, *row, 0.5, &mut scratch);
            let out = scratch.scores();
            for (c, w) in dense.iter().enumerate() {
                let dot: f32 = idx.iter().zip(val).map(|(&f, &v)| w[f as usize] * v).sum();
                let expected = dot + 0.5 * weights[c].bias;
                assert!((out[c] - expected).abs() < 1e-3, "{} vs {expected}", out[c]);
            }
            one_by_one.extend_from_slice(out);
        }
        // Scoring the queries together gives bit-identical scores (same order of additions).
        layer.score_children_many(0, &rows, 0.5, &mut scratch);
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

    #[test]
    fn gallop_finds_lower_bound() {
        let rows = [1, 3, 5, 7, 9, 11, 13];
        for t in 0..15 {
            assert_eq!(gallop(&rows, t), rows.partition_point(|&f| f < t), "{t}");
        }
        assert_eq!(gallop(&[], 3), 0);
    }
}

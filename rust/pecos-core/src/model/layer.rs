//! One tree layer of the model: its chain layer, its stored weight arrays and the derived search
//! index, with the structural checks a loaded file must pass and the export to PECOS's CSC `W`.

use super::row_index::RowIndex;
use super::storage::{LayerArrays, WeightDtype};
use crate::error::{PecosError, Result};
use crate::index::ChainLayer;
use std::sync::OnceLock;

/// The learned weights of one child: sorted feature ids, their weights, and the bias weight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChildWeights {
    pub features: Vec<u32>,
    pub values: Vec<f32>,
    pub bias: f32,
}

/// One tree layer: the children of each parent and their weights, chunked by parent.
///
/// The weights of a layer are stored per parent ("chunk"), in the doubly sparse layout of PECOS's
/// `BINARY_SEARCH_CHUNKED` (spec 2.2): a chunk lists only the features that have a nonzero weight
/// for at least one of its children (sorted), and for each such feature the (child slot, weight)
/// entries; see `LayerArrays` for the arrays.
#[derive(Clone, Debug)]
pub struct Layer {
    pub(super) chain: ChainLayer,
    pub(super) arrays: LayerArrays,
    /// Derived, per parent, once its chunk has been checked (see [`Layer::row_index`]): the
    /// chunk's search index, which locates a query feature among its rows in about one cache
    /// miss (see `row_index`); or why the chunk is invalid.
    chunk_index: Box<[OnceLock<ChunkCheck>]>,
    /// Derived: per parent, the bias weight all its children share, if they share one (every
    /// label of an exact matcher has bias weight 0); see [`Layer::shared_bias`].
    shared_bias: Vec<Option<f32>>,
}

/// Layers are equal when their chains and arrays are: the rest is derived from those (and may
/// be built already or not, see `Layer::row_index`).
impl PartialEq for Layer {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain && self.arrays == other.arrays
    }
}

/// The outcome of checking a chunk: its search index, or what is wrong with it.
type ChunkCheck = std::result::Result<RowIndex, String>;

/// The value every child of `parent` has in `per_child`, if they all have the same bits (`None`
/// for no children, or for indices out of range: a corrupt file, which validate() reports).
fn shared_value(chain: &ChainLayer, per_child: &[f32], parent: usize) -> Option<f32> {
    let mut values = chain
        .children(parent)
        .iter()
        .map(|&c| per_child.get(c as usize).map(|v| v.to_bits()));
    let first = values.next()??;
    values
        .all(|v| v == Some(first))
        .then_some(f32::from_bits(first))
}

impl Layer {
    /// Assembles a layer from its stored arrays. The arrays are not checked here; see
    /// [`Layer::validate`] and [`Layer::validate_layout`].
    pub(crate) fn from_arrays(chain: ChainLayer, arrays: LayerArrays) -> Self {
        let shared_bias = (0..chain.n_parents())
            .map(|p| shared_value(&chain, &arrays.bias_weight, p))
            .collect();
        Layer {
            chunk_index: (0..chain.n_parents()).map(|_| OnceLock::new()).collect(),
            chain,
            arrays,
            shared_bias,
        }
    }

    /// The search index of parent `p`'s chunk, checking the chunk first if this is its first use
    /// (a memory-mapped layer is checked chunk by chunk as predictions reach them; any other
    /// layer was checked whole by [`Layer::validate`] when its model was made). The layer's
    /// layout passed [`Layer::validate_layout`] (every layer of a model did).
    ///
    /// # Errors
    /// [`PecosError::Format`] if `p` is not a parent or its chunk is invalid.
    pub(super) fn row_index(&self, p: usize) -> Result<&RowIndex> {
        let index = self
            .chunk_index
            .get(p)
            .ok_or_else(|| PecosError::Format(format!("layer weights: no parent {p}")))?;
        match index.get_or_init(|| self.check_chunk(p)) {
            Ok(index) => Ok(index),
            Err(what) => Err(PecosError::Format(format!(
                "layer weights: {what} (chunk of parent {p})"
            ))),
        }
    }

    /// Checks parent `p`'s chunk against every invariant the kernels rely on, and builds its
    /// search index.
    fn check_chunk(&self, p: usize) -> ChunkCheck {
        let row_ptr = self.chunk_row_ptr(p);
        let entries = self.chunk_entries(p);
        if row_ptr.first() != Some(&0)
            || row_ptr.last().map(|&e| e as usize) != Some(entries.len())
            || row_ptr.windows(2).any(|w| w[1] < w[0])
        {
            return Err("row pointers are inconsistent".into());
        }
        let rows = &self.arrays.row_feature[self.chunk_rows(p)];
        if rows.windows(2).any(|w| w[1] <= w[0]) {
            return Err("chunk features are unsorted".into());
        }
        let n_slots = self.chain.children(p).len();
        if !self.arrays.entry_slot.all_below(entries.clone(), n_slots) {
            return Err("entry refers to a child outside its parent".into());
        }
        if !self.arrays.entry_value.are_valid(entries) {
            return Err("non-finite weight (or an int8 weight of -128)".into());
        }
        Ok(RowIndex::new(rows))
    }

    /// The bias weight shared (bit for bit) by every child of parent `p`, if they share one: a
    /// child no query feature reaches then starts and ends at the same raw score as its siblings.
    pub fn shared_bias(&self, p: usize) -> Option<f32> {
        self.shared_bias.get(p).copied().flatten()
    }

    /// The stored arrays (what a model file holds of this layer).
    pub(crate) fn arrays(&self) -> &LayerArrays {
        &self.arrays
    }

    /// Rows of parent `p`'s chunk, as a range of `row_feature`.
    pub(super) fn chunk_rows(&self, p: usize) -> std::ops::Range<usize> {
        self.arrays.chunk_ptr[p] as usize..self.arrays.chunk_ptr[p + 1] as usize
    }

    /// How the weights are stored (float32 as trained, or compacted).
    pub fn weight_dtype(&self) -> WeightDtype {
        self.arrays.entry_value.dtype()
    }

    /// Entries of parent `p`'s chunk, as a range of `entry_slot` and `entry_value`.
    pub(super) fn chunk_entries(&self, p: usize) -> std::ops::Range<usize> {
        self.arrays.chunk_entry_ptr[p] as usize..self.arrays.chunk_entry_ptr[p + 1] as usize
    }

    /// Parent `p`'s row pointers (one more than its rows), relative to its first entry.
    pub(super) fn chunk_row_ptr(&self, p: usize) -> &[u32] {
        let rows = self.chunk_rows(p);
        &self.arrays.row_ptr[rows.start + p..=rows.end + p]
    }

    pub fn chain(&self) -> &ChainLayer {
        &self.chain
    }

    /// Number of stored weights, bias weights included when nonzero.
    pub fn nnz(&self) -> usize {
        self.arrays.entry_value.len()
            + self
                .arrays
                .bias_weight
                .iter()
                .filter(|&&b| b != 0.0)
                .count()
    }

    /// The weights of parent `p`'s children (`p < chain().n_parents()`), in slot order, each
    /// child's features increasing: the inverse of `LayerBuilder::push_chunk`.
    ///
    /// # Errors
    /// As [`Layer::row_index`].
    pub(crate) fn chunk_child_weights(&self, p: usize) -> Result<Vec<ChildWeights>> {
        self.row_index(p)?;
        let children = self.chain.children(p);
        let mut weights: Vec<ChildWeights> = children
            .iter()
            .map(|&child| ChildWeights {
                bias: self.arrays.bias_weight[child as usize],
                ..ChildWeights::default()
            })
            .collect();
        let row_ptr = self.chunk_row_ptr(p);
        let base = self.arrays.chunk_entry_ptr[p] as usize;
        for (k, r) in self.chunk_rows(p).enumerate() {
            let feature = self.arrays.row_feature[r];
            for e in base + row_ptr[k] as usize..base + row_ptr[k + 1] as usize {
                let slot = self.arrays.entry_slot.get(e);
                let cw = &mut weights[slot];
                cw.features.push(feature);
                cw.values
                    .push(self.arrays.entry_value.get(e, children[slot] as usize));
            }
        }
        Ok(weights)
    }

    /// The weights as a CSC matrix of shape `(n_features + 1) x n_children` (PECOS's `W`; the last
    /// row holds the bias weights): `(indptr, indices, data)`.
    ///
    /// # Errors
    /// [`PecosError::Format`] for an invalid chunk of a memory-mapped layer (see
    /// [`crate::io::load_mapped`]) or a feature outside `0..n_features`.
    pub fn to_csc(&self, n_features: usize) -> Result<(Vec<i64>, Vec<i32>, Vec<f32>)> {
        let n_children = self.chain.n_children();
        let mut columns: Vec<ChildWeights> = vec![ChildWeights::default(); n_children];
        for p in 0..self.chain.n_parents() {
            let children = self.chain.children(p);
            for (&child, cw) in children.iter().zip(self.chunk_child_weights(p)?) {
                if cw.features.iter().any(|&f| f as usize >= n_features) {
                    return Err(PecosError::Format(
                        "layer weights: chunk features are out of range".into(),
                    ));
                }
                columns[child as usize] = cw;
            }
        }
        let mut indptr = Vec::with_capacity(n_children + 1);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        indptr.push(0i64);
        for cw in columns {
            indices.extend(cw.features.iter().map(|&f| f as i32));
            data.extend_from_slice(&cw.values);
            if cw.bias != 0.0 {
                indices.push(n_features as i32);
                data.push(cw.bias);
            }
            indptr.push(indices.len() as i64);
        }
        Ok((indptr, indices, data))
    }

    /// Checks every structural invariant the scoring kernel relies on, reading every array
    /// (used after reading a file, and for every model made in memory).
    ///
    /// # Errors
    /// [`PecosError::Format`] naming the first violated invariant.
    pub fn validate(&self, n_features: usize) -> Result<()> {
        self.validate_layout()?;
        for p in 0..self.chain.n_parents() {
            self.row_index(p)?;
        }
        if self
            .arrays
            .row_feature
            .iter()
            .any(|&f| f as usize >= n_features)
        {
            return Err(PecosError::Format(
                "layer weights: chunk features are out of range".into(),
            ));
        }
        Ok(())
    }

    /// The checks of [`Layer::validate`] that do not read the chunks: the lengths of the arrays,
    /// the chunk pointers and the bias weights. A memory-mapped layer passes these at load and
    /// the checks of each chunk at its first use ([`Layer::row_index`]), so that loading does
    /// not read every weight. Its features are checked against the model's number of features
    /// only when exported ([`Layer::to_csc`]): when scoring, a feature outside that range is never
    /// met (the queries' features are inside it).
    ///
    /// # Errors
    /// [`PecosError::Format`] naming the first violated invariant.
    pub(crate) fn validate_layout(&self) -> Result<()> {
        let bad = |what: &str| Err(PecosError::Format(format!("layer weights: {what}")));
        let n_rows = self.arrays.row_feature.len();
        if self.arrays.chunk_ptr.len() != self.chain.n_parents() + 1
            || self.arrays.chunk_ptr.first() != Some(&0)
            || self.arrays.chunk_ptr.last() != Some(&(n_rows as u64))
            || self.arrays.chunk_ptr.windows(2).any(|w| w[1] < w[0])
        {
            return bad("chunk pointers are inconsistent");
        }
        let n_entries = self.arrays.entry_slot.len();
        if self.arrays.chunk_entry_ptr.len() != self.chain.n_parents() + 1
            || self.arrays.chunk_entry_ptr.first() != Some(&0)
            || self.arrays.chunk_entry_ptr.last() != Some(&(n_entries as u64))
            || self.arrays.chunk_entry_ptr.windows(2).any(|w| w[1] < w[0])
            || self.arrays.entry_value.len() != n_entries
        {
            return bad("chunk entry pointers are inconsistent");
        }
        if self.arrays.row_ptr.len() != n_rows + self.chain.n_parents() {
            return bad("row pointers have the wrong length");
        }
        if self.arrays.bias_weight.len() != self.chain.n_children() {
            return bad("bias vector has the wrong length");
        }
        if self.arrays.bias_weight.iter().any(|v| !v.is_finite()) {
            return bad("non-finite weight");
        }
        if let Some(scale) = self.arrays.entry_value.scale() {
            if scale.len() != self.chain.n_children() {
                return bad("scale vector has the wrong length");
            }
            // Compaction writes scale = max |w| / 127, so scale * 127 is a finite weight.
            if scale
                .iter()
                .any(|&s| !(s >= 0.0 && (s * 127.0).is_finite()))
            {
                return bad("scale is negative or not finite");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::model) fn toy_layer() -> Layer {
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
    fn row_pointers_are_relative_to_each_chunk() {
        let layer = toy_layer();
        // chunk 0: feature 0 (1 entry), feature 3 (2 entries); chunk 1: feature 1 (1 entry).
        assert_eq!(layer.arrays.chunk_ptr, vec![0, 2, 3]);
        assert_eq!(layer.arrays.chunk_entry_ptr, vec![0, 3, 4]);
        assert_eq!(layer.arrays.row_ptr, vec![0, 1, 3, 0, 1]);
    }

    #[test]
    fn chunk_child_weights_invert_the_builder() {
        let layer = toy_layer();
        let chain = layer.chain().clone();
        let weights: Vec<ChildWeights> = (0..chain.n_parents())
            .flat_map(|p| layer.chunk_child_weights(p).unwrap())
            .collect();
        assert_eq!(Layer::from_child_weights(chain, &weights).unwrap(), layer);
    }

    #[test]
    fn csc_export_places_bias_last() {
        let (indptr, indices, data) = toy_layer().to_csc(4).unwrap();
        assert_eq!(indptr, vec![0, 3, 5, 6]);
        assert_eq!(indices, vec![0, 3, 4, 1, 4, 3]);
        assert_eq!(data, vec![1.0, 2.0, 0.5, 4.0, -1.0, -1.0]);
    }
}

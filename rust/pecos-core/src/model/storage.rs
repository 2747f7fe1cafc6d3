//! The storage boundary of the model: every array a layer keeps, in the one type that files are
//! written from and read into ([`crate::io`] sees nothing else of a [`super::Layer`]). The arrays
//! are owned today; a memory-mapped model changes what backs them here and nowhere else.

/// The stored arrays of one layer of `n_parents` chunks over `n_children` children.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LayerArrays {
    /// Rows of parent `p`'s chunk are `chunk_ptr[p]..chunk_ptr[p + 1]`.
    pub chunk_ptr: Vec<u64>,
    /// Entries of parent `p`'s chunk are `chunk_entry_ptr[p]..chunk_entry_ptr[p + 1]`.
    pub chunk_entry_ptr: Vec<u64>,
    /// Feature id of each chunk row, increasing within a chunk.
    pub row_feature: Vec<u32>,
    /// Row pointers of each chunk, relative to the chunk's first entry (so 32 bits suffice): chunk
    /// `p` owns `row_ptr[chunk_ptr[p] + p..=chunk_ptr[p + 1] + p]` (one more than its rows, the
    /// first 0), and its `k`-th row has entries `chunk_entry_ptr[p] + row_ptr[chunk_ptr[p] + p + k]`
    /// up to (excluding) `chunk_entry_ptr[p] + row_ptr[chunk_ptr[p] + p + k + 1]`.
    pub row_ptr: Vec<u32>,
    /// Child slot (position among the parent's children) of each entry.
    pub entry_slot: Vec<u32>,
    pub entry_value: Vec<f32>,
    /// Bias weight of each child, indexed by child id.
    pub bias_weight: Vec<f32>,
}

impl LayerArrays {
    /// Number of chunk rows (distinct features over all chunks).
    pub fn n_rows(&self) -> usize {
        self.row_feature.len()
    }

    /// Number of (child slot, weight) entries.
    pub fn n_entries(&self) -> usize {
        self.entry_value.len()
    }
}

//! Assembling a layer's arrays from the weights of its children, one parent at a time.

use super::layer::{ChildWeights, Layer};
use super::storage::{LayerArrays, Slots, Weights};
use crate::error::{PecosError, Result};
use crate::index::ChainLayer;
use crate::sparse::CsrView;

impl Layer {
    /// Assembles a layer from the weights of every child, given in the chain's parent-major child
    /// order (`weights[chain.children_offset(p) + slot]`).
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if the number of weight vectors differs from the number of
    /// children; as `LayerBuilder::push_chunk` otherwise.
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
}

impl Layer {
    /// Assembles a layer from PECOS's `W` of the layer given by columns: `w` is the CSR view of
    /// `W^T`, one row per child (node id order), columns `0..n_features` the feature weights and
    /// column `n_features` the bias weight. The inverse of [`Layer::to_csc`]; zeros are dropped.
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if `w` is not `n_children x (n_features + 1)`; as
    /// [`Layer::from_child_weights`] otherwise.
    pub fn from_weight_columns(chain: ChainLayer, n_features: usize, w: &CsrView) -> Result<Self> {
        if w.n_rows() != chain.n_children() {
            return Err(PecosError::shape(
                "weight columns (children)",
                chain.n_children(),
                w.n_rows(),
            ));
        }
        if w.n_cols() != n_features + 1 {
            return Err(PecosError::shape(
                "weight rows (features + bias)",
                n_features + 1,
                w.n_cols(),
            ));
        }
        let weights: Vec<ChildWeights> = (0..chain.n_parents())
            .flat_map(|p| chain.children(p))
            .map(|&child| {
                let mut cw = ChildWeights::default();
                for (f, v) in w.row(child as usize).iter().filter(|&(_, v)| v != 0.0) {
                    if f == n_features {
                        cw.bias = v;
                    } else {
                        cw.features.push(f as u32);
                        cw.values.push(v);
                    }
                }
                cw
            })
            .collect();
        Self::from_child_weights(chain, &weights)
    }
}

/// Builds a [`Layer`] one parent at a time, so that a trainer need not hold the weights of every
/// child of a layer at once.
pub struct LayerBuilder {
    chain: ChainLayer,
    arrays: LayerArrays,
    /// The entries' slots and weights so far (32-bit slots, float32 weights: a trained layer).
    entry_slot: Vec<u32>,
    entry_value: Vec<f32>,
    /// (feature, slot, weight) of the chunk being added; kept to reuse its allocation.
    triples: Vec<(u32, u32, f32)>,
}

impl LayerBuilder {
    pub fn new(chain: ChainLayer) -> Self {
        let arrays = LayerArrays {
            chunk_ptr: vec![0].into(),
            chunk_entry_ptr: vec![0].into(),
            bias_weight: vec![0f32; chain.n_children()].into(),
            ..LayerArrays::default()
        };
        LayerBuilder {
            chain,
            arrays,
            entry_slot: Vec::new(),
            entry_value: Vec::new(),
            triples: Vec::new(),
        }
    }

    /// As [`LayerBuilder::new`], with room for `n_rows` chunk rows and `n_entries` entries in
    /// all (for a layer whose size is known, which then takes no more memory than it needs).
    pub fn with_capacity(chain: ChainLayer, n_rows: usize, n_entries: usize) -> Self {
        let mut builder = Self::new(chain);
        let a = &mut builder.arrays;
        a.chunk_ptr
            .to_mut()
            .reserve_exact(builder.chain.n_parents());
        a.chunk_entry_ptr
            .to_mut()
            .reserve_exact(builder.chain.n_parents());
        a.row_feature.to_mut().reserve_exact(n_rows);
        a.row_ptr
            .to_mut()
            .reserve_exact(n_rows + builder.chain.n_parents());
        builder.entry_slot.reserve_exact(n_entries);
        builder.entry_value.reserve_exact(n_entries);
        builder
    }

    /// Number of chunks added so far: the next one belongs to this parent.
    pub fn n_chunks(&self) -> usize {
        self.arrays.chunk_ptr.len() - 1
    }

    /// The next parent, once checked to have `n_children` children (a chunk of weights for them
    /// comes next).
    fn next_parent(&self, n_children: usize) -> Result<usize> {
        let p = self.n_chunks();
        if p >= self.chain.n_parents() {
            return Err(PecosError::shape(
                "chunks of the layer",
                self.chain.n_parents(),
                p + 1,
            ));
        }
        let children = self.chain.children(p).len();
        if n_children != children {
            return Err(PecosError::shape(
                "child weight vectors of a parent",
                children,
                n_children,
            ));
        }
        Ok(p)
    }

    /// Adds, as the chunk of the next parent, the chunk of parent `q` of `layer` as it is (the
    /// same weights of children in the same slots): a layer made of the chunks of others, each
    /// copied once, without regrouping its weights by child.
    ///
    /// # Errors
    /// As [`LayerBuilder::push_chunk`]; [`PecosError::InvalidInput`] if `layer`'s weights are
    /// compacted (only float32 layers, as trained, are copied) or `q` is not one of its parents.
    pub fn push_chunk_of(&mut self, layer: &Layer, q: usize) -> Result<()> {
        let (Slots::U32(slots), Weights::F32(values)) =
            (&layer.arrays.entry_slot, &layer.arrays.entry_value)
        else {
            return Err(PecosError::InvalidInput(
                "only float32 layers (as trained) can be copied chunk by chunk".into(),
            ));
        };
        if q >= layer.chain.n_parents() {
            return Err(PecosError::InvalidInput(format!(
                "no parent {q} in a layer of {} parents",
                layer.chain.n_parents()
            )));
        }
        let from_children = layer.chain.children(q);
        let p = self.next_parent(from_children.len())?;
        let a = &mut self.arrays;
        let bias_weight = a.bias_weight.to_mut();
        for (&to, &from) in self.chain.children(p).iter().zip(from_children) {
            bias_weight[to as usize] = layer.arrays.bias_weight[from as usize];
        }
        let entries = layer.chunk_entries(q);
        a.row_feature
            .to_mut()
            .extend_from_slice(&layer.arrays.row_feature[layer.chunk_rows(q)]);
        a.row_ptr.to_mut().extend_from_slice(layer.chunk_row_ptr(q));
        self.entry_slot.extend_from_slice(&slots[entries.clone()]);
        self.entry_value.extend_from_slice(&values[entries]);
        a.chunk_ptr.to_mut().push(a.row_feature.len() as u64);
        a.chunk_entry_ptr
            .to_mut()
            .push(self.entry_slot.len() as u64);
        Ok(())
    }

    /// Adds the chunk of the next parent from the weights of its children, in slot order.
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if the number of weight vectors differs from the parent's
    /// number of children or every parent has its chunk already; [`PecosError::InvalidInput`] if
    /// the children hold more than `u32::MAX` weights together (the limit of the layout).
    pub fn push_chunk(&mut self, weights: &[ChildWeights]) -> Result<()> {
        let p = self.next_parent(weights.len())?;
        let children = self.chain.children(p);
        let a = &mut self.arrays;
        let triples = &mut self.triples;
        triples.clear();
        let bias_weight = a.bias_weight.to_mut();
        for (slot, (cw, &child)) in weights.iter().zip(children).enumerate() {
            bias_weight[child as usize] = cw.bias;
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
        let (row_ptr, row_feature) = (a.row_ptr.to_mut(), a.row_feature.to_mut());
        let (entry_slot, entry_value) = (&mut self.entry_slot, &mut self.entry_value);
        row_ptr.push(0);
        let n_features = triples.iter().map(|t| t.0 as usize + 1).max().unwrap_or(0);
        if triples.len() >= n_features {
            // As many weights as feature ids (an exact matcher over every label: millions of
            // weights): bucketed by feature in linear passes instead of sorted. The triples come
            // in slot order, which each bucket keeps, so the entries are the same.
            let mut next = vec![0usize; n_features];
            for t in triples.iter() {
                next[t.0 as usize] += 1;
            }
            let mut end = 0;
            for (f, n) in next.iter_mut().enumerate() {
                if *n > 0 {
                    row_feature.push(f as u32);
                    (*n, end) = (end, end + *n);
                    row_ptr.push(end as u32);
                }
            }
            let base = entry_slot.len();
            entry_slot.resize(base + triples.len(), 0);
            entry_value.resize(base + triples.len(), 0.0);
            for &(f, slot, v) in triples.iter() {
                let at = &mut next[f as usize];
                entry_slot[base + *at] = slot;
                entry_value[base + *at] = v;
                *at += 1;
            }
        } else {
            triples.sort_unstable_by_key(|&(f, slot, _)| (f, slot));
            for (i, &(f, slot, v)) in triples.iter().enumerate() {
                if i > 0 && triples[i - 1].0 != f {
                    row_ptr.push(i as u32);
                }
                if i == 0 || triples[i - 1].0 != f {
                    row_feature.push(f);
                }
                entry_slot.push(slot);
                entry_value.push(v);
            }
            if !triples.is_empty() {
                row_ptr.push(triples.len() as u32);
            }
        }
        a.chunk_ptr.to_mut().push(row_feature.len() as u64);
        a.chunk_entry_ptr.to_mut().push(entry_slot.len() as u64);
        Ok(())
    }

    /// The layer, once every parent has its chunk.
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if some parents have no chunk yet.
    pub fn finish(mut self) -> Result<Layer> {
        if self.n_chunks() != self.chain.n_parents() {
            return Err(PecosError::shape(
                "chunks of the layer",
                self.chain.n_parents(),
                self.n_chunks(),
            ));
        }
        self.arrays.entry_slot = Slots::U32(self.entry_slot.into());
        self.arrays.entry_value = Weights::F32(self.entry_value.into());
        Ok(Layer::from_arrays(self.chain, self.arrays))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WeightDtype;

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
        assert_eq!(layer.arrays.row_ptr, vec![0, 0]);
    }

    #[test]
    fn dense_and_sparse_chunks_keep_every_weight() {
        // 40 children over 6 features: as many weights as feature ids, so bucketed; the same
        // children over features 1000 apart: sorted. Both must give the children back.
        for spacing in [1u32, 1000] {
            let weights: Vec<ChildWeights> = (0..40u32)
                .map(|c| {
                    let features: Vec<u32> = (0..6)
                        .filter(|f| (c + f) % 3 != 0)
                        .map(|f| f * spacing)
                        .collect();
                    let values = features.iter().map(|&f| (c * 7 + f) as f32 + 0.5).collect();
                    ChildWeights {
                        features,
                        values,
                        bias: c as f32,
                    }
                })
                .collect();
            let chain = ChainLayer::try_new(vec![0; 40], 1).unwrap();
            let layer = Layer::from_child_weights(chain, &weights).unwrap();
            layer.validate(5 * spacing as usize + 1).unwrap();
            assert_eq!(layer.chunk_child_weights(0).unwrap(), weights);
        }
    }

    #[test]
    fn chunks_copied_in_another_order_keep_their_weights() {
        // Children 0 and 2 under parent 0, child 1 under parent 1; 3 features + bias.
        let chain = ChainLayer::try_new(vec![0, 1, 0], 2).unwrap();
        let w = CsrView::try_new(
            3,
            4,
            &[0, 2, 3, 5],
            &[0, 3, 1, 0, 2],
            &[0.5, -1.0, 2.0, 0.25, 0.75],
        )
        .unwrap();
        let layer = Layer::from_weight_columns(chain.clone(), 3, &w).unwrap();
        let mut same = LayerBuilder::with_capacity(chain, 3, 3);
        same.push_chunk_of(&layer, 0).unwrap();
        same.push_chunk_of(&layer, 1).unwrap();
        assert_eq!(same.finish().unwrap(), layer);
        // The parents swapped: parent 0 now has the one child (1) and takes the old chunk 1.
        let swapped = ChainLayer::try_new(vec![1, 0, 1], 2).unwrap();
        let mut b = LayerBuilder::new(swapped);
        assert!(b.push_chunk_of(&layer, 0).is_err()); // 2 children's weights for 1 child
        assert!(b.push_chunk_of(&layer, 2).is_err()); // no parent 2
        b.push_chunk_of(&layer, 1).unwrap();
        b.push_chunk_of(&layer, 0).unwrap();
        let moved = b.finish().unwrap();
        moved.validate(3).unwrap();
        assert_eq!(
            moved.chunk_child_weights(0).unwrap(),
            layer.chunk_child_weights(1).unwrap()
        );
        assert_eq!(
            moved.chunk_child_weights(1).unwrap(),
            layer.chunk_child_weights(0).unwrap()
        );
        let compact = layer.compacted(WeightDtype::Float16).unwrap();
        let mut b = LayerBuilder::new(compact.chain.clone());
        assert!(b.push_chunk_of(&compact, 0).is_err()); // only float32 layers are copied
    }

    #[test]
    fn weight_columns_round_trip_through_to_csc() {
        // Children 0 and 2 under parent 0, child 1 under parent 1; 3 features + bias.
        let chain = ChainLayer::try_new(vec![0, 1, 0], 2).unwrap();
        let indptr = [0i64, 2, 3, 5];
        let indices = [0i32, 3, 1, 0, 2];
        let data = [0.5f32, -1.0, 2.0, 0.25, 0.75];
        let w = CsrView::try_new(3, 4, &indptr, &indices, &data).unwrap();
        let layer = Layer::from_weight_columns(chain.clone(), 3, &w).unwrap();
        layer.validate(3).unwrap();
        let (p, i, d) = layer.to_csc(3).unwrap();
        assert_eq!(
            (p.as_slice(), i.as_slice(), d.as_slice()),
            (&indptr[..], &indices[..], &data[..])
        );
        let narrow = CsrView::try_new(3, 3, &indptr, &[0, 2, 1, 0, 2], &data).unwrap();
        assert!(Layer::from_weight_columns(chain, 3, &narrow).is_err());
    }
}

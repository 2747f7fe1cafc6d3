//! Compact weights: a trained model's weights stored in fewer bits, float16 or 8-bit integers
//! with one scale per child, which the kernels then score as they are; and the child slots of its
//! entries in the narrowest integer type that its parent with the most children allows (a lossless
//! change: 8 bits for up to 256 children, 16 for up to 65536).
//!
//! For a weight `w` of child `c` and the weight `w'` the kernels use instead:
//! - float16 rounds to nearest (ties to even): `|w - w'| <= max(|w| * 2^-11, 2^-25)` for
//!   `|w| <= 65504` (larger weights are refused);
//! - int8 stores `q = round(w / scale_c)` (ties to even) with `scale_c = max |w| over c / 127`
//!   (in float32), and the kernels multiply the dot product of `q` by `scale_c` once:
//!   `|w - scale_c * q| <= scale_c * (1/2 + 2^-17)` (the `2^-17` bounds the rounding of `w /
//!   scale_c`).
//!
//! So a child's raw score `w_c · x + bias * b_c` moves by at most the sum over the query's
//! features of `|x_f|` times that bound (bias weights stay float32), plus the float32 rounding of
//! the dot product.

use super::storage::{LayerArrays, Slots, WeightDtype, Weights};
use super::{Layer, XLinearModel};
use crate::error::{PecosError, Result};
use half::f16;
use rayon::prelude::*;

impl Layer {
    /// This layer with its weights stored as `dtype` and its slots in the narrowest type. A layer
    /// of that dtype already only has its slots narrowed (the same weights).
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for compact weights of another dtype (their float32 weights
    /// are gone); [`PecosError::InvalidInput`] for a weight outside float16's range;
    /// [`PecosError::Format`] for an invalid chunk of a memory-mapped layer.
    pub fn compacted(&self, dtype: WeightDtype) -> Result<Layer> {
        for p in 0..self.chain.n_parents() {
            self.row_index(p)?;
        }
        let a = &self.arrays;
        let entry_value = match (&a.entry_value, dtype) {
            (values, dtype) if values.dtype() == dtype => values.clone(),
            (Weights::F32(w), WeightDtype::Float16) => Weights::F16(to_float16(w)?.into()),
            (Weights::F32(w), WeightDtype::Int8) => self.to_int8(w),
            (values, _) => {
                return Err(PecosError::param(
                    "weight_dtype",
                    format!(
                        "cannot be {} for a model whose weights are {} already (its float32 \
                         weights are gone): compact the float32 model instead",
                        dtype.name(),
                        values.dtype().name()
                    ),
                ))
            }
        };
        let most_children = (0..self.chain.n_parents())
            .map(|p| self.chain.children(p).len())
            .max()
            .unwrap_or(0);
        let slots = a.entry_slot.to_indices(0..a.n_entries());
        let arrays = LayerArrays {
            chunk_ptr: a.chunk_ptr.clone(),
            chunk_entry_ptr: a.chunk_entry_ptr.clone(),
            row_feature: a.row_feature.clone(),
            row_ptr: a.row_ptr.clone(),
            entry_slot: Slots::narrowest(&slots, most_children),
            entry_value,
            bias_weight: a.bias_weight.clone(),
        };
        Ok(Layer::from_arrays(self.chain.clone(), arrays))
    }

    /// The int8 weights of float32 weights `w` (this layer's): per child, `scale = max |w| / 127`
    /// and `q = round(w / scale)`, ties to even (0 for a child without weights).
    fn to_int8(&self, w: &[f32]) -> Weights {
        let mut max_abs = vec![0f32; self.chain.n_children()];
        let entry_child = self.entry_children();
        for (&c, &v) in entry_child.iter().zip(w) {
            max_abs[c] = max_abs[c].max(v.abs());
        }
        let scale: Vec<f32> = max_abs.iter().map(|&m| m / 127.0).collect();
        let q: Vec<i8> = entry_child
            .iter()
            .zip(w)
            .map(|(&c, &v)| {
                if scale[c] > 0.0 {
                    // In range but for the rounding of a subnormal scale, which the clamp covers.
                    (v / scale[c]).round_ties_even().clamp(-127.0, 127.0) as i8
                } else {
                    0
                }
            })
            .collect();
        Weights::I8 {
            q: q.into(),
            scale: scale.into(),
        }
    }

    /// The child id of every entry, in entry order.
    fn entry_children(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.arrays.n_entries());
        for p in 0..self.chain.n_parents() {
            let children = self.chain.children(p);
            let slots = self.arrays.entry_slot.to_indices(self.chunk_entries(p));
            out.extend(slots.iter().map(|&s| children[s] as usize));
        }
        out
    }
}

/// The float16 weights nearest to `w` (ties to even).
///
/// # Errors
/// [`PecosError::InvalidInput`] for a weight beyond float16's largest finite value.
fn to_float16(w: &[f32]) -> Result<Vec<f16>> {
    w.iter()
        .map(|&v| {
            let h = f16::from_f32(v);
            if h.is_finite() {
                Ok(h)
            } else {
                Err(PecosError::InvalidInput(format!(
                    "a weight of {v} is outside float16's range (|w| <= 65504): compact to int8 \
                     instead"
                )))
            }
        })
        .collect()
}

impl XLinearModel {
    /// This model with every layer's weights stored as `dtype` (see [`Layer::compacted`]).
    ///
    /// # Errors
    /// As [`Layer::compacted`].
    pub fn compacted(&self, dtype: WeightDtype) -> Result<XLinearModel> {
        let layers = self
            .layers
            .par_iter()
            .map(|layer| layer.compacted(dtype))
            .collect::<Result<Vec<_>>>()?;
        XLinearModel::new(self.n_features, self.bias, layers)
    }

    /// How the weights are stored: float32 as trained, or the dtype of [`XLinearModel::compacted`]
    /// (of the first layer: compaction gives every layer the same).
    pub fn weight_dtype(&self) -> WeightDtype {
        self.layers
            .first()
            .map_or(WeightDtype::Float32, Layer::weight_dtype)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::index::ChainLayer;
    use crate::model::{ChildWeights, ScoreScratch};
    use crate::rng::SplitMix64;
    use crate::sparse::SparseRow;

    /// A random layer of two parents: one with `big` children, one with 3; weights of both signs
    /// over 400 features, a few of them tiny (float16 subnormals), and bias weights.
    pub(crate) fn random_layer(big: usize, seed: u64) -> Layer {
        let mut rng = SplitMix64::new(seed);
        let parent_of: Vec<u32> = (0..big + 3).map(|c| u32::from(c >= big)).collect();
        let chain = ChainLayer::try_new(parent_of, 2).unwrap();
        let weights: Vec<ChildWeights> = (0..big + 3)
            .map(|_| {
                let mut cw = ChildWeights {
                    bias: rng.below(5) as f32 / 4.0 - 0.5,
                    ..ChildWeights::default()
                };
                let features: Vec<u32> = (0..400).filter(|_| rng.below(4) == 0).collect();
                for f in features {
                    let magnitude = if rng.below(20) == 0 { 1e-6 } else { 3.0 };
                    cw.features.push(f);
                    cw.values
                        .push(magnitude * (rng.below(2001) as f32 / 1000.0 - 1.0));
                }
                cw
            })
            .collect();
        Layer::from_child_weights(chain, &weights).unwrap()
    }

    /// The largest change of a weight of each child (by child id) that `dtype` allows.
    fn weight_error_bound(layer: &Layer, dtype: WeightDtype) -> Vec<f32> {
        let chain = layer.chain();
        let mut bound = vec![0f32; chain.n_children()];
        for p in 0..chain.n_parents() {
            for (&c, cw) in chain
                .children(p)
                .iter()
                .zip(layer.chunk_child_weights(p).unwrap())
            {
                let max_abs = cw.values.iter().fold(0f32, |m, v| m.max(v.abs()));
                bound[c as usize] = match dtype {
                    WeightDtype::Float32 => 0.0,
                    WeightDtype::Float16 => (max_abs * 2f32.powi(-11)).max(2f32.powi(-25)),
                    WeightDtype::Int8 => max_abs / 127.0 * (0.5 + 2f32.powi(-17)),
                };
            }
        }
        bound
    }

    #[test]
    fn compact_scores_stay_within_the_error_bound() {
        let layer = random_layer(300, 3);
        let mut rng = SplitMix64::new(4);
        let queries: Vec<(Vec<i32>, Vec<f32>)> = (0..30)
            .map(|_| {
                let idx: Vec<i32> = (0..400).filter(|_| rng.below(8) == 0).collect();
                let val = idx
                    .iter()
                    .map(|_| rng.below(1000) as f32 / 500.0 - 1.0)
                    .collect();
                (idx, val)
            })
            .collect();
        let rows: Vec<SparseRow<'_>> = queries
            .iter()
            .map(|(indices, data)| SparseRow { indices, data })
            .collect();
        let mut exact = ScoreScratch::default();
        let mut compact = ScoreScratch::default();
        for dtype in [
            WeightDtype::Float32,
            WeightDtype::Float16,
            WeightDtype::Int8,
        ] {
            let small = layer.compacted(dtype).unwrap();
            small.validate(400).unwrap();
            assert_eq!(small.weight_dtype(), dtype);
            assert_eq!(small.nnz(), layer.nnz());
            let bound = weight_error_bound(&layer, dtype);
            for p in 0..2 {
                let children = layer.chain().children(p);
                let mut one_by_one = Vec::new();
                for row in &rows {
                    layer.score_children(p, *row, 0.5, &mut exact).unwrap();
                    small.score_children(p, *row, 0.5, &mut compact).unwrap();
                    let x_l1: f32 = row.data.iter().map(|v| v.abs()).sum();
                    for (slot, &c) in children.iter().enumerate() {
                        let (e, s) = (exact.scores()[slot], compact.scores()[slot]);
                        // The bound, plus float32 rounding of the dot products (|x|_1 * 3 bounds
                        // sum |x_f w_f|).
                        let allowed = x_l1 * bound[c as usize] + 1e-5 * (x_l1 * 3.0 + 1.0);
                        assert!((e - s).abs() <= allowed, "{dtype:?} {e} vs {s} ({allowed})");
                        if dtype == WeightDtype::Float32 {
                            assert_eq!(e.to_bits(), s.to_bits());
                        }
                    }
                    one_by_one.extend_from_slice(compact.scores());
                }
                small
                    .score_children_many(p, &rows, 0.5, &mut compact)
                    .unwrap();
                assert_eq!(compact.scores(), one_by_one, "{dtype:?}");
            }
        }
    }

    #[test]
    fn slots_take_the_narrowest_type_of_the_largest_parent() {
        for (n_children, width) in [(256, 1), (257, 2), (65_536, 2), (65_537, 4)] {
            // One parent; its last child has one weight, so that there is a slot to store.
            let chain = ChainLayer::try_new(vec![0; n_children], 1).unwrap();
            let mut weights = vec![ChildWeights::default(); n_children];
            weights[n_children - 1].features.push(0);
            weights[n_children - 1].values.push(1.0);
            let layer = Layer::from_child_weights(chain, &weights)
                .unwrap()
                .compacted(WeightDtype::Float32)
                .unwrap();
            assert_eq!(layer.arrays().entry_slot.get(0), n_children - 1);
            let found = match layer.arrays().entry_slot {
                Slots::U8(_) => 1,
                Slots::U16(_) => 2,
                Slots::U32(_) => 4,
            };
            assert_eq!(found, width, "{n_children}");
        }
    }

    #[test]
    fn int8_weights_follow_the_rule() {
        let layer = random_layer(5, 7);
        let small = layer.compacted(WeightDtype::Int8).unwrap();
        let Weights::I8 { q, scale } = &small.arrays().entry_value else {
            panic!("not int8");
        };
        assert!(q.iter().all(|&v| v > i8::MIN) && q.iter().any(|&v| v.abs() == 127));
        for p in 0..2 {
            let children = layer.chain().children(p);
            let trained = layer.chunk_child_weights(p).unwrap();
            let compact = small.chunk_child_weights(p).unwrap();
            for ((&c, t), s) in children.iter().zip(&trained).zip(&compact) {
                let sc = scale[c as usize];
                assert_eq!(
                    sc,
                    t.values.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0
                );
                assert_eq!((&t.features, t.bias), (&s.features, s.bias));
                for (&w, &got) in t.values.iter().zip(&s.values) {
                    assert_eq!(got, sc * (w / sc).round_ties_even());
                }
            }
        }
    }

    #[test]
    fn compacting_again_keeps_the_dtype_or_is_refused() {
        let layer = random_layer(5, 2);
        let f16 = layer.compacted(WeightDtype::Float16).unwrap();
        assert_eq!(f16.compacted(WeightDtype::Float16).unwrap(), f16);
        for other in [WeightDtype::Float32, WeightDtype::Int8] {
            assert!(matches!(
                f16.compacted(other),
                Err(PecosError::InvalidParam { name, .. }) if name == "weight_dtype"
            ));
        }
        let chain = ChainLayer::try_new(vec![0], 1).unwrap();
        let huge = ChildWeights {
            features: vec![0],
            values: vec![70_000.0],
            bias: 0.0,
        };
        let layer = Layer::from_child_weights(chain, &[huge]).unwrap();
        assert!(matches!(
            layer.compacted(WeightDtype::Float16),
            Err(PecosError::InvalidInput(m)) if m.contains("float16")
        ));
        assert!(layer.compacted(WeightDtype::Int8).is_ok());
    }

    #[test]
    fn dtype_names_round_trip_and_others_are_refused() {
        for dtype in [
            WeightDtype::Float32,
            WeightDtype::Float16,
            WeightDtype::Int8,
        ] {
            assert_eq!(WeightDtype::from_name(dtype.name()).unwrap(), dtype);
        }
        assert!(matches!(
            WeightDtype::from_name("int4"),
            Err(PecosError::InvalidParam { name, .. }) if name == "weight_dtype"
        ));
    }
}

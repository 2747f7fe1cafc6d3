//! Pruning: which weights of a scorer are kept in the model, applied once by training to each
//! solved scorer and again, at a stricter setting, by [`XLinearModel::pruned`] to a trained model.
//!
//! Both go through [`Pruning::apply`], so a model pruned after training holds exactly the weights
//! of a model trained with the stricter setting from the same solver output: the rule keeps the
//! weights with `|w| >= threshold`, then, under a cap, the largest `|w|` (ties to the lower
//! feature id, the bias last), and both steps commute with a previous looser pruning.

use crate::error::Result;
use crate::model::{ChildWeights, Layer, WeightDtype, XLinearModel};
use crate::params::{Params, Value};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Stands for the bias among the feature ids competing for a capped scorer's slots: above every
/// real feature id, so on equal `|w|` the bias loses to any feature.
const BIAS_ID: u32 = u32::MAX;

/// How a scorer's weights are pruned.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pruning {
    /// Weights with `|w| < threshold` are dropped (the bias weight included).
    pub threshold: f32,
    /// Keep at most this many weights per scorer (the bias counts as one), largest `|w|` first;
    /// 0 keeps all.
    pub max_nonzeros_per_label: usize,
}

impl Default for Pruning {
    fn default() -> Self {
        Pruning {
            threshold: 0.1,
            max_nonzeros_per_label: 0,
        }
    }
}

impl Pruning {
    /// Reads `threshold` (a finite number >= 0) and `max_nonzeros_per_label` (None: no cap, or an
    /// integer >= 1): the estimator's names.
    ///
    /// # Errors
    /// [`crate::PecosError::InvalidParam`] naming the first invalid parameter.
    pub fn from_params(p: &mut Params) -> Result<Self> {
        Ok(Pruning {
            threshold: p.real("threshold", false)?,
            max_nonzeros_per_label: p.count_or("max_nonzeros_per_label", 1, 0)?,
        })
    }

    /// Checks a setting built in Rust, in the words of [`Pruning::from_params`].
    ///
    /// # Errors
    /// [`crate::PecosError::InvalidParam`] naming the first invalid parameter.
    pub fn validate(&self) -> Result<()> {
        let cap = self.max_nonzeros_per_label;
        let mut p = Params::new([
            ("threshold".to_string(), Value::Float(self.threshold.into())),
            (
                "max_nonzeros_per_label".to_string(),
                if cap == 0 {
                    Value::None
                } else {
                    Value::Int(cap as i128)
                },
            ),
        ]);
        Self::from_params(&mut p).map(drop)
    }

    /// The kept weights of one scorer, from its `(global feature id, weight)` pairs (distinct
    /// ids, any order; zeros are never kept) and its bias weight.
    pub(crate) fn apply(
        &self,
        weights: impl IntoIterator<Item = (u32, f32)>,
        bias_weight: f32,
    ) -> ChildWeights {
        let t = self.threshold;
        let mut kept: Vec<(u32, f32)> = weights
            .into_iter()
            .filter(|&(_, v)| v.abs() >= t && v != 0.0)
            .collect();
        let mut bias = if bias_weight.abs() >= t {
            bias_weight
        } else {
            0.0
        };
        let cap = self.max_nonzeros_per_label;
        if cap > 0 && kept.len() + usize::from(bias != 0.0) > cap {
            if bias != 0.0 {
                kept.push((BIAS_ID, bias));
            }
            // A total order (ids are distinct), so the kept set does not depend on the input order.
            kept.select_nth_unstable_by(cap - 1, |a, b| {
                b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0))
            });
            kept.truncate(cap);
            bias = kept.iter().find(|e| e.0 == BIAS_ID).map_or(0.0, |e| e.1);
            kept.retain(|e| e.0 != BIAS_ID);
        }
        kept.sort_unstable_by_key(|e| e.0);
        ChildWeights {
            features: kept.iter().map(|e| e.0).collect(),
            values: kept.iter().map(|e| e.1).collect(),
            bias,
        }
    }

    /// Prunes every scorer of `layer`, rebuilding its chunks.
    fn apply_to_layer(&self, layer: &Layer) -> Result<Layer> {
        let chain = layer.chain();
        let per_parent: Vec<Vec<ChildWeights>> = (0..chain.n_parents())
            .into_par_iter()
            .map(|p| {
                Ok(layer
                    .chunk_child_weights(p)?
                    .into_iter()
                    .map(|cw| {
                        let pairs = cw.features.iter().copied().zip(cw.values.iter().copied());
                        self.apply(pairs, cw.bias)
                    })
                    .collect())
            })
            .collect::<Result<_>>()?;
        Layer::from_child_weights(chain.clone(), &per_parent.concat())
    }
}

/// Keeps the weights of a solved scorer that survive pruning, mapped from the solver's local
/// feature ids (positions in `features`) back to global ones.
pub(super) fn prune_solution(
    w: &[f32],
    bias_w: f32,
    features: &[u32],
    pruning: &Pruning,
) -> ChildWeights {
    pruning.apply(features.iter().copied().zip(w.iter().copied()), bias_w)
}

impl XLinearModel {
    /// A smaller model: this one with every scorer pruned again by `pruning`, without retraining.
    /// Runs in the current rayon pool; the result does not depend on its size.
    ///
    /// A threshold at or above the one used in training and a cap at or below it (or a cap where
    /// training had none) give exactly the model that training with `pruning` would have given
    /// from the same solver output (the same model whenever the solves do not depend on pruning:
    /// teacher-forced negatives only; matcher-aware negatives come from the pruned upper layers).
    /// A looser setting keeps the trained weights: dropped weights cannot come back.
    ///
    /// # Errors
    /// [`crate::PecosError::InvalidParam`] for an invalid `pruning`, or for a model whose weights
    /// were compacted ([`XLinearModel::compacted`]): pruning applies the training rule to the
    /// trained float32 weights, so prune first, then compact.
    pub fn pruned(&self, pruning: &Pruning) -> Result<XLinearModel> {
        pruning.validate()?;
        let dtype = self.weight_dtype();
        if dtype != WeightDtype::Float32 {
            return Err(crate::PecosError::param(
                "prune",
                format!(
                    "needs the trained float32 weights, but this model's are {}: prune the model \
                     before compacting it",
                    dtype.name()
                ),
            ));
        }
        let layers = self
            .layers()
            .iter()
            .map(|layer| pruning.apply_to_layer(layer))
            .collect::<Result<Vec<_>>>()?;
        XLinearModel::new(self.n_features(), self.bias(), layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_caps_nonzeros_with_bias_competing() {
        let pruning = Pruning {
            threshold: 0.1,
            max_nonzeros_per_label: 2,
        };
        let cw = prune_solution(&[0.05, -0.9, 0.3, 0.5], 0.7, &[10, 11, 12, 13], &pruning);
        assert_eq!(cw.features, vec![11]);
        assert_eq!(cw.values, vec![-0.9]);
        assert_eq!(cw.bias, 0.7);
    }

    #[test]
    fn equal_weights_go_to_the_lower_feature_then_the_bias_last() {
        let pruning = Pruning {
            threshold: 0.0,
            max_nonzeros_per_label: 2,
        };
        let cw = prune_solution(&[0.5, -0.5, 0.5], 0.5, &[7, 3, 5], &pruning);
        assert_eq!(
            (cw.features, cw.values, cw.bias),
            (vec![3, 5], vec![-0.5, 0.5], 0.0)
        );
    }

    #[test]
    fn pruning_twice_equals_pruning_once_at_the_stricter_setting() {
        let w: Vec<f32> = (0..40)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 20.0)
            .collect();
        let features: Vec<u32> = (0..40).map(|i| (i * 7 % 40) as u32).collect();
        let first = Pruning {
            threshold: 0.05,
            max_nonzeros_per_label: 30,
        };
        for (threshold, cap) in [(0.05, 30), (0.2, 0), (0.2, 10), (0.45, 3), (0.1, 1)] {
            let cap = if cap == 0 { 30 } else { cap };
            let second = Pruning {
                threshold,
                max_nonzeros_per_label: cap,
            };
            let once = prune_solution(&w, 0.3, &features, &second);
            let looser = prune_solution(&w, 0.3, &features, &first);
            let pairs = looser
                .features
                .iter()
                .copied()
                .zip(looser.values.iter().copied());
            assert_eq!(second.apply(pairs, looser.bias), once, "{threshold} {cap}");
        }
    }

    #[test]
    fn invalid_settings_are_refused() {
        for threshold in [f32::NAN, -0.1, f32::INFINITY] {
            let pruning = Pruning {
                threshold,
                ..Pruning::default()
            };
            assert!(pruning.validate().is_err(), "{threshold}");
        }
    }
}

//! Pruning: the weights of a solved scorer that are kept in the model.

use crate::model::ChildWeights;
use crate::train::TrainParams;

/// Keeps the weights that survive pruning, mapped back to global feature ids.
pub(super) fn prune(
    w: &[f32],
    bias_w: f32,
    features: &[u32],
    params: &TrainParams,
) -> ChildWeights {
    let t = params.threshold;
    let mut kept: Vec<(u32, f32)> = w
        .iter()
        .zip(features)
        .filter(|(v, _)| v.abs() >= t && **v != 0.0)
        .map(|(&v, &f)| (f, v))
        .collect();
    let mut bias = if bias_w.abs() >= t { bias_w } else { 0.0 };
    let cap = params.max_nonzeros_per_label;
    if cap > 0 && kept.len() + usize::from(bias != 0.0) > cap {
        // The bias competes with the feature weights for the kept slots (u32::MAX marks it).
        if bias != 0.0 {
            kept.push((u32::MAX, bias));
        }
        kept.select_nth_unstable_by(cap - 1, |a, b| {
            b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0))
        });
        kept.truncate(cap);
        bias = kept.iter().find(|e| e.0 == u32::MAX).map_or(0.0, |e| e.1);
        kept.retain(|e| e.0 != u32::MAX);
        kept.sort_unstable_by_key(|e| e.0);
    }
    ChildWeights {
        features: kept.iter().map(|e| e.0).collect(),
        values: kept.iter().map(|e| e.1).collect(),
        bias,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_caps_nonzeros_with_bias_competing() {
        let params = TrainParams {
            threshold: 0.1,
            max_nonzeros_per_label: 2,
            ..TrainParams::default()
        };
        let cw = prune(&[0.05, -0.9, 0.3, 0.5], 0.7, &[10, 11, 12, 13], &params);
        assert_eq!(cw.features, vec![11]);
        assert_eq!(cw.values, vec![-0.9]);
        assert_eq!(cw.bias, 0.7);
    }
}

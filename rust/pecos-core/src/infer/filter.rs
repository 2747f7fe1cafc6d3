//! Restricting beam search to part of the label space: a [`NodeFilter`] says which nodes a query's
//! beam may enter. [`LabelRangeFilter`] keeps each query to one range of label ids (with labels
//! sorted, the labels starting with a typed prefix are one such range), entering a node only if
//! some label under it is in the range, with the per-node label sets of [`LabelSets`].

use crate::model::Layer;
use std::ops::Range;

/// Which nodes a query's beam may enter.
pub trait NodeFilter {
    /// Whether query `q` may enter `node`, a child of layer `layer` (a node at depth
    /// `layer + 1`; a label at the last layer).
    fn accepts(&self, q: usize, layer: usize, node: u32) -> bool;
}

/// Every node is open.
pub struct Unfiltered;

impl NodeFilter for Unfiltered {
    #[inline(always)]
    fn accepts(&self, _: usize, _: usize, _: u32) -> bool {
        true
    }
}

/// The labels under every node of every layer, sorted, so that "does this node hold a label in
/// `lo..hi`?" is one binary search. Layer `t`'s node `c` (depth `t + 1`) holds
/// `labels[t][ptr[t][c]..ptr[t][c + 1]]`; each layer lists every label once, so the whole takes
/// `n_labels * depth` ids. The last layer's nodes are the labels themselves and are not stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSets {
    ptr: Vec<Vec<u32>>,
    labels: Vec<Vec<u32>>,
}

impl LabelSets {
    /// The label sets of a model's layers (their chain: weights are not read).
    pub fn new(layers: &[Layer]) -> Self {
        let stored = layers.len().saturating_sub(1);
        let mut sets = LabelSets {
            ptr: vec![Vec::new(); stored],
            labels: vec![Vec::new(); stored],
        };
        // Bottom-up: a node's labels are its children's (or its children, above the labels).
        for t in (0..stored).rev() {
            let chain = layers[t + 1].chain();
            let mut ptr = Vec::with_capacity(chain.n_parents() + 1);
            let mut labels = Vec::new();
            ptr.push(0);
            for node in 0..chain.n_parents() {
                let start = labels.len();
                for &child in chain.children(node) {
                    if t + 1 == stored {
                        labels.push(child);
                    } else {
                        let (c, below) = (child as usize, &sets.ptr[t + 1]);
                        let range = below[c] as usize..below[c + 1] as usize;
                        labels.extend_from_slice(&sets.labels[t + 1][range]);
                    }
                }
                labels[start..].sort_unstable();
                ptr.push(labels.len() as u32);
            }
            sets.ptr[t] = ptr;
            sets.labels[t] = labels;
        }
        sets
    }

    /// Whether node `node` of layer `layer` holds a label in `range`.
    pub fn intersects(&self, layer: usize, node: u32, range: &Range<u32>) -> bool {
        match (self.ptr.get(layer), self.labels.get(layer)) {
            (Some(ptr), Some(labels)) => {
                let n = node as usize;
                let (Some(&a), Some(&b)) = (ptr.get(n), ptr.get(n + 1)) else {
                    return false;
                };
                let own = &labels[a as usize..b as usize];
                own.get(own.partition_point(|&l| l < range.start))
                    .is_some_and(|&l| l < range.end)
            }
            // The last layer: the node is a label.
            _ => range.contains(&node),
        }
    }
}

/// Keeps query `q` to the labels `ranges[q]` (no label at all for a query without a range).
pub struct LabelRangeFilter<'a> {
    pub sets: &'a LabelSets,
    pub ranges: &'a [Range<u32>],
}

impl NodeFilter for LabelRangeFilter<'_> {
    #[inline]
    fn accepts(&self, q: usize, layer: usize, node: u32) -> bool {
        self.ranges
            .get(q)
            .is_some_and(|r| self.sets.intersects(layer, node, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ClusterChain;
    use crate::infer::{PostProcessor, PredictParams, Searcher};
    use crate::model::{ChildWeights, XLinearModel};
    use crate::rng::SplitMix64;
    use crate::sparse::CsrMatrix;

    /// A 3-layer model with random weights over 4 features: 3 top nodes, 7 leaf clusters, 20
    /// labels (cluster sizes uneven, one empty cluster).
    fn model() -> XLinearModel {
        let mut rng = SplitMix64::new(3);
        let assignments = vec![
            vec![0, 0, 0],
            vec![0, 0, 1, 1, 2, 2, 2],
            vec![0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5, 5, 5, 0, 1, 2],
        ];
        let chain = ClusterChain::try_new(assignments).unwrap();
        let layers = chain
            .into_layers()
            .into_iter()
            .map(|layer| {
                let weights: Vec<ChildWeights> = (0..layer.n_children())
                    .map(|_| ChildWeights {
                        features: vec![0, 1, 2, 3],
                        values: (0..4)
                            .map(|_| rng.below(200) as f32 / 100.0 - 1.0)
                            .collect(),
                        bias: rng.below(100) as f32 / 100.0 - 0.5,
                    })
                    .collect();
                Layer::from_child_weights(layer, &weights).unwrap()
            })
            .collect();
        XLinearModel::new(4, 1.0, layers).unwrap()
    }

    fn queries() -> CsrMatrix {
        let mut rng = SplitMix64::new(9);
        let rows: Vec<Vec<(usize, f32)>> = (0..30)
            .map(|_| (0..4).map(|f| (f, rng.below(100) as f32 / 50.0)).collect())
            .collect();
        CsrMatrix::from_rows(4, &rows).unwrap()
    }

    #[test]
    fn label_sets_list_the_labels_under_each_node() {
        let m = model();
        let sets = LabelSets::new(m.layers());
        // Top node 1 holds clusters 2 and 3: labels 5, 6, 7, 8, 9 and 19.
        assert!(sets.intersects(0, 1, &(19..20)));
        assert!(sets.intersects(0, 1, &(5..6)));
        assert!(!sets.intersects(0, 1, &(10..19)));
        // Cluster 6 is empty.
        assert!(!sets.intersects(1, 6, &(0..20)));
        // The last layer's nodes are labels.
        assert!(sets.intersects(2, 7, &(7..8)) && !sets.intersects(2, 7, &(8..9)));
    }

    #[test]
    fn a_covering_beam_equals_scoring_everything_then_filtering() {
        let (m, x) = (model(), queries());
        let sets = LabelSets::new(m.layers());
        let wide = PredictParams {
            beam_size: 100,
            topk: 20,
            post_processor: PostProcessor::Hinge(3),
        };
        let mut full = Searcher::new();
        let mut filtered = Searcher::new();
        let rows: Vec<_> = (0..x.view().n_rows()).map(|i| x.view().row(i)).collect();
        full.search(m.layers(), m.bias(), &rows, &wide).unwrap();
        for (lo, hi) in [(0, 20), (3, 9), (17, 20), (6, 7), (5, 5)] {
            let ranges = vec![lo..hi; rows.len()];
            let filter = LabelRangeFilter {
                sets: &sets,
                ranges: &ranges,
            };
            for k in [1, 3, 20] {
                let params = PredictParams { topk: k, ..wide };
                filtered
                    .search_filtered(m.layers(), m.bias(), &rows, &params, &filter)
                    .unwrap();
                for q in 0..rows.len() {
                    let expected: Vec<_> = full
                        .results(q)
                        .filter(|(label, _)| (lo..hi).contains(label))
                        .take(k)
                        .collect();
                    let got: Vec<_> = filtered.results(q).collect();
                    assert_eq!(got, expected, "query {q}, labels {lo}..{hi}, k {k}");
                }
            }
        }
    }

    #[test]
    fn a_narrow_beam_still_finds_labels_in_the_range() {
        let (m, x) = (model(), queries());
        let sets = LabelSets::new(m.layers());
        let params = PredictParams {
            beam_size: 1,
            topk: 5,
            post_processor: PostProcessor::Hinge(3),
        };
        let rows: Vec<_> = (0..x.view().n_rows()).map(|i| x.view().row(i)).collect();
        let ranges: Vec<Range<u32>> = (0..rows.len() as u32).map(|q| q % 20..q % 20 + 1).collect();
        let filter = LabelRangeFilter {
            sets: &sets,
            ranges: &ranges,
        };
        let mut s = Searcher::new();
        s.search_filtered(m.layers(), m.bias(), &rows, &params, &filter)
            .unwrap();
        for (q, range) in ranges.iter().enumerate() {
            let got: Vec<u32> = s.results(q).map(|(l, _)| l).collect();
            assert_eq!(got, vec![range.start], "query {q}");
        }
    }
}

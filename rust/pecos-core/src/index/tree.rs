//! From leaf codes to a B-ary label tree: how every indexer turns its leaves into a
//! [`ClusterChain`].

use super::chain::ClusterChain;
use crate::error::Result;

/// Groups the leaves of a tree into the layers of a `n_splits`-ary chain.
///
/// `leaf_codes[label]` is the label's leaf, in `0..n_leaves`, numbered so that leaves sharing a
/// parent are consecutive. The leaves form the bottom layer; above it, each layer groups
/// `n_splits` consecutive nodes of the one below (`code / n_splits`), as long as that layer has
/// more than `min_codes` nodes; a root layer is added on top unless the grouping reached a single
/// node already.
///
/// # Errors
/// [`crate::PecosError::InvalidInput`] if a code is not below `n_leaves` or there are no labels.
pub fn chain_from_leaf_codes(
    leaf_codes: Vec<u32>,
    n_leaves: usize,
    n_splits: usize,
    min_codes: usize,
) -> Result<ClusterChain> {
    let n_splits = n_splits.max(2);
    let sizes = node_layer_sizes(n_leaves, n_splits, min_codes);
    // The root's children (none when the one leaf is the root), then each layer's parents.
    let mut layers: Vec<Vec<u32>> = sizes.first().map(|&n| vec![0; n]).into_iter().collect();
    for pair in sizes.windows(2) {
        layers.push((0..pair[1]).map(|c| (c / n_splits) as u32).collect());
    }
    layers.push(leaf_codes);
    ClusterChain::try_new(layers)
}

/// The node counts of the layers [`chain_from_leaf_codes`] makes over `n_leaves` leaves, top
/// first, down to the leaves (the root and the labels not included; none for a single leaf,
/// which is the root): each layer groups
/// `n_splits` consecutive nodes of the one below as long as that one has more than `min_codes`;
/// a grouping that reaches a single node has reached the root.
pub fn node_layer_sizes(n_leaves: usize, n_splits: usize, min_codes: usize) -> Vec<usize> {
    let n_splits = n_splits.max(2);
    let mut sizes = Vec::new();
    let mut n_codes = n_leaves;
    if n_codes > 1 {
        sizes.push(n_codes);
    }
    while n_codes > min_codes && n_codes > 1 {
        n_codes = n_codes.div_ceil(n_splits);
        if n_codes > 1 {
            sizes.push(n_codes);
        }
    }
    sizes.reverse();
    sizes
}

/// The depth of the smallest complete binary tree whose `2^depth` leaves hold at most
/// `max_leaf_size` of `n_labels` labels each: `ceil(log2(n_labels / max_leaf_size))`, at least 1.
pub fn binary_depth(n_labels: usize, max_leaf_size: usize) -> usize {
    let mut depth = 1;
    // In u128 nothing overflows: with max_leaf_size >= 1 the loop ends by depth 64.
    while (max_leaf_size.max(1) as u128) << depth < n_labels as u128 {
        depth += 1;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(chain: &ClusterChain) -> Vec<usize> {
        chain.layers().iter().map(|l| l.n_children()).collect()
    }

    #[test]
    fn groups_consecutive_codes() {
        // 8 leaves, 16 labels, branching 2, top layer of at most 2 nodes.
        let codes: Vec<u32> = (0..16).map(|l| l / 2).collect();
        let chain = chain_from_leaf_codes(codes.clone(), 8, 2, 2).unwrap();
        assert_eq!(sizes(&chain), vec![2, 4, 8, 16]);
        assert_eq!(chain.layers()[1].parent_of(), &[0, 0, 1, 1]);
        assert_eq!(chain.layers()[3].parent_of(), codes.as_slice());
        // min_codes >= n_leaves: the leaves hang from the root.
        let flat = chain_from_leaf_codes(codes.clone(), 8, 16, 8).unwrap();
        assert_eq!(sizes(&flat), vec![8, 16]);
        // Grouping down to a single node (the root) needs no extra root layer.
        let single = chain_from_leaf_codes(codes, 8, 8, 1).unwrap();
        assert_eq!(sizes(&single), vec![8, 16]);
    }

    #[test]
    fn layer_sizes_are_those_of_the_chain() {
        for (n_leaves, n_splits, min_codes) in [
            (8, 2, 2),
            (8, 16, 8),
            (8, 8, 1),
            (1024, 16, 16),
            (2, 16, 1),
            (1, 16, 16),
        ] {
            let codes: Vec<u32> = (0..n_leaves as u32).collect();
            let chain = chain_from_leaf_codes(codes, n_leaves, n_splits, min_codes).unwrap();
            let mut expected = sizes(&chain);
            expected.pop(); // the labels
            assert_eq!(node_layer_sizes(n_leaves, n_splits, min_codes), expected);
        }
    }

    #[test]
    fn out_of_range_codes_are_refused() {
        assert!(chain_from_leaf_codes(vec![0, 4], 4, 2, 2).is_err());
    }

    #[test]
    fn depth_is_the_exact_ceiling_of_the_log() {
        assert_eq!(binary_depth(100, 100), 1);
        assert_eq!(binary_depth(101, 100), 1);
        assert_eq!(binary_depth(201, 100), 2);
        assert_eq!(binary_depth(400, 100), 2);
        assert_eq!(binary_depth(401, 100), 3);
        assert_eq!(binary_depth(1 << 20, 1), 20);
        assert_eq!(binary_depth((1 << 20) + 1, 1), 21);
        assert_eq!(binary_depth(usize::MAX, 1), 64);
    }
}

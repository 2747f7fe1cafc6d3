//! The label tree (PECOS's `ClusterChain`) as parent pointers, one array per layer.
//!
//! Layer `t` maps each node at depth `t + 1` to its parent at depth `t`; depth 0 is the single root and
//! the last layer's children are the labels. Children of a parent are kept in increasing id order,
//! which fixes the candidate order of beam search (and so its tie-breaking).

use crate::error::{PecosError, Result};

/// One layer of the tree: `parent_of[child]` and the inverse lists of children per parent.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainLayer {
    parent_of: Vec<u32>,
    children_ptr: Vec<usize>,
    children: Vec<u32>,
}

impl ChainLayer {
    /// Builds a layer from its parent pointers; every entry must be `< n_parents`.
    ///
    /// # Errors
    /// [`PecosError::InvalidInput`] for an out-of-range parent.
    pub fn try_new(parent_of: Vec<u32>, n_parents: usize) -> Result<Self> {
        if let Some((child, &p)) = parent_of
            .iter()
            .enumerate()
            .find(|&(_, &p)| p as usize >= n_parents)
        {
            return Err(PecosError::InvalidInput(format!(
                "cluster chain: node {child} has parent {p}, but the layer above has {n_parents} nodes"
            )));
        }
        // Counting sort: children of each parent end up in increasing id order.
        let mut children_ptr = vec![0usize; n_parents + 1];
        for &p in &parent_of {
            children_ptr[p as usize + 1] += 1;
        }
        for k in 0..n_parents {
            children_ptr[k + 1] += children_ptr[k];
        }
        let mut fill = children_ptr.clone();
        let mut children = vec![0u32; parent_of.len()];
        for (child, &p) in parent_of.iter().enumerate() {
            children[fill[p as usize]] = child as u32;
            fill[p as usize] += 1;
        }
        Ok(ChainLayer {
            parent_of,
            children_ptr,
            children,
        })
    }

    pub fn n_parents(&self) -> usize {
        self.children_ptr.len() - 1
    }

    pub fn n_children(&self) -> usize {
        self.parent_of.len()
    }

    pub fn parent_of(&self) -> &[u32] {
        &self.parent_of
    }

    /// The children of `parent`, in increasing id order.
    pub fn children(&self, parent: usize) -> &[u32] {
        &self.children[self.children_ptr[parent]..self.children_ptr[parent + 1]]
    }

    /// Where the children of `parent` start in the layer's parent-major child order.
    pub fn children_offset(&self, parent: usize) -> usize {
        self.children_ptr[parent]
    }
}

/// The whole tree, root layer first.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterChain {
    layers: Vec<ChainLayer>,
}

impl ClusterChain {
    /// Builds the chain from per-layer parent arrays (`assignments[0]` maps the top nodes to the root).
    ///
    /// # Errors
    /// [`PecosError::InvalidInput`] if the list is empty, a layer is empty, or a parent is out of range.
    pub fn try_new(assignments: Vec<Vec<u32>>) -> Result<Self> {
        if assignments.is_empty() {
            return Err(PecosError::InvalidInput(
                "cluster chain needs at least one layer".into(),
            ));
        }
        let mut layers = Vec::with_capacity(assignments.len());
        let mut n_parents = 1;
        for (t, parent_of) in assignments.into_iter().enumerate() {
            if parent_of.is_empty() {
                return Err(PecosError::InvalidInput(format!(
                    "cluster chain layer {t} is empty"
                )));
            }
            let n_children = parent_of.len();
            layers.push(ChainLayer::try_new(parent_of, n_parents)?);
            n_parents = n_children;
        }
        Ok(ClusterChain { layers })
    }

    /// A one-layer chain: every label hangs from the root (one-vs-all).
    pub fn one_layer(n_labels: usize) -> Self {
        ClusterChain {
            layers: vec![ChainLayer {
                parent_of: vec![0; n_labels],
                children_ptr: vec![0, n_labels],
                children: (0..n_labels as u32).collect(),
            }],
        }
    }

    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    pub fn n_labels(&self) -> usize {
        self.layers.last().map_or(0, ChainLayer::n_children)
    }

    pub fn layers(&self) -> &[ChainLayer] {
        &self.layers
    }

    pub fn into_layers(self) -> Vec<ChainLayer> {
        self.layers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_children_lists() {
        let chain = ClusterChain::try_new(vec![vec![0, 0], vec![1, 0, 1, 0, 1]]).unwrap();
        assert_eq!(chain.depth(), 2);
        assert_eq!(chain.n_labels(), 5);
        let last = &chain.layers()[1];
        assert_eq!(last.children(0), &[1, 3]);
        assert_eq!(last.children(1), &[0, 2, 4]);
        assert_eq!(last.children_offset(1), 2);
    }

    #[test]
    fn rejects_bad_chains() {
        assert!(ClusterChain::try_new(vec![]).is_err());
        assert!(ClusterChain::try_new(vec![vec![1]]).is_err());
        assert!(ClusterChain::try_new(vec![vec![0, 0], vec![2]]).is_err());
        assert!(ClusterChain::try_new(vec![vec![0], vec![]]).is_err());
    }
}

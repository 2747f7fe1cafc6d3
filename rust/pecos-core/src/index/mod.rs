//! Indexing: grouping the labels into the tree that matching walks. The tree is a
//! [`ClusterChain`] (one parent array per layer); every indexer ends in one, the same way: it
//! assigns each label a leaf code, and [`tree::chain_from_leaf_codes`] groups the codes into the
//! layers of a B-ary tree.
//!
//! Indexers: PIFA label embeddings ([`pifa`]) clustered by the balanced spherical 2-means tree
//! (`kmeans`, PECOS's default); the trie and hybrid indexers over label strings come next, behind
//! the same [`Indexer`] interface.
//!
//! Uses [`crate::sparse`] only; used by training (the chain it trains over) and the model (the
//! chain each layer follows).

mod chain;
mod kmeans;
mod pifa;
mod tree;

pub use chain::{ChainLayer, ClusterChain};
pub use kmeans::{balanced_kmeans_leaves, HierarchicalKMeans, KMeansParams};
pub use pifa::pifa;
pub use tree::chain_from_leaf_codes;

use crate::error::{Result, StopFlag};

/// What every label indexer does: turn a description of the labels (embeddings for k-means,
/// strings for a trie) into the label tree.
pub trait Indexer {
    /// What the labels are described by.
    type Labels<'a>: ?Sized;

    /// The label tree over `labels`, one node per label at the bottom; `stop` is checked between
    /// units of work.
    ///
    /// # Errors
    /// Invalid parameters or labels, or [`crate::PecosError::Interrupted`].
    fn build(&self, labels: &Self::Labels<'_>, stop: &StopFlag) -> Result<ClusterChain>;
}

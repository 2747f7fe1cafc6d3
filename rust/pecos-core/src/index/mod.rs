//! Indexing: grouping the labels into the tree that matching walks. The tree is a
//! [`ClusterChain`] (one parent array per layer), and every indexer ends in one, behind the one
//! [`Indexer`] interface:
//! * PIFA label embeddings ([`pifa`]) clustered by the balanced spherical 2-means tree (`kmeans`,
//!   PECOS's default), which assigns each label a leaf code; [`tree::chain_from_leaf_codes`]
//!   groups the codes into the layers of a B-ary tree;
//! * for labels that are strings (query autocompletion), the character trie and the trie over
//!   2-means sub-trees (`trie`), whose nodes cover ranges of sorted labels.
//!
//! Uses [`crate::sparse`] only; used by training (the chain it trains over) and the model (the
//! chain each layer follows).

mod chain;
mod kmeans;
mod pifa;
mod tree;
mod trie;

pub use chain::{ChainLayer, ClusterChain};
pub use kmeans::{
    balanced_kmeans_leaves, balanced_kmeans_subtree, HierarchicalKMeans, KMeansParams, SubTreeRoot,
};
pub use pifa::{pifa, pifa_of_labels};
pub use tree::{binary_depth, chain_from_leaf_codes, node_layer_sizes};
pub use trie::{EmbeddedLabels, HybridIndexer, TrieIndexer};

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

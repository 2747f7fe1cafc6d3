"""pecos_rs: Rust-accelerated extreme multi-label ranking (XR-Linear), scikit-learn compatible.

The three stages of XR-Linear (PECOS, Yu et al., JMLR 2022):

* indexing: :class:`HierarchicalKMeans` builds a :class:`ClusterChain` over :func:`pifa` label embeddings,
  :class:`TrieIndexer` and :class:`HybridIndexer` over label strings (query autocompletion);
* matching and ranking: :class:`XRLinearClassifier` trains sparse linear scorers for every tree node;
* inference: beam search over the tree, in Rust.

:class:`TextXRLinear` puts a text featurizer and the model together: raw texts in, named labels
out (product retrieval), with optional label texts (product titles) for labels without training data.
"""

from ._pecos_rs import __version__
from .exceptions import InvalidInputError, InvalidParameterError, ModelFormatError, PecosError
from .indexer import ClusterChain, HierarchicalKMeans, HybridIndexer, TrieIndexer, pifa
from .retrieval import TextXRLinear
from .xlinear import XRLinearClassifier

__all__ = [
    "__version__",
    "ClusterChain",
    "HierarchicalKMeans",
    "HybridIndexer",
    "InvalidInputError",
    "InvalidParameterError",
    "ModelFormatError",
    "PecosError",
    "TextXRLinear",
    "TrieIndexer",
    "XRLinearClassifier",
    "pifa",
]

//! `pecos-core`: the XR-Linear engine of pecos_rs, in plain Rust (no Python).
//!
//! One folder per stage of XR-Linear (PECOS, Yu et al. JMLR 2022), each depending only on the
//! ones listed before it:
//! * [`sparse`]: validated CSR matrices, the input of every stage;
//! * [`index`]: indexing, the label tree ([`index::ClusterChain`]): PIFA embeddings, the
//!   balanced 2-means tree, and the home of every other indexer;
//! * [`model`]: the trained model: chunked weight layout, scoring kernels, layer assembly;
//! * [`infer`]: beam search, post-processors, batch and single-query prediction;
//! * [`train`]: matching and ranking training: parameters, TFN/MAN targets, solvers, pruning;
//! * [`io`]: the file envelope of every saved artifact and the model file format;
//! * [`text`]: featurization of raw text into word / character n-gram TF-IDF rows;
//! * [`qac`]: query autocompletion: the prefix top-k completion index (most frequent queries);
//! * [`params`]: the parameter contract: every user-facing parameter validated once, here.

pub mod error;
pub mod index;
pub mod infer;
pub mod io;
pub mod model;
pub mod params;
pub mod qac;
pub mod rng;
pub mod sparse;
pub mod text;
pub mod train;

pub use error::{PecosError, Result};

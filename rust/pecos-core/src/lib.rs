//! `pecos-core`: the XR-Linear engine of pecos_rs, in plain Rust (no Python).
//!
//! The three stages of XR-Linear (PECOS, Yu et al. JMLR 2022) map onto these modules:
//! * indexing: [`indexer`] builds PIFA label embeddings and the balanced 2-means tree whose
//!   grouped leaves form the [`chain::ClusterChain`];
//! * matching and ranking: [`train`] fits one linear model per tree node with the dual coordinate
//!   descent solvers of [`solver`] (hinge losses: [`siblings`], several sibling problems at
//!   once), stored in the chunked sparse layout of [`model`];
//! * inference: [`beam`] walks the tree with beam search, combining layer scores through
//!   [`postprocess::PostProcessor`];
//! * featurization: [`text`] turns raw text into word / character n-gram TF-IDF rows.

pub mod beam;
pub mod chain;
pub mod error;
pub mod indexer;
pub mod io;
pub mod model;
pub mod postprocess;
pub mod rng;
pub mod siblings;
pub mod solver;
pub mod sparse;
pub mod text;
pub mod train;

pub use error::{PecosError, Result};

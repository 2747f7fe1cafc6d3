//! Python bindings of `pecos-core`, compiled as `pecos_rs._pecos_rs`.
//!
//! This crate only converts types (`convert`), maps errors (`error`) and releases the GIL
//! (`threads`); every algorithm lives in `pecos-core`. The public Python API is the pure-Python package `pecos_rs` around it.

mod blend;
mod convert;
mod error;
mod indexer;
mod model;
mod neighbours;
mod qac;
mod text;
mod threads;

use pyo3::prelude::*;

#[pymodule]
mod _pecos_rs {
    #[pymodule_export]
    use super::blend::py_blend_topk;

    #[pymodule_export]
    use super::model::{py_merge_topk, PySearchParams, PySubTreeModel, PyXLinearModel};

    #[pymodule_export]
    use super::indexer::{
        py_balanced_kmeans_leaves, py_balanced_kmeans_subtree, py_check_xlinear_params,
        py_hierarchical_kmeans, py_hybrid_chain, py_kmeans_tree_shape, py_pifa, py_pifa_of_labels,
        py_trie_chain,
    };

    #[pymodule_export]
    use super::neighbours::PyNeighbourIndex;

    #[pymodule_export]
    use super::qac::PyCompletionIndex;

    #[pymodule_export]
    use super::text::{py_combine_params, py_stack_blocks, PyNgramCounter, PyVocabulary};

    use super::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add(
            "build_profile",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        )?;
        m.add("FORMAT_VERSION", pecos_core::io::FORMAT_VERSION)?;
        m.add("TEXT_FORMAT_VERSION", pecos_core::text::TEXT_FORMAT_VERSION)?;
        m.add("QAC_FORMAT_VERSION", pecos_core::qac::QAC_FORMAT_VERSION)?;
        m.add(
            "NEIGHBOUR_FORMAT_VERSION",
            pecos_core::infer::NEIGHBOUR_FORMAT_VERSION,
        )?;
        m.add(
            "DEFAULT_TOKEN_PATTERN",
            pecos_core::text::DEFAULT_TOKEN_PATTERN,
        )?;
        m.add(
            "POST_PROCESSORS",
            pecos_core::infer::PostProcessor::NAMES.to_vec(),
        )?;
        Ok(())
    }
}

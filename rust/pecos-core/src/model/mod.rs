//! The trained model: one [`Layer`] of linear scorers per tree layer, in a chunked sparse layout.
//!
//! Beam search asks one question over and over: "score every child of parent `p` for query `x`".
//! So the weights of a layer are stored per parent ("chunk") and scored by the kernels of
//! `kernels`; `builder` assembles a layer from trained weights, `storage` holds the arrays
//! that files are made of.
//!
//! Uses [`crate::index`] (the chain a layer follows) and [`crate::sparse`]; used by training,
//! inference and [`crate::io`].

mod builder;
mod compact;
mod kernels;
mod layer;
mod row_index;
pub(crate) mod storage;

pub use builder::LayerBuilder;
pub(crate) use kernels::ScoreScratch;
pub use layer::{ChildWeights, Layer};
pub use storage::WeightDtype;

use crate::error::{PecosError, Result};
use crate::index::ClusterChain;
use crate::sparse::CsrView;

/// A trained XR-Linear model: the layers from the root down to the labels.
#[derive(Clone, Debug, PartialEq)]
pub struct XLinearModel {
    pub(crate) n_features: usize,
    pub(crate) bias: f32,
    pub(crate) layers: Vec<Layer>,
}

impl XLinearModel {
    /// # Errors
    /// [`PecosError::Format`] if the layers do not form a chain from a single root.
    pub fn new(n_features: usize, bias: f32, layers: Vec<Layer>) -> Result<Self> {
        Self::assemble(n_features, bias, layers, Layer::validate)
    }

    /// As [`XLinearModel::new`] for the layers of a memory-mapped file, of which only the layout
    /// is checked now ([`Layer::validate_layout`]: reading no chunk, so that loading takes the
    /// same time for any size) and each chunk at its first use.
    ///
    /// # Errors
    /// As [`XLinearModel::new`].
    pub(crate) fn new_mapped(n_features: usize, bias: f32, layers: Vec<Layer>) -> Result<Self> {
        Self::assemble(n_features, bias, layers, |layer, _| layer.validate_layout())
    }

    /// The model, once the layers form a chain from a single root and each passes `check`
    /// (given the number of features).
    fn assemble(
        n_features: usize,
        bias: f32,
        layers: Vec<Layer>,
        check: impl Fn(&Layer, usize) -> Result<()>,
    ) -> Result<Self> {
        if layers.is_empty() {
            return Err(PecosError::Format(
                "a model needs at least one layer".into(),
            ));
        }
        let mut n_parents = 1;
        for (t, layer) in layers.iter().enumerate() {
            if layer.chain.n_parents() != n_parents {
                return Err(PecosError::Format(format!(
                    "layer {t} has {} parents but the layer above has {n_parents} nodes",
                    layer.chain.n_parents()
                )));
            }
            check(layer, n_features)?;
            n_parents = layer.chain.n_children();
        }
        if !bias.is_finite() {
            return Err(PecosError::Format("bias is not finite".into()));
        }
        Ok(XLinearModel {
            n_features,
            bias,
            layers,
        })
    }

    /// A model from given weights: per layer of `chain`, PECOS's `W` by columns (see
    /// [`Layer::from_weight_columns`]). Used for models that are not trained here, such as an
    /// exact matcher of label texts (one layer whose weights are the label vectors).
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if the numbers of layers differ or a matrix has the wrong
    /// shape; as [`XLinearModel::new`] otherwise.
    pub fn from_weight_columns(
        n_features: usize,
        bias: f32,
        chain: ClusterChain,
        weights: &[CsrView],
    ) -> Result<Self> {
        if weights.len() != chain.depth() {
            return Err(PecosError::shape(
                "weight matrices (layers)",
                chain.depth(),
                weights.len(),
            ));
        }
        let layers = chain
            .into_layers()
            .into_iter()
            .zip(weights)
            .map(|(layer, w)| Layer::from_weight_columns(layer, n_features, w))
            .collect::<Result<Vec<_>>>()?;
        Self::new(n_features, bias, layers)
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_labels(&self) -> usize {
        self.layers.last().map_or(0, |l| l.chain.n_children())
    }

    pub fn bias(&self) -> f32 {
        self.bias
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    pub fn nnz(&self) -> usize {
        self.layers.iter().map(Layer::nnz).sum()
    }

    /// Whether the weights are views into a memory-mapped file ([`crate::io::load_mapped`]).
    pub fn is_memory_mapped(&self) -> bool {
        self.layers.iter().any(|l| l.arrays().map().is_some())
    }
}

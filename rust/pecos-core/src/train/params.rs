//! The parameters of training: what the solvers, pruning and negative sampling are told.

use crate::error::Result;
use crate::index::HierarchicalKMeans;
use crate::infer::{PostProcessor, PredictParams};
use crate::params::{name_of, Params, Value};
use crate::train::prune::Pruning;
use crate::train::solver::SolverParams;
use serde::{Deserialize, Serialize};

/// Which rows train the children of a parent, besides the parent's own positive rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NegativeSampling {
    /// Teacher-forced negatives: rows with a true label under the parent.
    Tfn,
    /// TFN plus matcher-aware negatives: rows whose beam (from the upper layers) reaches the parent.
    TfnMan,
}

impl NegativeSampling {
    /// Every scheme by its parameter name.
    pub const CHOICES: [(&'static str, NegativeSampling); 2] =
        [("tfn", Self::Tfn), ("tfn+man", Self::TfnMan)];

    pub fn name(&self) -> &'static str {
        name_of(&Self::CHOICES, self)
    }
}

/// The top layers of the tree, trained more cheaply than the rest: their scorers only steer the
/// beam towards the right part of the tree, and with a few hundred nodes each they see most rows,
/// so they hold most of the solver's work.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoarseLayers {
    /// How many layers, from the root's children down (0: none).
    pub n_layers: usize,
    /// Their scorers are trained on the first `n_features` columns of X only (`None`: all).
    pub n_features: Option<usize>,
    /// Their solves stop after at most this many passes (and the solver's `max_iter`).
    pub max_iter: usize,
}

impl Default for CoarseLayers {
    fn default() -> Self {
        CoarseLayers {
            n_layers: 0,
            n_features: None,
            max_iter: 5,
        }
    }
}

/// Everything that shapes training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    pub solver: SolverParams,
    #[serde(default)]
    pub coarse: CoarseLayers,
    /// Which weights of each solved scorer are kept.
    pub pruning: Pruning,
    pub negative_sampling: NegativeSampling,
    /// Beam used to find matcher-aware negatives.
    pub man_beam_size: usize,
    pub man_post_processor: PostProcessor,
    /// Seeds the solvers' shuffles; each problem derives its own seed from it.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            solver: SolverParams::default(),
            coarse: CoarseLayers::default(),
            pruning: Pruning::default(),
            negative_sampling: NegativeSampling::Tfn,
            man_beam_size: 10,
            man_post_processor: PostProcessor::Hinge(3),
            seed: 0,
        }
    }
}

impl TrainParams {
    /// The parameters layer `layer` (of the whole tree, 0 below the root) is trained with.
    pub fn for_layer(&self, layer: usize) -> TrainParams {
        let mut params = self.clone();
        if layer < self.coarse.n_layers {
            params.solver.max_iter = self.solver.max_iter.min(self.coarse.max_iter);
        }
        params
    }

    /// The columns of X layer `layer` is trained on: the first this many.
    pub fn columns_for_layer(&self, layer: usize, n_cols: usize) -> usize {
        match self.coarse.n_features {
            Some(n) if layer < self.coarse.n_layers => n.min(n_cols),
            _ => n_cols,
        }
    }

    /// Reads the solver's parameters ([`SolverParams::from_params`]), the pruning's
    /// ([`Pruning::from_params`]: `threshold`, `max_nonzeros_per_label`), the coarse layers'
    /// (`coarse_layers`, `coarse_n_features`, `coarse_max_iter`), `negative_sampling`, `beam_size` and
    /// `post_processor` (the beam that finds matcher-aware negatives) and `random_state`: the
    /// estimator's names.
    ///
    /// # Errors
    /// [`crate::PecosError::InvalidParam`] naming the first invalid parameter.
    pub fn from_params(p: &mut Params) -> Result<Self> {
        Ok(TrainParams {
            solver: SolverParams::from_params(p)?,
            coarse: CoarseLayers {
                n_layers: p.count("coarse_layers", 0)?,
                n_features: p.optional_count("coarse_n_features", 1)?,
                max_iter: p.count("coarse_max_iter", 1)?,
            },
            pruning: Pruning::from_params(p)?,
            negative_sampling: p.choice("negative_sampling", &NegativeSampling::CHOICES)?,
            man_beam_size: p.count("beam_size", 1)?,
            man_post_processor: PostProcessor::from_value(p.value("post_processor")?)?,
            seed: p.seed("random_state")?,
        })
    }

    /// Checks parameters built in Rust, in the words of [`TrainParams::from_params`].
    ///
    /// # Errors
    /// [`crate::PecosError::InvalidParam`] naming the first invalid parameter.
    pub fn validate(&self) -> Result<()> {
        self.solver.validate()?;
        self.pruning.validate()?;
        let coarse_features = self
            .coarse
            .n_features
            .map_or(Value::None, |n| Value::Int(n as i128));
        let mut p = Params::new([
            (
                "beam_size".to_string(),
                Value::Int(self.man_beam_size as i128),
            ),
            ("coarse_n_features".to_string(), coarse_features),
            (
                "coarse_max_iter".to_string(),
                Value::Int(self.coarse.max_iter as i128),
            ),
        ]);
        p.count("beam_size", 1)?;
        p.optional_count("coarse_n_features", 1)?;
        p.count("coarse_max_iter", 1)?;
        Ok(())
    }
}

/// Reported after each layer is trained.
#[derive(Clone, Debug)]
pub struct LayerReport {
    pub layer: usize,
    pub n_layers: usize,
    pub n_problems: usize,
    pub nnz: usize,
    /// The most passes any of the layer's solves took.
    pub max_solver_iter: usize,
    pub seconds: f64,
}

/// All parameters of the XR-Linear estimator, read from one [`Params`] (the estimator's
/// `get_params()` less what Python handles itself: threads and logging): how the labels are
/// indexed, how the model is trained, how it predicts by default.
#[derive(Clone, Debug, PartialEq)]
pub struct XLinearParams {
    pub index: HierarchicalKMeans,
    pub train: TrainParams,
    pub predict: PredictParams,
    /// Trees of the ensemble (`n_trees`, an integer >= 1), tree `i` seeded `random_state + i`
    /// (see [`crate::train::train_ensemble`]).
    pub n_trees: usize,
}

impl XLinearParams {
    /// # Errors
    /// [`crate::PecosError::InvalidParam`] for the first invalid parameter, or an unknown one.
    ///
    /// [`crate::PecosError::InvalidParam`]: crate::PecosError::InvalidParam
    pub fn from_params(mut p: Params) -> Result<Self> {
        let params = XLinearParams {
            index: HierarchicalKMeans::from_params(&mut p)?,
            train: TrainParams::from_params(&mut p)?,
            predict: PredictParams::from_params(&mut p)?,
            n_trees: p.count("n_trees", 1)?,
        };
        p.finish()?;
        Ok(params)
    }
}

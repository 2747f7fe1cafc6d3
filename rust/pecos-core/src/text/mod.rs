//! Text featurization: word and character n-gram TF-IDF, optionally position weighted.
//!
//! * `analyzer` turns one document into weighted n-gram keys;
//! * `table` holds the sharded n-gram hash tables both stages probe (`hashing` the buckets);
//! * [`NgramCounter`] fits document frequencies over a corpus streamed in batches;
//! * [`Vocabulary`] maps n-grams to columns (sorted n-grams, or hash buckets) and turns
//!   documents into TF-IDF rows; it is what a fitted featurizer saves (in the file envelope of
//!   [`crate::io`]);
//! * this module: the configuration saved with a vocabulary, and the featurizers' parameters
//!   ([`FeaturizerParams`], [`CombineParams`]).
//!
//! Uses [`crate::sparse`], [`crate::params`] and [`crate::io`]'s envelope; independent of the
//! XR-Linear stages.
//!
//! Lower-casing and Unicode normalisation happen before (in Python), so that they match Python's
//! `str.lower` and `unicodedata` exactly.
//!
//! Weighting (scikit-learn's conventions, not PECOS's native ones, which zero the idf of
//! n-grams present in all documents): `tf` is the sum of occurrence weights (1 per occurrence
//! unless position weighted), then 1 if `binary`, then `1 + ln(tf)` if `sublinear_tf`; times
//! `idf = ln((1 + N) / (1 + df)) + 1` (`smooth_idf`) or `ln(N / df) + 1`; then each row is scaled
//! to unit L2 or L1 norm.

mod analyzer;
mod counter;
mod hashing;
mod table;
mod vocab;

pub use analyzer::{AnalyzerConfig, PositionDecay, DEFAULT_TOKEN_PATTERN, MAX_NGRAM};
pub use counter::NgramCounter;
pub use vocab::{Vocabulary, TEXT_FORMAT_VERSION};

use crate::error::{PecosError, Result};
use crate::params::{invalid, Params, Value};
use crate::sparse::{CsrMatrix, CsrView};
use analyzer::Analyzer;
use serde::{Deserialize, Serialize};

/// Row normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    None,
    L1,
    L2,
}

/// Everything that decides how a document becomes a row, saved with the vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TfidfConfig {
    pub analyzer: AnalyzerConfig,
    /// Hashing mode: the number of hash buckets (columns); `None` keeps an explicit vocabulary.
    pub n_buckets: Option<usize>,
    pub binary: bool,
    pub sublinear_tf: bool,
    pub use_idf: bool,
    pub smooth_idf: bool,
    pub norm: Norm,
}

impl TfidfConfig {
    /// # Errors
    /// [`PecosError::InvalidParam`] for a bucket count outside `1..=2^31 - 1`.
    pub fn validate(&self) -> Result<()> {
        if let Some(n) = self.n_buckets {
            if n == 0 || n > i32::MAX as usize {
                return Err(invalid(
                    "n_features",
                    "None or an integer in [1, 2**31)",
                    &Value::Int(n as i128),
                ));
            }
        }
        Ok(())
    }

    /// The weight of a column whose n-gram occurs in `df` of `n_docs` documents.
    fn idf(&self, df: u64, n_docs: u64) -> f64 {
        if !self.use_idf {
            return 1.0;
        }
        let (df, n) = (df as f64, n_docs as f64);
        if self.smooth_idf {
            ((1.0 + n) / (1.0 + df)).ln() + 1.0
        } else {
            (n / df).ln() + 1.0
        }
    }
}

/// A text featurizer's parameters, read from the class's `get_params()` (less `n_jobs`) and
/// checked: the TF-IDF configuration of the analyzer `kind` ("word", "char_in_words" or
/// "chars"), the document-frequency bounds and `max_features`.
///
/// `lowercase`, `unicode_normalization` and `strip_accents` are applied in Python, before the
/// documents arrive (so that they match `str.lower` and `unicodedata` exactly), and checked here
/// with the rest. The ranges of the n-gram range, the decay rate, the token pattern and the bucket
/// count are checked where every configuration is (also one loaded from a file):
/// [`TfidfConfig::validate`] and the analyzer.
#[derive(Clone, Debug, PartialEq)]
pub struct FeaturizerParams {
    pub config: TfidfConfig,
    pub min_df: DfBound,
    pub max_df: DfBound,
    pub max_features: Option<usize>,
}

impl FeaturizerParams {
    /// # Errors
    /// [`PecosError::InvalidParam`] naming the first invalid parameter, or an unknown one.
    pub fn from_params(kind: &str, mut p: Params) -> Result<Self> {
        let ngram_range = p.pair("ngram_range")?;
        let analyzer = match kind {
            "word" => AnalyzerConfig::Word {
                ngram_range,
                token_pattern: p.string("token_pattern")?,
            },
            "char_in_words" => AnalyzerConfig::CharInWords {
                ngram_range,
                token_pattern: p.string("token_pattern")?,
                start_marker: p.string("start_marker")?,
                end_marker: p.string("end_marker")?,
            },
            "chars" => {
                let decay = p.choice("position_decay", &PositionDecay::CHOICES)?;
                // Checked whatever the decay, as it always was.
                let rate = p.number("decay_rate")?;
                analyzer::check_decay_rate(rate)?;
                AnalyzerConfig::Chars {
                    ngram_range,
                    position_decay: match decay {
                        PositionDecay::Exponential { .. } => PositionDecay::Exponential { rate },
                        other => other,
                    },
                }
            }
            other => {
                return Err(PecosError::param(
                    "kind",
                    format!("must be \"word\", \"char_in_words\" or \"chars\", got {other:?}"),
                ))
            }
        };
        p.flag("lowercase")?;
        p.choice_or_none(
            "unicode_normalization",
            &[("NFC", ()), ("NFKC", ()), ("NFD", ()), ("NFKD", ())],
        )?;
        p.choice_or_none("strip_accents", &[("unicode", ()), ("ascii", ())])?;
        let config = TfidfConfig {
            analyzer,
            n_buckets: p.optional_count("n_features", 0)?,
            binary: p.flag("binary")?,
            sublinear_tf: p.flag("sublinear_tf")?,
            use_idf: p.flag("use_idf")?,
            smooth_idf: p.flag("smooth_idf")?,
            norm: read_norm(&mut p)?,
        };
        let params = FeaturizerParams {
            config,
            min_df: DfBound::from_value("min_df", p.value("min_df")?)?,
            max_df: DfBound::from_value("max_df", p.value("max_df")?)?,
            max_features: p.optional_count("max_features", 1)?,
        };
        p.finish()?;
        if params.max_features.is_some() && params.config.n_buckets.is_some() {
            return Err(PecosError::param(
                "max_features",
                "cannot be combined with hashing (n_features)",
            ));
        }
        params.config.validate()?;
        Analyzer::new(params.config.analyzer.clone())?;
        Ok(params)
    }
}

/// The combination step of a multi-block featurizer: one weight per block and the row norm.
#[derive(Clone, Debug, PartialEq)]
pub struct CombineParams {
    pub weights: Vec<f32>,
    pub norm: Norm,
}

impl CombineParams {
    /// Reads `block_weights` (None: 1 for each of the `n_blocks` blocks) and `norm`.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] naming the first invalid parameter, or an unknown one.
    pub fn from_params(mut p: Params, n_blocks: usize) -> Result<Self> {
        let what = format!("None or a list of {n_blocks} finite numbers >= 0 (one per block)");
        let value = p.value("block_weights")?;
        let weights = match value {
            Value::None => vec![1.0; n_blocks],
            Value::List(items) if items.len() == n_blocks => items
                .iter()
                .map(|item| match item {
                    Value::Int(v) => Some(*v as f32),
                    Value::Float(v) => Some(*v as f32),
                    _ => None,
                })
                .map(|w| w.filter(|w| w.is_finite() && *w >= 0.0))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| invalid("block_weights", &what, value))?,
            other => return Err(invalid("block_weights", &what, other)),
        };
        let norm = read_norm(&mut p)?;
        p.finish()?;
        Ok(CombineParams { weights, norm })
    }
}

/// The `norm` parameter: "l1", "l2" or None.
///
/// # Errors
/// [`PecosError::InvalidParam`] for anything else.
pub fn read_norm(p: &mut Params) -> Result<Norm> {
    Ok(
        p.choice_or_none("norm", &[("l1", Norm::L1), ("l2", Norm::L2)])?
            .unwrap_or(Norm::None),
    )
}

/// A `min_df` / `max_df` bound: a document count, or a fraction of the corpus.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DfBound {
    Count(u64),
    Fraction(f64),
}

impl DfBound {
    /// A `min_df` / `max_df` parameter: an int >= 0 is a document count, a float in [0, 1] a
    /// fraction of the corpus.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for anything else.
    pub fn from_value(name: &str, value: &Value) -> Result<Self> {
        match value {
            Value::Int(c) if *c >= 0 => Ok(DfBound::Count(u64::try_from(*c).unwrap_or(u64::MAX))),
            Value::Float(f) if (0.0..=1.0).contains(f) => Ok(DfBound::Fraction(*f)),
            other => Err(invalid(
                name,
                "an int >= 0 (documents) or a float in [0, 1] (fraction of documents)",
                other,
            )),
        }
    }

    /// The bound in documents for a corpus of `n_docs` documents.
    fn documents(self, n_docs: f64) -> Result<f64> {
        match self {
            DfBound::Count(c) => Ok(c as f64),
            DfBound::Fraction(f) if (0.0..=1.0).contains(&f) => Ok(f * n_docs),
            DfBound::Fraction(f) => Err(PecosError::param(
                "min_df / max_df",
                format!("a fraction must be in [0, 1], got {f}"),
            )),
        }
    }
}

/// Stacks feature blocks side by side, block `b` scaled by `weights[b]`, and rescales each row to
/// unit `norm` (the combination step of a multi-block text featurizer). Entries scaled to 0 are
/// dropped; rows keep their blocks' column order, so sorted blocks give sorted rows.
///
/// # Errors
/// [`PecosError::ShapeMismatch`] if the blocks' row counts differ or there is not one weight per
/// block; [`PecosError::InvalidParam`] for a negative or non-finite weight.
pub fn stack_blocks(blocks: &[CsrView<'_>], weights: &[f32], norm: Norm) -> Result<CsrMatrix> {
    if weights.len() != blocks.len() {
        return Err(PecosError::shape(
            "block weights",
            blocks.len(),
            weights.len(),
        ));
    }
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(PecosError::param(
            "block_weights",
            format!("must be finite and >= 0, got {w}"),
        ));
    }
    let n_rows = blocks.first().map_or(0, |b| b.n_rows());
    if let Some(b) = blocks.iter().find(|b| b.n_rows() != n_rows) {
        return Err(PecosError::shape(
            "rows of a feature block",
            n_rows,
            b.n_rows(),
        ));
    }
    let n_cols: usize = blocks.iter().map(|b| b.n_cols()).sum();
    if n_cols > i32::MAX as usize {
        return Err(PecosError::InvalidInput(
            "the stacked blocks have more than 2^31 - 1 columns".into(),
        ));
    }
    let nnz = blocks.iter().map(|b| b.nnz()).sum();
    let mut indptr = Vec::with_capacity(n_rows + 1);
    let mut indices = Vec::with_capacity(nnz);
    let mut data = Vec::with_capacity(nnz);
    indptr.push(0i64);
    let mut row: Vec<(i32, f64)> = Vec::new();
    for i in 0..n_rows {
        row.clear();
        let mut offset = 0i32;
        for (b, &w) in blocks.iter().zip(weights) {
            let r = b.row(i);
            row.extend(
                r.iter()
                    .map(|(c, v)| (offset + c as i32, f64::from(v) * f64::from(w)))
                    .filter(|e| e.1 != 0.0),
            );
            offset += b.n_cols() as i32;
        }
        let total = match norm {
            Norm::None => 1.0,
            Norm::L1 => row.iter().map(|e| e.1.abs()).sum(),
            Norm::L2 => row.iter().map(|e| e.1 * e.1).sum::<f64>().sqrt(),
        };
        let scale = if total > 0.0 { 1.0 / total } else { 1.0 };
        for &(c, v) in &row {
            let value = (v * scale) as f32;
            if value != 0.0 {
                indices.push(c);
                data.push(value);
            }
        }
        indptr.push(indices.len() as i64);
    }
    CsrMatrix::try_new(n_rows, n_cols, indptr, indices, data)
}

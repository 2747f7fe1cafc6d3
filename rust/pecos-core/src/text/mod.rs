//! Text featurization: word and character n-gram TF-IDF, optionally position weighted.
//!
//! * [`analyzer`] turns one document into weighted n-gram keys;
//! * `table` holds the sharded n-gram hash tables both stages probe;
//! * [`counter::NgramCounter`] fits document frequencies over a corpus streamed in batches;
//! * [`vocab::Vocabulary`] maps n-grams to columns (sorted n-grams, or hash buckets) and turns
//!   documents into TF-IDF rows; it is what a fitted featurizer saves.
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
use crate::sparse::{CsrMatrix, CsrView};
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
                return Err(PecosError::param(
                    "n_features",
                    format!("must be in [1, 2^31 - 1], got {n}"),
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

/// A `min_df` / `max_df` bound: a document count, or a fraction of the corpus.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DfBound {
    Count(u64),
    Fraction(f64),
}

impl DfBound {
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

//! The one error type of the core. The Python binding maps each variant to one exception class.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Everything that can go wrong in `pecos-core`. Every path reached by user input returns one of these
/// instead of panicking.
#[derive(Debug, thiserror::Error)]
pub enum PecosError {
    /// Malformed data: unsorted or out-of-range indices, non-finite values, broken index pointers.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Two inputs that must agree in size do not.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        what: String,
        expected: usize,
        got: usize,
    },
    /// A hyper-parameter is outside its domain; `reason` continues the sentence begun by its
    /// name ("must be an integer >= 1, got 0").
    #[error("{name} {reason}")]
    InvalidParam { name: String, reason: String },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A model file is corrupt, truncated, or of a format version this build does not read.
    #[error("invalid model file: {0}")]
    Format(String),
    /// A [`StopFlag`] was raised while the computation ran.
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T> = std::result::Result<T, PecosError>;

impl PecosError {
    pub fn param(name: &str, reason: impl Into<String>) -> Self {
        PecosError::InvalidParam {
            name: name.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn shape(what: &str, expected: usize, got: usize) -> Self {
        PecosError::ShapeMismatch {
            what: what.to_string(),
            expected,
            got,
        }
    }
}

/// A flag another thread raises to stop a long computation (the binding raises it on Ctrl-C).
/// The computation checks it between units of work of at most a fraction of a second and then
/// returns [`PecosError::Interrupted`], dropping what it had done.
#[derive(Debug, Default)]
pub struct StopFlag(AtomicBool);

impl StopFlag {
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// # Errors
    /// [`PecosError::Interrupted`] once the flag is raised.
    pub fn check(&self) -> Result<()> {
        if self.is_raised() {
            Err(PecosError::Interrupted)
        } else {
            Ok(())
        }
    }
}

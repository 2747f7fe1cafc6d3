//! Files: the one `envelope` every saved artifact is wrapped in, the model file format
//! (`model_file`), and writing through a temporary file. The text vocabulary's format lives
//! with the vocabulary ([`crate::text`]) and uses the same envelope.
//!
//! Uses [`crate::model`] (the arrays a model file holds) and [`crate::index`] (the chain).

pub(crate) mod envelope;
mod model_file;

pub use model_file::{from_bytes, to_bytes, FORMAT_VERSION};

use crate::error::Result;
use crate::model::XLinearModel;
use std::fs;
use std::path::Path;

/// Writes the model to `path` (through a temporary file, so a crash never leaves half a model).
///
/// # Errors
/// [`crate::PecosError::Io`] if the file cannot be written.
pub fn save(model: &XLinearModel, metadata: &serde_json::Value, path: &Path) -> Result<()> {
    write_atomically(path, &to_bytes(model, metadata))
}

/// Reads a model written by [`save`].
///
/// # Errors
/// [`crate::PecosError::Io`] if the file cannot be read, [`crate::PecosError::Format`] if it is
/// not a valid model.
pub fn load(path: &Path) -> Result<(XLinearModel, serde_json::Value)> {
    from_bytes(&fs::read(path)?)
}

/// Writes `bytes` to `path` through a temporary file, so a crash never leaves half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

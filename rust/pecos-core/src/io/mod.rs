//! Files: the one `envelope` every saved artifact is wrapped in, the model file format
//! (`model_file`), writing through a temporary file, and [`Artifact`], what saving and loading
//! mean for the artifacts whose formats live beside their types and use the same envelope (the
//! text vocabulary in [`crate::text`], the completion index in [`crate::qac`]).
//!
//! Uses [`crate::model`] (the arrays a model file holds) and [`crate::index`] (the chain).

pub(crate) mod envelope;
mod guarded_map;
mod model_file;

pub use guarded_map::GuardedMap;
pub use model_file::{from_bytes, to_bytes, FORMAT_VERSION};

use crate::error::Result;
use crate::model::XLinearModel;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

/// Writes the model to `path` (through a temporary file, so a crash never leaves half a model).
///
/// # Errors
/// [`crate::PecosError::Io`] if the file cannot be written.
pub fn save(model: &XLinearModel, metadata: &serde_json::Value, path: &Path) -> Result<()> {
    // Straight into the file: a model of several GB is never held a second time in memory.
    write_atomically(path, |file| {
        model_file::write(model, metadata, BufWriter::new(file))?;
        // A mapped model whose file was truncated has just written zeros: keep no such file.
        check_intact(model)
    })
}

/// Reads a model written by [`save`].
///
/// # Errors
/// [`crate::PecosError::Io`] if the file cannot be read, [`crate::PecosError::Format`] if it is
/// not a valid model.
pub fn load(path: &Path) -> Result<(XLinearModel, serde_json::Value)> {
    let file = fs::File::open(path)?;
    // Through a map rather than a buffer: the arrays are copied out of the page cache once
    // instead of twice, which halves both the time and the peak memory of loading a large model.
    // The map is dropped before this returns (the arrays are copies); a file truncated by
    // another program during the load is caught by the map's guard.
    let map = GuardedMap::new(&file, true)?;
    let loaded = from_bytes(&map);
    map.check_intact()?;
    loaded
}

/// Maps a model written by [`save`] into memory instead of reading it: the weight arrays stay
/// views into the file, whose pages the operating system shares between every process that maps
/// it and reads only as predictions touch them, so that loading takes about the same time for any
/// size. The sizes and alignment of every array and the layout of the layers are checked at
/// once; the chunks of weights of each parent at their first use (a prediction reaching an
/// invalid one fails with [`crate::PecosError::Format`]); the checksum only by [`verify`], which
/// reads the whole file.
///
/// The file must not be changed in place while mapped: [`save`] never does (it writes a new file
/// and renames it over the old one, so a mapping keeps reading the old file). If another program
/// truncates it, the reads of the missing pages give zeros instead of killing the process (on
/// Linux: [`GuardedMap`]), and [`check_intact`] (which every prediction path of the Python
/// package calls) reports it.
///
/// # Errors
/// As [`load`]; [`crate::PecosError::Format`] also for a file of format version 2 (its arrays
/// are not aligned; loading it with [`load`] and saving it again upgrades it).
pub fn load_mapped(path: &Path) -> Result<(XLinearModel, serde_json::Value)> {
    let file = fs::File::open(path)?;
    let map = Arc::new(GuardedMap::new(&file, false)?);
    let loaded = model_file::from_map(&map);
    map.check_intact()?;
    loaded
}

/// The file a memory-mapped model reads its weights from, if any.
fn map_of(model: &XLinearModel) -> Option<&GuardedMap> {
    model
        .layers()
        .iter()
        .find_map(|l| l.arrays().map())
        .map(|m| &**m)
}

/// Checks that the file of a memory-mapped model ([`load_mapped`]) has not been truncated
/// under it: call it after reading the model (a prediction, a copy), whose results are wrong
/// if it fails. A model in memory always passes.
///
/// # Errors
/// [`crate::PecosError::Format`] if a read of the file found it shorter than when mapped.
pub fn check_intact(model: &XLinearModel) -> Result<()> {
    map_of(model).map_or(Ok(()), GuardedMap::check_intact)
}

/// Checks the checksum of the file a memory-mapped model ([`load_mapped`]) reads its weights
/// from, and every chunk of its layers as [`load`] does, reading the whole file. A model in
/// memory passes: it was checked whole when made.
///
/// # Errors
/// [`crate::PecosError::Format`] if the file no longer matches its checksum or a chunk is
/// invalid.
pub fn verify(model: &XLinearModel) -> Result<()> {
    let Some(map) = map_of(model) else {
        return Ok(());
    };
    let checksum = model_file::verify_map(map);
    map.check_intact()?; // the more telling error when the file was truncated
    checksum?;
    model
        .layers()
        .iter()
        .try_for_each(|layer| layer.validate(model.n_features()))
}

/// An artifact with a file format of its own (in the envelope) that keeps caller metadata (e.g.
/// the Python class's parameters): it is written to one file, or to bytes for pickling.
pub trait Artifact: Sized {
    /// Serialises the artifact with caller metadata.
    fn to_bytes(&self, metadata: &serde_json::Value) -> Vec<u8>;

    /// Parses bytes written by [`Artifact::to_bytes`], returning the artifact and its metadata.
    ///
    /// # Errors
    /// [`crate::PecosError::Format`] for a foreign, truncated, corrupt or unsupported-version
    /// file.
    fn from_bytes(bytes: &[u8]) -> Result<(Self, serde_json::Value)>;

    /// Writes the artifact and `metadata` to `path` (through a temporary file).
    ///
    /// # Errors
    /// [`crate::PecosError::Io`] if the file cannot be written.
    fn save(&self, metadata: &serde_json::Value, path: &Path) -> Result<()> {
        write_atomically(path, |mut file| {
            Ok(file.write_all(&self.to_bytes(metadata))?)
        })
    }

    /// Reads an artifact written by [`Artifact::save`], with its metadata.
    ///
    /// # Errors
    /// [`crate::PecosError::Io`] if the file cannot be read, [`crate::PecosError::Format`] if it
    /// is not valid.
    fn load(path: &Path) -> Result<(Self, serde_json::Value)> {
        Self::from_bytes(&fs::read(path)?)
    }
}

/// Writes a file at `path` by `write` through a temporary file, so a crash never leaves half a
/// file (a failed write removes the temporary file).
fn write_atomically(path: &Path, write: impl FnOnce(&fs::File) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let written = fs::File::create(&tmp)
        .map_err(Into::into)
        .and_then(|file| write(&file));
    if let Err(e) = written {
        // The write's error is the one to report; a temporary file that cannot be removed
        // either is left behind.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    Ok(())
}

//! The on-disk model format: one little-endian binary file, versioned and checksummed.
//!
//! ```text
//! magic "PECOSRS\0" | format version u32 | header length u64 | header JSON
//! per layer: parent_of u32[n_children] | chunk_ptr u64[n_parents+1]
//!            | chunk_entry_ptr u64[n_parents+1] | row_feature u32[n_rows]
//!            | row_ptr u32[n_rows+n_parents] | entry_slot u32[n_entries]
//!            | entry_value f32[n_entries] | bias_weight f32[n_children]
//! CRC-32 of everything before it, u32
//! ```
//! Loading checks, in order: magic, version, that the header's counts account for the file size
//! exactly (so a truncated file is caught before anything is allocated from its counts), the
//! checksum, then every structural invariant of the layers. Arrays are stored flat so that a later
//! version can memory-map them in place. The arrays are those of [`Layer`]: each chunk's row
//! pointers are relative to the chunk's first entry (32 bits), the chunk pointers absolute (64).
//!
//! Version history: 1 stored absolute 64-bit row pointers (`row_ptr u64[n_rows+1]`, no
//! `chunk_entry_ptr`); version 2 (current) is the layout above. Version 1 files are refused with a
//! message saying so: re-train, or load them with a pecos_rs release that reads version 1.

use crate::chain::ChainLayer;
use crate::error::{PecosError, Result};
use crate::model::{Layer, LayerArrays, XLinearModel};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

const MAGIC: &[u8; 8] = b"PECOSRS\0";
/// Bump when the layout changes; loading refuses versions it does not know.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Header {
    n_features: usize,
    bias: f32,
    layers: Vec<LayerHeader>,
    /// Free-form metadata kept with the model (e.g. training parameters), opaque to this module.
    metadata: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct LayerHeader {
    n_parents: usize,
    n_children: usize,
    n_rows: usize,
    n_entries: usize,
}

impl LayerHeader {
    /// Bytes of this layer's arrays, or None on overflow (a corrupt header).
    fn byte_len(&self) -> Option<usize> {
        let words = [
            self.n_children.checked_mul(4)?,
            self.n_parents.checked_add(1)?.checked_mul(16)?,
            self.n_rows.checked_mul(4)?,
            self.n_rows.checked_add(self.n_parents)?.checked_mul(4)?,
            self.n_entries.checked_mul(8)?,
            self.n_children.checked_mul(4)?,
        ];
        words.iter().try_fold(0usize, |acc, &w| acc.checked_add(w))
    }
}

/// Serialises `model` (and caller metadata) to bytes.
pub fn to_bytes(model: &XLinearModel, metadata: &serde_json::Value) -> Vec<u8> {
    let header = Header {
        n_features: model.n_features,
        bias: model.bias,
        layers: model
            .layers
            .iter()
            .map(|l| LayerHeader {
                n_parents: l.chain.n_parents(),
                n_children: l.chain.n_children(),
                n_rows: l.row_feature.len(),
                n_entries: l.entry_value.len(),
            })
            .collect(),
        metadata: metadata.clone(),
    };
    // Serialising a plain struct of numbers and a JSON value cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for l in &model.layers {
        put_u32(&mut out, l.chain.parent_of());
        put_u64(&mut out, &l.chunk_ptr);
        put_u64(&mut out, &l.chunk_entry_ptr);
        put_u32(&mut out, &l.row_feature);
        put_u32(&mut out, &l.row_ptr);
        put_u32(&mut out, &l.entry_slot);
        put_f32(&mut out, &l.entry_value);
        put_f32(&mut out, &l.bias_weight);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Parses bytes written by [`to_bytes`], returning the model and its metadata.
///
/// # Errors
/// [`PecosError::Format`] for a foreign, truncated, corrupt or newer-version file.
pub fn from_bytes(bytes: &[u8]) -> Result<(XLinearModel, serde_json::Value)> {
    let fail = |msg: &str| PecosError::Format(msg.to_string());
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(fail("not a pecos_rs model (bad magic bytes)"));
    }
    let mut r = Reader::new(bytes, 8);
    let version = r.u32()?;
    if version == 1 {
        return Err(fail(
            "format version 1 (64-bit row pointers) is no longer read by this build, which reads \
             version 2: re-train the model, or load it with the pecos_rs release that saved it",
        ));
    }
    if version != FORMAT_VERSION {
        return Err(PecosError::Format(format!(
            "format version {version} is not supported (this build reads version {FORMAT_VERSION})"
        )));
    }
    let header_len = usize::try_from(r.u64()?).map_err(|_| fail("header length overflows"))?;
    let header: Header = serde_json::from_slice(r.take(header_len)?)
        .map_err(|e| PecosError::Format(format!("corrupt header: {e}")))?;
    let body: Option<usize> = header
        .layers
        .iter()
        .try_fold(0usize, |acc, l| acc.checked_add(l.byte_len()?));
    let expected = body.and_then(|b| b.checked_add(r.position() + 4));
    if expected != Some(bytes.len()) {
        return Err(fail(
            "file size does not match its header (truncated or corrupt)",
        ));
    }
    let (payload, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(payload) != stored {
        return Err(fail("checksum mismatch (corrupt file)"));
    }
    let mut layers = Vec::with_capacity(header.layers.len());
    for lh in &header.layers {
        let parent_of = r.u32s(lh.n_children)?;
        let chain = ChainLayer::try_new(parent_of, lh.n_parents)
            .map_err(|e| PecosError::Format(e.to_string()))?;
        let arrays = LayerArrays {
            chunk_ptr: r.u64s(lh.n_parents + 1)?,
            chunk_entry_ptr: r.u64s(lh.n_parents + 1)?,
            row_feature: r.u32s(lh.n_rows)?,
            // byte_len() succeeded for this header, so the sum cannot overflow.
            row_ptr: r.u32s(lh.n_rows + lh.n_parents)?,
            entry_slot: r.u32s(lh.n_entries)?,
            entry_value: r.f32s(lh.n_entries)?,
            bias_weight: r.f32s(lh.n_children)?,
        };
        layers.push(Layer::with_index(chain, arrays));
    }
    let model = XLinearModel::new(header.n_features, header.bias, layers)?;
    Ok((model, header.metadata))
}

/// Writes the model to `path` (through a temporary file, so a crash never leaves half a model).
///
/// # Errors
/// [`PecosError::Io`] if the file cannot be written.
pub fn save(model: &XLinearModel, metadata: &serde_json::Value, path: &Path) -> Result<()> {
    write_atomically(path, &to_bytes(model, metadata))
}

/// Writes `bytes` to `path` through a temporary file, so a crash never leaves half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Reads a model written by [`save`].
///
/// # Errors
/// [`PecosError::Io`] if the file cannot be read, [`PecosError::Format`] if it is not a valid model.
pub fn load(path: &Path) -> Result<(XLinearModel, serde_json::Value)> {
    from_bytes(&fs::read(path)?)
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: &[u32]) {
    v.iter()
        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: &[u64]) {
    v.iter()
        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
}

fn put_f32(out: &mut Vec<u8>, v: &[f32]) {
    v.iter()
        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `bytes` starting at byte `pos`.
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Reader { bytes, pos }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| PecosError::Format("unexpected end of file".into()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(self.u32s(1)?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(self.u64s(1)?[0])
    }

    pub(crate) fn u32s(&mut self, n: usize) -> Result<Vec<u32>> {
        let b = self.take(
            n.checked_mul(4)
                .ok_or_else(|| PecosError::Format("size overflow".into()))?,
        )?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub(crate) fn f32s(&mut self, n: usize) -> Result<Vec<f32>> {
        Ok(self.u32s(n)?.into_iter().map(f32::from_bits).collect())
    }

    pub(crate) fn u64s(&mut self, n: usize) -> Result<Vec<u64>> {
        let b = self.take(
            n.checked_mul(8)
                .ok_or_else(|| PecosError::Format("size overflow".into()))?,
        )?;
        Ok(b.chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ClusterChain;
    use crate::model::ChildWeights;

    fn toy_model() -> XLinearModel {
        let chain = ClusterChain::try_new(vec![vec![0, 0], vec![0, 1, 1]]).unwrap();
        let cw = |f: Vec<u32>, v: Vec<f32>, b| ChildWeights {
            features: f,
            values: v,
            bias: b,
        };
        let layers = chain.into_layers();
        let l0 = Layer::from_child_weights(
            layers[0].clone(),
            &[cw(vec![0], vec![1.0], 0.2), cw(vec![2], vec![-1.0], 0.0)],
        )
        .unwrap();
        let l1 = Layer::from_child_weights(
            layers[1].clone(),
            &[
                cw(vec![1], vec![0.5], 0.0),
                cw(vec![0, 2], vec![0.3, 0.4], -0.1),
                cw(vec![], vec![], 0.9),
            ],
        )
        .unwrap();
        XLinearModel::new(3, 1.0, vec![l0, l1]).unwrap()
    }

    #[test]
    fn round_trips() {
        let m = toy_model();
        let meta = serde_json::json!({"k": [1, 2]});
        let (back, meta_back) = from_bytes(&to_bytes(&m, &meta)).unwrap();
        assert_eq!(back, m);
        assert_eq!(meta_back, meta);
    }

    #[test]
    fn rejects_truncation_corruption_and_foreign_files() {
        let bytes = to_bytes(&toy_model(), &serde_json::Value::Null);
        for n in [0, 7, 12, 30, bytes.len() - 1] {
            assert!(from_bytes(&bytes[..n]).is_err(), "truncated at {n}");
        }
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            assert!(from_bytes(&b).is_err(), "flipped byte {i}");
        }
        let mut v3 = bytes.clone();
        v3[8] = 3;
        assert!(matches!(from_bytes(&v3), Err(PecosError::Format(m)) if m.contains("version 3")));
        let mut v1 = bytes.clone();
        v1[8] = 1;
        assert!(
            matches!(from_bytes(&v1), Err(PecosError::Format(m)) if m.contains("version 1") && m.contains("re-train"))
        );
        assert!(from_bytes(b"PK\x03\x04 a zip file").is_err());
    }
}

//! The model file: an [`envelope`](super::envelope) with magic `PECOSRS\0` whose body holds, per
//! layer, the arrays of [`LayerArrays`] and the chain layer's parent pointers:
//!
//! ```text
//! per layer: parent_of u32[n_children] | chunk_ptr u64[n_parents+1]
//!            | chunk_entry_ptr u64[n_parents+1] | row_feature u32[n_rows]
//!            | row_ptr u32[n_rows+n_parents] | entry_slot S[n_entries]
//!            | entry_value W[n_entries] | (int8 only) scale f32[n_children]
//!            | bias_weight f32[n_children]
//! ```
//! with the slot type `S` (u8, u16 or u32) and the weight type `W` (f32, f16 or i8) named by the
//! layer's header (`slot_type`, `weight_dtype`; absent: u32 and f32, as in every file before
//! version 4 and in every model that was not compacted).
//! After the envelope's checks, loading checks every structural invariant of the layers.
//!
//! A memory-mapped load ([`from_map`], version 3 only) makes the arrays views into the file
//! instead of copies, skips the checksum (see [`super::verify`]) and checks the layout of each
//! layer but not its chunks, which are checked at their first use (`Layer::row_index`), so that
//! the kernels never meet an inconsistent chunk.
//!
//! Version history: 1 stored absolute 64-bit row pointers (`row_ptr u64[n_rows+1]`, no
//! `chunk_entry_ptr`) and is refused with a message saying so; 2 is the layout above with the
//! arrays packed; 3 aligns every array to 8 bytes, so that a memory map can use them in place; 4
//! (current) adds the compact slot and weight types (a model that was not compacted is written as
//! in version 3 but for the version number). Versions 2 to 4 are read, 3 and 4 also mapped.

use super::envelope::{self, Layout, Opened, Reader, Writer};
use super::GuardedMap;
use crate::error::{PecosError, Result};
use crate::index::ChainLayer;
use crate::model::storage::{Array, Element, LayerArrays, Slots, WeightDtype, Weights};
use crate::model::{Layer, XLinearModel};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"PECOSRS\0";
/// The version written; bump when the layout changes.
pub const FORMAT_VERSION: u32 = 4;
/// The last version with packed (unaligned) arrays.
const PACKED_VERSION: u32 = 2;
/// The last version without compact weights.
const FLOAT32_VERSION: u32 = 3;

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
    #[serde(default, skip_serializing_if = "is_default")]
    slot_type: SlotType,
    #[serde(default, skip_serializing_if = "is_default")]
    weight_dtype: WeightDtype,
}

/// The stored type of the child slots of a layer's entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SlotType {
    U8,
    U16,
    #[default]
    U32,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl LayerHeader {
    /// Adds this layer's arrays to `layout`, in file order.
    fn plan(&self, layout: &mut Layout) {
        let chunk_ptrs = self.n_parents.saturating_add(1);
        let slot_width = match self.slot_type {
            SlotType::U8 => 1,
            SlotType::U16 => 2,
            SlotType::U32 => 4,
        };
        let weight_width = match self.weight_dtype {
            WeightDtype::Float32 => 4,
            WeightDtype::Float16 => 2,
            WeightDtype::Int8 => 1,
        };
        layout
            .array(self.n_children, 4)
            .array(chunk_ptrs, 8)
            .array(chunk_ptrs, 8)
            .array(self.n_rows, 4)
            .array(self.n_rows.saturating_add(self.n_parents), 4)
            .array(self.n_entries, slot_width)
            .array(self.n_entries, weight_width);
        if self.weight_dtype == WeightDtype::Int8 {
            layout.array(self.n_children, 4);
        }
        layout.array(self.n_children, 4);
    }
}

/// Serialises `model` (and caller metadata) to bytes.
pub fn to_bytes(model: &XLinearModel, metadata: &serde_json::Value) -> Vec<u8> {
    encode(model, metadata, FORMAT_VERSION, Vec::new()).finish()
}

/// Writes the bytes of [`to_bytes`] to `out` as they are made.
///
/// # Errors
/// The first error of `out`.
pub(crate) fn write<W: Write>(
    model: &XLinearModel,
    metadata: &serde_json::Value,
    out: W,
) -> io::Result<W> {
    encode(model, metadata, FORMAT_VERSION, out).finish_sink()
}

/// The file of `model` in format `version` (2: packed arrays, 3 and 4: aligned; only 4 can hold
/// compact layers), written to `out` up to its checksum.
fn encode<W: Write>(
    model: &XLinearModel,
    metadata: &serde_json::Value,
    version: u32,
    out: W,
) -> Writer<W> {
    let header = Header {
        n_features: model.n_features(),
        bias: model.bias(),
        layers: model
            .layers()
            .iter()
            .map(|l| LayerHeader {
                n_parents: l.chain().n_parents(),
                n_children: l.chain().n_children(),
                n_rows: l.arrays().n_rows(),
                n_entries: l.arrays().n_entries(),
                slot_type: match l.arrays().entry_slot {
                    Slots::U8(_) => SlotType::U8,
                    Slots::U16(_) => SlotType::U16,
                    Slots::U32(_) => SlotType::U32,
                },
                weight_dtype: l.weight_dtype(),
            })
            .collect(),
        metadata: metadata.clone(),
    };
    let mut w = Writer::into_sink(out, MAGIC, version, &header, version != PACKED_VERSION);
    for layer in model.layers() {
        let a = layer.arrays();
        w.u32s(layer.chain().parent_of());
        w.u64s(&a.chunk_ptr);
        w.u64s(&a.chunk_entry_ptr);
        w.u32s(&a.row_feature);
        w.u32s(&a.row_ptr);
        match &a.entry_slot {
            Slots::U8(s) => w.elements(s),
            Slots::U16(s) => w.elements(s),
            Slots::U32(s) => w.elements(s),
        }
        match &a.entry_value {
            Weights::F32(v) => w.elements(v),
            Weights::F16(v) => w.elements(v),
            Weights::I8 { q, scale } => {
                w.elements(q);
                w.f32s(scale);
            }
        }
        w.f32s(&a.bias_weight);
    }
    w
}

/// Where the arrays of a loaded model come from.
enum Backing<'m> {
    /// Copied out of the file's bytes.
    Copied,
    /// Views into the mapped file.
    Mapped(&'m Arc<GuardedMap>),
}

impl Backing<'_> {
    /// The next `n` elements of `r` as an array of this backing.
    fn take<T: Element>(&self, r: &mut Reader<'_>, n: usize) -> Result<Array<T>> {
        match self {
            Backing::Copied => Ok(r.elements(n)?.into()),
            Backing::Mapped(map) => Array::mapped(map, r.span(n, size_of::<T>())?),
        }
    }
}

/// Parses bytes written by [`to_bytes`] (or by a build writing version 2), returning the model
/// and its metadata.
///
/// # Errors
/// [`PecosError::Format`] for a foreign, truncated, corrupt or unsupported-version file.
pub fn from_bytes(bytes: &[u8]) -> Result<(XLinearModel, serde_json::Value)> {
    let file = open(bytes)?;
    let (header, layout) = plan(&file, file.version() != PACKED_VERSION)?;
    decode(header, file.body(&layout)?, &Backing::Copied)
}

/// As [`from_bytes`] for a mapped file of version 3 or 4, whose arrays stay in the file:
/// the sizes and alignment of every array are checked, and the layout of the layers (each chunk
/// at its first use), but not the checksum ([`super::verify`] does that on demand).
///
/// # Errors
/// As [`from_bytes`]; also for a file of version 2, whose arrays are not aligned.
pub(crate) fn from_map(map: &Arc<GuardedMap>) -> Result<(XLinearModel, serde_json::Value)> {
    let file = open(map)?;
    if file.version() == PACKED_VERSION {
        return Err(PecosError::Format(format!(
            "format version {} stores its arrays unaligned and cannot be memory-mapped: load it \
             without mmap and save it again to upgrade it to version {FORMAT_VERSION}",
            file.version()
        )));
    }
    let (header, layout) = plan(&file, true)?;
    decode(
        header,
        file.body_unverified(&layout)?,
        &Backing::Mapped(map),
    )
}

/// The header of `file` and the layout of the body it describes.
fn plan(file: &Opened<'_>, aligned: bool) -> Result<(Header, Layout)> {
    let header: Header = file.header()?;
    let mut layout = file.layout(aligned)?;
    header.layers.iter().for_each(|l| l.plan(&mut layout));
    Ok((header, layout))
}

/// Checks the checksum of a mapped model file.
///
/// # Errors
/// [`PecosError::Format`] for a mismatch.
pub(crate) fn verify_map(map: &GuardedMap) -> Result<()> {
    envelope::verify_checksum(map)
}

/// Opens a model file of a version this build reads.
fn open(bytes: &[u8]) -> Result<Opened<'_>> {
    let file = envelope::open(bytes, MAGIC, "not a pecos_rs model (bad magic bytes)")?;
    match file.version() {
        1 => Err(PecosError::Format(
            "format version 1 (64-bit row pointers) is no longer read by this build, which \
                 reads versions 2 to 4: re-train the model, or load it with the pecos_rs release \
                 that saved it"
                .into(),
        )),
        PACKED_VERSION | FLOAT32_VERSION | FORMAT_VERSION => Ok(file),
        v => Err(PecosError::Format(format!(
            "format version {v} is not supported (this build reads versions \
                 {PACKED_VERSION} to {FORMAT_VERSION})"
        ))),
    }
}

/// The model from its header and body, arrays taken as `backing` says.
fn decode(
    header: Header,
    mut r: Reader<'_>,
    backing: &Backing<'_>,
) -> Result<(XLinearModel, serde_json::Value)> {
    let mut layers = Vec::with_capacity(header.layers.len());
    for lh in &header.layers {
        let parent_of = r.u32s(lh.n_children)?;
        let chain = ChainLayer::try_new(parent_of, lh.n_parents)
            .map_err(|e| PecosError::Format(e.to_string()))?;
        // The layout matched the file size, so none of these counts overflows.
        let chunk_ptr = backing.take(&mut r, lh.n_parents + 1)?;
        let chunk_entry_ptr = backing.take(&mut r, lh.n_parents + 1)?;
        let row_feature = backing.take(&mut r, lh.n_rows)?;
        let row_ptr = backing.take(&mut r, lh.n_rows + lh.n_parents)?;
        let entry_slot = match lh.slot_type {
            SlotType::U8 => Slots::U8(backing.take(&mut r, lh.n_entries)?),
            SlotType::U16 => Slots::U16(backing.take(&mut r, lh.n_entries)?),
            SlotType::U32 => Slots::U32(backing.take(&mut r, lh.n_entries)?),
        };
        let entry_value = match lh.weight_dtype {
            WeightDtype::Float32 => Weights::F32(backing.take(&mut r, lh.n_entries)?),
            WeightDtype::Float16 => Weights::F16(backing.take(&mut r, lh.n_entries)?),
            WeightDtype::Int8 => Weights::I8 {
                q: backing.take(&mut r, lh.n_entries)?,
                scale: backing.take(&mut r, lh.n_children)?,
            },
        };
        let bias_weight = backing.take(&mut r, lh.n_children)?;
        let arrays = LayerArrays {
            chunk_ptr,
            chunk_entry_ptr,
            row_feature,
            row_ptr,
            entry_slot,
            entry_value,
            bias_weight,
        };
        layers.push(Layer::from_arrays(chain, arrays));
    }
    let model = match backing {
        Backing::Copied => XLinearModel::new(header.n_features, header.bias, layers)?,
        Backing::Mapped(_) => XLinearModel::new_mapped(header.n_features, header.bias, layers)?,
    };
    Ok((model, header.metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ClusterChain;
    use crate::model::storage::tests::map_of;
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

    /// The same model in the packed layout of version 2.
    fn version_2_bytes(model: &XLinearModel, metadata: &serde_json::Value) -> Vec<u8> {
        encode(model, metadata, PACKED_VERSION, Vec::new()).finish()
    }

    #[test]
    fn round_trips_and_reads_version_2() {
        let m = toy_model();
        let meta = serde_json::json!({"k": [1, 2]});
        let (back, meta_back) = from_bytes(&to_bytes(&m, &meta)).unwrap();
        assert_eq!(back, m);
        assert_eq!(meta_back, meta);
        let v2 = version_2_bytes(&m, &meta);
        assert!(v2.len() < to_bytes(&m, &meta).len());
        assert_eq!(from_bytes(&v2).unwrap(), (m, meta));
    }

    #[test]
    fn metadata_floats_round_trip_exactly() {
        // Found by fuzzing (completion_file): without serde_json's float_roundtrip, 1.1111e-206
        // was read back one unit in the last place off, so saving what was loaded changed it.
        let meta: serde_json::Value =
            serde_json::from_str(r#"{"x": 111110E-211, "threshold": 0.1, "rate": 0.9}"#).unwrap();
        let x = meta["x"].as_f64().unwrap();
        assert_eq!(x, 1.1111e-206);
        let bytes = to_bytes(&toy_model(), &meta);
        let (_, back) = from_bytes(&bytes).unwrap();
        assert_eq!(back, meta);
        assert_eq!(to_bytes(&toy_model(), &back), bytes);
    }

    #[test]
    fn arrays_are_aligned() {
        let bytes = to_bytes(&toy_model(), &serde_json::Value::Null);
        let file = envelope::open(&bytes, MAGIC, "").unwrap();
        let header: Header = file.header().unwrap();
        let header_end = 20 + serde_json::to_vec(&header).unwrap().len();
        // The first array (layer 0's parent_of, two zeros) starts at the next multiple of 8.
        let start = header_end.next_multiple_of(8);
        assert!(bytes[header_end..start].iter().all(|&b| b == 0));
        assert_eq!(&bytes[start..start + 8], &[0; 8]);
        // chunk_ptr of layer 0 (u64 [0, 2]) follows, 8-aligned.
        assert_eq!(
            &bytes[start + 8..start + 24],
            &[[0u8; 8], 2u64.to_le_bytes()].concat()[..]
        );
    }

    /// A sink that takes `.0` more bytes, then fails.
    #[derive(Debug)]
    struct FullDisk(usize);

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if buf.len() > self.0 {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writing_to_a_sink_gives_the_same_bytes_or_its_error() {
        let meta = serde_json::json!({"k": 1});
        for model in [
            toy_model(),
            toy_model().compacted(WeightDtype::Int8).unwrap(),
        ] {
            let bytes = to_bytes(&model, &meta);
            assert_eq!(write(&model, &meta, Vec::new()).unwrap(), bytes);
            assert!(write(&model, &meta, FullDisk(bytes.len())).is_ok());
            for room in [0, 30, bytes.len() - 1] {
                let e = write(&model, &meta, FullDisk(room)).unwrap_err();
                assert_eq!(e.to_string(), "disk full");
            }
        }
        let path = std::env::temp_dir().join(format!("pecos-save-test-{}.bin", std::process::id()));
        super::super::save(&toy_model(), &meta, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), to_bytes(&toy_model(), &meta));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_mapped_load_equals_a_read_load() {
        let meta = serde_json::json!({"k": 1});
        let bytes = to_bytes(&toy_model(), &meta);
        let map = map_of(&bytes);
        let (mapped, meta_back) = from_map(&map).unwrap();
        assert_eq!((&mapped, &meta_back), (&toy_model(), &meta));
        assert!(mapped.is_memory_mapped() && !toy_model().is_memory_mapped());
        assert!(verify_map(&map).is_ok());
        // Saving a mapped model writes the same file.
        assert_eq!(to_bytes(&mapped, &meta), bytes);
    }

    #[test]
    fn a_mapped_load_refuses_damage_or_leaves_it_to_verify() {
        let bytes = to_bytes(&toy_model(), &serde_json::Value::Null);
        for n in 0..bytes.len() {
            assert!(from_map(&map_of(&bytes[..n])).is_err(), "truncated at {n}");
        }
        let mut caught_by_verify_only = 0;
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let map = map_of(&b);
            if from_map(&map).is_ok() {
                assert!(verify_map(&map).is_err(), "flipped byte {i} went unnoticed");
                caught_by_verify_only += 1;
            }
        }
        // Weights and the checksum itself pass the structural checks: only verify sees them.
        assert!(caught_by_verify_only > 4, "{caught_by_verify_only}");
    }

    #[test]
    fn a_mapped_load_checks_each_chunk_at_its_first_use() {
        let good = toy_model();
        let mut layers = good.layers().to_vec();
        let mut arrays = layers[1].arrays().clone();
        let Slots::U32(slots) = &mut arrays.entry_slot else {
            panic!("a trained layer has 32-bit slots");
        };
        slots.to_mut()[0] = 7; // entry 0 is in parent 0's chunk, of one child
        layers[1] = Layer::from_arrays(layers[1].chain().clone(), arrays);
        let bad = XLinearModel { layers, ..good };
        let bytes = to_bytes(&bad, &serde_json::Value::Null);
        assert!(from_bytes(&bytes).is_err());
        let (mapped, _) = from_map(&map_of(&bytes)).unwrap();
        let layer = &mapped.layers()[1];
        assert!(layer.chunk_child_weights(1).is_ok());
        let refused =
            |r: Result<_>| matches!(r, Err(PecosError::Format(m)) if m.contains("parent 0"));
        assert!(refused(layer.chunk_child_weights(0).map(|_| ())));
        assert!(refused(layer.to_csc(3).map(|_| ())));
        assert!(refused(super::super::verify(&mapped)));
    }

    /// The toy model with its weights compacted to each dtype (float32: the slots only).
    fn compact_models() -> Vec<XLinearModel> {
        [
            WeightDtype::Float32,
            WeightDtype::Float16,
            WeightDtype::Int8,
        ]
        .map(|dtype| toy_model().compacted(dtype).unwrap())
        .into()
    }

    #[test]
    fn compact_models_round_trip_read_and_mapped() {
        let meta = serde_json::json!({"k": 1});
        for model in compact_models() {
            let bytes = to_bytes(&model, &meta);
            assert_eq!(from_bytes(&bytes).unwrap(), (model.clone(), meta.clone()));
            let map = map_of(&bytes);
            let (mapped, _) = from_map(&map).unwrap();
            assert_eq!(mapped, model);
            assert!(mapped.is_memory_mapped());
            assert!(super::super::verify(&mapped).is_ok());
            assert_eq!(to_bytes(&mapped, &meta), bytes);
        }
    }

    #[test]
    fn damaged_compact_files_are_refused() {
        for model in compact_models() {
            let bytes = to_bytes(&model, &serde_json::Value::Null);
            for n in 0..bytes.len() {
                assert!(from_bytes(&bytes[..n]).is_err(), "truncated at {n}");
                assert!(from_map(&map_of(&bytes[..n])).is_err(), "truncated at {n}");
            }
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0x5a;
                assert!(from_bytes(&b).is_err(), "flipped byte {i}");
                if let Ok((mapped, _)) = from_map(&map_of(&b)) {
                    assert!(super::super::verify(&mapped).is_err(), "flipped byte {i}");
                }
            }
        }
    }

    #[test]
    fn version_3_files_are_read_and_mapped() {
        let model = toy_model();
        let v3 = encode(
            &model,
            &serde_json::Value::Null,
            FLOAT32_VERSION,
            Vec::new(),
        )
        .finish();
        assert_eq!(from_bytes(&v3).unwrap().0, model);
        assert_eq!(from_map(&map_of(&v3)).unwrap().0, model);
        // A model that was not compacted is written as in version 3 but for the version.
        let v4 = to_bytes(&model, &serde_json::Value::Null);
        let n = v4.len();
        assert_eq!(
            (v3.len(), &v3[..8], &v3[12..n - 4]),
            (n, &v4[..8], &v4[12..n - 4])
        );
    }

    #[test]
    fn version_2_cannot_be_mapped() {
        let v2 = version_2_bytes(&toy_model(), &serde_json::Value::Null);
        assert!(
            matches!(from_map(&map_of(&v2)), Err(PecosError::Format(m)) if m.contains("version 2") && m.contains("save it again"))
        );
    }

    #[test]
    fn rejects_truncation_corruption_and_foreign_files() {
        for bytes in [
            to_bytes(&toy_model(), &serde_json::Value::Null),
            version_2_bytes(&toy_model(), &serde_json::Value::Null),
        ] {
            for n in [0, 7, 12, 30, bytes.len() - 1] {
                assert!(from_bytes(&bytes[..n]).is_err(), "truncated at {n}");
            }
            for i in (0..bytes.len()).step_by(7) {
                let mut b = bytes.clone();
                b[i] ^= 0x5a;
                assert!(from_bytes(&b).is_err(), "flipped byte {i}");
            }
        }
        let bytes = to_bytes(&toy_model(), &serde_json::Value::Null);
        let mut v5 = bytes.clone();
        v5[8] = 5;
        assert!(matches!(from_bytes(&v5), Err(PecosError::Format(m)) if m.contains("version 5")));
        let mut v1 = bytes.clone();
        v1[8] = 1;
        assert!(
            matches!(from_bytes(&v1), Err(PecosError::Format(m)) if m.contains("version 1") && m.contains("re-train"))
        );
        assert!(from_bytes(b"PK\x03\x04 a zip file").is_err());
    }
}

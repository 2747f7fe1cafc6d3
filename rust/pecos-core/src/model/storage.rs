//! The storage boundary of the model: every array a layer keeps, in the one type that files are
//! written from and read into ([`crate::io`] sees nothing else of a [`super::Layer`]). Each array
//! is either owned or a typed view into a memory-mapped model file ([`Array`]); the kernels see
//! slices either way.

use crate::error::{PecosError, Result};
use crate::io::GuardedMap;
use half::f16;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, Range};
use std::sync::Arc;

/// A number type that a file's bytes can be viewed as in place.
///
/// # Safety
/// Implementors are plain numbers without padding, of which every bit pattern is a valid value,
/// so that any aligned bytes of the right length are a valid `[Self]`.
pub(crate) unsafe trait Element: Copy + PartialEq + fmt::Debug {
    /// The value of `size_of::<Self>()` little-endian bytes.
    fn from_le_slice(bytes: &[u8]) -> Self;
    /// Appends the little-endian bytes of `self` to `out`.
    fn put_le(self, out: &mut Vec<u8>);
}

/// Implements [`Element`] for plain number types by their `from_le_bytes` / `to_le_bytes`.
macro_rules! plain_elements {
    ($($t:ty),*) => {$(
        // SAFETY: a plain number without padding; every bit pattern is a valid value (NaNs
        // included for the floats; `half::f16` is a transparent `u16`).
        unsafe impl Element for $t {
            fn from_le_slice(b: &[u8]) -> Self {
                let mut bytes = [0u8; size_of::<$t>()];
                bytes.copy_from_slice(&b[..size_of::<$t>()]);
                <$t>::from_le_bytes(bytes)
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

plain_elements!(u8, i8, u16, u32, u64, f16, f32, f64);

/// The child slot of an entry (its position among its parent's children), stored in 8, 16 or 32
/// bits: the scoring kernels are generic over the width.
pub(crate) trait Slot: Element {
    fn index(self) -> usize;
}

impl Slot for u8 {
    fn index(self) -> usize {
        self.into()
    }
}

impl Slot for u16 {
    fn index(self) -> usize {
        self.into()
    }
}

impl Slot for u32 {
    fn index(self) -> usize {
        self as usize
    }
}

/// A stored weight of an entry as the kernels multiply it: the weight itself (float32, float16),
/// or the 8-bit integer that its child's scale multiplies once after the dot product (int8).
pub(crate) trait Weight: Element {
    fn widen(self) -> f32;
}

impl Weight for f32 {
    fn widen(self) -> f32 {
        self
    }
}

impl Weight for f16 {
    /// Exact for every finite float16 (what validated layers hold), without a branch or a call:
    /// the sign, exponent and mantissa bits moved to their float32 places read as a float32
    /// `2^-112` times the value (subnormals included), which one multiplication by `2^112`
    /// rescales. `half`'s conversion calls the F16C instruction through run-time detection, or
    /// emulates it with branches, for every weight.
    #[inline]
    fn widen(self) -> f32 {
        let two_pow_112 = f32::from_bits((127 + 112) << 23);
        let h = u32::from(self.to_bits());
        f32::from_bits(((h & 0x8000) << 16) | ((h & 0x7fff) << 13)) * two_pow_112
    }
}

impl Weight for i8 {
    fn widen(self) -> f32 {
        self.into()
    }
}

/// An array of a layer: owned, or `len` elements at byte `start` of a mapped file (checked in
/// bounds and aligned when made, by [`Array::mapped`]).
#[derive(Clone)]
pub(crate) enum Array<T> {
    Owned(Vec<T>),
    Mapped {
        map: Arc<GuardedMap>,
        start: usize,
        len: usize,
        element: PhantomData<T>,
    },
}

impl<T: Element> Array<T> {
    /// A view of the bytes `span` of `map` as elements of `T`.
    ///
    /// # Errors
    /// [`PecosError::Format`] if `span` is not a whole number of elements inside the map, if it
    /// is not aligned for `T` in memory, or on a big-endian machine (files are little-endian).
    pub(crate) fn mapped(map: &Arc<GuardedMap>, span: Range<usize>) -> Result<Self> {
        let width = size_of::<T>();
        let address = (map.as_ptr() as usize).checked_add(span.start);
        if cfg!(target_endian = "big") {
            return Err(PecosError::Format(
                "memory-mapped models need a little-endian machine (load without mmap)".into(),
            ));
        }
        if span.start > span.end
            || span.end > map.len()
            || !span.len().is_multiple_of(width)
            || address.is_none_or(|a| !a.is_multiple_of(align_of::<T>()))
        {
            return Err(PecosError::Format(
                "an array of the model file is out of bounds or misaligned".into(),
            ));
        }
        Ok(Array::Mapped {
            map: Arc::clone(map),
            start: span.start,
            len: span.len() / width,
            element: PhantomData,
        })
    }

    /// The owned elements, copied out of the file first if mapped (as `Cow::to_mut`).
    pub(crate) fn to_mut(&mut self) -> &mut Vec<T> {
        if let Array::Mapped { .. } = self {
            *self = Array::Owned(self.to_vec());
        }
        match self {
            Array::Owned(v) => v,
            Array::Mapped { .. } => unreachable!("replaced by an owned copy above"),
        }
    }

    /// The file this array is a view of, if mapped.
    pub(crate) fn map(&self) -> Option<&Arc<GuardedMap>> {
        match self {
            Array::Owned(_) => None,
            Array::Mapped { map, .. } => Some(map),
        }
    }
}

impl<T: Element> Deref for Array<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Array::Owned(v) => v,
            Array::Mapped {
                map, start, len, ..
            } => {
                // SAFETY: `Array::mapped` checked that `len` elements from `start` lie inside the
                // map and are aligned for `T`; every bit pattern is a valid `T` (`Element`); the
                // map lives as long as `self` holds its `Arc`, and is never written through.
                unsafe { std::slice::from_raw_parts(map.as_ptr().add(*start).cast::<T>(), *len) }
            }
        }
    }
}

impl<T> From<Vec<T>> for Array<T> {
    fn from(v: Vec<T>) -> Self {
        Array::Owned(v)
    }
}

impl<T> Default for Array<T> {
    fn default() -> Self {
        Array::Owned(Vec::new())
    }
}

impl<T: Element> PartialEq for Array<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Element> PartialEq<Vec<T>> for Array<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        **self == **other
    }
}

impl<T: Element> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// The child slots of a layer's entries, in the narrowest width that its parent with the most
/// children allows once compacted ([`super::Layer::compacted`]); 32 bits as trained.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Slots {
    U8(Array<u8>),
    U16(Array<u16>),
    U32(Array<u32>),
}

impl Default for Slots {
    fn default() -> Self {
        Slots::U32(Array::default())
    }
}

impl Slots {
    pub fn len(&self) -> usize {
        match self {
            Slots::U8(s) => s.len(),
            Slots::U16(s) => s.len(),
            Slots::U32(s) => s.len(),
        }
    }

    /// The slot of entry `e` (`e < len()`).
    pub fn get(&self, e: usize) -> usize {
        match self {
            Slots::U8(s) => s[e].index(),
            Slots::U16(s) => s[e].index(),
            Slots::U32(s) => s[e].index(),
        }
    }

    /// Every slot, widened (for compaction and checks; the kernels read the stored width).
    pub fn to_indices(&self, range: Range<usize>) -> Vec<usize> {
        fn widen<S: Slot>(s: &[S]) -> Vec<usize> {
            s.iter().map(|&s| s.index()).collect()
        }
        match self {
            Slots::U8(s) => widen(&s[range]),
            Slots::U16(s) => widen(&s[range]),
            Slots::U32(s) => widen(&s[range]),
        }
    }

    /// The slots `indices` (each below `n_slots`) in the narrowest width that holds `n_slots`.
    pub fn narrowest(indices: &[usize], n_slots: usize) -> Self {
        if n_slots <= 1 << 8 {
            Slots::U8(indices.iter().map(|&s| s as u8).collect::<Vec<_>>().into())
        } else if n_slots <= 1 << 16 {
            Slots::U16(indices.iter().map(|&s| s as u16).collect::<Vec<_>>().into())
        } else {
            Slots::U32(indices.iter().map(|&s| s as u32).collect::<Vec<_>>().into())
        }
    }

    /// Whether every slot of entries `range` is below `n_slots`.
    pub fn all_below(&self, range: Range<usize>, n_slots: usize) -> bool {
        fn check<S: Slot>(s: &[S], n_slots: usize) -> bool {
            s.iter().all(|&s| s.index() < n_slots)
        }
        match self {
            Slots::U8(s) => check(&s[range], n_slots),
            Slots::U16(s) => check(&s[range], n_slots),
            Slots::U32(s) => check(&s[range], n_slots),
        }
    }

    fn map(&self) -> Option<&Arc<GuardedMap>> {
        match self {
            Slots::U8(s) => s.map(),
            Slots::U16(s) => s.map(),
            Slots::U32(s) => s.map(),
        }
    }
}

/// The weights of a layer's entries: float32 as trained, or compacted
/// ([`super::Layer::compacted`]) to float16 or to 8-bit integers with one scale per child.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Weights {
    F32(Array<f32>),
    F16(Array<f16>),
    /// The weight of an entry of child `c` is `scale[c] * q`, `q` in `-127..=127`.
    I8 {
        q: Array<i8>,
        scale: Array<f32>,
    },
}

impl Default for Weights {
    fn default() -> Self {
        Weights::F32(Array::default())
    }
}

impl Weights {
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) => w.len(),
            Weights::I8 { q, .. } => q.len(),
        }
    }

    /// The weight of entry `e` (`e < len()`) of child `child`, as the kernels use it.
    pub fn get(&self, e: usize, child: usize) -> f32 {
        match self {
            Weights::F32(w) => w[e],
            Weights::F16(w) => w[e].widen(),
            Weights::I8 { q, scale } => scale[child] * q[e].widen(),
        }
    }

    /// Whether the weights of entries `range` are finite numbers (for int8: in `-127..=127`, the
    /// range compaction writes).
    pub fn are_valid(&self, range: Range<usize>) -> bool {
        match self {
            Weights::F32(w) => w[range].iter().all(|v| v.is_finite()),
            Weights::F16(w) => w[range].iter().all(|v| v.is_finite()),
            Weights::I8 { q, .. } => q[range].iter().all(|&v| v != i8::MIN),
        }
    }

    /// The scale of each child (by child id), for int8 weights.
    pub fn scale(&self) -> Option<&[f32]> {
        match self {
            Weights::I8 { scale, .. } => Some(scale),
            Weights::F32(_) | Weights::F16(_) => None,
        }
    }

    pub fn dtype(&self) -> WeightDtype {
        match self {
            Weights::F32(_) => WeightDtype::Float32,
            Weights::F16(_) => WeightDtype::Float16,
            Weights::I8 { .. } => WeightDtype::Int8,
        }
    }

    fn map(&self) -> Option<&Arc<GuardedMap>> {
        match self {
            Weights::F32(w) => w.map(),
            Weights::F16(w) => w.map(),
            Weights::I8 { q, .. } => q.map(),
        }
    }
}

/// How the weights of a model are stored: float32 as trained, or compacted to float16 or to
/// 8-bit integers with one scale per child (see [`crate::model::XLinearModel::compacted`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    #[default]
    Float32,
    Float16,
    Int8,
}

impl WeightDtype {
    /// The dtype called `name` ("float32", "float16" or "int8").
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "float32" => Ok(WeightDtype::Float32),
            "float16" => Ok(WeightDtype::Float16),
            "int8" => Ok(WeightDtype::Int8),
            _ => Err(PecosError::param(
                "weight_dtype",
                format!("must be 'float32', 'float16' or 'int8', got {name:?}"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::Float32 => "float32",
            WeightDtype::Float16 => "float16",
            WeightDtype::Int8 => "int8",
        }
    }
}

/// Runs `$body` with `$slots` and `$values` bound to the typed slices of the entries `$range` of
/// `$arrays` (a [`LayerArrays`]): once per pair of stored widths, so that the kernel in `$body`
/// is compiled for each.
macro_rules! with_entries {
    ($arrays:expr, $range:expr, |$slots:ident, $values:ident| $body:expr) => {{
        use $crate::model::storage::{Slots, Weights};
        let range: std::ops::Range<usize> = $range;
        match &$arrays.entry_slot {
            Slots::U8(s) => with_entries!(@values $arrays, &s[range.clone()], range, $slots, $values, $body),
            Slots::U16(s) => with_entries!(@values $arrays, &s[range.clone()], range, $slots, $values, $body),
            Slots::U32(s) => with_entries!(@values $arrays, &s[range.clone()], range, $slots, $values, $body),
        }
    }};
    (@values $arrays:expr, $s:expr, $range:expr, $slots:ident, $values:ident, $body:expr) => {{
        let $slots = $s;
        match &$arrays.entry_value {
            Weights::F32(v) => { let $values = &v[$range]; $body }
            Weights::F16(v) => { let $values = &v[$range]; $body }
            Weights::I8 { q, .. } => { let $values = &q[$range]; $body }
        }
    }};
}
pub(crate) use with_entries;

/// The stored arrays of one layer of `n_parents` chunks over `n_children` children.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LayerArrays {
    /// Rows of parent `p`'s chunk are `chunk_ptr[p]..chunk_ptr[p + 1]`.
    pub chunk_ptr: Array<u64>,
    /// Entries of parent `p`'s chunk are `chunk_entry_ptr[p]..chunk_entry_ptr[p + 1]`.
    pub chunk_entry_ptr: Array<u64>,
    /// Feature id of each chunk row, increasing within a chunk.
    pub row_feature: Array<u32>,
    /// Row pointers of each chunk, relative to the chunk's first entry (so 32 bits suffice): chunk
    /// `p` owns `row_ptr[chunk_ptr[p] + p..=chunk_ptr[p + 1] + p]` (one more than its rows, the
    /// first 0), and its `k`-th row has entries `chunk_entry_ptr[p] + row_ptr[chunk_ptr[p] + p + k]`
    /// up to (excluding) `chunk_entry_ptr[p] + row_ptr[chunk_ptr[p] + p + k + 1]`.
    pub row_ptr: Array<u32>,
    /// Child slot (position among the parent's children) of each entry.
    pub entry_slot: Slots,
    pub entry_value: Weights,
    /// Bias weight of each child, indexed by child id (float32 in every dtype).
    pub bias_weight: Array<f32>,
}

impl LayerArrays {
    /// Number of chunk rows (distinct features over all chunks).
    pub fn n_rows(&self) -> usize {
        self.row_feature.len()
    }

    /// Number of (child slot, weight) entries.
    pub fn n_entries(&self) -> usize {
        self.entry_value.len()
    }

    /// The file these arrays are views of, if they were memory-mapped (all of a layer's arrays
    /// come from one file).
    pub(crate) fn map(&self) -> Option<&Arc<GuardedMap>> {
        self.entry_value.map().or_else(|| self.entry_slot.map())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// `bytes` in a file of their own, mapped.
    pub(crate) fn map_of(bytes: &[u8]) -> Arc<GuardedMap> {
        let mut file = scratch_file();
        file.write_all(bytes).unwrap();
        Arc::new(GuardedMap::new(&file, false).unwrap())
    }

    /// A file of its own for this test thread, already unlinked (gone once closed).
    fn scratch_file() -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "pecos-storage-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn mapped_arrays_read_the_file_in_place() {
        let bytes: Vec<u8> = [1u32, 2, 3, 4]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let map = map_of(&bytes);
        let a = Array::<u32>::mapped(&map, 4..16).unwrap();
        assert_eq!(*a, [2, 3, 4]);
        assert_eq!(a, Array::from(vec![2, 3, 4]));
        let mut copy = a.clone();
        copy.to_mut().push(5);
        assert_eq!((copy.map().is_none(), a.map().is_some()), (true, true));
        assert_eq!(*copy, [2, 3, 4, 5]);
    }

    #[test]
    fn float16_weights_widen_exactly() {
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits);
            if h.is_finite() {
                assert_eq!(h.widen().to_bits(), h.to_f32().to_bits(), "{bits:#06x}");
            }
        }
    }

    #[test]
    fn out_of_bounds_or_misaligned_spans_are_refused() {
        let map = map_of(&[0u8; 24]);
        let reversed = Range { start: 8, end: 4 };
        for span in [0..28, 20..28, 2..10, 0..6, reversed] {
            assert!(
                Array::<u32>::mapped(&map, span.clone()).is_err(),
                "{span:?}"
            );
        }
        assert!(Array::<u64>::mapped(&map, 4..12).is_err());
        assert!(Array::<u64>::mapped(&map, 8..24).is_ok());
        assert!(Array::<f32>::mapped(&map, 24..24).is_ok());
    }
}

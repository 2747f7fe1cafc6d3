//! The storage boundary of the model: every array a layer keeps, in the one type that files are
//! written from and read into ([`crate::io`] sees nothing else of a [`super::Layer`]). Each array
//! is either owned or a typed view into a memory-mapped model file ([`Array`]); the kernels see
//! slices either way.

use crate::error::{PecosError, Result};
use memmap2::Mmap;
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
}

// SAFETY: plain numbers; every bit pattern is a valid value.
unsafe impl Element for u32 {
    fn from_le_slice(b: &[u8]) -> Self {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

// SAFETY: plain numbers; every bit pattern is a valid value.
unsafe impl Element for u64 {
    fn from_le_slice(b: &[u8]) -> Self {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

// SAFETY: plain numbers; every bit pattern is a valid value (NaNs included).
unsafe impl Element for f32 {
    fn from_le_slice(b: &[u8]) -> Self {
        f32::from_bits(u32::from_le_slice(b))
    }
}

/// An array of a layer: owned, or `len` elements at byte `start` of a mapped file (checked in
/// bounds and aligned when made, by [`Array::mapped`]).
#[derive(Clone)]
pub(crate) enum Array<T> {
    Owned(Vec<T>),
    Mapped {
        map: Arc<Mmap>,
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
    pub(crate) fn mapped(map: &Arc<Mmap>, span: Range<usize>) -> Result<Self> {
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
    pub(crate) fn map(&self) -> Option<&Arc<Mmap>> {
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
    pub entry_slot: Array<u32>,
    pub entry_value: Array<f32>,
    /// Bias weight of each child, indexed by child id.
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
    pub(crate) fn map(&self) -> Option<&Arc<Mmap>> {
        self.entry_value.map()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// `bytes` in a file of their own, mapped.
    pub(crate) fn map_of(bytes: &[u8]) -> Arc<Mmap> {
        let mut file = scratch_file();
        file.write_all(bytes).unwrap();
        // SAFETY: a private temporary file nobody else writes.
        Arc::new(unsafe { Mmap::map(&file) }.unwrap())
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

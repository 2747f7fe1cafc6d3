//! The hash table of n-gram keys used for counting and for lookups, and the per-shard buffers
//! that make its accesses cache-friendly.
//!
//! N-grams are spread over [`N_SHARDS`] tables by hash. Workers do not touch a table once per
//! occurrence: they buffer a chunk of documents' occurrences per shard ([`Pending`]) and then
//! resolve each shard's buffer in one go, so the table being probed (its slots, entries and key
//! bytes) stays in cache.

use super::analyzer::{Analyzer, Scratch};
use super::hashing;
use super::vocab::bucket_key;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Shards of the n-gram tables (a power of two).
pub const N_SHARDS: usize = 64;
/// A reference to an entry is `index << SHARD_BITS | shard`.
pub(crate) const SHARD_BITS: u32 = N_SHARDS.trailing_zeros();

/// The hash of an n-gram key (fixed seed: the same in every process).
pub fn key_hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed_7e47).hash_one(key)
}

/// The shard of a hash. Bits 40..46: hashbrown uses the low bits for the bucket and the top
/// seven for its tag, so taking either for the shard would crowd every table.
pub fn shard_of(hash: u64) -> usize {
    ((hash >> 40) as usize) & (N_SHARDS - 1)
}

/// The reference of entry `index` of shard `shard`.
pub(crate) fn entry_ref(shard: usize, index: u32) -> u32 {
    (index << SHARD_BITS) | shard as u32
}

/// `(shard, index)` of a reference.
pub(crate) fn split_ref(r: u32) -> (usize, usize) {
    ((r as usize) & (N_SHARDS - 1), (r >> SHARD_BITS) as usize)
}

/// An entry: where its key lives in the arena, and its value.
pub(crate) struct Keyed<T> {
    start: u32,
    len: u32,
    pub value: T,
}

/// Distinct keys with a value each, in insertion order (an entry's index never changes), with a
/// hash table of entry indices and the keys' bytes in one arena.
pub(crate) struct KeyTable<T> {
    table: HashTable<u32>,
    entries: Vec<Keyed<T>>,
    arena: Vec<u8>,
}

impl<T> Default for KeyTable<T> {
    fn default() -> Self {
        KeyTable {
            table: HashTable::new(),
            entries: Vec::new(),
            arena: Vec::new(),
        }
    }
}

fn key_of<'a, T>(arena: &'a [u8], e: &Keyed<T>) -> &'a [u8] {
    &arena[e.start as usize..e.start as usize + e.len as usize]
}

impl<T> KeyTable<T> {
    pub fn with_capacity(entries: usize, key_bytes: usize) -> Self {
        KeyTable {
            table: HashTable::with_capacity(entries),
            entries: Vec::with_capacity(entries),
            arena: Vec::with_capacity(key_bytes),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn key(&self, index: usize) -> &[u8] {
        key_of(&self.arena, &self.entries[index])
    }

    pub fn entries(&self) -> &[Keyed<T>] {
        &self.entries
    }

    pub fn value_mut(&mut self, index: u32) -> &mut T {
        &mut self.entries[index as usize].value
    }

    /// The index of `key` (whose hash is `hash`).
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let (entries, arena) = (&self.entries, &self.arena);
        self.table
            .find(hash, |&i| key_of(arena, &entries[i as usize]) == key)
            .copied()
    }

    /// Adds a key that is not in the table; returns its index, or `None` if the table is full
    /// (4 GiB of keys or 2^26 entries, the limit of a reference).
    pub fn insert(&mut self, hash: u64, key: &[u8], value: T) -> Option<u32> {
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&i| i < 1 << (32 - SHARD_BITS))?;
        let start = u32::try_from(self.arena.len()).ok()?;
        let len = u32::try_from(key.len()).ok()?;
        start.checked_add(len)?;
        self.arena.extend_from_slice(key);
        self.entries.push(Keyed { start, len, value });
        let (entries, arena) = (&self.entries, &self.arena);
        self.table.insert_unique(hash, index, |&j| {
            key_hash(key_of(arena, &entries[j as usize]))
        });
        Some(index)
    }
}

/// One buffered occurrence: its key's hash and length (the bytes are in [`Pending::keys`]), its
/// document, its weight in fixed point, and its slot in the chunk's [`Occurrences::refs`].
#[derive(Clone, Copy)]
pub(crate) struct PendingItem {
    pub hash: u64,
    pub len: u32,
    pub doc: u32,
    pub weight: u64,
    pub slot: u32,
}

/// A worker's buffered occurrences for one shard.
#[derive(Default)]
pub(crate) struct Pending {
    keys: Vec<u8>,
    items: Vec<PendingItem>,
}

impl Pending {
    pub fn push(&mut self, key: &[u8], item: PendingItem) {
        self.keys.extend_from_slice(key);
        self.items.push(item);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Calls `f(key, item)` for every buffered occurrence in order, then empties the buffer.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8], &PendingItem)) {
        let mut at = 0;
        for item in &self.items {
            f(&self.keys[at..at + item.len as usize], item);
            at += item.len as usize;
        }
        self.keys.clear();
        self.items.clear();
    }
}

/// The n-gram occurrences of a chunk of documents, document after document.
#[derive(Default)]
pub(crate) struct Occurrences {
    /// Occurrences of each document.
    pub doc_lens: Vec<u32>,
    /// One reference per occurrence (an entry reference, a column or a bucket, depending on the
    /// stage), or [`DROPPED`].
    pub refs: Vec<u32>,
    /// Starting positions of the occurrences (position-weighted analyzers only).
    pub positions: Vec<u32>,
}

/// Marks an occurrence whose n-gram is not (or no longer) a feature.
pub(crate) const DROPPED: u32 = u32::MAX;

/// Fixed-point scale of the occurrence weights summed for `max_features` (integers keep the sums
/// independent of the order in which threads add them).
const TOTAL_SCALE: f64 = (1u64 << 32) as f64;

/// An occurrence weight in fixed point.
pub(crate) fn fixed(weight: f64) -> u64 {
    (weight * TOTAL_SCALE).round() as u64
}

/// Tokenizes a chunk of documents (the first is document number `first_doc`), buffering each
/// occurrence in the `pending` buffer of its shard with a reserved slot in the returned
/// occurrences. With `n_buckets`, the key of an n-gram is its hash bucket. Positions are kept if
/// the analyzer weighs by position.
pub(crate) fn buffer_chunk<S: AsRef<str>>(
    analyzer: &Analyzer,
    n_buckets: Option<usize>,
    chunk: &[S],
    first_doc: u32,
    scratch: &mut Scratch,
    pending: &mut Vec<Pending>,
) -> Occurrences {
    pending.resize_with(N_SHARDS, Pending::default);
    let weighted = analyzer.is_position_weighted();
    let mut occ = Occurrences::default();
    for (j, doc) in chunk.iter().enumerate() {
        let before = occ.refs.len();
        analyzer.for_each_ngram(doc.as_ref(), scratch, |ngram, pos| {
            let bucket;
            let key = match n_buckets {
                Some(n) => {
                    bucket = bucket_key(hashing::bucket(ngram, n));
                    &bucket[..]
                }
                None => ngram,
            };
            let hash = key_hash(key);
            let item = PendingItem {
                hash,
                len: key.len() as u32,
                doc: first_doc + j as u32,
                weight: fixed(analyzer.weight(pos)),
                slot: occ.refs.len() as u32,
            };
            pending[shard_of(hash)].push(key, item);
            occ.refs.push(DROPPED);
            if weighted {
                occ.positions.push(pos as u32);
            }
        });
        occ.doc_lens.push((occ.refs.len() - before) as u32);
    }
    occ
}

/// The order in which a worker visits the shards of chunk `chunk`, staggered so that workers
/// seldom wait for the same lock.
pub(crate) fn shard_order(chunk: usize) -> impl Iterator<Item = usize> {
    let first = chunk.wrapping_mul(17);
    (0..N_SHARDS).map(move |k| (first + k) & (N_SHARDS - 1))
}

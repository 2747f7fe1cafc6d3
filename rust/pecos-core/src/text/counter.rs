//! Fitting: counting document frequencies of n-grams over a corpus streamed in batches.
//!
//! Memory is bounded by the number of distinct n-grams, not by the corpus: the counts live in
//! [`N_SHARDS`] locked key tables. A worker tokenizes a chunk of documents into per-shard buffers
//! and then adds each buffer to its shard under the shard's lock; a document's occurrences thus
//! reach a shard together, in order, which is what lets `last_doc` count each document once.
//! Every count is an integer, so the result does not depend on the thread count or on timing.
//!
//! For `fit_transform`, the counter can keep every occurrence as a 4-byte reference to its
//! n-gram, so the rows are built after fitting without tokenizing the documents again.

use super::analyzer::{Analyzer, Scratch};
use super::table::{
    buffer_chunk, entry_ref, shard_order, split_ref, KeyTable, Occurrences, Pending, DROPPED,
    N_SHARDS,
};
use super::vocab::{CsrParts, Vocabulary};
use super::{DfBound, TfidfConfig};
use crate::error::{PecosError, Result};
use rayon::prelude::*;
use std::sync::Mutex;

/// Documents handed to one worker at a time.
const CHUNK_DOCS: usize = 256;

/// What the table keeps per n-gram while counting.
struct CountState {
    /// The last document that incremented `df`.
    last_doc: u32,
    df: u32,
    total: u64,
}

fn too_many_ngrams() -> PecosError {
    PecosError::InvalidInput(
        "too many distinct n-grams to count; use hashing (n_features) or fit on less text".into(),
    )
}

/// Accumulates document frequencies batch by batch, then produces a [`Vocabulary`] (and, if
/// asked to record, the TF-IDF rows of the documents counted).
pub struct NgramCounter {
    analyzer: Analyzer,
    config: TfidfConfig,
    n_docs: u64,
    /// The counts, per shard; in hashing mode the keys are bucket numbers.
    shards: Vec<Mutex<KeyTable<CountState>>>,
    /// `Some` when recording occurrences: one entry per chunk of documents, in order.
    recorded: Option<Vec<Occurrences>>,
}

impl NgramCounter {
    /// A counter; with `record`, [`NgramCounter::finish`] also returns the rows of the
    /// documents counted.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] if the configuration is invalid.
    pub fn new(config: TfidfConfig, record: bool) -> Result<Self> {
        config.validate()?;
        let analyzer = Analyzer::new(config.analyzer.clone())?;
        Ok(NgramCounter {
            analyzer,
            config,
            n_docs: 0,
            shards: (0..N_SHARDS).map(|_| Mutex::default()).collect(),
            recorded: record.then(Vec::new),
        })
    }

    pub fn n_docs(&self) -> u64 {
        self.n_docs
    }

    /// Counts one batch of documents, in parallel on the current rayon pool.
    ///
    /// # Errors
    /// [`PecosError::InvalidInput`] if the corpus exceeds `2^32 - 1` documents or the table
    /// overflows.
    pub fn update<S: AsRef<str> + Sync>(&mut self, docs: &[S]) -> Result<()> {
        let end = self.n_docs + docs.len() as u64;
        if end > u64::from(u32::MAX) {
            return Err(PecosError::InvalidInput(
                "a corpus of more than 2^32 - 1 documents".into(),
            ));
        }
        let first = self.n_docs as u32;
        let (analyzer, shards, n_buckets) = (&self.analyzer, &self.shards, self.config.n_buckets);
        let counted: Vec<Occurrences> = docs
            .par_chunks(CHUNK_DOCS)
            .enumerate()
            .map_init(
                || (Scratch::default(), Vec::new()),
                |(scratch, pending), (c, chunk)| {
                    let first = first + (c * CHUNK_DOCS) as u32;
                    let mut occ = buffer_chunk(analyzer, n_buckets, chunk, first, scratch, pending);
                    let full = shard_order(c)
                        .filter(|&s| !add_to_shard(s, &shards[s], &mut pending[s], &mut occ))
                        .count();
                    if full > 0 {
                        Err(too_many_ngrams())
                    } else {
                        Ok(occ)
                    }
                },
            )
            .collect::<Result<_>>()?;
        if let Some(recorded) = &mut self.recorded {
            recorded.extend(counted);
        }
        self.n_docs = end;
        Ok(())
    }

    /// Applies the document-frequency bounds and `max_features` and builds the vocabulary;
    /// when recording, also the TF-IDF rows of every document counted.
    ///
    /// # Errors
    /// [`PecosError::InvalidParam`] if `max_df` admits fewer documents than `min_df`, or for
    /// `max_features` in hashing mode; [`PecosError::InvalidInput`] if no n-gram survives.
    pub fn finish(
        self,
        min_df: DfBound,
        max_df: DfBound,
        max_features: Option<usize>,
    ) -> Result<(Vocabulary, Option<CsrParts>)> {
        let n = self.n_docs as f64;
        let bounds = (min_df.documents(n)?, max_df.documents(n)?);
        if bounds.1 < bounds.0 {
            return Err(PecosError::param(
                "max_df",
                "corresponds to fewer documents than min_df",
            ));
        }
        if max_features.is_some() && self.config.n_buckets.is_some() {
            return Err(PecosError::param(
                "max_features",
                "is not available in hashing mode (n_features)",
            ));
        }
        let NgramCounter {
            analyzer,
            config,
            n_docs,
            shards,
            recorded,
        } = self;
        let shards: Vec<KeyTable<CountState>> = shards
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let (vocab, rank_of) = select(analyzer, config, n_docs, shards, bounds, max_features)?;
        let rows = recorded.map(|occ| {
            vocab.rows(&occ, |r| {
                let (s, i) = split_ref(r);
                Some(rank_of[s][i]).filter(|&c| c != DROPPED)
            })
        });
        Ok((vocab, rows))
    }
}

/// Adds the buffered occurrences of one shard, writing their entry references into `occ`.
/// Returns false if the shard is full.
fn add_to_shard(
    s: usize,
    shard: &Mutex<KeyTable<CountState>>,
    pending: &mut Pending,
    occ: &mut Occurrences,
) -> bool {
    if pending.len() == 0 {
        return true;
    }
    // A poisoned lock means another worker panicked mid-insert; rayon re-raises that panic.
    let mut table = shard.lock().unwrap_or_else(|e| e.into_inner());
    let mut ok = true;
    pending.drain(|key, item| {
        let found = table.find(item.hash, key);
        let index = match found {
            Some(i) => {
                let st = table.value_mut(i);
                if st.last_doc != item.doc {
                    st.last_doc = item.doc;
                    st.df += 1;
                }
                st.total += item.weight;
                Some(i)
            }
            None => {
                let st = CountState {
                    last_doc: item.doc,
                    df: 1,
                    total: item.weight,
                };
                table.insert(item.hash, key, st)
            }
        };
        match index {
            Some(i) => occ.refs[item.slot as usize] = entry_ref(s, i),
            None => ok = false,
        }
    });
    ok
}

/// Keeps the keys whose document frequency is within `bounds` (the `max_features` largest totals
/// among them, ties to the earlier n-gram as in scikit-learn), ranks them in sorted order, and
/// builds the vocabulary. Also returns, per shard and entry, the rank of each counted key.
fn select(
    analyzer: Analyzer,
    config: TfidfConfig,
    n_docs: u64,
    shards: Vec<KeyTable<CountState>>,
    (lo, hi): (f64, f64),
    max_features: Option<usize>,
) -> Result<(Vocabulary, Vec<Vec<u32>>)> {
    let state = |r: u32| {
        let (s, i) = split_ref(r);
        &shards[s].entries()[i].value
    };
    let key = |r: u32| {
        let (s, i) = split_ref(r);
        shards[s].key(i)
    };
    // (first 16 key bytes, reference): most comparisons end at the prefix, in cache.
    let mut features: Vec<((u64, u64), u32)> = shards
        .par_iter()
        .enumerate()
        .flat_map_iter(|(s, sh)| {
            sh.entries().iter().enumerate().filter_map(move |(i, e)| {
                let df = f64::from(e.value.df);
                (df >= lo && df <= hi).then(|| (key_prefix(sh.key(i)), entry_ref(s, i as u32)))
            })
        })
        .collect();
    features.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| key(a.1).cmp(key(b.1))));
    if let Some(k) = max_features.filter(|&k| k < features.len()) {
        // With binary tf, "most frequent" means the largest document frequency.
        let rank = |r: u32| {
            let st = state(r);
            if config.binary {
                u64::from(st.df)
            } else {
                st.total
            }
        };
        let mut order: Vec<usize> = (0..features.len()).collect();
        order.select_nth_unstable_by_key(k, |&i| (std::cmp::Reverse(rank(features[i].1)), i));
        order.truncate(k);
        order.sort_unstable();
        features = order.into_iter().map(|i| features[i]).collect();
    }
    let mut rank_of: Vec<Vec<u32>> = shards.iter().map(|sh| vec![DROPPED; sh.len()]).collect();
    for (rank, &(_, r)) in features.iter().enumerate() {
        let (s, i) = split_ref(r);
        rank_of[s][i] = rank as u32;
    }
    let idf = features
        .iter()
        .map(|&(_, r)| config.idf(u64::from(state(r).df), n_docs))
        .collect();
    drop(features);
    let vocab = Vocabulary::from_counted(analyzer, config, n_docs, idf, &shards, &rank_of)?;
    Ok((vocab, rank_of))
}

/// The first 16 bytes of a key as two big-endian integers (zero-padded), which order like the
/// key up to ties, which a full comparison breaks.
fn key_prefix(key: &[u8]) -> (u64, u64) {
    let mut b = [0u8; 16];
    let n = key.len().min(16);
    b[..n].copy_from_slice(&key[..n]);
    let (hi, lo) = b.split_at(8);
    let word = |x: &[u8]| u64::from_be_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
    (word(hi), word(lo))
}

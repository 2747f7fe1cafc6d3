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

#[cfg(test)]
mod tests {
    use super::super::analyzer::{AnalyzerConfig, PositionDecay, DEFAULT_TOKEN_PATTERN};
    use super::super::Norm;
    use super::*;
    use crate::rng::SplitMix64;

    /// Word n-grams 1..=n with idf `ln(N / df) + 1` (not smoothed), so that `dfs` can read the
    /// document frequencies back.
    fn words(n: usize) -> TfidfConfig {
        TfidfConfig {
            analyzer: AnalyzerConfig::Word {
                ngram_range: (1, n),
                token_pattern: DEFAULT_TOKEN_PATTERN.into(),
            },
            n_buckets: None,
            binary: false,
            sublinear_tf: false,
            use_idf: true,
            smooth_idf: false,
            norm: Norm::L2,
        }
    }

    /// Character 1- to 3-grams weighted `1 / (i + 1)` by position: fractional occurrence weights.
    fn chars() -> TfidfConfig {
        TfidfConfig {
            analyzer: AnalyzerConfig::Chars {
                ngram_range: (1, 3),
                position_decay: PositionDecay::Inverse,
            },
            ..words(1)
        }
    }

    const ALL: DfBound = DfBound::Fraction(1.0);

    /// Counts the batches one after another, in the current rayon pool, and finishes.
    fn fit<S: AsRef<str> + Sync>(
        cfg: &TfidfConfig,
        batches: &[&[S]],
        record: bool,
        (min_df, max_df, max_features): (DfBound, DfBound, Option<usize>),
    ) -> (Vocabulary, Option<CsrParts>) {
        let mut c = NgramCounter::new(cfg.clone(), record).unwrap();
        for b in batches {
            c.update(b).unwrap();
        }
        assert_eq!(
            c.n_docs(),
            batches.iter().map(|b| b.len() as u64).sum::<u64>()
        );
        c.finish(min_df, max_df, max_features).unwrap()
    }

    /// `(n-gram, document frequency)` of every kept n-gram in column order, read back from the
    /// idf of a `words` configuration.
    fn dfs(v: &Vocabulary) -> Vec<(String, u64)> {
        let n = v.n_docs() as f64;
        let names = v.feature_names().unwrap();
        let df = v
            .idf()
            .iter()
            .map(|idf| (n / (idf - 1.0).exp()).round() as u64);
        names.iter().map(|s| s.to_string()).zip(df).collect()
    }

    fn names(v: &Vocabulary) -> Vec<&str> {
        v.feature_names().unwrap()
    }

    /// `n` documents of 0 to 6 words from a small vocabulary (deterministic).
    fn corpus(n: usize, seed: u64) -> Vec<String> {
        const WORDS: [&str; 12] = [
            "echo", "dot", "kindle", "fire", "tv", "stick", "alexa", "smart", "plug", "show",
            "mini", "max",
        ];
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let len = rng.below(7);
                let doc: Vec<&str> = (0..len).map(|_| WORDS[rng.below(WORDS.len())]).collect();
                doc.join(" ")
            })
            .collect()
    }

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

    fn assert_same_rows(a: &CsrParts, b: &CsrParts, what: &str) {
        assert_eq!(a.n_cols, b.n_cols, "{what}");
        assert_eq!(a.indptr, b.indptr, "{what}");
        assert_eq!(a.indices, b.indices, "{what}");
        assert_eq!(a.data, b.data, "{what}");
    }

    #[test]
    fn document_frequencies_by_hand() {
        let docs = ["a b a", "b c", "c c c", "", "d a"];
        let (v, _) = fit(
            &words(2),
            &[&docs[..]],
            false,
            (DfBound::Count(1), ALL, None),
        );
        assert_eq!(v.n_docs(), 5);
        // Repeats inside a document count once ("a" in doc 0, "c" and "c c" in doc 2).
        let want = [
            ("a", 2),
            ("a b", 1),
            ("b", 2),
            ("b a", 1),
            ("b c", 1),
            ("c", 2),
            ("c c", 1),
            ("d", 1),
            ("d a", 1),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|&(s, d)| (s.to_string(), d)).collect();
        assert_eq!(dfs(&v), want);
    }

    #[test]
    fn document_frequencies_across_chunks_and_threads() {
        // 600 documents: three chunks of up to 256 counted by four threads. "same" is in the
        // 6th document of each chunk: the documents of different chunks must not be confused.
        let docs: Vec<String> = (0..600)
            .map(|i| {
                let mut d = format!("every every doc{i}");
                if i % 2 == 0 {
                    d.push_str(" even");
                }
                if i % 3 == 0 {
                    d.push_str(" third third");
                }
                if i % CHUNK_DOCS == 5 {
                    d.push_str(" same");
                }
                d
            })
            .collect();
        let (v, _) = pool(4).install(|| {
            fit(
                &words(1),
                &[&docs[..]],
                false,
                (DfBound::Count(1), ALL, None),
            )
        });
        let dfs = dfs(&v);
        let df = |name: &str| dfs.iter().find(|(s, _)| s == name).map(|e| e.1);
        assert_eq!(
            (df("every"), df("even"), df("third")),
            (Some(600), Some(300), Some(200))
        );
        assert_eq!(df("same"), Some(3));
        assert_eq!(
            (df("doc0"), df("doc599"), dfs.len()),
            (Some(1), Some(1), 604)
        );
    }

    #[test]
    fn recorded_rows_equal_a_later_transform() {
        let docs = corpus(700, 1);
        let batches: [&[String]; 3] = [&docs[..1], &docs[1..300], &docs[300..]];
        let hashing = TfidfConfig {
            n_buckets: Some(32),
            ..words(2)
        };
        for (cfg, bounds) in [
            (words(2), (DfBound::Count(2), ALL, Some(50))),
            (chars(), (DfBound::Count(1), DfBound::Fraction(0.5), None)),
            (hashing, (DfBound::Count(3), ALL, None)),
        ] {
            let (v, rows) = fit(&cfg, &batches, true, bounds);
            assert_same_rows(&rows.unwrap(), &v.transform(&docs), &format!("{cfg:?}"));
        }
    }

    #[test]
    fn batches_and_threads_give_the_same_vocabulary() {
        let docs = corpus(700, 2);
        let bounds = (DfBound::Count(2), ALL, Some(100));
        let fifties: Vec<&[String]> = docs.chunks(50).collect();
        let runs = [
            pool(1).install(|| fit(&chars(), &[&docs[..]], false, bounds).0),
            pool(3).install(|| {
                let batches: [&[String]; 4] =
                    [&docs[..1], &docs[1..256], &docs[256..512], &docs[512..]];
                fit(&chars(), &batches, false, bounds).0
            }),
            pool(2).install(|| fit(&chars(), &fifties, false, bounds).0),
        ];
        let first = &runs[0];
        assert_eq!(names(first).len(), 100);
        let rows = first.transform(&docs);
        for (i, v) in runs.iter().enumerate().skip(1) {
            assert_eq!(names(v), names(first), "run {i}");
            assert_eq!(v.idf(), first.idf(), "run {i}");
            assert_same_rows(&v.transform(&docs), &rows, &format!("run {i}"));
        }
    }

    #[test]
    fn min_df_max_df_and_max_features_filter() {
        // Document frequencies a 4, b 3, c 2, d 1; total occurrences a 4, b 3, c 2, d 5.
        let docs = ["a b c d d d d d", "a b c", "a b", "a"];
        let binary = TfidfConfig {
            binary: true,
            ..words(1)
        };
        use DfBound::{Count, Fraction};
        for (cfg, bounds, want) in [
            (&words(1), (Count(1), ALL, None), vec!["a", "b", "c", "d"]),
            (&words(1), (Count(2), ALL, None), vec!["a", "b", "c"]),
            (&words(1), (Count(1), Count(3), None), vec!["b", "c", "d"]),
            (&words(1), (Count(1), Fraction(0.5), None), vec!["c", "d"]), // df <= 2
            (&words(1), (Fraction(0.5), ALL, None), vec!["a", "b", "c"]), // df >= 2
            (&words(1), (Count(2), Count(3), None), vec!["b", "c"]),
            (&words(1), (Count(1), ALL, Some(1)), vec!["d"]), // largest total
            (&binary, (Count(1), ALL, Some(1)), vec!["a"]),   // binary: largest df
            (&words(1), (Count(1), ALL, Some(2)), vec!["a", "d"]), // in sorted order
            (&words(1), (Count(2), ALL, Some(1)), vec!["a"]), // the df bounds apply first
            (
                &words(1),
                (Count(1), ALL, Some(9)),
                vec!["a", "b", "c", "d"],
            ),
        ] {
            let (v, _) = fit(cfg, &[&docs[..]], false, bounds);
            assert_eq!(names(&v), want, "{bounds:?}, binary {}", cfg.binary);
        }
        // Equal totals: max_features keeps the earlier n-grams in sorted order.
        let (v, _) = fit(
            &words(1),
            &[&["y x", "z"][..]],
            false,
            (Count(1), ALL, Some(2)),
        );
        assert_eq!(names(&v), ["x", "y"]);

        let invalid = |cfg: &TfidfConfig, (lo, hi, k): (DfBound, DfBound, Option<usize>)| {
            let mut c = NgramCounter::new(cfg.clone(), false).unwrap();
            c.update(&docs).unwrap();
            matches!(c.finish(lo, hi, k), Err(PecosError::InvalidParam { .. }))
        };
        assert!(invalid(&words(1), (Fraction(1.5), ALL, None)));
        assert!(invalid(&words(1), (Count(3), Count(2), None)));
        let hashing = TfidfConfig {
            n_buckets: Some(8),
            ..words(1)
        };
        assert!(invalid(&hashing, (Count(1), ALL, Some(2))));
        assert!(!invalid(&hashing, (Count(1), ALL, None)));
    }
}

//! A fitted vocabulary: n-gram -> column, per-column idf, and the transform to TF-IDF rows.
//!
//! The kept n-grams live in [`N_SHARDS`] key tables whose values are their ranks in sorted
//! order. `transform` tokenizes a chunk of documents into per-shard buffers and resolves each
//! shard's buffer in one go, so the table being probed stays in cache. In n-gram mode the rank is
//! the column. In hashing mode the keys are the bucket numbers (4 big-endian bytes, so that byte
//! order is numeric order) and a rank maps to its bucket: memory follows the buckets actually
//! seen, not the number of columns.
//!
//! File format (little-endian):
//! ```text
//! magic "PECOSTXT" | version u32 | header length u64 | header JSON (config, counts, metadata)
//! | idf f64[n_kept]
//! | n-gram mode: offsets u64[n_kept + 1] | names u8[names_len]   (rank i: names[offsets[i]..])
//! | hashing mode: buckets u32[n_kept]                             (strictly increasing)
//! | CRC-32 of everything before it, u32
//! ```

use super::analyzer::{Analyzer, Scratch};
use super::table::{buffer_chunk, key_hash, shard_of, KeyTable, Occurrences, DROPPED, N_SHARDS};
use super::{Norm, TfidfConfig};
use crate::error::{PecosError, Result};
use crate::io::envelope::{self, Writer};
use crate::io::Artifact;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"PECOSTXT";
/// Bump when the layout changes; loading refuses versions it does not know.
pub const TEXT_FORMAT_VERSION: u32 = 1;
/// Documents per parallel task in `transform`.
const CHUNK_DOCS: usize = 256;

/// A sparse matrix in CSR form, as produced by [`Vocabulary::transform`].
pub struct CsrParts {
    pub indptr: Vec<i64>,
    pub indices: Vec<i32>,
    pub data: Vec<f32>,
    pub n_cols: usize,
}

/// Rows built by one parallel task: their lengths and concatenated entries.
#[derive(Default)]
struct RowPieces {
    lens: Vec<usize>,
    indices: Vec<i32>,
    data: Vec<f32>,
}

/// One task's reusable buffers in `Vocabulary::transform`: tokenizer scratch, the pending
/// look-ups per shard, one row's entries.
type ChunkBuffers = (Scratch, Vec<super::table::Pending>, Vec<(u32, f64)>);

/// A fitted n-gram vocabulary with its idf weights.
pub struct Vocabulary {
    analyzer: Analyzer,
    config: TfidfConfig,
    n_docs: u64,
    /// Per kept key, by rank: the idf (1 without idf weighting).
    idf: Vec<f64>,
    /// Per shard: kept key -> rank.
    shards: Vec<KeyTable<u32>>,
    /// Hashing mode: the bucket (column) of each rank, increasing.
    buckets: Option<Vec<u32>>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    config: TfidfConfig,
    n_docs: u64,
    n_kept: usize,
    names_len: usize,
    metadata: serde_json::Value,
}

fn empty_vocabulary() -> PecosError {
    PecosError::InvalidInput(
        "empty vocabulary: the documents contain no n-grams, or min_df / max_df removed them all"
            .into(),
    )
}

/// The key of a hash bucket in the tables.
pub(crate) fn bucket_key(bucket: u32) -> [u8; 4] {
    bucket.to_be_bytes()
}

impl Vocabulary {
    /// The vocabulary of the counted keys, given the rank (or `DROPPED`) of each shard entry
    /// and the idf of each rank.
    pub(crate) fn from_counted<T: Sync>(
        analyzer: Analyzer,
        config: TfidfConfig,
        n_docs: u64,
        idf: Vec<f64>,
        counted: &[KeyTable<T>],
        rank_of: &[Vec<u32>],
    ) -> Result<Self> {
        check_kept_count(idf.len())?;
        let shards: Vec<KeyTable<u32>> = counted
            .par_iter()
            .zip(rank_of)
            .map(|(sh, ranks)| {
                let kept = || (0..sh.len()).filter(|&i| ranks[i] != DROPPED);
                let bytes = kept().map(|i| sh.key(i).len()).sum();
                let mut table = KeyTable::with_capacity(kept().count(), bytes);
                for i in kept() {
                    let key = sh.key(i);
                    // Cannot be full: it holds a subset of a table that fit.
                    table.insert(key_hash(key), key, ranks[i]);
                }
                table
            })
            .collect();
        let buckets = config.n_buckets.map(|_| {
            let mut b = vec![0u32; idf.len()];
            for sh in &shards {
                for (i, e) in sh.entries().iter().enumerate() {
                    b[e.value as usize] = decode_bucket(sh.key(i));
                }
            }
            b
        });
        Ok(Vocabulary {
            analyzer,
            config,
            n_docs,
            idf,
            shards,
            buckets,
        })
    }

    pub fn config(&self) -> &TfidfConfig {
        &self.config
    }

    pub fn n_docs(&self) -> u64 {
        self.n_docs
    }

    /// Number of output columns: the n-grams kept, or the hash buckets.
    pub fn n_columns(&self) -> usize {
        self.config.n_buckets.unwrap_or(self.idf.len())
    }

    /// The idf of each kept n-gram or bucket, in column order.
    pub fn idf(&self) -> &[f64] {
        &self.idf
    }

    /// Hashing mode: the column of each kept bucket (see [`Vocabulary::idf`]); `None` otherwise.
    pub fn kept_buckets(&self) -> Option<&[u32]> {
        self.buckets.as_deref()
    }

    /// The n-grams in column order, or `None` in hashing mode.
    pub fn feature_names(&self) -> Option<Vec<&str>> {
        if self.buckets.is_some() {
            return None;
        }
        let mut names = vec![""; self.idf.len()];
        for sh in &self.shards {
            for (i, e) in sh.entries().iter().enumerate() {
                // Keys are whole n-grams of valid UTF-8 documents (checked again on load).
                names[e.value as usize] = std::str::from_utf8(sh.key(i)).unwrap_or_default();
            }
        }
        Some(names)
    }

    fn column_of_rank(&self, rank: u32) -> u32 {
        self.buckets.as_ref().map_or(rank, |b| b[rank as usize])
    }

    /// TF-IDF rows of `docs`, in parallel on the current rayon pool. N-grams outside the
    /// vocabulary are ignored; a document without known n-grams gives an empty row.
    pub fn transform<S: AsRef<str> + Sync>(&self, docs: &[S]) -> CsrParts {
        let chunk_rows = |(scratch, pending, row): &mut ChunkBuffers, chunk: &[S]| {
            let n_buckets = self.config.n_buckets;
            let mut occ = buffer_chunk(&self.analyzer, n_buckets, chunk, 0, scratch, pending);
            for (sh, p) in self.shards.iter().zip(pending.iter_mut()) {
                p.drain(|key, item| {
                    if let Some(i) = sh.find(item.hash, key) {
                        occ.refs[item.slot as usize] = sh.entries()[i as usize].value;
                    }
                });
            }
            self.row_pieces(&occ, |r| Some(r).filter(|&r| r != DROPPED), row)
        };
        let pieces: Vec<RowPieces> = if docs.len() <= CHUNK_DOCS {
            // One chunk is computed on the calling thread: handing it to a thread pool would cost
            // more than the work itself (a real-time query is one document).
            vec![chunk_rows(&mut ChunkBuffers::default(), docs)]
        } else {
            docs.par_chunks(CHUNK_DOCS)
                .map_init(ChunkBuffers::default, chunk_rows)
                .collect()
        };
        self.assemble(pieces)
    }

    /// The rows of recorded occurrences (chunks in order), mapping references to ranks with
    /// `rank`.
    pub(crate) fn rows(
        &self,
        chunks: &[Occurrences],
        rank: impl Fn(u32) -> Option<u32> + Sync,
    ) -> CsrParts {
        let pieces = chunks
            .par_iter()
            .map_init(Vec::new, |row, occ| self.row_pieces(occ, &rank, row))
            .collect();
        self.assemble(pieces)
    }

    /// The rows of one chunk of occurrences.
    fn row_pieces(
        &self,
        occ: &Occurrences,
        rank: impl Fn(u32) -> Option<u32>,
        row: &mut Vec<(u32, f64)>,
    ) -> RowPieces {
        let mut piece = RowPieces::default();
        let mut at = 0;
        for &len in &occ.doc_lens {
            row.clear();
            for k in at..at + len as usize {
                if let Some(r) = rank(occ.refs[k]) {
                    let pos = occ.positions.get(k).map_or(0, |&p| p as usize);
                    row.push((r, self.analyzer.weight(pos)));
                }
            }
            at += len as usize;
            self.push_row(row, &mut piece);
        }
        piece
    }

    /// Concatenates the rows built in parallel, in order.
    fn assemble(&self, pieces: Vec<RowPieces>) -> CsrParts {
        let n_rows = pieces.iter().map(|p| p.lens.len()).sum::<usize>();
        let nnz = pieces.iter().map(|p| p.indices.len()).sum();
        let mut out = CsrParts {
            indptr: Vec::with_capacity(n_rows + 1),
            indices: Vec::with_capacity(nnz),
            data: Vec::with_capacity(nnz),
            n_cols: self.n_columns(),
        };
        out.indptr.push(0);
        let mut end = 0i64;
        for piece in pieces {
            for len in piece.lens {
                end += len as i64;
                out.indptr.push(end);
            }
            out.indices.extend_from_slice(&piece.indices);
            out.data.extend_from_slice(&piece.data);
        }
        out
    }

    /// Sums the occurrence weights `(rank, weight)` of one document per rank, applies tf and idf
    /// weighting and the norm, and appends the row to `piece`. Ranks increase with columns, so
    /// the row comes out sorted.
    fn push_row(&self, row: &mut Vec<(u32, f64)>, piece: &mut RowPieces) {
        row.sort_by_key(|e| e.0);
        let mut n = 0;
        for i in 0..row.len() {
            if n > 0 && row[n - 1].0 == row[i].0 {
                row[n - 1].1 += row[i].1;
            } else {
                row[n] = row[i];
                n += 1;
            }
        }
        row.truncate(n);
        let cfg = &self.config;
        for v in row.iter_mut() {
            let mut tf = v.1;
            if cfg.binary {
                tf = 1.0;
            }
            if cfg.sublinear_tf && tf > 0.0 {
                tf = 1.0 + tf.ln();
            }
            v.1 = tf * self.idf[v.0 as usize];
        }
        row.retain(|v| v.1 != 0.0);
        let norm = match cfg.norm {
            Norm::None => 1.0,
            Norm::L1 => row.iter().map(|v| v.1.abs()).sum(),
            Norm::L2 => row.iter().map(|v| v.1 * v.1).sum::<f64>().sqrt(),
        };
        let scale = if norm > 0.0 { 1.0 / norm } else { 1.0 };
        let before = piece.indices.len();
        for &(r, v) in row.iter() {
            // A tiny weight can vanish in float32; it is then no feature at all.
            let value = (v * scale) as f32;
            if value != 0.0 {
                piece.indices.push(self.column_of_rank(r) as i32);
                piece.data.push(value);
            }
        }
        piece.lens.push(piece.indices.len() - before);
    }
}

impl Artifact for Vocabulary {
    /// Serialises the vocabulary with caller metadata (e.g. the featurizer's parameters).
    fn to_bytes(&self, metadata: &serde_json::Value) -> Vec<u8> {
        let mut names = String::new();
        let mut offsets = Vec::new();
        if let Some(list) = self.feature_names() {
            offsets.reserve(list.len() + 1);
            offsets.push(0);
            for name in list {
                names.push_str(name);
                offsets.push(names.len() as u64);
            }
        }
        let header = Header {
            config: self.config.clone(),
            n_docs: self.n_docs,
            n_kept: self.idf.len(),
            names_len: names.len(),
            metadata: metadata.clone(),
        };
        let mut w = Writer::new(MAGIC, TEXT_FORMAT_VERSION, &header, false);
        w.f64s(&self.idf);
        match &self.buckets {
            Some(buckets) => w.u32s(buckets),
            None => {
                w.u64s(&offsets);
                w.bytes(names.as_bytes());
            }
        }
        w.finish()
    }

    fn from_bytes(bytes: &[u8]) -> Result<(Self, serde_json::Value)> {
        let fail = |msg: &str| PecosError::Format(msg.to_string());
        let file = envelope::open_version(bytes, MAGIC, "text featurizer", TEXT_FORMAT_VERSION)?;
        let header: Header = file.header()?;
        let n = header.n_kept;
        let mut layout = file.layout(false)?;
        layout.array(n, 8);
        match header.config.n_buckets {
            Some(_) => layout.array(n, 4),
            None => layout
                .array(n.saturating_add(1), 8)
                .array(header.names_len, 1),
        };
        let mut r = file.body(&layout)?;
        let invalid = |e: PecosError| PecosError::Format(format!("invalid configuration: {e}"));
        header.config.validate().map_err(invalid)?;
        let analyzer = Analyzer::new(header.config.analyzer.clone()).map_err(invalid)?;
        check_kept_count(n).map_err(|_| fail("kept column count out of range"))?;
        let idf = r.f64s(n)?;
        if !idf
            .iter()
            .all(|&x| (1.0..=max_idf(header.n_docs)).contains(&x))
        {
            return Err(fail(
                "idf values must lie in [1, 1 + ln(1 + n_docs)], as a fit gives",
            ));
        }
        let (keys, buckets): (Vec<Vec<u8>>, Option<Vec<u32>>) = match header.config.n_buckets {
            Some(n_buckets) => {
                let buckets = r.u32s(n)?;
                let increasing = buckets.windows(2).all(|w| w[0] < w[1]);
                if !increasing || buckets.last().is_some_and(|&b| b as usize >= n_buckets) {
                    return Err(fail("kept buckets are not increasing and in range"));
                }
                let keys = buckets.iter().map(|&b| bucket_key(b).to_vec()).collect();
                (keys, Some(buckets))
            }
            None => {
                let offsets = r.u64s(n + 1)?;
                let names = std::str::from_utf8(r.bytes(header.names_len)?)
                    .map_err(|_| fail("n-grams are not valid UTF-8"))?;
                envelope::check_sorted_strings(names, &offsets, "n-grams")?;
                if offsets.get(1) == Some(&0) {
                    return Err(fail("an n-gram is empty"));
                }
                let keys = offsets
                    .windows(2)
                    .map(|w| names.as_bytes()[w[0] as usize..w[1] as usize].to_vec())
                    .collect();
                (keys, None)
            }
        };
        let vocab = Vocabulary {
            analyzer,
            config: header.config,
            n_docs: header.n_docs,
            idf,
            shards: shards_of_keys(&keys),
            buckets,
        };
        Ok((vocab, header.metadata))
    }
}

/// The largest idf a fit over `n_docs` documents gives: `ln((1 + N) / (1 + df)) + 1` or
/// `ln(N / df) + 1` with `1 <= df <= N` is at most `1 + ln(1 + N)` (and at least 1). A loaded idf
/// above it could only make rows that overflow float32 (found by fuzzing); the margin covers
/// rounding.
fn max_idf(n_docs: u64) -> f64 {
    (1.0 + (1.0 + n_docs as f64).ln()) * (1.0 + 1e-12)
}

/// The bucket number stored in a hashing-mode key.
fn decode_bucket(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

/// The key tables of `keys` (rank `i` is the `i`-th), built in parallel.
fn shards_of_keys(keys: &[Vec<u8>]) -> Vec<KeyTable<u32>> {
    let hashes: Vec<u64> = keys.par_iter().map(|k| key_hash(k)).collect();
    let mut by_shard: Vec<Vec<u32>> = vec![Vec::new(); N_SHARDS];
    for (i, &h) in hashes.iter().enumerate() {
        by_shard[shard_of(h)].push(i as u32);
    }
    by_shard
        .into_par_iter()
        .map(|ranks| {
            let bytes = ranks.iter().map(|&r| keys[r as usize].len()).sum();
            let mut table = KeyTable::with_capacity(ranks.len(), bytes);
            for r in ranks {
                // Cannot be full: the file's keys fit in one arena.
                table.insert(hashes[r as usize], &keys[r as usize], r);
            }
            table
        })
        .collect()
}

fn check_kept_count(n: usize) -> Result<()> {
    if n == 0 {
        return Err(empty_vocabulary());
    }
    if n > i32::MAX as usize {
        return Err(PecosError::InvalidInput(
            "more than 2^31 - 1 features; set max_features or min_df".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::analyzer::{AnalyzerConfig, DEFAULT_TOKEN_PATTERN};
    use super::super::counter::NgramCounter;
    use super::super::{hashing, DfBound};
    use super::*;

    fn config(n_buckets: Option<usize>) -> TfidfConfig {
        TfidfConfig {
            analyzer: AnalyzerConfig::Word {
                ngram_range: (1, 2),
                token_pattern: DEFAULT_TOKEN_PATTERN.into(),
            },
            n_buckets,
            binary: false,
            sublinear_tf: false,
            use_idf: true,
            smooth_idf: true,
            norm: Norm::L2,
        }
    }

    fn fit(cfg: TfidfConfig, docs: &[&str], min_df: u64) -> Vocabulary {
        let mut counter = NgramCounter::new(cfg, false).unwrap();
        // Two batches: fitting streams.
        counter.update(&docs[..1]).unwrap();
        counter.update(&docs[1..]).unwrap();
        counter
            .finish(DfBound::Count(min_df), DfBound::Fraction(1.0), None)
            .unwrap()
            .0
    }

    const DOCS: [&str; 3] = ["a b a", "b c", ""];

    #[test]
    fn vocabulary_is_sorted_with_smooth_idf() {
        let v = fit(config(None), &DOCS, 1);
        let names = v.feature_names().unwrap();
        assert_eq!(names, ["a", "a b", "b", "b a", "b c", "c"]);
        let idf = |df: f64| (4.0 / (1.0 + df)).ln() + 1.0;
        assert!((v.idf()[2] - idf(2.0)).abs() < 1e-12);
        assert!((v.idf()[0] - idf(1.0)).abs() < 1e-12);
        let min2 = fit(config(None), &DOCS, 2);
        assert_eq!(min2.feature_names().unwrap(), ["b"]);
    }

    #[test]
    fn transform_counts_normalises_and_ignores_unknown_ngrams() {
        let v = fit(config(None), &DOCS, 1);
        let x = v.transform(&["a a zzz", "", "zzz"]);
        assert_eq!(x.indptr, [0, 1, 1, 1]);
        assert_eq!(x.indices, [0]);
        assert_eq!(x.data, [1.0]);
        let x = v.transform(&["b a"]);
        assert_eq!(x.indices, [0, 2, 3]);
        let norm: f32 = x.data.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-6);
    }

    #[test]
    fn hashing_mode_uses_buckets_and_keeps_only_those_seen() {
        let v = fit(config(Some(16)), &DOCS, 1);
        assert_eq!(v.n_columns(), 16);
        assert!(v.feature_names().is_none());
        let x = v.transform(&["a"]);
        assert_eq!(x.indices, [hashing::bucket(b"a", 16) as i32]);
        // Two billion columns cost nothing until buckets are seen.
        let v = fit(config(Some(i32::MAX as usize)), &DOCS, 1);
        assert_eq!(v.kept_buckets().unwrap().len(), 6);
        let x = v.transform(&["b c"]);
        let want = hashing::bucket(b"b c", i32::MAX as usize) as i32;
        assert!(x.indices.contains(&want));
    }

    #[test]
    fn empty_vocabulary_and_bad_bounds_are_errors() {
        let mut c = NgramCounter::new(config(None), false).unwrap();
        c.update(&["", "  "]).unwrap();
        let r = c.finish(DfBound::Count(1), DfBound::Fraction(1.0), None);
        assert!(matches!(r, Err(PecosError::InvalidInput(_))));
        let mut c = NgramCounter::new(config(None), false).unwrap();
        c.update(&DOCS).unwrap();
        let r = c.finish(DfBound::Count(3), DfBound::Count(2), None);
        assert!(matches!(r, Err(PecosError::InvalidParam { .. })));
    }

    #[test]
    fn recorded_rows_equal_transform_rows() {
        use super::super::analyzer::PositionDecay;
        let docs = ["b a b", "", "a c  a", "c", "a b c d"];
        let weighted = TfidfConfig {
            analyzer: AnalyzerConfig::Chars {
                ngram_range: (1, 2),
                position_decay: PositionDecay::Inverse,
            },
            ..config(None)
        };
        for cfg in [config(None), config(Some(4)), weighted] {
            for min_df in [1, 2] {
                let mut c = NgramCounter::new(cfg.clone(), true).unwrap();
                c.update(&docs[..2]).unwrap();
                c.update(&docs[2..]).unwrap();
                let (v, rows) = c
                    .finish(DfBound::Count(min_df), DfBound::Fraction(1.0), None)
                    .unwrap();
                let (rows, again) = (rows.unwrap(), v.transform(&docs));
                assert_eq!(rows.indptr, again.indptr);
                assert_eq!(rows.indices, again.indices);
                assert_eq!(rows.data, again.data);
            }
        }
    }

    #[test]
    fn idf_outside_what_a_fit_gives_is_refused() {
        // Found by fuzzing: an idf of 1e300 loaded, then transformed to infinite values.
        for bad in [1e300, 0.5, f64::NAN] {
            let mut v = fit(config(None), &DOCS, 1);
            v.idf[0] = bad;
            let err = Vocabulary::from_bytes(&v.to_bytes(&serde_json::Value::Null));
            assert!(
                matches!(err, Err(PecosError::Format(m)) if m.contains("idf")),
                "{bad}"
            );
        }
    }

    #[test]
    fn round_trips_and_rejects_corruption() {
        for v in [fit(config(None), &DOCS, 1), fit(config(Some(8)), &DOCS, 1)] {
            let meta = serde_json::json!({"params": {"x": 1}});
            let bytes = v.to_bytes(&meta);
            let (back, meta_back) = Vocabulary::from_bytes(&bytes).unwrap();
            assert_eq!(meta_back, meta);
            assert_eq!(back.idf(), v.idf());
            assert_eq!(back.config(), v.config());
            let docs = ["a b c", "b a"];
            assert_eq!(back.transform(&docs).indices, v.transform(&docs).indices);
            for n in [0, 7, 12, 30, bytes.len() - 1] {
                assert!(
                    Vocabulary::from_bytes(&bytes[..n]).is_err(),
                    "truncated at {n}"
                );
            }
            for i in (0..bytes.len()).step_by(5) {
                let mut b = bytes.clone();
                b[i] ^= 0x21;
                assert!(Vocabulary::from_bytes(&b).is_err(), "flipped byte {i}");
            }
        }
    }
}

//! The prefix top-k completion index: the k most frequent queries that complete a prefix, with
//! PECOS's back-off to shorter prefixes (`PrefFreqSuggester` of `examples/qp2q`, made exact).
//!
//! For a prefix `p` and `k >= 1` the suggestions are `p`'s completions (the queries starting with
//! `p`) by count, then, if there are fewer than `k`, the completions of `p` less its last
//! character that are not completions of `p`, by count, then those of `p` less two characters
//! that are not completions of the longer one, and so on down to the empty prefix (every query),
//! until `k` are found. A character is a Unicode scalar value: a prefix is never cut inside a
//! UTF-8 sequence. Equal counts go to the query that sorts first in code point order, so that
//! results are deterministic (PECOS's order on ties is whatever its dictionary holds).
//!
//! The distinct queries are stored sorted (byte order of UTF-8 is code point order) in one
//! buffer with offsets, so the completions of a prefix are one contiguous range of ids, and a
//! back-off "ring" is the range of the shorter prefix less the range of the longer one: two
//! ranges. Every query has a rank, its place in the order of the suggestions for the empty
//! prefix (count descending, then code point order), so "best" is "smallest rank". The top of
//! a set of ranges comes from a heap of ranges keyed by their smallest rank (a [`RangeMin`]
//! query): popping one yields a suggestion and splits its range in two around it, so `k`
//! suggestions cost `O(k log k)` heap work and `2k` range-minimum queries, after the searches
//! that find the ranges (one binary search for the place of the prefix, then searches outwards
//! from the range already known, which cost `O(log d)` for a boundary `d` ids away).
//!
//! Memory per distinct query: its bytes, its offset and count (8 + 8), its rank both ways
//! (4 + 4: the range-minimum table then holds ranks, so that every comparison is one integer
//! comparison of values at hand rather than two reads of random counts) and ~2.3 bytes of
//! range-minimum table: ~46 bytes for a query of 20 characters, ~460 MB at 10M queries. The
//! ranks are derived from the counts when an index is built or loaded, not stored.
//!
//! File format ([`crate::io`]'s envelope, arrays 8-byte aligned):
//! ```text
//! magic "PECOSQAC" | version u32 | header length u64 | header JSON (counts, metadata)
//! | offsets u64[n + 1] | counts f64[n] | text u8[text_len]   (query i: text[offsets[i]..offsets[i + 1]])
//! | CRC-32 of everything before it, u32
//! ```

use super::range_min::RangeMin;
use crate::error::{PecosError, Result};
use crate::io::envelope::{self, Writer};
use crate::io::Artifact;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const MAGIC: &[u8; 8] = b"PECOSQAC";
/// Bump when the layout changes; loading refuses versions it does not know.
pub const QAC_FORMAT_VERSION: u32 = 1;

/// Distinct queries with their counts, answering top-k completion queries (see the module doc).
/// Immutable once built; safe to share between threads.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionIndex {
    /// The distinct queries in code point order, concatenated.
    text: String,
    /// `offsets[i]..offsets[i + 1]`: query `i` in `text`.
    offsets: Vec<u64>,
    /// Per query, its count (the sum of the counts it was given with).
    counts: Vec<f64>,
    /// Per query, its rank (see the module doc); derived from the counts.
    rank_of: Vec<u32>,
    /// Per rank, its query: the inverse of `rank_of`.
    id_of: Vec<u32>,
    /// Minima of `rank_of` over ranges of ids.
    range_min: RangeMin,
}

#[derive(Serialize, Deserialize)]
struct Header {
    n_queries: usize,
    text_len: usize,
    /// Free-form metadata kept with the index (e.g. the Python wrapper's), opaque here.
    metadata: serde_json::Value,
}

/// A range `lo..hi` of ids still to draw suggestions from, after the smallest rank in it:
/// `(rank, lo, hi)`, in a min-heap.
type Candidate = Reverse<(u32, u32, u32)>;

/// The buffers of [`CompletionIndex::top_k_into`], kept between calls so that a lookup allocates
/// nothing once they have grown; [`Suggestions::ids`] holds the last call's answer.
#[derive(Debug, Default)]
pub struct Suggestions {
    ids: Vec<u32>,
    heap: BinaryHeap<Candidate>,
}

impl Suggestions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The ids of the suggestions of the last lookup, best first.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

fn is_valid_count(c: f64) -> bool {
    c.is_finite() && c >= 0.0
}

/// Whether an index of `n` queries can be built: ids are `u32`.
fn check_query_count(n: usize) -> std::result::Result<(), String> {
    if n == 0 {
        Err("no queries: a completion index needs at least one".into())
    } else if n > u32::MAX as usize {
        Err(format!(
            "{n} queries, more than the 2^32 - 1 an index holds"
        ))
    } else {
        Ok(())
    }
}

/// The first id in `lo..hi` where `pred` holds (`hi` if none), for a `pred` false then true.
#[inline]
fn first_where(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// As [`first_where`], probing from `lo` upwards in doubling steps: `O(log d)` probes for an
/// answer `d` ids after `lo`, near ones first (they share cache lines).
#[inline]
fn first_where_from_start(lo: usize, hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut below, mut step) = (lo, 1);
    while below < hi {
        let probe = (below + step - 1).min(hi - 1);
        if pred(probe) {
            return first_where(below, probe, pred);
        }
        below = probe + 1;
        step *= 2;
    }
    hi
}

/// As [`first_where`], probing from `hi` downwards in doubling steps.
#[inline]
fn first_where_from_end(lo: usize, hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut above, mut step) = (hi, 1);
    while above > lo {
        let probe = above.saturating_sub(step).max(lo);
        if !pred(probe) {
            return first_where(probe + 1, above, pred);
        }
        above = probe;
        step *= 2;
    }
    lo
}

/// Whether `query` sorts after every string starting with `head`.
#[inline]
fn is_past(query: &[u8], head: &[u8]) -> bool {
    &query[..query.len().min(head.len())] > head
}

impl CompletionIndex {
    /// The index of `queries` with their `counts` (one per query). A query given several times
    /// has its counts summed; the queries need not be sorted. Sorts in parallel on the current
    /// rayon pool; the result does not depend on the number of threads.
    ///
    /// # Errors
    /// [`PecosError::ShapeMismatch`] if the lengths differ; [`PecosError::InvalidInput`] for a
    /// count that is NaN, infinite or negative (naming its position), counts of one query that
    /// sum to infinity, or no queries at all.
    pub fn new<S: AsRef<str> + Sync>(queries: &[S], counts: &[f64]) -> Result<Self> {
        if counts.len() != queries.len() {
            return Err(PecosError::shape(
                "counts (one per query)",
                queries.len(),
                counts.len(),
            ));
        }
        if let Some(i) = counts.iter().position(|&c| !is_valid_count(c)) {
            return Err(PecosError::InvalidInput(format!(
                "count {i} is {}: counts must be finite and >= 0",
                counts[i]
            )));
        }
        check_query_count(queries.len()).map_err(PecosError::InvalidInput)?;
        let query = |i: u32| queries[i as usize].as_ref();
        // Equal queries in input order, so that their counts are summed in a fixed order.
        let mut order: Vec<u32> = (0..queries.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| query(a).cmp(query(b)).then(a.cmp(&b)));
        let mut text = String::with_capacity(queries.iter().map(|q| q.as_ref().len()).sum());
        let mut offsets = vec![0u64];
        let mut summed: Vec<f64> = Vec::new();
        let mut previous: Option<&str> = None;
        for &i in &order {
            let count = counts[i as usize];
            match summed.last_mut() {
                Some(total) if previous == Some(query(i)) => *total += count,
                _ => {
                    text.push_str(query(i));
                    offsets.push(text.len() as u64);
                    // `0.0 +` turns a count of -0.0 into 0.0.
                    summed.push(0.0 + count);
                    previous = Some(query(i));
                }
            }
        }
        if let Some(id) = summed.iter().position(|c| c.is_infinite()) {
            let (start, end) = (offsets[id] as usize, offsets[id + 1] as usize);
            return Err(PecosError::InvalidInput(format!(
                "the counts of query {:?} sum to infinity",
                &text[start..end]
            )));
        }
        Ok(Self::from_sorted(text, offsets, summed))
    }

    /// The index over checked parts: distinct queries in order, finite counts `>= 0`. Ranks
    /// queries in parallel on the current rayon pool.
    fn from_sorted(text: String, offsets: Vec<u64>, counts: Vec<f64>) -> Self {
        let mut id_of: Vec<u32> = (0..counts.len() as u32).collect();
        id_of.par_sort_unstable_by(|&a, &b| {
            let (ca, cb) = (counts[a as usize], counts[b as usize]);
            cb.total_cmp(&ca).then(a.cmp(&b))
        });
        let mut rank_of = vec![0u32; counts.len()];
        for (rank, &id) in id_of.iter().enumerate() {
            rank_of[id as usize] = rank as u32;
        }
        let range_min = RangeMin::new(&rank_of);
        CompletionIndex {
            text,
            offsets,
            counts,
            rank_of,
            id_of,
            range_min,
        }
    }

    /// Number of distinct queries (ids are `0..len()`, in code point order of the queries).
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Always false: an index holds at least one query.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Query `id`, or `None` past the end.
    pub fn query(&self, id: usize) -> Option<&str> {
        let (start, end) = (*self.offsets.get(id)?, *self.offsets.get(id + 1)?);
        self.text.get(start as usize..end as usize)
    }

    /// The count of query `id`, or `None` past the end.
    pub fn count(&self, id: usize) -> Option<f64> {
        self.counts.get(id).copied()
    }

    /// The queries in id order.
    pub fn queries(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.offsets
            .windows(2)
            .map(|w| &self.text[w[0] as usize..w[1] as usize])
    }

    /// The counts in id order.
    pub fn counts(&self) -> &[f64] {
        &self.counts
    }

    /// Query `id` as bytes; `id < len()`.
    #[inline]
    fn key(&self, id: usize) -> &[u8] {
        &self.text.as_bytes()[self.offsets[id] as usize..self.offsets[id + 1] as usize]
    }

    /// The ids `start..end` of the queries starting with `prefix` (an empty range at the place
    /// `prefix` would take if none does).
    pub fn prefix_range(&self, prefix: &str) -> (usize, usize) {
        let at = self.insertion_point(prefix.as_bytes());
        self.range_around(prefix.as_bytes(), (at, at))
    }

    /// The first id whose query is not before `prefix`.
    fn insertion_point(&self, prefix: &[u8]) -> usize {
        first_where(0, self.len(), |id| self.key(id) >= prefix)
    }

    /// The ids of the queries starting with `head`, given a range of ids (maybe empty) that
    /// lies inside them or at their place: searched outwards from it.
    fn range_around(&self, head: &[u8], (inner_lo, inner_hi): (usize, usize)) -> (usize, usize) {
        let lo = first_where_from_end(0, inner_lo, |id| self.key(id) >= head);
        let hi = first_where_from_start(inner_hi, self.len(), |id| is_past(self.key(id), head));
        (lo, hi)
    }

    /// The length of the longest head of `prefix` (cut at a character boundary) that some
    /// query starts with, `at` being the insertion point of `prefix`: that query is one of the
    /// two beside it.
    fn longest_completed_head(&self, prefix: &str, at: usize) -> usize {
        let common = |id: usize| {
            let key = self.key(id);
            key.iter()
                .zip(prefix.as_bytes())
                .take_while(|(a, b)| a == b)
                .count()
        };
        let neighbours = [at.checked_sub(1), (at < self.len()).then_some(at)];
        let longest = neighbours.into_iter().flatten().map(common).max();
        let mut len = longest.unwrap_or(0);
        while !prefix.is_char_boundary(len) {
            len -= 1;
        }
        len
    }

    /// The ids of the top-`k` suggestions for `prefix` (see the module doc), best first; fewer
    /// than `k` only if the index holds fewer queries.
    pub fn top_k(&self, prefix: &str, k: usize) -> Vec<u32> {
        let mut out = Suggestions::new();
        self.top_k_into(prefix, k, &mut out);
        out.ids
    }

    /// As [`CompletionIndex::top_k`], into `out` (whose buffers are reused): the real-time path.
    pub fn top_k_into(&self, prefix: &str, k: usize, out: &mut Suggestions) {
        out.ids.clear();
        let bytes = prefix.as_bytes();
        let at = self.insertion_point(bytes);
        // The heads longer than this have no completions, so their rings are empty: skipped.
        let mut cut = self.longest_completed_head(prefix, at);
        // The ids drawn from so far: none yet, an empty range where `prefix` would be.
        let mut drawn = (at, at);
        while out.ids.len() < k {
            let range = self.range_around(&bytes[..cut], drawn);
            self.draw([(range.0, drawn.0), (drawn.1, range.1)], k, out);
            drawn = range;
            if cut == 0 {
                break;
            }
            cut = (0..cut)
                .rev()
                .find(|&i| prefix.is_char_boundary(i))
                .unwrap_or(0);
        }
    }

    /// Appends to `out` the best ids of the two `ranges` (disjoint) until it holds `k`.
    fn draw(&self, ranges: [(usize, usize); 2], k: usize, out: &mut Suggestions) {
        out.heap.clear();
        for (lo, hi) in ranges {
            self.push_range(&mut out.heap, lo, hi);
        }
        while out.ids.len() < k {
            let Some(Reverse((rank, lo, hi))) = out.heap.pop() else {
                break;
            };
            let id = self.id_of[rank as usize];
            out.ids.push(id);
            if out.ids.len() < k {
                self.push_range(&mut out.heap, lo as usize, id as usize);
                self.push_range(&mut out.heap, id as usize + 1, hi as usize);
            }
        }
    }

    /// Pushes the range `lo..hi` of ids (ignored if empty) with its smallest rank.
    fn push_range(&self, heap: &mut BinaryHeap<Candidate>, lo: usize, hi: usize) {
        if lo < hi {
            let rank = self.range_min.min(&self.rank_of, lo, hi);
            // Ids fit u32 (checked when built).
            heap.push(Reverse((rank, lo as u32, hi as u32)));
        }
    }
}

impl Artifact for CompletionIndex {
    fn to_bytes(&self, metadata: &serde_json::Value) -> Vec<u8> {
        let header = Header {
            n_queries: self.len(),
            text_len: self.text.len(),
            metadata: metadata.clone(),
        };
        let mut w = Writer::new(MAGIC, QAC_FORMAT_VERSION, &header, true);
        w.u64s(&self.offsets);
        w.f64s(&self.counts);
        w.bytes(self.text.as_bytes());
        w.finish()
    }

    /// The file's size is checked against its header before anything is allocated, then every
    /// invariant of the index.
    fn from_bytes(bytes: &[u8]) -> Result<(Self, serde_json::Value)> {
        let fail = |msg: &str| PecosError::Format(msg.to_string());
        let file = envelope::open_version(bytes, MAGIC, "completion index", QAC_FORMAT_VERSION)?;
        let header: Header = file.header()?;
        let n = header.n_queries;
        let mut layout = file.layout(true)?;
        layout
            .array(n.saturating_add(1), 8)
            .array(n, 8)
            .array(header.text_len, 1);
        let mut r = file.body(&layout)?;
        check_query_count(n).map_err(|m| fail(&m))?;
        // The layout matched the file size, so `n + 1` does not overflow.
        let offsets = r.u64s(n + 1)?;
        let counts = r.f64s(n)?;
        let text = std::str::from_utf8(r.bytes(header.text_len)?)
            .map_err(|_| fail("queries are not valid UTF-8"))?;
        envelope::check_sorted_strings(text, &offsets, "queries")?;
        if !counts.iter().all(|&c| is_valid_count(c)) {
            return Err(fail("counts must be finite and >= 0"));
        }
        let index = Self::from_sorted(text.to_string(), offsets, counts);
        Ok((index, header.metadata))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn index(pairs: &[(&str, f64)]) -> CompletionIndex {
        let (queries, counts): (Vec<&str>, Vec<f64>) = pairs.iter().copied().unzip();
        CompletionIndex::new(&queries, &counts).unwrap()
    }

    fn suggest<'a>(index: &'a CompletionIndex, prefix: &str, k: usize) -> Vec<&'a str> {
        let ids = index.top_k(prefix, k);
        ids.iter()
            .map(|&id| index.query(id as usize).unwrap())
            .collect()
    }

    /// The definition, by scanning: the completions of each head of `prefix`, longest first,
    /// less those of the longer heads, each by count then query.
    fn brute_force(pairs: &[(&str, f64)], prefix: &str, k: usize) -> Vec<String> {
        let mut totals: Vec<(String, f64)> = Vec::new();
        for &(q, c) in pairs {
            match totals.iter_mut().find(|(t, _)| t == q) {
                Some(entry) => entry.1 += c,
                None => totals.push((q.to_string(), c)),
            }
        }
        totals.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut cuts: Vec<usize> = prefix.char_indices().map(|(i, _)| i).collect();
        cuts.push(prefix.len());
        let mut out: Vec<String> = Vec::new();
        for &cut in cuts.iter().rev() {
            for (q, _) in &totals {
                if out.len() < k && q.starts_with(&prefix[..cut]) && !out.contains(q) {
                    out.push(q.clone());
                }
            }
        }
        out
    }

    const LOG: [(&str, f64); 9] = [
        ("ebay", 5.0),
        ("google", 9.0),
        ("gmail", 3.0),
        ("google maps", 4.0),
        ("ebay", 2.0),
        ("", 1.0),
        ("goo", 4.0),
        ("géant", 4.0),
        ("gé", 1.0),
    ];

    #[test]
    fn completions_by_count_then_back_off() {
        let idx = index(&LOG);
        // "ebay" given twice: 7; "", "gé", "gmail", ... distinct.
        assert_eq!(idx.len(), 8);
        assert_eq!(idx.count(idx.prefix_range("ebay").0), Some(7.0));
        assert_eq!(suggest(&idx, "goo", 2), ["google", "goo"]);
        // Ties (4.0) in code point order: "goo" < "google maps".
        assert_eq!(suggest(&idx, "goo", 3), ["google", "goo", "google maps"]);
        // "goog" has two completions, then "goo" adds its own, then "go" nothing new, then
        // "g" the others by count, then "" the rest.
        assert_eq!(
            suggest(&idx, "goog", 8),
            [
                "google",
                "google maps",
                "goo",
                "géant",
                "gmail",
                "gé",
                "ebay",
                ""
            ]
        );
        // Nothing starts with "gx": back off to "g".
        assert_eq!(suggest(&idx, "gx", 2), ["google", "goo"]);
        assert_eq!(suggest(&idx, "zzz", 2), ["google", "ebay"]);
        assert_eq!(suggest(&idx, "", 3), ["google", "ebay", "goo"]);
        assert_eq!(idx.top_k("", 100).len(), 8);
        assert!(idx.top_k("g", 0).is_empty());
    }

    #[test]
    fn multi_byte_prefixes_back_off_by_whole_characters() {
        let idx = index(&LOG);
        // "gé" + "x": one character less is "gé", never half of "é".
        assert_eq!(suggest(&idx, "géx", 2), ["géant", "gé"]);
        // "g\u{e8}" shares the lead byte of "é" (0xC3) with "gé": the longest completed head
        // is "g", not a cut inside the character.
        assert_eq!(suggest(&idx, "g\u{e8}", 2), ["google", "goo"]);
        assert_eq!(idx.prefix_range("g\u{e8}"), (6, 6));
        assert_eq!(idx.prefix_range("gé"), (6, 8));
    }

    #[test]
    fn prefix_ranges_are_the_completions() {
        let idx = index(&LOG);
        let queries: Vec<&str> = idx.queries().collect();
        assert_eq!(
            queries,
            [
                "",
                "ebay",
                "gmail",
                "goo",
                "google",
                "google maps",
                "gé",
                "géant"
            ]
        );
        for prefix in [
            "",
            "g",
            "go",
            "google",
            "google maps!",
            "a",
            "zz",
            "gé",
            "gm",
        ] {
            let (lo, hi) = idx.prefix_range(prefix);
            let want: Vec<usize> = (0..queries.len())
                .filter(|&i| queries[i].starts_with(prefix))
                .collect();
            assert_eq!((lo..hi).collect::<Vec<_>>(), want, "{prefix:?}");
            assert_eq!(lo, queries.iter().filter(|q| **q < prefix).count());
        }
    }

    #[test]
    fn equals_the_definition_on_random_logs() {
        let mut rng = SplitMix64::new(3);
        let alphabet = ["a", "b", "é", "\u{1F600}", " "];
        for round in 0..200 {
            let n = 1 + rng.below(60);
            let words: Vec<String> = (0..n)
                .map(|_| (0..rng.below(5)).map(|_| alphabet[rng.below(5)]).collect())
                .collect();
            let pairs: Vec<(&str, f64)> = words
                .iter()
                .map(|w| (w.as_str(), rng.below(4) as f64))
                .collect();
            let idx = index(&pairs);
            let mut buffer = Suggestions::new();
            for prefix in words.iter().take(10).chain(&words[..1]) {
                let mut cuts: Vec<usize> = prefix.char_indices().map(|(i, _)| i).collect();
                cuts.push(prefix.len());
                for cut in cuts {
                    let head = format!("{}{}", &prefix[..cut], alphabet[round % 5]);
                    for p in [&prefix[..cut], head.as_str()] {
                        let k = 1 + rng.below(12);
                        idx.top_k_into(p, k, &mut buffer);
                        let got: Vec<&str> = buffer
                            .ids()
                            .iter()
                            .map(|&id| idx.query(id as usize).unwrap())
                            .collect();
                        assert_eq!(got, brute_force(&pairs, p, k), "prefix {p:?}, k {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_counts_are_refused_naming_their_position() {
        let err = CompletionIndex::new(&["a", "b", "c"], &[1.0, f64::NAN, 2.0]).unwrap_err();
        assert!(matches!(&err, PecosError::InvalidInput(m) if m.contains("count 1 is NaN")));
        let err = CompletionIndex::new(&["a", "b"], &[1.0, -2.0]).unwrap_err();
        assert!(matches!(&err, PecosError::InvalidInput(m) if m.contains("count 1 is -2")));
        assert!(CompletionIndex::new(&["a"], &[f64::INFINITY]).is_err());
        let err = CompletionIndex::new(&["a", "a"], &[f64::MAX, f64::MAX]).unwrap_err();
        assert!(matches!(&err, PecosError::InvalidInput(m) if m.contains("\"a\" sum to infinity")));
        assert!(matches!(
            CompletionIndex::new(&["a", "b"], &[1.0]),
            Err(PecosError::ShapeMismatch {
                expected: 2,
                got: 1,
                ..
            })
        ));
        let none: [&str; 0] = [];
        assert!(matches!(
            CompletionIndex::new(&none, &[]),
            Err(PecosError::InvalidInput(_))
        ));
        // -0.0 is a count of 0.
        let idx = CompletionIndex::new(&["a"], &[-0.0]).unwrap();
        assert!(idx.count(0).unwrap().is_sign_positive());
        assert_eq!(
            (idx.query(1), idx.count(1), idx.query(usize::MAX)),
            (None, None, None)
        );
    }

    #[test]
    fn round_trips_and_refuses_damaged_files() {
        let idx = index(&LOG);
        let meta = serde_json::json!({"format": "x", "n": [1, 2]});
        let bytes = idx.to_bytes(&meta);
        let (back, meta_back) = CompletionIndex::from_bytes(&bytes).unwrap();
        assert_eq!((&back, &meta_back), (&idx, &meta));
        for n in 0..bytes.len() {
            assert!(
                CompletionIndex::from_bytes(&bytes[..n]).is_err(),
                "truncated at {n}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x24;
            assert!(CompletionIndex::from_bytes(&b).is_err(), "flipped byte {i}");
        }
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(
            matches!(CompletionIndex::from_bytes(&v2), Err(PecosError::Format(m)) if m.contains("version 2"))
        );
    }

    /// A file whose checksum is right but whose contents break an invariant, built by hand.
    fn forged(offsets: &[u64], counts: &[f64], text: &str) -> Vec<u8> {
        let header = Header {
            n_queries: counts.len(),
            text_len: text.len(),
            metadata: serde_json::Value::Null,
        };
        let mut w = Writer::new(MAGIC, QAC_FORMAT_VERSION, &header, true);
        w.u64s(offsets);
        w.f64s(counts);
        w.bytes(text.as_bytes());
        w.finish()
    }

    #[test]
    fn refuses_well_formed_files_breaking_invariants() {
        assert!(CompletionIndex::from_bytes(&forged(&[0, 1, 2], &[1.0, 1.0], "ab")).is_ok());
        for (offsets, counts, text) in [
            (&[0u64, 1, 2][..], &[1.0, 1.0][..], "ba"),
            (&[0, 1, 2], &[1.0, 1.0], "aa"),
            (&[0, 2, 1], &[1.0, 1.0], "ab"),
            (&[0, 1, 3], &[1.0, 1.0], "ab"),
            (&[0, 1, 2], &[1.0, f64::NAN], "ab"),
            (&[0, 1, 2], &[-1.0, 1.0], "ab"),
            (&[0], &[], ""),
        ] {
            let err = CompletionIndex::from_bytes(&forged(offsets, counts, text));
            assert!(
                matches!(err, Err(PecosError::Format(_))),
                "{offsets:?} {counts:?} {text:?}"
            );
        }
        // A header claiming 2^61 queries in a small file is refused before any allocation.
        let header = Header {
            n_queries: 1 << 61,
            text_len: 1,
            metadata: serde_json::Value::Null,
        };
        let mut w = Writer::new(MAGIC, QAC_FORMAT_VERSION, &header, true);
        w.u64s(&[0, 1]);
        w.f64s(&[1.0]);
        w.bytes(b"a");
        let huge = w.finish();
        assert!(matches!(
            CompletionIndex::from_bytes(&huge),
            Err(PecosError::Format(_))
        ));
    }
}

//! Locating a query's features among the rows of a chunk: the first step of scoring a parent's
//! children, and most of its time on large models, where every lookup misses the cache.
//!
//! A chunk's rows are its sorted, distinct features. Two derived indexes, chosen per chunk by how
//! densely its rows fill the span of feature ids they cover:
//! - **sparse** chunks (the lower layers: a leaf cluster's few thousand features out of a million)
//!   keep every [`SKIP`]-th feature; a lookup gallops over that small array from where the previous
//!   one ended, then scans one block of rows;
//! - **dense** chunks (the upper layers, whose rows are most of the vocabulary) get a bitmap over
//!   the span with the number of rows before each 64-byte block of it: a lookup reads one cache
//!   line, and the lookups of one query do not depend on each other, so their misses overlap.
//!   It costs at most 2.3 bytes per row (see [`DENSE_SPAN_PER_ROW`]).

/// Rows per block of the sparse index (16 u32 features fill one 64-byte cache line).
pub(super) const SKIP: usize = 16;

/// A chunk is dense when the span of its feature ids is at most this many times its number of
/// rows. The bitmap then costs at most `16 / 448 * 64 = 2.3` bytes per row, against the 8 bytes
/// per row (feature and row pointer) and 5+ per entry the chunk already takes.
const DENSE_SPAN_PER_ROW: u64 = 16;

/// Feature ids per block of the dense index: the bits of seven u64 words, which with the rank
/// fill one cache line.
const BLOCK_IDS: u32 = 7 * 64;

/// One cache line of the dense index: which of `BLOCK_IDS` consecutive feature ids are rows, and
/// how many rows come before the first of them.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub(super) struct RankBlock {
    bits: [u64; 7],
    rank: u32,
}

/// The search index of one chunk (see the module documentation).
#[derive(Clone, Debug)]
pub(super) enum RowIndex {
    /// Every [`SKIP`]-th row's feature.
    Sparse(Box<[u32]>),
    /// The blocks of the bitmap of the feature ids from `first` on.
    Dense {
        first: u32,
        blocks: Box<[RankBlock]>,
    },
}

impl RowIndex {
    /// The index of a chunk whose `rows` (features) are strictly increasing.
    pub(super) fn new(rows: &[u32]) -> Self {
        let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
            return RowIndex::Sparse(Box::default());
        };
        let span = u64::from(last - first) + 1;
        if span > DENSE_SPAN_PER_ROW * rows.len() as u64 {
            return RowIndex::Sparse(rows.iter().step_by(SKIP).copied().collect());
        }
        let n_blocks = (last - first) / BLOCK_IDS + 1;
        let mut blocks = vec![
            RankBlock {
                bits: [0; 7],
                rank: 0
            };
            n_blocks as usize
        ];
        for &f in rows {
            let d = f - first;
            let block = &mut blocks[(d / BLOCK_IDS) as usize];
            let i = d % BLOCK_IDS;
            block.bits[(i / 64) as usize] |= 1 << (i % 64);
        }
        let mut rank = 0;
        for block in &mut blocks {
            block.rank = rank;
            rank += block.bits.iter().map(|w| w.count_ones()).sum::<u32>();
        }
        RowIndex::Dense {
            first,
            blocks: blocks.into_boxed_slice(),
        }
    }

    /// A cursor over the chunk whose rows are `rows` (those the index was made from).
    pub(super) fn cursor<'a>(&'a self, rows: &'a [u32]) -> RowCursor<'a> {
        match self {
            RowIndex::Sparse(skip) => RowCursor::Sparse {
                rows,
                skip,
                next_block: 0,
            },
            RowIndex::Dense { first, blocks } => RowCursor::Dense {
                first: *first,
                blocks,
            },
        }
    }
}

/// Locates features, given in increasing order, among a chunk's rows.
pub(super) enum RowCursor<'a> {
    /// The search resumes where the previous one ended (`next_block` is the first block of
    /// [`SKIP`] rows whose first feature exceeds the previous feature).
    Sparse {
        rows: &'a [u32],
        skip: &'a [u32],
        next_block: usize,
    },
    Dense {
        first: u32,
        blocks: &'a [RankBlock],
    },
}

impl RowCursor<'_> {
    /// `None` if `f` precedes every row of the chunk; otherwise `(k, found)`: row `k` holds `f` if
    /// `found` (`k` means nothing otherwise). Branch-free past the first test, so that its (often
    /// missing) data gates no jump.
    #[inline]
    pub(super) fn seek(&mut self, f: u32) -> Option<(u32, bool)> {
        match self {
            RowCursor::Sparse {
                rows,
                skip,
                next_block,
            } => {
                *next_block += gallop(&skip[*next_block..], f + 1);
                let start = next_block.checked_sub(1)? * SKIP;
                let block = &rows[start..(start + SKIP).min(rows.len())];
                let below = block.iter().filter(|&&g| g < f).count();
                Some(((start + below) as u32, block.contains(&f)))
            }
            RowCursor::Dense { first, blocks } => {
                let d = f.checked_sub(*first)?;
                let Some(block) = blocks.get((d / BLOCK_IDS) as usize) else {
                    return Some((0, false));
                };
                let i = d % BLOCK_IDS;
                let (word, bit) = ((i / 64) as usize, i % 64);
                let mut below = block.rank;
                for (j, &w) in block.bits.iter().enumerate() {
                    let mask = match j.cmp(&word) {
                        std::cmp::Ordering::Less => u64::MAX,
                        std::cmp::Ordering::Equal => (1 << bit) - 1,
                        std::cmp::Ordering::Greater => 0,
                    };
                    below += (w & mask).count_ones();
                }
                let found = block.bits.get(word).is_some_and(|w| (w >> bit) & 1 == 1);
                Some((below, found))
            }
        }
    }
}

/// Index of the first element of sorted `rows` that is `>= target` (exponential then binary search),
/// so that marching a sorted query through a chunk costs O(q log(R / q)).
#[inline]
fn gallop(rows: &[u32], target: u32) -> usize {
    let mut bound = 1usize;
    while bound < rows.len() && rows[bound - 1] < target {
        bound *= 2;
    }
    let lo = bound / 2;
    let hi = bound.min(rows.len());
    lo + rows[lo..hi].partition_point(|&f| f < target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Every feature of `0..max` through both kinds of index (and the cursor restarted at each
    /// feature too), against a binary search of the rows.
    fn check_lookups(rows: &[u32], max: u32) {
        let index = RowIndex::new(rows);
        let mut marching = index.cursor(rows);
        for f in 0..max {
            let expected = rows.binary_search(&f);
            for got in [marching.seek(f), index.cursor(rows).seek(f)] {
                match (got, expected) {
                    (None, _) => assert!(rows.first().is_none_or(|&r| f < r), "{f}"),
                    (Some((k, true)), Ok(at)) => assert_eq!(k as usize, at, "{f}"),
                    (Some((_, false)), Err(_)) => {}
                    (got, expected) => panic!("{f}: {got:?} vs {expected:?}"),
                }
            }
        }
    }

    #[test]
    fn dense_and_sparse_chunks_find_every_row() {
        let mut rng = SplitMix64::new(3);
        for (n, one_in) in [
            (5000u32, 1),
            (5000, 2),
            (5000, 15),
            (5000, 17),
            (20000, 200),
        ] {
            let rows: Vec<u32> = (3..n).filter(|_| rng.below(one_in) == 0).collect();
            let dense = matches!(RowIndex::new(&rows), RowIndex::Dense { .. });
            // (15 and 17 lie either side of the threshold, on average.)
            assert!(dense || one_in > 2, "{n} {one_in}");
            assert!(!dense || one_in < 100, "{n} {one_in}");
            check_lookups(&rows, n + 1000);
        }
        check_lookups(&[], 10);
        check_lookups(&[7], 10);
        check_lookups(&[0, u32::MAX - 1], 10);
        check_lookups(&[u32::MAX - 2, u32::MAX - 1], 10);
    }

    #[test]
    fn gallop_finds_lower_bound() {
        let rows = [1, 3, 5, 7, 9, 11, 13];
        for t in 0..15 {
            assert_eq!(gallop(&rows, t), rows.partition_point(|&f| f < t), "{t}");
        }
        assert_eq!(gallop(&[], 3), 0);
    }
}

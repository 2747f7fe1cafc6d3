//! Row subsets re-indexed over the columns they use: the compact copy of a tree node's rows that
//! solvers and k-means work on.

use super::CsrView;
use std::cell::RefCell;

/// Some rows of a matrix, re-indexed over only the columns they use: dense vectors over those
/// columns stay as small as the subset (a tree node's rows use a fraction of the vocabulary).
///
/// Local ids are given in order of decreasing column frequency in the subset, so that the entries
/// of a dense vector touched by most rows share a few cache lines: solvers and k-means gather and
/// scatter through such vectors for every nonzero.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalRows {
    /// Local column id -> column id in the source matrix.
    pub columns: Vec<u32>,
    pub indptr: Vec<usize>,
    /// Local column ids, distinct within each row, in the source row's column order.
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

thread_local! {
    /// Column -> local id (or `u32::MAX`), one per thread, as long as the widest matrix seen.
    /// Only the entries a gather sets are reset afterwards, so a gather costs O(its nonzeros),
    /// not O(columns of the matrix).
    static COLUMN_MAP: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

impl LocalRows {
    /// Copies `rows` of `x` (in the given order).
    pub fn gather(x: &CsrView<'_>, rows: &[u32]) -> Self {
        Self::gather_leading(x, rows, x.n_cols())
    }

    /// Copies `rows` of `x` (in the given order) restricted to its first `n_columns` columns.
    pub fn gather_leading(x: &CsrView<'_>, rows: &[u32], n_columns: usize) -> Self {
        COLUMN_MAP.with_borrow_mut(|map| {
            if map.len() < x.n_cols() {
                map.resize(x.n_cols(), u32::MAX);
            }
            Self::gather_with(x, rows, n_columns, map)
        })
    }

    fn gather_with(x: &CsrView<'_>, rows: &[u32], n_columns: usize, map: &mut [u32]) -> Self {
        // A row's columns increase, so its entries below `n_columns` are a prefix of it.
        let leading = |r: u32| {
            let row = x.row(r as usize);
            let n = row.indices.partition_point(|&j| (j as usize) < n_columns);
            (&row.indices[..n], &row.data[..n])
        };
        // Pass 1: number the columns in order of first appearance and count them.
        let mut seen: Vec<u32> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        let mut nnz = 0;
        for &r in rows {
            let (row_indices, _) = leading(r);
            nnz += row_indices.len();
            for &j in row_indices {
                let slot = &mut map[j as usize];
                if *slot == u32::MAX {
                    *slot = seen.len() as u32;
                    seen.push(j as u32);
                    counts.push(0);
                }
                counts[*slot as usize] += 1;
            }
        }
        // Local ids by decreasing count, ties by column.
        let mut order: Vec<u32> = (0..seen.len() as u32).collect();
        order.sort_unstable_by_key(|&k| (std::cmp::Reverse(counts[k as usize]), seen[k as usize]));
        let columns: Vec<u32> = order.iter().map(|&k| seen[k as usize]).collect();
        for (local, &j) in columns.iter().enumerate() {
            map[j as usize] = local as u32;
        }
        // Pass 2: copy the rows with local ids (in the source's column order; nothing downstream
        // needs them sorted, and sorting every row cost more than the rest of the gather).
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        let mut indices = Vec::with_capacity(nnz);
        let mut data = Vec::with_capacity(nnz);
        indptr.push(0);
        for &r in rows {
            let (row_indices, row_data) = leading(r);
            indices.extend(row_indices.iter().map(|&j| map[j as usize]));
            data.extend_from_slice(row_data);
            indptr.push(indices.len());
        }
        for &j in &columns {
            map[j as usize] = u32::MAX;
        }
        LocalRows {
            columns,
            indptr,
            indices,
            data,
        }
    }

    pub fn n_rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// Local column ids and values of row `i`.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (lo, hi) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[lo..hi], &self.data[lo..hi])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::CsrMatrix;

    #[test]
    fn local_rows_compact_columns() {
        let m = CsrMatrix::from_rows(
            10,
            &[vec![(7, 1.0), (2, 2.0)], vec![(5, 3.0)], vec![(9, 4.0)]],
        )
        .unwrap();
        let local = LocalRows::gather(&m.view(), &[2, 0, 0]);
        // Column 7 and 2 occur twice, 9 once: local ids by decreasing count, ties by column.
        assert_eq!(local.columns, vec![2, 7, 9]);
        assert_eq!(local.row(0), (&[2u32][..], &[4.0f32][..]));
        assert_eq!(local.row(1), (&[0u32, 1][..], &[2.0f32, 1.0][..]));
        let local = LocalRows::gather(&m.view(), &[2, 1, 2]);
        assert_eq!(local.columns, vec![9, 5]);
        assert_eq!(local.row(1), (&[1u32][..], &[3.0f32][..]));
    }

    #[test]
    fn leading_columns_drop_the_rest_of_each_row() {
        let m = CsrMatrix::from_rows(
            10,
            &[
                vec![(2, 2.0), (7, 1.0)],
                vec![(5, 3.0), (9, 4.0)],
                vec![(8, 5.0)],
            ],
        )
        .unwrap();
        let local = LocalRows::gather_leading(&m.view(), &[0, 1, 2], 6);
        assert_eq!(local.columns, vec![2, 5]);
        assert_eq!(local.row(0), (&[0u32][..], &[2.0f32][..]));
        assert_eq!(local.row(1), (&[1u32][..], &[3.0f32][..]));
        assert_eq!(local.row(2), (&[][..], &[][..]));
        assert_eq!(
            LocalRows::gather_leading(&m.view(), &[0, 1], 10),
            LocalRows::gather(&m.view(), &[0, 1])
        );
    }
}

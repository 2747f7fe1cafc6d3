//! Compressed sparse row matrices (f32 values), validated on construction.
//!
//! [`CsrView`] borrows the three arrays of a scipy `csr_matrix` without copying; [`CsrMatrix`] owns
//! them. Both guarantee, once built: `indptr` starts at 0, never decreases and ends at `nnz`; the
//! column indices of every row are strictly increasing and inside `0..n_cols`; all values are finite.
//! The kernels downstream rely on these facts and never re-check them.

use crate::error::{PecosError, Result};
use std::cell::RefCell;

/// A borrowed, validated CSR matrix.
#[derive(Clone, Copy, Debug)]
pub struct CsrView<'a> {
    n_rows: usize,
    n_cols: usize,
    indptr: &'a [i64],
    indices: &'a [i32],
    data: &'a [f32],
}

/// One sparse row: strictly increasing column indices and their values.
#[derive(Clone, Copy, Debug)]
pub struct SparseRow<'a> {
    pub indices: &'a [i32],
    pub data: &'a [f32],
}

impl<'a> SparseRow<'a> {
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, f32)> + 'a {
        self.indices
            .iter()
            .zip(self.data)
            .map(|(&j, &v)| (j as usize, v))
    }
}

impl<'a> CsrView<'a> {
    /// Validates the arrays in O(nnz) and wraps them.
    ///
    /// # Errors
    /// [`PecosError::InvalidInput`] or [`PecosError::ShapeMismatch`] describing the first violation.
    pub fn try_new(
        n_rows: usize,
        n_cols: usize,
        indptr: &'a [i64],
        indices: &'a [i32],
        data: &'a [f32],
    ) -> Result<Self> {
        if indptr.len() != n_rows + 1 {
            return Err(PecosError::shape("indptr length", n_rows + 1, indptr.len()));
        }
        if indices.len() != data.len() {
            return Err(PecosError::shape("data length", indices.len(), data.len()));
        }
        if indptr[0] != 0 {
            return Err(PecosError::InvalidInput("indptr[0] must be 0".into()));
        }
        if indptr[n_rows] != indices.len() as i64 {
            return Err(PecosError::shape(
                "indptr[-1] (nnz)",
                indices.len(),
                usize::try_from(indptr[n_rows]).unwrap_or(0),
            ));
        }
        if n_cols > i32::MAX as usize {
            return Err(PecosError::InvalidInput(format!(
                "at most {} columns are supported, got {n_cols}",
                i32::MAX
            )));
        }
        for (row, w) in indptr.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(PecosError::InvalidInput(format!(
                    "indptr decreases at row {row}"
                )));
            }
            // Bounded by indptr[n_rows] == len, checked above, once monotonicity holds.
            let cols = &indices[w[0] as usize..w[1] as usize];
            let mut prev = -1i64;
            for &c in cols {
                if c < 0 || c as usize >= n_cols {
                    return Err(PecosError::InvalidInput(format!(
                        "column index {c} out of range 0..{n_cols} in row {row}"
                    )));
                }
                if i64::from(c) <= prev {
                    return Err(PecosError::InvalidInput(format!(
                        "column indices of row {row} are not sorted and unique"
                    )));
                }
                prev = i64::from(c);
            }
        }
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Err(PecosError::InvalidInput(format!(
                "non-finite value {} at position {pos}",
                data[pos]
            )));
        }
        Ok(CsrView {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn indptr(&self) -> &'a [i64] {
        self.indptr
    }

    pub fn indices(&self) -> &'a [i32] {
        self.indices
    }

    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Row `i`. Panics if `i >= n_rows` (an internal invariant, never user input).
    pub fn row(&self, i: usize) -> SparseRow<'a> {
        let (lo, hi) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        SparseRow {
            indices: &self.indices[lo..hi],
            data: &self.data[lo..hi],
        }
    }
}

/// An owned CSR matrix with the same guarantees as [`CsrView`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsrMatrix {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<i64>,
    indices: Vec<i32>,
    data: Vec<f32>,
}

impl CsrMatrix {
    /// Validates and takes ownership of the arrays.
    ///
    /// # Errors
    /// As [`CsrView::try_new`].
    pub fn try_new(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<i64>,
        indices: Vec<i32>,
        data: Vec<f32>,
    ) -> Result<Self> {
        CsrView::try_new(n_rows, n_cols, &indptr, &indices, &data)?;
        Ok(CsrMatrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// Builds a matrix from per-row (column, value) lists; columns are sorted and duplicates summed.
    ///
    /// # Errors
    /// As [`CsrView::try_new`] (out-of-range columns, non-finite values).
    pub fn from_rows(n_cols: usize, rows: &[Vec<(usize, f32)>]) -> Result<Self> {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        indptr.push(0i64);
        for row in rows {
            let mut row = row.clone();
            row.sort_by_key(|&(j, _)| j);
            let start = indices.len();
            for (j, v) in row {
                let j = i32::try_from(j)
                    .map_err(|_| PecosError::InvalidInput(format!("column {j} too large")))?;
                if indices.len() > start && indices.last() == Some(&j) {
                    if let Some(last) = data.last_mut() {
                        *last += v;
                    }
                } else {
                    indices.push(j);
                    data.push(v);
                }
            }
            indptr.push(indices.len() as i64);
        }
        Self::try_new(rows.len(), n_cols, indptr, indices, data)
    }

    /// `(n_rows, n_cols, indptr, indices, data)`.
    pub fn into_parts(self) -> (usize, usize, Vec<i64>, Vec<i32>, Vec<f32>) {
        (
            self.n_rows,
            self.n_cols,
            self.indptr,
            self.indices,
            self.data,
        )
    }

    pub fn view(&self) -> CsrView<'_> {
        CsrView {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: &self.indptr,
            indices: &self.indices,
            data: &self.data,
        }
    }
}

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
        COLUMN_MAP.with_borrow_mut(|map| {
            if map.len() < x.n_cols() {
                map.resize(x.n_cols(), u32::MAX);
            }
            Self::gather_with(x, rows, map)
        })
    }

    fn gather_with(x: &CsrView<'_>, rows: &[u32], map: &mut [u32]) -> Self {
        // Pass 1: number the columns in order of first appearance and count them.
        let mut seen: Vec<u32> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        let mut nnz = 0;
        for &r in rows {
            let row = x.row(r as usize);
            nnz += row.nnz();
            for &j in row.indices {
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
            let row = x.row(r as usize);
            indices.extend(row.indices.iter().map(|&j| map[j as usize]));
            data.extend_from_slice(row.data);
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

    #[test]
    fn accepts_valid_matrix() {
        let m = CsrView::try_new(2, 3, &[0, 2, 3], &[0, 2, 1], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(m.nnz(), 3);
        let r: Vec<_> = m.row(0).iter().collect();
        assert_eq!(r, vec![(0, 1.0), (2, 2.0)]);
    }

    #[test]
    fn rejects_each_kind_of_corruption() {
        let bad = [
            CsrView::try_new(2, 3, &[0, 2], &[0, 2], &[1.0, 2.0]).err(),
            CsrView::try_new(2, 3, &[1, 2, 3], &[0, 2, 1], &[1.0, 2.0, 3.0]).err(),
            CsrView::try_new(2, 3, &[0, 2, 1], &[0, 2], &[1.0, 2.0]).err(),
            CsrView::try_new(2, 3, &[0, 2, 3], &[0, 3, 1], &[1.0, 2.0, 3.0]).err(),
            CsrView::try_new(2, 3, &[0, 2, 3], &[2, 0, 1], &[1.0, 2.0, 3.0]).err(),
            CsrView::try_new(2, 3, &[0, 2, 3], &[0, 0, 1], &[1.0, 2.0, 3.0]).err(),
            CsrView::try_new(2, 3, &[0, 2, 3], &[0, 2, 1], &[1.0, f32::NAN, 3.0]).err(),
            CsrView::try_new(2, 3, &[0, 2, 3], &[0, -1, 1], &[1.0, 2.0, 3.0]).err(),
            CsrView::try_new(2, 3, &[0, 2, 4], &[0, 2, 1], &[1.0, 2.0, 3.0]).err(),
        ];
        for (i, e) in bad.iter().enumerate() {
            assert!(e.is_some(), "case {i} was accepted");
        }
    }

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
    fn from_rows_sorts_and_merges() {
        let m = CsrMatrix::from_rows(4, &[vec![(3, 1.0), (1, 2.0), (3, 1.0)], vec![]]).unwrap();
        let r: Vec<_> = m.view().row(0).iter().collect();
        assert_eq!(r, vec![(1, 2.0), (3, 2.0)]);
        assert_eq!(m.view().row(1).nnz(), 0);
    }
}

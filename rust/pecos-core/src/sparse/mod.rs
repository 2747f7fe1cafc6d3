//! Compressed sparse row matrices (f32 values), validated on construction.
//!
//! [`CsrView`] borrows the three arrays of a scipy `csr_matrix` without copying; [`CsrMatrix`] owns
//! them. Both guarantee, once built: `indptr` starts at 0, never decreases and ends at `nnz`; the
//! column indices of every row are strictly increasing and inside `0..n_cols`; all values are finite.
//! The kernels downstream rely on these facts and never re-check them. [`RowBlock`] holds
//! consecutive rows of a view as a matrix of their own, without copying their entries.
//!
//! Uses nothing else of the crate; every other stage uses it.

use crate::error::{PecosError, Result};
use std::ops::Range;

mod local;

pub use local::LocalRows;

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
        // n_rows comes from the caller: usize::MAX rows would overflow the expected length.
        if Some(indptr.len()) != n_rows.checked_add(1) {
            return Err(PecosError::shape(
                "indptr length",
                n_rows.saturating_add(1),
                indptr.len(),
            ));
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
        // Checked for the whole array before any row is sliced: a pointer past the end may be
        // followed by a decrease back to nnz (found by fuzzing).
        if let Some(row) = indptr.windows(2).position(|w| w[1] < w[0]) {
            return Err(PecosError::InvalidInput(format!(
                "indptr decreases at row {row}"
            )));
        }
        for (row, w) in indptr.windows(2).enumerate() {
            // Within 0..=len: indptr starts at 0, never decreases and ends at len.
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

    /// The consecutive rows `rows` as a matrix of their own. Panics unless `rows` lies within
    /// `0..n_rows` (an internal invariant, never user input).
    pub fn row_block(&self, rows: Range<usize>) -> RowBlock<'a> {
        let bounds = &self.indptr[rows.start..=rows.end];
        let (lo, hi) = (bounds[0], bounds[bounds.len() - 1]);
        RowBlock {
            n_cols: self.n_cols,
            indptr: bounds.iter().map(|&p| p - lo).collect(),
            indices: &self.indices[lo as usize..hi as usize],
            data: &self.data[lo as usize..hi as usize],
        }
    }
}

/// Consecutive rows of a [`CsrView`] ([`CsrView::row_block`]): their entries stay borrowed, only
/// the row pointers are copied, rebased to start at 0.
#[derive(Clone, Debug)]
pub struct RowBlock<'a> {
    n_cols: usize,
    indptr: Vec<i64>,
    indices: &'a [i32],
    data: &'a [f32],
}

impl RowBlock<'_> {
    /// The rows as a matrix; valid without a check, as rows of a valid matrix.
    pub fn view(&self) -> CsrView<'_> {
        CsrView {
            n_rows: self.indptr.len() - 1,
            n_cols: self.n_cols,
            indptr: &self.indptr,
            indices: self.indices,
            data: self.data,
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

    /// A copy of a view (already validated).
    pub fn from_view(m: &CsrView<'_>) -> Self {
        CsrMatrix {
            n_rows: m.n_rows,
            n_cols: m.n_cols,
            indptr: m.indptr.to_vec(),
            indices: m.indices.to_vec(),
            data: m.data.to_vec(),
        }
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
            // Found by fuzzing (csr_parts): the expected indptr length overflowed.
            CsrView::try_new(usize::MAX, 3, &[], &[], &[]).err(),
            // Found by fuzzing: a row pointer past nnz, then a decrease back to it.
            CsrView::try_new(2, 3, &[0, 1 << 40, 0], &[], &[]).err(),
        ];
        for (i, e) in bad.iter().enumerate() {
            assert!(e.is_some(), "case {i} was accepted");
        }
    }

    #[test]
    fn row_blocks_are_the_rows_they_cover() {
        let m = CsrMatrix::from_rows(
            4,
            &[
                vec![(0, 1.0)],
                vec![(1, 2.0), (3, 3.0)],
                vec![],
                vec![(2, 4.0)],
            ],
        )
        .unwrap();
        let full = m.view();
        let block = full.row_block(1..4);
        let view = block.view();
        assert_eq!((view.n_rows(), view.n_cols(), view.nnz()), (3, 4, 3));
        assert_eq!(view.indptr(), &[0, 2, 2, 3]);
        for i in 0..3 {
            let (a, b) = (view.row(i), full.row(i + 1));
            assert_eq!((a.indices, a.data), (b.indices, b.data));
        }
        assert_eq!(full.row_block(2..2).view().n_rows(), 0);
    }

    #[test]
    fn from_rows_sorts_and_merges() {
        let m = CsrMatrix::from_rows(4, &[vec![(3, 1.0), (1, 2.0), (3, 1.0)], vec![]]).unwrap();
        let r: Vec<_> = m.view().row(0).iter().collect();
        assert_eq!(r, vec![(1, 2.0), (3, 2.0)]);
        assert_eq!(m.view().row(1).nnz(), 0);
    }
}

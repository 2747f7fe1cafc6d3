//! PIFA label embeddings (PECOS spec 1.1): each label represented by the normalised sum of the
//! feature vectors of its positive instances, the input of the k-means indexer.

use crate::error::{PecosError, Result};
use crate::sparse::{CsrMatrix, CsrView};
use rayon::prelude::*;

/// PIFA embeddings `Z = normalize_rows(normalize_rows(Y)^T X)`: each label is the normalised sum of
/// its instances' feature vectors, each instance weighted by `1 / ||y_i||`. Labels without instances
/// get empty rows. Parallel over labels.
///
/// # Errors
/// [`PecosError::ShapeMismatch`] if `x` and `y` have different numbers of rows.
pub fn pifa(x: &CsrView<'_>, y: &CsrView<'_>) -> Result<CsrMatrix> {
    let all_labels: Vec<u32> = (0..y.n_cols() as u32).collect();
    pifa_of_labels(x, y, &all_labels)
}

/// The rows of [`pifa`]'s `Z` for the columns `labels` of `y` only (row `k` embeds label
/// `labels[k]`), bit for bit: each row of `y` is still weighted by the norm of the whole row. So a
/// machine holding only the rows of `x` and `y` that have one of `labels` computes their
/// embeddings exactly as [`pifa`] does over all the rows (the sums run over the rows in order).
///
/// # Errors
/// [`PecosError::ShapeMismatch`] if `x` and `y` have different numbers of rows;
/// [`PecosError::InvalidInput`] for a label that is not a column of `y` or is listed twice.
pub fn pifa_of_labels(x: &CsrView<'_>, y: &CsrView<'_>, labels: &[u32]) -> Result<CsrMatrix> {
    if x.n_rows() != y.n_rows() {
        return Err(PecosError::shape(
            "rows of Y (instances)",
            x.n_rows(),
            y.n_rows(),
        ));
    }
    // Position of each wanted column among `labels` (NOT_WANTED for the others).
    const NOT_WANTED: u32 = u32::MAX;
    let mut position = vec![NOT_WANTED; y.n_cols()];
    for (k, &label) in labels.iter().enumerate() {
        match position.get_mut(label as usize) {
            Some(slot) if *slot == NOT_WANTED => *slot = k as u32,
            Some(_) => {
                return Err(PecosError::InvalidInput(format!(
                    "label {label} is listed twice"
                )))
            }
            None => {
                return Err(PecosError::InvalidInput(format!(
                    "label {label} is not a column of Y ({} columns)",
                    y.n_cols()
                )))
            }
        }
    }
    let row_scale: Vec<f32> = (0..y.n_rows())
        .map(|i| {
            let norm = y.row(i).data.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                1.0 / norm
            } else {
                0.0
            }
        })
        .collect();
    // Instances of each wanted label, with their weights (Y transposed).
    let mut instances: Vec<Vec<(u32, f32)>> = vec![Vec::new(); labels.len()];
    for (i, &scale) in row_scale.iter().enumerate() {
        for (j, v) in y.row(i).iter() {
            let k = position[j];
            if v != 0.0 && k != NOT_WANTED {
                instances[k as usize].push((i as u32, v * scale));
            }
        }
    }
    let d = x.n_cols();
    let mut indptr = Vec::with_capacity(y.n_cols() + 1);
    indptr.push(0i64);
    let mut indices = Vec::new();
    let mut data = Vec::new();
    // Labels are embedded a block at a time and appended to the output, so that the per-label
    // vectors in flight are one block's, not a second copy of the whole output.
    for block in instances.chunks(PIFA_BLOCK) {
        let rows: Vec<(Vec<i32>, Vec<f32>)> = block
            .par_iter()
            .map_init(
                || (vec![0f64; d], Vec::<u32>::new()),
                |(acc, touched), inst| embed_label(x, inst, acc, touched),
            )
            .collect();
        for (cols, vals) in rows {
            indices.extend(cols);
            data.extend(vals);
            indptr.push(indices.len() as i64);
        }
    }
    CsrMatrix::try_new(labels.len(), d, indptr, indices, data)
}

/// Labels per block of [`pifa`].
const PIFA_BLOCK: usize = 4096;

/// One PIFA row: the normalised sum of `x`'s rows `inst` (with their weights), as sorted
/// (columns, values). `acc` (zero, `x.n_cols()` long) and `touched` (empty) are scratch space
/// and are left as they were found.
fn embed_label(
    x: &CsrView<'_>,
    inst: &[(u32, f32)],
    acc: &mut [f64],
    touched: &mut Vec<u32>,
) -> (Vec<i32>, Vec<f32>) {
    for &(i, w) in inst {
        for (f, v) in x.row(i as usize).iter() {
            if acc[f] == 0.0 {
                touched.push(f as u32);
            }
            acc[f] += f64::from(w) * f64::from(v);
        }
    }
    // An exact cancellation to 0 may list a feature twice; dedup after sorting.
    touched.sort_unstable();
    touched.dedup();
    let norm = touched
        .iter()
        .map(|&f| acc[f as usize].powi(2))
        .sum::<f64>()
        .sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    let mut cols = Vec::with_capacity(touched.len());
    let mut vals = Vec::with_capacity(touched.len());
    for &f in touched.iter() {
        let v = acc[f as usize] * scale;
        acc[f as usize] = 0.0;
        if v != 0.0 {
            cols.push(f as i32);
            vals.push(v as f32);
        }
    }
    touched.clear();
    (cols, vals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pifa_normalises_rows_and_label_sums() {
        let x = CsrMatrix::from_rows(3, &[vec![(0, 1.0)], vec![(1, 2.0)], vec![(2, 1.0)]]).unwrap();
        // row 0 has labels {0, 1}: weight 1/sqrt(2); row 1 label 0; row 2 no label.
        let y =
            CsrMatrix::from_rows(3, &[vec![(0, 1.0), (1, 1.0)], vec![(0, 1.0)], vec![]]).unwrap();
        let z = pifa(&x.view(), &y.view()).unwrap();
        let z = z.view();
        let r0: Vec<_> = z.row(0).iter().collect();
        let (a, b) = (1.0 / 2f32.sqrt(), 2.0);
        let norm = (a * a + b * b).sqrt();
        assert_eq!(r0.len(), 2);
        assert!((r0[0].1 - a / norm).abs() < 1e-6 && (r0[1].1 - b / norm).abs() < 1e-6);
        assert_eq!(z.row(1).iter().collect::<Vec<_>>(), vec![(0, 1.0)]);
        assert_eq!(z.row(2).nnz(), 0);
    }

    /// Rows of X and Y that have one of the wanted labels (in order) give those labels' rows of
    /// the full PIFA bit for bit; bad label lists are refused.
    #[test]
    fn embeddings_of_some_labels_from_their_rows_equal_the_full_ones() {
        let mut rng = crate::rng::SplitMix64::new(11);
        let (n, d, n_labels) = (40, 9, 7);
        let mut xr = Vec::new();
        let mut yr = Vec::new();
        for _ in 0..n {
            let mut row = Vec::new();
            for f in 0..d {
                if rng.below(3) == 0 {
                    row.push((f, 0.1 + rng.below(100) as f32 / 37.0));
                }
            }
            xr.push(row);
            yr.push(
                (0..n_labels)
                    .filter(|_| rng.below(3) == 0)
                    .map(|j| (j, 1.0))
                    .collect::<Vec<_>>(),
            );
        }
        let x = CsrMatrix::from_rows(d, &xr).unwrap();
        let y = CsrMatrix::from_rows(n_labels, &yr).unwrap();
        let full = pifa(&x.view(), &y.view()).unwrap();
        let wanted = [1u32, 4, 5];
        let keep: Vec<usize> = (0..n)
            .filter(|&i| yr[i].iter().any(|&(j, _)| wanted.contains(&(j as u32))))
            .collect();
        assert!(keep.len() < n);
        let pick = |rows: &Vec<Vec<(usize, f32)>>, n_cols| {
            CsrMatrix::from_rows(
                n_cols,
                &keep.iter().map(|&i| rows[i].clone()).collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let (xs, ys) = (pick(&xr, d), pick(&yr, n_labels));
        let part = pifa_of_labels(&xs.view(), &ys.view(), &wanted).unwrap();
        for (k, &label) in wanted.iter().enumerate() {
            let a: Vec<_> = part
                .view()
                .row(k)
                .iter()
                .map(|(f, v)| (f, v.to_bits()))
                .collect();
            let b: Vec<_> = full
                .view()
                .row(label as usize)
                .iter()
                .map(|(f, v)| (f, v.to_bits()))
                .collect();
            assert!(!a.is_empty());
            assert_eq!(a, b, "label {label}");
        }
        assert!(pifa_of_labels(&xs.view(), &ys.view(), &[7]).is_err());
        assert!(pifa_of_labels(&xs.view(), &ys.view(), &[1, 1]).is_err());
    }
}

//! Which rows train which tree nodes: each row's positive nodes at every depth (teacher-forced
//! targets, TFN) and the rows that the upper layers' beam sends to a node (matcher-aware
//! negatives, MAN).

use crate::error::Result;
use crate::index::ChainLayer;
use crate::infer::{predict_batch, PredictParams};
use crate::model::Layer;
use crate::sparse::CsrView;
use crate::train::TrainParams;

/// For each row, the sorted set of tree nodes at one depth (labels at the bottom).
pub(super) struct NodeSets {
    indptr: Vec<usize>,
    nodes: Vec<u32>,
}

impl NodeSets {
    pub(super) fn row(&self, i: usize) -> &[u32] {
        &self.nodes[self.indptr[i]..self.indptr[i + 1]]
    }

    pub(super) fn from_labels(y: &CsrView<'_>) -> Self {
        let mut indptr = Vec::with_capacity(y.n_rows() + 1);
        let mut nodes = Vec::with_capacity(y.nnz());
        indptr.push(0);
        for i in 0..y.n_rows() {
            nodes.extend(
                y.row(i)
                    .iter()
                    .filter(|&(_, v)| v != 0.0)
                    .map(|(j, _)| j as u32),
            );
            indptr.push(nodes.len());
        }
        NodeSets { indptr, nodes }
    }

    /// The parents of each row's nodes, one level up.
    pub(super) fn parents(&self, layer: &ChainLayer) -> Self {
        let n_rows = self.indptr.len() - 1;
        let mut indptr = Vec::with_capacity(n_rows + 1);
        let mut nodes = Vec::with_capacity(self.nodes.len());
        indptr.push(0);
        let parent_of = layer.parent_of();
        for i in 0..n_rows {
            let start = nodes.len();
            nodes.extend(self.row(i).iter().map(|&c| parent_of[c as usize]));
            nodes[start..].sort_unstable();
            let kept = dedup_in_place(&mut nodes[start..]);
            nodes.truncate(start + kept);
            indptr.push(nodes.len());
        }
        NodeSets { indptr, nodes }
    }

    /// Row ids per node (the transpose), rows increasing.
    pub(super) fn rows_per_node(&self, n_nodes: usize) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); n_nodes];
        for i in 0..self.indptr.len() - 1 {
            for &k in self.row(i) {
                out[k as usize].push(i as u32);
            }
        }
        out
    }
}

/// Removes consecutive duplicates from a sorted slice; returns the number of distinct values kept at the front.
fn dedup_in_place(v: &mut [u32]) -> usize {
    if v.is_empty() {
        return 0;
    }
    let mut kept = 1;
    for i in 1..v.len() {
        if v[i] != v[kept - 1] {
            v[kept] = v[i];
            kept += 1;
        }
    }
    kept
}

/// Adds to each parent's rows those rows whose beam through the trained upper layers reaches it.
pub(super) fn add_matcher_negatives(
    rows: &mut [Vec<u32>],
    upper: &[Layer],
    x: &CsrView<'_>,
    params: &TrainParams,
) -> Result<()> {
    let b = params.man_beam_size;
    let predicted = predict_batch(
        upper,
        x.n_cols(),
        params.solver.bias,
        x,
        &PredictParams {
            beam_size: b,
            topk: b,
            post_processor: params.man_post_processor,
        },
    )?;
    for (i, row_nodes) in predicted.labels.chunks(b).enumerate() {
        for &k in row_nodes.iter().filter(|&&k| k >= 0) {
            rows[k as usize].push(i as u32);
        }
    }
    for r in rows.iter_mut() {
        r.sort_unstable();
        let n = dedup_in_place(r);
        r.truncate(n);
    }
    Ok(())
}

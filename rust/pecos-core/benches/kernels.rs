//! Criterion benches of the core kernels on synthetic data: training a three-layer model, batch
//! beam search, and the single-query path (one reused `Searcher`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pecos_core::error::StopFlag;
use pecos_core::index::ClusterChain;
use pecos_core::infer::{predict_batch, PostProcessor, PredictParams, Searcher};
use pecos_core::rng::SplitMix64;
use pecos_core::sparse::CsrMatrix;
use pecos_core::train::{train, TrainParams};
use std::hint::black_box;

const N_FEATURES: usize = 20_000;
const N_LABELS: usize = 4_096;
const NNZ_PER_ROW: usize = 40;

/// Rows with a few "topic" features shared by their label plus random noise features, L2-normalised.
fn synthetic(n_rows: usize, seed: u64) -> (CsrMatrix, CsrMatrix) {
    let mut rng = SplitMix64::new(seed);
    let mut below = |n: usize| (rng.next_u64() % n as u64) as usize;
    let mut x_rows = Vec::with_capacity(n_rows);
    let mut y_rows = Vec::with_capacity(n_rows);
    for _ in 0..n_rows {
        let label = below(N_LABELS);
        let mut row: Vec<(usize, f32)> = (0..8)
            .map(|k| ((label * 8 + k) % N_FEATURES, 1.0))
            .collect();
        row.extend((0..NNZ_PER_ROW - 8).map(|_| (below(N_FEATURES), 0.5)));
        let norm = row.iter().map(|e| e.1 * e.1).sum::<f32>().sqrt();
        row.iter_mut().for_each(|e| e.1 /= norm);
        x_rows.push(row);
        y_rows.push(vec![(label, 1.0)]);
    }
    (
        CsrMatrix::from_rows(N_FEATURES, &x_rows).expect("valid synthetic X"),
        CsrMatrix::from_rows(N_LABELS, &y_rows).expect("valid synthetic Y"),
    )
}

/// A 16-ary chain over consecutive label ids: 16 -> 256 -> 4096 labels.
fn chain() -> ClusterChain {
    let layer = |n: usize| (0..n as u32).map(|i| i / 16).collect::<Vec<_>>();
    ClusterChain::try_new(vec![vec![0; 16], layer(256), layer(N_LABELS)]).expect("valid chain")
}

fn benches(c: &mut Criterion) {
    let (x, y) = synthetic(20_000, 1);
    let chain = chain();
    let params = TrainParams::default();
    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    let fit = || {
        let quiet = |_: &_| {};
        train(
            &x.view(),
            &y.view(),
            None,
            &chain,
            &params,
            &quiet,
            &StopFlag::default(),
        )
        .expect("training")
    };
    group.bench_function("3 layers, 20k rows, 4k labels", |b| b.iter(fit));
    group.finish();

    let model = fit();
    let (q, _) = synthetic(2_000, 2);
    let pp = PredictParams {
        beam_size: 10,
        topk: 10,
        post_processor: PostProcessor::Hinge(3),
    };
    let mut group = c.benchmark_group("predict");
    group.throughput(Throughput::Elements(q.view().n_rows() as u64));
    group.bench_function("batch, beam 10", |b| {
        b.iter(|| {
            predict_batch(
                model.layers(),
                model.n_features(),
                model.bias(),
                &q.view(),
                &pp,
            )
            .expect("predict")
        });
    });
    group.throughput(Throughput::Elements(1));
    let mut searcher = Searcher::new();
    let mut i = 0;
    group.bench_function("single query, beam 10", |b| {
        b.iter(|| {
            searcher
                .search(
                    model.layers(),
                    model.bias(),
                    &[q.view().row(i % 2_000)],
                    &pp,
                )
                .unwrap();
            i += 1;
            black_box(searcher.results(0).len())
        });
    });
    group.finish();
}

criterion_group!(kernels, benches);
criterion_main!(kernels);

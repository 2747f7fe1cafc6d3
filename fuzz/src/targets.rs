//! One function per fuzz target. Each runs its input under a heap budget
//! ([`crate::alloc::with_budget`]) and, when `pecos-core` accepts the input, checks what the
//! rest of the library relies on: a loaded artifact saves to bytes that load back to the same
//! bytes, and can be used once (a prediction, a completion, a transform) without panicking and
//! with a well-formed answer. Each returns whether `pecos-core` accepted the input.

use crate::alloc::with_budget;
use crate::input::{with_valid_checksum, Bytes};
use pecos_core::index::ClusterChain;
use pecos_core::infer::{
    predict_batch, predict_one, NeighbourIndex, NeighbourParams, PostProcessor, PredictParams, TopK,
};
use pecos_core::io::{self, Artifact};
use pecos_core::model::XLinearModel;
use pecos_core::qac::CompletionIndex;
use pecos_core::sparse::{CsrMatrix, CsrView};
use pecos_core::text::{
    AnalyzerConfig, DfBound, NgramCounter, Norm, PositionDecay, TfidfConfig, Vocabulary,
    DEFAULT_TOKEN_PATTERN,
};

/// A fuzz target: runs one input, returns whether `pecos-core` accepted it.
pub type Target = fn(&[u8]) -> bool;

/// Every target by name (the name of its corpus folder and of its libFuzzer binary).
pub const ALL: [(&str, Target); 7] = [
    ("model_file", model_file),
    ("vocab_file", vocab_file),
    ("completion_file", completion_file),
    ("neighbour_file", neighbour_file),
    ("cluster_chain", cluster_chain),
    ("csr_parts", csr_parts),
    ("text_analyzers", text_analyzers),
];

/// Heap per input byte for the loaders: an artifact's arrays are in the file, so what it needs
/// in memory is a small multiple of its size (plus the base budget).
const LOADER_BYTES_PER_BYTE: usize = 64;
/// Heap per input byte for the text target: every document position starts up to `max_n`
/// n-grams of up to `max_n` characters, each counted and hashed.
const TEXT_BYTES_PER_BYTE: usize = 8192;

/// The input as given, then with its checksum made valid (when that changes it): the first
/// exercises the envelope's own checks, the second the checks behind the checksum.
fn loader_inputs(data: &[u8]) -> Vec<Vec<u8>> {
    let mut inputs = vec![data.to_vec()];
    if let Some(fixed) = with_valid_checksum(data).filter(|f| f != data) {
        inputs.push(fixed);
    }
    inputs
}

type Load<T> = fn(&[u8]) -> pecos_core::Result<(T, serde_json::Value)>;
type Save<T> = fn(&T, &serde_json::Value) -> Vec<u8>;

/// Runs `load` on the input as given and with a valid checksum; on what it accepts, checks that
/// saving gives bytes that load back and save to the same bytes, then `check(loaded, reloaded)`.
fn fuzz_loader<T>(data: &[u8], load: Load<T>, save: Save<T>, check: impl Fn(&T, &T)) -> bool {
    with_budget(data.len(), LOADER_BYTES_PER_BYTE, || {
        let mut accepted = false;
        for bytes in loader_inputs(data) {
            if let Ok((loaded, metadata)) = load(&bytes) {
                accepted = true;
                let saved = save(&loaded, &metadata);
                let (back, back_metadata) = load(&saved).expect("a saved artifact loads back");
                assert!(
                    save(&back, &back_metadata) == saved,
                    "save(load(save(x))) differs from save(x)"
                );
                check(&loaded, &back);
            }
        }
        accepted
    })
}

// ---------------------------------------------------------------- model file

/// `io::from_bytes` (the model file, with the cluster chain it stores) on arbitrary bytes, and
/// the memory-mapped loader `io::load_mapped` on the same bytes.
pub fn model_file(data: &[u8]) -> bool {
    let accepted = fuzz_loader(data, io::from_bytes, io::to_bytes, |model, back| {
        assert!(back == model, "the reloaded model differs");
        check_predictions(model);
    });
    with_budget(data.len(), LOADER_BYTES_PER_BYTE, || {
        for bytes in loader_inputs(data) {
            check_mapped(
                &bytes,
                io::from_bytes(&bytes).ok().map(|(model, _)| model).as_ref(),
            );
        }
    });
    accepted
}

/// `io::load_mapped` of `bytes` written to a scratch file. It reads no weight at load, so it may
/// accept a file that a full load (`read`: None) refuses; then `verify` must refuse it and a
/// prediction must answer or err (a chunk is checked on first use), never panic. On a file a full
/// load accepts, the mapped model must verify and answer exactly as the loaded one.
fn check_mapped(bytes: &[u8], read: Option<&XLinearModel>) {
    let path = std::env::temp_dir().join(format!(
        "pecos-fuzz-mapped-{}-{:?}.bin",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, bytes).expect("the scratch file is writable");
    let mapped = io::load_mapped(&path);
    std::fs::remove_file(&path).expect("the scratch file is removable"); // the mapping keeps it
    let Ok((mapped, _)) = mapped else {
        return;
    };
    match read {
        Some(model) => {
            io::verify(&mapped).expect("a file a full load accepts verifies when mapped");
            let bits = |answers: Vec<TopK>| -> Vec<(Vec<i64>, Vec<u32>)> {
                answers
                    .into_iter()
                    .map(|t| (t.labels, t.scores.iter().map(|s| s.to_bits()).collect()))
                    .collect()
            };
            let mapped_answers = answers(&mapped).expect("a mapped valid model answers");
            let read_answers = answers(model).expect("a loaded model answers");
            assert!(
                bits(mapped_answers) == bits(read_answers),
                "the mapped model answers differently"
            );
        }
        None => {
            assert!(
                io::verify(&mapped).is_err(),
                "a file a full load refuses verifies when mapped"
            );
            let _ = answers(&mapped); // an error is fine, a panic is a finding
        }
    }
}

/// The single-query answers of `model` to [`probe_query`] at each of [`PROBE_SETTINGS`].
fn answers(model: &XLinearModel) -> pecos_core::Result<Vec<TopK>> {
    let (indptr, features, values) = probe_query(model.n_features());
    let x = CsrView::try_new(1, model.n_features(), &indptr, &features, &values)
        .expect("a query as wide as the model is valid");
    PROBE_SETTINGS
        .iter()
        .map(|&(beam_size, topk, post)| {
            predict_one(model, &x, &probe_params(beam_size, topk, post))
        })
        .collect()
}

/// Search settings every loaded model is asked with: (beam size, top-k, post-processor).
const PROBE_SETTINGS: [(usize, usize, &str); 3] =
    [(1, 1, "noop"), (3, 5, "l3-hinge"), (10, 10, "sigmoid")];

fn probe_params(beam_size: usize, topk: usize, post: &str) -> PredictParams {
    PredictParams {
        beam_size,
        topk,
        post_processor: PostProcessor::parse(post).expect("a known post-processor"),
    }
}

/// One query row (indptr, features, values) of width `n`: its first, middle and last feature.
fn probe_query(n: usize) -> ([i64; 2], Vec<i32>, Vec<f32>) {
    let mut features: Vec<i32> = [0, n / 2, n.saturating_sub(1)]
        .into_iter()
        .filter(|&f| f < n)
        .map(|f| i32::try_from(f).expect("a loaded model's features fit a query's i32 columns"))
        .collect();
    features.dedup();
    let values: Vec<f32> = [1.0, 0.5, -0.25][..features.len()].to_vec();
    ([0, features.len() as i64], features, values)
}

/// A loaded model answers a query of its width: labels in range, distinct, padding (-1) last,
/// and the single-query path agrees with the batch path.
fn check_predictions(model: &XLinearModel) {
    let n = model.n_features();
    let (indptr, features, values) = probe_query(n);
    let x = CsrView::try_new(1, n, &indptr, &features, &values)
        .expect("a query as wide as the model is valid");
    let single = answers(model).expect("a valid query is answered");
    for (&(beam_size, topk, post), one) in PROBE_SETTINGS.iter().zip(&single) {
        let params = probe_params(beam_size, topk, post);
        let batch = predict_batch(model.layers(), n, model.bias(), &x, &params)
            .expect("a valid batch is answered");
        assert_eq!(
            one.labels, batch.labels,
            "single and batch prediction disagree"
        );
        assert!(
            one.scores
                .iter()
                .map(|s| s.to_bits())
                .eq(batch.scores.iter().map(|s| s.to_bits())),
            "single and batch scores disagree"
        );
        check_top_k(one, model.n_labels());
    }
}

fn check_top_k(top: &TopK, n_labels: usize) {
    assert_eq!(top.labels.len(), top.k);
    assert_eq!(top.scores.len(), top.k);
    let found: Vec<i64> = top.labels.iter().copied().take_while(|&l| l >= 0).collect();
    assert!(
        top.labels[found.len()..].iter().all(|&l| l == -1),
        "padding is not last: {:?}",
        top.labels
    );
    assert!(
        found.iter().all(|&l| (l as usize) < n_labels),
        "label out of range"
    );
    let mut distinct = found.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), found.len(), "a label is returned twice");
}

// ---------------------------------------------------------------- text vocabulary

/// `Vocabulary::from_bytes` (a fitted text featurizer) on arbitrary bytes.
pub fn vocab_file(data: &[u8]) -> bool {
    fuzz_loader(
        data,
        Vocabulary::from_bytes,
        Vocabulary::to_bytes,
        |vocab, back| {
            let docs = probe_documents(vocab);
            let rows = check_transform(vocab, &docs);
            assert!(
                same_rows(&rows, &check_transform(back, &docs)),
                "the reloaded vocabulary transforms differently"
            );
        },
    )
}

/// Documents that hit the vocabulary: some of its n-grams, alone and joined.
fn probe_documents(vocab: &Vocabulary) -> Vec<String> {
    let names = vocab.feature_names().unwrap_or_default();
    let some: Vec<&str> = names.iter().copied().take(4).collect();
    let mut docs: Vec<String> = some.iter().map(|s| s.to_string()).collect();
    docs.push(some.join(" "));
    docs.push(String::new());
    docs.push("the quick brown fox".into());
    docs
}

/// Transforms `docs` and checks the rows form a valid CSR matrix over the vocabulary's columns.
fn check_transform(vocab: &Vocabulary, docs: &[String]) -> CsrMatrix {
    let parts = vocab.transform(docs);
    assert_eq!(parts.n_cols, vocab.n_columns(), "transform width");
    CsrMatrix::try_new(
        docs.len(),
        parts.n_cols,
        parts.indptr,
        parts.indices,
        parts.data,
    )
    .expect("transform gives a valid CSR matrix")
}

/// Equal matrices, values compared bit for bit.
fn same_rows(a: &CsrMatrix, b: &CsrMatrix) -> bool {
    let (a, b) = (a.view(), b.view());
    a.n_rows() == b.n_rows()
        && a.n_cols() == b.n_cols()
        && a.indptr() == b.indptr()
        && a.indices() == b.indices()
        && a.data()
            .iter()
            .map(|v| v.to_bits())
            .eq(b.data().iter().map(|v| v.to_bits()))
}

// ---------------------------------------------------------------- neighbour index

/// `NeighbourIndex::from_bytes` (the nearest-training-texts index) on arbitrary bytes.
pub fn neighbour_file(data: &[u8]) -> bool {
    fuzz_loader(
        data,
        NeighbourIndex::from_bytes,
        NeighbourIndex::to_bytes,
        |index, back| {
            assert!(
                back.postings().indptr() == index.postings().indptr()
                    && back.text_labels().data() == index.text_labels().data(),
                "the reloaded index differs"
            );
            check_neighbour_votes(index);
        },
    )
}

/// A search with an empty query, one with every feature and one with a few: `min(k, n_labels)`
/// columns per row, distinct labels in range then padding, the best label scoring 1, and a
/// finite nearest similarity >= 0 per row.
fn check_neighbour_votes(index: &NeighbourIndex) {
    let d = index.n_features().min(64);
    let mut rows = vec![Vec::new(), (0..d).map(|f| (f, 1.0)).collect()];
    rows.push((0..d).step_by(3).map(|f| (f, 0.5)).collect());
    let Ok(queries) = CsrMatrix::from_rows(index.n_features(), &rows) else {
        return;
    };
    let params = NeighbourParams {
        n_neighbours: 5,
        power: 2.0,
        topk: 4,
    };
    let votes = index
        .search(&queries.view(), &params)
        .expect("a loaded index searches");
    assert_eq!(votes.nearest.len(), rows.len());
    assert!(
        votes.nearest.iter().all(|v| v.is_finite() && *v >= 0.0),
        "nearest similarity not finite or negative"
    );
    let top = votes.top;
    assert_eq!(top.k, params.topk.min(index.n_labels()));
    for (labels, scores) in top
        .labels
        .chunks(top.k.max(1))
        .zip(top.scores.chunks(top.k.max(1)))
    {
        let found: Vec<i64> = labels.iter().copied().take_while(|&l| l >= 0).collect();
        assert!(
            labels[found.len()..].iter().all(|&l| l == -1),
            "padding in the middle"
        );
        assert!(
            found.iter().all(|&l| (l as usize) < index.n_labels()),
            "label out of range"
        );
        let mut distinct = found.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), found.len(), "a label twice");
        if !found.is_empty() {
            assert_eq!(scores[0], 1.0, "the best label scores 1");
        }
    }
}

// ---------------------------------------------------------------- completion index

/// `CompletionIndex::from_bytes` (the autocompletion index) on arbitrary bytes.
pub fn completion_file(data: &[u8]) -> bool {
    fuzz_loader(
        data,
        CompletionIndex::from_bytes,
        CompletionIndex::to_bytes,
        |index, back| {
            assert!(back == index, "the reloaded index differs");
            check_completions(index);
        },
    )
}

/// Top-k answers for prefixes of the stored queries (and a few others): `min(k, len)` distinct
/// ids, the first ones the best-counted queries that start with the prefix.
fn check_completions(index: &CompletionIndex) {
    let mut prefixes: Vec<String> = vec![String::new(), "a".into(), "\u{10ffff}".into()];
    for query in index.queries().take(3) {
        prefixes.push(query.chars().take(1).collect());
        prefixes.push(
            query
                .chars()
                .take(query.chars().count().div_ceil(2))
                .collect(),
        );
        prefixes.push(format!("{query}z"));
    }
    for prefix in &prefixes {
        let (lo, hi) = index.prefix_range(prefix);
        assert!(lo <= hi && hi <= index.len(), "prefix range out of bounds");
        for id in lo..hi {
            let query = index.query(id).expect("an id of the range");
            assert!(
                query.starts_with(prefix.as_str()),
                "range holds a non-completion"
            );
        }
        for k in [1, 3, 10] {
            let ids = index.top_k(prefix, k);
            assert_eq!(ids.len(), k.min(index.len()), "top-k length");
            let mut distinct = ids.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), ids.len(), "a suggestion is returned twice");
            let mut in_range: Vec<u32> = (lo as u32..hi as u32).collect();
            in_range.sort_by(|&a, &b| {
                let count = |id: u32| index.count(id as usize).unwrap_or(0.0);
                count(b).total_cmp(&count(a)).then(a.cmp(&b))
            });
            let m = k.min(hi - lo);
            assert_eq!(ids[..m], in_range[..m], "the best completions come first");
        }
    }
}

// ---------------------------------------------------------------- cluster chain

/// `ClusterChain::try_new` on parent arrays read from the bytes (one length byte per layer, one
/// byte per parent), and a model over the accepted chain: built, saved, loaded, and queried.
pub fn cluster_chain(data: &[u8]) -> bool {
    with_budget(data.len(), LOADER_BYTES_PER_BYTE, || {
        let mut input = Bytes::new(data);
        let n_layers = usize::from(input.u8() % 5);
        let assignments: Vec<Vec<u32>> = (0..n_layers)
            .map(|_| {
                let len = input.u8();
                (0..len).map(|_| u32::from(input.u8())).collect()
            })
            .collect();
        let Ok(chain) = ClusterChain::try_new(assignments.clone()) else {
            return false;
        };
        check_chain(&chain, &assignments);
        let bias_value = f32::from(input.u8()) / 16.0 - 8.0;
        check_chain_model(chain, bias_value);
        true
    })
}

/// The children lists invert the parent arrays, in increasing id order, parent after parent.
fn check_chain(chain: &ClusterChain, assignments: &[Vec<u32>]) {
    assert_eq!(chain.depth(), assignments.len());
    let mut n_parents = 1;
    for (layer, parent_of) in chain.layers().iter().zip(assignments) {
        assert_eq!(layer.parent_of(), parent_of.as_slice());
        assert_eq!(layer.n_parents(), n_parents);
        assert_eq!(layer.n_children(), parent_of.len());
        let mut offset = 0;
        for p in 0..n_parents {
            let children = layer.children(p);
            assert_eq!(layer.children_offset(p), offset);
            assert!(
                children.windows(2).all(|w| w[0] < w[1]),
                "children unsorted"
            );
            assert!(children.iter().all(|&c| parent_of[c as usize] == p as u32));
            offset += children.len();
        }
        assert_eq!(
            offset,
            parent_of.len(),
            "children lists do not cover the layer"
        );
        n_parents = parent_of.len();
    }
    assert_eq!(chain.n_labels(), n_parents);
}

/// A two-feature model over `chain`, every node with a weight on feature 0 and a bias.
fn check_chain_model(chain: ClusterChain, bias_value: f32) {
    const N_FEATURES: usize = 2;
    let columns: Vec<(Vec<i64>, Vec<i32>, Vec<f32>)> = chain
        .layers()
        .iter()
        .map(|layer| {
            let n = layer.n_children();
            let indptr = (0..=n).map(|i| 2 * i as i64).collect();
            let indices = (0..n).flat_map(|_| [0, N_FEATURES as i32]).collect();
            let data = (0..n)
                .flat_map(|c| [1.0 / (c + 1) as f32, bias_value])
                .collect();
            (indptr, indices, data)
        })
        .collect();
    let views: Vec<CsrView> = chain
        .layers()
        .iter()
        .zip(&columns)
        .map(|(layer, (p, i, d))| {
            CsrView::try_new(layer.n_children(), N_FEATURES + 1, p, i, d).expect("valid weights")
        })
        .collect();
    let model = XLinearModel::from_weight_columns(N_FEATURES, 1.0, chain, &views)
        .expect("a model over a valid chain");
    let bytes = io::to_bytes(&model, &serde_json::Value::Null);
    let (back, _) = io::from_bytes(&bytes).expect("a saved model loads");
    assert!(back == model, "the reloaded model differs");
    check_predictions(&model);
}

// ---------------------------------------------------------------- CSR from raw parts

/// `CsrView::try_new` / `CsrMatrix::try_new` on (shape, indptr, indices, data) read from the
/// bytes; a first byte of flags chooses small or arbitrary values for each part. Accepted if
/// and only if the parts satisfy the documented invariants; an accepted matrix is then used as
/// a layer's weight columns (PECOS's CSC `W`), which must export back to the same entries.
pub fn csr_parts(data: &[u8]) -> bool {
    with_budget(data.len(), LOADER_BYTES_PER_BYTE, || {
        let mut input = Bytes::new(data);
        let flags = input.u8();
        let flag = |bit: u8| flags & (1 << bit) != 0;
        let mut size = |wide: bool| {
            if wide {
                input.u64() as usize
            } else {
                usize::from(input.u8())
            }
        };
        let n_rows = size(flag(0));
        let n_cols = size(flag(1));
        let indptr_len = if flag(2) {
            usize::from(input.u8())
        } else {
            n_rows.saturating_add(1).min(300)
        };
        let mut end = 0i64;
        let indptr: Vec<i64> = (0..indptr_len)
            .map(|i| {
                if flag(3) {
                    input.u64() as i64
                } else {
                    // Mostly increasing, from 0.
                    end += if i == 0 { 0 } else { i64::from(input.u8() % 8) };
                    end
                }
            })
            .collect();
        let nnz = if flag(4) {
            usize::from(input.u8())
        } else {
            indptr.last().map_or(0, |&e| e.clamp(0, 2048) as usize)
        };
        let indices: Vec<i32> = (0..nnz)
            .map(|_| {
                if flag(5) {
                    input.u32() as i32
                } else {
                    i32::from(input.u8())
                }
            })
            .collect();
        let data_len = if flag(6) {
            usize::from(input.u8())
        } else {
            nnz
        };
        let values: Vec<f32> = (0..data_len)
            .map(|_| {
                if flag(7) {
                    f32::from_bits(input.u32())
                } else {
                    f32::from(input.u16() as i16) / 64.0
                }
            })
            .collect();
        let expected = satisfies_csr_invariants(n_rows, n_cols, &indptr, &indices, &values);
        let view = CsrView::try_new(n_rows, n_cols, &indptr, &indices, &values);
        assert_eq!(
            view.is_ok(),
            expected,
            "accepted: {:?}",
            view.as_ref().err()
        );
        let owned = CsrMatrix::try_new(
            n_rows,
            n_cols,
            indptr.clone(),
            indices.clone(),
            values.clone(),
        );
        assert_eq!(
            owned.is_ok(),
            expected,
            "owned and borrowed checks disagree"
        );
        if let (Ok(view), Ok(owned)) = (view, owned) {
            check_csr_rows(&view, &owned);
            check_as_weight_columns(&view);
        }
        expected
    })
}

/// The invariants `CsrView` documents, checked the obvious way.
fn satisfies_csr_invariants(
    n_rows: usize,
    n_cols: usize,
    indptr: &[i64],
    indices: &[i32],
    data: &[f32],
) -> bool {
    let nnz = indices.len();
    n_cols <= i32::MAX as usize
        && Some(indptr.len()) == n_rows.checked_add(1)
        && indptr.first() == Some(&0)
        && indptr.last() == Some(&(nnz as i64))
        && indptr.windows(2).all(|w| w[0] <= w[1])
        && data.len() == nnz
        && indptr.windows(2).all(|w| {
            let row = &indices[w[0] as usize..w[1] as usize];
            row.iter().all(|&c| c >= 0 && (c as usize) < n_cols)
                && row.windows(2).all(|p| p[0] < p[1])
        })
        && data.iter().all(|v| v.is_finite())
}

/// Rows, row blocks and `from_rows` describe the same matrix.
fn check_csr_rows(view: &CsrView, owned: &CsrMatrix) {
    let rows: Vec<Vec<(usize, f32)>> = (0..view.n_rows())
        .map(|i| view.row(i).iter().collect())
        .collect();
    let rebuilt = CsrMatrix::from_rows(view.n_cols(), &rows).expect("rows of a valid matrix");
    assert!(same_rows(&rebuilt, owned), "from_rows(rows) differs");
    let half = view.n_rows() / 2;
    for range in [0..half, half..view.n_rows()] {
        let block = view.row_block(range.clone());
        let block = block.view();
        assert_eq!(block.n_rows(), range.len());
        for (i, row) in range.enumerate() {
            let (a, b) = (block.row(i), view.row(row));
            assert_eq!(
                (a.indices, a.data),
                (b.indices, b.data),
                "row block row {i}"
            );
        }
    }
}

/// As the weights of a one-layer model (one row per label, the last column the bias), the
/// matrix exports back (`to_csc`) to its nonzero entries and the model answers a query.
fn check_as_weight_columns(w: &CsrView) {
    let (Some(n_features), true) = (w.n_cols().checked_sub(1), w.n_rows() > 0) else {
        return;
    };
    let chain = ClusterChain::try_new(vec![vec![0; w.n_rows()]]).expect("a one-layer chain");
    let Ok(model) = XLinearModel::from_weight_columns(n_features, 1.0, chain, &[*w]) else {
        // Refused only for what a layer cannot hold, which a valid CSR never is.
        panic!("valid weight columns refused");
    };
    let (indptr, indices, data) = model.layers()[0]
        .to_csc(n_features)
        .expect("a layer built in memory exports");
    let nonzero: Vec<Vec<(usize, f32)>> = (0..w.n_rows())
        .map(|i| w.row(i).iter().filter(|&(_, v)| v != 0.0).collect())
        .collect();
    let expected = CsrMatrix::from_rows(w.n_cols(), &nonzero).expect("rows of a valid matrix");
    let exported = CsrMatrix::try_new(w.n_rows(), w.n_cols(), indptr, indices, data)
        .expect("to_csc gives a valid matrix");
    assert!(
        same_rows(&exported, &expected),
        "to_csc(from_weight_columns(w)) differs from w"
    );
    check_predictions(&model);
}

// ---------------------------------------------------------------- text analyzers

/// Token patterns the analyzers are tried with; index 0 is the default, the last two are
/// refused (two capture groups, a syntax error).
const TOKEN_PATTERNS: [&str; 8] = [
    DEFAULT_TOKEN_PATTERN,
    r"\S+",
    r"(\w+)'?",
    r"\b",
    r"(?:x|y)*",
    r".",
    r"(a)(b)",
    r"(",
];
const MARKERS: [&str; 4] = ["", "<", "^#", "\u{e9}\u{301}"];

/// The text featurizer fitted on arbitrary bytes: a configuration read from the first bytes
/// (analyzer kind, n-gram range, token pattern or one taken from the input, markers, position
/// decay, hashing, weighting, document-frequency bounds), the rest as documents (one a line,
/// invalid UTF-8 replaced). Checks that fitting with recording (`fit_transform`) gives the rows
/// a later `transform` gives, that the rows are valid and normalised, that the n-grams are
/// sorted, unique, non-empty and within the n-gram range, and that the vocabulary round-trips.
pub fn text_analyzers(data: &[u8]) -> bool {
    with_budget(data.len(), TEXT_BYTES_PER_BYTE, || {
        let mut input = Bytes::new(data);
        let Some((config, min_df, max_df, max_features)) = text_config(&mut input) else {
            return false;
        };
        let split = usize::from(input.u8());
        let text = String::from_utf8_lossy(input.rest()).into_owned();
        let docs: Vec<&str> = text.split('\n').collect();
        let Ok(mut counter) = NgramCounter::new(config.clone(), true) else {
            return false;
        };
        // Two batches, as a corpus streamed in parts is counted.
        let split = split.min(docs.len());
        if counter.update(&docs[..split]).is_err() || counter.update(&docs[split..]).is_err() {
            return false;
        }
        let Ok((vocab, fitted)) = counter.finish(min_df, max_df, max_features) else {
            return false;
        };
        let fitted = fitted.expect("a recording counter gives the fitted rows");
        let fitted = CsrMatrix::try_new(
            docs.len(),
            fitted.n_cols,
            fitted.indptr,
            fitted.indices,
            fitted.data,
        )
        .expect("fit_transform gives a valid CSR matrix");
        let docs: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
        let rows = check_transform(&vocab, &docs);
        assert!(
            same_rows(&rows, &fitted),
            "fit_transform differs from fit then transform"
        );
        check_norms(&rows, config.norm);
        if let Some(names) = vocab.feature_names() {
            check_ngrams(&names, &config.analyzer);
        }
        let (back, _) = Vocabulary::from_bytes(&vocab.to_bytes(&serde_json::Value::Null))
            .expect("a saved vocabulary loads");
        assert!(
            same_rows(&check_transform(&back, &docs), &rows),
            "reloaded vocabulary differs"
        );
        true
    })
}

type TextSetup = (TfidfConfig, DfBound, DfBound, Option<usize>);

/// A featurizer configuration from the input (`None` if the input is empty).
fn text_config(input: &mut Bytes) -> Option<TextSetup> {
    if input.is_empty() {
        return None;
    }
    let kind = input.u8() % 3;
    let low = usize::from(input.u8() % 70);
    let ngram_range = (low, low + usize::from(input.u8() % 4));
    let pattern_choice = input.u8();
    let token_pattern = if pattern_choice >= 200 {
        let len = usize::from(input.u8() % 16);
        let bytes: Vec<u8> = (0..len).map(|_| input.u8()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        TOKEN_PATTERNS[usize::from(pattern_choice) % TOKEN_PATTERNS.len()].to_string()
    };
    let markers = input.u8();
    let position_decay = match input.u8() % 5 {
        0 => PositionDecay::Constant,
        1 => PositionDecay::Inverse,
        2 => PositionDecay::InverseSqrt,
        3 => PositionDecay::Exponential {
            rate: f64::from(input.u8()) / 128.0,
        },
        _ => PositionDecay::Exponential {
            rate: f64::from_bits(input.u64()),
        },
    };
    let analyzer = match kind {
        0 => AnalyzerConfig::Word {
            ngram_range,
            token_pattern,
        },
        1 => AnalyzerConfig::CharInWords {
            ngram_range,
            token_pattern,
            start_marker: MARKERS[usize::from(markers % 4)].into(),
            end_marker: MARKERS[usize::from(markers / 4 % 4)].into(),
        },
        _ => AnalyzerConfig::Chars {
            ngram_range,
            position_decay,
        },
    };
    let hashing = input.u8();
    let n_buckets = (hashing & 1 != 0).then(|| usize::from(input.u16()) >> (hashing >> 4));
    let weighting = input.u8();
    let bit = |b: u8| weighting & (1 << b) != 0;
    let config = TfidfConfig {
        analyzer,
        n_buckets,
        binary: bit(0),
        sublinear_tf: bit(1),
        use_idf: bit(2),
        smooth_idf: bit(3),
        norm: [Norm::L2, Norm::L1, Norm::None][usize::from(weighting >> 4) % 3],
    };
    let bounds = input.u8();
    let min_df = if bounds & 1 != 0 {
        DfBound::Count(u64::from(bounds >> 1 & 3))
    } else {
        DfBound::Fraction(0.0)
    };
    let max_df = if bounds & 8 != 0 {
        DfBound::Count(u64::from(bounds >> 4 & 7))
    } else {
        DfBound::Fraction(1.0)
    };
    let max_features = (bounds & 128 != 0).then(|| usize::from(input.u8() % 8));
    Some((config, min_df, max_df, max_features))
}

/// Rows are of unit norm (or empty) when normalised.
fn check_norms(rows: &CsrMatrix, norm: Norm) {
    let view = rows.view();
    for i in 0..view.n_rows() {
        let row = view.row(i);
        if row.nnz() == 0 {
            continue;
        }
        let total: f64 = match norm {
            Norm::L2 => row
                .data
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt(),
            Norm::L1 => row.data.iter().map(|&v| f64::from(v).abs()).sum(),
            Norm::None => continue,
        };
        assert!((total - 1.0).abs() < 1e-3, "row {i} has norm {total}");
    }
}

/// The vocabulary's n-grams are sorted, unique and non-empty; character n-grams are at most
/// `max_n` characters long (word n-grams at most `max_n` tokens, which a pattern defines).
fn check_ngrams(names: &[&str], analyzer: &AnalyzerConfig) {
    assert!(
        names.iter().all(|n| !n.is_empty()),
        "an empty or invalid UTF-8 n-gram"
    );
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "n-grams not sorted and unique"
    );
    let max_chars = match analyzer {
        // A marked token shorter than min_n is kept whole: shorter than max_n too.
        AnalyzerConfig::Chars { ngram_range, .. }
        | AnalyzerConfig::CharInWords { ngram_range, .. } => ngram_range.1,
        AnalyzerConfig::Word { .. } => return,
    };
    for name in names {
        assert!(
            name.chars().count() <= max_chars,
            "n-gram {name:?} longer than {max_chars}"
        );
    }
}

//! Criterion benches of the prefix top-k completion index on a synthetic query log: building
//! it, and one top-10 lookup (reused buffers) for prefixes of 1 to 8 characters, on 75k queries
//! (the size of the AOL QAC training set) and on 1M.
//!
//! The log: words of 2-9 letters (English letter frequencies) with Zipf popularity, queries of
//! 1-4 of them, counts drawn from a Pareto law (alpha 1.2, so a few queries carry most of the
//! traffic). Half the prefixes are heads of logged queries drawn by count (what users type most),
//! half heads of fresh queries from the same generator (mostly unseen: the back-off path).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pecos_core::qac::{CompletionIndex, Suggestions};
use pecos_core::rng::SplitMix64;
use std::collections::HashSet;
use std::hint::black_box;

const VOCABULARY: usize = 20_000;
const PREFIXES_PER_LENGTH: usize = 1_000;
const K: usize = 10;

/// Letters by frequency in English text, most frequent first, and their frequencies per mille.
const LETTERS: &str = "etaoinshrdlcumwfgypbvkjxqz";
const PER_MILLE: [u32; 26] = [
    127, 91, 82, 75, 70, 67, 63, 61, 60, 43, 40, 28, 28, 24, 24, 22, 20, 20, 19, 15, 10, 8, 2, 2,
    1, 1,
];

fn uniform(rng: &mut SplitMix64) -> f64 {
    // 53 random bits in (0, 1].
    ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// Index drawn from cumulative weights `cumulative` (increasing, last = total).
fn draw(rng: &mut SplitMix64, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let x = uniform(rng) * total;
    cumulative
        .partition_point(|&c| c < x)
        .min(cumulative.len() - 1)
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    weights
        .scan(0.0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect()
}

struct Generator {
    rng: SplitMix64,
    words: Vec<String>,
    word_weights: Vec<f64>,
}

impl Generator {
    fn new(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let letters: Vec<char> = LETTERS.chars().collect();
        let letter_weights = cumulative(PER_MILLE.iter().map(|&w| f64::from(w)));
        let words = (0..VOCABULARY)
            .map(|_| {
                let len = 2 + rng.below(8);
                (0..len)
                    .map(|_| letters[draw(&mut rng, &letter_weights)])
                    .collect()
            })
            .collect();
        let word_weights = cumulative((1..=VOCABULARY).map(|rank| 1.0 / rank as f64));
        Generator {
            rng,
            words,
            word_weights,
        }
    }

    fn query(&mut self) -> String {
        let n_words = [1, 2, 2, 2, 3, 3, 4, 1, 2, 3][self.rng.below(10)];
        let words: Vec<&str> = (0..n_words)
            .map(|_| self.words[draw(&mut self.rng, &self.word_weights)].as_str())
            .collect();
        words.join(" ")
    }
}

/// `n` distinct queries with Pareto counts, and per prefix length 1..=8 the prefixes to look up.
fn synthetic_log(n: usize, seed: u64) -> (Vec<String>, Vec<f64>, Vec<Vec<String>>) {
    let mut generator = Generator::new(seed);
    let mut seen = HashSet::with_capacity(n);
    let mut queries = Vec::with_capacity(n);
    while queries.len() < n {
        let q = generator.query();
        if seen.insert(q.clone()) {
            queries.push(q);
        }
    }
    let rng = &mut generator.rng;
    let counts: Vec<f64> = (0..n)
        .map(|_| uniform(rng).powf(-1.0 / 1.2).floor())
        .collect();
    let by_count = cumulative(counts.iter().copied());
    let prefixes = (1..=8)
        .map(|len| {
            let mut out = Vec::with_capacity(PREFIXES_PER_LENGTH);
            while out.len() < PREFIXES_PER_LENGTH {
                let q = if out.len() % 2 == 0 {
                    queries[draw(&mut generator.rng, &by_count)].clone()
                } else {
                    generator.query()
                };
                // ASCII only: `len` bytes are `len` characters.
                if q.len() >= len {
                    out.push(q[..len].to_string());
                }
            }
            out
        })
        .collect();
    (queries, counts, prefixes)
}

fn benches(c: &mut Criterion) {
    for (n, label) in [(75_000, "75k"), (1_000_000, "1M")] {
        let (queries, counts, prefixes) = synthetic_log(n, 42);
        let mut group = c.benchmark_group(format!("completion {label} queries"));
        group.sample_size(10);
        group.bench_function("build", |b| {
            b.iter(|| CompletionIndex::new(&queries, &counts).expect("valid log"))
        });
        let index = CompletionIndex::new(&queries, &counts).expect("valid log");
        group.sample_size(50);
        group.throughput(Throughput::Elements(PREFIXES_PER_LENGTH as u64));
        let mut buffer = Suggestions::new();
        for (len, batch) in (1..).zip(&prefixes) {
            group.bench_function(BenchmarkId::new("top-10, prefix chars", len), |b| {
                b.iter(|| {
                    for p in batch {
                        index.top_k_into(p, K, &mut buffer);
                        black_box(buffer.ids());
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group!(completion, benches);
criterion_main!(completion);

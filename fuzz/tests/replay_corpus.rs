//! Replays the committed corpus (`corpus/<target>/*`) through the fuzz targets without libFuzzer,
//! so that `cargo test` here checks every past finding and seed on any toolchain.

use std::fs;
use std::path::Path;

#[global_allocator]
static ALLOCATOR: pecos_fuzz::CappedAllocator = pecos_fuzz::CappedAllocator;

/// One test for all targets: the heap budget is global, so inputs run one at a time. The seeds
/// (`seed-*`, real artifacts and well-formed inputs) must be accepted, so that the checks behind
/// acceptance run; other inputs (findings, fuzzer-made) may be accepted or refused.
#[test]
fn every_corpus_input_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, target) in pecos_fuzz::targets::ALL {
        let dir = corpus.join(name);
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a readable directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {name}");
        for file in &files {
            let data = fs::read(file).expect("a readable corpus file");
            let accepted = target(&data);
            let is_seed = file
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"));
            assert!(accepted || !is_seed, "seed {} refused", file.display());
        }
        println!("{name}: {} inputs replayed", files.len());
    }
}

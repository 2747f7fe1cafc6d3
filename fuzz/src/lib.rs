//! Fuzz targets of `pecos-core`, as plain functions of the input bytes, so that the libFuzzer
//! binaries (`fuzz_targets/`, feature `libfuzzer`) and the corpus replay test
//! (`tests/replay_corpus.rs`) run the same code.
//!
//! A target returns normally for every input, accepted or refused; it panics (and so the fuzzer
//! reports a crash) when `pecos-core` panics, when an invariant that the target checks on an
//! accepted input fails, or when the heap grows past the input's budget ([`CappedAllocator`]).

mod alloc;
mod input;
pub mod targets;

pub use alloc::CappedAllocator;

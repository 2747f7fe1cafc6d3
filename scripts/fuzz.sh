#!/usr/bin/env bash
# Fuzzing of the Rust core (fuzz/, its own cargo workspace):
#  1. `cargo test` of fuzz/: every file of the committed corpus (fuzz/corpus/<target>/) through
#     its target function, without libFuzzer;
#  2. the libFuzzer binaries, built on the stable toolchain (see below), each replaying its whole
#     corpus and then fuzzing for SECONDS (default 20) per target.
# Usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]   (all seven targets by default)
# A crash or failed check stops the script with the input saved in fuzz/artifacts/<target>/;
# inputs the run found that add coverage go to fuzz/new/<target>/ (not committed; merge them
# into the corpus with `-merge=1`, see fuzz/README.md).
#
# Why no cargo-fuzz: its default needs a nightly compiler (-Zsanitizer=address); the instrumentation
# libFuzzer needs is made by stable codegen options, the same ones `cargo fuzz build -s none` passes,
# and libfuzzer-sys builds libFuzzer itself with the C++ compiler. So nothing is installed and
# there is nothing to cache. Without a sanitizer, memory errors are caught by Rust's own checks
# (the fuzzed paths have no unsafe code) and allocations by fuzz/src/alloc.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(model_file vocab_file completion_file neighbour_file cluster_chain csr_parts text_analyzers)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"

# The main workspace's fmt and clippy (scripts/test.sh) do not see fuzz/: its own are run here.
cargo fmt --manifest-path fuzz/Cargo.toml --check
# Without the libfuzzer feature: the seven binaries are one macro call each, and libFuzzer (C++) is
# then built once, below.
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets --quiet -- -D warnings
cargo test --manifest-path fuzz/Cargo.toml --quiet

# cargo-fuzz's instrumentation: 8-bit edge counters and comparison tracing for libFuzzer,
# `cfg(fuzzing)`, debug assertions (overflow checks are on in fuzz/Cargo.toml's profile); not its
# single codegen unit, which makes the build slower on CI's two cores for a few % of speed. An
# explicit --target keeps RUSTFLAGS off the build scripts, which do not link libFuzzer.
host="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Cdebug-assertions" \
    cargo build --manifest-path fuzz/Cargo.toml --release --features libfuzzer --bins --quiet \
    --target "$host" --target-dir "$CARGO_TARGET_DIR/libfuzzer"
bin="$CARGO_TARGET_DIR/libfuzzer/$host/release"

for target in "${targets[@]}"; do
    mkdir -p "fuzz/new/$target" "fuzz/artifacts/$target"
    echo "== $target: corpus replay, then ${seconds}s of fuzzing"
    # -rss_limit_mb backs up the allocation budget of fuzz/src/alloc.rs; -timeout catches hangs.
    "$bin/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target/" \
        "fuzz/new/$target" "fuzz/corpus/$target" 2>"fuzz/artifacts/$target.log" ||
        { tail -n 60 "fuzz/artifacts/$target.log"; exit 1; }
    grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done [0-9]+ runs)" \
        "fuzz/artifacts/$target.log" || true
done
echo "fuzz: ${#targets[@]} targets passed"

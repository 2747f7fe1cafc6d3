#!/usr/bin/env bash
# Sets up .venv and runs every test: Rust (fmt, clippy, docs, cargo test) then Python (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The module docs say what each stage owns and uses; broken links in them fail here.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo test -p pecos-core --quiet
# Types: the stubs of the compiled module against the module itself, then the package.
python -m mypy.stubtest pecos_rs._pecos_rs
python -m mypy
# pyproject's addopts deselect the tests marked slow (`-m 'not slow'`) so that a plain `pytest` stays
# quick for development; `-m ''` clears that filter here, so this script (and CI, .ci/run) runs every
# test. `--durations=20` lists the 20 slowest tests, so CI logs show where the test time goes.
# Arguments are passed on (a later `-m` or `--durations` wins).
# PECOS_RS_REQUIRE_DASK=1: tests/test_distributed.py fails rather than skips without dask.
PECOS_RS_REQUIRE_DASK=1 python -m pytest -q -m '' --durations=20 "$@"

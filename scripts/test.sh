#!/usr/bin/env bash
# Sets up .venv and runs every test: Rust (fmt, clippy, cargo test) then Python (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test -p pecos-core --quiet
# `--durations=20` lists the 20 slowest tests, so CI logs show where the test time goes.
python -m pytest -q --durations=20 "$@"

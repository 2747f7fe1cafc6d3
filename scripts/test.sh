#!/usr/bin/env bash
# Sets up .venv and runs every test: Rust (fmt, clippy, cargo test) then Python (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test -p pecos-core --quiet
python -m pytest -q "$@"

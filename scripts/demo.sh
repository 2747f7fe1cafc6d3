#!/usr/bin/env bash
# Sets up .venv and runs the demo: XR-Linear on a real data set from ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python examples/demo.py "$@"

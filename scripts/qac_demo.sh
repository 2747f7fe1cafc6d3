#!/usr/bin/env bash
# Sets up .venv and starts the autocompletion demo page: fits a SessionAutocompleter on the train
# split of ../shared/data/aol-qac, then prints the page's address (arguments are passed on: --port N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pecos_rs.qac.demo --train-aol ../shared/data/aol-qac "$@"

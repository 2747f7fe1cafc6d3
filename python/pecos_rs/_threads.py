"""The ``n_jobs`` convention shared by the estimator and the indexing functions."""

from __future__ import annotations

import numbers
import os

from .exceptions import InvalidParameterError


def resolve_n_jobs(n_jobs) -> int:
    """Number of threads for an ``n_jobs`` value, following scikit-learn's convention.

    ``None`` means 1 thread, a positive integer that many threads, ``-1`` all cores
    (``os.cpu_count()``) and any other negative ``n_jobs`` ``cpu_count + 1 + n_jobs`` threads, at
    least 1.

    Raises
    ------
    InvalidParameterError
        (a ValueError) If ``n_jobs`` is not None or a nonzero integer.
    """
    if n_jobs is None:
        return 1
    if not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool) or n_jobs == 0:
        raise InvalidParameterError(f"n_jobs must be None or a nonzero integer, got {n_jobs!r}")
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))
    return int(n_jobs)

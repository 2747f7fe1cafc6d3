"""Shared fixtures: hypothesis profiles, seeded synthetic data with a planted structure, real data slices."""

from __future__ import annotations

import os
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, settings

from helpers import load_xmc, make_planted

# When a hypothesis test fails, its pytest plugin imports hypothesis.extra._patching (libcst), whose
# import emits a DeprecationWarning; under filterwarnings=error that turns the report of the failure
# into a pytest INTERNALERROR that aborts the whole run. Importing it here, warnings silenced, avoids it.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import hypothesis.extra._patching  # noqa: F401
    except Exception:  # pragma: no cover - optional dependency (libcst) or a renamed private module
        pass

# ------------------------------------------------------------------------------------ hypothesis

settings.register_profile(
    "fast",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "slow",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture(scope="session")
def xmc_loader():
    """The :func:`load_xmc` helper, for tests that need a slice of real data."""
    return load_xmc


def _read_only(M: sp.csr_matrix) -> sp.csr_matrix:
    """Marks the arrays of `M` read-only, so that a library writing into its inputs fails loudly."""
    for a in (M.data, M.indices, M.indptr):
        a.flags.writeable = False
    return M


@pytest.fixture(scope="session")
def planted():
    """300 training and 150 test rows of :func:`make_planted` (60 features, 40 labels in 4 groups).

    Shared by every test: do not modify. X, X_test and Y_test are read-only."""
    X, Y = make_planted(n_rows=450, seed=0)
    return SimpleNamespace(
        X=_read_only(X[:300]),
        Y=Y[:300],  # writable: fit used to edit y in place (see test_bad_input.py)
        X_test=_read_only(X[300:]),
        Y_test=_read_only(Y[300:]),
        n_features=60,
        n_labels=40,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(12345)

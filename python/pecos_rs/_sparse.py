"""Conversions between scipy sparse matrices and the array tuples the Rust core borrows."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .exceptions import InvalidInputError


def to_csr32(X, *, name: str = "X") -> sp.csr_matrix:
    """Return `X` (sparse, or a dense 2-D numeric array-like) as a canonical float32 CSR matrix
    (sorted, duplicate-free indices, finite values).

    Copies only what needs converting. Raises InvalidInputError for non-finite values, which can
    also appear when float64 values overflow float32.
    """
    # Values beyond float32's range become inf here and are reported below, not warned about.
    with np.errstate(over="ignore"):
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=np.float32)
        else:
            try:
                dense = np.asarray(X, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(
                    f"{name} must be a numeric matrix, got {type(X).__name__}"
                ) from exc
            if dense.ndim != 2:
                raise InvalidInputError(
                    f"{name} must be 2-D, got an array with {dense.ndim} dimension(s)"
                )
            X = sp.csr_matrix(dense)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    if not np.isfinite(X.data).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values (after conversion to float32)")
    return X


def csr_args(X: sp.csr_matrix) -> tuple:
    """The `(indptr, indices, data, n_rows, n_cols)` tuple expected by the Rust core (no copy when
    the dtypes already match)."""
    return (
        np.ascontiguousarray(X.indptr, dtype=np.int64),
        np.ascontiguousarray(X.indices, dtype=np.int32),
        np.ascontiguousarray(X.data, dtype=np.float32),
        X.shape[0],
        X.shape[1],
    )

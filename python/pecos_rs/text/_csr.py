"""CSR matrices around the row arrays that the Rust text kernels return."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def csr_from_arrays(indptr, indices, data, shape) -> sp.csr_matrix:
    """A CSR matrix around arrays returned by the Rust core (sorted, canonical), without copying
    the entries (only the row pointers are narrowed to int32 when possible)."""
    if len(indices) < 2**31:
        indptr = indptr.astype(np.int32)
    else:
        indices = indices.astype(np.int64)
    X = sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    X.has_sorted_indices = True
    X.has_canonical_format = True
    return X


def stack_rows(parts, n_columns) -> sp.csr_matrix:
    """One CSR matrix from the ``(indptr, indices, data, shape)`` tuples of consecutive batches."""
    if len(parts) == 1:
        return csr_from_arrays(*parts[0])
    if not parts:
        return sp.csr_matrix((0, n_columns), dtype=np.float32)
    counts = np.concatenate([np.diff(p[0]) for p in parts])
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate([p[1] for p in parts])
    data = np.concatenate([p[2] for p in parts])
    return csr_from_arrays(indptr, indices, data, (len(counts), n_columns))

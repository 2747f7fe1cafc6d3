"""Exceptions raised by pecos_rs.

Every error of the Rust core arrives as one of these classes. The input and format errors also
subclass :class:`ValueError`, so code written for scikit-learn's conventions catches them.
"""


class PecosError(Exception):
    """Base class of every pecos_rs error."""


class InvalidInputError(PecosError, ValueError):
    """Malformed data: wrong shapes, unsorted or out-of-range indices, NaN or infinite values."""


class InvalidParameterError(PecosError, ValueError):
    """A hyper-parameter outside its domain."""


class ModelFormatError(PecosError, ValueError):
    """A model file or directory that is corrupt, truncated, foreign or of an unsupported version."""


__all__ = ["PecosError", "InvalidInputError", "InvalidParameterError", "ModelFormatError"]

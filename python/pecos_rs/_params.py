"""Parameter checks shared by the estimators, so that every parameter outside its domain is reported
the same way: ``InvalidParameterError("<name> must be <what it must be>, got <its value>")``."""

from __future__ import annotations

import numbers

from .exceptions import InvalidParameterError


def is_int(value) -> bool:
    """Whether `value` is an integer (numpy's included), a bool excluded (Python counts it as one)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_param(estimator, name: str, ok: bool, expected: str) -> None:
    """Raise InvalidParameterError for the parameter `name` of `estimator` unless `ok`; `expected`
    says what the parameter must be ("an int >= 1")."""
    if not ok:
        raise InvalidParameterError(f"{name} must be {expected}, got {getattr(estimator, name)!r}")

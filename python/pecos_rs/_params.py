"""Parameters on their way to the Rust core, which validates them (``pecos_core::params``), and the
checks of the few parameters that Python handles itself, in the core's wording:
``InvalidParameterError("<name> must be <what it must be>, got <its value>")``."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Set

import numpy as np

from .exceptions import InvalidInputError, InvalidParameterError


def plain(value):
    """`value` (parameters: a dict, a list or tuple, a scalar) with numpy scalars turned into the
    Python ones they stand for (``np.int64(3)`` -> ``3``, ``np.bool_(True)`` -> ``True``): the only
    coercion done before the core checks parameters, and what makes them JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def is_int(value) -> bool:
    """Whether `value` is an integer (numpy's included), a bool excluded (Python counts it as one)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """Whether `value` is a Python int or float (NaN included: range checks refuse it), a bool
    excluded."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_param(estimator, name: str, ok: bool, expected: str) -> None:
    """Raise InvalidParameterError for the parameter `name` of `estimator` unless `ok`; `expected`
    says what the parameter must be ("an int >= 1")."""
    if not ok:
        raise InvalidParameterError(f"{name} must be {expected}, got {getattr(estimator, name)!r}")


def str_list(values, name: str) -> list:
    """`values` (a list, tuple, 1-D array, ... of str; not a str itself, nor an unordered set) as a
    list, or InvalidInputError naming `name` and the first bad element."""
    if isinstance(values, (str, bytes, Set)) or not isinstance(values, Iterable):
        raise InvalidInputError(f"{name} must be a sequence of str, got {values!r}")
    values = list(values)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidInputError(f"{name}[{i}] must be a str, got {value!r}")
    return values

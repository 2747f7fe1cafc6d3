"""The metadata of saved artifacts: what a saved directory or file holds, in which format version.

The metadata is ``{"format": ..., "format_version": ..., "pecos_rs_version": ..., <fields of the
artifact>}``. A saved directory keeps it in a JSON file (``estimator.json`` of
:class:`~pecos_rs.XRLinearClassifier`, ``featurizer.json`` of
:class:`~pecos_rs.text.TextFeaturizer`), read back with :func:`read_metadata` so that ``load``
refuses a foreign directory or an unsupported version with a clear error instead of misreading it;
the file of a text featurizer keeps it in its header.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import _pecos_rs
from .exceptions import ModelFormatError


def metadata(format_name: str, format_version: int, **fields) -> dict:
    """The metadata of an artifact: its format, format version, the writing pecos_rs version and
    `fields`, in that order (the order of the keys on disk)."""
    return {
        "format": format_name,
        "format_version": format_version,
        "pecos_rs_version": _pecos_rs.__version__,
        **fields,
    }


def write_metadata(file: Path, format_name: str, format_version: int, **fields) -> None:
    """Write the :func:`metadata` of an artifact to `file` as indented JSON."""
    file.write_text(json.dumps(metadata(format_name, format_version, **fields), indent=2))


def read_metadata(file: Path, format_name: str, format_version: int) -> dict:
    """The metadata in `file`, written by :func:`write_metadata` with these `format_name` and
    `format_version`.

    Raises
    ------
    FileNotFoundError
        If `file` does not exist.
    ModelFormatError
        If `file` is not a JSON object (:func:`corrupt`), holds another format, or another version.
    """
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
        kind, version = meta.get("format"), meta.get("format_version")
    except (ValueError, AttributeError) as e:
        # ValueError covers malformed JSON and non-UTF-8 bytes; AttributeError JSON that is not an
        # object.
        raise corrupt(file, e) from e
    if kind != format_name:
        # "pecos_rs.text.TextFeaturizer" -> "... does not hold a pecos_rs TextFeaturizer"
        what = format_name.rpartition(".")[2]
        raise ModelFormatError(f"{file.parent} does not hold a pecos_rs {what}")
    if version != format_version:
        # "estimator.json" -> "estimator format version 2 is not supported ..."
        raise ModelFormatError(
            f"{file.stem} format version {version!r} is not supported "
            f"(this build reads {format_version})"
        )
    return meta


def corrupt(file: Path, reason: Exception) -> ModelFormatError:
    """The error for a metadata `file` whose contents cannot be used, naming the file and why."""
    return ModelFormatError(f"corrupt {file.name} in {file.parent}: {reason}")

"""The metadata of saved artifacts: what a saved directory or file holds, in which format version.

The metadata is ``{"format": ..., "format_version": ..., "pecos_rs_version": ..., <fields of the
artifact>}``. A saved directory keeps it in a JSON file (``estimator.json`` of
:class:`~pecos_rs.XRLinearClassifier`, ``featurizer.json`` of
:class:`~pecos_rs.text.TextFeaturizer`), read back with :func:`read_metadata` so that ``load``
refuses a foreign directory or an unsupported version with a clear error instead of misreading it;
the file of a text featurizer keeps it in its header, as does that of a completion index (checked on
load by :func:`check_metadata`).
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


def read_metadata(file: Path, format_name: str, format_version) -> dict:
    """The metadata in `file`, written by :func:`write_metadata` with this `format_name` and
    `format_version` (an int, or a tuple of the versions this build reads).

    Raises
    ------
    FileNotFoundError
        If `file` does not exist.
    ModelFormatError
        If `file` is not a JSON object (:func:`corrupt`), holds another format, or another version.
    """
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError(f"a JSON {type(meta).__name__}, not an object")
    except ValueError as e:
        # ValueError covers malformed JSON and non-UTF-8 bytes.
        raise corrupt(file, e) from e
    # "estimator.json" -> "estimator format version 2 is not supported ..."
    return check_metadata(meta, format_name, format_version, holder=file.parent, label=file.stem)


def check_metadata(meta, format_name: str, format_version, *, holder, label: str) -> dict:
    """`meta` (parsed JSON), checked to be the :func:`metadata` of `format_name` in version
    `format_version`. Errors name `holder` (the directory or file holding it) and `label` (what
    to call the format in the version message).

    Raises
    ------
    ModelFormatError
        If `meta` is not an object, holds another format, or another version.
    """
    if not isinstance(meta, dict) or meta.get("format") != format_name:
        # "pecos_rs.text.TextFeaturizer" -> "... does not hold a pecos_rs TextFeaturizer"
        what = format_name.rpartition(".")[2]
        raise ModelFormatError(f"{holder} does not hold a pecos_rs {what}")
    version = meta.get("format_version")
    readable = format_version if isinstance(format_version, tuple) else (format_version,)
    if isinstance(version, bool) or version not in readable:
        versions = " and ".join(str(v) for v in readable)
        raise ModelFormatError(
            f"{label} format version {version!r} is not supported (this build reads {versions})"
        )
    return meta


def corrupt(file: Path, reason: Exception) -> ModelFormatError:
    """The error for a metadata `file` whose contents cannot be used, naming the file and why."""
    return ModelFormatError(f"corrupt {file.name} in {file.parent}: {reason}")

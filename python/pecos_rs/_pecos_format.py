"""PECOS's saved-model layout (``pecos.xmc.xlinear.model.XLinearModel.save``), read and written.

A PECOS XR-Linear model directory holds::

    param.json                      {"__meta__": {"class_fullname": "...###XLinearModel"}}
    ranker/param.json               {"model": "HierarchicalMLModel", "depth": D, "nr_features": d, ...}
    ranker/{t}.model/param.json     {"model": "MLModel", "bias": b, "pred_kwargs": {"only_topk": k,
                                     "post_processor": p}, "nr_labels": K_{t+1}, "nr_codes": K_t, ...}
    ranker/{t}.model/W.npz          CSC float32 (d + 1) x K_{t+1}; row d holds the bias weights (no
                                    such row when b <= 0: PECOS then adds no bias feature)
    ranker/{t}.model/C.npz          CSC float32 K_{t+1} x K_t: C[c, p] = 1 if p is the parent of c

Layer t's ``only_topk`` is the beam at that layer (t < D - 1) or the number of labels returned
(t = D - 1); 0 means no limit. pecos_rs has one beam size, one post-processor and one bias for every
layer: a directory whose layers need different ones is refused (:class:`ModelFormatError`) rather
than searched differently from PECOS. Every file is checked before use; the arrays of a ``.npz``
are checked to be as long as their headers say before numpy allocates them.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import _pecos_rs
from ._artifact import corrupt
from ._sparse import csr_args
from .exceptions import InvalidInputError, ModelFormatError

_XLINEAR_CLASS = "pecos.xmc.xlinear.model###XLinearModel"
_HIERARCHICAL_CLASS = "pecos.xmc.base###HierarchicalMLModel"
_LAYER_CLASS = "pecos.xmc.base###MLModel"
_PRED_PARAMS_CLASS = "pecos.xmc.base###MLModel.PredParams"
# PECOS's MLModel.PredParams defaults, used when a layer's pred_kwargs omit a field (as PECOS does).
_DEFAULT_ONLY_TOPK = 20
_DEFAULT_POST_PROCESSOR = "l3-hinge"
# Node and feature ids cross to the core as int32 (PECOS's own limit is uint32).
_MAX_DIM = 2**31 - 1


@dataclass
class PecosModel:
    """What a PECOS directory holds, in pecos_rs's terms."""

    model: _pecos_rs.XLinearModel
    beam_size: int | None  # None for a one-layer model, which has no beam
    topk: int
    post_processor: str
    bias: float


def read_pecos_model(path: Path) -> PecosModel:
    """The model saved by libpecos's ``XLinearModel.save`` in directory `path`.

    Raises
    ------
    FileNotFoundError
        If `path` or one of the files it needs does not exist.
    ModelFormatError
        If a file is corrupt, of the wrong type, shape or dtype, holds NaN or infinite weights, the
        files disagree, or the model uses a setting pecos_rs cannot reproduce.
    """
    meta = _read_json(path / "param.json").get("__meta__")
    class_name = meta.get("class_fullname") if isinstance(meta, dict) else None
    if not (isinstance(class_name, str) and class_name.endswith("XLinearModel")):
        raise ModelFormatError(f"{path} does not hold a PECOS XLinearModel (its param.json names {class_name!r})")
    ranker = path / "ranker"
    ranker_file = ranker / "param.json"
    ranker_param = _read_json(ranker_file)
    _check_kind(ranker_param, "HierarchicalMLModel", ranker)
    depth = _count(ranker_param, "depth", ranker_file, minimum=1)
    n_features = _count(ranker_param, "nr_features", ranker_file, minimum=0)

    layers: list[_Layer] = []
    for t in range(depth):
        layers.append(_read_layer(ranker / f"{t}.model", n_features, len(layers[-1].parents) if layers else 1))
    n_labels = len(layers[-1].parents)
    for key, expected in (("nr_labels", n_labels), ("nr_codes", layers[-1].n_parents)):
        if key in ranker_param and ranker_param[key] != expected:
            raise ModelFormatError(f"{ranker_file}: {key} is {ranker_param[key]!r} but the layers give {expected}")

    biases = [layer.bias for layer in layers]
    if len(set(biases)) != 1:
        raise ModelFormatError(
            f"the layers of {path} use different biases {biases}; pecos_rs applies one bias to every layer"
        )
    post_processors = [layer.post_processor for layer in layers]
    if len(set(map(repr, post_processors))) != 1 or post_processors[0] not in _pecos_rs.POST_PROCESSORS:
        raise ModelFormatError(
            f"the layers of {path} use the post-processors {post_processors}; pecos_rs supports one of "
            f"{_pecos_rs.POST_PROCESSORS} for every layer"
        )
    layer_sizes = [len(layer.parents) for layer in layers]
    try:
        model = _pecos_rs.XLinearModel.from_weight_columns(
            [layer.parents for layer in layers], [layer.weights for layer in layers],
            n_features=n_features, bias=biases[0],
        )
    except InvalidInputError as e:  # what the checks above leave to the core (e.g. an empty layer)
        raise ModelFormatError(f"{path} does not hold a valid model: {e}") from e
    only_topks = [layer.only_topk for layer in layers]
    return PecosModel(
        model=model,
        beam_size=_common_beam(only_topks[:-1], layer_sizes[:-1], path),
        topk=only_topks[-1] or n_labels,
        post_processor=post_processors[0],
        bias=biases[0],
    )


@dataclass
class _Layer:
    parents: np.ndarray  # uint32: the parent of every node of the layer
    n_parents: int
    weights: tuple  # the core's CSR arguments of W^T, bias column included
    bias: float  # 0 for PECOS's "no bias feature" (bias <= 0)
    only_topk: int  # 0: no limit
    post_processor: object  # as read; checked against the other layers' by the caller


def _read_layer(layer: Path, n_features: int, n_parents: int) -> _Layer:
    """Layer directory `layer` (``ranker/{t}.model``) of a model of `n_features` features, below
    a layer of `n_parents` nodes."""
    param_file = layer / "param.json"
    param = _read_json(param_file)
    _check_kind(param, "MLModel", layer)
    bias = _field(param, "bias", param_file)
    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
        raise ModelFormatError(f"{param_file}: bias must be a finite number, got {bias!r}")
    pred_kwargs = param.get("pred_kwargs", {})
    if not isinstance(pred_kwargs, dict):
        raise ModelFormatError(f"{param_file}: pred_kwargs must be an object, got {pred_kwargs!r}")
    only_topk = pred_kwargs.get("only_topk", _DEFAULT_ONLY_TOPK)
    if only_topk is None:  # PECOS searches with 0 (no limit) then
        only_topk = 0
    if isinstance(only_topk, bool) or not isinstance(only_topk, int) or only_topk < 0:
        raise ModelFormatError(f"{param_file}: only_topk must be an integer >= 0, got {only_topk!r}")

    C = _read_sparse(layer / "C.npz")
    n_children = C.shape[0]
    if C.shape[1] != n_parents:
        raise ModelFormatError(
            f"{layer / 'C.npz'} has {C.shape[1]} columns (parents) but the layer above has {n_parents} nodes"
        )
    # The entry count first: the CSR copy is then no larger than the file (whatever C's shape says).
    one_parent_each = C.nnz == n_children
    if one_parent_each:
        C = C.tocsr()
        one_parent_each = bool((np.diff(C.indptr) == 1).all() and (C.data == 1).all())
    if not one_parent_each:
        raise ModelFormatError(
            f"{layer / 'C.npz'} must give each of its {n_children} nodes exactly one parent "
            "(one entry equal to 1 per row)"
        )
    W = _read_sparse(layer / "W.npz")
    # PECOS adds the bias feature (and its row of W) only for a positive bias.
    n_rows = n_features + 1 if bias > 0 else n_features
    if W.shape != (n_rows, n_children):
        raise ModelFormatError(
            f"{layer / 'W.npz'} has shape {W.shape}, expected ({n_rows}, {n_children}): {n_features} "
            f"features{' and the bias' if bias > 0 else ''} by the {n_children} nodes of C.npz"
        )
    for key, expected in (("nr_features", n_features), ("nr_labels", n_children), ("nr_codes", n_parents)):
        if key in param and param[key] != expected:
            raise ModelFormatError(f"{param_file}: {key} is {param[key]!r} but the matrices give {expected}")
    # W's CSC arrays are the CSR arrays of W^T (the core's layout); without a bias row, the bias
    # column of W^T is empty.
    weights = csr_args(sp.csr_matrix((W.data, W.indices, W.indptr), shape=(n_children, n_features + 1)))
    return _Layer(
        parents=C.indices.astype(np.uint32),
        n_parents=n_parents,
        weights=weights,
        bias=float(bias) if bias > 0 else 0.0,
        only_topk=only_topk,
        post_processor=pred_kwargs.get("post_processor", _DEFAULT_POST_PROCESSOR),
    )


def _common_beam(only_topks: list[int], layer_sizes: list[int], path: Path) -> int | None:
    """The one beam size that keeps, at every layer above the last, the nodes PECOS keeps there
    (``only_topk`` of them, all for 0): at a layer of K nodes, any beam >= K keeps all of them.
    None for a one-layer model."""
    if not only_topks:
        return None
    kept = [min(k, size) if k else size for k, size in zip(only_topks, layer_sizes)]
    limited = {k for k, size in zip(only_topks, layer_sizes) if 0 < k < size}
    # A layer that keeps fewer than all its nodes fixes the beam; otherwise the largest only_topk
    # (all of them for the usual single value) keeps every layer whole.
    beam = min(limited) if limited else max(k or size for k, size in zip(only_topks, layer_sizes))
    if len(limited) > 1 or any(min(beam, size) != n for n, size in zip(kept, layer_sizes)):
        raise ModelFormatError(
            f"the layers of {path} keep {only_topks} nodes (only_topk) in layers of {layer_sizes} "
            "nodes; pecos_rs uses one beam size for every layer above the last"
        )
    return beam


def write_pecos_model(path: Path, model: _pecos_rs.XLinearModel, *, beam_size: int, topk: int,
                      post_processor: str) -> None:
    """Write `model` to directory `path` (created if needed) in the layout of libpecos's
    ``XLinearModel.save``, searched by PECOS with `beam_size`, `topk` and `post_processor`."""
    depth, n_features, bias = model.depth, model.n_features, float(model.bias)
    ranker = path / "ranker"
    ranker.mkdir(parents=True, exist_ok=True)
    _write_json(path / "param.json", _XLINEAR_CLASS, {})
    layer_sizes = [len(model.layer_parents(t)) for t in range(depth)]
    _write_json(ranker / "param.json", _HIERARCHICAL_CLASS, {
        "model": "HierarchicalMLModel",
        "depth": depth,
        "nr_features": n_features,
        "nr_codes": layer_sizes[-2] if depth > 1 else 1,
        "nr_labels": layer_sizes[-1],
    })
    n_parents = 1
    for t in range(depth):
        layer = ranker / f"{t}.model"
        layer.mkdir(exist_ok=True)
        indptr, indices, data, shape = model.layer_weights(t)
        W = sp.csc_matrix((data, indices, indptr), shape=shape)
        if bias <= 0:
            # PECOS has no bias feature then (and the bias weights multiply 0 here).
            W = W[:n_features]
        parents = model.layer_parents(t)
        n_children = len(parents)
        C = sp.csc_matrix(
            (np.ones(n_children, dtype=np.float32), (np.arange(n_children), parents)),
            shape=(n_children, n_parents),
        )
        _write_json(layer / "param.json", _LAYER_CLASS, {
            "model": "MLModel",
            "nr_labels": n_children,
            "nr_features": n_features,
            "nr_codes": n_parents,
            "bias": bias,
            "pred_kwargs": {
                "__meta__": {"class_fullname": _PRED_PARAMS_CLASS},
                "only_topk": beam_size if t < depth - 1 else topk,
                "post_processor": post_processor,
            },
        })
        # As PECOS writes them: uncompressed, int32 indices.
        sp.save_npz(layer / "W.npz", W, compressed=False)
        sp.save_npz(layer / "C.npz", C, compressed=False)
        n_parents = n_children


def _write_json(file: Path, class_name: str, fields: dict) -> None:
    file.write_text(json.dumps({"__meta__": {"class_fullname": class_name}, **fields}, indent=1))


def _read_json(file: Path) -> dict:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (ValueError, OSError) as e:  # malformed JSON, non-UTF-8 bytes, a directory
        raise corrupt(file, e) from e
    if not isinstance(value, dict):
        raise corrupt(file, ValueError(f"a JSON {type(value).__name__}, not an object"))
    return value


def _check_kind(param: dict, kind: str, folder: Path) -> None:
    """`param` (of `folder`) is that of a PECOS `kind` saved as npz matrices."""
    if param.get("model") != kind:
        raise ModelFormatError(f"{folder / 'param.json'}: model is {param.get('model')!r}, not {kind!r}")
    if param.get("is_mmap"):
        raise ModelFormatError(
            f"{folder} holds a memory-mapped PECOS model (compile_mmap_model), which pecos_rs "
            "does not read; load the directory written by XLinearModel.save"
        )


def _field(param: dict, key: str, file: Path):
    if key not in param:
        raise corrupt(file, KeyError(f"no {key!r} field"))
    return param[key]


def _count(param: dict, key: str, file: Path, *, minimum: int) -> int:
    value = _field(param, key, file)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= _MAX_DIM:
        raise corrupt(file, ValueError(f"{key} must be an integer in [{minimum}, {_MAX_DIM}], got {value!r}"))
    return value


def _read_sparse(file: Path) -> sp.csc_matrix:
    """The float32 CSC matrix saved by ``scipy.sparse.save_npz`` in `file` (as PECOS writes it),
    checked: index bounds, no duplicates, finite values; its indices sorted (as libpecos does)."""
    arrays = _read_npz(file)
    try:
        fmt = arrays["format"].item() if "format" in arrays and arrays["format"].size == 1 else None
        fmt = fmt.decode("ascii", "replace") if isinstance(fmt, bytes) else fmt
        if fmt is None:
            raise ValueError("no format array (not a scipy sparse matrix)")
        if fmt != "csc":
            raise ValueError(f"a {fmt!r} matrix, not CSC")
        missing = {"shape", "data", "indices", "indptr"} - arrays.keys()
        if missing:
            raise ValueError(f"no {', '.join(sorted(missing))} array (not a scipy sparse matrix)")
        shape = arrays["shape"]
        if shape.shape != (2,) or shape.dtype.kind not in "iu" or shape.min() < 0 or shape.max() > _MAX_DIM:
            raise ValueError(f"shape must be 2 integers in [0, {_MAX_DIM}], got {shape.tolist()}")
        data, indices, indptr = arrays["data"], arrays["indices"], arrays["indptr"]
        if data.dtype != np.float32:
            raise ValueError(f"{data.dtype} values, not float32 (what libpecos writes and reads)")
        for name, a in (("indices", indices), ("indptr", indptr), ("data", data)):
            if a.ndim != 1 or (name != "data" and a.dtype.kind not in "iu"):
                raise ValueError(f"{name} must be a 1-D integer array, got {a.dtype} of shape {a.shape}")
        M = sp.csc_matrix((data, indices, indptr), shape=(int(shape[0]), int(shape[1])))
        # Bounds and monotonic pointers, before anything reads through them.
        M.check_format(full_check=True)
    except (ValueError, TypeError, IndexError, OverflowError) as e:
        raise ModelFormatError(f"corrupt {file.name} in {file.parent}: {e}") from e
    M.sort_indices()
    if not np.isfinite(M.data).all():
        raise ModelFormatError(f"{file} holds NaN or infinite values")
    deduplicated = M.copy()
    deduplicated.sum_duplicates()
    if deduplicated.nnz != M.nnz:
        raise ModelFormatError(f"{file} holds duplicate entries")
    return M


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` `file`, without pickle; each member is checked to hold as many
    bytes as its header declares before numpy allocates the array (a small file declaring a huge
    array is refused, not allocated)."""
    try:
        with zipfile.ZipFile(file) as archive:
            arrays = {}
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                    else:
                        raise ValueError(f"{info.filename}: unsupported .npy version {version}")
                    if dtype.hasobject:
                        raise ValueError(f"{info.filename} holds Python objects (pickled), not numbers")
                    declared = math.prod(shape) * dtype.itemsize
                    if declared > info.file_size - member.tell():
                        raise ValueError(f"{info.filename}: its header declares {shape} {dtype} values, "
                                         f"more than its {info.file_size} bytes hold")
                with archive.open(info) as member:
                    arrays[info.filename.removesuffix(".npy")] = np.lib.format.read_array(member, allow_pickle=False)
    except FileNotFoundError:
        raise
    # zlib.error: corrupt deflated data; NotImplementedError and RuntimeError: a compression method
    # or an encryption zipfile does not handle.
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as e:
        raise ModelFormatError(f"corrupt {file.name} in {file.parent}: {e}") from e
    return arrays

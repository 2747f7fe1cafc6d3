"""TextFeaturizer: n-gram featurizers side by side, each block weighted, every row renormalised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from .. import _pecos_rs
from .._artifact import corrupt, read_metadata, write_metadata
from .._params import plain
from .._sparse import csr_args
from ..exceptions import InvalidParameterError
from ._csr import csr_from_arrays
from ._documents import BATCH_DOCS, DocumentsInputMixin, as_list
from ._featurizers import CharTfidf, WordTfidf
from ._ngram_tfidf import FORMAT_PREFIX, FORMAT_VERSION, NgramTfidf


def _prepared_once(blocks, docs: list) -> list:
    """Per block, `docs` checked and preprocessed as the block does it: once per distinct
    preprocessing (every preset's blocks share one), in batches of ``BATCH_DOCS``."""
    done = {}
    for _, f in blocks:
        key = f._preprocessing()
        if key not in done:
            done[key] = [doc for start in range(0, len(docs), BATCH_DOCS)
                         for doc in f._prepare(docs[start:start + BATCH_DOCS], start)]
    return [done[f._preprocessing()] for _, f in blocks]


# The metadata file of a saved TextFeaturizer directory (next to one file per block).
_FEATURIZER_FILE = "featurizer.json"
_FORMAT_NAME = f"{FORMAT_PREFIX}TextFeaturizer"


def default_blocks():
    r"""The default blocks of :class:`TextFeaturizer`, the ``"paper"`` preset: the product-search
    setting of PECOS (Chang et al., KDD 2021).

    ``[("word", WordTfidf(ngram_range=(1, 3), sublinear_tf=True)),
    ("char", CharTfidf(ngram_range=(3, 3), end_marker="#", token_pattern=r"\S+",
    sublinear_tf=True))]``: the char block's words are whitespace-separated (punctuation kept,
    as in scikit-learn's ``char_wb``) and term frequencies are dampened. See :data:`PRESETS`
    for the blocks measured better with the text models.
    """
    return preset_blocks("paper")


def preset_blocks(name: str, *, n_jobs=None) -> list:
    """Fresh (unfitted) blocks of the preset `name` (see :data:`PRESETS`), each block counting and
    transforming on `n_jobs` threads (the features do not depend on it)."""
    try:
        blocks = PRESETS[name]()
    except KeyError:
        raise InvalidParameterError(f"blocks must be one of {sorted(PRESETS)} or a list of (name, featurizer) "
                                    f"pairs, got {name!r}") from None
    return [(block_name, f.set_params(n_jobs=n_jobs)) for block_name, f in blocks]


#: Named block settings (``TextFeaturizer(blocks="retrieval")``), measured with XR-Linear in
#: BENCHMARKS.md ("XR-Linear accuracy on these features", "Product retrieval"):
#:
#: * ``"paper"``: word 1-3-grams + character 3-grams with the end marker ``"#"`` (PECOS's product
#:   search), the default of :class:`TextFeaturizer`;
#: * ``"sklearn"``: word 1-2-grams of tokens of 2+ characters + character 3-grams of space-padded
#:   words (scikit-learn's ``word`` + ``char_wb`` recipe), 0.1-1.2 points above ``"paper"`` in
#:   P@k and R@10 on debian-depends, about the same on aol-click;
#: * ``"retrieval"``: word 1-2-grams + character 2-4-grams of space-padded words, all
#:   sublinear: the most accurate on the validation parts of aol-click and homedepot;
#: * ``"fast"``: word 1-2-grams + character 3-grams of space-padded words, all sublinear: the
#:   default of :class:`~pecos_rs.TextXRLinear`; on aol-click's validation part 0.07 R@10 and
#:   0.46 R@100 points below ``"retrieval"``, with 2.5x fewer features per query, half the time
#:   per query and 0.55x the training time.
PRESETS = {
    "paper": lambda: [
        ("word", WordTfidf(ngram_range=(1, 3), sublinear_tf=True)),
        ("char", CharTfidf(ngram_range=(3, 3), end_marker="#", token_pattern=r"\S+", sublinear_tf=True)),
    ],
    "sklearn": lambda: [
        ("word", WordTfidf(ngram_range=(1, 2), token_pattern=r"(?u)\b\w\w+\b", sublinear_tf=True)),
        ("char", CharTfidf(ngram_range=(3, 3), token_pattern=r"\S+", start_marker=" ", end_marker=" ",
                           sublinear_tf=True)),
    ],
    "retrieval": lambda: [
        ("word", WordTfidf(ngram_range=(1, 2), sublinear_tf=True)),
        ("char", CharTfidf(ngram_range=(2, 4), token_pattern=r"\S+", start_marker=" ", end_marker=" ",
                           sublinear_tf=True)),
    ],
    "fast": lambda: [
        ("word", WordTfidf(ngram_range=(1, 2), sublinear_tf=True)),
        ("char", CharTfidf(ngram_range=(3, 3), token_pattern=r"\S+", start_marker=" ", end_marker=" ",
                           sublinear_tf=True)),
    ],
}


class TextFeaturizer(DocumentsInputMixin, TransformerMixin, BaseEstimator):
    """Several text featurizers side by side: ``[w_1 B_1(x), ..., w_k B_k(x)]``, each block
    normalised by its own featurizer, then every row renormalised.

    Parameters
    ----------
    blocks : list of (str, featurizer), str or None, default=None
        Named featurizers (:class:`WordTfidf`, :class:`CharTfidf`,
        :class:`PositionWeightedCharTfidf`), or the name of a preset (``"paper"``,
        ``"sklearn"``, ``"retrieval"``: :data:`PRESETS`). None means ``"paper"``, the
        product-search setting of PECOS (Chang et al., KDD 2021), word 1-3-grams + character
        3-grams with the end marker ``"#"``, as built by :func:`default_blocks`.
    block_weights : list of float or None, default=None
        Weight of each block before renormalisation (default: all 1).
    norm : {"l2", "l1"} or None, default="l2"
        Normalisation of the stacked rows.

    Attributes
    ----------
    blocks_ : list of (str, featurizer)
        The fitted featurizers (clones of ``blocks``).

    Examples
    --------
    >>> from pecos_rs.text import TextFeaturizer
    >>> X = TextFeaturizer().fit_transform(["echo with screen", "kindle paperwhite"])
    >>> X.shape, X.dtype
    ((2, 34), dtype('float32'))
    """

    def __init__(self, blocks=None, *, block_weights=None, norm="l2"):
        self.blocks = blocks
        self.block_weights = block_weights
        self.norm = norm

    def _resolved_blocks(self):
        blocks = self.blocks
        if blocks is None:
            blocks = default_blocks()
        elif isinstance(blocks, str):
            blocks = preset_blocks(blocks)
        try:
            names = [name for name, _ in blocks]
        except (TypeError, ValueError):
            raise InvalidParameterError("blocks must be a list of (name, featurizer) pairs") from None
        if not blocks or len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            raise InvalidParameterError("blocks must be a non-empty list with unique str names")
        for name, f in blocks:
            if not isinstance(f, NgramTfidf):
                raise InvalidParameterError(
                    f"block {name!r} must be a pecos_rs.text featurizer, got {type(f).__name__}")
        params = plain({"block_weights": self.block_weights, "norm": self.norm})
        weights = _pecos_rs.combine_params(params, len(blocks))
        return blocks, weights

    def fit(self, raw_documents, y=None):
        """Fit every block on the documents (an iterator is read into a list first)."""
        blocks, weights = self._resolved_blocks()
        docs = as_list(raw_documents)
        self.blocks_ = [(name, clone(f).fit(docs)) for name, f in blocks]
        self.weights_ = weights
        return self

    def transform(self, raw_documents):
        """Stacked, renormalised rows: a float32 CSR matrix with sorted indices."""
        check_is_fitted(self, "blocks_")
        prepared = _prepared_once(self.blocks_, as_list(raw_documents))
        return self._stack([f._transform(docs, prepared=True) for (_, f), docs in zip(self.blocks_, prepared)])

    def fit_transform(self, raw_documents, y=None):
        """Fit every block and return the stacked rows, tokenizing the documents once per block."""
        blocks, weights = self._resolved_blocks()
        fitted = [(name, clone(f)) for name, f in blocks]
        prepared = _prepared_once(fitted, as_list(raw_documents))
        parts = [csr_from_arrays(*f._fit(docs, record=True, prepared=True)) for (_, f), docs in zip(fitted, prepared)]
        self.blocks_, self.weights_ = fitted, weights
        return self._stack(parts)

    def _stack(self, parts):
        stacked = _pecos_rs.stack_blocks([csr_args(p) for p in parts], self.weights_, self.norm)
        return csr_from_arrays(*stacked)

    def _row_arrays(self, doc: str) -> tuple:
        """The row of one document as the core's ``(indptr, indices, data, n_rows, n_cols)``, on
        the calling thread, without a scipy matrix (the real-time path of the text models)."""
        parts = [f._row_arrays(doc) for _, f in self.blocks_]
        indptr, indices, data, (n_rows, n_cols) = _pecos_rs.stack_blocks(parts, self.weights_, self.norm)
        return indptr, indices, data, n_rows, n_cols

    def get_feature_names_out(self, input_features=None):
        """``"<block>__<n-gram>"`` for every column."""
        check_is_fitted(self, "blocks_")
        return np.concatenate([
            np.asarray([f"{name}__{n}" for n in f.get_feature_names_out()], dtype=object)
            for name, f in self.blocks_
        ])

    def save(self, path):
        """Write the fitted featurizer to directory `path`: ``featurizer.json`` and one file per block."""
        check_is_fitted(self, "blocks_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        files = []
        for i, (name, f) in enumerate(self.blocks_):
            files.append(f"block{i}.bin")
            f.save(path / files[-1])
        write_metadata(
            path / _FEATURIZER_FILE, _FORMAT_NAME, FORMAT_VERSION,
            blocks=[{"name": name, "file": file} for (name, _), file in zip(self.blocks_, files)],
            block_weights=self.weights_,
            norm=self.norm,
        )

    @classmethod
    def load(cls, path):
        """Load a featurizer written by :meth:`save` (raises ModelFormatError if corrupt)."""
        path = Path(path)
        meta_file = path / _FEATURIZER_FILE
        meta = read_metadata(meta_file, _FORMAT_NAME, FORMAT_VERSION)
        try:
            names = [b["name"] for b in meta["blocks"]]
            files = [path / Path(b["file"]).name for b in meta["blocks"]]
            weights, norm = meta["block_weights"], meta["norm"]
        except (ValueError, KeyError, TypeError) as e:
            raise corrupt(meta_file, e) from e
        blocks = [(name, NgramTfidf.load(file)) for name, file in zip(names, files)]
        est = cls(blocks=[(n, clone(f)) for n, f in blocks], block_weights=weights, norm=norm)
        try:
            _, weights = est._resolved_blocks()
        except InvalidParameterError as e:
            raise corrupt(meta_file, e) from e
        est.blocks_, est.weights_ = blocks, weights
        return est

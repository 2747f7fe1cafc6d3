"""The raw documents: reading them in batches, checking that they are text, preprocessing them;
the scikit-learn tags of the estimators that take them."""

from __future__ import annotations

import itertools
import unicodedata

import scipy.sparse as sp
from sklearn.feature_extraction.text import strip_accents_ascii, strip_accents_unicode

from ..exceptions import InvalidInputError

# Documents handed to Rust per call: enough for both cores, small enough to stream.
BATCH_DOCS = 50_000
ACCENT_STRIPPERS = {None: None, "unicode": strip_accents_unicode, "ascii": strip_accents_ascii}


def batches(raw_documents):
    """Yield lists of at most ``BATCH_DOCS`` documents (rejecting a bare string)."""
    if isinstance(raw_documents, (str, bytes)):
        raise InvalidInputError(
            "an iterable of documents (str) is expected, got a single string; wrap it in a list"
        )
    if sp.issparse(raw_documents):
        raise InvalidInputError("an iterable of documents (str) is expected, got a sparse matrix")
    try:
        it = iter(raw_documents)
    except TypeError:
        raise InvalidInputError(
            f"an iterable of documents (str) is expected, got {type(raw_documents).__name__}"
        ) from None
    while batch := list(itertools.islice(it, BATCH_DOCS)):
        yield batch


def as_list(raw_documents) -> list:
    """The documents as a list (rejected as `batches` rejects them)."""
    if isinstance(raw_documents, list):
        return raw_documents
    return [doc for batch in batches(raw_documents) for doc in batch]


def preprocess(batch: list, offset: int, *, unicode_normalization, lowercase, strip_accents) -> list:
    """Check that every document of `batch` is a str (decoding UTF-8 bytes), then normalise,
    lower-case and strip accents, in that order; `offset` is the index of the batch's first
    document, for the error messages."""
    for i, doc in enumerate(batch):
        if not isinstance(doc, str):
            if isinstance(doc, bytes):
                try:
                    batch[i] = doc.decode("utf-8")
                    continue
                except UnicodeDecodeError as e:
                    raise InvalidInputError(f"document {offset + i} is not valid UTF-8: {e}") from None
            raise InvalidInputError(
                f"document {offset + i} is a {type(doc).__name__}, not a str"
            )
    if unicode_normalization is not None:
        batch = [unicodedata.normalize(unicode_normalization, d) for d in batch]
    if lowercase:
        batch = [d.lower() for d in batch]
    strip = ACCENT_STRIPPERS[strip_accents]
    if strip is not None:
        batch = [strip(d) for d in batch]
    return batch


class DocumentsInputMixin:
    """scikit-learn tags of an estimator whose input is an iterable of documents (str), not a 2-D
    array; put it before scikit-learn's base classes."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags

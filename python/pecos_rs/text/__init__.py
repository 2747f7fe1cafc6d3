"""Text featurizers: word and character n-gram TF-IDF, position-weighted character TF-IDF.

scikit-learn transformers over a Rust kernel that tokenizes, counts and weighs in parallel with
the GIL released. Text goes in as an iterable of ``str``; a float32 CSR matrix with sorted indices
comes out.

* :class:`WordTfidf`: word n-grams (default 1- to 3-grams).
* :class:`CharTfidf`: character n-grams inside words, with an end-of-word marker (default ``"#"``)
  and an optional start-of-word marker: ``"Echo with screen"`` gives ``"ech", "cho", "ho#",
  "wit", "ith", "th#", ...``.
* :class:`PositionWeightedCharTfidf`: character n-grams of the whole string where an n-gram
  starting at character ``i`` counts ``w(i)`` (default ``1 / (i + 1)``), so the beginning of the
  string dominates (query autocompletion).
* :class:`TextFeaturizer`: stacks blocks (each L2-normalised, optionally weighted) and
  renormalises each row; its default is the product-search setting, word 1-3-grams + character
  3-grams with the end marker.

Preprocessing, in order: Unicode normalisation (``unicode_normalization``, default NFKC),
lower-casing, accent stripping. Tokens are the matches of ``token_pattern`` (Rust ``regex``
syntax; the default takes runs of letters, digits, combining marks and underscores). Weighting
follows scikit-learn's ``TfidfVectorizer``: ``tf`` (1 if ``binary``, ``1 + ln(tf)`` if
``sublinear_tf``) times ``idf = ln((1 + N) / (1 + df)) + 1`` (``smooth_idf``) or
``ln(N / df) + 1``, then each row is scaled to unit norm. Unlike PECOS's native vectorizer, an
n-gram present in every document keeps a nonzero weight.

Fitting streams: documents are read in batches and only the distinct n-grams are kept, so an
iterator over a large corpus is never materialised. Fitted featurizers save to and load from a
versioned, checksummed file (no pickle), and pickle as well.
"""

from __future__ import annotations

from pathlib import Path

from .. import _pecos_rs

# The modules, by concern: _documents (reading, checking and preprocessing the raw documents),
# _ngram_tfidf (what the n-gram featurizers share: parameters, fit / transform, persistence),
# _featurizers (the three n-gram featurizers), _combined (TextFeaturizer, the blocks side by side),
# _csr (CSR matrices around the rows the Rust kernels return).
from ._combined import PRESETS, TextFeaturizer, default_blocks, preset_blocks
from ._featurizers import DEFAULT_TOKEN_PATTERN, CharTfidf, PositionWeightedCharTfidf, WordTfidf
from ._ngram_tfidf import featurizer_from_vocab

__all__ = [
    "DEFAULT_TOKEN_PATTERN",
    "CharTfidf",
    "PositionWeightedCharTfidf",
    "TextFeaturizer",
    "WordTfidf",
    "PRESETS",
    "default_blocks",
    "preset_blocks",
    "load",
]

# The private modules that define them are an implementation detail: pickles (and help, docs)
# name these by their public path, pecos_rs.text.<name>, which stays valid if the code moves.
for _public in (CharTfidf, PositionWeightedCharTfidf, TextFeaturizer, WordTfidf, default_blocks, preset_blocks):
    _public.__module__ = __name__
del _public


def load(path):
    """Load any featurizer of this module saved with ``save`` (a directory for
    :class:`TextFeaturizer`, a file for the others)."""
    if Path(path).is_dir():
        return TextFeaturizer.load(path)
    return featurizer_from_vocab(_pecos_rs.TfidfVocabulary.load(str(path)), path)

"""The n-gram TF-IDF featurizers: word n-grams, character n-grams inside words, position-weighted
character n-grams of the whole string."""

from __future__ import annotations

from .. import _pecos_rs
from ._ngram_tfidf import NgramTfidf, loadable

#: Runs of letters, digits, combining marks and connector punctuation (Unicode general categories
#: L, N, M and Pc).
DEFAULT_TOKEN_PATTERN = _pecos_rs.DEFAULT_TOKEN_PATTERN


_COMMON_PARAMS_DOC = """
    lowercase : bool, default=True
        Lower-case the text (Python's ``str.lower``).
    unicode_normalization : {"NFKC", "NFC", "NFKD", "NFD"} or None, default="NFKC"
        Unicode normal form applied first (``unicodedata.normalize``).
    strip_accents : {"unicode", "ascii"} or None, default=None
        Remove accents after lower-casing, as scikit-learn does.
    min_df, max_df : int or float, default=1 and 1.0
        Keep n-grams whose document frequency is within the bounds: an int is a number of
        documents, a float a fraction of the corpus.
    max_features : int or None, default=None
        Keep only the most frequent n-grams (by total count; ties to the earlier n-gram).
    binary : bool, default=False
        Term frequency 1 for every n-gram present.
    sublinear_tf : bool, default=False
        Replace tf by ``1 + ln(tf)``.
    use_idf, smooth_idf : bool, default=True
        Weigh by idf; add one to document frequencies (as if one extra document had every n-gram).
    norm : {"l2", "l1"} or None, default="l2"
        Row normalisation.
    n_features : int or None, default=None
        Hashing mode: map n-grams to this many columns with 32-bit MurmurHash3 (scikit-learn's
        ``HashingVectorizer(alternate_sign=False)`` columns) instead of keeping a vocabulary.
        Memory follows the buckets seen in fit (only their document frequencies are kept), not
        ``n_features``; buckets not seen in fit are ignored at transform.
        ``get_feature_names_out`` gives ``hash_<i>``.
    n_jobs : int or None, default=-1
        Threads (-1: all cores). The output does not depend on it.
"""


@loadable
class WordTfidf(NgramTfidf):
    __doc__ = f"""TF-IDF of word n-grams (tokens joined by one space).

    Parameters
    ----------
    ngram_range : (int, int), default=(1, 3)
        Smallest and largest n.
    token_pattern : str, default=DEFAULT_TOKEN_PATTERN
        Regular expression (Rust ``regex`` syntax) whose matches are the tokens; with one capture
        group, the group is the token.
    {_COMMON_PARAMS_DOC}
    Examples
    --------
    >>> from pecos_rs.text import WordTfidf
    >>> WordTfidf(ngram_range=(1, 2)).fit(["Echo with screen"]).get_feature_names_out().tolist()
    ['echo', 'echo with', 'screen', 'with', 'with screen']
    """

    def __init__(self, *, ngram_range=(1, 3), token_pattern=DEFAULT_TOKEN_PATTERN, lowercase=True,
                 unicode_normalization="NFKC", strip_accents=None, min_df=1, max_df=1.0,
                 max_features=None, binary=False, sublinear_tf=False, use_idf=True, smooth_idf=True,
                 norm="l2", n_features=None, n_jobs=-1):
        self._store_constructor_args(locals())

    _kind = "word"


@loadable
class CharTfidf(NgramTfidf):
    __doc__ = f"""TF-IDF of character n-grams inside words, with word-boundary markers.

    Each token is wrapped as ``start_marker + token + end_marker`` and cut into character
    n-grams; a wrapped token shorter than the smallest n is one feature by itself (``"tv#"``).

    Parameters
    ----------
    ngram_range : (int, int), default=(3, 3)
        Smallest and largest n (in characters, markers included).
    end_marker, start_marker : str, default="#" and ""
        Strings appended to / prepended to every token ("" for none).
    token_pattern : str, default=DEFAULT_TOKEN_PATTERN
        Regular expression (Rust ``regex`` syntax) whose matches are the words.
    {_COMMON_PARAMS_DOC}
    Examples
    --------
    >>> from pecos_rs.text import CharTfidf
    >>> CharTfidf().fit(["Echo with screen"]).get_feature_names_out().tolist()[:6]
    ['cho', 'cre', 'ech', 'een', 'en#', 'ho#']
    """

    def __init__(self, *, ngram_range=(3, 3), end_marker="#", start_marker="",
                 token_pattern=DEFAULT_TOKEN_PATTERN, lowercase=True, unicode_normalization="NFKC",
                 strip_accents=None, min_df=1, max_df=1.0, max_features=None, binary=False,
                 sublinear_tf=False, use_idf=True, smooth_idf=True, norm="l2", n_features=None,
                 n_jobs=-1):
        self._store_constructor_args(locals())

    _kind = "char_in_words"


@loadable
class PositionWeightedCharTfidf(NgramTfidf):
    __doc__ = f"""TF-IDF of character n-grams of the whole string, weighted by position.

    Whitespace runs become one space; the n-gram starting at character ``i`` (0-based) counts
    ``w(i)`` instead of 1, so that the first characters dominate and nearby vectors share a
    prefix, as in a trie (the prefix features of PECOS's session-aware autocompletion).

    Parameters
    ----------
    ngram_range : (int, int), default=(1, 3)
        Smallest and largest n.
    position_decay : {{"inverse", "inverse_sqrt", "exponential", "none"}}, default="inverse"
        ``w(i) = 1 / (i + 1)``, ``1 / sqrt(i + 1)``, ``decay_rate ** i``, or 1 (plain counts).
    decay_rate : float, default=0.9
        Base of the exponential decay, in (0, 1].
    {_COMMON_PARAMS_DOC}
    """

    def __init__(self, *, ngram_range=(1, 3), position_decay="inverse", decay_rate=0.9,
                 lowercase=True, unicode_normalization="NFKC", strip_accents=None, min_df=1,
                 max_df=1.0, max_features=None, binary=False, sublinear_tf=False, use_idf=True,
                 smooth_idf=True, norm="l2", n_features=None, n_jobs=-1):
        self._store_constructor_args(locals())

    _kind = "chars"

"""Query autocompletion (QAC): the queries a user may be typing, from the prefix typed so far
(PECOS's ``examples/qp2q``, session-aware query autocompletion, Yadav et al., KDD 2021).

* :class:`CompletionIndex`: the most frequent completions of a prefix with back-off to shorter
  prefixes (the MFQ baseline, and the fallback of session-aware models).
"""

from __future__ import annotations

from ._completion import CompletionIndex

__all__ = ["CompletionIndex"]

# Pickles (and help, docs) name the class by its public path, which stays valid if the code moves.
CompletionIndex.__module__ = __name__

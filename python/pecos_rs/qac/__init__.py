"""Query autocompletion (QAC): the queries a user may be typing, from the prefix typed so far
(PECOS's ``examples/qp2q``, session-aware query autocompletion, Yadav et al., KDD 2021).

* :class:`CompletionIndex`: the most frequent completions of a prefix with back-off to shorter
  prefixes (the MFQ baseline, and the fallback of session-aware models).
* :class:`SessionAutocompleter`: suggestions from the previous query of the session and the
  prefix, by XR-Linear over a label tree that follows the query strings, searched only where
  labels start with the prefix, filled by the completion index.
"""

from __future__ import annotations

from ._autocompleter import SessionAutocompleter
from ._completion import CompletionIndex

__all__ = ["CompletionIndex", "SessionAutocompleter"]

# Pickles (and help, docs) name the classes by their public path, which stays valid if the code moves.
CompletionIndex.__module__ = __name__
SessionAutocompleter.__module__ = __name__

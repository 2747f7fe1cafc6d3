"""Pure-Python reference of PECOS's most-frequent-query (MFQ) suggester (``examples/qp2q``): its
prefix -> top-k dictionary (``utils/create_pref_to_top_k_suggestions_dict.py``) and the recursive
lookup of ``PrefFreqSuggester`` (``eval/eval_helper.py``), transcribed, with one change: equal counts
go to the query that sorts first (PECOS sorts them in whatever order its trie yields them).

Python strings index code points, so ``prefix[:-1]`` drops one character exactly as the Rust core
does.
"""

from __future__ import annotations


def total_counts(queries, counts) -> dict:
    """Query -> the sum of its counts, summed in input order."""
    totals: dict = {}
    for query, count in zip(queries, counts):
        totals[query] = totals.get(query, 0.0) + count
    return totals


def by_count(totals: dict) -> list:
    """``[(query, count), ...]`` by count descending, ties in code point order."""
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


def prefix_table(totals: dict, k: int) -> dict:
    """PECOS's dictionary: every prefix of every query (the empty prefix included) -> its `k`
    most frequent completions, ``[(query, count), ...]``."""
    ranked = by_count(totals)
    prefixes = {query[:i] for query in totals for i in range(len(query) + 1)}
    return {p: [(q, c) for q, c in ranked if q.startswith(p)][:k] for p in prefixes}


def pecos_suggest(table: dict, prefix: str, k: int) -> list:
    """``PrefFreqSuggester._get_suggestions``: a prefix in the table with at least `k` stored
    completions (or the empty prefix) answers with them; one with fewer appends the suggestions of
    the prefix one character shorter that it does not hold; a prefix absent from the table answers
    as the prefix one character shorter does."""
    if prefix not in table:
        return pecos_suggest(table, prefix[:-1], k) if prefix else []
    stored = table[prefix]
    if len(stored) >= k or not prefix:
        return stored[:k]
    held = {query for query, _ in stored}
    shorter = pecos_suggest(table, prefix[:-1], k)[:k]
    return (stored + [(q, c) for q, c in shorter if q not in held])[:k]

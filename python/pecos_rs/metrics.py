"""Ranking metrics for top-k predictions, with PECOS's conventions.

Extreme multi-label ranking (``smat_util.Metrics``), :func:`precision_recall_at_k`:

* P@k = |top-k ∩ true| / k, even when fewer than k labels were predicted;
* R@k = |top-k ∩ true| / |true|;
* both are averaged over all rows; a row without true labels counts as 0 for both;
* :func:`ndcg_at_k`: DCG@k with binary gains over the ideal DCG@k of the row.

Query autocompletion (the session-aware QAC code of PECOS, ``examples/qp2q``), from one target
string and a ranked list of suggested strings per row; no normalisation of the strings:

* :func:`mrr_at_k`: mean of 1/rank of the first suggestion equal to the target (0 if absent);
* :func:`success_at_k`: share of rows whose target is suggested;
* :func:`rank_weighted_bleu`: mean of the sentence BLEU of each suggestion, weighted by 1/rank;
* :func:`qac_report`: the three, and the share of empty suggestion lists, by prefix length.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from ._params import is_int, str_list
from .exceptions import InvalidInputError, InvalidParameterError


def precision_recall_at_k(Y_true, top_labels, ks=(1, 3, 5, 10)) -> dict:
    """Return ``{"P@k": percent, ..., "R@k": percent, ...}`` for every k in `ks`.

    Parameters
    ----------
    Y_true : sparse matrix or array of shape (n_samples, n_labels)
        Relevant labels (nonzero entries).
    top_labels : ndarray of int, shape (n_samples, K)
        Ranked predictions, best first, padded with -1 (as returned by ``predict_topk``);
        ``max(ks) <= K``.
    """
    hits, n_true = _hits(Y_true, top_labels, ks)
    cum_hits = np.cumsum(hits, axis=1)
    out = {f"P@{k}": 100.0 * float(np.mean(cum_hits[:, k - 1] / k)) for k in ks}
    out.update({f"R@{k}": 100.0 * float(np.mean(cum_hits[:, k - 1] / np.maximum(n_true, 1))) for k in ks})
    return out


def ndcg_at_k(Y_true, top_labels, ks=(1, 3, 5, 10)) -> dict:
    """Return ``{"nDCG@k": percent, ...}``: binary-relevance DCG@k (a hit at rank r gains
    ``1 / log2(r + 1)``) over the ideal DCG of ``min(k, |true|)`` hits, averaged over all rows (a
    row without true labels counts 0). Arguments as in :func:`precision_recall_at_k`."""
    hits, n_true = _hits(Y_true, top_labels, ks)
    gain = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = np.cumsum(hits * gain, axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(gain)])
    out = {}
    for k in ks:
        best = ideal[np.minimum(n_true, k)]
        out[f"nDCG@{k}"] = 100.0 * float(np.mean(np.divide(dcg[:, k - 1], best, out=np.zeros(len(best)),
                                                           where=best > 0)))
    return out


def _hits(Y_true, top_labels, ks):
    """Whether each prediction is a true label (bool (n, K)) and the true labels per row, after
    checking that the shapes fit and that ``max(ks) <= K``."""
    Y_true = sp.csr_matrix(Y_true, copy=True)
    top_labels = np.asarray(top_labels)
    n, width = top_labels.shape
    if n != Y_true.shape[0] or max(ks) > width:
        raise ValueError(
            f"predictions of shape {top_labels.shape} do not fit labels of shape {Y_true.shape} "
            f"with k up to {max(ks)}"
        )
    Y_true.eliminate_zeros()
    rows = np.repeat(np.arange(n), width)
    cols = top_labels.reshape(-1)
    valid = cols >= 0
    hits = np.zeros(n * width, dtype=bool)
    if valid.any():  # (scipy returns a sparse matrix, not an array, for an empty index)
        hits[valid] = np.asarray(Y_true[rows[valid], cols[valid]]).reshape(-1) != 0
    return hits.reshape(n, width), np.diff(Y_true.indptr)


# ------------------------------------------------------------------ query autocompletion (QAC)
#
# The definitions of PECOS's session-aware QAC code (amzn/pecos, examples/qp2q/eval/
# eval_pred_data.py, ``calc_mrr_bleu``), with a cut-off k added (there, the suggesters return at
# most topk suggestions). Suggestions and targets are compared as given: qp2q lower-cases both
# first, these functions apply no normalisation (no case folding, no Unicode normalisation, no
# whitespace stripping), so callers normalise their data once, beforehand.

_BLEU_ORDER = 4  # n-grams of 1 to 4 tokens, with uniform weights 1/4
_BLEU_EPSILON = 0.1  # Chen & Cherry (2014) smoothing 1: a count of 0 matches becomes 0.1
_SHORT_PREFIX = 3  # qac_report: a prefix of at most this many characters is "short"


def _check_rows(targets, suggestions, k):
    """Return `targets` and `suggestions` as lists after checking them and `k` (see mrr_at_k)."""
    if not is_int(k) or k < 1:
        raise InvalidParameterError(f"k must be an int >= 1, got {k!r}")
    targets = str_list(targets, "targets")
    if isinstance(suggestions, (str, bytes)) or not isinstance(suggestions, Iterable):
        raise InvalidInputError(
            f"suggestions must be a sequence of lists of str, got {suggestions!r}"
        )
    suggestions = list(suggestions)
    if len(suggestions) != len(targets):
        raise InvalidInputError(
            f"suggestions must be as long as targets ({len(targets)}), got {len(suggestions)} lists"
        )
    rows = [str_list(row, f"suggestions[{i}]") for i, row in enumerate(suggestions)]
    if not targets:
        raise InvalidInputError("targets must hold at least one row, got 0")
    return targets, rows


def _reciprocal_ranks(targets, rows, k):
    """1/rank (1-based) of the first suggestion equal to the target within the first k, else 0."""
    out = []
    for target, row in zip(targets, rows):
        top = row[:k]
        out.append(1.0 / (top.index(target) + 1) if target in top else 0.0)
    return out


def mrr_at_k(targets, suggestions, k=10) -> float:
    """Mean reciprocal rank of the target among the first `k` suggestions.

    A row scores 1/rank (rank 1 for the first suggestion) of the first suggestion equal to its
    target, 0 if none of its first `k` suggestions is. When a suggestion list repeats the target,
    the first occurrence counts. Matching is exact string equality: no normalisation (case,
    Unicode, whitespace) is applied.

    Parameters
    ----------
    targets : sequence of str, length n_rows (>= 1)
        The query each row should have suggested (qp2q: the next query of the session).
    suggestions : sequence of sequences of str, length n_rows
        Ranked suggestions of each row, best first; a row may hold fewer than `k` or none.
    k : int >= 1, default 10
        Only the first `k` suggestions of each row count.

    Returns
    -------
    float
        The mean over rows, in [0, 1].

    Raises
    ------
    InvalidInputError
        When the lengths differ, there are no rows, or a target or suggestion is not a str.
    InvalidParameterError
        When `k` is not an int >= 1.
    """
    targets, rows = _check_rows(targets, suggestions, k)
    return float(np.mean(_reciprocal_ranks(targets, rows, k)))


def success_at_k(targets, suggestions, k=10) -> float:
    """Share of rows whose target is among their first `k` suggestions (exact string equality, no
    normalisation). Parameters, errors and conventions as in :func:`mrr_at_k`; returns a float in
    [0, 1]."""
    targets, rows = _check_rows(targets, suggestions, k)
    return float(np.mean([target in row[:k] for target, row in zip(targets, rows)]))


def _ngram_counts(tokens, n):
    """How many times each n-gram (a tuple of n tokens) occurs in `tokens`."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _sentence_bleu(reference, hypothesis) -> float:
    """Sentence BLEU of the token list `hypothesis` against the single token list `reference`.

    The semantics of nltk's ``sentence_bleu([reference], hypothesis,
    smoothing_function=SmoothingFunction().method1)`` (default weights, no re-weighting):

    * p_n, for n = 1..4: clipped n-gram matches (an n-gram counts at most as often as it occurs in
      the reference) over the number of n-grams of the hypothesis, that number taken as at least 1
      (a hypothesis shorter than n tokens has p_n = 0 / 1);
    * no unigram match at all (an empty hypothesis included) gives 0;
    * smoothing 1 of Chen & Cherry (2014): a p_n with 0 matches becomes 0.1 / (its denominator);
    * BLEU = BP * exp(sum of log(p_n) / 4), with the brevity penalty BP = 1 when the hypothesis
      is longer than the reference, exp(1 - len(reference) / len(hypothesis)) otherwise.
    """
    log_precisions = []
    for n in range(1, _BLEU_ORDER + 1):
        hyp_counts = _ngram_counts(hypothesis, n)
        ref_counts = _ngram_counts(reference, n)
        matches = sum(min(count, ref_counts[ngram]) for ngram, count in hyp_counts.items())
        total = max(1, sum(hyp_counts.values()))
        if matches == 0 and n == 1:
            return 0.0
        precision = matches / total if matches > 0 else _BLEU_EPSILON / total
        log_precisions.append(math.log(precision) / _BLEU_ORDER)
    hyp_len, ref_len = len(hypothesis), len(reference)
    brevity = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return brevity * math.exp(math.fsum(log_precisions))


def _rank_weighted_bleus(targets, rows, k):
    """The rank-weighted BLEU of every row (see rank_weighted_bleu)."""
    out = []
    for target, row in zip(targets, rows):
        reference = target.split()
        weighted, normalizer = 0.0, 0.0
        for i, suggestion in enumerate(row[:k]):
            weighted += _sentence_bleu(reference, suggestion.split()) / (i + 1)
            normalizer += 1.0 / (i + 1)
        out.append(weighted / normalizer if normalizer > 0 else 0.0)
    return out


def rank_weighted_bleu(targets, suggestions, k=10) -> float:
    """Mean over rows of the rank-weighted sentence BLEU of the first `k` suggestions (qp2q's
    "bleu").

    Targets and suggestions are split into tokens on runs of whitespace (``str.split()``). A row
    with suggestions s_1, ..., s_m (m = min(k, its number of suggestions)) scores

        sum_r BLEU(target, s_r) / r  /  sum_r 1 / r        (r = 1..m, 1-based ranks),

    normalised by the weights of the suggestions it has, not by those of k suggestions; a row
    without suggestions scores 0. Every suggestion counts, repeated ones included. BLEU is
    sentence BLEU with 1- to 4-grams, uniform weights, smoothing method 1 of Chen & Cherry (2014)
    and the brevity penalty, equal to nltk's ``sentence_bleu([target.split()],
    suggestion.split(), smoothing_function=SmoothingFunction().method1)``: a suggestion sharing
    no token with the target, or empty, scores 0. No normalisation (case, Unicode) is applied.

    Parameters
    ----------
    targets, suggestions, k
        As in :func:`mrr_at_k`.

    Returns
    -------
    float
        The mean over rows, in [0, 1].

    Raises
    ------
    InvalidInputError, InvalidParameterError
        As in :func:`mrr_at_k`.
    """
    targets, rows = _check_rows(targets, suggestions, k)
    return float(np.mean(_rank_weighted_bleus(targets, rows, k)))


def qac_report(prefixes, targets, suggestions, k=10) -> dict:
    """MRR@k, success@k, rank-weighted BLEU and the share of empty suggestion lists, over all rows
    and by prefix length.

    Parameters
    ----------
    prefixes : sequence of str, length n_rows
        The typed prefix of each row; its length is ``len(prefix)``, in characters.
    targets, suggestions, k
        As in :func:`mrr_at_k`.

    Returns
    -------
    dict
        ``{"all": group, "prefix<=3": group, "prefix>3": group}``, each group a dict
        ``{"n_rows": int, "MRR@k": float, "success@k": float, "bleu": float, "empty": float}``
        with k written out (``"MRR@10"``). "bleu" is :func:`rank_weighted_bleu`, "empty" the
        share of rows with no suggestion at all (before the cut-off at k); all four are means over
        the rows of the group, in [0, 1] (not percentages), and NaN for a group without rows.

    Raises
    ------
    InvalidInputError
        As in :func:`mrr_at_k`, and when `prefixes` is not a sequence of str as long as `targets`.
    InvalidParameterError
        As in :func:`mrr_at_k`.
    """
    targets, rows = _check_rows(targets, suggestions, k)
    prefixes = str_list(prefixes, "prefixes")
    if len(prefixes) != len(targets):
        raise InvalidInputError(
            f"prefixes must be as long as targets ({len(targets)}), got {len(prefixes)} prefixes"
        )
    per_row = {
        f"MRR@{k}": np.array(_reciprocal_ranks(targets, rows, k)),
        f"success@{k}": np.array([t in row[:k] for t, row in zip(targets, rows)], dtype=float),
        "bleu": np.array(_rank_weighted_bleus(targets, rows, k)),
        "empty": np.array([len(row) == 0 for row in rows], dtype=float),
    }
    short = np.array([len(prefix) <= _SHORT_PREFIX for prefix in prefixes], dtype=bool)
    groups = {
        "all": np.ones(len(targets), dtype=bool),
        f"prefix<={_SHORT_PREFIX}": short,
        f"prefix>{_SHORT_PREFIX}": ~short,
    }
    report: dict[str, dict[str, float]] = {}
    for group, mask in groups.items():
        n_rows = int(mask.sum())
        report[group] = {"n_rows": n_rows}
        for name, values in per_row.items():
            report[group][name] = float(values[mask].mean()) if n_rows else math.nan
    return report

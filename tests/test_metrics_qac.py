"""Query-autocompletion metrics (pecos_rs.metrics): MRR@k and success@k on hand-computed cases,
sentence BLEU against nltk's (the reference of PECOS's qp2q evaluation), the rank-weighted BLEU
against a direct computation with nltk, the report by prefix length, and bad input."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from pecos_rs import InvalidInputError, InvalidParameterError
from pecos_rs.metrics import mrr_at_k, qac_report, rank_weighted_bleu, success_at_k

QAC_METRICS = [mrr_at_k, success_at_k, rank_weighted_bleu]
VOCAB = ["a", "b", "c", "d", "e"]  # small, so that n-grams of every order match often
TOL = 1e-12


def nltk_bleu(target: str, suggestion: str) -> float:
    """qp2q's per-suggestion score (examples/qp2q/eval/eval_pred_data.py)."""
    return sentence_bleu(
        [target.split()], suggestion.split(), smoothing_function=SmoothingFunction().method1
    )


def nltk_rank_weighted_bleu(targets, suggestions, k) -> float:
    """qp2q's calc_mrr_bleu "bleu" on the first k suggestions of each row, written with nltk."""
    scores = []
    for target, row in zip(targets, suggestions):
        row = list(row)[:k]
        weights = [1.0 / rank for rank in range(1, len(row) + 1)]
        total = sum(w * nltk_bleu(target, s) for w, s in zip(weights, row))
        scores.append(total / sum(weights) if row else 0.0)
    return sum(scores) / len(scores)


def single_bleu(target: str, suggestion: str) -> float:
    """Our sentence BLEU of one pair, through the public function (one row, one suggestion)."""
    return rank_weighted_bleu([target], [[suggestion]], k=1)


# ------------------------------------------------------------------------------------ MRR, success


def test_mrr_and_success_hand_computed():
    targets = ["a", "b", "c", "d"]
    suggestions = [["a", "x"], ["x", "b"], ["x", "y", "z", "c"], ["x"]]
    assert mrr_at_k(targets, suggestions) == pytest.approx((1 + 1 / 2 + 1 / 4 + 0) / 4, abs=TOL)
    assert success_at_k(targets, suggestions) == pytest.approx(3 / 4, abs=TOL)


@pytest.mark.parametrize(
    "k, mrr, success",
    [(1, 0.0, 0.0), (2, 0.0, 0.0), (3, 1 / 3, 1.0), (4, 1 / 3, 1.0), (10, 1 / 3, 1.0)],
)
def test_only_the_first_k_suggestions_count(k, mrr, success):
    targets, suggestions = ["t"], [["x", "y", "t", "z"]]
    assert mrr_at_k(targets, suggestions, k=k) == pytest.approx(mrr, abs=TOL)
    assert success_at_k(targets, suggestions, k=k) == success


def test_a_repeated_target_counts_at_its_first_occurrence():
    assert mrr_at_k(["t"], [["x", "t", "t"]]) == pytest.approx(1 / 2, abs=TOL)
    assert mrr_at_k(["t"], [["t", "x", "t"]]) == 1.0
    assert success_at_k(["t"], [["x", "t", "t"]]) == 1.0
    # a row scores at most 1 however often its target is suggested
    assert mrr_at_k(["t", "u"], [["t", "t", "t"], ["x"]]) == pytest.approx(1 / 2, abs=TOL)


def test_ties_rank_is_the_list_position():
    """Suggestions carry no scores: equally scored ones are ranked by their order in the list, and
    two rows with the same target are scored independently."""
    targets = ["t", "t", "t"]
    suggestions = [["t", "u"], ["u", "t"], ["u", "v"]]
    assert mrr_at_k(targets, suggestions) == pytest.approx((1 + 1 / 2 + 0) / 3, abs=TOL)
    assert success_at_k(targets, suggestions) == pytest.approx(2 / 3, abs=TOL)


def test_empty_and_short_suggestion_lists():
    targets = ["a", "b", "c"]
    suggestions = [[], ["b"], []]
    assert mrr_at_k(targets, suggestions, k=5) == pytest.approx(1 / 3, abs=TOL)
    assert success_at_k(targets, suggestions, k=5) == pytest.approx(1 / 3, abs=TOL)
    assert mrr_at_k(["a"], [[]]) == 0.0 and success_at_k(["a"], [[]]) == 0.0


def test_matching_is_exact_no_normalisation():
    targets = ["echo dot", "echo dot", "echo dot", "echo dot"]
    suggestions = [["Echo dot"], [" echo dot"], ["echo  dot"], ["echo dot"]]
    assert mrr_at_k(targets, suggestions) == pytest.approx(1 / 4, abs=TOL)
    assert success_at_k(targets, suggestions) == pytest.approx(1 / 4, abs=TOL)
    assert mrr_at_k(["café"], [["cafe\u0301"]]) == 0.0  # NFC and NFD spellings differ
    assert mrr_at_k([""], [["", "x"]]) == 1.0  # the empty string is a string like any other


def test_tuples_arrays_and_numpy_strings_are_accepted():
    targets = np.array(["a", "b"])
    suggestions = (("x", "a"), np.array(["b"]))
    assert mrr_at_k(targets, suggestions, k=np.int64(2)) == pytest.approx((1 / 2 + 1) / 2, abs=TOL)
    assert success_at_k(targets, suggestions) == 1.0


@given(
    rows=st.lists(
        st.tuples(st.sampled_from(VOCAB), st.lists(st.sampled_from(VOCAB), max_size=8)),
        min_size=1,
        max_size=10,
    ),
    k=st.integers(1, 10),
)
def test_mrr_and_success_match_a_direct_computation(rows, k):
    targets = [t for t, _ in rows]
    suggestions = [s for _, s in rows]
    expected_rr = []
    for t, s in rows:
        ranks = [rank for rank, x in enumerate(s, start=1) if x == t and rank <= k]
        expected_rr.append(1 / ranks[0] if ranks else 0.0)
    assert mrr_at_k(targets, suggestions, k=k) == pytest.approx(np.mean(expected_rr), abs=TOL)
    assert success_at_k(targets, suggestions, k=k) == pytest.approx(
        np.mean([rr > 0 for rr in expected_rr]), abs=TOL
    )
    assert 0 <= mrr_at_k(targets, suggestions, k=k) <= success_at_k(targets, suggestions, k=k) <= 1


# ------------------------------------------------------------------------------------ sentence BLEU

EDGE_PAIRS = [
    # identical strings, of every length around the 4-gram order
    ("a", "a"),
    ("a b", "a b"),
    ("a b c", "a b c"),
    ("a b c d", "a b c d"),
    ("echo dot with clock", "echo dot with clock"),
    ("a b c d e f g", "a b c d e f g"),
    # no overlap
    ("a b c d", "e f g h"),
    ("a", "b"),
    ("a b c d e", "x"),
    # 1 to 3 token hypotheses or references
    ("a b c d e", "a"),
    ("a b c d e", "a b"),
    ("a b c d e", "c d e"),
    ("a", "a b c d e"),
    ("a b", "b a"),
    ("a b c", "a b c d e f"),
    # clipping of repeated n-grams, brevity penalty on both sides
    ("a", "a a a a"),
    ("a a b", "a a a a a"),
    ("the cat the cat", "the cat the cat the cat"),
    ("a b c d e f g h", "a b c d"),
    # empty hypothesis, empty reference, both
    ("a b c", ""),
    ("", "a b c"),
    ("", ""),
    # whitespace runs, tabs and newlines split like str.split()
    ("a  b\tc", " a b c "),
    ("a\nb", "a b"),
]


@pytest.mark.parametrize("target, suggestion", EDGE_PAIRS)
def test_sentence_bleu_equals_nltk_on_edge_cases(target, suggestion):
    assert single_bleu(target, suggestion) == pytest.approx(nltk_bleu(target, suggestion), abs=TOL)


def test_sentence_bleu_hand_computed():
    assert single_bleu("a b c d", "a b c d") == 1.0
    assert single_bleu("a b c d", "e f g h") == 0.0
    assert single_bleu("a b c", "") == 0.0
    # 1 token: p1 = 1 and p2..p4 = 0.1 / 1 (smoothed, no n-gram of that order), BP = 1
    assert single_bleu("a", "a") == pytest.approx(0.1**0.75, abs=TOL)
    # "a b" in "a b c d e": p1 = p2 = 1, p3 = p4 = 0.1 / 1, BP = exp(1 - 5/2)
    assert single_bleu("a b c d e", "a b") == pytest.approx(0.1**0.5 * math.exp(-1.5), abs=TOL)
    # clipping: "a" occurs once in the reference, so "a a a a" has p1 = 1/4; p2..p4 = 0.1/3, 0.1/2,
    # 0.1/1; the hypothesis is longer, BP = 1
    precisions = [1 / 4, 0.1 / 3, 0.1 / 2, 0.1 / 1]
    expected = math.exp(sum(math.log(p) for p in precisions) / 4)
    assert single_bleu("a", "a a a a") == pytest.approx(expected, abs=TOL)


@given(
    target=st.lists(st.sampled_from(VOCAB), max_size=12),
    hypothesis=st.lists(st.sampled_from(VOCAB), max_size=12),
)
def test_sentence_bleu_equals_nltk_on_random_token_lists(target, hypothesis):
    target, hypothesis = " ".join(target), " ".join(hypothesis)
    expected = nltk_bleu(target, hypothesis)
    note(f"nltk: {expected!r}")
    assert abs(single_bleu(target, hypothesis) - expected) <= TOL


def test_sentence_bleu_equals_nltk_on_many_seeded_pairs():
    """3000 pairs beyond hypothesis's examples, half of them with a shared stretch of tokens so
    that 3- and 4-gram matches are frequent."""
    rng = np.random.default_rng(0)
    n_matched_4grams = 0
    for i in range(3000):
        target = list(rng.choice(VOCAB, size=rng.integers(0, 13)))
        hypothesis = list(rng.choice(VOCAB, size=rng.integers(0, 13)))
        if i % 2 and len(target) >= 4:
            start = rng.integers(0, len(target) - 3)
            hypothesis[:0] = target[start : start + 4]
        target, hypothesis = " ".join(target), " ".join(hypothesis)
        expected = nltk_bleu(target, hypothesis)
        assert abs(single_bleu(target, hypothesis) - expected) <= TOL, (target, hypothesis)
        n_matched_4grams += i % 2 and len(target) >= 4
    assert n_matched_4grams > 1000


# ------------------------------------------------------------------------- rank-weighted BLEU


def test_rank_weights_are_one_over_the_1_based_rank():
    # BLEU 0 at rank 1 and 1 at rank 2: (0/1 + 1/2) / (1/1 + 1/2) = 1/3; weights 1/(rank+1) would
    # give (1/3) / (1/2 + 1/3) = 2/5, weights 1/rank 0-based a division by zero
    assert rank_weighted_bleu(["a b c d"], [["x", "a b c d"]]) == pytest.approx(1 / 3, abs=TOL)
    # BLEU 1 at ranks 1 and 3: (1 + 1/3) / (1 + 1/2 + 1/3) = 8/11
    assert rank_weighted_bleu(["a b c d"], [["a b c d", "x", "a b c d"]]) == pytest.approx(
        8 / 11, abs=TOL
    )


def test_rank_weighted_bleu_normalises_by_the_suggestions_a_row_has():
    # one perfect suggestion scores 1 with k = 10, not 1 / H_10
    assert rank_weighted_bleu(["a b c d"], [["a b c d"]], k=10) == 1.0
    # repeated suggestions all count
    assert rank_weighted_bleu(["a b c d"], [["a b c d"] * 3]) == pytest.approx(1.0, abs=TOL)


def test_rank_weighted_bleu_truncates_at_k_and_scores_empty_lists_0():
    row = ["x", "y", "a b c d"]
    assert rank_weighted_bleu(["a b c d"], [row], k=2) == 0.0
    assert rank_weighted_bleu(["a b c d"], [row], k=3) == pytest.approx(
        (1 / 3) / (1 + 1 / 2 + 1 / 3), abs=TOL
    )
    assert rank_weighted_bleu(["a b c d"], [[]]) == 0.0
    two_rows = rank_weighted_bleu(["a b c d", "a b c d"], [[], ["a b c d"]])
    assert two_rows == pytest.approx(0.5, abs=TOL)


@given(
    rows=st.lists(
        st.tuples(
            st.lists(st.sampled_from(VOCAB), max_size=6),
            st.lists(st.lists(st.sampled_from(VOCAB), max_size=6), max_size=12),
        ),
        min_size=1,
        max_size=6,
    ),
    k=st.integers(1, 10),
)
def test_rank_weighted_bleu_equals_a_direct_nltk_computation(rows, k):
    targets = [" ".join(t) for t, _ in rows]
    suggestions = [[" ".join(s) for s in row] for _, row in rows]
    expected = nltk_rank_weighted_bleu(targets, suggestions, k)
    assert abs(rank_weighted_bleu(targets, suggestions, k=k) - expected) <= TOL


def test_rank_weighted_bleu_equals_nltk_on_seeded_rows():
    rng = np.random.default_rng(1)
    for k in (1, 3, 10):
        targets, suggestions = [], []
        for _ in range(60):
            target = list(rng.choice(VOCAB, size=rng.integers(0, 8)))
            targets.append(" ".join(target))
            row = []
            for _ in range(rng.integers(0, 13)):
                s = list(rng.choice(VOCAB, size=rng.integers(0, 8)))
                row.append(" ".join(target[:2] + s if rng.random() < 0.5 else s))
            suggestions.append(row)
        expected = nltk_rank_weighted_bleu(targets, suggestions, k)
        assert abs(rank_weighted_bleu(targets, suggestions, k=k) - expected) <= TOL


def test_the_library_does_not_import_nltk():
    code = "import sys, pecos_rs.metrics; sys.exit('nltk' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------------------------------ report


def test_qac_report_by_prefix_length():
    prefixes = ["", "ab", "abc", "abcd", "été", "ééééé"]  # len 0, 2, 3, 4, 3 (5 bytes), 5
    targets = ["a b c d", "q", "r", "s", "a b c d", "t"]
    suggestions = [["a b c d"], ["x", "q"], [], [], ["a b c d", "x"], ["x", "y", "t"]]
    report = qac_report(prefixes, targets, suggestions, k=2)
    assert set(report) == {"all", "prefix<=3", "prefix>3"}
    assert {g: report[g]["n_rows"] for g in report} == {"all": 6, "prefix<=3": 4, "prefix>3": 2}
    for group in report.values():
        assert set(group) == {"n_rows", "MRR@2", "success@2", "bleu", "empty"}
    short, long = report["prefix<=3"], report["prefix>3"]
    # short rows: "", "ab", "abc", "été"; long: "abcd", "ééééé" (its target at rank 3 > k)
    assert short["MRR@2"] == pytest.approx((1 + 1 / 2 + 0 + 1) / 4, abs=TOL)
    assert short["success@2"] == pytest.approx(3 / 4, abs=TOL)
    assert short["empty"] == pytest.approx(1 / 4, abs=TOL)
    assert long["MRR@2"] == 0.0 and long["success@2"] == 0.0
    assert long["empty"] == pytest.approx(1 / 2, abs=TOL)
    assert report["all"]["empty"] == pytest.approx(2 / 6, abs=TOL)
    # "q" after "x": BLEU 0 then 0.1**0.75 (one token, matched)
    bleu_q = (0.1**0.75 / 2) / (1 + 1 / 2)
    bleu_e = 1 / (1 + 1 / 2)
    assert short["bleu"] == pytest.approx((1 + bleu_q + 0 + bleu_e) / 4, abs=TOL)
    assert long["bleu"] == 0.0


def test_qac_report_groups_equal_the_functions_on_their_rows():
    rng = np.random.default_rng(2)
    n = 40
    prefixes = ["x" * int(rng.integers(0, 7)) for _ in range(n)]
    targets = [" ".join(rng.choice(VOCAB[:3], size=rng.integers(1, 3))) for _ in range(n)]
    suggestions = [
        [" ".join(rng.choice(VOCAB[:3], size=rng.integers(1, 3))) for _ in range(m)]
        for m in rng.integers(0, 5, size=n)
    ]
    report = qac_report(prefixes, targets, suggestions, k=3)
    groups = {"all": range(7), "prefix<=3": range(4), "prefix>3": range(4, 7)}
    for name, lengths in groups.items():
        rows = [i for i in range(n) if len(prefixes[i]) in lengths]
        t = [targets[i] for i in rows]
        s = [suggestions[i] for i in rows]
        group = report[name]
        assert group["n_rows"] == len(rows) > 0
        assert group["MRR@3"] == pytest.approx(mrr_at_k(t, s, k=3), abs=TOL)
        assert group["success@3"] == pytest.approx(success_at_k(t, s, k=3), abs=TOL)
        assert group["bleu"] == pytest.approx(nltk_rank_weighted_bleu(t, s, 3), abs=TOL)
        assert group["empty"] == pytest.approx(np.mean([len(x) == 0 for x in s]), abs=TOL)


def test_qac_report_empty_group_is_nan():
    report = qac_report(["abcd", "abcde"], ["a", "b"], [["a"], []])
    assert report["prefix<=3"]["n_rows"] == 0
    metrics = ("MRR@10", "success@10", "bleu", "empty")
    assert all(math.isnan(report["prefix<=3"][m]) for m in metrics)
    assert report["prefix>3"]["n_rows"] == 2 and report["prefix>3"]["MRR@10"] == 0.5


# ------------------------------------------------------------------------------------ bad input

def report_of(targets, suggestions, k=10):
    """qac_report with empty prefixes, to check its validation of the other arguments."""
    return qac_report([""] * len(list(targets)), targets, suggestions, k)


@pytest.mark.parametrize("metric", QAC_METRICS + [report_of])
@pytest.mark.parametrize(
    "targets, suggestions, message",
    [
        (["a", "b"], [["a"]], "suggestions must be as long as targets (2), got 1 lists"),
        (["a"], [["a"], []], "suggestions must be as long as targets (1), got 2 lists"),
        ([], [], "targets must hold at least one row, got 0"),
        (["a", None], [[], []], "targets[1] must be a str, got None"),
        ([b"a"], [[]], "targets[0] must be a str, got b'a'"),
        ([1.5], [[]], "targets[0] must be a str, got 1.5"),
        ("ab", [[], []], "targets must be a sequence of str, got 'ab'"),
        (["a"], [["a", 3]], "suggestions[0][1] must be a str, got 3"),
        (["a", "b"], [[], "ab"], "suggestions[1] must be a sequence of str, got 'ab'"),
        (["a"], [None], "suggestions[0] must be a sequence of str, got None"),
        (["a"], [{"a"}], "suggestions[0] must be a sequence of str, got {'a'}"),
        (["a"], "a", "suggestions must be a sequence of lists of str, got 'a'"),
        (["a"], 5, "suggestions must be a sequence of lists of str, got 5"),
    ],
)
def test_bad_input(metric, targets, suggestions, message):
    with pytest.raises(InvalidInputError) as info:
        metric(targets, suggestions)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("metric", QAC_METRICS + [report_of])
@pytest.mark.parametrize("k", [0, -1, 1.5, 2.0, "3", True, None, np.float64(2)])
def test_bad_k(metric, k):
    with pytest.raises(InvalidParameterError, match=r"^k must be an int >= 1, got ") as info:
        metric(["a"], [["a"]], k=k)
    assert str(info.value) == f"k must be an int >= 1, got {k!r}"


@pytest.mark.parametrize(
    "prefixes, message",
    [
        (["a"], "prefixes must be as long as targets (2), got 1 prefixes"),
        (["a", 3], "prefixes[1] must be a str, got 3"),
        ("ab", "prefixes must be a sequence of str, got 'ab'"),
    ],
)
def test_qac_report_bad_prefixes(prefixes, message):
    with pytest.raises(InvalidInputError) as info:
        qac_report(prefixes, ["a", "b"], [[], []])
    assert str(info.value) == message

"""Text in, ranked labels out: :class:`TextXRLinear`, the product-retrieval model (PECOS's product
search, Chang et al., KDD 2021).

A :class:`~pecos_rs.text.TextFeaturizer` turns each text into TF-IDF features, an
:class:`~pecos_rs.XRLinearClassifier` ranks the labels. Labels are named (product ids, sites,
...) and may come with a text of their own (a product title): most products of a real catalogue
have few or no training queries, and their text is what lets them be found. Label texts are used
twice, each use a parameter: as training rows of their label, and by an exact matcher that scores
every label by the cosine similarity of its text to the query, blended with the model's score. A
second matcher does the same with each label's centroid of training texts (its PIFA embedding),
which finds labels for texts unlike any one training text of theirs; a third lets the training
texts most similar to a text vote for their labels, which finds labels one training text of
theirs is close to though their centroid is not. Far down the lists, where the blended scores
are tiny, a bonus for each list's rank lets the labels several lists agree on come first, and a
co-click list adds the labels that the training texts of the top labels have too.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from . import _pecos_rs
from ._artifact import corrupt, read_metadata, write_metadata
from ._params import check_param, is_int, is_number, str_list
from ._sparse import csr_args
from ._threads import resolve_n_jobs
from .exceptions import InvalidInputError, InvalidParameterError, ModelFormatError
from .indexer import pifa
from .text import TextFeaturizer, preset_blocks
from .xlinear import XRLinearClassifier, _search_params, load_model_file

logger = logging.getLogger("pecos_rs")

_FORMAT_NAME = "pecos_rs.TextXRLinear"
#: Version 2 added the neighbour index, version 3 the label-name matcher, version 4 the rank bonus
#: and the co-click matrix; older directories load without them.
_FORMAT_VERSION = 4
_READABLE_VERSIONS = (1, 2, 3, 4)
_META_FILE = "text_xrlinear.json"
_LABELS_FILE = "labels.npy"
_MATCHER_FILE = "label_text_matcher.bin"
_CENTROID_FILE = "centroid_matcher.bin"
_NEIGHBOUR_FILE = "neighbour_index.bin"
_NAME_MATCHER_FILE = "label_name_matcher.bin"
_CO_CLICK_FILE = "co_click_matrix.bin"

#: ``neighbour_weight="auto"`` without label texts (BENCHMARKS.md, "nearest training texts").
AUTO_NEIGHBOUR_WEIGHT = 0.03
#: ``label_name_weight="auto"`` without label texts (BENCHMARKS.md, "label names").
AUTO_LABEL_NAME_WEIGHT = 0.07
#: ``rank_weight="auto"`` and ``co_click_weight="auto"`` without label texts (BENCHMARKS.md,
#: "rank bonus and co-click").
AUTO_RANK_WEIGHT = 0.04
AUTO_CO_CLICK_WEIGHT = 0.08
#: The parameters whose "auto" depends on whether the labels have texts: their value without.
_AUTO_WEIGHTS = {"neighbour_weight": AUTO_NEIGHBOUR_WEIGHT, "label_name_weight": AUTO_LABEL_NAME_WEIGHT,
                 "rank_weight": AUTO_RANK_WEIGHT, "co_click_weight": AUTO_CO_CLICK_WEIGHT}
#: The bonus weights: added to the score, not shares of it.
_BONUS_WEIGHTS = ("rank_weight", "co_click_weight")
#: The rank bonus ``rank_weight * share / (RANK_OFFSET + rank)``: each list's share.
RANK_OFFSET = 2.0
_RANK_SHARES = {"model": 0.5, "label_text": 1.0, "centroid": 1.0, "neighbour": 2.0, "label_name": 1.0}
#: The co-click list: from the blend's top CO_CLICK_FROM_TOP labels, bonus
#: ``co_click_weight / (CO_CLICK_OFFSET + rank)``.
CO_CLICK_FROM_TOP = 10
CO_CLICK_OFFSET = 5.0

#: The TextFeaturizer preset of a TextXRLinear given no featurizer (BENCHMARKS.md, "choosing
#: TextXRLinear's defaults": on the validation parts, half the time per query of "retrieval" for
#: 0.07 / 0.14 R@10 points on aol-click / homedepot).
DEFAULT_FEATURES = "fast"


class TextXRLinear(BaseEstimator):
    """Rank named labels for raw texts: a text featurizer and an XR-Linear model in one estimator.

    Parameters
    ----------
    featurizer : TextFeaturizer or None, default=None
        Fitted on the training texts and the label texts; None means
        ``TextFeaturizer(blocks="fast")`` (word 1-2-grams + character 3-grams of space-padded
        words, sublinear tf): on the validation parts of aol-click and homedepot it answers a
        query in half the time of ``"retrieval"`` (word 1-2 + character 2-4-grams), the most
        accurate preset there, for 0.07 and 0.14 points of R@10 (0.46 and 0.16 of R@100);
        its blocks run on the classifier's ``n_jobs`` threads. ``TextFeaturizer()`` is PECOS's
        product-search setting (``"paper"``).
    classifier : XRLinearClassifier or None, default=None
        The ranking model (its ``topk``, ``beam_size`` and ``post_processor`` are the prediction
        defaults); None means ``XRLinearClassifier()``.
    label_text_rows : bool, default=True
        With label texts, add each as a training row of its label.
    label_text_weight : float in [0, 1], default=0.5
        ``w_t``: with label texts, the weight of ``cosine(text, label text)`` in the score (0
        turns this matcher off and does not build it).
    centroid_weight : float in [0, 1], default=0.0
        ``w_c``: the weight of ``cosine(text, label centroid)``, the centroid being the
        normalised sum of the label's training texts' features (PIFA; only texts, not label
        texts); 0 turns this matcher off and does not build it. The final score of a label is
        ``(1 - w_t - w_c - w_n - w_l(s)) * model score + w_t * text cosine + w_c * centroid
        cosine + w_n * neighbour vote + w_l(s) * name match`` (``w_l(s)``: see
        ``label_name_weight``) over the union of the candidates of the model and the matchers (a
        label missing from one list scores 0 there), so ``w_t + w_c + w_n + w_l <= 1``. Off by
        default: on aol-click's validation part the neighbour vote finds more for less time per
        query (R@10 68.67 / R@100 78.99 against 68.52 / 77.54 with ``w_c = 0.005`` and no vote;
        both: 69.12 / 79.41 in 1.7x the time), and on homedepot's neither helps (BENCHMARKS.md,
        "nearest training texts"). A small weight leaves the model's confident labels first
        and ranks the centroid matches among its weak ones.
    centroid_max_df : int >= 1 or float in (0, 1], default=1.0
        Features present in the centroids of more labels than this (a count, or a fraction of
        the labels as a float) are dropped from the centroid matcher, as stop words are (rows are
        not renormalised); 1.0 keeps every feature. The common character n-grams are most of the
        matcher's weights and of its time per query: on aol-click, 1000 makes the matcher 4x
        faster and half the size for 0.12 R@10 and 0.35 R@100 (points, validation part;
        BENCHMARKS.md).
    neighbour_weight : float in [0, 1] or "auto", default="auto"
        ``w_n``: the weight of the vote of the training texts nearest to the text (0 turns it
        off; its index is then built only if ``label_name_weight`` needs it). The
        ``n_neighbours`` distinct training texts of highest cosine similarity to the text vote
        for their labels, each with
        ``similarity ** neighbour_power`` times the share of its training rows that have the
        label; a label's score is its votes divided by the best label's (so the best scores 1).
        ``"auto"``: 0.03 without label texts (0.05 before the rank bonus), 0 with them. On
        aol-click's validation part (no label texts) the vote adds 0.15 R@10 and 1.45 R@100
        points over the centroid matcher it replaces, in the same time per query; on homedepot's (titles, few training queries,
        unseen products) it costs 1.4 R@10 (BENCHMARKS.md, "nearest training texts").
    label_name_weight : float in [0, 1] or "auto", default="auto"
        ``w_l``: the most the name match may weigh. The label names are read as texts whose
        words are separated by anything not a letter or digit (``"bank-rates.co.uk"`` is
        ``"bank rates co uk"``), each name the one text of its label, and scored as the
        neighbour vote scores the training texts (``cosine ** neighbour_power`` relative to the
        best name's, the features of more than ``neighbour_max_df`` names left out). The match
        weighs ``w_l * (1 - s) ** 2`` for a text whose nearest training text has similarity
        ``s`` (as the vote measures it: 1 for a training text), so the names count for the
        texts the training texts do not know and hardly for those they do; the model's share
        is what the matchers leave. 0 turns the match off and does not build it; the vote's
        index is built for ``s`` even if ``neighbour_weight`` is 0. ``"auto"``: 0.07 (0.1 before
        the rank bonus) without label texts (the name is then all a label says of itself), 0
        with them. On aol-click's
        validation parts (site names) the name match adds to the vote R@10 / R@100 0.47 / 1.25
        points where most validation queries are training queries (a random 10% of the rows)
        and 4.96 / 8.38 where none is (BENCHMARKS.md, "label names").
    rank_weight : float >= 0 or "auto", default="auto"
        ``a``: each list (the model's and each matcher's) adds ``a * share / (2 + rank)`` to the
        score of a label at 1-based ``rank`` in it (share 0.5 for the model, 2 for the vote, 1
        for the others): far down the lists the weighted scores are tiny and close together,
        and there the labels several lists agree on come first. The label of the best score
        without bonuses stays first. 0 turns it off; ``"auto"``: 0.04 without label texts, 0
        with them.
    co_click_weight : float >= 0 or "auto", default="auto"
        ``a_c``: the co-click list adds labels none of the lists has. The blend's top 10 labels,
        each weighted by its score relative to the best, select the labels the same training
        texts have (label ``i`` gives label ``j`` the share of the distinct training texts with
        ``i`` that have ``j`` too, summed), whose top ``match_candidates`` join the blend with
        the bonus ``a_c / (5 + rank)``. 0 turns it off and does not build the matrix;
        ``"auto"``: 0.08 without label texts, 0 with them. On aol-click's validation parts the
        rank bonus and the co-click list together add 0.9-1.0 R@10 and 1.9 R@100 points, the
        vote and name weights lowered with them (BENCHMARKS.md, "rank bonus and co-click").
    n_neighbours : int >= 1, default=200
    neighbour_power : float > 0, default=4.0
        Higher powers give the closest texts more of the say.
    neighbour_max_df : int >= 1 or float in (0, 1], default=2000
        As ``centroid_max_df``, for the neighbour index: features of more distinct training
        texts than this are left out of the similarities (1.0 keeps every feature). Those few
        common n-grams are most of the index's entries a query reads: on aol-click 2000 keeps
        68% of them and answers in 0.6x the time of 1.0, for 0.2 R@10 and 0.5 R@100 points.
    match_candidates : int, default=100
        Labels taken from each of the model and the matchers before blending (at least ``k``).
    text_weight_C : float > 0 or None, default=30.0
        With label texts, learn how much each feature's overlap between a text and a label text
        counts: a logistic regression (the package's solver, cost ``C``) over (training text,
        candidate label) pairs, the candidates being the label-text match's top
        ``match_candidates`` and the text's relevant labels, the features the products
        ``text_f * label_text_f`` and their sum (the cosine). The learned weights are folded into
        the matcher (no cost per query); a feature never overlapping in training keeps weight 1.
        None keeps the plain cosine. The default was chosen on a validation part of homedepot's
        training split (BENCHMARKS.md).
    coarse_layers : int >= 0, default=2
        The classifier's top layers trained cheaply (``XRLinearClassifier(coarse_layers=...)``):
        on the columns of ``coarse_features`` and with at most ``coarse_max_iter`` solver passes.
        These three replace the classifier's own ``coarse_*`` settings. On aol-click's validation
        part the defaults keep the recall (R@10 68.52 both, R@100 77.54 against 77.43) and train
        the two top layers about 5x faster, the whole fit in 0.78x the time; on homedepot's,
        R@10 44.61 against 44.67 (BENCHMARKS.md, "coarse top layers"). 0 trains every layer on
        every feature.
    coarse_features : "auto", str or None, default="auto"
        The featurizer's columns the coarse layers see: those of every block up to the one of
        this name (blocks are stacked in order); ``"auto"``: up to a first block named
        ``"word"`` (every preset's word n-grams) if there is one, else all; None: all.
    coarse_max_iter : int >= 1, default=5
        Solver passes of the coarse layers.
    tol : float > 0 or None, default=0.5
        The classifier's solver tolerance (replaces its ``tol``, PECOS's 0.1, as the coarse
        settings replace theirs); None keeps the classifier's. With the neighbour vote the
        looser tolerance costs nothing on the validation parts (aol-click R@10 68.69 / R@100
        78.98 against 68.67 / 78.99, homedepot 44.80 / 79.78 against 44.79 / 79.78) and the fit
        takes 0.80x the time (BENCHMARKS.md, "the vote of the nearest training texts").
    beam_size : int >= 1 or None, default=5
        The classifier's beam width at prediction (replaces its ``beam_size``, PECOS's 10);
        None keeps the classifier's. With the matchers the beam matters little: on the
        validation parts beam 5 costs 0.04 R@10 points on aol-click (69.12 against 69.16) and
        0.01 on homedepot, for 0.89x the time per query on aol-click (BENCHMARKS.md, "label
        names").

    Attributes
    ----------
    labels_ : ndarray of str
        The label names, in column order.
    featurizer_ : TextFeaturizer
    classifier_ : XRLinearClassifier
    matcher_ : pecos_rs._pecos_rs.XLinearModel or None
        The exact label-text matcher: one layer whose weights are the label texts' features.
    centroid_matcher_ : pecos_rs._pecos_rs.XLinearModel or None
        The same over the label centroids.
    neighbour_index_ : pecos_rs._pecos_rs.NeighbourIndex or None
        The distinct training texts' features and their labels' shares, for the neighbour vote.
    neighbour_weight_ : float
        The neighbour vote's weight at fit (``neighbour_weight`` with "auto" resolved); the
        index is built if it is > 0.
    name_matcher_ : pecos_rs._pecos_rs.NeighbourIndex or None
        The label names' features, each name a text of its label, for the name match.
    label_name_weight_ : float
        ``label_name_weight`` at fit, "auto" resolved; the name matcher is built if it is > 0.
    co_click_matrix_ : pecos_rs._pecos_rs.NeighbourIndex or None
        The co-click shares: a neighbour index whose features and texts are the labels.
    rank_weight_, co_click_weight_ : float
        ``rank_weight`` and ``co_click_weight`` at fit, "auto" resolved; the co-click matrix is
        built if ``co_click_weight_`` is > 0.

    Examples
    --------
    >>> from pecos_rs import TextXRLinear
    >>> model = TextXRLinear().fit(
    ...     ["cordless drill", "drill bits", "garden hose"], [["p1"], ["p1", "p2"], ["p3"]],
    ...     label_texts={"p1": "20V cordless drill driver", "p2": "titanium drill bit set",
    ...                  "p3": "50 ft garden hose"})
    >>> [name for name, score in model.predict_one("drill", k=2)]
    ['p1', 'p2']
    """

    def __init__(self, featurizer=None, classifier=None, *, label_text_rows=True,
                 label_text_weight=0.5, centroid_weight=0.0, centroid_max_df=1.0, neighbour_weight="auto",
                 label_name_weight="auto", rank_weight="auto", co_click_weight="auto", n_neighbours=200,
                 neighbour_power=4.0, neighbour_max_df=2000,
                 match_candidates=100, text_weight_C=30.0, coarse_layers=2, coarse_features="auto",
                 coarse_max_iter=5, tol=0.5, beam_size=5):
        self.featurizer = featurizer
        self.classifier = classifier
        self.label_text_rows = label_text_rows
        self.label_text_weight = label_text_weight
        self.centroid_weight = centroid_weight
        self.centroid_max_df = centroid_max_df
        self.neighbour_weight = neighbour_weight
        self.label_name_weight = label_name_weight
        self.rank_weight = rank_weight
        self.co_click_weight = co_click_weight
        self.n_neighbours = n_neighbours
        self.neighbour_power = neighbour_power
        self.neighbour_max_df = neighbour_max_df
        self.match_candidates = match_candidates
        self.text_weight_C = text_weight_C
        self.coarse_layers = coarse_layers
        self.coarse_features = coarse_features
        self.coarse_max_iter = coarse_max_iter
        self.tol = tol
        self.beam_size = beam_size

    # ------------------------------------------------------------------ training

    def _check_own_params(self):
        if self.featurizer is not None and not isinstance(self.featurizer, TextFeaturizer):
            raise InvalidParameterError(
                f"featurizer must be a TextFeaturizer or None, got {type(self.featurizer).__name__}")
        if self.classifier is not None and not isinstance(self.classifier, XRLinearClassifier):
            raise InvalidParameterError(
                f"classifier must be an XRLinearClassifier or None, got {type(self.classifier).__name__}")
        check_param(self, "label_text_rows", isinstance(self.label_text_rows, (bool, np.bool_)), "a bool")
        for name in ("label_text_weight", "centroid_weight", *_AUTO_WEIGHTS):
            w = getattr(self, name)
            if not (name in _AUTO_WEIGHTS and isinstance(w, str) and w == "auto"):
                if name in _BONUS_WEIGHTS:
                    check_param(self, name, is_number(w) and 0.0 <= w < float("inf"), 'a number >= 0 or "auto"')
                else:
                    check_param(self, name, is_number(w) and 0.0 <= w <= 1.0, "a number in [0, 1]"
                                + (' or "auto"' if name in _AUTO_WEIGHTS else ""))
        for name in ("centroid_max_df", "neighbour_max_df"):
            df = getattr(self, name)
            check_param(self, name,
                        (is_int(df) and df >= 1)
                        or (isinstance(df, (float, np.floating)) and 0.0 < df <= 1.0),
                        "an int >= 1 or a float in (0, 1]")
        check_param(self, "n_neighbours", is_int(self.n_neighbours) and self.n_neighbours >= 1, "an int >= 1")
        p = self.neighbour_power
        check_param(self, "neighbour_power", is_number(p) and 0 < p < float("inf"), "a number > 0")
        check_param(self, "match_candidates", is_int(self.match_candidates) and self.match_candidates >= 1,
                    "an int >= 1")
        c = self.text_weight_C
        check_param(self, "text_weight_C", c is None or (is_number(c) and 0 < c < float("inf")),
                    "a number > 0 or None")
        check_param(self, "coarse_layers", is_int(self.coarse_layers) and self.coarse_layers >= 0,
                    "an integer >= 0")
        check_param(self, "coarse_max_iter", is_int(self.coarse_max_iter) and self.coarse_max_iter >= 1,
                    "an integer >= 1")
        tol = self.tol
        check_param(self, "tol", tol is None or (is_number(tol) and 0 < tol < float("inf")), "a number > 0 or None")
        b = self.beam_size
        check_param(self, "beam_size", b is None or (is_int(b) and b >= 1), "an int >= 1 or None")

    def _check_weights(self, resolved, has_label_texts):
        """The weights of the matchers the model will have (`resolved`: the "auto" ones as
        numbers) must leave the model a share >= 0."""
        weights = {"label_text_weight": self.label_text_weight} if has_label_texts else {}
        weights.update(centroid_weight=self.centroid_weight,
                       **{name: w for name, w in resolved.items() if name not in _BONUS_WEIGHTS})
        if sum(weights.values()) > 1.0:
            raise InvalidParameterError(
                f"{' + '.join(weights)} must be at most 1, got " + " + ".join(map(repr, weights.values())))

    def _resolved_weights(self, has_label_texts) -> dict:
        """The weights that may be "auto", as numbers ("auto": on without label texts)."""
        resolved = {}
        for name, auto in _AUTO_WEIGHTS.items():
            w = getattr(self, name)
            resolved[name] = (0.0 if has_label_texts else auto) if isinstance(w, str) else float(w)
        return resolved

    def _coarse_n_features(self, featurizer):
        """The leading columns of `featurizer`'s rows the coarse layers are trained on (None: all)."""
        names = [name for name, _ in featurizer.blocks_]
        wanted = self.coarse_features
        if isinstance(wanted, str) and wanted == "auto":
            wanted = "word" if names[0] == "word" else None
        if wanted is None:
            return None
        if not isinstance(wanted, str) or wanted not in names:
            raise InvalidParameterError(
                f"coarse_features must be 'auto', None or the name of a block of the featurizer {names}, "
                f"got {self.coarse_features!r}")
        blocks = featurizer.blocks_[:names.index(wanted) + 1]
        return sum(f.tfidf_model_.n_columns for _, f in blocks)

    def fit(self, texts, labels, *, label_names=None, label_texts=None):
        """Learn to rank the labels of each text.

        Parameters
        ----------
        texts : sequence of str
        labels : sequence of sequences of str, or {array-like, sparse matrix} of shape (n_texts, n_labels)
            The relevant label names of each text (possibly none), or a label indicator matrix
            whose columns are ``label_names``.
        label_names : sequence of str, optional
            Every label, in column order: required with an indicator matrix; with label lists,
            the labels that may be predicted (a label outside it is an error), including labels
            no text has (cold start). Default: the sorted distinct labels of ``labels`` and of
            ``label_texts``.
        label_texts : sequence of str or mapping of str to str, optional
            A text per label (a product title): aligned with ``label_names``, or by label name.

        Returns
        -------
        self : TextXRLinear
        """
        self._check_own_params()
        texts = str_list(texts, "texts")
        names, Y = _label_matrix(labels, len(texts), label_names, label_texts)
        label_text_list = _align_label_texts(label_texts, names)
        resolved = self._resolved_weights(label_text_list is not None)
        self._check_weights(resolved, label_text_list is not None)
        log = logger.info if self.classifier is not None and self.classifier.verbose else (lambda msg: None)
        n_jobs = self.classifier.n_jobs if self.classifier is not None else None
        n_threads = resolve_n_jobs(n_jobs)

        start = time.perf_counter()
        if self.featurizer is not None:
            featurizer = clone(self.featurizer)
        else:
            featurizer = TextFeaturizer(blocks=preset_blocks(DEFAULT_FEATURES, n_jobs=n_jobs))
        # One tokenization of the training texts and the label texts (fitted on both).
        rows = featurizer.fit_transform(texts + (label_text_list or []))
        X = rows[:len(texts)]
        T = rows[len(texts):] if label_text_list is not None else None
        del rows
        log(f"featurized {len(texts)} texts into {X.shape[1]} features in {time.perf_counter() - start:.2f} s")
        X_rows, Y_rows = X, Y
        if T is not None and self.label_text_rows:
            X_rows = sp.vstack([X, T], format="csr")
            Y_rows = sp.vstack([Y, sp.identity(len(names), dtype=np.float32, format="csr")], format="csr")
        if X_rows.shape[0] == 0:
            raise InvalidInputError("cannot fit on no texts")
        classifier = clone(self.classifier) if self.classifier is not None else XRLinearClassifier()
        classifier.set_params(coarse_layers=self.coarse_layers, coarse_n_features=self._coarse_n_features(featurizer),
                              coarse_max_iter=self.coarse_max_iter)
        if self.tol is not None:
            classifier.set_params(tol=self.tol)
        if self.beam_size is not None:
            classifier.set_params(beam_size=self.beam_size)
        # Without label-text rows the classifier clusters the texts' centroids (their PIFA
        # embeddings), which the centroid matcher holds too: computed once for both.
        centroids = pifa(Y, X, n_jobs=n_threads) if X_rows is X else None
        classifier.fit(X_rows, Y_rows, label_embedding=centroids)

        self.featurizer_, self.classifier_, self.labels_ = featurizer, classifier, names
        self.matcher_ = None
        if T is not None and self.label_text_weight > 0:
            if self.text_weight_C is not None:
                weights = _learned_text_weights(X, Y, T, self.text_weight_C, self.match_candidates, n_threads,
                                                classifier.random_state)
                T = T.multiply(weights).tocsr()
                log("learned the weights of the label-text match")
            self.matcher_ = _exact_matcher(T)
        self.centroid_matcher_ = None
        if self.centroid_weight > 0:
            # The texts' centroids only: a label text is the matcher's, not a training text.
            if centroids is None:
                centroids = pifa(Y, X, n_jobs=n_threads)
            self.centroid_matcher_ = _exact_matcher(_drop_common_features(centroids, self.centroid_max_df))
        self.neighbour_weight_ = resolved["neighbour_weight"]
        self.neighbour_index_ = None
        distinct = _DistinctTexts(texts, Y)
        if self.neighbour_weight_ > 0 or resolved["label_name_weight"] > 0:
            self.neighbour_index_ = distinct.neighbour_index(X, self.neighbour_max_df)
            log(f"indexed {self.neighbour_index_.n_texts} distinct texts for the neighbour vote")
        self.label_name_weight_ = resolved["label_name_weight"]
        self.name_matcher_ = None
        if self.label_name_weight_ > 0:
            # Each name a text of its own label: the names vote as the nearest training texts do.
            name_texts = _name_texts(names)
            one_each = _DistinctTexts(name_texts, sp.identity(len(names), dtype=np.float32, format="csr"))
            self.name_matcher_ = one_each.neighbour_index(featurizer.transform(name_texts), self.neighbour_max_df)
        self.rank_weight_ = resolved["rank_weight"]
        self.co_click_weight_ = resolved["co_click_weight"]
        self.co_click_matrix_ = distinct.co_click_matrix() if self.co_click_weight_ > 0 else None
        return self

    # ---------------------------------------------------------------- prediction

    def predict_topk(self, texts, k=None):
        """Top-k label indices (into ``labels_``, padded with -1) and scores (padded with 0) per text,
        as two ``(n_texts, k)`` arrays, best first."""
        check_is_fitted(self, "classifier_")
        texts = str_list(texts, "texts")
        k = self._check_k(k)
        X = self.featurizer_.transform(texts)
        return self._blend(csr_args(X), k, self.classifier_._n_threads())

    def predict(self, texts, k=None) -> list:
        """Per text, up to `k` ``(label name, score)`` pairs, best first."""
        labels, scores = self.predict_topk(texts, k)
        return [self._named(row_labels, row_scores) for row_labels, row_scores in zip(labels, scores)]

    def predict_one(self, text: str, k=None) -> list:
        """:meth:`predict` for one text: the real-time path (no scipy matrix, one thread, one
        call into the core for the search and the blend)."""
        check_is_fitted(self, "classifier_")
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a str, got {type(text).__name__}")
        k = self._check_k(k)
        labels, scores = self._blend(self.featurizer_._row_arrays(text), k, 1)
        return self._named(labels[0], scores[0])

    def _check_k(self, k):
        k = self.classifier_.topk if k is None else k
        if not is_int(k) or k < 1:
            raise InvalidInputError(f"k must be an int >= 1, got {k!r}")
        return int(k)

    def _matchers(self) -> list:
        """``(matcher, weight)`` of the matchers this model has."""
        pairs = [(self.matcher_, self.label_text_weight), (self.centroid_matcher_, self.centroid_weight),
                 (self.neighbour_index_, self._weight_now("neighbour_weight")),
                 (self.name_matcher_, self._weight_now("label_name_weight"))]
        return [(m, w) for m, w in pairs if m is not None]

    def _weight_now(self, name):
        """The weight `name` (one of the "auto" ones) now: the parameter (changed by
        ``set_params`` after fitting, as the other weights may be), or, for "auto", what it was
        resolved to at fit."""
        w = getattr(self, name)
        return getattr(self, name + "_") if isinstance(w, str) else float(w)

    def _blend(self, x, k, n_threads, model_result=None):
        """The top `k` of the rows `x` (the core's CSR tuple): the classifier's top
        ``max(k, match_candidates)`` (or `model_result`, a top-k computed by the caller) and the
        matchers', weighted as the parameters say (:func:`pecos_rs._pecos_rs.blend_topk`; a
        model with the name match has the vote's index: fit builds it, load checks it)."""
        clf = self.classifier_
        if model_result is None and not self._matchers() and self.co_click_matrix_ is None:
            return clf._search(x, _search_params(clf.beam_size, k, clf.post_processor), n_threads)
        n = max(k, self.match_candidates)
        model = model_result
        if model is None:
            model = (list(clf.models_), _search_params(clf.beam_size, n, clf.post_processor))
        exact = [(m, float(w), _RANK_SHARES[name]) for m, w, name in (
            (self.matcher_, self.label_text_weight, "label_text"),
            (self.centroid_matcher_, self.centroid_weight, "centroid")) if m is not None]
        vote = names = co_click = None
        if self.neighbour_index_ is not None:
            vote = (self.neighbour_index_, self._weight_now("neighbour_weight"), _RANK_SHARES["neighbour"])
        if self.name_matcher_ is not None:
            names = (self.name_matcher_, self._weight_now("label_name_weight"), _RANK_SHARES["label_name"])
        if self.co_click_matrix_ is not None:
            co_click = (self.co_click_matrix_, self._weight_now("co_click_weight"), CO_CLICK_OFFSET,
                        CO_CLICK_FROM_TOP)
        return _pecos_rs.blend_topk(
            x, model, model_rank_share=_RANK_SHARES["model"], matchers=exact, vote=vote, names=names,
            n_neighbours=int(self.n_neighbours), power=float(self.neighbour_power),
            rank_weight=self._weight_now("rank_weight"), rank_offset=RANK_OFFSET, co_click=co_click,
            k=k, n=n, n_threads=n_threads)

    def _named(self, labels, scores):
        found = labels >= 0
        return list(zip(self.labels_[labels[found]].tolist(), scores[found].tolist()))

    def prune(self, threshold=None, max_nonzeros_per_label=None):
        """A smaller copy of this fitted model, the classifier's weights pruned again without
        retraining (see :meth:`pecos_rs.XRLinearClassifier.prune`); featurizer, labels and
        matcher are shared with this model, which is left as it is."""
        check_is_fitted(self, "classifier_")
        pruned = copy.copy(self)
        pruned.classifier_ = self.classifier_.prune(threshold, max_nonzeros_per_label)
        base = self.classifier if self.classifier is not None else XRLinearClassifier()
        pruned.classifier = clone(base).set_params(
            threshold=pruned.classifier_.threshold,
            max_nonzeros_per_label=pruned.classifier_.max_nonzeros_per_label)
        return pruned

    def compact(self, weight_dtype):
        """A copy of this fitted model whose classifier and label-text and centroid matchers
        store their weights as `weight_dtype` ("float32", "float16" or "int8"; see
        :meth:`pecos_rs.XRLinearClassifier.compact`); featurizer, labels, neighbour index,
        name matcher and co-click matrix (kept in float32) are shared with this model, which is
        left as it is."""
        check_is_fitted(self, "classifier_")
        compact = copy.copy(self)
        compact.classifier_ = self.classifier_.compact(weight_dtype)
        n_threads = compact.classifier_._n_threads()
        for name in ("matcher_", "centroid_matcher_"):
            matcher = getattr(self, name)
            if matcher is not None:
                setattr(compact, name, matcher.compacted(weight_dtype, n_threads=n_threads))
        return compact

    @property
    def n_bytes_(self) -> int:
        """Bytes of the weights in the model files: every tree, the matchers and the co-click
        matrix."""
        check_is_fitted(self, "classifier_")
        models = list(self.classifier_.models_) + [m for m, _ in self._matchers()]
        if self.co_click_matrix_ is not None:
            models.append(self.co_click_matrix_)
        return sum(len(m.to_bytes()) for m in models)

    # ------------------------------------------------------------------ persistence

    def save(self, path):
        """Write the fitted model to directory `path`: its parameters, the featurizer, the
        classifier, the label names and the matchers, in the package's validated formats."""
        check_is_fitted(self, "classifier_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.featurizer_.save(path / "featurizer")
        self.classifier_.save(path / "classifier")
        np.save(path / _LABELS_FILE, np.array(list(self.labels_), dtype=str), allow_pickle=False)
        if self.matcher_ is not None:
            self.matcher_.save(str(path / _MATCHER_FILE))
        if self.centroid_matcher_ is not None:
            self.centroid_matcher_.save(str(path / _CENTROID_FILE))
        if self.neighbour_index_ is not None:
            self.neighbour_index_.save(str(path / _NEIGHBOUR_FILE))
        if self.name_matcher_ is not None:
            self.name_matcher_.save(str(path / _NAME_MATCHER_FILE))
        if self.co_click_matrix_ is not None:
            self.co_click_matrix_.save(str(path / _CO_CLICK_FILE))
        params = {k: v for k, v in self.get_params(deep=False).items() if k not in ("featurizer", "classifier")}
        write_metadata(path / _META_FILE, _FORMAT_NAME, _FORMAT_VERSION, params=params,
                       has_matcher=self.matcher_ is not None,
                       has_centroid_matcher=self.centroid_matcher_ is not None,
                       has_neighbour_index=self.neighbour_index_ is not None,
                       has_name_matcher=self.name_matcher_ is not None,
                       has_co_click_matrix=self.co_click_matrix_ is not None,
                       **{name: getattr(self, name + "_") for name in _AUTO_WEIGHTS})

    @classmethod
    def load(cls, path, mmap=None):
        """Load a model written by :meth:`save` (ModelFormatError if corrupt, FileNotFoundError if
        a file is missing); `mmap` maps the weights (``True``), reads them (``False``) or maps
        the large files where it is safe (``None``), as :meth:`XRLinearClassifier.load` does."""
        path = Path(path)
        meta_file = path / _META_FILE
        meta = read_metadata(meta_file, _FORMAT_NAME, _READABLE_VERSIONS)
        featurizer = TextFeaturizer.load(path / "featurizer")
        classifier = XRLinearClassifier.load(path / "classifier", mmap=mmap)
        try:
            params = dict(meta["params"])
            # Written before the neighbour vote (version 1) or the name matcher (1, 2) existed.
            if meta["format_version"] == 1:
                params["neighbour_weight"] = 0.0
            if meta["format_version"] <= 2:
                params["label_name_weight"] = 0.0
            if meta["format_version"] <= 3:
                params.update({name: 0.0 for name in _BONUS_WEIGHTS})
            est = cls(featurizer=clone(featurizer), classifier=clone(classifier), **params)
            has_matcher = bool(meta["has_matcher"])
            has_centroids = bool(meta["has_centroid_matcher"])
            has_neighbours = bool(meta.get("has_neighbour_index", False))
            has_names = bool(meta.get("has_name_matcher", False))
            has_co_click = bool(meta.get("has_co_click_matrix", False))
            if has_names and not has_neighbours:
                raise ValueError("a label-name matcher without the neighbour index it is weighted by")
            resolved = {name: float(meta.get(name, 0.0)) for name in _AUTO_WEIGHTS}
            for name, w in resolved.items():
                if not (0.0 <= w < float("inf") if name in _BONUS_WEIGHTS else 0.0 <= w <= 1.0):
                    raise ValueError(f"{name} {w} is out of range")
        except (TypeError, KeyError, ValueError) as e:
            raise corrupt(meta_file, e) from e
        try:
            labels = np.load(path / _LABELS_FILE, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError) as e:
            raise ModelFormatError(f"corrupt {_LABELS_FILE} in {path}: {e}") from e
        est.featurizer_, est.classifier_ = featurizer, classifier
        est.labels_ = labels.astype(object)
        est.matcher_ = load_model_file(path / _MATCHER_FILE, mmap) if has_matcher else None
        est.centroid_matcher_ = load_model_file(path / _CENTROID_FILE, mmap) if has_centroids else None
        est.neighbour_index_ = _pecos_rs.NeighbourIndex.load(str(path / _NEIGHBOUR_FILE)) if has_neighbours else None
        est.name_matcher_ = _pecos_rs.NeighbourIndex.load(str(path / _NAME_MATCHER_FILE)) if has_names else None
        est.co_click_matrix_ = _pecos_rs.NeighbourIndex.load(str(path / _CO_CLICK_FILE)) if has_co_click else None
        for name, w in resolved.items():
            setattr(est, name + "_", w)
        n_features = featurizer.transform([""]).shape[1]
        if (labels.ndim != 1 or len(labels) != classifier.model_.n_labels
                or classifier.n_features_in_ != n_features
                or any(m.n_labels != len(labels) or m.n_features != n_features for m, _ in est._matchers())
                or (est.co_click_matrix_ is not None and not (
                    est.co_click_matrix_.n_labels == est.co_click_matrix_.n_features
                    == est.co_click_matrix_.n_texts == len(labels)))):
            raise ModelFormatError(f"the files in {path} do not belong to the same model")
        return est


def _label_matrix(labels, n_texts, label_names, label_texts):
    """The label names (object array, column order) and the binary CSR indicator of `labels`."""
    if label_names is not None:
        label_names = str_list(label_names, "label_names")
        if len(set(label_names)) != len(label_names):
            raise InvalidInputError("label_names must be distinct")
    if sp.issparse(labels) or isinstance(labels, np.ndarray):
        if label_names is None:
            raise InvalidInputError("label_names is required with an indicator matrix of labels")
        Y = sp.csr_matrix(labels, dtype=np.float32)
        if Y.shape != (n_texts, len(label_names)):
            raise InvalidInputError(
                f"labels has shape {Y.shape}, expected ({n_texts}, {len(label_names)}) for "
                f"{n_texts} texts and {len(label_names)} label names")
        if not np.isfinite(Y.data).all():
            raise InvalidInputError("labels contains NaN or infinite values")
        Y.eliminate_zeros()
        Y.data[:] = 1.0
        Y.sort_indices()
        return np.array(label_names, dtype=object), Y
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
        raise InvalidInputError(f"labels must be a sequence of label lists or an indicator matrix, got {labels!r}")
    rows = []
    for i, row in enumerate(labels):
        if isinstance(row, str) or not isinstance(row, Iterable):
            raise InvalidInputError(f"labels[{i}] must be a list of label names, got {row!r}")
        rows.append(str_list(row, f"labels[{i}]"))
    if len(rows) != n_texts:
        raise InvalidInputError(f"texts has {n_texts} entries but labels has {len(rows)}")
    if label_names is None:
        names = {name for row in rows for name in row}
        if isinstance(label_texts, Mapping):
            names.update(str_list(list(label_texts), "label_texts keys"))
        label_names = sorted(names)
    if not label_names:
        raise InvalidInputError("there are no labels")
    column = {name: j for j, name in enumerate(label_names)}
    indices = []
    for i, row in enumerate(rows):
        try:
            indices.append(sorted({column[name] for name in row}))
        except KeyError as e:
            raise InvalidInputError(f"unknown label {e.args[0]!r} in labels[{i}] (not in label_names)") from None
    indptr = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum([len(r) for r in indices], out=indptr[1:])
    flat = np.fromiter((j for r in indices for j in r), dtype=np.int32, count=int(indptr[-1]))
    Y = sp.csr_matrix((np.ones(len(flat), np.float32), flat, indptr), shape=(n_texts, len(label_names)))
    return np.array(label_names, dtype=object), Y


def _align_label_texts(label_texts, names):
    """`label_texts` as a list aligned with `names` (a label without a text gets ""), or None."""
    if label_texts is None:
        return None
    if isinstance(label_texts, Mapping):
        keys = str_list(list(label_texts), "label_texts keys")
        column = set(names)
        unknown = [key for key in keys if key not in column]
        if unknown:
            raise InvalidInputError(f"label_texts names unknown label {unknown[0]!r}")
        texts = [label_texts.get(name, "") for name in names]
        return str_list(texts, "label_texts values")
    texts = str_list(label_texts, "label_texts")
    if len(texts) != len(names):
        raise InvalidInputError(f"label_texts has {len(texts)} entries but there are {len(names)} labels")
    return texts


#: The cosine's column in the pairs is scaled up so that its regularised weight can be large at
#: little cost: the learned per-feature weights are deviations from it.
_COSINE_SCALE = 10.0
#: Training texts used to learn the label-text weights (a seeded sample above this).
_MAX_WEIGHT_TEXTS = 20_000


def _learned_text_weights(X, Y, T, C, n_candidates, n_threads, seed) -> np.ndarray:
    """Per-feature weights ``w`` (a row vector over the features) of the label-text match
    ``sum_f x_f * t_f * w_f``, learned from the texts `X` and their relevant labels `Y`.

    Pairs are each text with the label-text match's top `n_candidates` labels and its relevant
    ones; a pair's features are ``[scale * cosine, x ⊙ t]`` and its target whether the label is
    relevant. The logistic regression (cost `C`) gives ``a`` for the cosine and ``d_f`` for each
    feature; ``w_f = (a + d_f) / a`` (1 where ``d_f`` is 0). If ``a <= 0`` the match is not
    helped by learning: all weights 1."""
    n_texts, n_features = X.shape
    if n_texts > _MAX_WEIGHT_TEXTS:
        keep = np.sort(np.random.default_rng(seed).choice(n_texts, _MAX_WEIGHT_TEXTS, replace=False))
        X, Y, n_texts = X[keep], Y[keep], _MAX_WEIGHT_TEXTS
    candidates, _ = _exact_matcher(T).predict_topk(
        csr_args(X), _search_params(1, n_candidates, "noop"), n_threads=n_threads)
    Y = sp.csr_matrix(Y)
    row_parts, col_parts = [], []
    for i in range(n_texts):
        relevant = Y.indices[Y.indptr[i]:Y.indptr[i + 1]]
        labels = np.union1d(candidates[i][candidates[i] >= 0], relevant)
        row_parts.append(np.full(len(labels), i))
        col_parts.append(labels)
    rows, cols = np.concatenate(row_parts), np.concatenate(col_parts)
    if len(rows) == 0:
        return np.ones((1, n_features), dtype=np.float32)
    products = sp.csr_matrix(X[rows].multiply(T[cols]), dtype=np.float32)
    cosine = np.asarray(products.sum(axis=1), dtype=np.float32)
    pairs = sp.hstack([sp.csr_matrix(_COSINE_SCALE * cosine), products], format="csr", dtype=np.float32)
    pairs.sort_indices()
    target = np.asarray(Y[rows, cols], dtype=np.float32).reshape(-1, 1) != 0
    params = XRLinearClassifier(loss="logistic", Cp=C, Cn=C, threshold=0.0, random_state=seed)._core_params()
    solver = _pecos_rs.XLinearModel.train(csr_args(pairs), csr_args(sp.csr_matrix(target, dtype=np.float32)),
                                          [np.zeros(1, dtype=np.uint32)], params, n_threads=n_threads)
    indptr, indices, data, _ = solver.layer_weights(0)
    w = np.zeros(pairs.shape[1] + 1)
    w[indices] = data
    a = w[0] * _COSINE_SCALE
    if a <= 0:
        return np.ones((1, n_features), dtype=np.float32)
    return ((a + w[1:-1]) / a).astype(np.float32)[None, :]


def _name_texts(names):
    """The label names as texts: runs of anything but letters and digits become one space."""
    return [re.sub(r"[\W_]+", " ", str(name)).strip() for name in names]


def _drop_common_features(T, max_df):
    """`T` (labels x features, CSR) without the features of more than `max_df` labels (a count,
    or a fraction of the labels as a float, as scikit-learn's ``max_df``)."""
    limit = max_df * T.shape[0] if isinstance(max_df, (float, np.floating)) else max_df
    df = np.bincount(T.indices, minlength=T.shape[1])
    if (df <= limit).all():
        return T
    kept = (T @ sp.diags((df <= limit).astype(T.dtype))).tocsr()
    kept.eliminate_zeros()
    kept.sort_indices()
    return kept


class _DistinctTexts:
    """The distinct `texts` of the training rows and their labels: ``shares`` (distinct texts x
    labels, CSR) holds each label's share of the labels of the text's rows in `Y`."""

    def __init__(self, texts, Y):
        distinct = {}
        text_of_row = np.fromiter((distinct.setdefault(t, len(distinct)) for t in texts), dtype=np.int64,
                                  count=len(texts))
        n_texts = len(distinct)
        #: A training row of each distinct text.
        self.a_row = np.empty(n_texts, dtype=np.int64)
        self.a_row[text_of_row] = np.arange(len(texts))
        rows_of_text = sp.csr_matrix((np.ones(len(texts), np.float32), (text_of_row, np.arange(len(texts)))),
                                     shape=(n_texts, len(texts)))
        counts = sp.csr_matrix(rows_of_text @ Y, dtype=np.float32)
        totals = np.asarray(counts.sum(axis=1), dtype=np.float32).ravel()
        self.shares = sp.csr_matrix(sp.diags(1.0 / np.maximum(totals, 1.0)) @ counts, dtype=np.float32)
        self.shares.sort_indices()

    def neighbour_index(self, X, max_df):
        """The neighbour index: the features of each distinct text (its row of `X`; equal texts
        have equal rows) without those of more than `max_df` distinct texts, and its shares."""
        postings = sp.csr_matrix(_drop_common_features(X[self.a_row], max_df).T, dtype=np.float32)
        postings.sort_indices()
        return _pecos_rs.NeighbourIndex(csr_args(postings), csr_args(self.shares))

    def co_click_matrix(self):
        """The co-click shares as a neighbour index whose features and texts are the labels:
        feature `i` lists each label `j` (text `j`, of label `j` alone) with the share of the
        distinct texts with label `i` that have label `j` too (`j != i`), so that a query over
        the labels sums the shares of each label."""
        has = sp.csr_matrix(self.shares, dtype=np.float32, copy=True)
        has.data[:] = 1.0
        together = sp.csr_matrix(has.T @ has, dtype=np.float32)
        n_texts_of = np.maximum(together.diagonal(), 1.0)
        together.setdiag(0.0)
        together.eliminate_zeros()
        shares = sp.csr_matrix(sp.diags(1.0 / n_texts_of) @ together, dtype=np.float32)
        shares.sort_indices()
        n_labels = shares.shape[0]
        return _pecos_rs.NeighbourIndex(csr_args(shares), csr_args(sp.identity(n_labels, np.float32, format="csr")))


def _exact_matcher(T):
    """An exact matcher: a one-layer model over every label whose weights are the label's row of
    `T` (its text's features, or its centroid), so that its ``noop`` score is the dot product
    (cosine, rows being normalised) of a query with each row, computed by the model's sparse
    kernel (an inverted index)."""
    n_labels, n_features = T.shape
    W = sp.csr_matrix((T.data, T.indices, T.indptr), shape=(n_labels, n_features + 1))
    return _pecos_rs.XLinearModel.from_weight_columns(
        [np.zeros(n_labels, dtype=np.uint32)], [csr_args(W)], n_features=n_features, bias=1.0)


def merge_topk(results, weights, k, n_threads=1):
    """Weighted sum of several top-k results over the union of their labels, top `k` of it.

    `results` are ``(labels, scores)`` pairs of ``(n, k_i)`` arrays (labels padded with -1); a
    label missing from a result counts 0 there. Returns ``(labels int64, scores float32)`` of
    shape ``(n, k)``, padded with -1 / 0, equal sums by increasing label (the merge of the
    ensembles of :class:`~pecos_rs.XRLinearClassifier`, with weights).
    """
    arrays = [(np.ascontiguousarray(labels, dtype=np.int64), np.ascontiguousarray(scores, dtype=np.float32))
              for labels, scores in results]
    return _pecos_rs.merge_topk(arrays, [float(w) for w in weights], k, n_threads=n_threads)

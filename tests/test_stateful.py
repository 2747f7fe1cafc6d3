"""Stateful API tests: hypothesis drives sequences of fit / set_params / predict / save / load /
pickle / prune on the public estimators, and after every step the estimator must answer exactly
as a fresh one fitted with the same parameters on the same data (the model's state is only what
its parameters and its fit made of it). The estimators: XRLinearClassifier, TextXRLinear,
SessionAutocompleter and TextFeaturizer; the indexers (HierarchicalKMeans, TrieIndexer,
HybridIndexer) keep nothing between calls (`fit` returns a ClusterChain), so they have no state
to corrupt."""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sklearn.base import clone

from helpers import make_planted
from pecos_rs import TextXRLinear, XRLinearClassifier
from pecos_rs.qac import SessionAutocompleter
from pecos_rs.text import TextFeaturizer

from test_qac import sessions
from test_retrieval import make_catalogue

X_DATA, Y_DATA = make_planted(n_rows=120, n_features=40, n_labels=24, seed=3)
X_QUERY = X_DATA[:30]
CATALOGUE = make_catalogue(n_labels=20, n_texts=80, seed=4)
SESSIONS = sessions(150, seed=5)

# Parameters that change what fit makes, and those that only change the search.
FIT_PARAMS = {"n_splits": st.sampled_from([2, 4]), "max_leaf_size": st.sampled_from([3, 6]),
              "threshold": st.sampled_from([0.0, 0.05]), "n_trees": st.sampled_from([1, 2])}
SEARCH_PARAMS = {"beam_size": st.sampled_from([1, 3, 10]), "topk": st.sampled_from([1, 5]),
                 "post_processor": st.sampled_from(["l3-hinge", "sigmoid", "noop"])}


def round_trip(model, how: str):
    """`model` saved and loaded back, or pickled and unpickled."""
    if how == "pickle":
        return pickle.loads(pickle.dumps(model))
    with tempfile.TemporaryDirectory() as d:
        model.save(Path(d) / "m")
        return type(model).load(Path(d) / "m")


class XRLinearMachine(RuleBasedStateMachine):
    """XRLinearClassifier under any sequence of API calls."""

    @initialize(params=st.fixed_dictionaries({}, optional={**FIT_PARAMS, **SEARCH_PARAMS}))
    def start(self, params):
        self.model = XRLinearClassifier(**params)
        self.fitted_params = None  # the parameters of the last fit

    @rule(params=st.fixed_dictionaries({}, optional=FIT_PARAMS))
    def fit(self, params):
        self.model.set_params(**params).fit(X_DATA, Y_DATA)
        self.fitted_params = self.model.get_params()

    @rule(params=st.fixed_dictionaries({}, optional=SEARCH_PARAMS))
    def set_search_params(self, params):
        self.model.set_params(**params)
        if self.fitted_params is not None:
            self.fitted_params.update(params)

    @precondition(lambda self: self.fitted_params is not None)
    @rule(how=st.sampled_from(["save", "pickle", "clone-refit"]))
    def round_trip(self, how):
        if how == "clone-refit":
            self.model = clone(self.model).fit(X_DATA, Y_DATA)
        else:
            self.model = round_trip(self.model, how)

    @precondition(lambda self: self.fitted_params is not None and self.fitted_params["n_trees"] == 1)
    @rule(threshold=st.sampled_from([0.1, 0.3]))
    def prune(self, threshold):
        if threshold >= self.model.threshold:
            self.model = self.model.prune(threshold=threshold)
            self.fitted_params = self.model.get_params()

    @invariant()
    def answers_like_a_fresh_fit(self):
        if self.fitted_params is None:
            return
        fresh = XRLinearClassifier(**self.fitted_params).fit(X_DATA, Y_DATA)
        for got, want in zip(self.model.predict_topk(X_QUERY), fresh.predict_topk(X_QUERY)):
            np.testing.assert_array_equal(got, want)


class TextXRLinearMachine(RuleBasedStateMachine):
    """TextXRLinear with label texts under fits, search changes, saves, pickles and prunes."""

    @initialize()
    def start(self):
        self.model = TextXRLinear(classifier=XRLinearClassifier(n_splits=2, max_leaf_size=4, threshold=0.0))
        self.fitted = None

    @rule(weight=st.sampled_from([0.0, 0.3, 0.9]), centroid=st.sampled_from([0.0, 0.05]),
          learn=st.sampled_from([None, 30.0]))
    def fit(self, weight, centroid, learn):
        texts, labels, names, titles = CATALOGUE
        self.model.set_params(label_text_weight=weight, centroid_weight=centroid, text_weight_C=learn)
        self.model.fit(texts, labels, label_names=names, label_texts=titles)
        self.fitted = self.model.get_params()

    @precondition(lambda self: self.fitted is not None)
    @rule(how=st.sampled_from(["save", "pickle"]))
    def round_trip(self, how):
        self.model = round_trip(self.model, how)

    @precondition(lambda self: self.fitted is not None)
    @rule(threshold=st.sampled_from([0.0, 0.1]))
    def prune(self, threshold):
        if threshold >= self.model.classifier_.threshold:
            self.model = self.model.prune(threshold=threshold)
            self.fitted = self.model.get_params()

    @invariant()
    def answers_like_a_fresh_fit(self):
        if self.fitted is None:
            return
        texts, labels, names, titles = CATALOGUE
        fresh = TextXRLinear(**{k: v for k, v in self.fitted.items() if "__" not in k})
        fresh.fit(texts, labels, label_names=names, label_texts=titles)
        queries = texts[:10] + ["garden", ""]
        assert self.model.predict(queries, k=4) == fresh.predict(queries, k=4)
        assert self.model.predict_one("drill bits", k=4) == fresh.predict_one("drill bits", k=4)


class AutocompleterMachine(RuleBasedStateMachine):
    """SessionAutocompleter under fits, re-ranking changes (no refit needed), saves and pickles."""

    @initialize()
    def start(self):
        self.model = SessionAutocompleter(max_leaf_size=4)
        self.fitted = None

    @rule(indexer=st.sampled_from(["hybrid", "trie"]), label_queries=st.sampled_from(["next", "all"]))
    def fit(self, indexer, label_queries):
        self.model.set_params(indexer=indexer, label_queries=label_queries).fit(*SESSIONS)
        self.fitted = self.model.get_params()

    @precondition(lambda self: self.fitted is not None)
    @rule(frequency_weight=st.sampled_from([0.0, 0.6]), overlap_weight=st.sampled_from([0.0, 3.0]),
          exclude_previous=st.booleans())
    def rerank(self, frequency_weight, overlap_weight, exclude_previous):
        params = {"frequency_weight": frequency_weight, "overlap_weight": overlap_weight,
                  "exclude_previous": exclude_previous}
        self.model.set_params(**params)
        self.fitted.update(params)

    @precondition(lambda self: self.fitted is not None)
    @rule(how=st.sampled_from(["save", "pickle"]))
    def round_trip(self, how):
        self.model = round_trip(self.model, how)

    @invariant()
    def answers_like_a_fresh_fit(self):
        if self.fitted is None:
            return
        fresh = SessionAutocompleter(**self.fitted).fit(*SESSIONS)
        prev, prefix, _ = SESSIONS
        assert self.model.suggest_batch(prev[:20], prefix[:20]) == fresh.suggest_batch(prev[:20], prefix[:20])
        assert self.model.suggest("", "w") == fresh.suggest("", "w")


STATEFUL = settings(max_examples=25, stateful_step_count=8, deadline=None)
TestXRLinearStateful = XRLinearMachine.TestCase
TestXRLinearStateful.settings = STATEFUL
TestTextXRLinearStateful = TextXRLinearMachine.TestCase
TestTextXRLinearStateful.settings = STATEFUL
TestAutocompleterStateful = AutocompleterMachine.TestCase
TestAutocompleterStateful.settings = STATEFUL


FEATURIZER_PARAMS = {"blocks": st.sampled_from([None, "paper", "sklearn", "retrieval"]),
                     "norm": st.sampled_from(["l2", None]),
                     "block_weights": st.sampled_from([None, "half-first"])}


def _featurizer_params(params, current=None):
    """`block_weights="half-first"` stands for a weight list as long as the blocks of the
    featurizer these parameters make of `current` (its blocks unless `params` changes them)."""
    params = dict(params)
    if params.get("block_weights") == "half-first":
        blocks = params.get("blocks", current.blocks if current is not None else None)
        n_blocks = len(TextFeaturizer(blocks=blocks)._resolved_blocks())
        params["block_weights"] = [0.5] + [1.0] * (n_blocks - 1)
    return params


class TextFeaturizerMachine(RuleBasedStateMachine):
    """TextFeaturizer under fits (on the full texts or a part), set_params, saves and pickles:
    its rows always equal a fresh featurizer's fitted on the same texts."""

    @initialize(params=st.fixed_dictionaries({}, optional=FEATURIZER_PARAMS))
    def start(self, params):
        self.model = TextFeaturizer(**_featurizer_params(params))
        self.fitted = None  # (parameters, texts) of the last fit

    @rule(params=st.fixed_dictionaries({}, optional=FEATURIZER_PARAMS), part=st.sampled_from([None, 40]))
    def fit(self, params, part):
        texts = CATALOGUE[0][:part]
        self.model.set_params(**_featurizer_params(params, self.model)).fit(texts)
        self.fitted = (self.model.get_params(), texts)

    @precondition(lambda self: self.fitted is not None)
    @rule(how=st.sampled_from(["save", "pickle"]))
    def round_trip(self, how):
        self.model = round_trip(self.model, how)

    @invariant()
    def transforms_like_a_fresh_fit(self):
        if self.fitted is None:
            return
        params, texts = self.fitted
        fresh = TextFeaturizer(**params).fit(texts)
        queries = CATALOGUE[0][:25] + ["", "unseen words entirely"]
        got, want = self.model.transform(queries), fresh.transform(queries)
        assert got.shape == want.shape and (got != want).nnz == 0


TestTextFeaturizerStateful = TextFeaturizerMachine.TestCase
TestTextFeaturizerStateful.settings = STATEFUL

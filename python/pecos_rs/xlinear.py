"""The XR-Linear estimator: scikit-learn API over the Rust engine.

Parameter names follow scikit-learn; this table maps them to PECOS (``XLinearModel.train`` and
``HierarchicalKMeans`` keyword names):

========================  ===================================  ==================================
pecos_rs                  PECOS                                meaning
========================  ===================================  ==================================
n_splits                  nr_splits                            branching factor B of the tree
max_leaf_size             max_leaf_size                        labels per leaf cluster (at most)
kmeans_max_iter           kmeans_max_iter                      2-means iterations per split
spherical                 spherical                            normalised centroids
min_codes                 min_codes                            top-layer size bound
loss                      solver_type                          squared_hinge=L2R_L2LOSS_SVC_DUAL,
                                                               hinge=L2R_L1LOSS_SVC_DUAL,
                                                               logistic=L2R_LR_DUAL
Cp, Cn                    Cp, Cn                               cost of positives / negatives
tol                       eps                                  dual CD stopping tolerance
max_iter                  max_iter                             dual CD passes
coarse_layers, ...        (per-layer train params)             cheaper training of the top layers
bias                      bias                                 value of the bias feature
threshold                 threshold                            prune ``|w| < threshold``
max_nonzeros_per_label    max_nonzeros_per_label               keep the largest weights only
negative_sampling         negative_sampling_scheme             "tfn" or "tfn+man"
beam_size                 beam_size                            beam width of the search
topk                      only_topk                            labels returned per row
post_processor            post_processor                       score transform and combiner
n_jobs                    threads                              None = 1 thread, -1 = all cores
random_state              seed                                 clustering and solver seed
n_trees                   (smat_util.CsrEnsembler.average)     trees of an averaged ensemble
========================  ===================================  ==================================

:meth:`XRLinearClassifier.load_pecos` reads a model saved by PECOS's ``XLinearModel.save`` and
:meth:`XRLinearClassifier.save_pecos` writes one that PECOS's ``XLinearModel.load`` reads.
"""

from __future__ import annotations

import copy
import functools
import logging
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import _pecos_rs
from ._artifact import corrupt, read_metadata, write_metadata
from ._params import check_param, is_int, plain
from ._pecos_format import read_pecos_model, write_pecos_model
from ._sparse import csr_args, to_csr32
from ._threads import resolve_n_jobs
from .exceptions import InvalidInputError, InvalidParameterError, ModelFormatError
from .indexer import ClusterChain, HierarchicalKMeans, pifa

logger = logging.getLogger("pecos_rs")

_ESTIMATOR_FILE = "estimator.json"
_MODEL_FILE = "model.bin"
_CLASSES_FILE = "classes.npy"
_SAVE_FORMAT_NAME = "pecos_rs.XRLinearClassifier"
_SAVE_FORMAT = 1
# Seeds wrap around at 2**64 (the core's seed range): tree i of an ensemble uses random_state + i.
_SEED_MODULUS = 2**64
# What `predict` returns: class labels, or an indicator shaped like the y given to fit.
_OUTPUT_KINDS = ("classes", "dense-indicator", "sparse-indicator")


class XRLinearClassifier(ClassifierMixin, BaseEstimator):
    """Extreme multi-label ranking with XR-Linear (PECOS, Yu et al., JMLR 2022).

    Labels are grouped into a B-ary tree by balanced hierarchical spherical k-means over PIFA label
    embeddings (indexing); every tree node gets a sparse linear scorer trained on the rows that reach
    its parent (matching and ranking); prediction walks the tree with beam search. The numerical work
    (PIFA, clustering, training, search) runs in Rust, multithreaded, with the GIL released.

    Parameters
    ----------
    n_splits : int, default=16
        Branching factor of the label tree (a power of 2).
    max_leaf_size : int, default=100
        Largest number of labels in a leaf cluster. ``max_leaf_size >= n_labels`` gives a flat
        one-vs-all model.
    kmeans_max_iter : int, default=20
        Iterations of each balanced 2-means split.
    spherical : bool, default=True
        Use normalised (spherical) centroids in clustering.
    min_codes : int or None, default=None
        Stop grouping tree layers once the top layer has at most this many nodes (default ``n_splits``).
    beam_size : int, default=10
        Nodes kept per tree layer during prediction.
    topk : int, default=10
        Labels returned per row by :meth:`predict_topk` and :meth:`predict_scores`.
    threshold : float, default=0.1
        Weights with absolute value below it are pruned after each solve (the bias weight included).
        Sensible for L2-normalised features; the pruning threshold x beam size trade-off sets model
        size, speed and accuracy. :meth:`prune` raises it on a fitted model without retraining.
    max_nonzeros_per_label : int or None, default=None
        Keep only the largest weights of each scorer (the bias weight counts as one; on equal
        ``|w|`` the lower feature id wins, the bias last). :meth:`prune` lowers it after fitting.
    loss : {"squared_hinge", "hinge", "logistic"}, default="squared_hinge"
        Loss of the L2-regularised linear scorers, solved by dual coordinate descent.
    Cp, Cn : float, default=1.0
        Cost of positive and negative examples.
    tol : float, default=0.1
        Stopping tolerance of the solver.
    max_iter : int, default=100
        Maximum passes of the solver over a problem.
    coarse_layers : int, default=0
        The first this many layers below the root are trained more cheaply: on the first
        ``coarse_n_features`` columns of X and with at most ``coarse_max_iter`` solver passes.
        Their scorers only steer the beam to the right part of the tree, and each sees a large
        share of the rows, so they hold most of the training time of a deep tree: on aol-click
        (text features word 1-2-grams then character 3-grams, 4 layers) ``coarse_layers=2`` on the
        word columns with 5 passes trained the two top layers about 5x faster at the same
        validation recall (BENCHMARKS.md). 0 (the default) trains every layer alike, as PECOS does.
    coarse_n_features : int or None, default=None
        How many leading columns of X the coarse layers are trained on (their scorers have no
        weight on the others); None: all of them.
    coarse_max_iter : int, default=5
        Solver passes of the coarse layers (at most ``max_iter`` too).
    bias : float, default=1.0
        Value of the constant bias feature (its weight is regularised like the others).
    negative_sampling : {"tfn", "tfn+man"}, default="tfn"
        Teacher-forced negatives only, or also matcher-aware negatives (rows that the upper layers'
        beam sends to a cluster); the latter is slower to train and often a little more accurate.
    post_processor : str, default="l3-hinge"
        How raw scores are transformed and combined down the tree: one of "noop", "sigmoid",
        "log-sigmoid", "l1-hinge" .. "l4-hinge", "log-l1-hinge" .. "log-l4-hinge".
    n_jobs : int or None, default=None
        Threads for training and batch prediction: None means 1, -1 all cores.
    random_state : int, default=0
        Seed of clustering and of the solver's shuffles. Results do not depend on ``n_jobs``.
    n_trees : int, default=1
        Trees of the ensemble. Tree ``i`` clusters the labels and trains its solvers with the seed
        ``random_state + i`` (so it equals a single model fitted with that ``random_state``); the
        trees share the PIFA embeddings, are clustered one after the other (each with ``n_jobs``
        threads) and trained all at once in one pool of ``n_jobs`` threads (holding every tree's
        training state at once). A prediction searches each tree with the same beam for its
        top-k, and a label's score is the mean over the trees of its score in each tree's top-k,
        a label missing from a tree's top-k counting 0 for that tree (PECOS's average ensemble).
        That suits the hinge and sigmoid post-processors (scores >= 0, 0 meaning no evidence),
        not the "log-" ones or "noop". Each tree is asked for ``k`` labels only: for a mean closer
        to that of the full scores, ask for more and keep the first ones
        (``predict_topk(X, k=5 * k)[0][:, :k]``). A single query costs about ``n_trees`` times
        one tree's. Needs clustering: with a ``cluster_chain`` given to :meth:`fit` it must be 1.
    verbose : int, default=0
        If positive, log the progress of clustering and of each layer's training as INFO records
        on the ``"pecos_rs"`` logger.

    Attributes
    ----------
    model_ : pecos_rs._pecos_rs.XLinearModel
        The trained Rust model (of tree 0 for an ensemble).
    models_ : list of pecos_rs._pecos_rs.XLinearModel
        The model of every tree, ``model_`` first (``[model_]`` when ``n_trees=1``).
    cluster_chain_ : ClusterChain
        The label tree (of tree 0; tree ``i``'s parents are ``models_[i].layer_parents(t)``).
    classes_ : ndarray
        Class labels (1-D targets) or ``arange(n_labels)`` (indicator targets).
    n_features_in_ : int
        Number of features seen in fit.
    n_iter_ : int
        The most solver passes any scorer needed (at most ``max_iter``).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from pecos_rs import XRLinearClassifier
    >>> X = sp.random(200, 50, density=0.1, format="csr", random_state=0)
    >>> Y = sp.random(200, 30, density=0.05, format="csr", random_state=1)
    >>> clf = XRLinearClassifier(max_leaf_size=8).fit(X, Y)
    >>> labels, scores = clf.predict_topk(X[:2], k=3)
    >>> labels.shape
    (2, 3)
    """

    def __init__(
        self,
        *,
        n_splits=16,
        max_leaf_size=100,
        kmeans_max_iter=20,
        spherical=True,
        min_codes=None,
        beam_size=10,
        topk=10,
        threshold=0.1,
        max_nonzeros_per_label=None,
        loss="squared_hinge",
        Cp=1.0,
        Cn=1.0,
        tol=0.1,
        max_iter=100,
        coarse_layers=0,
        coarse_n_features=None,
        coarse_max_iter=5,
        bias=1.0,
        negative_sampling="tfn",
        post_processor="l3-hinge",
        n_jobs=None,
        random_state=0,
        n_trees=1,
        verbose=0,
    ):
        self.n_splits = n_splits
        self.max_leaf_size = max_leaf_size
        self.kmeans_max_iter = kmeans_max_iter
        self.spherical = spherical
        self.min_codes = min_codes
        self.beam_size = beam_size
        self.topk = topk
        self.threshold = threshold
        self.max_nonzeros_per_label = max_nonzeros_per_label
        self.loss = loss
        self.Cp = Cp
        self.Cn = Cn
        self.tol = tol
        self.max_iter = max_iter
        self.coarse_layers = coarse_layers
        self.coarse_n_features = coarse_n_features
        self.coarse_max_iter = coarse_max_iter
        self.bias = bias
        self.negative_sampling = negative_sampling
        self.post_processor = post_processor
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.n_trees = n_trees
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags

    # ------------------------------------------------------------------ training

    def fit(self, X, y, *, sample_weight=None, cluster_chain=None, label_embedding=None):
        """Train the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Features; rows are best L2-normalised (the pruning threshold assumes it).
        y : {array-like, sparse matrix} of shape (n_samples,) or (n_samples, n_labels)
            Class labels (one label per row), or a label indicator matrix (dense or sparse; any
            nonzero marks a relevant label). Rows without labels are allowed.
        sample_weight : array-like of shape (n_samples,), optional
            Finite weights >= 0: a row of weight ``k`` counts as ``k`` copies of it, in the PIFA
            embeddings and in every scorer's loss (its cost ``C`` times ``k``); weight 0 leaves
            it out of the solvers. Equal to repeating the rows, up to the solver's tolerance
            (the solver visits rows in a different order); weights of 1 give exactly the
            unweighted model. Large weights make the solver take more passes: collapsing
            aol-click's repeated rows into weights trained 2x slower than repeating them.
        cluster_chain : ClusterChain, optional
            Use this label tree instead of clustering (e.g. a trie over string labels).
        label_embedding : {array-like, sparse matrix} of shape (n_labels, d), optional
            Cluster these label vectors instead of PIFA embeddings.

        Returns
        -------
        self : XRLinearClassifier
        """
        params = self._core_params()
        _pecos_rs.check_xlinear_params(params)
        n_threads = resolve_n_jobs(self.n_jobs)
        check_param(self, "verbose", is_int(self.verbose) or isinstance(self.verbose, bool), "an integer")
        X = validate_data(self, X, accept_sparse="csr", dtype=(np.float32, np.float64), reset=True)
        X = to_csr32(X)
        Y = self._encode_targets(y, X.shape[0])
        weights = _check_sample_weight_values(sample_weight, X)
        log = self._logger()

        start = time.perf_counter()
        if cluster_chain is None:
            if label_embedding is not None:
                Z = label_embedding
            else:  # a weight scales the row's share of its labels' sums
                Z = pifa(Y, X if weights is None else sp.diags(weights) @ X, n_jobs=self.n_jobs)
            if Z.shape[0] != Y.shape[1]:
                raise InvalidInputError(
                    f"label_embedding has {Z.shape[0]} rows but y has {Y.shape[1]} labels"
                )
            cluster_chains = []
            # The trees differ only by the seed of their clustering (and of their solvers).
            for tree in range(self.n_trees):
                chain = HierarchicalKMeans(
                    n_splits=self.n_splits,
                    max_leaf_size=self.max_leaf_size,
                    kmeans_max_iter=self.kmeans_max_iter,
                    spherical=self.spherical,
                    min_codes=self.min_codes,
                    random_state=_tree_seed(self.random_state, tree),
                    n_jobs=self.n_jobs,
                ).fit(Z)
                cluster_chains.append(chain)
                log(
                    f"{_tree_prefix(tree, self.n_trees)}indexing: {Y.shape[1]} labels into layers "
                    f"{chain.layer_sizes} in {time.perf_counter() - start:.2f} s"
                )
                start = time.perf_counter()
            # Training does not need the embeddings (PIFA's are larger than X): free them first.
            del Z
        elif not isinstance(cluster_chain, ClusterChain):
            raise InvalidParameterError(
                f"cluster_chain must be a ClusterChain, got {type(cluster_chain).__name__}"
            )
        elif self.n_trees != 1:
            raise InvalidParameterError(
                f"n_trees must be 1 with a given cluster_chain (the trees of an ensemble differ by "
                f"the seed of their clustering), got {self.n_trees!r}"
            )
        else:
            if cluster_chain.n_labels != Y.shape[1]:
                raise InvalidInputError(
                    f"cluster_chain has {cluster_chain.n_labels} labels but y has {Y.shape[1]}"
                )
            cluster_chains = [cluster_chain]
            log(
                f"indexing: {Y.shape[1]} labels into layers {cluster_chain.layer_sizes} "
                f"in {time.perf_counter() - start:.2f} s"
            )

        solver_passes = []

        def progress(layer, n_layers, n_problems, nnz, max_solver_iter, seconds, tree):
            solver_passes.append(max_solver_iter)
            log(
                f"{_tree_prefix(tree, self.n_trees)}training layer {layer + 1}/{n_layers}: "
                f"{n_problems} scorers, {nnz} nonzero weights, {seconds:.2f} s"
            )

        self.models_ = _pecos_rs.XLinearModel.train_ensemble(
            csr_args(X),
            csr_args(Y),
            [chain.assignments for chain in cluster_chains],
            params,
            n_threads=n_threads,
            progress=progress,
            row_weights=weights,
        )
        self.model_ = self.models_[0]
        self.cluster_chain_ = cluster_chains[0]
        self.n_iter_ = max(solver_passes, default=0)
        return self

    def prune(self, threshold=None, max_nonzeros_per_label=None):
        """A smaller copy of this fitted estimator, its weights pruned again without retraining.

        Every scorer (of every tree) keeps the weights with ``|w| >= threshold``, then at most
        ``max_nonzeros_per_label`` of them, by the rule applied in training (the bias competes for
        the slots; on equal ``|w|`` the lower feature id wins, the bias last). The copy's
        ``get_params()`` hold the new values; this estimator is left as it is. The new values are
        checked against this estimator's ``threshold`` and ``max_nonzeros_per_label``: those of
        its fit (or of the prune that made it), unless ``set_params`` changed them since.

        With ``negative_sampling="tfn"`` the copy is exactly (weights and predictions) the model
        fitted with the new ``threshold`` / ``max_nonzeros_per_label``, since its solves do not
        depend on pruning. With ``"tfn+man"`` it is not identical: the matcher-aware negatives of
        a layer come from the beam of the upper layers, which a fit at the new setting would have
        pruned already.

        Parameters
        ----------
        threshold : float, optional
            At least the fitted ``threshold`` (default: the fitted one): weights dropped in
            training cannot come back.
        max_nonzeros_per_label : int, optional
            At most the fitted ``max_nonzeros_per_label`` if that is set (default: the fitted
            one).

        Returns
        -------
        pruned : XRLinearClassifier
            A new fitted estimator.

        Raises
        ------
        InvalidParameterError
            For a value that is not a threshold or a cap (NaN, negative, ...) or looser than the
            fitted one.
        """
        check_is_fitted(self, "model_")
        threshold = self.threshold if threshold is None else threshold
        cap = self.max_nonzeros_per_label if max_nonzeros_per_label is None else max_nonzeros_per_label
        pruned = copy.copy(self)
        pruned.threshold, pruned.max_nonzeros_per_label = plain(threshold), plain(cap)
        # The core words the type and range errors (NaN, negative, not an integer, ...).
        _pecos_rs.check_xlinear_params(pruned._core_params())
        if pruned.threshold < self.threshold:
            raise InvalidParameterError(
                f"threshold must be >= the fitted threshold {self.threshold!r} (weights below it "
                f"were dropped in training and cannot come back), got {pruned.threshold!r}"
            )
        fitted_cap = self.max_nonzeros_per_label
        # A cap left as None keeps the fitted one, so it is None only if the fitted one is.
        if fitted_cap is not None and pruned.max_nonzeros_per_label > fitted_cap:
            raise InvalidParameterError(
                f"max_nonzeros_per_label must be <= the fitted max_nonzeros_per_label {fitted_cap!r} "
                f"(the weights beyond it were dropped in training and cannot come back), "
                f"got {pruned.max_nonzeros_per_label!r}"
            )
        pruning = {"threshold": pruned.threshold, "max_nonzeros_per_label": pruned.max_nonzeros_per_label}
        n_threads = self._n_threads()
        pruned.models_ = [tree.pruned(pruning, n_threads=n_threads) for tree in self.models_]
        pruned.model_ = pruned.models_[0]
        return pruned

    def compact(self, weight_dtype):
        """A copy of this fitted estimator whose weights take fewer bytes, in memory and on disk.

        The weights are stored as ``weight_dtype`` and scored as stored; the bias weights stay
        float32, and the child slots of the weights take the narrowest integer type the tree
        allows (8 bits for up to 256 children per node), which changes no score.

        - ``"float32"``: the trained weights (the slots only: scores bit for bit the same);
        - ``"float16"``: each weight rounded to the nearest float16, ``|w - w'| <= max(|w| *
          2**-11, 2**-25)``; a weight above 65504 in magnitude is refused;
        - ``"int8"``: per label (and cluster) ``c``, ``scale_c = max |w| / 127`` and ``q =
          round(w / scale_c)``, the dot product of ``q`` multiplied by ``scale_c`` once:
          ``|w - scale_c * q| <= scale_c * (1/2 + 2**-17)``.

        A raw score ``w_c . x + bias * b_c`` then moves by at most the sum over the query's
        features of ``|x_f|`` times that bound. Compact models save, load (also memory-mapped),
        pickle and verify as any; ``save_pecos`` writes the weights they score with as float32
        (PECOS has no compact weights). ``prune`` before compacting (pruning needs the float32
        weights). Compacting a compact model again to its own dtype gives an equal model; to
        another dtype is refused.

        Parameters
        ----------
        weight_dtype : {"float32", "float16", "int8"}

        Returns
        -------
        compact : XRLinearClassifier
            A new fitted estimator; this one is left as it is.

        Raises
        ------
        InvalidParameterError
            For another ``weight_dtype``, or one that differs from this model's compact dtype.
        InvalidInputError
            For ``"float16"`` with a weight beyond float16's range.
        """
        check_is_fitted(self, "model_")
        if not isinstance(weight_dtype, str):
            raise InvalidParameterError(
                f"weight_dtype must be 'float32', 'float16' or 'int8', got {weight_dtype!r}"
            )
        compact = copy.copy(self)
        n_threads = self._n_threads()
        compact.models_ = [tree.compacted(weight_dtype, n_threads=n_threads) for tree in self.models_]
        compact.model_ = compact.models_[0]
        return compact

    def __setstate__(self, state):
        super().__setstate__(state)
        # Estimators pickled before ensembles existed hold model_ only.
        if "model_" in self.__dict__ and "models_" not in self.__dict__:
            self.models_ = [self.model_]

    def _encode_targets(self, y, n_samples):
        """Turn `y` into a binary CSR label matrix and set `classes_` and the output kind."""
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        if sp.issparse(y):
            if y.shape[0] != n_samples:
                raise InvalidInputError(f"X has {n_samples} rows but y has {y.shape[0]}")
            Y = sparse_indicator(y)
            self._output_kind = "sparse-indicator"
            self.classes_ = np.arange(Y.shape[1])
            return Y
        y = np.asarray(y)
        if y.dtype.kind in "fc":
            assert_all_finite(y, input_name="y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        target = type_of_target(y, input_name="y", raise_unknown=True)
        check_classification_targets(y)
        if y.shape[0] != n_samples:
            raise InvalidInputError(f"X has {n_samples} rows but y has {y.shape[0]}")
        if target == "multilabel-indicator":
            self._output_kind = "dense-indicator"
            self.classes_ = np.arange(y.shape[1])
            return to_csr32(sp.csr_matrix(y != 0), name="y")
        if target not in ("binary", "multiclass"):
            raise InvalidInputError(f"unsupported target type {target!r}")
        self._output_kind = "classes"
        self.classes_, codes = np.unique(y, return_inverse=True)
        codes = codes.ravel()
        Y = sp.csr_matrix(
            (np.ones(n_samples, dtype=np.float32), codes, np.arange(n_samples + 1)),
            shape=(n_samples, len(self.classes_)),
        )
        return Y

    def _core_params(self) -> dict:
        """The parameters the Rust core validates and uses: all but threads and logging."""
        params = self.get_params(deep=False)
        del params["n_jobs"], params["verbose"]
        return plain(params)

    def _n_threads(self):
        return resolve_n_jobs(self.n_jobs)

    def _logger(self):
        """Where fit reports progress: INFO records on the "pecos_rs" logger if verbose, else nowhere."""
        if not self.verbose:
            return lambda msg: None
        return logger.info

    # ---------------------------------------------------------------- prediction

    def _check_query(self, X):
        check_is_fitted(self, "model_")
        if sp.issparse(X) and X.format == "csr" and X.dtype.kind in "fiub":
            # Fast path for the common real-time case (one CSR row): the Rust core validates
            # indices and finiteness anyway, so only the feature count is checked here.
            if X.shape[1] != self.n_features_in_:
                raise InvalidInputError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
            if X.dtype != np.float32 or not X.has_canonical_format:
                X = to_csr32(X)
            return X
        X = validate_data(self, X, accept_sparse="csr", dtype=(np.float32, np.float64), reset=False)
        return to_csr32(X)

    def predict_topk(self, X, k=None, *, beam_size=None, post_processor=None, label_ranges=None):
        """Top-k labels and scores for each row, best first.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        k : int, optional
            Labels per row (default: the ``topk`` parameter).
        beam_size, post_processor : optional
            Override the fitted defaults for this call.
        label_ranges : array-like of int, shape (n_samples, 2), optional
            ``[start, end)`` per row: the row's search enters only tree nodes holding a label
            (column index) in its range, and returns only such labels. With labels sorted as
            strings, the labels starting with a typed prefix are one such range.

        For an ensemble (``n_trees > 1``) each tree is searched for its top-k and a label's score
        is the mean over the trees, 0 counting for a tree whose top-k misses it (see ``n_trees``).

        Returns
        -------
        labels : ndarray of int64, shape (n_samples, k)
            Column indices into ``classes_``, padded with -1 when fewer than k labels are reachable.
        scores : ndarray of float32, shape (n_samples, k)
            Their scores, padded with 0.
        """
        X = self._check_query(X)
        k = self.topk if k is None else k
        beam_size = self.beam_size if beam_size is None else beam_size
        post_processor = self.post_processor if post_processor is None else post_processor
        params = _search_params(beam_size, k, post_processor)
        ranges = None if label_ranges is None else _as_label_ranges(label_ranges)
        labels, scores = self._search(csr_args(X), params, self._n_threads(), ranges)
        # The core returns at most n_labels columns; pad the rest as documented (an absurd k
        # fails here, with numpy's MemoryError or ValueError).
        if labels.shape[1] < k:
            n, width = labels.shape
            padded_labels = np.full((n, k), -1, dtype=labels.dtype)
            padded_scores = np.zeros((n, k), dtype=scores.dtype)
            padded_labels[:, :width], padded_scores[:, :width] = labels, scores
            labels, scores = padded_labels, padded_scores
        return labels, scores

    def _search(self, rows, params, n_threads, label_ranges=None):
        """The core's top-k of `rows` (the core's CSR arguments) with checked search `params`: the
        one call of every prediction path, of one tree or of the ensemble."""
        if len(self.models_) == 1:
            return self.model_.predict_topk(rows, params, n_threads=n_threads, label_ranges=label_ranges)
        return _pecos_rs.XLinearModel.predict_topk_ensemble(
            self.models_, rows, params, n_threads=n_threads, label_ranges=label_ranges
        )

    def predict_scores(self, X, k=None, *, beam_size=None, post_processor=None):
        """Top-k scores as a sparse (n_samples, n_labels) CSR matrix (PECOS's prediction format)."""
        labels, scores = self.predict_topk(X, k, beam_size=beam_size, post_processor=post_processor)
        return _topk_to_csr(labels, scores, len(self.classes_))

    def predict_proba(self, X):
        """Label probabilities, dense (n_samples, n_classes); zero outside the top-k.

        For class targets, each row's top-k scores are normalised to sum to 1 (uniform if all are
        zero). For indicator targets, the top-k scores are mapped into [0, 1] (already so for
        the hinge and sigmoid post-processors; ``exp`` for the log variants, a sigmoid for
        "noop") and returned per label. Dense output: use :meth:`predict_topk` for many labels.
        """
        check_is_fitted(self, "model_")
        labels, scores = self.predict_topk(X, min(self.topk, len(self.classes_)))
        P = _topk_to_csr(labels, self._as_probability(scores), len(self.classes_)).toarray()
        if self._output_kind == "classes":
            sums = P.sum(axis=1, keepdims=True)
            empty = sums[:, 0] <= 0
            P[empty] = 1.0
            sums[empty] = P.shape[1]
            P /= sums
        return P

    def _as_probability(self, scores):
        pp = self.post_processor
        if pp.startswith("log-"):
            return np.exp(scores)
        if pp == "noop":
            return 1.0 / (1.0 + np.exp(-scores))
        return scores

    def predict(self, X):
        """Predicted classes (class targets), or the indicator of top-k labels with probability
        >= 0.5 (indicator targets; dense or sparse like the ``y`` given to fit)."""
        if getattr(self, "_output_kind", None) == "classes":
            labels, _ = self.predict_topk(X, 1)
            return self.classes_[labels[:, 0]]
        check_is_fitted(self, "model_")
        labels, scores = self.predict_topk(X)
        keep = self._as_probability(scores) >= 0.5
        Y = _topk_to_csr(np.where(keep, labels, -1), keep.astype(np.float32), len(self.classes_))
        Y = Y.astype(np.int64)
        return Y if self._output_kind == "sparse-indicator" else Y.toarray()

    # ------------------------------------------------------------- persistence

    def save(self, path):
        """Write the fitted estimator to directory `path` (created if needed).

        The directory holds ``estimator.json`` (parameters and targets), ``model.bin`` (the Rust
        model, versioned and checksummed; of tree 0 for an ensemble, tree ``i`` in
        ``model.tree<i>.bin``) and ``classes.npy``. No pickle is involved.
        """
        check_is_fitted(self, "model_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        classes = self.classes_
        if classes.dtype == object:
            # e.g. strings from pandas: store them as a plain unicode array (no pickle).
            classes = np.array(classes.tolist())
            if classes.dtype == object:
                raise InvalidInputError("class labels of mixed or object types cannot be saved")
        np.save(path / _CLASSES_FILE, classes, allow_pickle=False)
        for tree, model in enumerate(self.models_):
            model.save(str(path / _model_file(tree)))
        write_metadata(path / _ESTIMATOR_FILE, _SAVE_FORMAT_NAME, _SAVE_FORMAT,
                       params=self.get_params(), output_kind=self._output_kind,
                       n_features_in=int(self.n_features_in_))

    @classmethod
    def load(cls, path, mmap=None):
        """Load an estimator written by :meth:`save`.

        With ``mmap=True`` the weights are not read but memory-mapped: loading reads the headers
        and checks the sizes and the layout of the layers, which takes about the same time for any
        model size; the weights of each parent are checked when a prediction first reaches them
        (a damaged one raises ``ModelFormatError`` then), and the pages are shared by every
        process that maps the same files. Predictions are identical to a normal load's. The
        checksums are not checked; :meth:`verify` checks them and every weight. The files must
        not be modified in place while mapped (:meth:`save` replaces files instead, so a mapped
        model keeps its weights when the directory is saved over). If another program truncates
        them, the reads of the missing pages (``SIGBUS``, which would kill the process) give
        zeros on Linux, and every later use of the model (prediction, :meth:`save`,
        :meth:`verify`, pickling) raises ``ModelFormatError``; elsewhere the process is killed.
        Files saved before format version 3 cannot be mapped (``ModelFormatError``): load them
        normally and save them again.

        ``mmap=None`` (the default) maps each model file of at least
        :data:`AUTO_MMAP_MIN_BYTES` (64 MiB) where mapping is safe: on Linux (elsewhere a
        truncated file would kill the process) and for format version 3 or later; every other
        file is read. ``mmap=False`` always reads, checking every checksum at load.

        Raises
        ------
        FileNotFoundError
            If `path` or one of its files does not exist.
        ModelFormatError
            If the files are corrupt, truncated, or from an unknown format version.
        """
        path = Path(path)
        meta_file = path / _ESTIMATOR_FILE
        meta = read_metadata(meta_file, _SAVE_FORMAT_NAME, _SAVE_FORMAT)
        try:
            est = cls(**meta["params"])
            est._output_kind = meta["output_kind"]
            est.n_features_in_ = int(meta["n_features_in"])
            if est._output_kind not in _OUTPUT_KINDS:
                raise ValueError(f"unknown output kind {est._output_kind!r}")
            # Saved before ensembles existed: no n_trees, so the default, 1.
            if not is_int(est.n_trees) or est.n_trees < 1:
                raise ValueError(f"n_trees must be an integer >= 1, got {est.n_trees!r}")
        except (ValueError, KeyError, TypeError) as e:
            raise corrupt(meta_file, e) from e
        try:
            est.classes_ = np.load(path / _CLASSES_FILE, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError) as e:
            raise ModelFormatError(f"corrupt {_CLASSES_FILE} in {path}: {e}") from e
        models = [load_model_file(path / _model_file(tree), mmap) for tree in range(est.n_trees)]
        for model in models:
            if model.n_labels != len(est.classes_) or model.n_features != est.n_features_in_:
                raise ModelFormatError(f"the files in {path} do not belong to the same model")
        est._set_models(models)
        return est

    def verify(self):
        """Check the checksums and the structure of the model files a memory-mapped estimator
        (``load(path, mmap=True)``) reads its weights from, reading them whole, as a normal load
        does; raises ``ModelFormatError`` if one no longer matches. An estimator in memory passes
        (it was checked when loaded). Returns self."""
        check_is_fitted(self, "model_")
        for model in self.models_:
            model.verify()
        return self

    def save_pecos(self, path):
        """Write the fitted model to directory `path` in PECOS's layout, which libpecos's
        ``pecos.xmc.xlinear.model.XLinearModel.load(path)`` reads.

        The layout is that of libpecos's ``XLinearModel.save``: ``param.json``,
        ``ranker/param.json`` and per layer ``t`` ``ranker/{t}.model/`` with ``param.json``,
        ``W.npz`` (CSC float32, ``(n_features + 1) x K_{t+1}``, the bias weights in the last row;
        no bias row for ``bias=0``, as PECOS does for a bias <= 0) and ``C.npz`` (the tree). The
        layers' ``pred_kwargs`` hold ``beam_size``, ``topk`` and ``post_processor``, so libpecos's
        ``predict(X)`` without arguments returns what :meth:`predict_topk` returns. PECOS keeps
        no class labels: its label ``j`` is column ``j``, ``classes_[j]``.

        Raises
        ------
        InvalidParameterError
            For an ensemble (``n_trees > 1``: PECOS's layout holds one tree) or invalid search
            parameters.
        """
        check_is_fitted(self, "model_")
        if len(self.models_) != 1:
            raise InvalidParameterError(
                f"save_pecos writes one tree (PECOS's XLinearModel has no ensembles), but this "
                f"estimator has n_trees={len(self.models_)}"
            )
        _search_params(self.beam_size, self.topk, self.post_processor)  # refuses invalid values
        write_pecos_model(Path(path), self.model_, beam_size=self.beam_size, topk=self.topk,
                          post_processor=self.post_processor)

    @classmethod
    def load_pecos(cls, path):
        """Load a model saved by libpecos's ``XLinearModel.save(path)`` (PECOS's XR-Linear).

        ``predict_topk(X)`` and ``predict_scores(X)`` then return PECOS's ``predict(X)`` (labels
        and scores, to float32 rounding): ``beam_size``, ``topk`` and ``post_processor`` are set
        from the layers' ``pred_kwargs`` (a PECOS ``only_topk`` of 0, no limit, becomes the layer
        size) and ``bias`` from the model; the other parameters keep their defaults (PECOS does
        not store them). Labels are column indices (``classes_ = arange(n_labels)``) and
        :meth:`predict` returns a sparse indicator. The estimator pickles, saves and predicts as
        any fitted one.

        Raises
        ------
        FileNotFoundError
            If `path` or one of its files does not exist.
        ModelFormatError
            If a file is corrupt or truncated, a matrix has the wrong shape or dtype or holds NaN,
            the files disagree, the model is memory-mapped, or its layers use different beams,
            post-processors or biases (pecos_rs uses one of each for every layer).
        """
        loaded = read_pecos_model(Path(path))
        params = {"topk": loaded.topk, "post_processor": loaded.post_processor, "bias": loaded.bias}
        if loaded.beam_size is not None:
            params["beam_size"] = loaded.beam_size
        est = cls(**params)
        est._output_kind = "sparse-indicator"
        est.classes_ = np.arange(loaded.model.n_labels)
        est.n_features_in_ = loaded.model.n_features
        est._set_models([loaded.model])
        return est

    def _set_models(self, models):
        """Adopt the trained `models` (one per tree) and the label tree of the first."""
        self.models_ = models
        self.model_ = models[0]
        self.cluster_chain_ = ClusterChain([self.model_.layer_parents(t) for t in range(self.model_.depth)])


def sparse_indicator(y) -> sp.csr_matrix:
    """The sparse label matrix `y` as the float32 0/1 CSR that fit trains on: any stored nonzero
    marks a relevant label."""
    Y = sp.csr_matrix(y, copy=True)
    Y.eliminate_zeros()
    if not np.isfinite(Y.data).all():
        raise InvalidInputError("y contains NaN or infinite values")
    Y = sp.csr_matrix((np.ones(Y.nnz, dtype=np.float32), Y.indices, Y.indptr), shape=Y.shape)
    return to_csr32(Y, name="y")


#: With ``load(path, mmap=None)`` (the default), a model file of at least this many bytes is
#: memory-mapped where that is safe (see :meth:`XRLinearClassifier.load`); smaller ones are read,
#: which checks every byte in a time of the order of a millisecond per MB.
AUTO_MMAP_MIN_BYTES = 64 * 2**20

_FILE_MAGIC = b"PECOSRS\0"
_FIRST_MAPPED_VERSION = 3  # version 2 stores its arrays unaligned


def _check_mmap(mmap):
    if mmap is not None and not isinstance(mmap, (bool, np.bool_)):
        raise InvalidParameterError(f"mmap must be True, False or None (automatic), got {mmap!r}")


def _maps_by_default(file: Path) -> bool:
    """Whether ``mmap=None`` maps `file`: on Linux only, where reads of a file truncated under its
    map are caught instead of killing the process; for files large enough that reading them
    takes long; and of a format version that can be mapped. Anything unexpected (a missing,
    short or foreign file) reads, and the read load reports it."""
    if sys.platform != "linux":
        return False
    try:
        if file.stat().st_size < AUTO_MMAP_MIN_BYTES:
            return False
        with file.open("rb") as f:
            prefix = f.read(12)
    except OSError:
        return False
    return (len(prefix) == 12 and prefix[:8] == _FILE_MAGIC
            and int.from_bytes(prefix[8:], "little") >= _FIRST_MAPPED_VERSION)


def load_model_file(file, mmap=None):
    """The core model saved in `file`: memory-mapped (``mmap=True``), read (``False``), or mapped
    where that is safe and pays (``None``: :func:`_maps_by_default`)."""
    _check_mmap(mmap)
    file = Path(file)
    mapped = _maps_by_default(file) if mmap is None else bool(mmap)
    return _pecos_rs.XLinearModel.load(str(file), mmap=mapped)


def _model_file(tree):
    """The file of tree `tree`'s model in a saved directory (tree 0's is that of a single model)."""
    return _MODEL_FILE if tree == 0 else f"model.tree{tree}.bin"


def _tree_seed(random_state, tree):
    """The seed of tree `tree` of an ensemble (that of a single model for tree 0)."""
    return (int(random_state) + tree) % _SEED_MODULUS


def _tree_prefix(tree, n_trees):
    """How log records name the tree they are about: not at all for a single model."""
    return "" if n_trees == 1 else f"tree {tree + 1}/{n_trees}: "


@functools.lru_cache(maxsize=64, typed=True)
def _cached_search_params(beam_size, topk, post_processor):
    return _pecos_rs.SearchParams(plain({"beam_size": beam_size, "topk": topk, "post_processor": post_processor}))


def _check_sample_weight_values(sample_weight, X):
    """`sample_weight` as float32 (None stays None), one finite value >= 0 per row of `X`."""
    if sample_weight is None:
        return None
    try:
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
    except (TypeError, ValueError) as e:  # a list of strings, a 2-D array, the wrong length...
        raise InvalidInputError(f"sample_weight: {e}") from None
    with np.errstate(over="ignore"):
        weights = np.ascontiguousarray(weights, dtype=np.float32)
    if not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise InvalidInputError("sample_weight must be finite (in float32) and >= 0")
    return weights


def _search_params(beam_size, topk, post_processor):
    """The checked search parameters (built once per distinct typed value, since a real-time
    caller repeats the same ones at every query; unhashable values are checked uncached)."""
    try:
        return _cached_search_params(beam_size, topk, post_processor)
    except TypeError:
        return _cached_search_params.__wrapped__(beam_size, topk, post_processor)


def _as_label_ranges(label_ranges) -> np.ndarray:
    """`label_ranges` as the core's uint32 array (the core checks the shape and the bounds)."""
    ranges = np.asarray(label_ranges)
    if ranges.dtype.kind not in "iu" or (ranges.size and (ranges.min() < 0 or ranges.max() >= 2**32)):
        raise InvalidInputError(
            "label_ranges must hold non-negative integer label indices [start, end), "
            f"got dtype {ranges.dtype}"
        )
    return np.ascontiguousarray(ranges, dtype=np.uint32)


def _topk_to_csr(labels, scores, n_labels):
    """Padded top-k arrays -> CSR (n_rows, n_labels), dropping the -1 padding."""
    n, k = labels.shape
    valid = labels >= 0
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=indptr[1:])
    M = sp.csr_matrix((scores[valid], labels[valid], indptr), shape=(n, n_labels))
    M.sort_indices()
    return M

"""Thread safety and GIL release."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

import reference as ref
from helpers import raw_predict, raw_train
from pecos_rs import XRLinearClassifier
from pecos_rs import _pecos_rs
from pecos_rs._sparse import csr_args


@pytest.fixture(scope="module")
def big():
    """A one-layer model with 10,000 labels and 300 features (weights chosen, not trained), and
    1,000 queries: one batch predict takes a noticeable fraction of a second."""
    rng = np.random.default_rng(0)
    d, L = 300, 10000
    W = sp.random(d + 1, L, density=0.05, random_state=1, dtype=np.float32, format="csc")
    W.data = rng.normal(size=W.nnz).astype(np.float32)
    model = _pecos_rs.XLinearModel.from_bytes(ref.model_to_bytes(d, 1.0, [(np.zeros(L), W)]))
    X = sp.random(1000, d, density=0.07, random_state=2, dtype=np.float32, format="csr")
    return model, X


def predict(model, X, beam_size=10, topk=10, pp="l3-hinge", n_threads=1):
    return raw_predict(model, csr_args(X), beam_size=beam_size, topk=topk, post_processor=pp, n_threads=n_threads)


def test_concurrent_predict_equals_serial(big):
    model, X = big
    jobs = [
        dict(X=X[:300], pp="l3-hinge", n_threads=1),
        dict(X=X[300:600], pp="noop", topk=5, n_threads=2),
        dict(X=X[600:900], pp="log-sigmoid", topk=20, n_threads=1),
        dict(X=X[900:1000], pp="sigmoid", n_threads=3),
    ] + [dict(X=X[i : i + 1], pp="l2-hinge", n_threads=1) for i in range(0, 40, 2)]  # single-row path
    serial = [predict(model, **job) for job in jobs]
    for _ in range(2):
        with ThreadPoolExecutor(max_workers=4) as pool:
            concurrent = list(pool.map(lambda job: predict(model, **job), jobs * 2))
        for (la, sa), (lb, sb) in zip(serial * 2, concurrent):
            np.testing.assert_array_equal(la, lb)
            assert sa.tobytes() == sb.tobytes()


def test_concurrent_estimator_predict(planted):
    clf = XRLinearClassifier(n_splits=2, max_leaf_size=4, n_jobs=2).fit(planted.X, planted.Y)
    expected = clf.predict_topk(planted.X_test)
    rows = [clf.predict_topk(planted.X_test[i : i + 1]) for i in range(20)]

    def work(i):
        if i % 2:
            return clf.predict_topk(planted.X_test)
        return clf.predict_topk(planted.X_test[i // 2 : i // 2 + 1])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(40)))
    for i, (labels, scores) in enumerate(results):
        want = expected if i % 2 else rows[i // 2]
        np.testing.assert_array_equal(labels, want[0])
        np.testing.assert_array_equal(scores, want[1])


def _counts_during(calls) -> list[int]:
    """Runs `calls` one after another in a second thread while this thread counts; returns, per
    call, how many times this thread counted while that call ran.

    Meanwhile the interpreter's switch interval is 30 s, so it never takes the GIL from a thread
    that holds it: this thread can count during a call only if the call released the GIL, and a
    call that holds it gets exactly 0, however loaded the machine (see
    test_gil_check_fails_for_calls_that_hold_the_gil). With the default 5 ms interval the GIL is
    handed over between two short calls, or right after a long one returns, which let a counting
    thread progress at half its rate beside single-row calls that held the GIL. This thread sleeps
    0.1 ms between counts (releasing the GIL), so the other thread never waits long for it."""
    count = [0]
    per_call: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def work():
        try:
            for call in calls:
                before = count[0]
                call()
                per_call.append(count[0] - before)
        except BaseException as e:  # re-raised in the calling thread
            errors.append(e)
        finally:
            done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        th = threading.Thread(target=work)
        th.start()
        while not done.is_set():
            count[0] += 1
            time.sleep(1e-4)
        th.join()
    finally:
        sys.setswitchinterval(old)
    if errors:
        raise errors[0]
    return per_call


def _check_overlap(calls, enough, what: str, attempts: int = 3) -> None:
    """Fails unless `enough(_counts_during(calls))` holds in one of `attempts` runs. A call that
    holds the GIL gives zero counts in every run; retries only absorb a machine so loaded that this
    thread was rarely scheduled while the calls ran."""
    seen = []
    for _ in range(attempts):
        per_call = _counts_during(calls)
        if enough(per_call):
            return
        seen.append(per_call if len(per_call) == 1 else f"{sum(c > 0 for c in per_call)}/{len(per_call)} calls")
    pytest.fail(f"{what}: the main thread's counts during the calls, per attempt: {seen}; "
                "it cannot count at all while a call holds the GIL")


def _predict_args(model, args):
    return raw_predict(model, args, beam_size=10, topk=10, post_processor="l3-hinge", n_threads=1)


def test_gil_check_fails_for_calls_that_hold_the_gil():
    """The checks below can fail: builtin sum over a range is a C loop that holds the GIL, like a
    binding that forgot to release it; the main thread never counts during it, whether it is one
    long call (like a batch predict or train) or many short ones (like single-row predicts)."""
    assert _counts_during([lambda: sum(range(3_000_000))]) == [0]
    assert _counts_during([lambda: sum(range(20_000))] * 300) == [0] * 300


def test_predict_releases_the_gil(big):
    """The main thread counts during a batch predict (~0.1 s): at least 20 times (measured over 30
    runs: 470-970 idle, 1000-2300 beside four busy processes on two cores)."""
    model, X = big
    args = csr_args(X)
    _check_overlap([lambda: _predict_args(model, args)], lambda c: c[0] >= 20, "batch predict")


def test_single_row_predict_releases_the_gil(big):
    """The main thread counts during at least 20 of 1,000 single-row predicts (~0.1 ms each, on the
    calling thread; measured over 30 runs: during 410-730 of them, idle or beside four busy
    processes on two cores). The rows are converted beforehand, so the calls are mostly Rust code."""
    model, X = big
    rows = [csr_args(X[i : i + 1]) for i in range(1000)]
    calls = [lambda r=r: _predict_args(model, r) for r in rows]
    _check_overlap(calls, lambda c: sum(n > 0 for n in c) >= 20, "single-row predicts")


def test_train_releases_the_gil():
    """The main thread counts during a train call (~0.1 s): at least 20 times (measured over 30 runs:
    340-630 idle, 600-1400 beside four busy processes on two cores)."""
    X = sp.random(1500, 500, density=0.02, random_state=3, dtype=np.float32, format="csr")
    Y = sp.random(1500, 300, density=0.01, random_state=4, dtype=np.float32, format="csr")
    Y.data[:] = 1
    x_args, y_args = csr_args(X), csr_args(Y)

    def train():
        raw_train(x_args, y_args, [np.zeros(300, np.uint32)])

    _check_overlap([train], lambda c: c[0] >= 20, "train")


def test_completion_batch_releases_the_gil():
    """The main thread counts during a batch of 100,000 completion lookups (~0.1 s of Rust, then
    the lists of answers are built holding the GIL): at least 20 times."""
    rng = np.random.default_rng(0)
    queries = ["".join(rng.choice(list("abcdefgh "), size=rng.integers(1, 12))) for _ in range(50_000)]
    index = _pecos_rs.CompletionIndex(queries, rng.random(50_000))
    prefixes = [q[:4] for q in queries] * 2
    _check_overlap([lambda: index.top_k_batch(prefixes, 10)], lambda c: c[0] >= 20, "completion batch")


def test_neighbour_search_releases_the_gil():
    """The main thread counts during a batch of neighbour votes (~0.1 s) and during at least 20 of
    1,000 single-query votes (on the calling thread)."""
    texts = sp.random(20_000, 300, density=0.05, random_state=5, dtype=np.float32, format="csr")
    shares = sp.random(20_000, 500, density=0.004, random_state=6, dtype=np.float32, format="csr")
    index = _pecos_rs.NeighbourIndex(csr_args(sp.csr_matrix(texts.T)), csr_args(shares))
    Q = sp.random(2000, 300, density=0.05, random_state=7, dtype=np.float32, format="csr")

    def vote(x):
        return index.predict_topk(x, n_neighbours=50, power=4.0, topk=10, n_threads=1)

    batch = csr_args(Q)
    _check_overlap([lambda: vote(batch)], lambda c: c[0] >= 20, "neighbour batch")
    rows = [csr_args(Q[i : i + 1]) for i in range(1000)]
    _check_overlap([lambda r=r: vote(r) for r in rows], lambda c: sum(n > 0 for n in c) >= 20, "single votes")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Python >= 3.12 warns about fork with threads
def test_predict_in_forked_child_does_not_hang(big):
    """The thread pools of the parent do not exist in a forked child; prediction must still work."""
    model, X = big
    expected = predict(model, X[:200], n_threads=2)  # creates the parent's 2-thread pool
    pid = os.fork()
    if pid == 0:  # child
        try:
            got = predict(model, X[:200], n_threads=2)
            ok = np.array_equal(got[0], expected[0]) and got[1].tobytes() == expected[1].tobytes()
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("prediction in a forked child hung")
        time.sleep(0.02)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"


CTRL_C = r"""
import os, signal, threading, time
import numpy as np, scipy.sparse as sp
from pecos_rs import _pecos_rs
from pecos_rs._sparse import csr_args
import sys
sys.path.insert(0, {tests!r})
from helpers import core_params

def random_csr(n_rows, n_cols, per_row, seed):
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, n_cols, size=n_rows * per_row)
    data = rng.random(n_rows * per_row, dtype=np.float32)
    m = sp.csr_matrix((data, indices, np.arange(n_rows + 1) * per_row), shape=(n_rows, n_cols))
    m.sum_duplicates()
    return m

X = random_csr(20000, 5000, 50, 0)
Y = random_csr(20000, 2000, 4, 1)
Y.data[:] = 1
Z = random_csr(400000, 500, 25, 2)
args = (csr_args(X), csr_args(Y), [np.zeros(2000, np.uint32)], core_params())
threading.Timer({delay}, os.kill, (os.getpid(), signal.SIGINT)).start()
start = time.perf_counter()
try:
    {call}
    print("FINISHED", time.perf_counter() - start)
except KeyboardInterrupt:
    print("INTERRUPTED", time.perf_counter() - start)
"""


@pytest.mark.parametrize(
    "call",
    [
        "_pecos_rs.XLinearModel.train(*args, n_threads=1)",
        "_pecos_rs.XLinearModel.train_ensemble(args[0], args[1], [args[2]] * 2, "
        "core_params(n_trees=2), n_threads=2)",
        "_pecos_rs.hierarchical_kmeans(csr_args(Z), dict(n_splits=16, max_leaf_size=2, kmeans_max_iter=20, "
        "spherical=True, random_state=0, min_codes=None), n_threads=1)",
        "_pecos_rs.hybrid_chain([f'{i:06d}' for i in range(400000)], csr_args(Z), dict(trie_depth=1, "
        "n_splits=16, max_leaf_size=2, kmeans_max_iter=20, spherical=True, random_state=0), n_threads=1)",
    ],
    ids=["train", "train_ensemble", "kmeans", "hybrid"],
)
def test_ctrl_c_stops_a_long_call(call):
    """SIGINT while the core trains (or clusters) stops it with KeyboardInterrupt within a second or
    so; an uninterruptible call would run to its end first (about 11 s for this training, 8 s for
    this clustering and 13 s for this hybrid indexing of four trie nodes on a 2-core machine), and
    Python would see the signal only then."""
    import subprocess
    import sys
    from pathlib import Path

    delay = 2.0
    code = CTRL_C.format(tests=str(Path(__file__).parent), delay=delay, call=call)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    outcome, seconds = r.stdout.split()
    assert outcome == "INTERRUPTED", f"the call ran to its end ({seconds} s) without seeing Ctrl-C"
    assert float(seconds) < delay + 1.5, f"KeyboardInterrupt came {float(seconds) - delay:.1f} s after Ctrl-C"


def test_predicting_threads_beside_saving_loading_and_pickling_threads(tmp_path):
    """8 threads predict on one model of each kind (single rows and batches) while 2 others save,
    load and pickle those same models and predict with the copies: every answer must equal the
    one computed before the threads started, and all threads must finish (no deadlock)."""
    import pickle

    from helpers import make_planted
    from pecos_rs import TextXRLinear
    from pecos_rs.qac import SessionAutocompleter

    from test_qac import sessions
    from test_retrieval import make_catalogue

    X, Y = make_planted(n_rows=300, n_features=60, n_labels=40, seed=7)
    xr = XRLinearClassifier(n_splits=4, max_leaf_size=4, n_jobs=2).fit(X, Y)
    texts, labels, names, titles = make_catalogue(n_texts=150, seed=8)
    text_model = TextXRLinear(classifier=XRLinearClassifier(n_splits=2, max_leaf_size=4, n_jobs=2)).fit(
        texts, labels, label_names=names, label_texts=titles)
    prev, prefix, nxt = sessions(300, seed=9)
    qac = SessionAutocompleter(max_leaf_size=4, n_jobs=2).fit(prev, prefix, nxt)
    expected = {
        "xr_batch": xr.predict_topk(X),
        "xr_rows": [xr.predict_topk(X[i]) for i in range(20)],
        "text": text_model.predict(texts[:40], k=5),
        "qac": qac.suggest_batch(prev[:40], prefix[:40]),
    }

    def check(xr_m, text_m, qac_m, i):
        labels_, scores_ = xr_m.predict_topk(X)
        np.testing.assert_array_equal(labels_, expected["xr_batch"][0])
        np.testing.assert_array_equal(scores_, expected["xr_batch"][1])
        row = xr_m.predict_topk(X[i % 20])
        np.testing.assert_array_equal(row[0], expected["xr_rows"][i % 20][0])
        assert text_m.predict_one(texts[i % 40], k=5) == expected["text"][i % 40]
        assert qac_m.suggest(prev[i % 40], prefix[i % 40]) == expected["qac"][i % 40]

    calls = {"predict": 0, "copies": 0}
    lock = threading.Lock()

    def predictor(worker):
        for i in range(40):
            check(xr, text_model, qac, worker * 40 + i)
            with lock:
                calls["predict"] += 1

    def copier(worker):
        for i in range(6):
            folder = tmp_path / f"w{worker}-{i}"
            xr.save(folder / "xr")
            text_model.save(folder / "text")
            qac.save(folder / "qac")
            copies = [(XRLinearClassifier.load(folder / "xr"), TextXRLinear.load(folder / "text"),
                       SessionAutocompleter.load(folder / "qac")),
                      pickle.loads(pickle.dumps((xr, text_model, qac)))]
            for copy in copies:
                check(*copy, i)
            with lock:
                calls["copies"] += len(copies)

    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(predictor, w) for w in range(8)] + [pool.submit(copier, w) for w in range(2)]
        for f in futures:
            f.result(timeout=300)  # re-raises a wrong answer; a deadlock would time out
    assert calls == {"predict": 8 * 40, "copies": 2 * 6 * 2}

"""Thread safety and GIL release."""

from __future__ import annotations

import os
import signal
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


def _count_while(running: threading.Event, stop: threading.Event) -> int:
    count = 0
    running.wait()
    while not stop.is_set():
        count += 1
    return count


def _progress_during(call) -> tuple[float, float, float]:
    """Runs `call` in a thread while this thread counts; returns (count rate while `call` runs,
    count rate alone, duration of `call`)."""
    # Baseline: the same counting loop, alone, for 0.1 s.
    stop = threading.Event()
    go = threading.Event()
    go.set()
    timer = threading.Timer(0.1, stop.set)
    t0 = time.perf_counter()
    timer.start()
    alone = _count_while(go, stop) / (time.perf_counter() - t0)

    started, done = threading.Event(), threading.Event()
    duration = []

    def work():
        started.set()
        t = time.perf_counter()
        call()
        duration.append(time.perf_counter() - t)
        done.set()

    th = threading.Thread(target=work)
    th.start()
    count = _count_while(started, done)
    th.join()
    return count / duration[0], alone, duration[0]


def test_predict_releases_the_gil(big):
    model, X = big
    during, alone, seconds = _progress_during(lambda: predict(model, X, n_threads=1))
    assert seconds > 0.05, "the predict call is too short to tell"
    assert during > 0.2 * alone, (
        f"the main thread counted at {during:.0f}/s during a {seconds:.2f} s predict vs {alone:.0f}/s alone: "
        "the GIL is held"
    )


def test_single_row_predict_releases_the_gil(big):
    model, X = big

    def many_single_rows():
        for i in range(300):
            predict(model, X[i : i + 1])

    during, alone, seconds = _progress_during(many_single_rows)
    assert during > 0.2 * alone, f"{during:.0f}/s during vs {alone:.0f}/s alone"


def test_train_releases_the_gil():
    X = sp.random(1500, 500, density=0.02, random_state=3, dtype=np.float32, format="csr")
    Y = sp.random(1500, 300, density=0.01, random_state=4, dtype=np.float32, format="csr")
    Y.data[:] = 1

    def train():
        raw_train(csr_args(X), csr_args(Y), [np.zeros(300, np.uint32)])

    during, alone, seconds = _progress_during(train)
    assert seconds > 0.05, "the train call is too short to tell"
    assert during > 0.2 * alone, f"{during:.0f}/s during a {seconds:.2f} s train vs {alone:.0f}/s alone"


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

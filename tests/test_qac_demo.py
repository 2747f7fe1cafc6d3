"""The autocompletion demo (pecos_rs.qac._server): its page in a real headless Chromium, its JSON API.

The browser tests need Debian's chromium and chromium-driver (scripts/install_browser.sh); they are
skipped without them, except under CI, where a missing browser fails.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.wait import WebDriverWait

from pecos_rs.qac._server import MAX_INPUT_CHARS, serve

#: Every wait is bounded by this many seconds.
TIMEOUT = 5.0

VOCABULARY = (
    "new york weather", "new york times", "new year recipes", "new york city map", "new yoga mat",
    "news today", "weather forecast", "weather radar", "weekend trips", "recipes with rice",
    "rain jacket", "train schedule",
)  # fmt: skip
#: What the stand-in suggests for the prefix "new y" after "weather forecast" (or no previous query).
NEW_Y = ["new york weather", "new york times", "new year recipes", "new york city map", "new yoga mat"]


class StandInAutocompleter:
    """Answers like SessionAutocompleter.suggest: the vocabulary entries starting with the prefix,
    those sharing a word with the previous query first, scores 1, 1/2, 1/3, ...

    The answer for `held_prefix` waits (at most TIMEOUT) until `release` is set, so that it comes
    after the answers to later keystrokes; `holding` is set once that request has arrived.
    """

    def __init__(self, held_prefix: str | None = None):
        self.held_prefix = held_prefix
        self.holding = threading.Event()
        self.release = threading.Event()

    def suggest(self, prev_query: str, prefix: str, k: int = 10) -> list[tuple[str, float]]:
        if prefix == self.held_prefix:
            self.holding.set()
            self.release.wait(TIMEOUT)
        prev_words = set(prev_query.split())
        matches = sorted((q for q in VOCABULARY if q.startswith(prefix)), key=lambda q: not prev_words & set(q.split()))
        return [(q, 1 / (rank + 1)) for rank, q in enumerate(matches[:k])]


@contextlib.contextmanager
def running(autocompleter):
    """The demo server for `autocompleter` on a free port, serving in a thread."""
    server = serve(autocompleter, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def server():
    with running(StandInAutocompleter()) as server:
        yield server


# ------------------------------------------------------------------------------------ JSON API


def get(url: str, method: str = "GET") -> tuple[int, dict]:
    """Status and JSON body of a request, error statuses included."""
    try:
        with urlopen(Request(url, method=method), timeout=TIMEOUT) as response:
            assert response.headers["Content-Type"] == "application/json"
            return response.status, json.load(response)
    except HTTPError as e:
        with e:
            assert e.headers["Content-Type"] == "application/json"
            return e.code, json.load(e)


def suggest_url(server, **params) -> str:
    return f"{server.url}suggest?{urlencode(params)}"


def test_serve_binds_loopback_on_a_free_port(server):
    host, port = server.server_address
    assert host == "127.0.0.1" and port > 0
    assert server.url == f"http://127.0.0.1:{port}/"


def test_suggest_answers_json(server):
    status, body = get(suggest_url(server, prev="weather forecast", prefix="new y", k=3))
    assert status == 200
    assert body["prev"] == "weather forecast" and body["prefix"] == "new y"
    assert body["suggestions"] == [
        {"query": "new york weather", "score": 1.0},
        {"query": "new york times", "score": 0.5},
        {"query": "new year recipes", "score": 1 / 3},
    ]
    assert isinstance(body["ms"], float) and 0 <= body["ms"] < 1000

    status, body = get(suggest_url(server, prev="", prefix=""))  # k defaults to 10
    assert status == 200 and len(body["suggestions"]) == 10
    status, body = get(suggest_url(server, prev="café ☕ & more", prefix="n" * MAX_INPUT_CHARS, k=100))
    assert status == 200 and body["prev"] == "café ☕ & more" and body["suggestions"] == []


@pytest.mark.parametrize(
    "path, status, error",
    [
        ("suggest?prefix=new", 400, "missing parameter 'prev'"),
        ("suggest?prev=news", 400, "missing parameter 'prefix'"),
        ("suggest?prev=a&prefix=b&prev=c", 400, "parameter 'prev' given 2 times"),
        ("suggest?prev=a&prefix=b&k=0", 400, "k must be an int in 1..100, got '0'"),
        ("suggest?prev=a&prefix=b&k=101", 400, "k must be an int in 1..100, got '101'"),
        ("suggest?prev=a&prefix=b&k=-1", 400, "k must be an int in 1..100, got '-1'"),
        ("suggest?prev=a&prefix=b&k=1.5", 400, "k must be an int in 1..100, got '1.5'"),
        ("suggest?prev=a&prefix=b&k=ten", 400, "k must be an int in 1..100, got 'ten'"),
        ("suggest?prev=a&prefix=b&k=", 400, "k must be an int in 1..100, got ''"),
        ("suggest?prev=a&prefix=b&k=%D9%A3", 400, "k must be an int in 1..100, got '٣'"),
        (f"suggest?prev={'a' * 1001}&prefix=b", 400, "parameter 'prev' is longer than 1000 characters"),
        (f"suggest?prev=a&prefix={'%C3%A9' * 1001}", 400, "parameter 'prefix' is longer than 1000 characters"),
        ("nope", 404, "no such path: /nope"),
        ("suggest/more?prev=a&prefix=b", 404, "no such path: /suggest/more"),
    ],
)
def test_bad_requests_get_json_errors(server, path, status, error):
    assert get(server.url + path) == (status, {"error": error})


def test_malformed_requests_get_json_errors(server):
    assert get(server.url, method="POST") == (501, {"error": "Unsupported method ('POST')"})
    with socket.create_connection(server.server_address, timeout=TIMEOUT) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")  # answered as HTTP/0.9: no status line, the body alone
        assert json.loads(sock.makefile("rb").read()) == {"error": "Bad request syntax ('NONSENSE')"}


class FailingAutocompleter:
    """A model that raises, or answers what cannot be sent, depending on the prefix."""

    def suggest(self, prev_query, prefix, k=10):
        return {"raise": lambda: 1 / 0, "nan": lambda: [("news", math.nan)], "none": lambda: None}[prefix]()


def test_model_failures_become_500_and_nothing_is_printed(capfd):
    with running(FailingAutocompleter()) as server:
        for prefix, error in [
            ("raise", "ZeroDivisionError: division by zero"),
            ("nan", "ValueError: Out of range float values are not JSON compliant"),
            ("none", "TypeError: 'NoneType' object is not iterable"),
        ]:
            assert get(suggest_url(server, prev="", prefix=prefix)) == (500, {"error": f"the model failed: {error}"})
        with urlopen(server.url, timeout=TIMEOUT) as response:  # still serving
            assert response.status == 200
    assert capfd.readouterr() == ("", "")


def test_serve_refuses_an_object_without_suggest():
    with pytest.raises(TypeError, match="must have a suggest"):
        serve(object(), port=0)


def test_concurrent_burst_is_answered_correctly(server):
    prefixes = [VOCABULARY[i % len(VOCABULARY)][: 1 + i % 6] for i in range(64)]

    def answer(i):
        return get(suggest_url(server, prev=f"session {i}", prefix=prefixes[i], k=5))

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(answer, range(len(prefixes)), timeout=4 * TIMEOUT))
    for i, (status, body) in enumerate(answers):
        expected = [q for q in VOCABULARY if q.startswith(prefixes[i])][:5]
        assert status == 200 and body["prev"] == f"session {i}" and body["prefix"] == prefixes[i]
        assert sorted(s["query"] for s in body["suggestions"]) == sorted(expected)


# ------------------------------------------------------------------------------------ browser


@pytest.fixture(scope="module")
def browser():
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        reason = "Debian's chromium and chromium-driver are not installed (bash scripts/install_browser.sh)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must install them")
        pytest.skip(reason)
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        driver.set_page_load_timeout(TIMEOUT)
        driver.set_script_timeout(TIMEOUT)
        yield driver
    finally:
        driver.quit()


_PAGE_STATE = """
const list = document.getElementById("suggestions");
return {prev: list.dataset.prev, prefix: list.dataset.prefix,
        queries: Array.from(list.querySelectorAll(".query"), e => e.textContent),
        timing: document.getElementById("timing").textContent,
        outdated: list.classList.contains("outdated"),
        pending: Number(document.getElementById("status").dataset.pending)};
"""


def wait_for_answer(driver, prev: str, prefix: str, settled: bool = True) -> dict:
    """Waits (at most TIMEOUT) until the page shows the answer for what is typed: suggestions all
    starting with `prefix`, the server time, nothing newer awaited and, if `settled`, no request
    at all in flight; returns the page's state."""
    state = {}

    def answered(driver) -> bool:
        state.update(driver.execute_script(_PAGE_STATE))
        return (
            (state["prev"], state["prefix"]) == (prev, prefix)
            and bool(state["queries"])
            and all(q.startswith(prefix) for q in state["queries"])
            and re.fullmatch(r"\d+\.\d\d ms", state["timing"]) is not None
            and not state["outdated"]
            and (state["pending"] == 0 or not settled)
        )

    try:
        WebDriverWait(driver, TIMEOUT, poll_frequency=0.02).until(answered)
    except TimeoutException:
        pytest.fail(f"no answer to {(prev, prefix)!r} shown within {TIMEOUT} s; the page shows {state}")
    return state


def type_slowly(driver, prev: str, prefix: str):
    """Types `prev`, then `prefix`, into the empty fields one character at a time, waiting after
    each character for its answer."""
    typed = {"prev": "", "prefix": ""}
    for field, text in (("prev", prev), ("prefix", prefix)):
        element = driver.find_element("id", field)
        for char in text:
            element.send_keys(char)
            typed[field] += char
            wait_for_answer(driver, typed["prev"], typed["prefix"])


def test_page_updates_at_every_keystroke(browser, server):
    browser.get(server.url)
    assert wait_for_answer(browser, "", "")["queries"][0] == VOCABULARY[0]
    type_slowly(browser, "weather forecast", "new y")
    state = wait_for_answer(browser, "weather forecast", "new y")
    assert state["queries"] == NEW_Y
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(name.startswith(server.url + "suggest?") for name in resources)  # nothing external


def test_late_answer_to_an_earlier_keystroke_is_dropped(browser):
    model = StandInAutocompleter(held_prefix="new")
    with running(model) as server:
        browser.get(server.url)
        wait_for_answer(browser, "", "")
        browser.find_element("id", "prefix").send_keys("new y")
        wait_for_answer(browser, "", "new y", settled=False)
        assert model.holding.wait(TIMEOUT), "the request for 'new' never reached the model"
        model.release.set()
        WebDriverWait(browser, TIMEOUT, poll_frequency=0.02).until(
            lambda driver: driver.execute_script(_PAGE_STATE)["pending"] == 0
        )
        state = wait_for_answer(browser, "", "new y")
        assert state["queries"] == NEW_Y

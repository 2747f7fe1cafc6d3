"""A local web page to try an autocompleter: type a previous query and a prefix, see suggestions.

:func:`serve` binds a :class:`DemoServer` (standard library only). ``GET /`` is one self-contained
page (inline CSS and JS) that asks ``GET /suggest?prev=...&prefix=...&k=10`` at every keystroke and
shows the answer with the server-side time of the call; an answer arriving after the answer to a
later keystroke is dropped. ``/suggest`` answers JSON
``{"prev", "prefix", "suggestions": [{"query", "score"}], "ms"}``; every error is JSON
``{"error": ...}``: 400 for a bad request, 404 for an unknown path, 500 when the model fails.

Any object with ``suggest(prev_query, prefix, k) -> [(query, score), ...]`` (best first) is served,
such as :class:`pecos_rs.qac.SessionAutocompleter`. Requests are logged at DEBUG level and model
failures at ERROR level on the ``"pecos_rs.http"`` logger; nothing is printed.
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from .._http import MAX_INPUT_CHARS, MAX_K, JsonHandler, ModelServer, k_param, one_param

__all__ = ["MAX_INPUT_CHARS", "MAX_K", "DemoServer", "serve"]

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>pecos_rs: session-aware query autocompletion</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  main { max-width: 640px; margin: 24px auto; padding: 20px 28px; background: #fff;
         border-radius: 10px; box-shadow: 0 1px 4px rgba(0, 0, 0, .12); }
  h1 { font-size: 22px; margin: 0 0 4px; }
  .hint { margin: 0 0 18px; color: #5a6275; font-size: 14px; }
  label { display: block; margin-bottom: 12px; font-size: 14px; color: #5a6275; }
  input { display: block; box-sizing: border-box; width: 100%; margin-top: 4px; padding: 8px 10px;
          font: inherit; border: 1px solid #c4c9d4; border-radius: 6px; }
  input:focus { outline: 2px solid #3d6fe0; border-color: transparent; }
  #status { min-height: 20px; margin: 14px 0 6px; font-size: 14px; color: #5a6275; }
  #status.error { color: #b3261e; }
  ol { margin: 0; padding: 0; list-style: none; }
  li { display: flex; justify-content: space-between; padding: 7px 10px; border-bottom: 1px solid #eceef2; }
  .score { color: #8a91a1; font-variant-numeric: tabular-nums; }
  .outdated { opacity: .5; transition: opacity .2s .2s; }
</style>
</head>
<body>
<main>
  <h1>Session-aware query autocompletion</h1>
  <p class="hint">The next query of a search session, suggested from the previous query and the
    prefix typed so far.</p>
  <label>Previous query <input id="prev" placeholder="weather forecast" autocomplete="off" autofocus></label>
  <label>Prefix <input id="prefix" placeholder="new y" autocomplete="off"></label>
  <p id="status" data-pending="0"><span id="count"></span><span id="timing"></span></p>
  <ol id="suggestions"></ol>
</main>
<script>
"use strict";
const prev = document.getElementById("prev");
const prefix = document.getElementById("prefix");
const statusLine = document.getElementById("status");
const count = document.getElementById("count");
const timing = document.getElementById("timing");
const list = document.getElementById("suggestions");
let sent = 0;     // number of the latest request
let shown = 0;    // number of the request whose answer is displayed
let pending = 0;  // requests not answered yet

function item(suggestion, typed) {
  const li = document.createElement("li");
  const query = document.createElement("span");
  query.className = "query";
  if (typed && suggestion.query.startsWith(typed)) {
    const bold = document.createElement("b");
    bold.textContent = typed;
    query.append(bold, suggestion.query.slice(typed.length));
  } else {
    query.textContent = suggestion.query;
  }
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = suggestion.score.toFixed(3);
  li.append(query, score);
  return li;
}

function show(ok, body) {
  statusLine.classList.toggle("error", !ok);
  if (ok) {
    list.replaceChildren(...body.suggestions.map(s => item(s, body.prefix)));
    list.dataset.prev = body.prev;
    list.dataset.prefix = body.prefix;
    const n = body.suggestions.length;
    count.textContent = (n === 1 ? "1 suggestion" : n + " suggestions") + ", server time ";
    timing.textContent = body.ms.toFixed(2) + " ms";
  } else {
    list.replaceChildren();
    delete list.dataset.prev;
    delete list.dataset.prefix;
    count.textContent = body.error;
    timing.textContent = "";
  }
}

async function update() {
  const id = ++sent;
  statusLine.dataset.pending = ++pending;
  list.classList.add("outdated");
  const query = new URLSearchParams({prev: prev.value, prefix: prefix.value, k: "10"});
  let ok, body;
  try {
    const response = await fetch("/suggest?" + query, {cache: "no-store"});
    ok = response.ok;
    body = await response.json();
  } catch (e) {
    ok = false;
    body = {error: "no answer from the server (" + e.message + ")"};
  }
  statusLine.dataset.pending = --pending;
  if (id < shown) return;  // the answer to a later keystroke is already displayed
  shown = id;
  show(ok, body);
  list.classList.toggle("outdated", shown !== sent);
}

prev.addEventListener("input", update);
prefix.addEventListener("input", update);
update();
</script>
</body>
</html>
""".encode()

# No external assets: anything but the page's own inline code and its own /suggest is refused.
_PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:"
)


def _suggest_args(query: str) -> tuple[str, str, int]:
    """``(prev, prefix, k)`` of a /suggest query string, or BadRequest."""
    params = parse_qs(query, keep_blank_values=True)
    return one_param(params, "prev"), one_param(params, "prefix"), k_param(one_param(params, "k", "10"))


class _Handler(JsonHandler):
    server: DemoServer

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            self.send(HTTPStatus.OK, "text/html; charset=utf-8", _PAGE, {"Content-Security-Policy": _PAGE_POLICY})
        elif url.path == "/suggest":
            self.answer(lambda: self._suggest(url.query))
        else:
            self.send_error(HTTPStatus.NOT_FOUND, f"no such path: {url.path}")

    def _suggest(self, query: str) -> dict:
        prev, prefix, k = _suggest_args(query)
        answer = self.server.autocompleter.suggest(prev, prefix, k=k)
        suggestions = [{"query": text, "score": float(score)} for text, score in answer]
        return {"prev": prev, "prefix": prefix, "suggestions": suggestions}


class DemoServer(ModelServer):
    """The demo's HTTP server: one thread per request, all calling ``autocompleter.suggest``."""

    def __init__(self, address: tuple[str, int], autocompleter):
        if not callable(getattr(autocompleter, "suggest", None)):
            raise TypeError(f"autocompleter must have a suggest(prev_query, prefix, k) method, got {autocompleter!r}")
        super().__init__(address, _Handler, autocompleter)

    @property
    def autocompleter(self):
        return self.model


def serve(autocompleter, host: str = "127.0.0.1", port: int = 8000) -> DemoServer:
    """Bind the demo page for `autocompleter` on `host`:`port` (0: any free port, see ``.url``).

    Returns the bound server: call its ``serve_forever()`` (in a thread, or until Ctrl-C), then
    ``shutdown()`` from another thread and ``server_close()``.
    """
    return DemoServer((host, port), autocompleter)

"""JSON over HTTP for a :class:`~pecos_rs.TextXRLinear` (``pecos-rs serve``).

* ``GET /predict?text=...&k=10`` -> ``{"text", "labels": [{"label", "score"}], "ms"}``;
* ``POST /predict`` with ``{"texts": [...], "k": 10}`` -> ``{"results": [{"text", "labels"}], "ms"}``
  (at most MAX_BATCH texts, a body of at most MAX_BODY_BYTES);
* ``GET /health`` -> ``{"status": "ok", "labels": <number of labels>, "memory_mapped": <bool>, "ms"}``.

An empty or blank text, a missing or repeated parameter, a bad ``k`` or a malformed body is a 400
``{"error": ...}``; an unknown path a 404.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from ._http import MAX_INPUT_CHARS, BadRequest, JsonHandler, ModelServer, k_param, one_param

#: Most texts in one POST /predict.
MAX_BATCH = 1000
#: Largest POST body accepted.
MAX_BODY_BYTES = 1 << 20


def _checked_text(text, where: str) -> str:
    if not isinstance(text, str):
        raise BadRequest(f"{where} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise BadRequest(f"{where} is an empty query")
    if len(text) > MAX_INPUT_CHARS:
        raise BadRequest(f"{where} is longer than {MAX_INPUT_CHARS} characters")
    return text


def _labels(answer) -> list:
    return [{"label": str(name), "score": float(score)} for name, score in answer]


class _Handler(JsonHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/predict":
            self.answer(lambda: self._predict_one(url.query))
        elif url.path == "/health":
            self.answer(lambda: {"status": "ok", "labels": len(self.server.model.labels_),
                                 "memory_mapped": self.server.model.classifier_.model_.is_memory_mapped})
        else:
            self.send_error(HTTPStatus.NOT_FOUND, f"no such path: {url.path}")

    def do_POST(self):
        if urlsplit(self.path).path != "/predict":
            return self.send_error(HTTPStatus.NOT_FOUND, f"no such path: {self.path}")
        self.answer(self._predict_batch)

    def _predict_one(self, query: str) -> dict:
        params = parse_qs(query, keep_blank_values=True)
        text = _checked_text(one_param(params, "text"), "text")
        k = k_param(one_param(params, "k", "10"))
        return {"text": text, "labels": _labels(self.server.model.predict_one(text, k=k))}

    def _predict_batch(self) -> dict:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise BadRequest("a POST needs a Content-Length") from None
        if not 0 <= length <= MAX_BODY_BYTES:
            raise BadRequest(f"the body must be at most {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.rfile.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadRequest(f"the body is not JSON: {e}") from None
        if not isinstance(body, dict) or not isinstance(body.get("texts"), list):
            raise BadRequest('the body must be {"texts": [...], "k": 10}')
        texts = body["texts"]
        if not 1 <= len(texts) <= MAX_BATCH:
            raise BadRequest(f"texts must hold 1..{MAX_BATCH} strings")
        texts = [_checked_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
        k = k_param(body.get("k", 10))
        answers = self.server.model.predict(texts, k=k)
        return {"results": [{"text": t, "labels": _labels(a)} for t, a in zip(texts, answers)]}


class PredictServer(ModelServer):
    """The HTTP server of a text-to-labels model: one thread per request."""

    def __init__(self, address: tuple[str, int], model):
        if not callable(getattr(model, "predict_one", None)):
            raise TypeError(f"model must have predict_one(text, k) and predict(texts, k), got {model!r}")
        super().__init__(address, _Handler, model)

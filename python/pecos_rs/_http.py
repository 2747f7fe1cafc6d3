"""What the package's HTTP servers share (standard library only): a threaded server bound to a
model, JSON answers, every error as JSON ``{"error": ...}``, query-string parameters checked, and
requests logged rather than printed.

Subclasses of :class:`JsonHandler` route ``do_GET`` / ``do_POST``; raising :class:`BadRequest`
inside :meth:`JsonHandler.answer` gives a 400 with its message, any other exception of the model a
500 (logged with its traceback at ERROR level).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger("pecos_rs.http")
# Unconfigured logging would print model failures (with their tracebacks) on stderr.
logger.addHandler(logging.NullHandler())

#: Longest text accepted in one query parameter, in characters.
MAX_INPUT_CHARS = 1000
#: Most results one request may ask for.
MAX_K = 100


class BadRequest(Exception):
    """A request refused with 400; the message says why."""


def one_param(params: dict, name: str, default: str | None = None) -> str:
    """The single value of query parameter `name` (parsed by ``parse_qs``; `default` if absent),
    at most MAX_INPUT_CHARS long."""
    values = params.get(name)
    if values is None:
        if default is None:
            raise BadRequest(f"missing parameter {name!r}")
        return default
    if len(values) > 1:
        raise BadRequest(f"parameter {name!r} given {len(values)} times")
    if len(values[0]) > MAX_INPUT_CHARS:
        raise BadRequest(f"parameter {name!r} is longer than {MAX_INPUT_CHARS} characters")
    return values[0]


def k_param(text) -> int:
    """The number of results asked for (a str of digits or an int), in 1..MAX_K."""
    if isinstance(text, bool) or not (
        (isinstance(text, int) and 1 <= text <= MAX_K)
        or (isinstance(text, str) and text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_K)
    ):
        raise BadRequest(f"k must be an int in 1..{MAX_K}, got {text!r}")
    return int(text)


def port_number(text: str) -> int:
    """A command line's port argument (argparse type): an int in 0..65535, 0 for any free port."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is in 0..65535, got {port}")
    return port


def json_bytes(payload: dict) -> bytes:
    return json.dumps(payload, allow_nan=False, ensure_ascii=False).encode()


class JsonHandler(BaseHTTPRequestHandler):
    server: ModelServer

    def answer(self, compute) -> None:
        """Send ``compute()`` (a dict) as JSON with the milliseconds it took added as ``"ms"``: 400
        for BadRequest, 500 for anything else it raises."""
        try:
            start = time.perf_counter()
            payload = compute()
            payload["ms"] = round((time.perf_counter() - start) * 1000, 3)
            body = json_bytes(payload)
        except BadRequest as e:
            return self.send_error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception as e:  # the model is the caller's: whatever it raises or returns, answer 500
            logger.exception("the model failed on %s", self.path)
            return self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"the model failed: {type(e).__name__}: {e}")
        self.send(HTTPStatus.OK, "application/json", body)

    def send_error(self, code, message=None, explain=None):
        """Every error as JSON ``{"error": message}``, also those of http.server itself (a malformed
        request, an unsupported method: 400, 501, ...)."""
        self.log_error("%d %s", code, message)
        self.send(code, "application/json", json_bytes({"error": message or HTTPStatus(code).phrase}))

    def send(self, code, content_type: str, body: bytes, headers: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):
        logger.debug("%s %s", self.address_string(), format % args)


class ModelServer(ThreadingHTTPServer):
    """A server answering with `model`: one thread per request."""

    daemon_threads = True
    # socketserver's default backlog of 5 drops the connections of a burst, delaying them by a second.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[JsonHandler], model):
        self.model = model
        super().__init__(address, handler)

    @property
    def url(self) -> str:
        """The server's address, with the port actually bound (the one picked for port 0)."""
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/"

    def serve_until_interrupted(self) -> None:
        """Serve on this thread until Ctrl-C, then close the socket (the command lines' loop)."""
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.server_close()

    def handle_error(self, request, client_address):
        """A connection that failed (the client went away mid-answer, ...) is logged, not printed."""
        logger.debug("connection from %s failed", client_address, exc_info=True)

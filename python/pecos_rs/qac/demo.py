"""Try session-aware autocompletion in a browser: a local page showing suggestions as you type.

    python -m pecos_rs.qac.demo --model DIR [--port 8000]        # a saved SessionAutocompleter
    python -m pecos_rs.qac.demo --train-aol ../shared/data/aol-qac  # fit one on its train split first

Prints the page's address and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import time
from pathlib import Path

from .._http import port_number
from . import SessionAutocompleter
from ._server import serve


def _train_aol(data_dir: Path) -> SessionAutocompleter:
    """A SessionAutocompleter fitted on `data_dir`/train.jsonl.gz ({"prev_query", "prefix", "next_query"} a line)."""
    start = time.perf_counter()
    with gzip.open(data_dir / "train.jsonl.gz", "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    columns = [[row[name] for row in rows] for name in ("prev_query", "prefix", "next_query")]
    print(f"read {len(rows):,} training pairs from {data_dir} in {time.perf_counter() - start:.1f} s", flush=True)
    print("fitting SessionAutocompleter ...", flush=True)
    start = time.perf_counter()
    model = SessionAutocompleter(n_jobs=-1).fit(*columns)
    print(f"fitted in {time.perf_counter() - start:.1f} s", flush=True)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pecos_rs.qac.demo", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, metavar="DIR", help="load a SessionAutocompleter saved in DIR")
    source.add_argument("--train-aol", type=Path, metavar="DIR",
                        help="fit a SessionAutocompleter on DIR/train.jsonl.gz (the aol-qac data set) first")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=8000,
                        help="port to bind, 0 for any free one (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")  # the server's errors, on stderr
    try:
        model = SessionAutocompleter.load(args.model) if args.model else _train_aol(args.train_aol)
        server = serve(model, args.host, args.port)
    except (OSError, ValueError) as e:  # no such file, a corrupt model, a port in use, ...
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    print(f"Autocompletion demo at {server.url} (Ctrl-C to stop)", flush=True)
    server.serve_until_interrupted()


if __name__ == "__main__":
    main()

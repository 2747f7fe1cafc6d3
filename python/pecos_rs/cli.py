"""The ``pecos-rs`` command: train, predict with and evaluate a text-to-labels model from files.

    pecos-rs train    --data train.txt --model DIR                   # PECOS's "l1,l2<TAB>text" lines
    pecos-rs train    --texts X.trn.txt.gz --labels Y.trn.npz --label-names label_vocab.txt \\
                      [--label-texts label_titles.txt.gz] --model DIR  # the xmc-base layout
    pecos-rs predict  --model DIR [--input queries.txt] [-k 10]      # JSON lines out
    pecos-rs evaluate --model DIR --data test.txt                    # P@k, R@k, nDCG@k
    pecos-rs evaluate --model DIR --texts X.tst.txt.gz --labels Y.tst.npz
    pecos-rs sweep    --model DIR --data val.txt --out DIR       # threshold x beam: CSV, table, PNG
    pecos-rs serve    --model DIR [--port 8000]   # JSON over HTTP: this model or an autocompleter

Text files may be gzipped (``.gz``). Bad files or arguments end with a one-line message on
stderr and exit status 2 (no traceback); progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from . import retrieval
from ._http import ModelServer, port_number
from .exceptions import PecosError
from .metrics import ndcg_at_k, precision_recall_at_k
from .retrieval import DEFAULT_FEATURES, TextXRLinear
from .text import PRESETS, TextFeaturizer, preset_blocks
from .xlinear import XRLinearClassifier

#: Exit status of a run stopped by bad input (argparse's own, for usage errors).
EXIT_BAD_INPUT = 2


class CliError(Exception):
    """Bad input found by the command: its message is shown as is, exit status 2."""


# ------------------------------------------------------------------------------------ reading


def _open_text(path: Path):
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def read_lines(path: Path) -> list:
    """The lines of a UTF-8 text file (gzipped if it ends in .gz), without their line ends."""
    try:
        with _open_text(path) as f:
            return [line.rstrip("\r\n") for line in f]
    except UnicodeDecodeError as e:
        raise CliError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except (OSError, EOFError) as e:  # a truncated or corrupt gzip file, ...
        raise CliError(f"{path}: cannot be read: {e}") from None


def read_labelled(path: Path) -> tuple:
    """``(texts, label lists)`` of a file in PECOS's text format: ``label1,label2<TAB>text`` a line
    (an empty label field is a text without labels)."""
    texts, labels = [], []
    for number, line in enumerate(read_lines(path), start=1):
        field, tab, text = line.partition("\t")
        if not tab:
            raise CliError(f"{path}, line {number}: expected 'label1,label2<TAB>text', found no tab")
        names = [name.strip() for name in field.split(",")] if field.strip() else []
        if any(not name for name in names):
            raise CliError(f"{path}, line {number}: empty label name in {field!r}")
        texts.append(text)
        labels.append(names)
    if not texts:
        raise CliError(f"{path}: no lines")
    return texts, labels


def read_matrix(path: Path) -> sp.csr_matrix:
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        return sp.load_npz(path).tocsr()
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise CliError(f"{path}: not a scipy sparse .npz file ({e})") from None


def read_dataset(args) -> tuple:
    """``(texts, labels)`` from ``--data`` or from ``--texts`` + ``--labels``."""
    if args.data is not None:
        if args.texts is not None or args.labels is not None:
            raise CliError("give either --data or --texts with --labels, not both")
        return read_labelled(args.data)
    if args.texts is None or args.labels is None:
        raise CliError("give --data FILE, or --texts FILE with --labels FILE")
    texts, Y = read_lines(args.texts), read_matrix(args.labels)
    if Y.shape[0] != len(texts):
        raise CliError(f"{args.texts} has {len(texts)} lines but {args.labels} has {Y.shape[0]} rows")
    return texts, Y


# ---------------------------------------------------------------------------------- commands


def _weight_or_auto(value: str):
    """A number, or "auto" (argparse type of the weights that may be auto; the model checks the
    range)."""
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {value!r}") from None


def cmd_train(args) -> None:
    texts, labels = read_dataset(args)
    names = read_lines(args.label_names) if args.label_names else None
    label_texts = read_lines(args.label_texts) if args.label_texts else None
    if label_texts is not None and names is None:
        raise CliError("--label-texts needs --label-names (the labels its lines belong to)")
    if sp.issparse(labels) and names is None:
        raise CliError("--labels (a matrix) needs --label-names (one name per column)")
    classifier = XRLinearClassifier(
        threshold=args.threshold, n_splits=args.n_splits,
        max_leaf_size=args.max_leaf_size, n_trees=args.n_trees, topk=args.k, n_jobs=args.n_jobs,
        random_state=args.seed, verbose=1,
    )
    model = TextXRLinear(TextFeaturizer(blocks=preset_blocks(args.features, n_jobs=args.n_jobs)), classifier,
                         label_text_weight=args.label_text_weight, centroid_weight=args.centroid_weight,
                         neighbour_weight=args.neighbour_weight, label_name_weight=args.label_name_weight,
                         rank_weight=args.rank_weight, co_click_weight=args.co_click_weight,
                         beam_size=args.beam_size)
    _progress(f"training on {len(texts):,} texts ...")
    start = time.perf_counter()
    model.fit(texts, labels, label_names=names, label_texts=label_texts)
    _progress(f"trained in {time.perf_counter() - start:.1f} s: {len(model.labels_):,} labels, "
              f"{model.classifier_.model_.nnz:,} weights")
    if args.weight_dtype != "float32":
        model = model.compact(args.weight_dtype)
        _progress(f"weights compacted to {args.weight_dtype}")
    model.save(args.model)
    _progress(f"saved to {args.model}")


#: Texts predicted together by `predict` (all threads), then written.
PREDICT_BATCH = 4096


def cmd_predict(args) -> None:
    model = _load(args.model)
    lines = read_lines(args.input) if args.input is not None else [line.rstrip("\r\n") for line in sys.stdin]
    out = sys.stdout
    progress = _Progress("predicting", len(lines))
    for start in range(0, len(lines), PREDICT_BATCH):
        batch = lines[start:start + PREDICT_BATCH]
        queries = [text for text in batch if text.strip()]
        answers = iter(model.predict(queries, k=args.k)) if queries else iter(())
        for text in batch:
            record = {"text": text}
            if text.strip():
                record["labels"] = [{"label": name, "score": round(score, 6)} for name, score in next(answers)]
            else:
                record["labels"], record["error"] = [], "empty query"
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        progress.update(len(batch))
    progress.close()


def cmd_evaluate(args) -> None:
    model = _load(args.model)
    texts, Y = _evaluation_data(args, model)
    ks = sorted(set(args.ks))
    start = time.perf_counter()
    top, _ = model.predict_topk(texts, max(ks))
    seconds = time.perf_counter() - start
    report = {**precision_recall_at_k(Y, top, ks), **ndcg_at_k(Y, top, ks)}
    if args.json:
        print(json.dumps({"rows": len(texts), "seconds": round(seconds, 3), **report}))
        return
    print(f"{len(texts):,} rows, predicted in {seconds:.2f} s ({1000 * seconds / len(texts):.3f} ms/row)")
    for metric in ("P", "R", "nDCG"):
        print("  ".join(f"{metric}@{k} {report[f'{metric}@{k}']:6.2f}" for k in ks))


def cmd_sweep(args) -> None:
    from .sweep import markdown_table, plot, sweep, write_csv

    model = _load(args.model)
    texts, Y = _evaluation_data(args, model)
    args.out.mkdir(parents=True, exist_ok=True)

    def report(row):
        _progress(f"threshold {row['threshold']:g}, beam {row['beam_size']}: R@10 {row['R@10']:.4f}, "
                  f"R@100 {row['R@100']:.4f}, p50 {row['p50_ms']:.3f} ms")

    rows = sweep(model, texts, Y, thresholds=args.thresholds, beam_sizes=args.beams,
                 n_latency_queries=args.latency_queries, passes=args.passes, progress=report)
    write_csv(rows, args.out / "sweep.csv")
    table = markdown_table(rows)
    (args.out / "sweep.md").write_text(table)
    written = [args.out / "sweep.csv", args.out / "sweep.md"]
    try:
        written += plot(rows, args.out)
    except ImportError as e:
        _progress(f"no plots: {e}")
    print(table, end="")
    _progress("wrote " + ", ".join(str(p) for p in written))


def _evaluation_data(args, model) -> tuple:
    """``(texts, Y)``: the labelled texts of the arguments, Y's columns the model's labels, then
    any test label the model does not know (relevant, so a miss for every prediction)."""
    texts, labels = read_dataset(args)
    column = {name: j for j, name in enumerate(model.labels_)}
    if sp.issparse(labels):
        if labels.shape[1] != len(column):
            raise CliError(f"{args.labels} has {labels.shape[1]} label columns but the model has {len(column)} labels")
        Y = labels
    else:
        # Test labels the model does not know stay relevant: they count as misses, not as absent.
        unknown = sorted({name for row in labels for name in row if name not in column})
        extra = {name: len(column) + i for i, name in enumerate(unknown)}
        index = {**column, **extra}
        rows = [sorted({index[name] for name in row}) for row in labels]
        indptr = np.cumsum([0] + [len(r) for r in rows])
        indices = np.array([j for r in rows for j in r], dtype=np.int64)
        Y = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), len(column) + len(unknown)))
        if unknown:
            _progress(f"{len(unknown):,} test labels are unknown to the model (counted as misses)")
    return texts, Y


def cmd_serve(args) -> None:
    if not args.model.is_dir():
        raise CliError(f"{args.model}: no such model directory")
    if (args.model / "autocompleter.json").is_file():
        from .qac import SessionAutocompleter
        from .qac._server import serve

        server: ModelServer = serve(SessionAutocompleter.load(args.model, mmap=args.mmap), args.host, args.port)
        routes = "GET / (a page), GET /suggest?prev=...&prefix=...&k=10"
    else:
        from ._predict_server import PredictServer

        server = PredictServer((args.host, args.port), _load(args.model, mmap=args.mmap))
        routes = 'GET /predict?text=...&k=10, POST /predict {"texts": [...], "k": 10}, GET /health'
    print(f"serving {args.model} at {server.url} ({routes}); Ctrl-C to stop", flush=True)
    server.serve_until_interrupted()


def _load(path: Path, mmap: bool | None = None) -> TextXRLinear:
    if not path.exists():
        raise CliError(f"{path}: no such model directory")
    return TextXRLinear.load(path, mmap=mmap)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Progress:
    """A progress bar on stderr, redrawn in place, when stderr is a terminal (nothing otherwise:
    logs and pipes get the summary lines only)."""

    WIDTH = 30

    def __init__(self, what: str, total: int):
        self.what, self.total, self.done = what, total, 0
        self.shown = sys.stderr.isatty() and total > PREDICT_BATCH

    def update(self, n: int) -> None:
        self.done += n
        if self.shown:
            filled = self.WIDTH * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            print(f"\r{self.what} [{bar}] {self.done:,}/{self.total:,}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- parsing


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _add_data_arguments(parser) -> None:
    parser.add_argument("--data", type=Path, metavar="FILE", help="'label1,label2<TAB>text' lines")
    parser.add_argument("--texts", type=Path, metavar="FILE", help="one text a line (X.*.txt[.gz])")
    parser.add_argument("--labels", type=Path, metavar="FILE", help="label indicator matrix (Y.*.npz)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pecos-rs", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:11]))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model from text files")
    _add_data_arguments(train)
    train.add_argument("--label-names", type=Path, metavar="FILE", help="one label name a line, in column order")
    train.add_argument("--label-texts", type=Path, metavar="FILE",
                       help="one text a line per label of --label-names (product titles)")
    train.add_argument("--model", type=Path, required=True, metavar="DIR", help="where to save the model")
    train.add_argument("--threshold", type=float, default=0.1, help="weight pruning threshold (default: 0.1)")
    train.add_argument("--beam-size", type=_positive_int, default=TextXRLinear().beam_size,
                       help=f"beam width (default: {TextXRLinear().beam_size})")
    train.add_argument("--n-splits", type=_positive_int, default=16, help="tree branching factor (default: 16)")
    train.add_argument("--max-leaf-size", type=_positive_int, default=100, help="labels per leaf (default: 100)")
    train.add_argument("--features", choices=sorted(PRESETS), default=DEFAULT_FEATURES,
                       help=f"text features: a TextFeaturizer preset (default: {DEFAULT_FEATURES})")
    train.add_argument("--n-trees", type=_positive_int, default=1, help="trees of the ensemble (default: 1)")
    train.add_argument("--label-text-weight", type=float, default=0.5,
                       help="weight of the label-text match in the score (default: 0.5)")
    train.add_argument("--centroid-weight", type=float, default=0.0,
                       help="weight of the label-centroid match in the score (default: 0)")
    train.add_argument("--neighbour-weight", type=_weight_or_auto, default="auto",
                       help="weight of the vote of the nearest training texts in the score; auto: "
                            f"{retrieval.AUTO_NEIGHBOUR_WEIGHT} without --label-texts, 0 with them (default: auto)")
    train.add_argument("--label-name-weight", type=_weight_or_auto, default="auto",
                       help="the most the match of the label names may weigh in the score (more for texts "
                            f"unlike the training texts); auto: {retrieval.AUTO_LABEL_NAME_WEIGHT} without "
                            "--label-texts, 0 with them (default: auto)")
    train.add_argument("--rank-weight", type=_weight_or_auto, default="auto",
                       help="the bonus of a label for its rank in each list (model, matchers); auto: "
                            f"{retrieval.AUTO_RANK_WEIGHT} without --label-texts, 0 with them (default: auto)")
    train.add_argument("--co-click-weight", type=_weight_or_auto, default="auto",
                       help="the bonus of the labels the training texts of the top labels have too; auto: "
                            f"{retrieval.AUTO_CO_CLICK_WEIGHT} without --label-texts, 0 with them (default: auto)")
    train.add_argument("-k", type=_positive_int, default=10, help="default labels per prediction (default: 10)")
    train.add_argument("--weight-dtype", choices=["float32", "float16", "int8"], default="float32",
                       help="how the saved weights are stored (see XRLinearClassifier.compact; "
                            "default: float32)")
    train.add_argument("--n-jobs", type=int, default=-1, help="threads, -1 for all cores (default: -1)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.set_defaults(run=cmd_train)

    predict = commands.add_parser("predict", help="rank labels for texts, one JSON line each")
    predict.add_argument("--model", type=Path, required=True, metavar="DIR")
    predict.add_argument("--input", type=Path, metavar="FILE", help="one text a line (default: stdin)")
    predict.add_argument("-k", type=_positive_int, default=10, help="labels per text (default: 10)")
    predict.set_defaults(run=cmd_predict)

    evaluate = commands.add_parser("evaluate", help="P@k, R@k and nDCG@k on labelled texts")
    evaluate.add_argument("--model", type=Path, required=True, metavar="DIR")
    _add_data_arguments(evaluate)
    evaluate.add_argument("-k", dest="ks", type=_positive_int, nargs="+", default=[1, 3, 5, 10],
                          help="cut-offs (default: 1 3 5 10)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(run=cmd_evaluate)

    sweep = commands.add_parser("sweep", help="threshold x beam grid: recall, latency, size (CSV, markdown, PNG)")
    sweep.add_argument("--model", type=Path, required=True, metavar="DIR")
    _add_data_arguments(sweep)
    sweep.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write the results")
    sweep.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5],
                       help="pruning thresholds, at least the model's (default: 0.1 0.2 0.3 0.5)")
    sweep.add_argument("--beams", type=_positive_int, nargs="+", default=[1, 5, 10, 20, 50],
                       help="beam widths (default: 1 5 10 20 50)")
    sweep.add_argument("--latency-queries", type=_positive_int, default=1000,
                       help="texts timed one at a time (default: 1000)")
    sweep.add_argument("--passes", type=_positive_int, default=3,
                       help="timing rounds over all settings, interleaved (default: 3)")
    sweep.set_defaults(run=cmd_sweep)

    serve = commands.add_parser("serve", help="answer JSON over HTTP on localhost")
    serve.add_argument("--model", type=Path, required=True, metavar="DIR",
                       help="a saved TextXRLinear or SessionAutocompleter")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=port_number, default=8000, help="port, 0 for any free one (default: 8000)")
    serve.add_argument("--mmap", action=argparse.BooleanOptionalAction, default=None,
                       help="map the weights instead of reading them (fast start, pages shared by every "
                            "server of the same files), or --no-mmap: read them (checks every checksum "
                            "at start); default: map the model files of 64 MiB or more on Linux")
    serve.set_defaults(run=cmd_serve)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The library reports training progress as INFO records on the "pecos_rs" logger.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("pecos_rs").setLevel(logging.INFO)
    try:
        args.run(args)
    except (CliError, PecosError, ValueError, OSError) as e:  # OSError: a missing file, a port in use
        print(f"pecos-rs {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader of stdout went away (| head)
        return 0
    except KeyboardInterrupt:
        print(f"pecos-rs {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

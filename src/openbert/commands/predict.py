"""Predictions on new text with any model, written as JSON lines: the batch-job counterpart of
`openbert serve` (the same pipelines).

    openbert predict --init_checkpoint=/tmp/mrpc --input_file=pairs.txt --output_file=preds.jsonl
    echo "a sentence" | openbert predict --init_checkpoint=minilm-l6 > vectors.jsonl

Input (--input_file, - for stdin): text lines (``A ||| B`` for a pair; ``question ||| context`` for
qa) or JSON lines: {"text": ..., "text_pair"?: ...}, {"question": ..., "context": ...} (qa),
{"words": [...]} (ner, words tagged as given), with an optional "id". Blank lines are skipped. The
task is the model's fine-tuned head (classify, qa, ner), else embed; --task picks another
(fill-mask for a checkpoint with the masked-LM head).

Output (--output_file, - for stdout): one JSON object a line, in input order, with the input's "id"
(or its "line" number) and the prediction: embed {"embedding"}, classify {"label", "score",
"scores"}, qa {"answer", "score", "start", "end"}, fill-mask {"text", "tokens", "masks"}, ner {"text",
"words", "tags", "entities"}. Lines
stream out as they are done; a file appears (atomically) only when every line has succeeded.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import sys
import time
from typing import Iterator

from ..errors import OpenBertError
from ..training.trainer import PRECISIONS
from .flags import add_bool, add_model_source_flags

logger = logging.getLogger(__name__)

TASKS = ("auto", "embed", "classify", "qa", "fill-mask", "ner")
FORMATS = ("auto", "text", "jsonl")


def add_arguments(parser) -> None:
    g = parser.add_argument_group("the model (a checkpoint path, or a named model such as minilm-l6)")
    add_model_source_flags(g, max_seq_length=None, init_checkpoint_required=True,
                           max_seq_length_help="longer texts are truncated (default: the model's "
                                               "max_position_embeddings; qa 384, fill-mask 128)")
    parser.add_argument("--task", choices=TASKS, default="auto",
                        help="auto: the model's fine-tuned head (classify, qa, ner), else embed (default: %(default)s)")
    parser.add_argument("--input_file", default="-", help="text or JSON lines; - for stdin (default: %(default)s)")
    parser.add_argument("--output_file", default="-", help="JSON lines; - for stdout (default: %(default)s)")
    parser.add_argument("--input_format", choices=FORMATS, default="auto",
                        help="auto: JSON lines when the first line is a JSON object (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=32, help="sequences per model batch (default: %(default)s)")
    parser.add_argument("--pooling", choices=("mean", "cls"), default="mean",
                        help="embed: mean over the tokens or the [CLS] vector (default: %(default)s)")
    add_bool(parser, "normalize", False, "embed: scale vectors to unit length")
    parser.add_argument("--top_k", type=int, default=5, help="fill-mask: predictions per [MASK] (default: %(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="(default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    add_bool(parser, "progress", True, "show a progress bar on stderr")


# ---------------------------------------------------------------------------------------------
# input records
# ---------------------------------------------------------------------------------------------
def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, line) of a file or stdin, non-blank lines only."""
    if path == "-":
        f = sys.stdin
    else:
        if not os.path.isfile(path):
            raise OpenBertError(f"--input_file {path} not found (or not a file)")
        f = open(path, encoding="utf-8", errors="replace", newline="\n")
    try:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield n, line
    finally:
        if f is not sys.stdin:
            f.close()


def _is_json_object(line: str) -> bool:
    if not line.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _to_input(task: str, line: str, n: int, jsonl: bool, source: str):
    """One line -> (pipeline input, the id to write: the JSON "id", else None)."""
    if not jsonl:
        if task == "qa":
            from ..tasks.features.extract import parse_line

            ex = parse_line(line, n - 1, source)
            if ex.text_b is None:
                raise OpenBertError(f"{source}, line {n}: qa needs 'question ||| context' (or JSON lines "
                                    'with "question" and "context")')
            return {"question": ex.text_a, "context": ex.text_b}, None
        return line, None
    try:
        record = json.loads(line)
    except ValueError as e:
        raise OpenBertError(f"{source}, line {n}: not valid JSON ({e}); write one JSON object a line") from None
    if not isinstance(record, dict):
        raise OpenBertError(f"{source}, line {n}: expected a JSON object, got {type(record).__name__}")
    rid = record.get("id")
    if task == "qa":
        if not isinstance(record.get("question"), str) or not isinstance(record.get("context"), str):
            raise OpenBertError(f'{source}, line {n}: qa needs "question" and "context" strings')
        return {"question": record["question"], "context": record["context"]}, rid
    if task == "ner" and "words" in record:
        words = record["words"]
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise OpenBertError(f'{source}, line {n}: "words" must be a non-empty list of non-empty strings')
        return words, rid
    text = record.get("text", record.get("text_a"))
    pair = record.get("text_pair", record.get("text_b"))
    if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
        raise OpenBertError(f'{source}, line {n}: expected {{"text": "...", "text_pair"?: "..."}} with strings')
    return ((text, pair) if pair is not None else text), rid


def _chunks(records, size: int):
    it = iter(records)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------
def _choose_task(task: str, supported: tuple[str, ...]) -> str:
    if task != "auto":
        return task
    return next((t for t in supported if t in ("qa", "classify", "ner")), "embed")


@contextlib.contextmanager
def _output(path: str):
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    from ..tasks.features.writers import check_output_path, first_json_line_has
    from ..io.fileio import atomic_open

    check_output_path(path, kind="predict output (JSON lines)",
                      is_kind=lambda p: first_json_line_has(p, "line") or first_json_line_has(p, "id"))
    with atomic_open(path, "w") as f:
        yield f


def run(args) -> int:
    from tqdm.auto import tqdm

    from ..tasks.features.extract import count_lines
    from ..serve.pipelines import PIPELINES, inspect_checkpoint, load_model

    if args.batch_size < 1:
        raise OpenBertError(f"--batch_size must be at least 1, got {args.batch_size}")
    source = "stdin" if args.input_file == "-" else args.input_file
    if args.input_file != "-" and not os.path.isfile(args.input_file):
        raise OpenBertError(f"--input_file {args.input_file} not found (or not a file)")
    if (args.output_file != "-" and args.input_file != "-"
            and os.path.abspath(args.output_file) == os.path.abspath(args.input_file)):
        raise OpenBertError("--output_file is the --input_file: write the predictions to another file")

    path, supported, _ = inspect_checkpoint(args.init_checkpoint)
    task = _choose_task(args.task, supported)
    loaded = load_model(path, task, args.device, args.precision, args.do_lower_case, args.bert_config_file,
                        args.vocab_file)
    kwargs = {"pooling": args.pooling} if task == "embed" else {}
    pipe = PIPELINES[task](loaded, max_seq_length=args.max_seq_length, batch_size=args.batch_size, **kwargs)
    options = {"embed": {"normalize": args.normalize}, "fill-mask": {"top_k": args.top_k}}.get(task, {})

    lines = _lines(args.input_file)
    first = next(lines, None)
    if first is None:
        raise OpenBertError(f"{source} has no input lines: write one text (or JSON object) a line")
    lines = itertools.chain([first], lines)
    jsonl = args.input_format == "jsonl" or (args.input_format == "auto" and _is_json_object(first[1]))
    total = count_lines(args.input_file) if args.input_file != "-" else None
    done, start = 0, time.perf_counter()
    with _output(args.output_file) as out, \
            tqdm(total=total, disable=not args.progress, desc=f"predict ({task})", unit="line",
                 dynamic_ncols=True, file=sys.stderr) as bar:
        for chunk in _chunks(lines, max(args.batch_size * 16, 256)):
            records = [(n, *_to_input(task, line, n, jsonl, source)) for n, line in chunk]
            results = _predict(pipe, records, options, source)
            for (n, _, rid), result in zip(records, results):
                key = {"id": rid} if rid is not None else {"line": n}
                value = {"embedding": result} if task == "embed" else result
                out.write(json.dumps({**key, **value}) + "\n")
            out.flush()
            done += len(records)
            bar.update(chunk[-1][0] - bar.n if total is not None else len(records))
    seconds = time.perf_counter() - start
    logger.info("%d %s predictions in %.1f s (%.1f lines/s) -> %s", done, task, seconds,
                done / max(seconds, 1e-9), "stdout" if args.output_file == "-" else args.output_file)
    return 0


def _predict(pipe, records: list, options: dict, source: str) -> list:
    """The pipeline over one chunk; an input it rejects is reported with its line number."""
    try:
        return pipe([x for _, x, _ in records], **options)
    except OpenBertError:
        for n, x, _ in records:  # find the line (only on error)
            try:
                pipe.prepare([x], **options)
            except OpenBertError as e:
                raise OpenBertError(f"{source}, line {n}: {e}") from None
        raise

"""WordPiece-tokenize stdin: one output line per input line, tokens (or ids) separated by spaces.

    openbert tokenize --vocab_file vocab.txt [--do_lower_case=true|false] [--ids] < text.txt

Input bytes are decoded as UTF-8 with invalid bytes dropped, as the original tokenizer does.
Output streams: whatever input is available is tokenized as one batch with the fast path and
written at once, so a pipe gets answers line by line and a big file goes in large batches.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..tokenization.wordpiece import FullTokenizer, validate_case_matches_checkpoint
from .flags import add_bool

_CHUNK = 1 << 20  # bytes read at most per batch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab_file", required=True, help="WordPiece vocab.txt, one token a line")
    add_bool(parser, "do_lower_case", True, "lower-case and strip accents (uncased models)")
    add_bool(parser, "ids", False, "print token ids instead of tokens")
    parser.add_argument("--init_checkpoint", default=None,
                        help="optional: check --do_lower_case against a Google checkpoint's casing")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes for large batches (0: none, -1: one per CPU)")


def run(args: argparse.Namespace) -> int:
    validate_case_matches_checkpoint(args.do_lower_case, args.init_checkpoint)
    tok = FullTokenizer(args.vocab_file, do_lower_case=args.do_lower_case)
    encode = tok.encode_batch if args.ids else tok.tokenize_batch
    out = sys.stdout
    try:
        for lines in read_line_batches(sys.stdin.buffer.fileno()):
            rows = encode(lines, workers=args.workers)
            out.write("".join(" ".join(map(str, row)) + "\n" for row in rows))
            out.flush()
    except BrokenPipeError:  # e.g. `| head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
    finally:
        tok.fast.close()
    return 0


def read_line_batches(fd: int, chunk: int = _CHUNK):
    """Yield lists of complete lines (bytes, without the newline) as they become available.

    ``os.read`` returns whatever is ready (up to ``chunk`` bytes), so interactive input is answered
    at once and large input comes in large batches. A last line without a newline is yielded too.
    """
    tail = b""
    while True:
        data = os.read(fd, chunk)
        if not data:
            break
        lines = (tail + data).split(b"\n")
        tail = lines.pop()
        if lines:
            yield lines
    if tail:
        yield [tail]

"""Learn a WordPiece vocabulary from raw text (beyond the original release).

    openbert build-vocab --input_file "corpus/*.txt" --output_file vocab.txt --vocab_size 30522
        [--do_lower_case=true|false] [--num_unused 100]

The text is pre-tokenized with FullTokenizer's own BasicTokenizer, so the vocabulary fits what
FullTokenizer looks up; the layout follows Google's ([PAD], [unused..], [UNK], [CLS], [SEP], [MASK]).
"""
from __future__ import annotations

import argparse
import itertools
import logging

from ..io.fileio import check_output_file, expand_input_files
from ..tokenization import vocab as vocab_builder
from .flags import add_bool, check_flag_values

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input_file", required=True,
                        help="raw text; comma-separated file names or glob patterns")
    parser.add_argument("--output_file", required=True, help="where to write vocab.txt")
    parser.add_argument("--vocab_size", type=int, default=30522,
                        help="total tokens, reserved ones included (Google's uncased: 30522)")
    add_bool(parser, "do_lower_case", True, "lower-case and strip accents, as an uncased model")
    parser.add_argument("--num_unused", type=int, default=100,
                        help="[unusedN] slots for tokens added later (Google's uncased vocab: 994)")
    parser.add_argument("--min_frequency", type=int, default=2,
                        help="a pair must occur this often to be merged into a piece")
    parser.add_argument("--limit_alphabet", type=int, default=1000,
                        help="keep at most this many distinct characters (the most frequent)")
    add_bool(parser, "progress", True, "show the trainer's progress bars")


def is_vocab_file(path: str) -> bool:
    """True when ``path`` reads as a vocabulary: one token (no spaces) on each of its first lines."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = list(itertools.islice(f, 1000))
    except (OSError, UnicodeDecodeError):
        return False
    return bool(lines) and all(len(line.split()) == 1 for line in lines)


def run(args: argparse.Namespace) -> int:
    check_flag_values(args)
    files = expand_input_files(args.input_file)
    check_output_file(args.output_file, "--output_file", "vocabulary (one token a line)", is_vocab_file,
                      inputs=files)
    logger.info("learning a %d-token vocabulary from %d file(s)", args.vocab_size, len(files))
    tokens = vocab_builder.learn_vocab(
        vocab_builder.read_lines(files), vocab_size=args.vocab_size,
        do_lower_case=args.do_lower_case, num_unused=args.num_unused,
        min_frequency=args.min_frequency, limit_alphabet=args.limit_alphabet,
        show_progress=args.progress)
    vocab_builder.write_vocab(tokens, args.output_file)
    sample = list(itertools.islice(itertools.chain.from_iterable(vocab_builder.read_lines(files)),
                                   20000))
    rate = vocab_builder.unk_rate(args.output_file, sample, args.do_lower_case)
    logger.info("wrote %s: %d tokens (%d reserved); [UNK] rate on the first %d input lines: %.3f%%",
                args.output_file, len(tokens), len(vocab_builder.special_tokens(args.num_unused)),
                len(sample), 100 * rate)
    return 0

"""Create masked-LM / next-sentence pre-training instances, as create_pretraining_data.py.

    openbert create-pretraining-data --input_file=corpus/*.txt --output_file=data/ \\
        --vocab_file=uncased_L-12_H-768_A-12/vocab.txt --do_lower_case --workers=4

Input: one sentence per line, blank lines between documents. For one input file the instances
are identical to the original's for the same flags and --random_seed; input file k (globs in the
order given, each sorted) is processed with seed random_seed + k, independently of --workers.
--output_format=shards (default) writes a directory of memory-mapped shards for `openbert
pretrain`; --output_format=tfrecord writes the original's TFRecord files (comma-separated list).
"""
from __future__ import annotations

import argparse
import logging

from ..tasks.pretraining.data import PretrainingDataConfig, create_pretraining_data
from ..tokenization.wordpiece import FullTokenizer
from .flags import add_bool, check_flag_values

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = PretrainingDataConfig()
    g = parser.add_argument_group("create_pretraining_data flags")
    g.add_argument("--input_file", required=True,
                   help="input raw text file(s): comma-separated paths or globs")
    g.add_argument("--output_file", required=True,
                   help="shards: the output directory; tfrecord: comma-separated output files "
                        "(instances go round-robin over them)")
    g.add_argument("--vocab_file", required=True, help="the vocab.txt the BERT model uses")
    add_bool(g, "do_lower_case", True, "lower-case the input (true for uncased models)")
    add_bool(g, "do_whole_word_mask", False, "mask whole words (all their WordPieces) at once")
    g.add_argument("--max_seq_length", type=int, default=d.max_seq_length)
    g.add_argument("--max_predictions_per_seq", type=int, default=d.max_predictions_per_seq)
    g.add_argument("--random_seed", type=int, default=d.random_seed)
    g.add_argument("--dupe_factor", type=int, default=d.dupe_factor,
                   help="passes over the input, each with different masks")
    g.add_argument("--masked_lm_prob", type=float, default=d.masked_lm_prob)
    g.add_argument("--short_seq_prob", type=float, default=d.short_seq_prob,
                   help="probability of a shorter target length for a document")
    b = parser.add_argument_group("beyond the original")
    b.add_argument("--output_format", default="shards", choices=["shards", "tfrecord"])
    b.add_argument("--workers", type=int, default=1,
                   help="input files processed in parallel (the output does not depend on it)")
    add_bool(b, "whole_corpus", False, "read all input files as ONE corpus in one process, as "
                                       "the original (identical output for several files too)")
    add_bool(b, "progress", True, "show a progress bar")


def run(args: argparse.Namespace) -> int:
    cfg = PretrainingDataConfig(
        max_seq_length=args.max_seq_length, max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=args.masked_lm_prob, short_seq_prob=args.short_seq_prob,
        dupe_factor=args.dupe_factor, random_seed=args.random_seed,
        do_whole_word_mask=args.do_whole_word_mask)
    cfg.validate()
    check_flag_values(args)
    tokenizer = FullTokenizer(args.vocab_file, args.do_lower_case)
    summary = create_pretraining_data(args.input_file, args.output_file, tokenizer, cfg,
                                      workers=args.workers, output_format=args.output_format,
                                      whole_corpus=args.whole_corpus, progress=args.progress)
    print(f"wrote {args.output_file}: {summary.text()}")
    return 0

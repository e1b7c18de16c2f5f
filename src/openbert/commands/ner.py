"""Fine-tune and evaluate on named-entity recognition (CoNLL-2003) or any CoNLL-format tagging.

    openbert ner --do_train --do_eval --do_predict --data_dir=conll2003 \\
        --init_checkpoint=cased_L-12_H-768_A-12/bert_model.ckpt --do_lower_case=false \\
        --learning_rate=5e-5 --num_train_epochs=3 --output_dir=/tmp/ner

Files in --data_dir: eng.train / eng.testa / eng.testb (CoNLL-2003) or train.txt / valid.txt /
test.txt (or name them with --train_file, --dev_file, --test_file). The tag is the last column
unless --tag_column says otherwise; the tag scheme (IOB1, IOB2, IOBES) is read from the training
file unless --tag_scheme says it. Writes the fine-tuned model (with its labels), eval_results.txt
and eval_conlleval.txt for the dev file, test_predictions.txt (conlleval's input format) for the
test file and, when the test file has tags, test_results.txt and test_conlleval.txt.
"""
from __future__ import annotations

import argparse

from ..tasks.ner import data as ner_data
from ..tasks.ner import pipeline
from .flags import (add_bool, add_fine_tuning_schedule_flags, add_fine_tuning_tail, add_model_source_flags,
                    add_run_flags, check_run_flags, fine_tuned_source, run_options, run_task)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run_classifier flags")
    g.add_argument("--data_dir", help="the input data dir: the CoNLL files")
    g.add_argument("--output_dir", required=True, help="where the model, checkpoints and results go")
    add_model_source_flags(g, 128, "maximum window length after WordPiece; longer sentences are split")
    add_run_flags(g)
    add_fine_tuning_schedule_flags(g)
    c = parser.add_argument_group("tagging")
    for split, names in ner_data.SPLIT_FILES.items():
        c.add_argument(f"--{split}_file", help=f"the {split} file: a name in --data_dir or a path "
                                               f"(default: the first of {', '.join(names)})")
    c.add_argument("--tag_column", type=int, default=-1,
                   help="the tag's column, counted from 0 (the word); negative counts from the end "
                        "(default -1: the last; CoNLL-2003: 1 POS, 2 chunk, 3 NER)")
    c.add_argument("--tag_scheme", default="auto",
                   help=f"auto (read from the training file) or one of {', '.join(ner_data.SCHEMES)} "
                        "(none: plain tags such as POS, token accuracy only)")
    c.add_argument("--doc_stride", type=int, default=None,
                   help="sentences longer than one window are split into windows this many sub-tokens "
                        "apart (default: half a window); each word is predicted once")
    add_bool(c, "document_context", False,
             "fill each window with the neighbouring sentences of the same document and predict the "
             "centre sentence only (the paper's maximal document context)")
    add_fine_tuning_tail(parser, c, "sentences")


def run(args: argparse.Namespace) -> int:
    check_run_flags(args)
    ner_data.check_scheme(args.tag_scheme)
    source = fine_tuned_source(args)
    files = pipeline.ConllFiles(args.data_dir, args.train_file, args.dev_file, args.test_file, args.tag_column,
                                args.max_train_examples, args.max_eval_examples)
    task = pipeline.NerTask(source.tokenizer, args.output_dir, files,
                            pipeline.Windows(args.max_seq_length, args.doc_stride, args.document_context),
                            args.tag_scheme, args.eval_batch_size, args.predict_batch_size, run_options(args))
    run_task(args, task, source, "ner", [args.data_dir])
    return 0

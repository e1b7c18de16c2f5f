"""Fine-tune and evaluate on sentence(-pair) classification, as run_classifier.py.

    openbert classify --task_name=MRPC --do_train --do_eval --data_dir=glue/MRPC \\
        --init_checkpoint=uncased_L-12_H-768_A-12/bert_model.ckpt --output_dir=/tmp/mrpc

Tasks: CoLA, MNLI, MNLI-MM, MRPC, XNLI, SST-2, QNLI, QQP, RTE, WNLI, STS-B (regression), SNLI, and
``custom`` (TSV/CSV/JSONL files with named columns). --vocab_file and --bert_config_file default to
the files beside --init_checkpoint. Writes eval_results.txt, test_results.tsv and the fine-tuned
model (save_pretrained) to --output_dir. Every input (flags, model, train/dev/test files) is checked
before training starts; a rerun of the same run continues from its checkpoints.
"""
from __future__ import annotations

import argparse
import logging
import os

from ..tasks.classification import pipeline
from ..tasks.classification.data import PROCESSORS, canonical_task_name
from .flags import (add_bool, add_fine_tuning_schedule_flags, add_fine_tuning_tail, add_model_source_flags,
                    add_run_flags, check_run_flags, fine_tuned_source, run_options, run_task)

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run_classifier flags")
    g.add_argument("--data_dir", help="the input data dir: the task's .tsv (or other) files")
    g.add_argument("--task_name", required=True, help=f"one of: {', '.join(PROCESSORS)}")
    g.add_argument("--output_dir", required=True, help="where the model, checkpoints and results go")
    add_model_source_flags(g, 128, "maximum total length after WordPiece; longer pairs are trimmed")
    add_run_flags(g)
    add_fine_tuning_schedule_flags(g)

    c = parser.add_argument_group("data beyond the original")
    c.add_argument("--xnli_language", default="zh", help="XNLI language (the original fixes zh)")
    for split in ("train", "dev", "test"):
        c.add_argument(f"--{split}_file", help=f"custom task: the {split} file in --data_dir (or a path); "
                                               f".tsv, .csv or .jsonl (default: {split}.tsv)")
    c.add_argument("--text_a_column", default="text_a", help="custom task: column of the first text")
    c.add_argument("--text_b_column", default=None, help="custom task: column of the second text (pairs)")
    c.add_argument("--label_column", default="label", help="custom task: column of the label")
    c.add_argument("--labels", default=None,
                   help="custom task: comma-separated label list (default: sorted labels of the train set)")
    add_bool(c, "regression", False, "custom task: the label is a number (MSE loss, Pearson/Spearman)")
    add_fine_tuning_tail(parser, c)


def _check_args(args) -> None:
    check_run_flags(args)
    canonical_task_name(args.task_name)


def _inputs(args) -> list:
    """What --output_dir must not swallow: the data files."""
    files = [os.path.join(args.data_dir, f) if f and not os.path.isabs(f) else f
             for f in (getattr(args, f"{s}_file", None) for s in ("train", "dev", "test"))]
    return [args.data_dir, *files]


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    source = fine_tuned_source(args)
    custom = pipeline.CustomColumns(
        *(getattr(args, f"{s}_file") or f"{s}.tsv" for s in ("train", "dev", "test")),
        text_a=args.text_a_column, text_b=args.text_b_column, label=args.label_column,
        labels=args.labels.split(",") if args.labels else None, is_regression=args.regression)
    processor = pipeline.processor_for(args.task_name, None if args.do_train else
                                       pipeline.label_names(source.config), args.xnli_language, custom)
    task = pipeline.ClassificationTask(processor, args.data_dir, source.tokenizer, args.max_seq_length,
                                       args.output_dir, args.eval_batch_size, args.predict_batch_size,
                                       args.max_train_examples, args.max_eval_examples, run_options(args))
    run_task(args, task, source, "classify", _inputs(args))
    return 0

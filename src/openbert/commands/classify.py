"""Fine-tune and evaluate on sentence(-pair) classification, as run_classifier.py.

    openbert classify --task_name=MRPC --do_train --do_eval --data_dir=glue/MRPC \\
        --init_checkpoint=uncased_L-12_H-768_A-12/bert_model.ckpt --output_dir=/tmp/mrpc

Tasks: CoLA, MNLI, MNLI-MM, MRPC, XNLI, SST-2, QNLI, QQP, RTE, WNLI, STS-B (regression), SNLI, and
``custom`` (TSV/CSV/JSONL files with named columns). --vocab_file and --bert_config_file default to
the files beside --init_checkpoint. Writes eval_results.txt, test_results.tsv and the fine-tuned
model (save_pretrained) to --output_dir.
"""
from __future__ import annotations

import argparse
import logging
import os

from ..errors import OpenBertError
from ..tasks.classification import pipeline as classifier
from ..tasks.classification.data import (PROCESSORS, canonical_task_name,
                                         convert_examples_to_features, get_processor)
from ..tasks.common import num_train_steps, resolve_model_source
from ..training.trainer import TrainingArguments, is_main_process
from .flags import add_bool, add_fine_tuning_schedule_flags, add_training_flags

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run_classifier flags")
    g.add_argument("--data_dir", help="the input data dir: the task's .tsv (or other) files")
    g.add_argument("--bert_config_file", help="bert_config.json / config.json (default: beside "
                                              "--init_checkpoint)")
    g.add_argument("--task_name", required=True, help=f"one of: {', '.join(PROCESSORS)}")
    g.add_argument("--vocab_file", help="vocab.txt (default: beside --init_checkpoint)")
    g.add_argument("--output_dir", required=True, help="where the model, checkpoints and results go")
    g.add_argument("--init_checkpoint", help="TF checkpoint (prefix or folder), HF folder or openbert folder")
    add_bool(g, "do_lower_case", True, "lower-case the input (true for uncased models)")
    g.add_argument("--max_seq_length", type=int, default=128,
                   help="maximum total length after WordPiece; longer pairs are trimmed")
    add_bool(g, "do_train", False, "run training")
    add_bool(g, "do_eval", False, "run eval on the dev set")
    add_bool(g, "do_predict", False, "run prediction on the test set")
    g.add_argument("--train_batch_size", type=int, default=32)
    g.add_argument("--eval_batch_size", type=int, default=8)
    g.add_argument("--predict_batch_size", type=int, default=8)
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
    c.add_argument("--max_train_examples", type=int, default=None, help="use only the first N training examples")
    c.add_argument("--max_eval_examples", type=int, default=None, help="use only the first N dev examples")
    add_training_flags(parser)


def _processor(args, labels_from_model):
    task = canonical_task_name(args.task_name)
    if task == "custom":
        files = {s: [getattr(args, f"{s}_file") or f"{s}.tsv"] for s in ("train", "dev", "test")}
        labels = args.labels.split(",") if args.labels else labels_from_model
        return get_processor("custom", files=files, text_a=args.text_a_column, text_b=args.text_b_column,
                             label=args.label_column, labels=labels, is_regression=args.regression)
    if task == "xnli":
        return get_processor("xnli", language=args.xnli_language)
    return get_processor(args.task_name)


def _check_args(args) -> None:
    if not (args.do_train or args.do_eval or args.do_predict):
        raise OpenBertError("at least one of --do_train, --do_eval or --do_predict must be true")
    if args.use_tpu:
        raise OpenBertError("--use_tpu is not supported: openbert runs on CPU and CUDA GPUs (--device)")
    canonical_task_name(args.task_name)
    if not args.data_dir:
        raise OpenBertError("--data_dir is required: the folder with the task's files")
    if args.warmup_proportion < 0 or args.warmup_proportion > 1:
        raise OpenBertError(f"--warmup_proportion={args.warmup_proportion} must be between 0 and 1")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    output_dir = args.output_dir
    source = resolve_model_source(args)
    config, tokenizer = source.config, source.tokenizer

    processor = _processor(args, None if args.do_train else classifier.label_names(config))
    train_examples = processor.get_train_examples(args.data_dir)[:args.max_train_examples] if args.do_train else None
    label_list = processor.get_labels()

    def features(examples):
        return convert_examples_to_features(examples, label_list, args.max_seq_length, tokenizer)

    model = None
    global_step = 0 if args.do_train else classifier.last_global_step(output_dir)
    if args.do_train:
        steps = num_train_steps(len(train_examples), args.train_batch_size, args.num_train_epochs)
        train_args = TrainingArguments.from_args(args, num_train_steps=steps,
                                                 num_warmup_steps=int(steps * args.warmup_proportion))
        logger.info("***** Running training *****  %d examples, batch size %d, %d steps",
                    len(train_examples), args.train_batch_size, steps)
        model = classifier.build_model(args.init_checkpoint, config, processor.num_labels)
        result = classifier.train(model, features(train_examples), train_args)
        global_step = result.global_step
        if not is_main_process():  # under torchrun, rank 0 alone saves, evaluates and predicts
            return 0
        classifier.save(model, output_dir, label_list, source.vocab_file)
    if model is None:
        model = classifier.build_model(source.path, config, processor.num_labels)
    os.makedirs(output_dir, exist_ok=True)
    run_opts = dict(device=args.device, precision=args.precision, progress=args.progress)
    if args.do_eval:
        eval_examples = processor.get_dev_examples(args.data_dir)[:args.max_eval_examples]
        logger.info("***** Running evaluation *****  %d examples, batch size %d",
                    len(eval_examples), args.eval_batch_size)
        result = classifier.evaluate(model, features(eval_examples), args.eval_batch_size, processor.metrics,
                                     global_step, **run_opts)
        classifier.write_eval_results(os.path.join(output_dir, "eval_results.txt"), result)
        for key in sorted(result):
            print(f"{key} = {result[key]}")
    if args.do_predict:
        test_examples = processor.get_test_examples(args.data_dir)
        logger.info("***** Running prediction *****  %d examples, batch size %d",
                    len(test_examples), args.predict_batch_size)
        probs = classifier.probabilities(model, features(test_examples), args.predict_batch_size, **run_opts)
        classifier.write_test_results(os.path.join(output_dir, "test_results.tsv"), probs)
    return 0

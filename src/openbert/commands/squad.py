"""Fine-tune and predict on SQuAD v1.1 / v2.0, as run_squad.py.

    openbert squad --do_train --train_file=train-v1.1.json --do_predict --predict_file=dev-v1.1.json \\
        --init_checkpoint=uncased_L-12_H-768_A-12/bert_model.ckpt --train_batch_size=12 \\
        --learning_rate=3e-5 --num_train_epochs=2.0 --max_seq_length=384 --doc_stride=128 \\
        --output_dir=/tmp/squad_base

--vocab_file and --bert_config_file default to the files beside --init_checkpoint. Writes the
fine-tuned model, predictions.json, nbest_predictions.json and (v2.0) null_odds.json to --output_dir;
when the predict file has answers, also the official metrics (printed and in eval_results.json).
"""
from __future__ import annotations

import argparse

from ..errors import OpenBertError
from ..tasks.squad import pipeline
from .flags import (add_bool, add_fine_tuning_schedule_flags, add_loading_flags, add_model_source_flags,
                    add_training_flags, check_flag_values, fine_tuned_source, run_options, run_task)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run_squad flags")
    g.add_argument("--output_dir", required=True, help="where the model, checkpoints and predictions go")
    g.add_argument("--train_file", help="SQuAD json for training, e.g. train-v1.1.json")
    g.add_argument("--predict_file", help="SQuAD json for predictions, e.g. dev-v1.1.json")
    add_model_source_flags(g, 384, "maximum total length after WordPiece: [CLS] question [SEP] window [SEP]")
    g.add_argument("--doc_stride", type=int, default=128, help="stride between document windows")
    g.add_argument("--max_query_length", type=int, default=64, help="questions are cut to this many tokens")
    add_bool(g, "do_train", False, "run training")
    add_bool(g, "do_predict", False, "predict on --predict_file")
    g.add_argument("--train_batch_size", type=int, default=32)
    g.add_argument("--predict_batch_size", type=int, default=8)
    add_fine_tuning_schedule_flags(g)
    g.add_argument("--n_best_size", type=int, default=20, help="n-best predictions per question")
    g.add_argument("--max_answer_length", type=int, default=30, help="longest answer, in WordPiece tokens")
    add_bool(g, "verbose_logging", False, "log every alignment problem of the post-processing")
    add_bool(g, "version_2_with_negative", False, "SQuAD v2.0: some questions have no answer")
    g.add_argument("--null_score_diff_threshold", type=float, default=0.0,
                   help="v2.0: predict no answer when null score - best non-null score > this")
    add_training_flags(parser)
    add_loading_flags(parser)


def check_args(args) -> None:
    """The original's validate_flags_or_throw, plus the window sizes (OpenBertError)."""
    if not (args.do_train or args.do_predict):
        raise OpenBertError("at least one of --do_train or --do_predict must be true")
    if args.do_train and not args.train_file:
        raise OpenBertError("--do_train needs --train_file (e.g. train-v1.1.json)")
    if args.do_predict and not args.predict_file:
        raise OpenBertError("--do_predict needs --predict_file (e.g. dev-v1.1.json)")
    if args.use_tpu:
        raise OpenBertError("--use_tpu is not supported: openbert runs on CPU and CUDA GPUs (--device)")
    if args.max_seq_length <= args.max_query_length + 3:
        raise OpenBertError(f"--max_seq_length={args.max_seq_length} must be greater than --max_query_length"
                            f"={args.max_query_length} + 3, to leave room for the document; lower "
                            "--max_query_length or raise --max_seq_length")
    if not 1 <= args.doc_stride < args.max_seq_length:
        raise OpenBertError(f"--doc_stride={args.doc_stride} must be at least 1 and smaller than "
                            f"--max_seq_length={args.max_seq_length} (the original uses 128 with 384)")
    if args.n_best_size < 1 or args.max_answer_length < 1:
        raise OpenBertError("--n_best_size and --max_answer_length must be at least 1")
    if not 0 <= args.warmup_proportion <= 1:
        raise OpenBertError(f"--warmup_proportion={args.warmup_proportion} must be between 0 and 1")
    check_flag_values(args)


def run(args: argparse.Namespace) -> int:
    check_args(args)
    source = fine_tuned_source(args)
    task = pipeline.SquadTask(
        source.tokenizer, args.output_dir, args.train_file, args.predict_file,
        pipeline.Windows(args.max_seq_length, args.doc_stride, args.max_query_length),
        pipeline.Answers(args.n_best_size, args.max_answer_length, args.do_lower_case,
                         args.version_2_with_negative, args.null_score_diff_threshold,
                         args.verbose_logging),
        args.predict_batch_size, run_options(args))
    inputs = [args.train_file if args.do_train else None, args.predict_file if args.do_predict else None]
    run_task(args, task, source, "squad", inputs)
    return 0

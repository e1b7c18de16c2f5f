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
import json
import logging
import os
import random

from ..checkpoints.pretrained import save_pretrained
from ..errors import OpenBertError
from ..io.fileio import atomic_write_text
from ..model.bert import BertForQuestionAnswering
from ..tasks.common import build_model, num_train_steps, resolve_model_source
from ..tasks.squad import data as squad_data
from ..tasks.squad import metrics as squad_metrics
from ..tasks.squad.pipeline import raw_results
from ..tasks.squad.postprocess import compute_predictions, write_predictions
from ..training.trainer import Trainer, TrainingArguments, is_main_process
from .flags import add_bool, add_fine_tuning_schedule_flags, add_training_flags

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run_squad flags")
    g.add_argument("--bert_config_file", help="bert_config.json / config.json (default: beside --init_checkpoint)")
    g.add_argument("--vocab_file", help="vocab.txt (default: beside --init_checkpoint)")
    g.add_argument("--output_dir", required=True, help="where the model, checkpoints and predictions go")
    g.add_argument("--train_file", help="SQuAD json for training, e.g. train-v1.1.json")
    g.add_argument("--predict_file", help="SQuAD json for predictions, e.g. dev-v1.1.json")
    g.add_argument("--init_checkpoint", help="TF checkpoint (prefix or folder), HF folder or openbert folder")
    add_bool(g, "do_lower_case", True, "lower-case the input (true for uncased models)")
    g.add_argument("--max_seq_length", type=int, default=384,
                   help="maximum total length after WordPiece: [CLS] question [SEP] window [SEP]")
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


def features_for(path: str, is_training: bool, tokenizer, args):
    """SQuAD file -> (examples, features) with the command's window settings."""
    stats = squad_data.ReadStats()
    examples = squad_data.read_squad_examples(path, is_training, args.version_2_with_negative, stats)
    if not examples:
        raise OpenBertError(f"{path}: no usable questions ({len(stats.skipped_ids)} skipped)")
    if is_training:
        random.Random(12345).shuffle(examples)  # the original pre-shuffles the training examples
    features = squad_data.convert_examples_to_features(examples, tokenizer, args.max_seq_length,
                                                       args.doc_stride, args.max_query_length, is_training)
    if args.verbose_logging:
        for f in features[:20]:
            logger.info("unique_id %d example %d window %d: %s", f.unique_id, f.example_index,
                        f.doc_span_index, " ".join(f.tokens))
    return examples, features


def has_answers(path: str) -> bool:
    """True when the predict file carries gold answers (a dev set, not a test set)."""
    data = squad_data.load_squad_json(path)
    return any(qa.get("answers") or qa.get("is_impossible") for entry in data["data"]
               for p in entry["paragraphs"] for qa in p["qas"])


def run(args: argparse.Namespace) -> int:
    check_args(args)
    output_dir = args.output_dir
    source = resolve_model_source(args)
    config, tokenizer = source.config, source.tokenizer

    model = None
    if args.do_train:
        examples, features = features_for(args.train_file, True, tokenizer, args)
        steps = num_train_steps(len(examples), args.train_batch_size, args.num_train_epochs)
        train_args = TrainingArguments.from_args(args, num_train_steps=steps,
                                                 num_warmup_steps=int(steps * args.warmup_proportion))
        logger.info("***** Running training *****  %d examples, %d windows, batch size %d, %d steps",
                    len(examples), len(features), args.train_batch_size, steps)
        del examples
        model = build_model(BertForQuestionAnswering, args.init_checkpoint, config)
        Trainer(model, train_args, features, squad_data.collate_train,
                lengths=[len(f.input_ids) for f in features]).train()
        if not is_main_process():  # under torchrun, rank 0 alone saves and predicts
            return 0
        model.config.extra["version_2_with_negative"] = bool(args.version_2_with_negative)
        save_pretrained(model, output_dir, vocab_file=source.vocab_file)
        logger.info("fine-tuned model saved to %s", output_dir)

    if args.do_predict:
        if model is None:
            model = build_model(BertForQuestionAnswering, source.path, config)
        examples, features = features_for(args.predict_file, False, tokenizer, args)
        logger.info("***** Running predictions *****  %d examples, %d windows, batch size %d",
                    len(examples), len(features), args.predict_batch_size)
        results = raw_results(model, features, args.predict_batch_size, args.device, args.precision,
                              args.progress)
        preds = compute_predictions(examples, features, results, args.n_best_size, args.max_answer_length,
                                    args.do_lower_case, args.version_2_with_negative,
                                    args.null_score_diff_threshold, args.verbose_logging)
        os.makedirs(output_dir, exist_ok=True)
        write_predictions(preds, output_dir, args.version_2_with_negative)
        if has_answers(args.predict_file):
            dataset = squad_data.load_squad_json(args.predict_file)
            result = squad_metrics.evaluate(dataset, preds.predictions,
                                            preds.null_odds if args.version_2_with_negative else None)
            text = json.dumps(result, indent=2)
            atomic_write_text(os.path.join(output_dir, "eval_results.json"), text + "\n")
            print(text)
    return 0

"""Pre-train BERT on masked LM + next sentence prediction, as run_pretraining.py.

    openbert pretrain --input_file=data/ --output_dir=out --do_train --do_eval \\
        --bert_config_file=bert_config.json --train_batch_size=32 --max_seq_length=128 \\
        --max_predictions_per_seq=20 --num_train_steps=10000 --num_warmup_steps=1000 \\
        --learning_rate=1e-4

--input_file: openbert shard directories and/or TFRecord files (comma-separated globs) made by
`openbert create-pretraining-data`. Loss = masked LM on the gathered masked positions only + next
sentence. --init_checkpoint continues from TF / HF / openbert weights (a checkpoint without the
pre-training heads gets fresh heads, logged). Writes the model (save_pretrained) and
eval_results.txt to --output_dir, training checkpoints under --output_dir/checkpoints.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob

from ..errors import OpenBertError
from ..io.fileio import check_output_dir
from ..tasks import common
from ..tasks.pretraining import pipeline
from ..tasks.pretraining.data import PretrainingDataset
from .flags import (add_bool, add_loading_flags, add_model_source_flags, add_training_flags,
                    check_flag_values, fine_tuned_source, model_inputs, run_options, training_arguments)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run_pretraining flags")
    g.add_argument("--input_file", required=True,
                   help="shard directories / TFRecord files (comma-separated globs)")
    g.add_argument("--output_dir", required=True, help="where the model, checkpoints and results go")
    add_model_source_flags(g, 128, "must equal the value the data was created with", do_lower_case=False,
                           vocab_file_help="vocab.txt saved with the model (default: the one "
                                           "create-pretraining-data kept with the data, else the one "
                                           "beside --init_checkpoint)")
    g.add_argument("--max_predictions_per_seq", type=int, default=20,
                   help="must equal the value the data was created with")
    add_bool(g, "do_train", False, "run training")
    add_bool(g, "do_eval", False, "run evaluation on --input_file")
    g.add_argument("--train_batch_size", type=int, default=32)
    g.add_argument("--eval_batch_size", type=int, default=8)
    g.add_argument("--learning_rate", type=float, default=5e-5)
    g.add_argument("--num_train_steps", type=int, default=100000)
    g.add_argument("--num_warmup_steps", type=int, default=10000)
    g.add_argument("--save_checkpoints_steps", type=int, default=1000)
    g.add_argument("--iterations_per_loop", type=int, default=1000, help="accepted for compatibility (TPU only)")
    g.add_argument("--max_eval_steps", type=int, default=100, help="maximum number of eval batches")
    add_bool(g, "use_tpu", False, "accepted for compatibility; must be false")
    b = parser.add_argument_group("beyond the original")
    add_bool(b, "no_nsp", False, "train the masked LM alone (no next-sentence loss)")
    add_bool(b, "dynamic_masking", False, "draw fresh masks at every pass over an instance "
                                          "(from its unmasked tokens) instead of the stored ones")
    b.add_argument("--masked_lm_prob", type=float, default=0.15, help="dynamic masking: masked fraction")
    add_bool(b, "do_whole_word_mask", False, "dynamic masking: mask whole words")
    add_bool(b, "verify_crc", True, "check every TFRecord record's data checksum as it is read")
    add_training_flags(parser)
    add_loading_flags(parser)


def run(args: argparse.Namespace) -> int:
    if not (args.do_train or args.do_eval):
        raise OpenBertError("at least one of --do_train or --do_eval must be true")
    if args.use_tpu:
        raise OpenBertError("--use_tpu is not supported: openbert runs on CPU and CUDA GPUs (--device)")
    check_flag_values(args)
    inputs = [*(p for pattern in args.input_file.split(",") for p in glob.glob(pattern)),
              *(model_inputs(args) if args.do_train else [])]
    check_output_dir(args.output_dir, "pretrain", overwrite=args.do_train and args.overwrite_output_dir,
                     inputs=inputs)  # before reading the data: a wrong folder is known at once
    # eval alone evaluates the model trained earlier in --output_dir, as the original
    source = fine_tuned_source(args, need_tokenizer=False)
    dataset = PretrainingDataset(args.input_file, args.max_seq_length, args.max_predictions_per_seq,
                                 verify_crc=args.verify_crc)
    # the vocabulary travels with the data: saved with the model unless --vocab_file names another
    source = dataclasses.replace(source, vocab_file=pipeline.vocab_file_for(
        dataset, args.vocab_file, None if args.vocab_file else source.vocab_file))
    task = pipeline.PretrainingTask(dataset, args.output_dir, next_sentence=not args.no_nsp,
                                    eval_batch_size=args.eval_batch_size,
                                    max_eval_steps=args.max_eval_steps, options=run_options(args))
    task.check_vocab_size(source.config, args.input_file)
    schedule = None
    if args.do_train:
        schedule = common.Schedule(training_arguments(args))
        if args.dynamic_masking:
            task.masking = pipeline.dynamic_masking(
                dataset, source.vocab_file, source.config, args.max_predictions_per_seq,
                pipeline.MaskingOptions(args.masked_lm_prob, args.do_whole_word_mask, args.seed))
    common.run(task, source, args.output_dir, schedule, do_eval=args.do_eval, command="pretrain",
               inputs=inputs)
    return 0

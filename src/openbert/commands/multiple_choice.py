"""Fine-tune and evaluate on multiple choice: SWAG, or your own questions with any number of choices.

    openbert multiple-choice --task_name=swag --do_train --do_eval --data_dir=swagaf/data \\
        --init_checkpoint=uncased_L-12_H-768_A-12/bert_model.ckpt --learning_rate=2e-5 \\
        --train_batch_size=16 --num_train_epochs=3 --output_dir=/tmp/swag

--task_name=swag reads SWAG's train.csv / val.csv / test.csv; --task_name=custom reads JSON lines
({"context": ..., "choices": [...], "label": k}; train.jsonl / dev.jsonl / test.jsonl, or name
them with --train_file, --dev_file, --test_file). Each choice is [CLS] context [SEP] start ending
[SEP]. Writes the fine-tuned model, eval_results.txt and test_results.tsv (one line per question,
the probability of each choice).
"""
from __future__ import annotations

import argparse

from ..tasks.multiple_choice import data as mc_data
from ..tasks.multiple_choice import pipeline
from .flags import (add_fine_tuning_schedule_flags, add_fine_tuning_tail, add_model_source_flags, add_run_flags,
                    check_run_flags, fine_tuned_source, run_options, run_task)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run_classifier flags")
    g.add_argument("--data_dir", help="the input data dir: the task's files")
    g.add_argument("--task_name", required=True, help=f"one of: {', '.join(mc_data.TASKS)}")
    g.add_argument("--output_dir", required=True, help="where the model, checkpoints and results go")
    add_model_source_flags(g, 128, "maximum length of each choice's [CLS] context [SEP] ending [SEP]; longer "
                                   "ones are trimmed, the longer side first")
    add_run_flags(g)
    add_fine_tuning_schedule_flags(g)
    c = parser.add_argument_group("data beyond the original")
    for split in ("train", "dev", "test"):
        c.add_argument(f"--{split}_file", help=f"the {split} file: a name in --data_dir or a path (default: "
                                               f"swag {mc_data.SPLIT_FILES['swag'][split][0]}, custom "
                                               f"{mc_data.SPLIT_FILES['custom'][split][0]})")
    add_fine_tuning_tail(parser, c, "questions")


def run(args: argparse.Namespace) -> int:
    check_run_flags(args)
    mc_data.check_task(args.task_name)
    source = fine_tuned_source(args)
    files = pipeline.ChoiceFiles(args.data_dir, args.train_file, args.dev_file, args.test_file,
                                 args.max_train_examples, args.max_eval_examples)
    task = pipeline.MultipleChoiceTask(args.task_name, source.tokenizer, args.output_dir, args.max_seq_length, files,
                                       args.eval_batch_size, args.predict_batch_size, run_options(args))
    run_task(args, task, source, "multiple-choice", [args.data_dir])
    return 0

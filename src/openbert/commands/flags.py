"""Flag helpers shared by every command, matching the original scripts' absl flags.

The original scripts accept ``--do_train``, ``--do_train=true`` and ``--do_train=false``; so do we.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses

from ..tasks.common import ModelSource, RunOptions, Schedule, resolve_model_source, run
from ..errors import OpenBertError
from ..training.trainer import TrainingArguments

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` that keeps the description's line breaks (its examples) and shows every flag's
    default (or that it is required), unless the flag's help already says it."""

    def _format_action(self, action):
        if action.help is None and action.option_strings:  # argparse skips flags without help
            action = copy.copy(action)
            action.help = self._get_help_string(action)
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text:
            return text
        if action.required:
            return f"{text} (required)".lstrip()
        default = action.default
        shown = ("none" if default is None else str(default).lower() if isinstance(default, bool)
                 else "%(default)s")
        return f"{text} (default: {shown})".lstrip()


def str2bool(value: str | bool) -> bool:
    """Parse an absl-style boolean flag value ('true', 'False', '1', ...)."""
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def add_bool(parser: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    """Add ``--name`` / ``--name=true|false`` (and ``--noname``, as absl allows)."""
    dest = name.lstrip("-")
    parser.add_argument(f"--{dest}", type=str2bool, nargs="?", const=True, default=default,
                        metavar="true|false", help=f"{help} (default: {str(default).lower()})")
    parser.add_argument(f"--no{dest}", dest=dest, action="store_false", help=argparse.SUPPRESS)


def add_fine_tuning_schedule_flags(g) -> None:
    """run_classifier / run_squad's schedule flags (same names and defaults) and the TPU flags they
    accept for compatibility."""
    g.add_argument("--learning_rate", type=float, default=5e-5)
    g.add_argument("--num_train_epochs", type=float, default=3.0)
    g.add_argument("--warmup_proportion", type=float, default=0.1,
                   help="fraction of training with linear learning-rate warmup")
    g.add_argument("--save_checkpoints_steps", type=int, default=1000)
    g.add_argument("--iterations_per_loop", type=int, default=1000, help="accepted for compatibility (TPU only)")
    add_bool(g, "use_tpu", False, "accepted for compatibility; must be false")


def add_run_flags(g, eval_batch_size: int = 8) -> None:
    """run_classifier's --do_train / --do_eval / --do_predict and the three batch sizes."""
    add_bool(g, "do_train", False, "run training")
    add_bool(g, "do_eval", False, "run eval on the dev set")
    add_bool(g, "do_predict", False, "run prediction on the test set")
    g.add_argument("--train_batch_size", type=int, default=32)
    g.add_argument("--eval_batch_size", type=int, default=eval_batch_size)
    g.add_argument("--predict_batch_size", type=int, default=eval_batch_size)


def add_example_limit_flags(g, what: str = "examples") -> None:
    """--max_train_examples / --max_eval_examples: use the first N training / dev ``what``."""
    g.add_argument("--max_train_examples", type=int, default=None, help=f"use only the first N training {what}")
    g.add_argument("--max_eval_examples", type=int, default=None, help=f"use only the first N dev {what}")


def check_run_flags(args: argparse.Namespace) -> None:
    """What a train / eval / predict command checks before it reads anything (OpenBertError)."""
    if not (args.do_train or args.do_eval or args.do_predict):
        raise OpenBertError("at least one of --do_train, --do_eval or --do_predict must be true")
    if getattr(args, "use_tpu", False):
        raise OpenBertError("--use_tpu is not supported: openbert runs on CPU and CUDA GPUs (--device)")
    if not args.data_dir:
        raise OpenBertError("--data_dir is required: the folder with the task's files")
    if not 0 <= args.warmup_proportion <= 1:
        raise OpenBertError(f"--warmup_proportion={args.warmup_proportion} must be between 0 and 1")
    for flag in ("train_batch_size", "eval_batch_size", "predict_batch_size"):
        if getattr(args, flag) < 1:
            raise OpenBertError(f"--{flag}={getattr(args, flag)} must be at least 1")
    check_flag_values(args)


def run_task(args: argparse.Namespace, task, source: ModelSource, command: str,
             inputs=()) -> dict | None:
    """:func:`openbert.tasks.common.run` with the flags' schedule (the original's epochs and warmup
    when --do_train) and --do_eval / --do_predict. ``inputs``: the command's data files, which
    --output_dir must never hold (the model's files are added when training)."""
    schedule = (Schedule(training_arguments(args), args.num_train_epochs, args.warmup_proportion)
                if args.do_train else None)
    inputs = [*inputs, *(model_inputs(args) if args.do_train else [])]
    return run(task, source, args.output_dir, schedule, getattr(args, "do_eval", False), args.do_predict,
               command=command, inputs=inputs)


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the shared training engine (openbert.training), beyond the original scripts."""
    g = parser.add_argument_group("training engine (beyond the original)")
    g.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="autocast precision; fp16 uses loss scaling; master weights stay fp32")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1,
                   help="micro-batches per optimizer step; the update equals one big batch")
    add_bool(g, "gradient_checkpointing", False, "recompute each encoder layer in backward to save memory")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--optimizer", default="adamw_bert", choices=["adamw_bert", "lamb", "adamw"],
                   help="adamw_bert: the original AdamWeightDecayOptimizer")
    g.add_argument("--weight_decay", type=float, default=0.01,
                   help="decoupled weight decay (not applied to LayerNorm and bias parameters)")
    g.add_argument("--max_grad_norm", type=float, default=1.0,
                   help="clip gradients by this global norm (<= 0: no clipping)")
    g.add_argument("--keep_checkpoint_max", type=int, default=3,
                   help="keep this many newest training checkpoints (<= 0: all)")
    add_bool(g, "resume", False, "continue from the newest checkpoint in --output_dir even when it "
                                 "belongs to another run (the same run is continued without it)")
    add_bool(g, "overwrite_output_dir", False, "delete what --output_dir holds (an earlier run, other "
                                               "files) and start over")
    add_bool(g, "progress", True, "show tqdm progress bars")
    g.add_argument("--log_every_n_steps", type=int, default=10,
                   help="write metrics.jsonl (step, loss, lr, seq/s) every this many steps")
    g.add_argument("--dataloader_num_workers", type=int, default=0,
                   help="worker processes that collate batches (0: in the training process)")


def add_model_source_flags(g, max_seq_length: int | None = 128,
                           max_seq_length_help: str = "maximum total length after WordPiece; longer "
                                                      "inputs are truncated",
                           init_checkpoint_required: bool = False, do_lower_case: bool = True,
                           vocab_file_help: str = "vocab.txt (default: the one beside --init_checkpoint)") -> None:
    """The flags that say which model a command runs, the same in every command:
    --init_checkpoint, --bert_config_file, --vocab_file, --do_lower_case, --max_seq_length."""
    g.add_argument("--init_checkpoint", required=init_checkpoint_required,
                   help="TF checkpoint (prefix .../bert_model.ckpt or folder), HF or openbert folder, or a "
                        "model name, fetched on first use (openbert download --list)")
    g.add_argument("--bert_config_file", help="bert_config.json / config.json (default: the one beside "
                                              "--init_checkpoint)")
    g.add_argument("--vocab_file", help=vocab_file_help)
    if do_lower_case:
        add_bool(g, "do_lower_case", True, "lower-case the input (true for uncased models)")
    g.add_argument("--max_seq_length", type=int, default=max_seq_length, help=max_seq_length_help)


def add_loading_flags(g) -> None:
    """How strictly a checkpoint loads into the command's model (read by :func:`model_source`)."""
    add_bool(g, "allow_unused_weights", False,
             "drop checkpoint tensors the model does not use (e.g. another task's head) instead of "
             "stopping; the pre-training heads and the pooler are always dropped when unused")


def model_source(args: argparse.Namespace, saved_model_dir=None, need_tokenizer: bool = True,
                 max_seq_length: int | None = None) -> ModelSource:
    """The model the flags of :func:`add_model_source_flags` name (see
    :func:`openbert.tasks.common.resolve_model_source`); ``max_seq_length`` overrides the flag."""
    return resolve_model_source(args.init_checkpoint, args.bert_config_file, args.vocab_file,
                                getattr(args, "do_lower_case", True),
                                max_seq_length if max_seq_length is not None else args.max_seq_length,
                                saved_model_dir=saved_model_dir, need_tokenizer=need_tokenizer,
                                allow_unused=getattr(args, "allow_unused_weights", False))


def fine_tuned_source(args: argparse.Namespace, need_tokenizer: bool = True) -> ModelSource:
    """The model a train / eval / predict run uses: --init_checkpoint when training, otherwise the
    model trained earlier in --output_dir (as the original)."""
    return model_source(args, saved_model_dir=None if args.do_train else args.output_dir,
                        need_tokenizer=need_tokenizer)


def add_fine_tuning_tail(parser: argparse.ArgumentParser, data_group, what: str = "examples") -> None:
    """The flags every fine-tuning command ends with: the example limits (in ``data_group``), the
    training engine and checkpoint loading."""
    add_example_limit_flags(data_group, what)
    add_training_flags(parser)
    add_loading_flags(parser)


def model_inputs(args: argparse.Namespace) -> list:
    """The model files the flags name (an output folder must never hold them when training)."""
    return [getattr(args, name, None) for name in ("init_checkpoint", "bert_config_file", "vocab_file")]


def training_arguments(args: argparse.Namespace, **overrides) -> TrainingArguments:
    """TrainingArguments from the flags (fields the command lacks keep their defaults); overrides win."""
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"unknown TrainingArguments fields: {sorted(unknown)}")
    values = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    values.update(overrides)
    if values.get("output_dir") is None:
        raise OpenBertError("--output_dir is required for training (checkpoints and metrics go there)")
    return TrainingArguments(**values)


def run_options(args: argparse.Namespace) -> RunOptions:
    """Device, precision and progress flags (defaults where a command lacks them)."""
    return RunOptions(device=getattr(args, "device", "auto"), precision=getattr(args, "precision", "fp32"),
                      progress=getattr(args, "progress", True))


# flag -> (test, what it must be); checked for every flag a command has, before any work
_RANGES = {
    **{name: (lambda v: v >= 1, ">= 1") for name in (
        "train_batch_size", "eval_batch_size", "predict_batch_size", "batch_size",
        "gradient_accumulation_steps", "log_every_n_steps", "num_train_steps", "max_eval_steps",
        "train_examples", "eval_examples", "max_train_examples", "max_eval_examples",
        "max_predictions_per_seq", "dupe_factor", "vocab_size")},
    **{name: (lambda v: v >= 0, ">= 0") for name in (
        "num_warmup_steps", "dataloader_num_workers", "num_unused", "min_frequency")},
    "learning_rate": (lambda v: v > 0, "> 0 (BERT uses 1e-4 for pre-training, 2e-5 to 5e-5 for fine-tuning)"),
    "num_train_epochs": (lambda v: v > 0, "> 0"),
    "warmup_proportion": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "masked_lm_prob": (lambda v: 0 < v < 1, "between 0 and 1"),
}


def check_flag_values(args: argparse.Namespace) -> None:
    """Every numeric flag of ``args`` in its range (OpenBertError naming the flag), so that a bad
    value stops a command in its first second, not after loading data or training."""
    for name, (ok, what) in _RANGES.items():
        value = getattr(args, name, None)
        if value is not None and not ok(value):
            raise OpenBertError(f"--{name}={value} must be {what}")

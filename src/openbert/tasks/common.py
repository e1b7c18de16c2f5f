"""What every fine-tuning command shares (classify, squad, quickstart, extract-features, fill-mask):
where the weights come from, their config and tokenizer, the original's step count, and a task head
built from a checkpoint or from scratch.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ..checkpoints.pretrained import find_config, find_vocab, load_config
from ..config import BertConfig
from ..errors import OpenBertError
from ..tokenization.wordpiece import FullTokenizer, validate_case_matches_checkpoint

logger = logging.getLogger(__name__)


def num_train_steps(num_examples: int, train_batch_size: int, num_train_epochs: float) -> int:
    """As the original: ``int(num_examples / train_batch_size * num_train_epochs)`` (at least 1)."""
    return max(1, int(num_examples / train_batch_size * num_train_epochs))


def check_max_seq_length(max_seq_length: int, config: BertConfig, source: str) -> None:
    """``max_seq_length`` must fit the position table and leave room for [CLS] and [SEP]."""
    if max_seq_length > config.max_position_embeddings:
        raise OpenBertError(f"cannot use --max_seq_length={max_seq_length}: the model ({source}) was only "
                            f"trained up to sequence length {config.max_position_embeddings}; lower "
                            f"--max_seq_length")
    if max_seq_length < 3:
        raise OpenBertError(f"--max_seq_length={max_seq_length} leaves no room for text next to "
                            f"[CLS] and [SEP]; use at least 3")


def fine_tuned_dir(output_dir) -> str | None:
    """``output_dir`` when it holds a model saved by a previous training run, else None."""
    if output_dir and os.path.isfile(os.path.join(output_dir, "model.safetensors")) and find_config(output_dir):
        return os.fspath(output_dir)
    return None


def load_tokenizer(model_path, vocab_file=None, do_lower_case: bool = True,
                   init_checkpoint=None) -> tuple[FullTokenizer, str]:
    """(FullTokenizer, vocab path): ``vocab_file``, else the ``vocab.txt`` beside ``model_path``.

    ``do_lower_case`` is checked against Google's released model names in ``init_checkpoint``
    (default ``model_path``), as the original does.
    """
    validate_case_matches_checkpoint(do_lower_case, init_checkpoint if init_checkpoint is not None
                                     else model_path)
    vocab_file = vocab_file or (find_vocab(model_path) if model_path else None)
    if not vocab_file:
        raise OpenBertError(f"no vocab.txt beside {model_path}; pass --vocab_file")
    if not os.path.isfile(vocab_file):
        raise OpenBertError(f"--vocab_file {vocab_file} does not exist")
    return FullTokenizer(vocab_file, do_lower_case=do_lower_case), os.fspath(vocab_file)


@dataclass
class ModelSource:
    """Where a command's model comes from: ``path`` (None: random init), its config, vocab, tokenizer."""

    path: str | None
    config: BertConfig
    vocab_file: str
    tokenizer: FullTokenizer


def resolve_model_source(args) -> ModelSource:
    """From the original flags (``init_checkpoint``, ``bert_config_file``, ``vocab_file``,
    ``do_lower_case``, ``max_seq_length``, ``do_train``, ``output_dir``).

    Evaluation or prediction without training uses the model fine-tuned earlier in ``output_dir``,
    as the original's Estimator restores the latest checkpoint there.
    """
    path = (None if args.do_train else fine_tuned_dir(args.output_dir)) or args.init_checkpoint
    if not path and not args.bert_config_file:
        raise OpenBertError("give --init_checkpoint (a pre-trained model) or at least --bert_config_file")
    config = load_config(path, args.bert_config_file)
    check_max_seq_length(args.max_seq_length, config, args.bert_config_file or path)
    tokenizer, vocab_file = load_tokenizer(path, args.vocab_file, args.do_lower_case,
                                           init_checkpoint=args.init_checkpoint)
    return ModelSource(path, config, vocab_file, tokenizer)


def build_model(cls, path, config: BertConfig, **head_kwargs):
    """A ``cls`` model from ``path`` (TF / HF / openbert; heads missing are initialised fresh and
    logged), or randomly initialised when there is no path (as the original without the flag)."""
    if path:
        return cls.from_pretrained(path, config=config, **head_kwargs)
    logger.warning("no --init_checkpoint: the %s starts from random weights", cls.__name__)
    return cls(config, **head_kwargs)

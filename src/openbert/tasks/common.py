"""What every task shares, written once: where the model comes from (checkpoint, config, vocab,
tokenizer), the max_seq_length check, finding a task's input files, the ``[CLS] A [SEP] B [SEP]``
layout, batch padding, the original's step count, the train / eval / predict skeleton of a
fine-tuning run, inference in input order and the original's result files.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from ..checkpoints import assets
from ..checkpoints.pretrained import (find_config, find_vocab, load_config, save_pretrained,
                                      unused_weights_allowed, where_the_model_is)
from ..config import BertConfig
from ..errors import OpenBertError
from ..io.fileio import atomic_open, check_output_dir, claim_output_dir
from ..tokenization.wordpiece import FullTokenizer, load_vocab, validate_case_matches_checkpoint
from ..training import state as train_state
from ..training.distributed import is_main_process
from ..training.trainer import ChanceLossCheck, Trainer, TrainingArguments, TrainingCallback, predict, set_seed

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# the model source
# ---------------------------------------------------------------------------------------------
def check_max_seq_length(max_seq_length: int, config: BertConfig, source) -> None:
    """``max_seq_length`` must fit the model's position table and leave room for [CLS] and [SEP]."""
    if max_seq_length > config.max_position_embeddings:
        raise OpenBertError(f"cannot use --max_seq_length={max_seq_length}: the model ({source}) was only "
                            f"trained up to sequence length {config.max_position_embeddings} (its "
                            f"max_position_embeddings); lower --max_seq_length")
    if max_seq_length < 3:
        raise OpenBertError(f"--max_seq_length={max_seq_length} leaves no room for text next to "
                            f"[CLS] and [SEP]; use at least 3")


def default_max_seq_length(config: BertConfig) -> int:
    """128 (the original scripts' default), or the model's maximum when that is smaller."""
    return min(128, config.max_position_embeddings)


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
    vocab_file = _vocab_file(model_path, vocab_file)
    if not vocab_file:
        hint = where_the_model_is(model_path) if model_path else ""
        raise OpenBertError(f"no vocab.txt beside {model_path}" + (hint or "; pass --vocab_file"))
    return FullTokenizer(vocab_file, do_lower_case=do_lower_case), vocab_file


def _vocab_file(model_path, vocab_file) -> str | None:
    if vocab_file:
        if not os.path.isfile(vocab_file):
            raise OpenBertError(f"--vocab_file {vocab_file} does not exist")
        return os.fspath(vocab_file)
    return find_vocab(model_path) if model_path else None


@dataclass
class ModelSource:
    """Where a run's model comes from: ``path`` (None: random init), its config, vocab, tokenizer
    (None when the run needs none)."""

    path: str | None
    config: BertConfig
    vocab_file: str | None
    tokenizer: FullTokenizer | None
    allow_unused: bool = False  # drop checkpoint tensors the model does not use (--allow_unused_weights)


def resolve_checkpoint(path_or_name) -> str | None:
    """``--init_checkpoint`` as every command reads it: a path as given, or a model name that
    ``openbert download --list`` knows (e.g. ``minilm-l6``) as its cached folder, fetched on first use."""
    return assets.resolve_model(os.fspath(path_or_name) if path_or_name is not None else None)


def resolve_model_source(init_checkpoint=None, bert_config_file=None, vocab_file=None,
                         do_lower_case: bool = True, max_seq_length: int | None = None,
                         saved_model_dir=None, need_tokenizer: bool = True,
                         allow_unused: bool = False) -> ModelSource:
    """The original flags -> the model to run: checkpoint, config, vocab and tokenizer.

    ``bert_config_file`` and ``vocab_file`` default to the files beside the checkpoint.
    ``saved_model_dir``: a folder whose saved model wins over ``init_checkpoint`` (evaluation or
    prediction without training uses the model trained earlier in the output folder, as the
    original's Estimator restores the latest checkpoint there). ``max_seq_length`` is checked
    against the model when given, and every vocabulary id must fit the model. Without
    ``need_tokenizer`` a missing vocab is allowed. ``allow_unused``: loading the model drops
    checkpoint tensors it does not use instead of stopping
    (:func:`openbert.checkpoints.pretrained.load_pretrained`). ``init_checkpoint`` may be a model
    name (see :func:`resolve_checkpoint`).
    """
    init_checkpoint = resolve_checkpoint(init_checkpoint)
    if need_tokenizer:  # the original checks the casing first, before reading anything
        validate_case_matches_checkpoint(do_lower_case, init_checkpoint)
    path = fine_tuned_dir(saved_model_dir) or (os.fspath(init_checkpoint) if init_checkpoint else None)
    if not path and not bert_config_file:
        raise OpenBertError("give --init_checkpoint (a pre-trained model) or at least --bert_config_file")
    config = load_config(path, bert_config_file)
    if max_seq_length is not None:
        check_max_seq_length(max_seq_length, config, bert_config_file or path)
    if not need_tokenizer:
        vocab = _vocab_file(path or init_checkpoint, vocab_file)
        if vocab:
            check_vocab_fits(max(load_vocab(vocab).values(), default=-1) + 1, vocab, config,
                             bert_config_file or path)
        return ModelSource(path, config, vocab, None, allow_unused)
    tokenizer, vocab = load_tokenizer(path, vocab_file, do_lower_case, init_checkpoint=init_checkpoint)
    check_vocab_fits(max(tokenizer.vocab.values(), default=-1) + 1, vocab, config, bert_config_file or path)
    return ModelSource(path, config, vocab, tokenizer, allow_unused)


def check_vocab_fits(num_tokens: int, vocab_file, config: BertConfig, source) -> None:
    """Every id of the vocabulary (ids ``0 .. num_tokens - 1``) must have a row in the model's
    embedding table."""
    if num_tokens > config.vocab_size:
        raise OpenBertError(f"--vocab_file {vocab_file} has {num_tokens} tokens but the model "
                            f"({source}) has vocab_size={config.vocab_size}: use the vocab.txt that "
                            f"belongs to the model")


def build_model(cls, path, config: BertConfig, seed: int | None = None, **head_kwargs):
    """A ``cls`` model from ``path`` (TF / HF / openbert; a task head missing there is initialised
    fresh, as fine-tuning expects, and logged; tensors it does not use are an error, see
    :func:`load_pretrained`), or randomly initialised when there is no path (as the original
    without the flag).

    ``seed``: seed every generator first, so the same seed gives the same fresh weights."""
    if seed is not None:
        set_seed(seed)
    if path:
        return cls.from_pretrained(path, config=config, fresh_head_expected=True, **head_kwargs)
    logger.warning("no --init_checkpoint: the %s starts from random weights", cls.__name__)
    return cls(config, **head_kwargs)


def find_data_file(data_dir, names: Sequence[str], what: str, flag: str, given: str | None = None) -> str:
    """A task's input file: ``given`` (the ``flag``'s value: a name inside ``data_dir`` or a
    path), else the first of the default ``names`` inside ``data_dir`` that is a file.

    OpenBertError listing every place looked at when none is; ``what`` names the file
    ("the train file").
    """
    if given:
        looked = [os.path.join(data_dir, given), given] if data_dir else [given]
    else:
        looked = [os.path.join(data_dir or "", n) for n in names]
    for path in looked:
        if os.path.isfile(path):
            return os.fspath(path)
    where = ", ".join(dict.fromkeys(looked))
    if given:
        raise OpenBertError(f"{what} not found: looked for {where}; check {flag}")
    raise OpenBertError(f"{what} not found: looked for {where}; point --data_dir at the folder holding "
                        f"it or name it with {flag}")


# ---------------------------------------------------------------------------------------------
# inputs: token ids, the pair layout and padding
# ---------------------------------------------------------------------------------------------
def encode_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """WordPiece ids of each text: the tokenizer's fast batch path when it has one."""
    batch = getattr(tokenizer, "encode_batch", None)
    if batch is not None:
        return batch(list(texts))
    return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in texts]


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
    """Trim in place, one token at a time from the end of the longer list (B on ties)."""
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def pack_pair(a: list, b: list | None, max_seq_length: int, cls, sep) -> tuple[list, list[int]]:
    """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` (tokens or ids) -> (sequence, segment_ids).

    As the original: a pair loses tokens from the end of its longer side first to fit
    ``max_seq_length - 3``, a single text is cut to ``max_seq_length - 2``; ``a`` and ``b`` are
    trimmed in place. Segment ids: 0 for [CLS], A and the first [SEP]; 1 for B and its [SEP].
    """
    if b is not None:
        truncate_seq_pair(a, b, max_seq_length - 3)
    else:
        del a[max_seq_length - 2:]
    sequence = [cls, *a, sep]
    segment_ids = [0] * len(sequence)
    if b is not None:
        sequence += [*b, sep]
        segment_ids += [1] * (len(b) + 1)
    return sequence, segment_ids


def pad(rows: Sequence[Sequence], length: int | None = None, dtype=np.int64, value=0) -> torch.Tensor:
    """Rows of numbers -> [len(rows), length] tensor, padded on the right with ``value`` (``length``:
    the longest row by default)."""
    length = max((len(r) for r in rows), default=0) if length is None else length
    out = np.full((len(rows), length), value, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return torch.from_numpy(out)


def encoder_inputs(input_ids: Sequence[Sequence[int]], segment_ids: Sequence[Sequence[int]],
                   length: int | None = None) -> dict[str, torch.Tensor]:
    """``input_ids``, ``input_mask`` (1 on real tokens) and ``segment_ids`` [B, S], padded to the
    longest row (or ``length``)."""
    ids = pad(input_ids, length)
    lengths = torch.tensor([len(r) for r in input_ids])
    mask = (torch.arange(ids.shape[1]) < lengths[:, None]).long()
    return {"input_ids": ids, "input_mask": mask, "segment_ids": pad(segment_ids, ids.shape[1])}


# ---------------------------------------------------------------------------------------------
# the train / eval / predict skeleton
# ---------------------------------------------------------------------------------------------
STALL_HINT = ("Likely causes: a learning rate too high for --optimizer=adamw_bert (the original optimizer "
              "has no bias correction, so its first steps are 3-6x larger than Adam's; above about 5e-5 "
              "this can collapse the [CLS] vector of every input to nearly the same one, after which the "
              "gradient vanishes and training never recovers), or a learning rate too low or too few "
              "steps to leave the plateau. Try --learning_rate=2e-5 to 5e-5, --optimizer=adamw (bias-"
              "corrected), another --seed, or more --num_train_epochs or examples.")


def chance_check(num_labels: float, what: str | None = None) -> ChanceLossCheck | None:
    """The Trainer check for a task choosing one of ``num_labels`` (classes, positions, choices;
    a geometric mean where it varies): warns when the loss is still ``ln(num_labels)``, the loss of
    a uniform guess. None below 2 labels (regression)."""
    if num_labels < 2:
        return None
    return ChanceLossCheck(math.log(num_labels), what or f"ln({num_labels:g}), the loss of a uniform "
                           f"guess over {num_labels:g} labels", STALL_HINT)


def num_train_steps(num_examples: int, train_batch_size: int, num_train_epochs: float) -> int:
    """As the original: ``int(num_examples / train_batch_size * num_train_epochs)`` (at least 1)."""
    return max(1, int(num_examples / train_batch_size * num_train_epochs))


def last_global_step(output_dir) -> int:
    """The step of the newest training checkpoint in ``output_dir`` (0 when there is none)."""
    found = train_state.list_checkpoints(output_dir) if output_dir else []
    return found[-1][0] if found else 0


@dataclass
class RunOptions:
    """How inference runs: device, autocast precision, progress bars."""

    device: str = "auto"
    precision: str = "fp32"
    progress: bool = True


@dataclass
class TrainData:
    """What a task trains on: a map-style dataset, its collate function, the number of examples
    the step count is computed from (SQuAD: questions, not windows), optional lengths
    (length-bucketed batches) and the Trainer callbacks of the task (e.g. :func:`chance_check`)."""

    dataset: Sequence
    collate: Callable[[list], dict]
    num_examples: int
    lengths: Sequence[int] | None = None
    callbacks: Sequence[TrainingCallback] = ()


class Task(Protocol):
    """A task as :func:`run` drives it (see docs/architecture.md, "How to add a task")."""

    def build_model(self, path: str | None, config: BertConfig): ...

    def train_data(self) -> TrainData: ...

    def save(self, model, output_dir: str, vocab_file: str | None) -> None: ...

    def evaluate(self, model, global_step: int) -> dict: ...

    def predict(self, model) -> None: ...

    # optional: read_inputs(do_train, do_eval, do_predict, config) reads every input the run will use (and
    # keeps it), so that a bad file stops the run before training


@dataclass
class Schedule:
    """The training run: the engine's arguments and, for fine-tuning, the original's epoch-based
    schedule (``num_train_steps`` and ``num_warmup_steps`` are then computed from the data)."""

    training: TrainingArguments
    num_train_epochs: float | None = None
    warmup_proportion: float = 0.1


def run(task: Task, source: ModelSource, output_dir: str, schedule: Schedule | None = None,
        do_eval: bool = False, do_predict: bool = False, command: str = "train",
        inputs: Sequence = ()) -> dict | None:
    """Train (when ``schedule`` is given), save, evaluate and predict, as the original scripts.

    Training starts from ``source.path`` (or random weights) and the trained model is saved to
    ``output_dir``; under torchrun only rank 0 saves, evaluates and predicts. Without training the
    model of ``source`` is loaded and evaluation reports the step of the newest checkpoint in
    ``output_dir``. Returns the evaluation result, if any.

    Before any work ``output_dir`` must be ``command``'s to write (:func:`check_output_dir`: not a
    file, not holding one of ``inputs`` or the model trained from, nothing openbert did not write
    unless ``--overwrite_output_dir``), and the task reads every input the run needs
    (``task.read_inputs``, when it has one, given the model's config), so a bad dev or test file stops the run before
    training. ``source.allow_unused`` reaches the task's ``build_model``.
    """
    training = schedule is not None
    overwrite = training and schedule.training.overwrite_output_dir
    inputs = [*inputs, *([source.path, source.vocab_file] if training else [])]
    check_output_dir(output_dir, command, overwrite=overwrite, inputs=inputs)
    read_inputs = getattr(task, "read_inputs", None)
    if read_inputs is not None:
        read_inputs(do_train=training, do_eval=do_eval, do_predict=do_predict, config=source.config)
    model, result = None, None
    global_step = last_global_step(output_dir)
    if training:
        data = task.train_data()
        args = schedule.training
        if schedule.num_train_epochs is not None:
            steps = num_train_steps(data.num_examples, args.train_batch_size, schedule.num_train_epochs)
            args = dataclasses.replace(args, num_train_steps=steps,
                                       num_warmup_steps=int(steps * schedule.warmup_proportion))
        set_seed(args.seed)  # before the model: fresh heads and random weights come from the seed
        with unused_weights_allowed(source.allow_unused):
            model = task.build_model(source.path, source.config)
        if is_main_process():
            claim_output_dir(output_dir, command, overwrite=overwrite, inputs=inputs)
        logger.info("***** Running training *****  %d examples, batch size %d, %d steps",
                    data.num_examples, args.train_batch_size, args.num_train_steps)
        global_step = Trainer(model, args, data.dataset, data.collate, lengths=data.lengths,
                              callbacks=data.callbacks).train().global_step
        del data
        if is_main_process():
            task.save(model, output_dir, source.vocab_file)
    if not (do_eval or do_predict) or not is_main_process():
        return None
    if model is None:
        with unused_weights_allowed(source.allow_unused):
            model = task.build_model(source.path, source.config)
        if getattr(model, "fresh_head", None):
            logger.warning("%s has no trained task head (%s are initialised fresh), so its results are "
                           "those of random weights: train it first (--do_train) or pass a fine-tuned "
                           "model", source.path, ", ".join(model.fresh_head))
        claim_output_dir(output_dir, command, inputs=inputs)
    if do_eval:
        result = task.evaluate(model, global_step)
    if do_predict:
        task.predict(model)
    return result


# ---------------------------------------------------------------------------------------------
# inference and results
# ---------------------------------------------------------------------------------------------
def logits_in_order(model, features: Sequence, collate_fn: Callable[[list], dict], batch_size: int,
                    lengths: Sequence[int] | None = None, options: RunOptions | None = None) -> np.ndarray:
    """[N, K] float32 ``model(**collate_fn(batch)).logits`` in input order (inference mode; batches
    sorted by ``lengths`` when given)."""
    o = options or RunOptions()
    out = None
    for idx, output in predict(model, features, collate_fn, batch_size, device=o.device, precision=o.precision,
                               lengths=lengths, progress=o.progress):
        logits = output.logits.float().cpu().numpy()
        if out is None:
            out = np.empty((len(features), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    if out is None:
        raise OpenBertError("no examples to run the model on")
    return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis."""
    return np.exp(log_softmax(logits))


def eval_losses(loss_sums: Sequence[float], counts: Sequence[float], batch_size: int) -> dict:
    """The original's two evaluation losses from each example's loss summed over its ``counts``
    units (1 for a sentence, its labelled words for tagging).

    ``eval_loss``: the mean over all units; ``loss``: the mean of the per-batch means over batches
    of ``batch_size`` consecutive examples (what the Estimator reports).
    """
    sums, counts = np.asarray(loss_sums, np.float64), np.asarray(counts, np.float64)
    means = [sums[i:i + batch_size].sum() / max(counts[i:i + batch_size].sum(), 1.0)
             for i in range(0, len(sums), batch_size)]
    return {"eval_loss": float(sums.sum() / max(counts.sum(), 1.0)), "loss": float(np.mean(means)) if means else 0.0}


def write_eval_results(path, result: dict) -> None:
    """``key = value`` lines sorted by key, as the original's eval_results.txt."""
    with atomic_open(path) as f:
        for key in sorted(result):
            f.write(f"{key} = {result[key]}\n")
    logger.info("eval results: %s", ", ".join(f"{k} = {result[k]}" for k in sorted(result)))


def write_probabilities(path, probs: np.ndarray) -> None:
    """One line per example, tab-separated probabilities, no header (the original's test_results.tsv)."""
    with atomic_open(path) as f:
        for row in probs:
            f.write("\t".join(str(np.float32(p)) for p in row) + "\n")


def save_with_labels(model, output_dir, label_list: Sequence | None = None, vocab_file=None, **extra) -> None:
    """save_pretrained into ``output_dir``; the label names go into config.json as HF's
    ``id2label`` / ``label2id`` (none for ``label_list`` None or ``[None]``), ``extra`` keys as given."""
    if label_list and list(label_list) != [None]:
        model.config.extra["id2label"] = {str(i): str(lab) for i, lab in enumerate(label_list)}
        model.config.extra["label2id"] = {str(lab): i for i, lab in enumerate(label_list)}
    model.config.extra.update(extra)
    save_pretrained(model, output_dir, vocab_file=vocab_file)
    logger.info("fine-tuned model saved to %s", output_dir)


def label_names(config: BertConfig) -> list | None:
    """The label list a fine-tuned model was saved with (HF ``id2label``), or None."""
    id2label = config.extra.get("id2label")
    if not id2label:
        return None
    return [id2label[k] for k in sorted(id2label, key=int)]

"""Multiple-choice data: SWAG's CSV files and JSON lines with any number of choices, features, batches.

Files in, batches out:

- ``swag``: SWAG's ``train.csv``, ``val.csv`` and ``test.csv`` (header row; the columns used are
  ``sent1`` (the context), ``sent2`` (the start of the next sentence), ``ending0`` ... ``ending3``
  and ``label``; the test file has no label);
- ``custom``: JSON lines ``{"context": ..., "choices": [...], "label": k}`` (``label`` left out in
  a test file; every line with the same number of choices, at least 2), ``train.jsonl`` /
  ``dev.jsonl`` / ``test.jsonl`` by default;
- :func:`convert_examples_to_features`: each choice is ``[CLS] context [SEP] start ending [SEP]``
  (the pair layout of :func:`openbert.tasks.common.pack_pair`: the longer side is trimmed first);
- :func:`collate` pads a batch to its longest choice: ``[B, C, S]`` inputs, ``[B]`` labels.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import torch

from ...errors import OpenBertError
from ...io.fileio import read_records
from ..common import encode_texts, encoder_inputs, pack_pair

logger = logging.getLogger(__name__)

TASKS = ("swag", "custom")
SPLIT_FILES = {
    "swag": {"train": ("train.csv",), "dev": ("val.csv",), "test": ("test.csv",)},
    "custom": {"train": ("train.jsonl",), "dev": ("dev.jsonl",), "test": ("test.jsonl",)},
}
SWAG_ENDINGS = tuple(f"ending{i}" for i in range(4))


@dataclass
class MultipleChoiceExample:
    """One question: ``context`` (SWAG's sent1), ``start`` (sent2: the words every ending continues,
    "" for custom files), the ``endings`` and the index of the right one (None: unlabelled)."""

    guid: str
    context: str
    start: str
    endings: list[str]
    label: int | None = None


@dataclass
class MultipleChoiceFeatures:
    """Unpadded ``[CLS] context [SEP] start ending [SEP]`` ids and segment ids, one list per choice;
    ``label``: the right choice (0 when unlabelled)."""

    input_ids: list[list[int]]
    segment_ids: list[list[int]]
    label: int


def check_task(task_name: str) -> str:
    """``task_name`` lower-cased, or OpenBertError naming --task_name and the known tasks."""
    name = str(task_name).lower()
    if name not in TASKS:
        raise OpenBertError(f"--task_name={task_name} is unknown; choose one of {', '.join(TASKS)}")
    return name


def _label(value, num_choices: int, path, line: int) -> int:
    ok = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.strip().lstrip("-").isdigit())
    if not ok:
        raise OpenBertError(f"{path}, line {line}: label {value!r} is not a choice number")
    label = int(value)
    if not 0 <= label < num_choices:
        raise OpenBertError(f"{path}, line {line}: label {label} is out of range for {num_choices} choices "
                            f"(0 to {num_choices - 1})")
    return label


def read_swag(path, split: str) -> list[MultipleChoiceExample]:
    """SWAG's CSV: sent1, sent2, ending0..3 and (not in test.csv) label, by header name."""
    examples = []
    for line, row in read_records(path):
        missing = [c for c in ("sent1", "sent2") + SWAG_ENDINGS if c not in row]
        if missing:
            raise OpenBertError(f"{path}, line {line}: no column {missing[0]!r} (found: {', '.join(row)}); "
                                f"is this a SWAG file (--task_name=swag)?")
        label = row.get("label")
        if label in (None, ""):
            if split != "test":
                raise OpenBertError(f"{path}, line {line}: no label; SWAG's {split} file has a label column")
            label = None
        else:
            label = _label(label, len(SWAG_ENDINGS), path, line)
        examples.append(MultipleChoiceExample(f"{split}-{len(examples)}", row["sent1"], row["sent2"],
                                              [row[c] for c in SWAG_ENDINGS], label))
    return examples


def read_custom(path, split: str) -> list[MultipleChoiceExample]:
    """JSON lines ``{"context": str, "choices": [str, ...], "label": int}``, one choice count per file."""
    examples: list[MultipleChoiceExample] = []
    for line, row in read_records(path):
        context, choices = row.get("context"), row.get("choices")
        if not isinstance(context, str):
            raise OpenBertError(f"{path}, line {line}: \"context\" must be a string")
        if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) for c in choices)):
            raise OpenBertError(f"{path}, line {line}: \"choices\" must be a list of at least 2 strings")
        if examples and len(choices) != len(examples[0].endings):
            raise OpenBertError(f"{path}, line {line}: {len(choices)} choices, the first line has "
                                f"{len(examples[0].endings)}; every line needs the same number")
        label = row.get("label")
        if label is None:
            if split != "test":
                raise OpenBertError(f"{path}, line {line}: no \"label\" (the index of the right choice)")
        else:
            label = _label(label, len(choices), path, line)
        examples.append(MultipleChoiceExample(f"{split}-{len(examples)}", context, "", list(choices), label))
    return examples


def read_examples(task: str, path, split: str) -> list[MultipleChoiceExample]:
    """The examples of ``path`` for ``task`` ("swag" or "custom"); OpenBertError for an empty file."""
    examples = (read_swag if check_task(task) == "swag" else read_custom)(path, split)
    if not examples:
        raise OpenBertError(f"{path}: no examples (an empty file?)")
    logger.info("%s %s: %d examples from %s", task, split, len(examples), path)
    return examples


def convert_examples_to_features(examples: Sequence[MultipleChoiceExample], max_seq_length: int,
                                 tokenizer) -> list[MultipleChoiceFeatures]:
    """One ``[CLS] context [SEP] start ending [SEP]`` per choice, at most ``max_seq_length`` long."""
    cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    contexts = encode_texts(tokenizer, [e.context for e in examples])
    seconds = encode_texts(tokenizer, [f"{e.start} {ending}" for e in examples for ending in e.endings])
    features, k = [], 0
    for ex, context in zip(examples, contexts):
        ids, segments = [], []
        for _ in ex.endings:
            a, b = pack_pair(list(context), seconds[k], max_seq_length, cls_id, sep_id)
            ids.append(a)
            segments.append(b)
            k += 1
        features.append(MultipleChoiceFeatures(ids, segments, 0 if ex.label is None else ex.label))
    return features


def length(f: MultipleChoiceFeatures) -> int:
    """The longest choice of ``f`` (what its batch pads to)."""
    return max(len(ids) for ids in f.input_ids)


def collate(features: Sequence[MultipleChoiceFeatures], with_labels: bool = True) -> dict[str, torch.Tensor]:
    """input_ids, input_mask, segment_ids [B, C, S] long, padded to the longest choice of the batch,
    and ``labels`` [B] when ``with_labels``."""
    choices = len(features[0].input_ids)
    flat = encoder_inputs([row for f in features for row in f.input_ids],
                          [row for f in features for row in f.segment_ids])
    batch = {k: v.view(len(features), choices, -1) for k, v in flat.items()}
    if with_labels:
        batch["labels"] = torch.tensor([f.label for f in features], dtype=torch.long)
    return batch


def collate_unlabelled(features: Sequence[MultipleChoiceFeatures]) -> dict[str, torch.Tensor]:
    """:func:`collate` without labels (prediction)."""
    return collate(features, with_labels=False)

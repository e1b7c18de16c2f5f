"""Sentence(-pair) classification data: run_classifier's processors, features and batches.

Files in, batches out:

- processors read a task's files into :class:`InputExample` (guid, text_a, text_b, label):
  the original four (MRPC, CoLA, MNLI, XNLI) exactly as run_classifier.py does (same files,
  columns, headers and labels; TSV read with NO quote handling, so quotes stay literal), the rest
  of GLUE (SST-2, QNLI, QQP, RTE, WNLI, STS-B regression, MNLI mismatched), SNLI (JSON lines) and
  ``custom`` TSV/CSV/JSONL files with named text_a/text_b/label columns;
- :func:`convert_examples_to_features` turns examples into unpadded
  ``[CLS] A [SEP] B [SEP]`` token ids with segment ids (the longer of A and B is trimmed first);
- :func:`collate` pads one batch to its longest member (per-batch padding, not max_seq_length).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import OpenBertError
from ...io.fileio import read_records, read_tsv
from ..common import encode_texts, encoder_inputs, pack_pair

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


@dataclass
class InputExample:
    """One example: ``text_b`` is None for single-sentence tasks; ``label`` is a label string
    (a float for regression), a placeholder (the first label) for unlabelled test data."""

    guid: str
    text_a: str
    text_b: str | None = None
    label: str | float | None = None


@dataclass
class InputFeatures:
    """Unpadded ids of ``[CLS] A [SEP] B [SEP]``; ``label_id`` is an int (a float for regression)."""

    input_ids: list[int]
    segment_ids: list[int]
    label_id: int | float


# ---------------------------------------------------------------------------------------------
# reading files
# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# processors
# ---------------------------------------------------------------------------------------------
class DataProcessor:
    """A task's files and labels. ``get_examples(data_dir, split)`` for split in train/dev/test.

    ``labels`` is the label list (class id = position); regression tasks have ``labels == [None]``
    and ``is_regression``. ``metrics`` names the entries of :mod:`openbert.tasks.classification.metrics` it reports.
    """

    name = ""
    labels: list = []
    is_regression = False
    metrics: tuple[str, ...] = ("accuracy",)
    files: dict[str, tuple[str, ...]] = {}  # split -> candidate file names, first found is used

    # the original API
    def get_train_examples(self, data_dir):
        return self.get_examples(data_dir, "train")

    def get_dev_examples(self, data_dir):
        return self.get_examples(data_dir, "dev")

    def get_test_examples(self, data_dir):
        return self.get_examples(data_dir, "test")

    def get_labels(self) -> list:
        return list(self.labels)

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.labels)

    def find_file(self, data_dir, split: str) -> Path:
        names = self.files.get(split)
        if not names:
            raise OpenBertError(f"task {self.name} has no {split} set")
        for name in names:
            path = Path(data_dir, name)
            if path.is_file():
                return path
        looked = ", ".join(str(Path(data_dir, n)) for n in names)
        raise OpenBertError(f"{self.name} {split} set not found: looked for {looked}; point --data_dir "
                            f"at the folder holding the task's files")

    def get_examples(self, data_dir, split: str) -> list[InputExample]:
        path = self.find_file(data_dir, split)
        examples = self.read_examples(path, split)
        if not examples:
            raise OpenBertError(f"{path}: the {self.name} {split} set has no examples (the file holds "
                                f"no data rows); pass a file with at least one")
        logger.info("%s %s: %d examples from %s", self.name, split, len(examples), path)
        return examples

    def read_examples(self, path: Path, split: str) -> list[InputExample]:
        raise NotImplementedError

    def check_label(self, label, path, line: int):
        """Return the label as stored in InputExample (a float for regression)."""
        if self.is_regression:
            try:
                return float(label)
            except (TypeError, ValueError):
                raise OpenBertError(f"{path}, line {line}: label {label!r} is not a number "
                                    f"({self.name} is a regression task)") from None
        if label not in self.labels:
            raise OpenBertError(f"{path}, line {line}: unknown label {label!r}; {self.name} labels are "
                                f"{', '.join(map(str, self.labels))}")
        return label

    def placeholder_label(self):
        """The label unlabelled (test) examples get, as the original: the first label (0.0)."""
        return 0.0 if self.is_regression else self.labels[0]


@dataclass(frozen=True)
class Columns:
    """Where a split's fields sit in its TSV rows (negative indexes count from the end).

    ``label`` None: unlabelled split (placeholder label). ``guid`` None: the guid is
    ``<split>-<row index>`` as the original; otherwise ``<split>-<row[guid]>`` (MNLI).
    ``language``: column that must equal the processor's language (XNLI dev/test).
    """

    text_a: int
    text_b: int | None = None
    label: int | None = None
    header: bool = True
    guid: int | None = None
    language: int | None = None

    def needed(self) -> int:
        """Minimum row length that holds every column used."""
        cols = [c for c in (self.text_a, self.text_b, self.label, self.guid, self.language) if c is not None]
        return max(c + 1 if c >= 0 else -c for c in cols)


class TsvProcessor(DataProcessor):
    """A task whose files are TSV with fixed column positions (GLUE, XNLI)."""

    columns: dict[str, Columns] = {}
    set_types: dict[str, str] = {"train": "train", "dev": "dev", "test": "test"}  # guid prefixes
    label_aliases: dict[str, str] = {}
    language: str | None = None

    def read_examples(self, path: Path, split: str) -> list[InputExample]:
        cols = self.columns[split]
        set_type = self.set_types[split]
        needed = cols.needed()
        examples = []
        for i, (line, row) in enumerate(read_tsv(path)):
            if i == 0 and cols.header:
                continue
            if len(row) < needed:
                raise OpenBertError(f"{path}, line {line}: expected at least {needed} tab-separated "
                                    f"columns for {self.name}, found {len(row)}; is this the right "
                                    f"file for --task_name={self.name}?")
            if cols.language is not None and row[cols.language] != self.language:
                continue
            if cols.label is None:
                label = self.placeholder_label()
            else:
                raw = row[cols.label]
                label = self.check_label(self.label_aliases.get(raw, raw), path, line)
            guid = f"{set_type}-{row[cols.guid] if cols.guid is not None else i}"
            text_b = row[cols.text_b] if cols.text_b is not None else None
            examples.append(InputExample(guid, row[cols.text_a], text_b, label))
        return examples


class MrpcProcessor(TsvProcessor):
    """MRPC: GLUE's train/dev/test.tsv or Microsoft's msr_paraphrase_train/test.txt (same columns:
    Quality, #1 ID, #2 ID, #1 String, #2 String; header; BOM in Microsoft's files). Without
    dev.tsv, Microsoft's test file (labelled) is the dev set."""

    name = "mrpc"
    labels = ["0", "1"]
    metrics = ("accuracy", "f1")
    files = {"train": ("train.tsv", "msr_paraphrase_train.txt"),
             "dev": ("dev.tsv", "msr_paraphrase_test.txt"),
             "test": ("test.tsv", "msr_paraphrase_test.txt")}
    columns = {"train": Columns(3, 4, 0), "dev": Columns(3, 4, 0), "test": Columns(3, 4)}


class ColaProcessor(TsvProcessor):
    """CoLA: train/dev without header (label col 1, text col 3); test with header (text col 1)."""

    name = "cola"
    labels = ["0", "1"]
    metrics = ("accuracy", "mcc")
    files = {"train": ("train.tsv",), "dev": ("dev.tsv",), "test": ("test.tsv",)}
    columns = {"train": Columns(3, None, 1, header=False), "dev": Columns(3, None, 1, header=False),
               "test": Columns(1)}


class MnliProcessor(TsvProcessor):
    """MNLI matched: train.tsv, dev_matched.tsv, test_matched.tsv; text cols 8, 9; label last."""

    name = "mnli"
    labels = ["contradiction", "entailment", "neutral"]
    files = {"train": ("train.tsv",), "dev": ("dev_matched.tsv",), "test": ("test_matched.tsv",)}
    set_types = {"train": "train", "dev": "dev_matched", "test": "test"}
    columns = {"train": Columns(8, 9, -1, guid=0), "dev": Columns(8, 9, -1, guid=0),
               "test": Columns(8, 9, guid=0)}


class MnliMismatchedProcessor(MnliProcessor):
    """MNLI mismatched: dev_mismatched.tsv and test_mismatched.tsv (train as MNLI)."""

    name = "mnli-mm"
    files = {"train": ("train.tsv",), "dev": ("dev_mismatched.tsv",), "test": ("test_mismatched.tsv",)}
    set_types = {"train": "train", "dev": "dev_mismatched", "test": "test"}


class XnliProcessor(TsvProcessor):
    """XNLI: train from multinli/multinli.train.<lang>.tsv (cols 0, 1, label 2, "contradictory"
    read as "contradiction"); dev/test from xnli.dev.tsv / xnli.test.tsv, rows of ``language``
    only (col 0), text cols 6, 7, label col 1."""

    name = "xnli"
    labels = ["contradiction", "entailment", "neutral"]
    label_aliases = {"contradictory": "contradiction"}
    columns = {"train": Columns(0, 1, 2), "dev": Columns(6, 7, 1, language=0),
               "test": Columns(6, 7, 1, language=0)}

    def __init__(self, language: str = "zh"):
        self.language = language
        self.files = {"train": (os.path.join("multinli", f"multinli.train.{language}.tsv"),),
                      "dev": ("xnli.dev.tsv",), "test": ("xnli.test.tsv",)}


def _glue(name, labels, train_dev: Columns, test: Columns, metrics=("accuracy",), regression=False):
    """A GLUE task in the standard layout: train.tsv / dev.tsv / test.tsv."""
    attrs = {"name": name, "labels": labels, "metrics": metrics, "is_regression": regression,
             "files": {"train": ("train.tsv",), "dev": ("dev.tsv",), "test": ("test.tsv",)},
             "columns": {"train": train_dev, "dev": train_dev, "test": test},
             "__doc__": f"GLUE {name}: train.tsv/dev.tsv/test.tsv, labels {labels}."}
    return type(name.replace("-", "").capitalize() + "Processor", (TsvProcessor,), attrs)


Sst2Processor = _glue("sst-2", ["0", "1"], Columns(0, None, 1), Columns(1))
QnliProcessor = _glue("qnli", ["entailment", "not_entailment"], Columns(1, 2, -1), Columns(1, 2))
QqpProcessor = _glue("qqp", ["0", "1"], Columns(3, 4, 5), Columns(1, 2), metrics=("accuracy", "f1"))
RteProcessor = _glue("rte", ["entailment", "not_entailment"], Columns(1, 2, -1), Columns(1, 2))
WnliProcessor = _glue("wnli", ["0", "1"], Columns(1, 2, -1), Columns(1, 2))
StsbProcessor = _glue("sts-b", [None], Columns(7, 8, -1), Columns(7, 8),
                      metrics=("pearson", "spearman"), regression=True)


class NamedColumnProcessor(DataProcessor):
    """Files whose columns have names: TSV (header row, no quote handling), CSV (header row,
    standard quoting) or JSON lines (keys). The format follows the file extension.

    ``text_b`` None: single sentences. ``labels`` None: the sorted distinct labels of the train
    set. Rows whose label is in ``skip_labels`` are dropped (SNLI's "-": no annotator majority).
    """

    def __init__(self, name="custom", files=None, text_a="text_a", text_b=None, label="label",
                 labels=None, is_regression=False, skip_labels=(), metrics=None):
        self.name = name
        self.files = {k: tuple(v) for k, v in (files or {}).items()}
        self.text_a, self.text_b, self.label = text_a, text_b, label
        self.is_regression = is_regression
        self.labels = [None] if is_regression else (list(labels) if labels else [])
        self.skip_labels = set(skip_labels)
        self.metrics = metrics or (("pearson", "spearman") if is_regression else ("accuracy",))

    def rows(self, path: Path):
        """Yield (line, dict) from a .tsv, .csv or .jsonl/.json file."""
        return read_records(path)

    def read_examples(self, path: Path, split: str) -> list[InputExample]:
        raw = []
        for line, row in self.rows(path):
            for col in (self.text_a, self.text_b):
                if col is not None and col not in row:
                    raise OpenBertError(f"{path}, line {line}: no column {col!r} (found: "
                                        f"{', '.join(map(str, row))}); name the columns with "
                                        f"--text_a_column / --text_b_column / --label_column")
            label = row.get(self.label)
            if label is not None and not isinstance(label, str) and not self.is_regression:
                label = str(label)
            if label in self.skip_labels:
                continue
            raw.append((line, row, label))
        if split == "train" and not self.labels:
            found = {lab for _, _, lab in raw if lab is not None}
            if not found:
                raise OpenBertError(f"{path}: no {self.label!r} column to learn labels from; name it "
                                    f"with --label_column")
            self.labels = sorted(found)
            logger.info("%s labels from %s: %s", self.name, path, self.labels)
        if not self.labels:
            raise OpenBertError(f"{self.name}: the label list is unknown; give it with --labels "
                                f"(or train first, the fine-tuned model remembers it)")
        examples = []
        for i, (line, row, label) in enumerate(raw):
            if label is None:
                if split != "test":
                    raise OpenBertError(f"{path}, line {line}: no {self.label!r} column; name it "
                                        f"with --label_column")
                label = self.placeholder_label()
            else:
                label = self.check_label(label, path, line)
            text_b = str(row[self.text_b]) if self.text_b is not None else None
            examples.append(InputExample(f"{split}-{i}", str(row[self.text_a]), text_b, label))
        return examples


def snli_processor() -> NamedColumnProcessor:
    """SNLI 1.0 JSON lines (sentence1, sentence2, gold_label; "-" rows dropped)."""
    return NamedColumnProcessor(
        "snli", files={"train": ("snli_1.0_train.jsonl", "snli_1.0_train_subset.jsonl"),
                       "dev": ("snli_1.0_dev.jsonl",), "test": ("snli_1.0_test.jsonl",)},
        text_a="sentence1", text_b="sentence2", label="gold_label",
        labels=["contradiction", "entailment", "neutral"], skip_labels=("-",))


PROCESSORS = {
    "cola": ColaProcessor, "mnli": MnliProcessor, "mnli-mm": MnliMismatchedProcessor,
    "mrpc": MrpcProcessor, "xnli": XnliProcessor, "sst-2": Sst2Processor, "qnli": QnliProcessor,
    "qqp": QqpProcessor, "rte": RteProcessor, "wnli": WnliProcessor, "sts-b": StsbProcessor,
    "snli": snli_processor, "custom": NamedColumnProcessor,
}


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def get_processor(task_name: str, **kwargs) -> DataProcessor:
    """The processor of ``task_name`` (case-insensitive; "sst2" = "SST-2", "mnli_mm" = "MNLI-MM").

    kwargs go to the processor: ``language`` for XNLI, the NamedColumnProcessor arguments for custom.
    """
    return PROCESSORS[canonical_task_name(task_name)](**kwargs)


def canonical_task_name(task_name: str) -> str:
    """The registry name of ``task_name`` ("SST2" -> "sst-2"); OpenBertError listing the known ones."""
    by_key = {_key(k): k for k in PROCESSORS}
    name = by_key.get(_key(task_name))
    if name is None:
        raise OpenBertError(f"unknown task {task_name!r}; known tasks: {', '.join(PROCESSORS)}")
    return name


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------
def convert_examples_to_features(examples: list[InputExample], label_list: list, max_seq_length: int,
                                 tokenizer) -> list[InputFeatures]:
    """``[CLS] A [SEP] (B [SEP])``, at most ``max_seq_length`` tokens, unpadded.

    Segment ids: 0 for [CLS], A and the first [SEP]; 1 for B and its [SEP]. Pairs lose tokens
    from the end of the longer side first (to fit ``max_seq_length - 3``), single texts are cut
    to ``max_seq_length - 2``. ``tokenizer``: a FullTokenizer (``encode_batch`` is used if present).
    """
    label_map = {label: i for i, label in enumerate(label_list)}
    regression = label_list == [None]
    ids_a_all = encode_texts(tokenizer, [e.text_a for e in examples])
    pair_idx = [i for i, e in enumerate(examples) if e.text_b is not None]
    ids_b_all = dict(zip(pair_idx, encode_texts(tokenizer, [examples[i].text_b for i in pair_idx])))
    cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    features = []
    for i, ex in enumerate(examples):
        input_ids, segment_ids = pack_pair(ids_a_all[i], ids_b_all.get(i), max_seq_length, cls_id, sep_id)
        label_id = float(ex.label) if regression else label_map[ex.label]
        features.append(InputFeatures(input_ids, segment_ids, label_id))
    return features


def collate(features: list[InputFeatures], with_labels: bool = True) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest example: input_ids, input_mask, segment_ids [B, S] (long), and
    ``labels`` [B] (long, float32 for regression) when ``with_labels``."""
    batch = encoder_inputs([f.input_ids for f in features], [f.segment_ids for f in features])
    if with_labels:
        regression = isinstance(features[0].label_id, float)
        batch["labels"] = torch.tensor([f.label_id for f in features],
                                       dtype=torch.float32 if regression else torch.long)
    return batch


def collate_unlabelled(features: list[InputFeatures]) -> dict[str, torch.Tensor]:
    """:func:`collate` without labels (for prediction)."""
    return collate(features, with_labels=False)

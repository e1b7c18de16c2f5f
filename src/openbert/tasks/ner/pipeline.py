"""Fine-tune, evaluate and predict with a token classifier: the pipeline behind ``openbert ner``
(on the shared training engine and the skeleton :func:`openbert.tasks.common.run`).

Windows in (:class:`openbert.tasks.ner.data.TaggingFeatures`), model / per-word tags / metrics /
files out. A word's tag is the argmax of the classifier on its first sub-token, in the one window
that predicts it (no CRF, as the paper).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ...config import BertConfig
from ...errors import OpenBertError
from ...io.fileio import atomic_open, atomic_write_text
from ...model.bert import BertForTokenClassification
from ...training.trainer import Trainer, TrainingArguments, TrainResult, predict
from .. import common
from . import data as ner_data
from . import metrics
from .data import DOCSTART, IGNORE, ConllFile, TaggingFeatures, collate, collate_unlabelled, to_iob2

logger = logging.getLogger(__name__)


def build_model(path, config: BertConfig, num_labels: int) -> BertForTokenClassification:
    """A token classifier from ``path`` (a head missing is initialised fresh), or from scratch."""
    return common.build_model(BertForTokenClassification, path, config, num_labels=num_labels)


def train(model, features: Sequence[TaggingFeatures], args: TrainingArguments) -> TrainResult:
    """Fine-tune ``model`` on ``features`` in shuffled batches, padded per batch.

    Not length-bucketed, unlike the sentence tasks: CoNLL's short lines (headlines, datelines, score
    tables) are entity-dense, and batches of only those (whose few words each weigh as much as a
    batch of long sentences in the per-word mean loss) cost about 4 F1 points at equal steps on
    CoNLL-2003 (docs/ner.md); the encoder skips the padding anyway.
    """
    return Trainer(model, args, features, collate).train()


def word_logits(model, features: Sequence[TaggingFeatures], batch_size: int,
                options: common.RunOptions | None = None) -> list[np.ndarray]:
    """Per window: [len(f.positions), num_labels] float32 logits of the words it predicts."""
    opts = options or common.RunOptions()
    out: list[np.ndarray | None] = [None] * len(features)
    lengths = [len(f.input_ids) for f in features]
    for idx, output in predict(model, features, collate_unlabelled, batch_size, device=opts.device,
                               precision=opts.precision, lengths=lengths, progress=opts.progress):
        logits = output.logits.float().cpu().numpy()  # [B, S, num_labels]
        for row, i in enumerate(idx):
            out[i] = logits[row, features[i].positions]
    return out


def decode(data: ConllFile, features: Sequence[TaggingFeatures], logits: Sequence[np.ndarray],
           labels: Sequence[str]) -> list[list[str]]:
    """Predicted tags, per sentence of ``data`` per word (every word is predicted once)."""
    tags: list[list[str | None]] = [[None] * len(s.words) for s in data.sentences]
    for f, lg in zip(features, logits):
        for word, label_id in zip(f.words, lg.argmax(axis=-1)):
            tags[f.sentence][word] = labels[label_id]
    missing = [(i, j) for i, t in enumerate(tags) for j, tag in enumerate(t) if tag is None]
    if missing:  # an invariant of convert_to_features; fail loudly rather than write a wrong file
        raise AssertionError(f"{len(missing)} words were not predicted (first: sentence {missing[0][0]})")
    return tags


def conll_rows(data: ConllFile, predictions: Sequence[Sequence[str]], scheme: str | None = None) -> list:
    """conlleval's input: ``(word, gold, predicted)`` per word (``(word, predicted)`` in a file
    without tags), ``None`` between sentences, ``-DOCSTART-`` lines (tag O) where the file had them.

    ``scheme`` "iobes": tags mapped to IOB2 (what conlleval evaluates correctly); None: as written.
    """
    rows: list = []

    def docstarts(n: int) -> None:
        for _ in range(n):
            rows.append((DOCSTART, "O", "O") if data.labelled else (DOCSTART, "O"))
            rows.append(None)

    for s, pred in zip(data.sentences, predictions):
        docstarts(s.docstarts)
        if scheme:
            pred = to_iob2(pred, scheme)
        if data.labelled:
            gold = to_iob2(s.tags, scheme) if scheme else s.tags
            rows.extend(zip(s.words, gold, pred))
        else:
            rows.extend(zip(s.words, pred))
        rows.append(None)
    docstarts(data.trailing_docstarts)
    return rows


def write_predictions(path, rows: Sequence) -> None:
    """conlleval's format: one ``word [gold] predicted`` line per word, a blank line between sentences."""
    with atomic_open(path) as f:
        for row in rows:
            f.write("\n" if row is None else " ".join(row) + "\n")


def tag_metrics(data: ConllFile, predictions: Sequence[Sequence[str]], scheme: str) -> tuple[dict, str]:
    """(``{f1, precision, recall, accuracy, f1_TYPE, precision_TYPE, recall_TYPE}``, conlleval's
    report) for a labelled file; scheme "none" (plain tags): accuracy only."""
    counts = metrics.count_chunks(conll_rows(data, predictions, scheme))
    s = metrics.scores(counts)
    if scheme == "none":
        return {"accuracy": s["accuracy"]}, f"accuracy: {100 * s['accuracy']:6.2f}%\n"
    result = {k: s[k] for k in ("f1", "precision", "recall", "accuracy")}
    for kind, t in s["per_type"].items():
        for k in ("f1", "precision", "recall"):
            result[f"{k}_{kind}"] = t[k]
    return result, metrics.report(counts)


def evaluate(model, data: ConllFile, features: Sequence[TaggingFeatures], labels: Sequence[str], scheme: str,
             batch_size: int, global_step: int, prefix: str = "eval",
             options: common.RunOptions | None = None) -> tuple[dict, list[list[str]], str]:
    """(results, predicted tags, conlleval report) for a labelled ``data``.

    Results: ``<prefix>_<metric>`` for :func:`tag_metrics`, ``<prefix>_loss`` (mean per-word
    loss), ``loss`` (mean of the per-batch means over batches of ``batch_size`` windows, as the
    Estimator reports) and ``global_step``.
    """
    logits = word_logits(model, features, batch_size, options)
    sums, counts = np.zeros(len(features)), np.zeros(len(features))
    for i, (f, lg) in enumerate(zip(features, logits)):
        gold = np.asarray([f.label_ids[p] for p in f.positions], dtype=np.int64)
        keep = gold != IGNORE
        if keep.any():
            sums[i] = -common.log_softmax(lg[keep])[np.arange(keep.sum()), gold[keep]].sum()
            counts[i] = keep.sum()
    predictions = decode(data, features, logits, labels)
    found, text = tag_metrics(data, predictions, scheme)
    losses = common.eval_losses(sums, counts, batch_size)
    result = {f"{prefix}_{k}": float(v) for k, v in found.items()}
    result.update({f"{prefix}_loss": losses["eval_loss"], "loss": losses["loss"], "global_step": int(global_step)})
    return result, predictions, text


def predict_tags(model, data: ConllFile, features: Sequence[TaggingFeatures], labels: Sequence[str],
                 batch_size: int, options: common.RunOptions | None = None) -> list[list[str]]:
    """Predicted tags per sentence per word."""
    return decode(data, features, word_logits(model, features, batch_size, options), labels)


# ---------------------------------------------------------------------------------------------
# the task, as tasks.common.run drives it
# ---------------------------------------------------------------------------------------------
@dataclass
class Windows:
    """How sentences become windows (see :func:`openbert.tasks.ner.data.convert_to_features`)."""

    max_seq_length: int = 128
    doc_stride: int | None = None
    document_context: bool = False


@dataclass
class ConllFiles:
    """Where the splits are (a name in ``data_dir`` or a path each; None: the default names of
    :data:`openbert.tasks.ner.data.SPLIT_FILES`) and how to read them."""

    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    tag_column: int = -1
    max_train_examples: int | None = None
    max_eval_examples: int | None = None


@dataclass
class NerTask:
    """Tagging on CoNLL files: trains on the train file, writes eval_results.txt and
    eval_conlleval.txt (dev file), test_predictions.txt and, with gold tags, test_results.txt and
    test_conlleval.txt (test file) to ``output_dir``. Call :meth:`read_inputs` first: it reads and
    checks every file the run needs, and fixes the label list and the tag scheme."""

    tokenizer: object
    output_dir: str
    files: ConllFiles = field(default_factory=ConllFiles)
    windows: Windows = field(default_factory=Windows)
    tag_scheme: str = "auto"
    eval_batch_size: int = 8
    predict_batch_size: int = 8
    options: common.RunOptions = field(default_factory=common.RunOptions)
    labels: list[str] | None = None
    data: dict[str, ConllFile] = field(default_factory=dict)

    def read_inputs(self, do_train: bool, do_eval: bool, do_predict: bool, config: BertConfig | None = None):
        """Read the splits the run needs (OpenBertError naming the file and line of a problem); the
        labels and scheme come from the training file, else from the fine-tuned model's ``config``."""
        scheme = ner_data.check_scheme(self.tag_scheme)
        size, stride = self.windows.max_seq_length - 2, self.windows.doc_stride
        if stride is not None and not 1 <= stride <= size:
            raise OpenBertError(f"--doc_stride={stride} must be between 1 and --max_seq_length - 2 = {size}")
        f = self.files
        for split, needed, labelled, limit in (("train", do_train, True, f.max_train_examples),
                                               ("dev", do_eval, True, f.max_eval_examples),
                                               ("test", do_predict, None, None)):
            if needed:
                path = common.find_data_file(f.data_dir, ner_data.SPLIT_FILES[split], f"the {split} file",
                                             f"--{split}_file", getattr(f, f"{split}_file"))
                conll = ner_data.read_conll(path, f.tag_column, labelled)
                if limit is not None:
                    conll.sentences, conll.trailing_docstarts = conll.sentences[:limit], 0
                logger.info("%s: %d sentences from %s", split, len(conll.sentences), path)
                self.data[split] = conll
        if "train" in self.data:
            self.labels = ner_data.label_list(self.data["train"])
            if scheme == "auto":
                scheme = ner_data.detect_scheme(self.data["train"].sentences)
                logger.info("tag scheme of %s: %s", self.data["train"].path, scheme)
        else:
            self.labels = common.label_names(config) if config is not None else None
            if not self.labels:
                raise OpenBertError("the model has no tag labels (id2label in its config.json): train it first "
                                    "with --do_train, or point --output_dir / --init_checkpoint at a model "
                                    "fine-tuned by `openbert ner`")
            if scheme == "auto":
                dev = self.data.get("dev")
                scheme = config.extra.get("tag_scheme") or (ner_data.detect_scheme(dev.sentences) if dev else "iob1")
        self.tag_scheme = scheme
        for conll in self.data.values():
            if conll.labelled:
                ner_data.check_tags(conll, scheme)
        return self

    def features(self, conll: ConllFile) -> list[TaggingFeatures]:
        w = self.windows
        return ner_data.convert_to_features(conll, self.tokenizer, w.max_seq_length,
                                            {t: i for i, t in enumerate(self.labels)}, w.doc_stride,
                                            w.document_context)

    def build_model(self, path, config: BertConfig):
        return build_model(path, config, len(self.labels))

    def train_data(self) -> common.TrainData:
        features = self.features(self.data["train"])
        logger.info("training on %d sentences, %d windows, %d labels (%s)", len(self.data["train"].sentences),
                    len(features), len(self.labels), self.tag_scheme)
        check = common.chance_check(len(self.labels), f"ln({len(self.labels)}), the loss of a uniform guess over "
                                    f"the {len(self.labels)} tags")
        # shuffled, not length-bucketed: see train()
        return common.TrainData(features, collate, len(features), callbacks=[check] if check else [])

    def save(self, model, output_dir: str, vocab_file) -> None:
        common.save_with_labels(model, output_dir, self.labels, vocab_file, tag_scheme=self.tag_scheme)

    def _scored(self, model, split: str, batch_size: int, global_step: int):
        """Evaluate on a labelled split; eval_* (dev) or test_* results and conlleval report files."""
        conll, prefix = self.data[split], "eval" if split == "dev" else split
        result, predictions, report = evaluate(model, conll, self.features(conll), self.labels, self.tag_scheme,
                                               batch_size, global_step, prefix, self.options)
        common.write_eval_results(os.path.join(self.output_dir, f"{prefix}_results.txt"), result)
        atomic_write_text(os.path.join(self.output_dir, f"{prefix}_conlleval.txt"), report)
        for key in sorted(result):
            print(f"{key} = {result[key]}")
        print(report, end="")
        return result, predictions

    def evaluate(self, model, global_step: int) -> dict:
        logger.info("***** Running evaluation *****  %d sentences, batch size %d",
                    len(self.data["dev"].sentences), self.eval_batch_size)
        return self._scored(model, "dev", self.eval_batch_size, global_step)[0]

    def predict(self, model) -> None:
        test = self.data["test"]
        logger.info("***** Running prediction *****  %d sentences, batch size %d", len(test.sentences),
                    self.predict_batch_size)
        if test.labelled:
            _, predictions = self._scored(model, "test", self.predict_batch_size,
                                          common.last_global_step(self.output_dir))
        else:
            predictions = predict_tags(model, test, self.features(test), self.labels, self.predict_batch_size,
                                       self.options)
        write_predictions(os.path.join(self.output_dir, "test_predictions.txt"), conll_rows(test, predictions))

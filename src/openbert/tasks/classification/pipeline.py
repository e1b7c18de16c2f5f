"""Fine-tune, evaluate and predict with a sequence classifier: the pipeline behind
``openbert classify`` and ``openbert quickstart`` (run_classifier's model_fn and main, on the shared
training engine and the skeleton :func:`openbert.tasks.common.run`).

Features in (:class:`openbert.tasks.classification.data.InputFeatures`), model / results / files out.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from ...config import BertConfig
from ...model.bert import BertForSequenceClassification
from ...training.trainer import Trainer, TrainingArguments, TrainResult
from .. import common
from . import metrics as metrics_lib
from .data import (DataProcessor, canonical_task_name, collate, collate_unlabelled,
                   convert_examples_to_features, get_processor)

logger = logging.getLogger(__name__)


def build_model(path, config: BertConfig, num_labels: int, seed: int | None = None):
    """A classifier from ``path`` (heads missing are initialised fresh), or from scratch;
    ``seed`` seeds the fresh weights (see common.build_model)."""
    return common.build_model(BertForSequenceClassification, path, config, seed=seed, num_labels=num_labels)


def train(model, features, args: TrainingArguments) -> TrainResult:
    """Fine-tune ``model`` on ``features`` with length-bucketed, per-batch padded batches; warns
    once when the loss is still at chance level (ln(num_labels)) after 30% of the steps."""
    lengths = [len(f.input_ids) for f in features]
    check = common.chance_check(model.num_labels)
    return Trainer(model, args, features, collate, lengths=lengths,
                   callbacks=[check] if check else []).train()


def logits_in_order(model, features, batch_size: int, device="auto", precision="fp32",
                    progress=True) -> np.ndarray:
    """[N, num_labels] float32 logits in input order; batches are length-sorted, inference mode."""
    return common.logits_in_order(model, features, collate_unlabelled, batch_size,
                                  [len(f.input_ids) for f in features], common.RunOptions(device, precision, progress))


def evaluate(model, features, batch_size: int, metric_names, global_step: int, device="auto",
             precision="fp32", progress=True) -> dict:
    """The original's eval results plus task metrics.

    ``eval_loss``: mean per-example loss; ``loss``: mean of the per-batch mean losses over batches
    of ``batch_size`` in input order (what the Estimator reports); ``eval_<metric>`` for each of
    ``metric_names``; ``global_step``.
    """
    logits = logits_in_order(model, features, batch_size, device, precision, progress)
    labels = np.asarray([f.label_id for f in features])
    if logits.shape[1] == 1:  # regression
        predictions = logits[:, 0]
        per_example = (predictions - labels.astype(np.float32)) ** 2
    else:
        per_example = -common.log_softmax(logits)[np.arange(len(labels)), labels.astype(np.int64)]
        predictions = logits.argmax(axis=1)
    result = metrics_lib.compute(metric_names, predictions, labels)
    result.update(common.eval_losses(per_example, np.ones(len(per_example)), batch_size),
                  global_step=int(global_step))
    return result


def probabilities(model, features, batch_size: int, device="auto", precision="fp32", progress=True) -> np.ndarray:
    """[N, num_labels] class probabilities in input order (the regression score for 1 label)."""
    logits = logits_in_order(model, features, batch_size, device, precision, progress)
    return logits if logits.shape[1] == 1 else common.softmax(logits)


# shared with every task, under their classification names
save = common.save_with_labels
label_names = common.label_names
write_eval_results = common.write_eval_results
write_test_results = common.write_probabilities


# ---------------------------------------------------------------------------------------------
# the task, as tasks.common.run drives it
# ---------------------------------------------------------------------------------------------
@dataclass
class CustomColumns:
    """The ``custom`` task: files of the three splits and the columns to read."""

    train_file: str = "train.tsv"
    dev_file: str = "dev.tsv"
    test_file: str = "test.tsv"
    text_a: str = "text_a"
    text_b: str | None = None
    label: str = "label"
    labels: list | None = None  # default: the sorted labels of the train set
    is_regression: bool = False


def processor_for(task_name: str, labels_from_model: list | None = None, xnli_language: str = "zh",
                  custom: CustomColumns | None = None) -> DataProcessor:
    """The data processor of ``task_name``; a custom task takes its label list from ``custom``,
    else from the model it continues (``labels_from_model``)."""
    task = canonical_task_name(task_name)
    if task == "custom":
        c = custom or CustomColumns()
        files = {"train": [c.train_file], "dev": [c.dev_file], "test": [c.test_file]}
        return get_processor("custom", files=files, text_a=c.text_a, text_b=c.text_b, label=c.label,
                             labels=c.labels or labels_from_model, is_regression=c.is_regression)
    if task == "xnli":
        return get_processor("xnli", language=xnli_language)
    return get_processor(task_name)


@dataclass
class ClassificationTask:
    """Sentence(-pair) classification on ``processor``'s files in ``data_dir``: trains on the train
    split, writes eval_results.txt (dev) and test_results.tsv (test) to ``output_dir``."""

    processor: DataProcessor
    data_dir: str
    tokenizer: object
    max_seq_length: int
    output_dir: str
    eval_batch_size: int = 8
    predict_batch_size: int = 8
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    options: common.RunOptions = field(default_factory=common.RunOptions)
    _read: dict = field(default_factory=dict, init=False, repr=False)  # split -> examples

    def examples(self, split: str) -> list:
        """The examples of ``split`` (train / dev / test), read once; train and dev cut to
        ``max_train_examples`` / ``max_eval_examples``."""
        if split not in self._read:
            limit = {"train": self.max_train_examples, "dev": self.max_eval_examples}.get(split)
            self._read[split] = self.processor.get_examples(self.data_dir, split)[:limit]
        return self._read[split]

    def read_inputs(self, do_train: bool, do_eval: bool, do_predict: bool, config=None) -> None:
        """Read every split the run uses now (train first: a custom task learns its labels
        there), so that a bad or empty file stops the run before training."""
        for split, used in (("train", do_train), ("dev", do_eval), ("test", do_predict)):
            if used:
                self.examples(split)

    def features(self, examples):
        return convert_examples_to_features(examples, self.processor.get_labels(), self.max_seq_length,
                                            self.tokenizer)

    def build_model(self, path, config: BertConfig):
        return build_model(path, config, self.processor.num_labels)

    def train_data(self) -> common.TrainData:
        examples = self._read.pop("train", None) or self.examples("train")
        features = self.features(examples)
        check = common.chance_check(self.processor.num_labels)
        return common.TrainData(features, collate, len(examples), [len(f.input_ids) for f in features],
                                [check] if check else [])

    def save(self, model, output_dir: str, vocab_file) -> None:
        save(model, output_dir, self.processor.get_labels(), vocab_file)

    def evaluate(self, model, global_step: int) -> dict:
        examples = self.examples("dev")
        logger.info("***** Running evaluation *****  %d examples, batch size %d", len(examples),
                    self.eval_batch_size)
        o = self.options
        result = evaluate(model, self.features(examples), self.eval_batch_size, self.processor.metrics,
                          global_step, o.device, o.precision, o.progress)
        write_eval_results(os.path.join(self.output_dir, "eval_results.txt"), result)
        for key in sorted(result):
            print(f"{key} = {result[key]}")
        return result

    def predict(self, model) -> None:
        examples = self.examples("test")
        logger.info("***** Running prediction *****  %d examples, batch size %d", len(examples),
                    self.predict_batch_size)
        o = self.options
        probs = probabilities(model, self.features(examples), self.predict_batch_size, o.device,
                              o.precision, o.progress)
        write_test_results(os.path.join(self.output_dir, "test_results.tsv"), probs)

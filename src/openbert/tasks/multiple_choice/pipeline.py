"""Fine-tune, evaluate and predict with a multiple-choice model: the pipeline behind
``openbert multiple-choice`` (on the shared training engine and the skeleton
:func:`openbert.tasks.common.run`).

Questions in (:class:`openbert.tasks.multiple_choice.data.MultipleChoiceFeatures`), model /
results / per-choice probabilities out.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ...checkpoints.pretrained import save_pretrained
from ...config import BertConfig
from ...model.bert import BertForMultipleChoice
from ...training.trainer import Trainer, TrainingArguments, TrainResult
from .. import common
from . import data as mc_data
from .data import MultipleChoiceExample, MultipleChoiceFeatures, collate, collate_unlabelled, length

logger = logging.getLogger(__name__)


def build_model(path, config: BertConfig) -> BertForMultipleChoice:
    """A multiple-choice model from ``path`` (a head missing is initialised fresh), or from scratch."""
    return common.build_model(BertForMultipleChoice, path, config)


def train(model, features: Sequence[MultipleChoiceFeatures], args: TrainingArguments) -> TrainResult:
    """Fine-tune ``model`` on ``features``, batches bucketed by their longest choice, padded per batch."""
    return Trainer(model, args, features, collate, lengths=[length(f) for f in features]).train()


def logits(model, features: Sequence[MultipleChoiceFeatures], batch_size: int,
           options: common.RunOptions | None = None) -> np.ndarray:
    """[N, num_choices] float32 choice scores in input order."""
    return common.logits_in_order(model, features, collate_unlabelled, batch_size, [length(f) for f in features],
                                  options)


def evaluate(model, features: Sequence[MultipleChoiceFeatures], batch_size: int, global_step: int,
             options: common.RunOptions | None = None) -> dict:
    """``eval_accuracy``, ``eval_loss`` (mean per-question loss), ``loss`` (mean of the per-batch
    means, as the Estimator reports) and ``global_step``."""
    scores = logits(model, features, batch_size, options)
    labels = np.asarray([f.label for f in features], dtype=np.int64)
    per_example = -common.log_softmax(scores)[np.arange(len(labels)), labels]
    result = {"eval_accuracy": float(np.mean(scores.argmax(axis=1) == labels))}
    result.update(common.eval_losses(per_example, np.ones(len(labels)), batch_size), global_step=int(global_step))
    return result


def probabilities(model, features: Sequence[MultipleChoiceFeatures], batch_size: int,
                  options: common.RunOptions | None = None) -> np.ndarray:
    """[N, num_choices] probability of each choice (softmax over the choices)."""
    return common.softmax(logits(model, features, batch_size, options))


# ---------------------------------------------------------------------------------------------
# the task, as tasks.common.run drives it
# ---------------------------------------------------------------------------------------------
@dataclass
class ChoiceFiles:
    """Where the splits are (a name in ``data_dir`` or a path each; None: the task's default names,
    :data:`openbert.tasks.multiple_choice.data.SPLIT_FILES`)."""

    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    max_train_examples: int | None = None
    max_eval_examples: int | None = None


@dataclass
class MultipleChoiceTask:
    """SWAG or custom multiple choice: trains on the train file, writes eval_results.txt (dev) and
    test_results.tsv (test) to ``output_dir``. Call :meth:`read_inputs` first: it reads and checks
    every file the run needs."""

    task_name: str
    tokenizer: object
    output_dir: str
    max_seq_length: int = 128
    files: ChoiceFiles = field(default_factory=ChoiceFiles)
    eval_batch_size: int = 8
    predict_batch_size: int = 8
    options: common.RunOptions = field(default_factory=common.RunOptions)
    examples: dict[str, list[MultipleChoiceExample]] = field(default_factory=dict)

    def read_inputs(self, do_train: bool, do_eval: bool, do_predict: bool, config=None):
        """Read the splits the run needs (OpenBertError naming the file and line of a problem)."""
        task, f = mc_data.check_task(self.task_name), self.files
        for split, needed, limit in (("train", do_train, f.max_train_examples),
                                     ("dev", do_eval, f.max_eval_examples), ("test", do_predict, None)):
            if needed:
                path = common.find_data_file(f.data_dir, mc_data.SPLIT_FILES[task][split], f"the {task} {split} file",
                                             f"--{split}_file", getattr(f, f"{split}_file"))
                self.examples[split] = mc_data.read_examples(task, path, split)[:limit]
        return self

    def features(self, split: str) -> list[MultipleChoiceFeatures]:
        return mc_data.convert_examples_to_features(self.examples[split], self.max_seq_length, self.tokenizer)

    def build_model(self, path, config: BertConfig):
        return build_model(path, config)

    def train_data(self) -> common.TrainData:
        features = self.features("train")
        counts = [len(f.input_ids) for f in features]  # choices per question
        check = common.chance_check(float(np.exp(np.mean(np.log(counts)))) if counts else 0,
                                    "the loss of a uniform guess over each question's choices")
        return common.TrainData(features, collate, len(features), [length(f) for f in features],
                                [check] if check else [])

    def save(self, model, output_dir: str, vocab_file) -> None:
        save_pretrained(model, output_dir, vocab_file=vocab_file)

    def evaluate(self, model, global_step: int) -> dict:
        logger.info("***** Running evaluation *****  %d questions, batch size %d", len(self.examples["dev"]),
                    self.eval_batch_size)
        result = evaluate(model, self.features("dev"), self.eval_batch_size, global_step, self.options)
        common.write_eval_results(os.path.join(self.output_dir, "eval_results.txt"), result)
        for key in sorted(result):
            print(f"{key} = {result[key]}")
        return result

    def predict(self, model) -> None:
        logger.info("***** Running prediction *****  %d questions, batch size %d", len(self.examples["test"]),
                    self.predict_batch_size)
        probs = probabilities(model, self.features("test"), self.predict_batch_size, self.options)
        common.write_probabilities(os.path.join(self.output_dir, "test_results.tsv"), probs)

"""Fine-tune and predict on SQuAD v1.1 / v2.0: the pipeline behind ``openbert squad`` (run_squad's
model_fn and main on the shared training engine and the skeleton :func:`openbert.tasks.common.run`).

Questions in (SQuAD json), windows (:mod:`~openbert.tasks.squad.data`), start/end logits,
predictions (:mod:`~openbert.tasks.squad.postprocess`) and the official metrics
(:mod:`~openbert.tasks.squad.metrics`) out.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
from dataclasses import dataclass, field

from ...checkpoints.pretrained import save_pretrained
from ...config import BertConfig
from ...errors import OpenBertError
from ...io.fileio import atomic_write_text
from ...model.bert import BertForQuestionAnswering
from ...training.trainer import predict
from .. import common
from . import data as squad_data
from . import metrics as squad_metrics
from .postprocess import RawResult, compute_predictions, write_predictions

logger = logging.getLogger(__name__)


@dataclass
class Windows:
    """How a document is cut into windows: ``[CLS] question [SEP] window [SEP]``."""

    max_seq_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64


@dataclass
class Answers:
    """How answers are chosen from the start/end logits."""

    n_best_size: int = 20
    max_answer_length: int = 30
    do_lower_case: bool = True
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    verbose_logging: bool = False


def features_for(path: str, is_training: bool, tokenizer, windows: Windows,
                 version_2_with_negative: bool = False, verbose_logging: bool = False):
    """SQuAD file -> (examples, features): the questions and their windows."""
    stats = squad_data.ReadStats()
    examples = squad_data.read_squad_examples(path, is_training, version_2_with_negative, stats)
    if not examples:
        raise OpenBertError(f"{path}: no usable questions ({len(stats.skipped_ids)} skipped)")
    if is_training:
        random.Random(12345).shuffle(examples)  # the original pre-shuffles the training examples
    features = squad_data.convert_examples_to_features(examples, tokenizer, windows.max_seq_length,
                                                       windows.doc_stride, windows.max_query_length,
                                                       is_training)
    if verbose_logging:
        for f in features[:20]:
            logger.info("unique_id %d example %d window %d: %s", f.unique_id, f.example_index,
                        f.doc_span_index, " ".join(f.tokens))
    return examples, features


def raw_results(model, features, batch_size: int, options: common.RunOptions) -> list[RawResult]:
    """Start/end logits of every feature (window), in feature order."""
    results: list[RawResult | None] = [None] * len(features)
    lengths = [len(f.input_ids) for f in features]
    for idx, out in predict(model, features, squad_data.collate_predict, batch_size,
                            device=options.device, precision=options.precision, lengths=lengths,
                            progress=options.progress):
        start = out.start_logits.float().cpu().tolist()
        end = out.end_logits.float().cpu().tolist()
        for row, i in enumerate(idx):
            n = lengths[i]
            results[i] = RawResult(features[i].unique_id, start[row][:n], end[row][:n])
    return results


def has_answers(path: str) -> bool:
    """True when the predict file carries gold answers (a dev set, not a test set)."""
    data = squad_data.load_squad_json(path)
    return any(qa.get("answers") or qa.get("is_impossible") for entry in data["data"]
               for p in entry["paragraphs"] for qa in p["qas"])


@dataclass
class SquadTask:
    """Trains on ``train_file``; predicts on ``predict_file`` into ``output_dir``
    (predictions.json, nbest_predictions.json, v2.0 null_odds.json) and, when the file has
    answers, writes the official metrics (eval_results.json)."""

    tokenizer: object
    output_dir: str
    train_file: str | None = None
    predict_file: str | None = None
    windows: Windows = field(default_factory=Windows)
    answers: Answers = field(default_factory=Answers)
    predict_batch_size: int = 8
    options: common.RunOptions = field(default_factory=common.RunOptions)
    _predict_set: tuple | None = field(default=None, init=False, repr=False)

    def read_inputs(self, do_train: bool, do_eval: bool, do_predict: bool, config=None) -> None:
        """Read the predict file now (the train file is read next anyway), so that a bad one
        stops the run before training."""
        if do_predict:
            self.predict_set()

    def predict_set(self) -> tuple:
        """(examples, features) of ``predict_file``, read once."""
        if self._predict_set is None:
            a = self.answers
            self._predict_set = features_for(self.predict_file, False, self.tokenizer, self.windows,
                                             a.version_2_with_negative, a.verbose_logging)
        return self._predict_set

    def build_model(self, path, config: BertConfig) -> BertForQuestionAnswering:
        return common.build_model(BertForQuestionAnswering, path, config)

    def train_data(self) -> common.TrainData:
        examples, features = features_for(self.train_file, True, self.tokenizer, self.windows,
                                          self.answers.version_2_with_negative,
                                          self.answers.verbose_logging)
        logger.info("%d questions in %d windows", len(examples), len(features))
        lengths = [len(f.input_ids) for f in features]
        # chance: a uniform guess over each window's positions (batches are padded per length bucket)
        positions = math.exp(sum(map(math.log, lengths)) / len(lengths))
        check = common.chance_check(positions, "the loss of a uniform guess over each window's tokens")
        return common.TrainData(features, squad_data.collate_train, len(examples), lengths,
                                [check] if check else [])

    def save(self, model, output_dir: str, vocab_file) -> None:
        # recorded so that serving knows whether the model may answer "no answer"
        model.config.extra["version_2_with_negative"] = bool(self.answers.version_2_with_negative)
        save_pretrained(model, output_dir, vocab_file=vocab_file)
        logger.info("fine-tuned model saved to %s", output_dir)

    def predict(self, model) -> None:
        a = self.answers
        examples, features = self.predict_set()
        logger.info("***** Running predictions *****  %d examples, %d windows, batch size %d",
                    len(examples), len(features), self.predict_batch_size)
        results = raw_results(model, features, self.predict_batch_size, self.options)
        preds = compute_predictions(examples, features, results, a.n_best_size, a.max_answer_length,
                                    a.do_lower_case, a.version_2_with_negative,
                                    a.null_score_diff_threshold, a.verbose_logging)
        write_predictions(preds, self.output_dir, a.version_2_with_negative)
        if has_answers(self.predict_file):
            dataset = squad_data.load_squad_json(self.predict_file)
            result = squad_metrics.evaluate(dataset, preds.predictions,
                                            preds.null_odds if a.version_2_with_negative else None,
                                            version="2.0" if a.version_2_with_negative else None)
            text = json.dumps(result, indent=2)
            atomic_write_text(os.path.join(self.output_dir, "eval_results.json"), text + "\n")
            print(text)

"""Fine-tune, evaluate and predict with a sequence classifier: the pipeline behind
``openbert classify`` and ``openbert quickstart`` (run_classifier's model_fn and main, on the shared
training engine).

Features in (:class:`openbert.tasks.classification.data.InputFeatures`), model / results / files out.
"""
from __future__ import annotations

import logging

import numpy as np

from ...checkpoints.pretrained import save_pretrained
from ...config import BertConfig
from ...errors import OpenBertError
from ...io.fileio import atomic_open
from ...model.bert import BertForSequenceClassification
from ...training import state as train_state
from ...training.trainer import Trainer, TrainingArguments, TrainResult, predict
from .. import common as finetuning
from . import metrics as metrics_lib
from .data import collate, collate_unlabelled

logger = logging.getLogger(__name__)


def build_model(path, config: BertConfig, num_labels: int):
    """A classifier from ``path`` (heads missing are initialised fresh), or from scratch."""
    return finetuning.build_model(BertForSequenceClassification, path, config, num_labels=num_labels)


def label_names(config: BertConfig) -> list | None:
    """The label list a fine-tuned model was saved with (HF ``id2label``), or None."""
    id2label = config.extra.get("id2label")
    if not id2label:
        return None
    return [id2label[k] for k in sorted(id2label, key=int)]


def train(model, features, args: TrainingArguments) -> TrainResult:
    """Fine-tune ``model`` on ``features`` with length-bucketed, per-batch padded batches."""
    lengths = [len(f.input_ids) for f in features]
    return Trainer(model, args, features, collate, lengths=lengths).train()


def save(model, output_dir, label_list: list, vocab_file=None) -> None:
    """save_pretrained into ``output_dir`` with the label names (``id2label``) in config.json."""
    if label_list != [None]:
        model.config.extra["id2label"] = {str(i): str(lab) for i, lab in enumerate(label_list)}
        model.config.extra["label2id"] = {str(lab): i for i, lab in enumerate(label_list)}
    save_pretrained(model, output_dir, vocab_file=vocab_file)
    logger.info("fine-tuned model saved to %s", output_dir)


def logits_in_order(model, features, batch_size: int, device="auto", precision="fp32",
                    progress=True) -> np.ndarray:
    """[N, num_labels] float32 logits in input order; batches are length-sorted, inference mode."""
    lengths = [len(f.input_ids) for f in features]
    out = None
    for idx, o in predict(model, features, collate_unlabelled, batch_size, device=device,
                          precision=precision, lengths=lengths, progress=progress):
        logits = o.logits.float().cpu().numpy()
        if out is None:
            out = np.empty((len(features), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    if out is None:
        raise OpenBertError("no examples to run the model on")
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


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
        log_probs = logits - logits.max(axis=1, keepdims=True)
        log_probs = log_probs - np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
        per_example = -log_probs[np.arange(len(labels)), labels.astype(np.int64)]
        predictions = logits.argmax(axis=1)
    batch_means = [per_example[i:i + batch_size].mean() for i in range(0, len(per_example), batch_size)]
    result = metrics_lib.compute(metric_names, predictions, labels)
    result.update(eval_loss=float(per_example.mean()), loss=float(np.mean(batch_means)),
                  global_step=int(global_step))
    return result


def probabilities(model, features, batch_size: int, device="auto", precision="fp32", progress=True) -> np.ndarray:
    """[N, num_labels] class probabilities in input order (the regression score for 1 label)."""
    logits = logits_in_order(model, features, batch_size, device, precision, progress)
    return logits if logits.shape[1] == 1 else _softmax(logits)


def write_eval_results(path, result: dict) -> None:
    """``key = value`` lines sorted by key, as the original's eval_results.txt."""
    with atomic_open(path) as f:
        for key in sorted(result):
            f.write(f"{key} = {result[key]}\n")
    logger.info("eval results: %s", ", ".join(f"{k} = {result[k]}" for k in sorted(result)))


def write_test_results(path, probs: np.ndarray) -> None:
    """One line per example, tab-separated class probabilities, no header (test_results.tsv)."""
    with atomic_open(path) as f:
        for row in probs:
            f.write("\t".join(str(np.float32(p)) for p in row) + "\n")


def last_global_step(output_dir) -> int:
    """The step of the newest training checkpoint in ``output_dir`` (0 when there is none)."""
    found = train_state.list_checkpoints(output_dir) if output_dir else []
    return found[-1][0] if found else 0


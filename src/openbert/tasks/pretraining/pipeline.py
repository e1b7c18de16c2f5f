"""Pre-training on masked LM + next sentence: the pipeline behind ``openbert pretrain``
(run_pretraining's model_fn, input_fn and metric_fn on the shared training engine and the skeleton
:func:`openbert.tasks.common.run`).

Instances in (:class:`~openbert.tasks.pretraining.data.PretrainingDataset`: openbert shards or
TFRecord files), model / eval_results.txt out.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch.nn.functional as F

from ...checkpoints.pretrained import save_pretrained
from ...config import BertConfig
from ...errors import OpenBertError
from ...io.fileio import atomic_write_text
from ...model.bert import BertForPreTraining
from ...tokenization.wordpiece import load_vocab
from ...training.trainer import predict
from ..common import RunOptions, TrainData
from .data import DynamicMasking, MaskingVocab, PretrainingDataset, collate

logger = logging.getLogger(__name__)


@dataclass
class MaskingOptions:
    """Dynamic masking: fresh masks at every pass over an instance, drawn from its unmasked tokens."""

    masked_lm_prob: float = 0.15
    do_whole_word_mask: bool = False
    seed: int = 42


def dynamic_masking(dataset: PretrainingDataset, vocab_file: str | None, config: BertConfig,
                    max_predictions_per_seq: int, options: MaskingOptions) -> DynamicMasking:
    """The masking for ``dataset``: special ids from ``vocab_file``, else from the shards' metadata."""
    meta = dataset.meta
    subword_ids = dataset.subword_ids
    if vocab_file:
        mv = MaskingVocab(load_vocab(vocab_file), vocab_file)
        ids = (mv.cls_id, mv.sep_id, mv.mask_id)
        subword_ids = np.flatnonzero(np.frombuffer(bytes(mv.is_subword), np.uint8))
    elif "mask_id" in meta:
        ids = (meta["cls_id"], meta["sep_id"], meta["mask_id"])
    else:
        raise OpenBertError("--dynamic_masking on TFRecord input needs --vocab_file (for the "
                            "[MASK], [CLS] and [SEP] ids)")
    if options.do_whole_word_mask and subword_ids is None:
        raise OpenBertError("--do_whole_word_mask with --dynamic_masking needs --vocab_file")
    return DynamicMasking(*ids, vocab_size=config.vocab_size, masked_lm_prob=options.masked_lm_prob,
                          max_predictions_per_seq=max_predictions_per_seq,
                          subword_ids=subword_ids if options.do_whole_word_mask else None,
                          seed=options.seed)


def vocab_file_for(dataset: PretrainingDataset, vocab_file: str | None = None,
                   fallback: str | None = None) -> str | None:
    """The vocabulary saved with the model (fill-mask and extract-features read it): ``vocab_file``
    (--vocab_file; it must be the one the data was made with when the data records it), else the
    data's, else ``fallback`` (the one beside --init_checkpoint)."""
    data_vocab = dataset.vocab_file
    if vocab_file:
        if data_vocab and load_vocab(vocab_file) != load_vocab(data_vocab):
            raise OpenBertError(f"--vocab_file {vocab_file} is not the vocabulary the data was made with "
                                f"({data_vocab}): leave --vocab_file out, or re-create the data")
        return vocab_file
    return data_vocab or fallback


class _Prefix:
    """The first ``n`` items of a dataset (the original evaluates the input's first batches)."""

    def __init__(self, dataset, n: int):
        self.dataset, self.n = dataset, min(n, len(dataset))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.dataset[i]


def evaluate(model: BertForPreTraining, dataset, batch_size: int, max_eval_steps: int,
             next_sentence: bool = True, device: str = "auto", precision: str = "fp32",
             progress: bool = True) -> dict[str, float]:
    """run_pretraining's metric_fn over the first ``max_eval_steps`` batches: masked_lm_accuracy
    and masked_lm_loss weighted by masked_lm_weights, next_sentence accuracy and mean loss, and
    loss = the mean of the batches' total losses."""
    data = _Prefix(dataset, max_eval_steps * batch_size)
    sums = dict(mlm_correct=0.0, mlm_weight=0.0, mlm_nll=0.0, nsp_correct=0.0, nsp_loss=0.0,
                n=0, loss=0.0, batches=0)
    for idx, out in predict(model, data, lambda ex: collate(ex, next_sentence), batch_size,
                            device=device, precision=precision, progress=progress):
        batch = collate([data[i] for i in idx], next_sentence)
        logits = out.masked_lm_logits.float().cpu()  # [B, P, V]
        w = batch["masked_lm_weights"]
        ids = batch["masked_lm_ids"]
        nll = -F.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        sums["mlm_correct"] += float(((logits.argmax(-1) == ids).float() * w).sum())
        sums["mlm_weight"] += float(w.sum())
        sums["mlm_nll"] += float((nll * w).sum())
        sums["loss"] += float(out.loss)
        sums["batches"] += 1
        if next_sentence:
            ns = out.next_sentence_logits.float().cpu()
            labels = batch["next_sentence_labels"]
            sums["nsp_correct"] += float((ns.argmax(-1) == labels).sum())
            sums["nsp_loss"] += float(F.cross_entropy(ns, labels, reduction="sum"))
        sums["n"] += len(idx)
    result = {"masked_lm_accuracy": sums["mlm_correct"] / max(sums["mlm_weight"], 1e-12),
              "masked_lm_loss": sums["mlm_nll"] / max(sums["mlm_weight"], 1e-12),
              "loss": sums["loss"] / max(sums["batches"], 1)}
    if next_sentence:
        result["next_sentence_accuracy"] = sums["nsp_correct"] / max(sums["n"], 1)
        result["next_sentence_loss"] = sums["nsp_loss"] / max(sums["n"], 1)
    return result


def write_eval_results(path: str, result: dict) -> None:
    """``key = value`` lines sorted by key, as the original's eval_results.txt."""
    atomic_write_text(path, "".join(f"{k} = {result[k]}\n" for k in sorted(result)))


@dataclass
class PretrainingTask:
    """Masked LM (+ next sentence unless ``next_sentence`` is False) on ``dataset``; evaluation
    over its first ``max_eval_steps`` batches with the stored masks, as the original."""

    dataset: PretrainingDataset
    output_dir: str
    next_sentence: bool = True
    masking: DynamicMasking | None = None  # None: the masks stored in the data
    eval_batch_size: int = 8
    max_eval_steps: int = 100
    options: RunOptions = field(default_factory=RunOptions)

    def __post_init__(self):
        self._collate = lambda examples: collate(examples, self.next_sentence)

    def check_vocab_size(self, config: BertConfig, input_file: str) -> None:
        """The data's token ids must fit the model's vocabulary."""
        vocab_size = self.dataset.meta.get("vocab_size")
        if vocab_size is not None and vocab_size > config.vocab_size:
            raise OpenBertError(f"the data in {input_file} uses token ids up to {vocab_size - 1} "
                                f"but the model's vocab_size is {config.vocab_size}: use the config of "
                                f"the vocabulary the data was made with")

    def build_model(self, path, config: BertConfig) -> BertForPreTraining:
        if path:  # fresh pre-training heads on an encoder-only checkpoint are trained: expected
            return BertForPreTraining.from_pretrained(path, config=config, fresh_head_expected=True)
        return BertForPreTraining(config)

    def train_data(self) -> TrainData:
        self.dataset.dynamic_masking = self.masking
        return TrainData(self.dataset, self._collate, len(self.dataset), self.dataset.lengths)

    def save(self, model, output_dir: str, vocab_file) -> None:
        save_pretrained(model, output_dir, vocab_file=vocab_file)
        if vocab_file is None:
            logger.warning("the data does not record its vocabulary (TFRecord files, or shards made by an "
                           "older openbert), so %s has no vocab.txt: pass --vocab_file here, or later to "
                           "fill-mask and extract-features", output_dir)

    def evaluate(self, model, global_step: int) -> dict:
        self.dataset.dynamic_masking = None  # evaluation uses the stored masks, as the original
        logger.info("***** Running evaluation *****  batch size %d, at most %d steps",
                    self.eval_batch_size, self.max_eval_steps)
        o = self.options
        result = evaluate(model, self.dataset, self.eval_batch_size, self.max_eval_steps,
                          self.next_sentence, o.device, o.precision, o.progress)
        result["global_step"] = global_step
        write_eval_results(os.path.join(self.output_dir, "eval_results.txt"), result)
        for key in sorted(result):
            print(f"{key} = {result[key]}")
        return result

"""Pre-train BERT on masked LM + next sentence prediction, as run_pretraining.py.

    openbert pretrain --input_file=data/ --output_dir=out --do_train --do_eval \\
        --bert_config_file=bert_config.json --train_batch_size=32 --max_seq_length=128 \\
        --max_predictions_per_seq=20 --num_train_steps=10000 --num_warmup_steps=1000 \\
        --learning_rate=1e-4

--input_file: openbert shard directories and/or TFRecord files (comma-separated globs) made by
`openbert create-pretraining-data`. Loss = masked LM on the gathered masked positions only + next
sentence. --init_checkpoint continues from TF / HF / openbert weights (a checkpoint without the
pre-training heads gets fresh heads, logged). Writes the model (save_pretrained) and
eval_results.txt to --output_dir, training checkpoints under --output_dir/checkpoints.
"""
from __future__ import annotations

import argparse
import logging
import os

import numpy as np
import torch.nn.functional as F

from ..checkpoints.pretrained import find_vocab, load_config, save_pretrained
from ..config import BertConfig
from ..errors import OpenBertError
from ..io.fileio import atomic_write_text
from ..model.bert import BertForPreTraining
from ..tasks.pretraining.data import DynamicMasking, MaskingVocab, PretrainingDataset, collate
from ..training import state as train_state
from ..training.trainer import Trainer, TrainingArguments, is_main_process, predict
from .flags import add_bool, add_training_flags

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run_pretraining flags")
    g.add_argument("--bert_config_file", help="bert_config.json of the model to train (default: "
                                              "beside --init_checkpoint)")
    g.add_argument("--input_file", required=True,
                   help="shard directories / TFRecord files (comma-separated globs)")
    g.add_argument("--output_dir", required=True, help="where the model, checkpoints and results go")
    g.add_argument("--init_checkpoint", help="start from these weights (TF, HF or openbert)")
    g.add_argument("--max_seq_length", type=int, default=128,
                   help="must equal the value the data was created with")
    g.add_argument("--max_predictions_per_seq", type=int, default=20,
                   help="must equal the value the data was created with")
    add_bool(g, "do_train", False, "run training")
    add_bool(g, "do_eval", False, "run evaluation on --input_file")
    g.add_argument("--train_batch_size", type=int, default=32)
    g.add_argument("--eval_batch_size", type=int, default=8)
    g.add_argument("--learning_rate", type=float, default=5e-5)
    g.add_argument("--num_train_steps", type=int, default=100000)
    g.add_argument("--num_warmup_steps", type=int, default=10000)
    g.add_argument("--save_checkpoints_steps", type=int, default=1000)
    g.add_argument("--iterations_per_loop", type=int, default=1000, help="accepted for compatibility (TPU only)")
    g.add_argument("--max_eval_steps", type=int, default=100, help="maximum number of eval batches")
    add_bool(g, "use_tpu", False, "accepted for compatibility; must be false")
    b = parser.add_argument_group("beyond the original")
    add_bool(b, "no_nsp", False, "train the masked LM alone (no next-sentence loss)")
    add_bool(b, "dynamic_masking", False, "draw fresh masks at every pass over an instance "
                                          "(from its unmasked tokens) instead of the stored ones")
    b.add_argument("--vocab_file", help="vocab.txt: saved with the model; dynamic masking on "
                                        "TFRecord input needs it for the [MASK]/[CLS]/[SEP] ids")
    b.add_argument("--masked_lm_prob", type=float, default=0.15, help="dynamic masking: masked fraction")
    add_bool(b, "do_whole_word_mask", False, "dynamic masking: mask whole words")
    add_training_flags(parser)


def _config(args) -> BertConfig:
    if args.bert_config_file:
        return load_config(None, args.bert_config_file)
    if args.init_checkpoint:
        return load_config(args.init_checkpoint)
    raise OpenBertError("give --bert_config_file (the model to train) or --init_checkpoint")


def _vocab_file(args) -> str | None:
    if args.vocab_file:
        if not os.path.isfile(args.vocab_file):
            raise OpenBertError(f"--vocab_file {args.vocab_file} does not exist")
        return args.vocab_file
    return find_vocab(args.init_checkpoint) if args.init_checkpoint else None


def _dynamic_masking(args, dataset: PretrainingDataset, vocab_file: str | None,
                     config: BertConfig) -> DynamicMasking:
    meta = dataset.meta
    subword_ids = dataset.subword_ids
    if vocab_file:
        from ..tokenization.wordpiece import load_vocab

        mv = MaskingVocab(load_vocab(vocab_file), vocab_file)
        ids = (mv.cls_id, mv.sep_id, mv.mask_id)
        subword_ids = np.flatnonzero(np.frombuffer(bytes(mv.is_subword), np.uint8))
    elif "mask_id" in meta:
        ids = (meta["cls_id"], meta["sep_id"], meta["mask_id"])
    else:
        raise OpenBertError("--dynamic_masking on TFRecord input needs --vocab_file (for the "
                            "[MASK], [CLS] and [SEP] ids)")
    if args.do_whole_word_mask and subword_ids is None:
        raise OpenBertError("--do_whole_word_mask with --dynamic_masking needs --vocab_file")
    return DynamicMasking(*ids, vocab_size=config.vocab_size, masked_lm_prob=args.masked_lm_prob,
                          max_predictions_per_seq=args.max_predictions_per_seq,
                          subword_ids=subword_ids if args.do_whole_word_mask else None,
                          seed=args.seed)


def build_model(args, config: BertConfig) -> BertForPreTraining:
    """Training: --init_checkpoint or fresh weights. Eval alone: the model trained earlier in
    --output_dir (as the original restores its latest checkpoint), else --init_checkpoint."""
    path = args.init_checkpoint
    if not args.do_train and os.path.isfile(os.path.join(args.output_dir, "config.json")):
        path = args.output_dir
    if path:
        return BertForPreTraining.from_pretrained(path, config=config)
    return BertForPreTraining(config)


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


def run(args: argparse.Namespace) -> int:
    if not (args.do_train or args.do_eval):
        raise OpenBertError("at least one of --do_train or --do_eval must be true")
    if args.use_tpu:
        raise OpenBertError("--use_tpu is not supported: openbert runs on CPU and CUDA GPUs (--device)")
    config = _config(args)
    if args.max_seq_length > config.max_position_embeddings:
        raise OpenBertError(f"--max_seq_length={args.max_seq_length} exceeds the model's "
                            f"max_position_embeddings={config.max_position_embeddings}")
    vocab_file = _vocab_file(args)
    dataset = PretrainingDataset(args.input_file, args.max_seq_length, args.max_predictions_per_seq)
    vocab_size = dataset.meta.get("vocab_size")
    if vocab_size is not None and vocab_size > config.vocab_size:
        raise OpenBertError(f"the data in {args.input_file} uses token ids up to {vocab_size - 1} "
                            f"but the model's vocab_size is {config.vocab_size}: use the config of "
                            f"the vocabulary the data was made with")
    next_sentence = not args.no_nsp
    model = build_model(args, config)
    # eval alone reports the step of the newest training checkpoint, as the original
    found = [] if args.do_train else train_state.list_checkpoints(args.output_dir)
    global_step = found[-1][0] if found else 0
    if args.do_train:
        train_args = TrainingArguments.from_args(args)
        if args.dynamic_masking:
            dataset.dynamic_masking = _dynamic_masking(args, dataset, vocab_file, config)
        logger.info("***** Running training *****  %d instances, batch size %d, %d steps",
                    len(dataset), args.train_batch_size, args.num_train_steps)
        result = Trainer(model, train_args, dataset, lambda ex: collate(ex, next_sentence),
                         lengths=dataset.lengths).train()
        dataset.dynamic_masking = None  # evaluation uses the stored masks, as the original
        global_step = result.global_step
        if is_main_process():
            save_pretrained(model, args.output_dir, vocab_file=vocab_file)
    if args.do_eval and is_main_process():
        os.makedirs(args.output_dir, exist_ok=True)
        logger.info("***** Running evaluation *****  batch size %d, at most %d steps",
                    args.eval_batch_size, args.max_eval_steps)
        result = evaluate(model, dataset, args.eval_batch_size, args.max_eval_steps, next_sentence,
                          device=args.device, precision=args.precision, progress=args.progress)
        result["global_step"] = global_step
        write_eval_results(os.path.join(args.output_dir, "eval_results.txt"), result)
        for key in sorted(result):
            print(f"{key} = {result[key]}")
    return 0


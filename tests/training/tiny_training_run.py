"""A tiny BERT classification run through openbert.training, for tests that need a real process.

python tests/tiny_training_run.py --output_dir D [--num_train_steps N] [--resume] ...
(also under ``torchrun --nproc_per_node=2``). Writes D/final.pt (the model's state dict) at the end.
"""
from __future__ import annotations

import argparse
import time

import torch

from openbert.config import BertConfig
from openbert.model.bert import BertForSequenceClassification
from openbert.training.distributed import is_main_process
from openbert.training.trainer import Trainer, TrainingArguments


def tiny_data(n: int = 48, seq_len: int = 16, seed: int = 1) -> list[dict]:
    """Random token ids with per-example padding; the label is whether token 7 occurs."""
    g = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n):
        length = int(torch.randint(4, seq_len + 1, (1,), generator=g))
        ids = torch.randint(1, 99, (length,), generator=g)
        data.append({"input_ids": ids, "label": int((ids % 7 == 0).any())})
    return data


def collate(examples: list[dict], delay: float = 0.0) -> dict:
    """Pad to the longest example of the batch."""
    if delay:
        time.sleep(delay)
    seq_len = max(len(e["input_ids"]) for e in examples)
    ids = torch.zeros(len(examples), seq_len, dtype=torch.long)
    mask = torch.zeros(len(examples), seq_len, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, :len(e["input_ids"])] = e["input_ids"]
        mask[i, :len(e["input_ids"])] = 1
    return {"input_ids": ids, "input_mask": mask,
            "labels": torch.tensor([e["label"] for e in examples])}


def tiny_model(dropout: float = 0.1, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
                     hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(cfg, num_labels=2)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--output_dir", required=True)
    p.add_argument("--num_train_steps", type=int, default=12)
    p.add_argument("--train_batch_size", type=int, default=8)
    p.add_argument("--gradient_accumulation_steps", type=int, default=1)
    p.add_argument("--save_checkpoints_steps", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--step_delay", type=float, default=0.0, help="seconds of sleep per micro-batch")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--lengths", action="store_true", help="length-bucketed batches")
    a = p.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels in every process, so runs compare bit for bit
    try:
        model = tiny_model(a.dropout)
        data = tiny_data()
        args = TrainingArguments(output_dir=a.output_dir, train_batch_size=a.train_batch_size,
                                 learning_rate=1e-3, num_train_steps=a.num_train_steps,
                                 num_warmup_steps=2, gradient_accumulation_steps=a.gradient_accumulation_steps,
                                 save_checkpoints_steps=a.save_checkpoints_steps, keep_checkpoint_max=0,
                                 resume=a.resume, progress=False, log_every_n_steps=1, device="cpu",
                                 plot=False)
        lengths = [len(e["input_ids"]) for e in data] if a.lengths else None
        Trainer(model, args, data, lambda ex: collate(ex, a.step_delay), lengths=lengths).train()
        if is_main_process():
            torch.save(model.state_dict(), f"{a.output_dir}/final.pt")
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()

"""What the fine-tuning benchmarks share: their common flags, openbert's training run, the
interleaved speed loop, and the HF transformers side: a plain torch loop the way HF users write it
(shuffled batches, fused torch AdamW as HF Trainer's default on torch >= 2.8, linear warmup then
decay, clipping at 1.0) with openbert's batch keys renamed to HF's."""
from __future__ import annotations

import logging
import os
import time

import numpy as np
import torch
import transformers

from openbert.training.optimization import lr_at
from openbert.training.trainer import TrainingArguments

transformers.logging.set_verbosity_error()  # no load report for the fresh heads on every repetition
transformers.logging.disable_progress_bar()


def add_flags(p, speed_steps: int, speed_reps: int = 3) -> None:
    """--speed_steps, --speed_reps, --skip_accuracy, --skip_speed, --hf_schedule, --threads, --seed."""
    p.add_argument("--speed_steps", type=int, default=speed_steps)
    p.add_argument("--speed_reps", type=int, default=speed_reps)
    p.add_argument("--skip_accuracy", action="store_true")
    p.add_argument("--skip_speed", action="store_true")
    p.add_argument("--hf_schedule", default="original", choices=["original", "hf"],
                   help="HF side's learning-rate schedule: original (BERT's, as openbert: the same recipe) or "
                        "hf (get_linear_schedule_with_warmup)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=42)


def setup(a) -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(a.threads)


def openbert_training(train, model, features, steps: int, batch_size: int, lr: float, seed: int, output_dir,
                      optimizer: str = "adamw") -> tuple[float, float]:
    """Run ``train(model, features, args)`` (a task's pipeline.train) with the benchmarks' settings:
    10% warmup, no intermediate checkpoints, CPU. Returns (seconds of the training steps alone, from
    the one metrics row; CPU seconds of the whole call)."""
    args = TrainingArguments(output_dir=str(output_dir), train_batch_size=batch_size, learning_rate=lr,
                             num_train_steps=steps, num_warmup_steps=int(steps * 0.1), seed=seed,
                             save_checkpoints_steps=None, keep_checkpoint_max=1, progress=False,
                             log_every_n_steps=steps, plot=False, device="cpu", optimizer=optimizer)
    c0 = time.process_time()
    result = train(model, features, args)
    return steps * batch_size / result.history[-1]["seq_per_s"], time.process_time() - c0


def interleaved_speed(reps: int, n: int, ours, theirs, unit: str, peer: str = "HF padded per batch") -> None:
    """``reps`` repetitions of ``ours(rep)`` then ``theirs(rep)`` (each -> (seconds, CPU seconds) for
    ``n`` examples), so background load hits both; prints each and the medians with their ratios."""
    a, b = [], []
    for rep in range(reps):
        s, c = ours(rep)
        a.append((n / s, n / c))
        s, c = theirs(rep)
        b.append((n / s, n / c))
        print(f"  rep {rep}: openbert {a[-1][0]:.1f} {unit}/s ({a[-1][1]:.1f} per CPU-s); {peer} {b[-1][0]:.1f} "
              f"({b[-1][1]:.1f}); {a[-1][0] / b[-1][0]:.2f}x", flush=True)
    if a:
        o, h = np.median(a, axis=0), np.median(b, axis=0)
        print(f"training speed (median of {reps}): openbert {o[0]:.1f} {unit}/s vs {peer} {h[0]:.1f}: "
              f"{o[0] / h[0]:.2f}x wall; per CPU-second {o[1]:.1f} vs {h[1]:.1f}: {o[1] / h[1]:.2f}x")


class Peers:
    """openbert's and HF's fine-tuning of one task on the same features: ``openbert_model()`` /
    ``hf_model()`` build fresh models, ``train`` is the task's pipeline.train, ``collate`` its
    collate function (HF gets the same batches, keys renamed)."""

    def __init__(self, a, openbert_model, train, hf_model, collate, tmp):
        self.a, self.openbert_model, self.train, self.hf_model, self.collate, self.tmp = (
            a, openbert_model, train, hf_model, collate, tmp)

    def ours(self, features, steps: int, seed: int, name: str):
        """(model, seconds of the training steps, CPU seconds)."""
        model = self.openbert_model()
        s, c = openbert_training(self.train, model, features, steps, self.a.train_batch_size, self.a.learning_rate,
                                 seed, os.path.join(self.tmp, name))
        return model, s, c

    def theirs(self, model, features, steps: int, seed: int) -> tuple[float, float]:
        return hf_train(model, lambda idx: hf_inputs(self.collate([features[i] for i in idx])), len(features),
                        steps, self.a.train_batch_size, self.a.learning_rate, seed,
                        schedule=getattr(self.a, "hf_schedule", "hf"))

    def speed(self, features, unit: str) -> None:
        """:func:`interleaved_speed` over ``--speed_reps`` random samples of ``--speed_steps`` batches."""
        a = self.a
        n = a.speed_steps * a.train_batch_size
        samples = [[features[i] for i in np.random.default_rng(rep).choice(len(features), n, replace=False)]
                   for rep in range(a.speed_reps)]
        interleaved_speed(0 if a.skip_speed else a.speed_reps, n,
                          lambda rep: self.ours(samples[rep], a.speed_steps, a.seed + rep, f"speed{rep}")[1:],
                          lambda rep: self.theirs(self.hf_model(), samples[rep], a.speed_steps, a.seed + rep), unit)


def timed(fn):
    """(fn(), seconds)."""
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def hf_inputs(batch: dict) -> dict:
    """openbert batch -> HF keyword arguments (input_mask -> attention_mask, segment_ids -> token_type_ids)."""
    names = {"input_mask": "attention_mask", "segment_ids": "token_type_ids"}
    return {names.get(k, k): v for k, v in batch.items()}


def hf_train(model, make_batch, num_examples: int, steps: int, batch_size: int, lr: float, seed: int,
             warmup_proportion: float = 0.1, schedule: str = "hf") -> tuple[float, float]:
    """Fine-tune ``model`` for ``steps`` batches of ``batch_size`` examples drawn in epoch-shuffled
    order; ``make_batch(indices)`` gives the HF inputs (labels included). ``schedule``: "hf"
    (get_linear_schedule_with_warmup) or "original" (BERT's: after warmup ``1 - step / T``, as
    openbert). Returns (seconds, CPU seconds)."""
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
               "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=lr, eps=1e-6, fused=True)
    except RuntimeError:
        opt = torch.optim.AdamW(groups, lr=lr, eps=1e-6)
    warmup = int(steps * warmup_proportion)
    if schedule == "original":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_at(step, 1.0, steps, warmup))
    else:
        sched = transformers.get_linear_schedule_with_warmup(opt, warmup, steps)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(num_examples) for _ in range(steps * batch_size // num_examples + 1)])
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(steps):
        loss = model(**make_batch(order[step * batch_size:(step + 1) * batch_size])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0, time.process_time() - c0

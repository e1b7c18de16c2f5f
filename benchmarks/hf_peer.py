"""The HF transformers side of the fine-tuning benchmarks: a plain torch loop the way HF users write
it (shuffled batches, fused torch AdamW as HF Trainer's default on torch >= 2.8, linear warmup then
decay, clipping at 1.0), and the openbert batch keys renamed to HF's."""
from __future__ import annotations

import time

import numpy as np
import torch
import transformers

transformers.logging.set_verbosity_error()  # no load report for the fresh heads on every repetition
transformers.logging.disable_progress_bar()


def hf_inputs(batch: dict) -> dict:
    """openbert batch -> HF keyword arguments (input_mask -> attention_mask, segment_ids -> token_type_ids)."""
    names = {"input_mask": "attention_mask", "segment_ids": "token_type_ids"}
    return {names.get(k, k): v for k, v in batch.items()}


def hf_train(model, make_batch, num_examples: int, steps: int, batch_size: int, lr: float, seed: int,
             warmup_proportion: float = 0.1) -> tuple[float, float]:
    """Fine-tune ``model`` for ``steps`` batches of ``batch_size`` examples drawn in epoch-shuffled
    order; ``make_batch(indices)`` gives the HF inputs (labels included). Returns (seconds, CPU seconds)."""
    from transformers import get_linear_schedule_with_warmup

    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
               "weight_decay": 0.01},
              {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=lr, eps=1e-6, fused=True)
    except RuntimeError:
        opt = torch.optim.AdamW(groups, lr=lr, eps=1e-6)
    sched = get_linear_schedule_with_warmup(opt, int(steps * warmup_proportion), steps)
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

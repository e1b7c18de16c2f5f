"""Fine-tuning MiniLM-L6 on MRPC: openbert vs HF transformers, same model, data and hyper-parameters.

    python benchmarks/classification.py                      # speed (interleaved) + full accuracy runs
    python benchmarks/classification.py --skip_accuracy      # speed only
    python benchmarks/classification.py --train_examples=1000 --num_train_epochs=1

Data: Microsoft's MRPC files (msr_paraphrase_train.txt to train, msr_paraphrase_test.txt to report),
tokenized once by openbert (both sides get the same token ids). Both sides: batch 32, torch AdamW
(bias correction) with weight decay 0.01, 10% linear warmup then linear decay, clipping at 1.0.
``--optimizer=adamw_bert`` gives openbert's side the original AdamWeightDecay instead (no bias
correction, so its steps are several times larger early on: use a lower ``--learning_rate``, e.g.
the original README's 2e-5).

- openbert: ``openbert.tasks.classification.pipeline.train`` (the Trainer: length-bucketed batches, per-batch padding,
  encoder on real tokens only), evaluation in inference mode, length-sorted.
- HF: ``BertForSequenceClassification`` in a plain torch loop, shuffled batches,
  ``torch.optim.AdamW`` (fused: HF Trainer's default on torch >= 2.8) and
  ``get_linear_schedule_with_warmup``; evaluation in order, under no_grad. Two paddings, both timed
  in the speed part: to the longest member of each batch (DataCollatorWithPadding: the stronger
  peer, used for the accuracy run) and to ``--max_seq_length`` (HF's run_glue.py default,
  ``pad_to_max_length=True``, and what the original run_classifier feeds its model).

Speed: ``--speed_reps`` interleaved repetitions (ours, then HF's, so background load hits both),
each one epoch of ``--speed_steps`` batches over the same random sample of training pairs on both
sides; wall-clock and process-CPU seq/s, with ratios (on a shared machine the CPU-time ratio is
the steadier one).
Accuracy: one full fine-tuning run each (wall seq/s of the whole run printed too).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import fine_tuning as ft
from openbert.checkpoints import assets
from openbert.checkpoints.pretrained import load_config
from openbert.tasks import common
from openbert.tasks.classification import pipeline as classifier
from openbert.tasks.classification.data import collate, convert_examples_to_features, get_processor
from openbert.tokenization.wordpiece import FullTokenizer

MRPC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue" / "MRPC"


# ---------------------------------------------------------------------------------------------
# the HF side
# ---------------------------------------------------------------------------------------------
def hf_model(model_dir, num_labels=2):
    from transformers import BertForSequenceClassification

    return BertForSequenceClassification.from_pretrained(str(model_dir), num_labels=num_labels)


def hf_batch(features, pad_to=None):
    """DataCollatorWithPadding: pad to the longest example of the batch (``pad_to``: to that length,
    as run_glue.py's default pad_to_max_length)."""
    b = collate(features)
    if pad_to is not None:
        b = {k: torch.nn.functional.pad(v, (0, pad_to - v.shape[1])) if v.dim() == 2 else v
             for k, v in b.items()}
    return ft.hf_inputs(b)


def hf_train(model, features, steps, batch_size, lr, seed, warmup_proportion=0.1, pad_to=None):
    """The HF loop over ``features``; returns seconds, CPU seconds."""
    return ft.hf_train(model, lambda idx: hf_batch([features[i] for i in idx], pad_to), len(features),
                            steps, batch_size, lr, seed, warmup_proportion)


def hf_accuracy(model, features, batch_size=64):
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(features), batch_size):
            b = hf_batch(features[i:i + batch_size])
            b.pop("labels")
            preds.append(model(**b).logits.argmax(-1).numpy())
    return float(np.mean(np.concatenate(preds) == np.array([f.label_id for f in features])))


# ---------------------------------------------------------------------------------------------
# the openbert side
# ---------------------------------------------------------------------------------------------
def ob_train(model_dir, config, features, steps, batch_size, lr, seed, output_dir, optimizer="adamw"):
    """Fine-tune with the Trainer; returns (model, seconds of the training steps, CPU seconds)."""
    model = classifier.build_model(model_dir, config, 2)
    seconds, cpu = ft.openbert_training(classifier.train, model, features, steps, batch_size, lr, seed, output_dir,
                                        optimizer)
    return model, seconds, cpu


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=str(MRPC))
    p.add_argument("--train_examples", type=int, default=None, help="first N training pairs (default all 4076)")
    p.add_argument("--num_train_epochs", type=float, default=3.0)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--train_batch_size", type=int, default=32)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--speed_steps", type=int, default=6)
    p.add_argument("--speed_reps", type=int, default=3)
    p.add_argument("--skip_accuracy", action="store_true")
    p.add_argument("--skip_speed", action="store_true")
    p.add_argument("--skip_hf_accuracy", action="store_true", help="full run on openbert's side only")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "adamw_bert"],
                   help="openbert's optimizer in the full run: adamw is HF's update rule (torch AdamW, bias "
                        "correction), adamw_bert the original's AdamWeightDecay (no bias correction: its "
                        "early steps are several times larger, so it wants a lower --learning_rate)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(a.threads)

    model_dir = assets.fetch("minilm-l6")
    config = load_config(model_dir)
    tok = FullTokenizer(model_dir / "vocab.txt", do_lower_case=True)
    proc = get_processor("mrpc")
    train_ex = proc.get_train_examples(a.data_dir)[:a.train_examples]
    test_ex = proc.get_dev_examples(a.data_dir)  # msr_paraphrase_test.txt
    train_f = convert_examples_to_features(train_ex, proc.get_labels(), a.max_seq_length, tok)
    test_f = convert_examples_to_features(test_ex, proc.get_labels(), a.max_seq_length, tok)
    lengths = [len(f.input_ids) for f in train_f]
    print(f"MiniLM-L6 on MRPC: {len(train_f)} train / {len(test_f)} test pairs, mean length "
          f"{np.mean(lengths):.1f} tokens (max {max(lengths)}), batch {a.train_batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    tmp = tempfile.mkdtemp(prefix="openbert_bench_")

    # ---- speed: interleaved repetitions ------------------------------------------------------
    # each repetition: one epoch over the same random sample of speed_steps * batch examples on
    # both sides (openbert buckets it by length, HF takes it in shuffled order)
    n = a.speed_steps * a.train_batch_size
    peers = {"HF padded per batch": None, f"HF padded to {a.max_seq_length} (run_glue.py default)":
             a.max_seq_length}
    ours, theirs = [], {name: [] for name in peers}
    for rep in range(0 if a.skip_speed else a.speed_reps):
        sample = [train_f[i] for i in np.random.default_rng(rep).choice(len(train_f), n, replace=False)]
        _, s, c = ob_train(model_dir, config, sample, a.speed_steps, a.train_batch_size, a.learning_rate,
                           a.seed + rep, os.path.join(tmp, f"speed{rep}"))
        ours.append((n / s, n / c))
        line = f"  rep {rep}: openbert {ours[-1][0]:.1f} seq/s ({ours[-1][1]:.1f} per CPU-s)"
        for name, pad_to in peers.items():
            model = hf_model(model_dir)
            s, c = hf_train(model, sample, a.speed_steps, a.train_batch_size, a.learning_rate, a.seed + rep,
                            pad_to=pad_to)
            theirs[name].append((n / s, n / c))
            line += f"; {name} {n / s:.1f} seq/s ({n / c:.1f} per CPU-s), {ours[-1][0] * s / n:.2f}x"
        print(line, flush=True)
    if ours:
        o = np.median(ours, axis=0)
        print(f"training speed (median of {a.speed_reps}): openbert {o[0]:.1f} seq/s ({o[1]:.1f} per CPU-s)")
        for name, runs in theirs.items():
            h = np.median(runs, axis=0)
            print(f"  vs {name}: {h[0]:.1f} seq/s: {o[0] / h[0]:.2f}x wall; per CPU-second "
                  f"{h[1]:.1f}: {o[1] / h[1]:.2f}x")
    if a.skip_accuracy:
        return 0

    # ---- accuracy: one full run each --------------------------------------------------------
    steps = common.num_train_steps(len(train_f), a.train_batch_size, a.num_train_epochs)
    majority = max(np.mean([f.label_id == k for f in test_f]) for k in (0, 1))
    print(f"full fine-tuning: {steps} steps, lr {a.learning_rate:g}, openbert optimizer {a.optimizer}; "
          f"majority baseline {100 * majority:.1f}%",
          flush=True)
    model, s, _ = ob_train(model_dir, config, train_f, steps, a.train_batch_size, a.learning_rate, a.seed,
                           os.path.join(tmp, "full"), optimizer=a.optimizer)
    t0 = time.perf_counter()
    res = classifier.evaluate(model, test_f, 64, ("accuracy", "f1"), steps, device="cpu", progress=False)
    ob_eval = len(test_f) / (time.perf_counter() - t0)
    ob_speed = steps * a.train_batch_size / s
    print(f"  openbert: accuracy {100 * res['eval_accuracy']:.2f}%, F1 {100 * res['eval_f1']:.2f}%, "
          f"train {ob_speed:.1f} seq/s, eval {ob_eval:.0f} seq/s", flush=True)
    if a.skip_hf_accuracy:
        return 0
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    model = hf_model(model_dir)
    s, _ = hf_train(model, train_f, steps, a.train_batch_size, a.learning_rate, a.seed)
    t0 = time.perf_counter()
    acc = hf_accuracy(model, test_f)
    hf_eval = len(test_f) / (time.perf_counter() - t0)
    hf_speed = steps * a.train_batch_size / s
    print(f"  HF:       accuracy {100 * acc:.2f}%, train {hf_speed:.1f} seq/s, eval {hf_eval:.0f} seq/s")
    print(f"accuracy openbert {100 * res['eval_accuracy']:.2f}% vs HF {100 * acc:.2f}%; full-run training speed "
          f"{ob_speed / hf_speed:.2f}x, eval {ob_eval / hf_eval:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

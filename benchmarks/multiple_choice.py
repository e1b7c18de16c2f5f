"""Fine-tuning MiniLM-L6 for multiple choice on the SWAG-format set built from WikiText-2: openbert vs HF
transformers' BertForMultipleChoice, same model, inputs and hyper-parameters, in one process.

    python benchmarks/multiple_choice.py                        # speed (interleaved) + one full run each
    python benchmarks/multiple_choice.py --train_examples=600 --speed_steps=4

Data: ``openbert.tasks.multiple_choice.synth`` over the shared WikiText-2 valid and test files
(SWAG is not available offline): a sentence, the first three words of the sentence that follows it,
and four endings (the true one and three from other articles, of similar length). Train on the
first ``--train_examples`` questions of its train split, report accuracy on its val split. Inputs
are made once by openbert (``[CLS] sent1 [SEP] sent2 ending [SEP]`` per choice) and fed to both.
Both sides: torch AdamW (fused, bias correction), weight decay 0.01, 10% warmup then linear decay,
clipping at 1.0.

- openbert: ``tasks.multiple_choice.pipeline.train`` (the Trainer: batches bucketed by their longest
  choice, padded per batch, encoder on real tokens only).
- HF: ``BertForMultipleChoice`` in a plain torch loop (benchmarks/hf_peer.py), shuffled batches
  padded to their longest choice (DataCollatorForMultipleChoice).

Speed: ``--speed_reps`` interleaved repetitions of ``--speed_steps`` batches over the same random
sample of questions; questions per second, wall-clock and process-CPU, and their ratios.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import hf_peer
from openbert.checkpoints import assets
from openbert.checkpoints.pretrained import load_config
from openbert.tasks import common
from openbert.tasks.multiple_choice import data as mc_data
from openbert.tasks.multiple_choice import pipeline, synth
from openbert.tokenization.wordpiece import FullTokenizer
from openbert.training.trainer import TrainingArguments

SHARED_DATA = Path(os.environ.get("OPENBERT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
WIKITEXT = SHARED_DATA / "corpus" / "wikitext-2"


def hf_model(model_dir):
    from transformers import BertForMultipleChoice

    return BertForMultipleChoice.from_pretrained(str(model_dir))


def hf_accuracy(model, features, batch_size=16):
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(features), batch_size):
            batch = hf_peer.hf_inputs(mc_data.collate_unlabelled(features[i:i + batch_size]))
            preds.append(model(**batch).logits.argmax(-1).numpy())
    return float(np.mean(np.concatenate(preds) == np.array([f.label for f in features])))


def ob_train(model_dir, config, features, steps, batch_size, lr, seed, output_dir):
    """Fine-tune with the Trainer; returns (model, seconds of the training steps, CPU seconds)."""
    model = pipeline.build_model(model_dir, config)
    args = TrainingArguments(output_dir=output_dir, train_batch_size=batch_size, learning_rate=lr,
                             num_train_steps=steps, num_warmup_steps=int(steps * 0.1), seed=seed,
                             save_checkpoints_steps=None, keep_checkpoint_max=1, progress=False,
                             log_every_n_steps=steps, plot=False, device="cpu", optimizer="adamw")
    c0 = time.process_time()
    result = pipeline.train(model, features, args)
    return model, steps * batch_size / result.history[-1]["seq_per_s"], time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train_examples", type=int, default=None, help="first N training questions (default all)")
    p.add_argument("--eval_examples", type=int, default=None, help="first N val questions (default all)")
    p.add_argument("--num_train_epochs", type=float, default=1.0)
    p.add_argument("--learning_rate", type=float, default=5e-5)
    p.add_argument("--train_batch_size", type=int, default=16)
    p.add_argument("--max_seq_length", type=int, default=96)
    p.add_argument("--speed_steps", type=int, default=4)
    p.add_argument("--speed_reps", type=int, default=3)
    p.add_argument("--skip_accuracy", action="store_true")
    p.add_argument("--skip_speed", action="store_true")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(a.threads)

    model_dir = assets.fetch("minilm-l6")
    config = load_config(model_dir)
    tok = FullTokenizer(model_dir / "vocab.txt", do_lower_case=True)
    splits = synth.build(synth.read_documents([str(WIKITEXT / "valid.txt"), str(WIKITEXT / "test.txt")]))
    tmp = tempfile.mkdtemp(prefix="openbert_bench_mc_")
    synth.write_swag(splits, tmp)
    train = mc_data.read_examples("swag", os.path.join(tmp, "train.csv"), "train")[:a.train_examples]
    dev = mc_data.read_examples("swag", os.path.join(tmp, "val.csv"), "dev")[:a.eval_examples]
    train_f = mc_data.convert_examples_to_features(train, a.max_seq_length, tok)
    dev_f = mc_data.convert_examples_to_features(dev, a.max_seq_length, tok)
    lengths = [len(ids) for f in train_f for ids in f.input_ids]
    print(f"MiniLM-L6 on the WikiText-2 SWAG-format set: {len(train_f)} train / {len(dev_f)} val questions x 4 "
          f"choices, mean {np.mean(lengths):.1f} tokens per choice (max {max(lengths)}); batch "
          f"{a.train_batch_size} questions, {torch.get_num_threads()} threads, torch {torch.__version__}")

    def hf_batches(features):
        return lambda idx: hf_peer.hf_inputs(mc_data.collate([features[i] for i in idx]))

    n = a.speed_steps * a.train_batch_size
    ours, theirs = [], []
    for rep in range(0 if a.skip_speed else a.speed_reps):
        sample = [train_f[i] for i in np.random.default_rng(rep).choice(len(train_f), n, replace=False)]
        _, s, c = ob_train(model_dir, config, sample, a.speed_steps, a.train_batch_size, a.learning_rate,
                           a.seed + rep, os.path.join(tmp, f"speed{rep}"))
        ours.append((n / s, n / c))
        s, c = hf_peer.hf_train(hf_model(model_dir), hf_batches(sample), n, a.speed_steps, a.train_batch_size,
                                a.learning_rate, a.seed + rep)
        theirs.append((n / s, n / c))
        print(f"  rep {rep}: openbert {ours[-1][0]:.1f} questions/s ({ours[-1][1]:.1f} per CPU-s); HF padded per "
              f"batch {theirs[-1][0]:.1f} ({theirs[-1][1]:.1f}); {ours[-1][0] / theirs[-1][0]:.2f}x", flush=True)
    if ours:
        o, h = np.median(ours, axis=0), np.median(theirs, axis=0)
        print(f"training speed (median of {a.speed_reps}): openbert {o[0]:.1f} questions/s vs HF {h[0]:.1f}: "
              f"{o[0] / h[0]:.2f}x wall; per CPU-second {o[1]:.1f} vs {h[1]:.1f}: {o[1] / h[1]:.2f}x")
    if a.skip_accuracy:
        return 0

    steps = max(1, int(len(train_f) / a.train_batch_size * a.num_train_epochs))
    print(f"full fine-tuning: {steps} steps, lr {a.learning_rate:g}; chance 25%", flush=True)
    model, s, _ = ob_train(model_dir, config, train_f, steps, a.train_batch_size, a.learning_rate, a.seed,
                           os.path.join(tmp, "full"))
    t0 = time.perf_counter()
    res = pipeline.evaluate(model, dev_f, 16, steps, common.RunOptions(device="cpu", progress=False))
    ob_eval = len(dev_f) / (time.perf_counter() - t0)
    ob_speed = steps * a.train_batch_size / s
    print(f"  openbert: accuracy {100 * res['eval_accuracy']:.2f}%, train {ob_speed:.1f} questions/s, eval "
          f"{ob_eval:.1f} questions/s", flush=True)
    torch.manual_seed(a.seed)
    model = hf_model(model_dir)
    s, _ = hf_peer.hf_train(model, hf_batches(train_f), len(train_f), steps, a.train_batch_size, a.learning_rate,
                            a.seed)
    t0 = time.perf_counter()
    acc = hf_accuracy(model, dev_f)
    hf_eval = len(dev_f) / (time.perf_counter() - t0)
    hf_speed = steps * a.train_batch_size / s
    print(f"  HF:       accuracy {100 * acc:.2f}%, train {hf_speed:.1f} questions/s, eval {hf_eval:.1f} questions/s")
    print(f"accuracy openbert {100 * res['eval_accuracy']:.2f}% vs HF {100 * acc:.2f}%; full-run training speed "
          f"{ob_speed / hf_speed:.2f}x, eval {ob_eval / hf_eval:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

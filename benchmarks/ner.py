"""Fine-tuning MiniLM-L6 for CoNLL-2003 NER: openbert vs HF transformers' BertForTokenClassification,
same model, windows, labels and hyper-parameters, in one process.

    python benchmarks/ner.py                                   # speed (interleaved) + one full run each
    python benchmarks/ner.py --skip_accuracy                   # speed only
    python benchmarks/ner.py --train_examples=2000 --eval_examples=1000 --num_train_epochs=1

Data: the first ``--train_examples`` sentences of the shared eng.train to train, the first
``--eval_examples`` of eng.testa to report, turned into windows once by openbert (both sides get
the same token ids and the same labels: the tag on each word's first sub-token, -100 elsewhere).
Both sides: batch 32, torch AdamW (fused, bias correction) with weight decay 0.01, 10% linear warmup
then linear decay, clipping at 1.0; both are scored by the same conlleval code on the same words.

- openbert: ``tasks.ner.pipeline.train`` (the Trainer: length-bucketed batches, per-batch padding,
  encoder on real tokens only), evaluation in inference mode, length-sorted.
- HF: ``BertForTokenClassification`` in a plain torch loop (benchmarks/hf_peer.py), shuffled
  batches padded to their longest window (DataCollatorForTokenClassification: labels padded with
  -100); evaluation in order under no_grad, padded per batch.

Speed: ``--speed_reps`` interleaved repetitions (ours, then HF's, so background load hits both),
each ``--speed_steps`` batches over the same random sample of windows; wall-clock and process-CPU
windows per second and their ratios (on a shared machine the CPU-time ratio is the steadier one).
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
from openbert.tasks.ner import data as ner_data
from openbert.tasks.ner import pipeline
from openbert.tokenization.wordpiece import FullTokenizer
from openbert.training.trainer import TrainingArguments

SHARED_DATA = Path(os.environ.get("OPENBERT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CONLL = SHARED_DATA / "conll2003"


def hf_model(model_dir, num_labels):
    from transformers import BertForTokenClassification

    return BertForTokenClassification.from_pretrained(str(model_dir), num_labels=num_labels)


def hf_word_logits(model, features, batch_size=64):
    """HF's logits at each window's predicted positions, batches in order, padded per batch."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(features), batch_size):
            chunk = features[i:i + batch_size]
            logits = model(**hf_peer.hf_inputs(ner_data.collate_unlabelled(chunk))).logits.float().numpy()
            out.extend(logits[row, f.positions] for row, f in enumerate(chunk))
    return out


def ob_train(model_dir, config, features, num_labels, steps, batch_size, lr, seed, output_dir):
    """Fine-tune with the Trainer; returns (model, seconds of the training steps, CPU seconds)."""
    model = pipeline.build_model(model_dir, config, num_labels)
    args = TrainingArguments(output_dir=output_dir, train_batch_size=batch_size, learning_rate=lr,
                             num_train_steps=steps, num_warmup_steps=int(steps * 0.1), seed=seed,
                             save_checkpoints_steps=None, keep_checkpoint_max=1, progress=False,
                             log_every_n_steps=steps, plot=False, device="cpu", optimizer="adamw")
    c0 = time.process_time()
    result = pipeline.train(model, features, args)
    # the one metrics row covers the training steps only (not setup or the final checkpoint write)
    return model, steps * batch_size / result.history[-1]["seq_per_s"], time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default=str(CONLL))
    p.add_argument("--train_examples", type=int, default=2000, help="first N sentences of eng.train")
    p.add_argument("--eval_examples", type=int, default=None, help="first N sentences of eng.testa (default all)")
    p.add_argument("--num_train_epochs", type=float, default=2.0)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--train_batch_size", type=int, default=32)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--document_context", action="store_true", help="windows filled with neighbouring sentences")
    p.add_argument("--speed_steps", type=int, default=8)
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
    train = ner_data.read_conll(Path(a.data_dir) / "eng.train")
    dev = ner_data.read_conll(Path(a.data_dir) / "eng.testa")
    train.sentences = train.sentences[:a.train_examples]
    dev.sentences, dev.trailing_docstarts = dev.sentences[:a.eval_examples], 0
    labels = ner_data.label_list(train)
    scheme = ner_data.detect_scheme(train.sentences)
    label_map = {t: i for i, t in enumerate(labels)}
    train_f = ner_data.convert_to_features(train, tok, a.max_seq_length, label_map, document_context=a.document_context)
    dev_f = ner_data.convert_to_features(dev, tok, a.max_seq_length, label_map, document_context=a.document_context)
    lengths = [len(f.input_ids) for f in train_f]
    print(f"MiniLM-L6 on CoNLL-2003 ({scheme}, {len(labels)} labels): {len(train.sentences)} train sentences "
          f"({len(train_f)} windows, mean {np.mean(lengths):.1f} tokens, max {max(lengths)}), {len(dev.sentences)} "
          f"dev sentences; batch {a.train_batch_size}, {torch.get_num_threads()} threads, torch {torch.__version__}"
          f"{', document context' if a.document_context else ''}")
    tmp = tempfile.mkdtemp(prefix="openbert_bench_ner_")

    def hf_batches(features):
        return lambda idx: hf_peer.hf_inputs(ner_data.collate([features[i] for i in idx]))

    # ---- speed: interleaved repetitions ------------------------------------------------------
    n = a.speed_steps * a.train_batch_size
    ours, theirs = [], []
    for rep in range(0 if a.skip_speed else a.speed_reps):
        sample = [train_f[i] for i in np.random.default_rng(rep).choice(len(train_f), n, replace=False)]
        _, s, c = ob_train(model_dir, config, sample, len(labels), a.speed_steps, a.train_batch_size,
                           a.learning_rate, a.seed + rep, os.path.join(tmp, f"speed{rep}"))
        ours.append((n / s, n / c))
        s, c = hf_peer.hf_train(hf_model(model_dir, len(labels)), hf_batches(sample), n, a.speed_steps,
                                a.train_batch_size, a.learning_rate, a.seed + rep)
        theirs.append((n / s, n / c))
        print(f"  rep {rep}: openbert {ours[-1][0]:.1f} windows/s ({ours[-1][1]:.1f} per CPU-s); HF padded per "
              f"batch {theirs[-1][0]:.1f} ({theirs[-1][1]:.1f}); {ours[-1][0] / theirs[-1][0]:.2f}x", flush=True)
    if ours:
        o, h = np.median(ours, axis=0), np.median(theirs, axis=0)
        print(f"training speed (median of {a.speed_reps}): openbert {o[0]:.1f} windows/s vs HF {h[0]:.1f}: "
              f"{o[0] / h[0]:.2f}x wall; per CPU-second {o[1]:.1f} vs {h[1]:.1f}: {o[1] / h[1]:.2f}x")
    if a.skip_accuracy:
        return 0

    # ---- F1: one full run each ----------------------------------------------------------------
    steps = max(1, int(len(train_f) / a.train_batch_size * a.num_train_epochs))
    print(f"full fine-tuning: {steps} steps, lr {a.learning_rate:g}", flush=True)
    model, s, _ = ob_train(model_dir, config, train_f, len(labels), steps, a.train_batch_size, a.learning_rate,
                           a.seed, os.path.join(tmp, "full"))
    t0 = time.perf_counter()
    res, _, _ = pipeline.evaluate(model, dev, dev_f, labels, scheme, 64, steps,
                                  options=common.RunOptions(device="cpu", progress=False))
    ob_eval = len(dev_f) / (time.perf_counter() - t0)
    ob_speed = steps * a.train_batch_size / s
    print(f"  openbert: F1 {100 * res['eval_f1']:.2f}, accuracy {100 * res['eval_accuracy']:.2f}%, train "
          f"{ob_speed:.1f} windows/s, eval {ob_eval:.0f} windows/s", flush=True)
    torch.manual_seed(a.seed)
    model = hf_model(model_dir, len(labels))
    s, _ = hf_peer.hf_train(model, hf_batches(train_f), len(train_f), steps, a.train_batch_size, a.learning_rate,
                            a.seed)
    t0 = time.perf_counter()
    logits = hf_word_logits(model, dev_f)
    hf_eval = len(dev_f) / (time.perf_counter() - t0)
    hf_res, _ = pipeline.tag_metrics(dev, pipeline.decode(dev, dev_f, logits, labels), scheme)
    hf_speed = steps * a.train_batch_size / s
    print(f"  HF:       F1 {100 * hf_res['f1']:.2f}, accuracy {100 * hf_res['accuracy']:.2f}%, train "
          f"{hf_speed:.1f} windows/s, eval {hf_eval:.0f} windows/s")
    print(f"F1 openbert {100 * res['eval_f1']:.2f} vs HF {100 * hf_res['f1']:.2f} "
          f"({100 * (res['eval_f1'] - hf_res['f1']):+.2f}); full-run training speed {ob_speed / hf_speed:.2f}x, "
          f"eval {ob_eval / hf_eval:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fine-tuning MiniLM-L6 for CoNLL-2003 NER: openbert vs HF transformers' BertForTokenClassification,
same model, windows, labels and hyper-parameters, in one process.

    python benchmarks/ner.py                                   # speed (interleaved) + one full run each
    python benchmarks/ner.py --skip_accuracy                   # speed only
    python benchmarks/ner.py --train_examples=1000 --eval_examples=1000 --num_train_epochs=3

Data: the first ``--train_examples`` sentences of the shared eng.train to train, the first
``--eval_examples`` of eng.testa to report, turned into windows once by openbert (both sides get
the same token ids and the same labels: the tag on each word's first sub-token, -100 elsewhere).
Both sides: batch 32, torch AdamW (fused, bias correction) with weight decay 0.01, 10% linear warmup
then BERT's linear decay (``--hf_schedule=hf``: HF's own on its side), clipping at 1.0, shuffled
batches padded per batch; both are scored by the same conlleval code on the same words.

- openbert: ``tasks.ner.pipeline.train`` (the Trainer; encoder on real tokens only), evaluation
  in inference mode, length-sorted.
- HF: ``BertForTokenClassification`` in a plain torch loop (benchmarks/fine_tuning.py), shuffled
  batches padded to their longest window (DataCollatorForTokenClassification: labels padded with
  -100); evaluation in order under no_grad, padded per batch.

Speed: ``--speed_reps`` interleaved repetitions (ours, then HF's, so background load hits both),
each ``--speed_steps`` batches over the same random sample of windows; wall-clock and process-CPU
windows per second and their ratios (on a shared machine the CPU-time ratio is the steadier one).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import fine_tuning as ft
from openbert.checkpoints import assets
from openbert.checkpoints.pretrained import load_config
from openbert.tasks import common
from openbert.tasks.ner import data as ner_data
from openbert.tasks.ner import pipeline
from openbert.tokenization.wordpiece import FullTokenizer

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
            logits = model(**ft.hf_inputs(ner_data.collate_unlabelled(chunk))).logits.float().numpy()
            out.extend(logits[row, f.positions] for row, f in enumerate(chunk))
    return out


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
    ft.add_flags(p, speed_steps=8)
    a = p.parse_args()
    ft.setup(a)

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

    peers = ft.Peers(a, lambda: pipeline.build_model(model_dir, config, len(labels)), pipeline.train,
                     lambda: hf_model(model_dir, len(labels)), ner_data.collate, tmp)
    peers.speed(train_f, "windows")  # interleaved repetitions over the same random samples
    if a.skip_accuracy:
        return 0

    # ---- F1: one full run each ----------------------------------------------------------------
    steps = common.num_train_steps(len(train_f), a.train_batch_size, a.num_train_epochs)
    print(f"full fine-tuning: {steps} steps, lr {a.learning_rate:g}", flush=True)
    model, s, _ = peers.ours(train_f, steps, a.seed, "full")
    (res, _, _), t = ft.timed(lambda: pipeline.evaluate(model, dev, dev_f, labels, scheme, 64, steps,
                                                        options=common.RunOptions(device="cpu", progress=False)))
    ob_speed, ob_eval = steps * a.train_batch_size / s, len(dev_f) / t
    print(f"  openbert: F1 {100 * res['eval_f1']:.2f}, accuracy {100 * res['eval_accuracy']:.2f}%, train "
          f"{ob_speed:.1f} windows/s, eval {ob_eval:.0f} windows/s", flush=True)
    torch.manual_seed(a.seed)
    model = hf_model(model_dir, len(labels))
    s, _ = peers.theirs(model, train_f, steps, a.seed)
    logits, t = ft.timed(lambda: hf_word_logits(model, dev_f))
    hf_res, _ = pipeline.tag_metrics(dev, pipeline.decode(dev, dev_f, logits, labels), scheme)
    hf_speed, hf_eval = steps * a.train_batch_size / s, len(dev_f) / t
    print(f"  HF:       F1 {100 * hf_res['f1']:.2f}, accuracy {100 * hf_res['accuracy']:.2f}%, train "
          f"{hf_speed:.1f} windows/s, eval {hf_eval:.0f} windows/s")
    print(f"F1 openbert {100 * res['eval_f1']:.2f} vs HF {100 * hf_res['f1']:.2f} "
          f"({100 * (res['eval_f1'] - hf_res['f1']):+.2f}); full-run training speed {ob_speed / hf_speed:.2f}x, "
          f"eval {ob_eval / hf_eval:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fine-tuning MiniLM-L6 for multiple choice on the SWAG-format set built from WikiText-2: openbert vs HF
transformers' BertForMultipleChoice, same model, inputs and hyper-parameters, in one process.

    python benchmarks/multiple_choice.py                        # speed (interleaved) + one full run each
    python benchmarks/multiple_choice.py --train_examples=600 --speed_steps=4

Data: ``openbert.tasks.multiple_choice.synth`` over the shared WikiText-2 valid and test files
(SWAG is not available offline): a sentence, the first three words of the sentence that follows it,
and four endings (the true one and three from other articles, of similar length). Train on the
first ``--train_examples`` questions of its train split, report accuracy on its val split. Inputs
are made once by openbert (``[CLS] sent1 [SEP] sent2 ending [SEP]`` per choice) and fed to both.
Both sides: torch AdamW (fused, bias correction), weight decay 0.01, 10% warmup then BERT's linear
decay (``--hf_schedule=hf``: HF's own on its side), clipping at 1.0.

- openbert: ``tasks.multiple_choice.pipeline.train`` (the Trainer: batches bucketed by their longest
  choice, padded per batch, encoder on real tokens only).
- HF: ``BertForMultipleChoice`` in a plain torch loop (benchmarks/fine_tuning.py), shuffled batches
  padded to their longest choice (DataCollatorForMultipleChoice).

Speed: ``--speed_reps`` interleaved repetitions of ``--speed_steps`` batches over the same random
sample of questions; questions per second, wall-clock and process-CPU, and their ratios.
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
from openbert.tasks.multiple_choice import data as mc_data
from openbert.tasks.multiple_choice import pipeline, synth
from openbert.tokenization.wordpiece import FullTokenizer

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
            batch = ft.hf_inputs(mc_data.collate_unlabelled(features[i:i + batch_size]))
            preds.append(model(**batch).logits.argmax(-1).numpy())
    return float(np.mean(np.concatenate(preds) == np.array([f.label for f in features])))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train_examples", type=int, default=None, help="first N training questions (default all)")
    p.add_argument("--eval_examples", type=int, default=None, help="first N val questions (default all)")
    p.add_argument("--num_train_epochs", type=float, default=1.0)
    p.add_argument("--learning_rate", type=float, default=5e-5)
    p.add_argument("--train_batch_size", type=int, default=16)
    p.add_argument("--max_seq_length", type=int, default=96)
    ft.add_flags(p, speed_steps=4)
    a = p.parse_args()
    ft.setup(a)

    model_dir = assets.fetch("minilm-l6")
    config = load_config(model_dir)
    tok = FullTokenizer(model_dir / "vocab.txt", do_lower_case=True)
    tmp = tempfile.mkdtemp(prefix="openbert_bench_mc_")
    synth.write_swag(synth.build(synth.read_documents([str(WIKITEXT / "valid.txt"), str(WIKITEXT / "test.txt")])), tmp)
    train = mc_data.read_examples("swag", os.path.join(tmp, "train.csv"), "train")[:a.train_examples]
    dev = mc_data.read_examples("swag", os.path.join(tmp, "val.csv"), "dev")[:a.eval_examples]
    train_f = mc_data.convert_examples_to_features(train, a.max_seq_length, tok)
    dev_f = mc_data.convert_examples_to_features(dev, a.max_seq_length, tok)
    lengths = [len(ids) for f in train_f for ids in f.input_ids]
    print(f"MiniLM-L6 on the WikiText-2 SWAG-format set: {len(train_f)} train / {len(dev_f)} val questions x 4 "
          f"choices, mean {np.mean(lengths):.1f} tokens per choice (max {max(lengths)}); batch "
          f"{a.train_batch_size} questions, {torch.get_num_threads()} threads, torch {torch.__version__}")

    peers = ft.Peers(a, lambda: pipeline.build_model(model_dir, config), pipeline.train,
                     lambda: hf_model(model_dir), mc_data.collate, tmp)
    peers.speed(train_f, "questions")  # interleaved repetitions over the same random samples
    if a.skip_accuracy:
        return 0

    steps = common.num_train_steps(len(train_f), a.train_batch_size, a.num_train_epochs)
    print(f"full fine-tuning: {steps} steps, lr {a.learning_rate:g}; chance 25%", flush=True)
    model, s, _ = peers.ours(train_f, steps, a.seed, "full")
    res, t = ft.timed(lambda: pipeline.evaluate(model, dev_f, 16, steps, common.RunOptions(device="cpu",
                                                                                           progress=False)))
    ob_speed, ob_eval = steps * a.train_batch_size / s, len(dev_f) / t
    print(f"  openbert: accuracy {100 * res['eval_accuracy']:.2f}%, train {ob_speed:.1f} questions/s, eval "
          f"{ob_eval:.1f} questions/s", flush=True)
    torch.manual_seed(a.seed)
    model = hf_model(model_dir)
    s, _ = peers.theirs(model, train_f, steps, a.seed)
    acc, t = ft.timed(lambda: hf_accuracy(model, dev_f))
    hf_speed, hf_eval = steps * a.train_batch_size / s, len(dev_f) / t
    print(f"  HF:       accuracy {100 * acc:.2f}%, train {hf_speed:.1f} questions/s, eval {hf_eval:.1f} questions/s")
    print(f"accuracy openbert {100 * res['eval_accuracy']:.2f}% vs HF {100 * acc:.2f}%; full-run training speed "
          f"{ob_speed / hf_speed:.2f}x, eval {ob_eval / hf_eval:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

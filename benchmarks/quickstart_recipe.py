"""Probe the quickstart recipe: the first steps of its schedule, for recipes x seeds, with the
diagnostics that tell a learning run from a collapsed one.

    python benchmarks/quickstart_recipe.py --recipes=original-1e-4,original-3e-5 --seeds=42,1,2,3,4,5
    python benchmarks/quickstart_recipe.py --summary=probes.jsonl      # the table of a finished run

Each probe fine-tunes MiniLM-L6 on the quickstart's data (a random 12,000 SNLI training pairs for
the seed, max_seq_length 64, batch 32, the 375-step schedule with 10% warmup) but stops after
``--probe_steps`` steps, then reports the accuracy on the first ``--eval_examples`` test pairs.
Every 10 steps it records the training loss (mean of the window), the gradient norm, and the
spread of the [CLS] vectors over the batch (std over the batch, averaged over the 384 dimensions;
0.29 for the pre-trained model): a collapsed run maps every pair to nearly the same [CLS] vector,
so that spread falls towards 0, the gradient norm falls below ~0.2 and the loss stays at ln 3.

Recipes: ``original-<lr>`` (the original AdamWeightDecay, no bias correction), ``adamw-<lr>``
(torch AdamW, bias-corrected), ``reinit-<lr>`` (the original optimizer with the checkpoint's
untrained pooler re-initialised as BERT initialises it, std 0.02). One JSON line per probe goes to
``--out``.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time

import torch

from openbert.checkpoints import assets
from openbert.tasks import common
from openbert.tasks.classification import pipeline as classifier
from openbert.tasks.classification.data import collate, convert_examples_to_features, get_processor
from openbert.training.trainer import Trainer, TrainingArguments


def parse_recipe(name: str) -> dict:
    kind, lr = name.rsplit("-", 1) if name.count("-") == 1 else name.split("-", 1)
    if kind not in ("original", "adamw", "reinit"):
        raise SystemExit(f"unknown recipe {name!r}: original-<lr>, adamw-<lr> or reinit-<lr>")
    return {"optimizer": "adamw" if kind == "adamw" else "adamw_bert", "reinit_pooler": kind == "reinit",
            "learning_rate": float(lr)}


class _Stop(Exception):
    pass


def probe(name: str, seed: int, data, a) -> dict:
    """One probe: ``--probe_steps`` steps of the full schedule, diagnostics every 10 steps."""
    recipe = parse_recipe(name)
    train_all, eval_features, labels, source = data
    picked = sorted(random.Random(seed).sample(range(len(train_all)), a.train_examples))
    features = convert_examples_to_features([train_all[i] for i in picked], labels, 64, source.tokenizer)
    model = classifier.build_model(source.path, source.config, len(labels), seed)
    if recipe["reinit_pooler"]:
        model.init_weights(only={n for n, _ in model.named_parameters() if ".pooler." in n})
    spreads = []
    model.bert.pooler.register_forward_hook(
        lambda mod, inp, out: spreads.append(inp[0].std(0).mean().item()) if mod.training else None)
    steps = common.num_train_steps(a.train_examples, 32, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, train_batch_size=32, learning_rate=recipe["learning_rate"],
                                 num_train_steps=steps, num_warmup_steps=int(steps * 0.1), seed=seed,
                                 optimizer=recipe["optimizer"], save_checkpoints_steps=None,
                                 keep_checkpoint_max=1, progress=False, log_every_n_steps=10, plot=False,
                                 device="cpu")
        trainer = Trainer(model, args, features, collate, lengths=[len(f.input_ids) for f in features])
        step = trainer._step

        def stopping_step(*x):
            if trainer.global_step >= a.probe_steps:
                raise _Stop
            return step(*x)

        trainer._step = stopping_step
        t0 = time.perf_counter()
        try:
            trainer.train()
        except _Stop:
            pass
        seconds = time.perf_counter() - t0
        rows = [json.loads(line) for line in open(f"{tmp}/metrics.jsonl", encoding="utf-8")]
    result = classifier.evaluate(model, eval_features, 64, ("accuracy",), trainer.global_step, device="cpu",
                                 progress=False)
    return {"recipe": name, "seed": seed, "steps": trainer.global_step, "seconds": round(seconds, 1),
            "loss": [round(r["loss"], 4) for r in rows], "grad_norm": [round(r["grad_norm"], 3) for r in rows],
            "cls_spread": [round(x, 4) for x in spreads[9::10]], "accuracy": round(result["eval_accuracy"], 4)}


def summary(path: str) -> None:
    """Per recipe: the probes that stayed at chance, and per probe loss / spread / accuracy."""
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    by_recipe: dict = {}
    for r in rows:
        by_recipe.setdefault(r["recipe"], []).append(r)
    print("| recipe | seed | loss, last 10 steps | lowest [CLS] spread | grad norm, last step | "
          "test accuracy |")
    print("|---|---|---|---|---|---|")
    for name, rs in by_recipe.items():
        for r in sorted(rs, key=lambda r: r["seed"]):
            print(f"| {name} | {r['seed']} | {r['loss'][-1]:.3f} | {min(r['cls_spread']):.3f} | "
                  f"{r['grad_norm'][-1]:.2f} | {100 * r['accuracy']:.1f}% |")
    for name, rs in by_recipe.items():
        stuck = [r["seed"] for r in rs if r["loss"][-1] > 1.07]
        print(f"{name}: {len(stuck)} of {len(rs)} probes still at chance (loss > 1.07) {stuck or ''}; median "
              f"accuracy {100 * statistics.median(r['accuracy'] for r in rs):.1f}%")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default="original-1e-4,original-3e-5")
    p.add_argument("--seeds", default="42,1,2,3,4,5")
    p.add_argument("--probe_steps", type=int, default=100)
    p.add_argument("--train_examples", type=int, default=12000)
    p.add_argument("--eval_examples", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="quickstart_probes.jsonl")
    p.add_argument("--summary", default=None, help="print the table of a finished --out file and exit")
    a = p.parse_args()
    if a.summary:
        return summary(a.summary)
    torch.set_num_threads(a.threads)
    model_dir, data_dir = assets.fetch("minilm-l6"), assets.fetch("snli")
    processor = get_processor("snli")
    labels = processor.get_labels()
    source = common.resolve_model_source(model_dir, max_seq_length=64)
    eval_features = convert_examples_to_features(processor.get_test_examples(data_dir)[:a.eval_examples], labels,
                                                 64, source.tokenizer)
    data = (processor.get_train_examples(data_dir), eval_features, labels, source)
    for name in a.recipes.split(","):
        for seed in map(int, a.seeds.split(",")):
            r = probe(name, seed, data, a)
            with open(a.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(r) + "\n")
            print(f"{name} seed {seed}: loss {r['loss'][-1]:.3f} at step {r['steps']}, lowest [CLS] spread "
                  f"{min(r['cls_spread']):.3f}, accuracy {100 * r['accuracy']:.1f}% ({r['seconds']:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()

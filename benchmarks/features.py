"""Speed of `openbert extract-features` (array output) against HF transformers, same run, interleaved.

Both sides turn the same real MRPC sentences into last-layer vectors of every token and write them
to a .npz file, on a BERT-Base-shaped model (random weights, shared by both sides):

- openbert: features.convert_examples -> features.extract (length-sorted batches, unpadded dense
  layers, oneDNN products on the CPU: openbert.model.dense) -> ArrayWriter (npz, float32), i.e. what
  the command does after loading the model;
- HF: BertTokenizerFast + BertModel in input order with per-batch padding (``padding=True``), real
  token rows gathered and written with np.savez.

Prints sequences/s per side and precision (fp32, bf16 autocast) and the ratio, and checks that the
two sides' vectors agree. Usage: ``python benchmarks/features.py [--lines 256] [--repeats 3]``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared machines: idle OpenMP threads must not spin

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from openbert.config import BertConfig
from openbert.model.bert import BertModel
from openbert.tasks.features.extract import convert_examples, extract, parse_line
from openbert.tasks.features.writers import ArrayWriter
from openbert.tokenization.wordpiece import FullTokenizer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("OPENBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def mrpc_sentences(n: int) -> list[str]:
    with open(DATA / "glue" / "MRPC" / "msr_paraphrase_test.txt", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [s for r in rows for s in (r[3], r[4])][:n]


def run_openbert(model, tokenizer, lines, batch_size, precision, out_path):
    """The extract-features pipeline after model loading; returns the written layer -1 rows."""
    feats = convert_examples((parse_line(t, i) for i, t in enumerate(lines)), tokenizer, 128)
    with ArrayWriter(out_path, "npz", [-1], model.config.hidden_size, np.float32) as w:
        for f, v in extract(feats, model, [-1], batch_size, device="cpu", precision=precision):
            w.write(f, v)


def run_hf(model, tokenizer, lines, batch_size, precision, out_path):
    """HF in input order, padding per batch; gathers real-token rows and saves them."""
    rows, ids = [], []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        for i in range(0, len(lines), batch_size):
            enc = tokenizer(lines[i:i + batch_size], padding=True, truncation=True, max_length=128,
                            return_tensors="pt")
            h = model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].bool()
            rows.append(h[mask].numpy())
            ids.append(enc["input_ids"][mask].numpy())
    lengths = np.concatenate([[0], np.cumsum([len(x) for x in tokenizer(lines)["input_ids"]])])
    np.savez(out_path, **{"layer_-1": np.concatenate(rows), "input_ids": np.concatenate(ids), "offsets": lengths})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    lines = mrpc_sentences(args.lines)
    vocab = DATA / "vocab" / "bert-base-uncased-vocab.txt"
    torch.manual_seed(0)
    ours = BertModel(BertConfig(vocab_size=30522)).eval()  # BERT-Base shape, random weights
    tmp = Path(tempfile.mkdtemp(prefix="openbert-bench-"))
    ours.save_pretrained(tmp / "model")
    hf = transformers.BertModel.from_pretrained(str(tmp / "model"), add_pooling_layer=False,
                                                attn_implementation="sdpa").eval()
    our_tok = FullTokenizer(vocab, do_lower_case=True)
    hf_tok = transformers.BertTokenizerFast(str(vocab), do_lower_case=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__} ({args.threads} threads), transformers {transformers.__version__}")
    print(f"data: {len(lines)} MRPC sentences, mean {np.mean([len(x) for x in hf_tok(lines)['input_ids']]):.1f} "
          f"tokens; BERT-Base shape (12 x 768), batch {args.batch_size}, layer -1 of every token -> .npz")

    # warm up both sides and check that they write the same vectors
    for precision in args.precisions.split(","):
        run_openbert(ours, our_tok, lines[:64], args.batch_size, precision, tmp / "a.npz")
        run_hf(hf, hf_tok, lines[:64], args.batch_size, precision, tmp / "b.npz")
        a, b = np.load(tmp / "a.npz"), np.load(tmp / "b.npz")
        assert (a["input_ids"] == b["input_ids"]).all() and (a["offsets"] == b["offsets"]).all()
        print(f"{precision}: max |openbert - HF| over {len(a['input_ids'])} token vectors: "
              f"{np.abs(a['layer_-1'] - b['layer_-1']).max():.2e}")

    for precision in args.precisions.split(","):
        times = {"openbert": [], "hf": []}
        for _ in range(args.repeats):  # interleaved, so background load hits both sides
            for name, fn, model, tok in (("openbert", run_openbert, ours, our_tok), ("hf", run_hf, hf, hf_tok)):
                t = time.perf_counter()
                fn(model, tok, lines, args.batch_size, precision, tmp / f"{name}.npz")
                times[name].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in times.items()}
        sps = {k: len(lines) / v for k, v in best.items()}
        ratios = [h / o for o, h in zip(times["openbert"], times["hf"])]
        print(f"{precision}: openbert {sps['openbert']:.1f} seq/s, HF {sps['hf']:.1f} seq/s, "
              f"ratio {sps['openbert'] / sps['hf']:.2f}x (best of {args.repeats}); median of the "
              f"interleaved pairs' ratios {np.median(ratios):.2f}x (all {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()

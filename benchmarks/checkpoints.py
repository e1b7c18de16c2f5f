"""Checkpoint I/O speed: openbert's TF tensor-bundle reader/writer (CRC32C of every tensor checked)
against safetensors on the same BERT-Base-sized tensors, same process, interleaved. safetensors maps
the file lazily, so its tensors are copied into memory to compare like with like.

    python benchmarks/checkpoints.py [--shape base|minilm] [--reps 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file, save_file

from openbert.checkpoints import names
from openbert.checkpoints.tf_bundle import TFCheckpointReader, write_tf_checkpoint
from openbert.config import BertConfig
from openbert.model.bert import BertForPreTraining

SHAPES = {"base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
          "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="base", choices=sorted(SHAPES))
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(vocab_size=30522, type_vocab_size=2, **SHAPES[args.shape]))
    tf_tensors = names.canonical_to_tf(names.canonical_state(model))
    st_tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    mb = sum(t.numel() * t.element_size() for t in st_tensors.values()) / 2**20
    times = {k: [] for k in ("tf write", "st write", "tf read", "st read")}
    with tempfile.TemporaryDirectory() as d:
        prefix, st = os.path.join(d, "bert_model.ckpt"), os.path.join(d, "model.safetensors")
        for _ in range(args.reps):
            for name, fn in (("tf write", lambda: write_tf_checkpoint(prefix, tf_tensors)),
                             ("st write", lambda: save_file(st_tensors, st)),
                             ("tf read", lambda: TFCheckpointReader(prefix).read_all()),
                             ("st read", lambda: {k: v.clone() for k, v in load_file(st).items()})):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {args.shape}: {len(st_tensors)} tensors, {mb:.0f} MiB, "
          f"median of {args.reps}")
    for op in ("write", "read"):
        tf, st = med[f"tf {op}"], med[f"st {op}"]
        print(f"{op:5}  TF bundle {mb / tf:7.0f} MiB/s   safetensors {mb / st:7.0f} MiB/s   "
              f"ratio {st / tf:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

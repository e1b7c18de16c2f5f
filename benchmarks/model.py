"""Forward and training-step throughput (sequences/s): openbert BertModel vs HF transformers BertModel.

Both models hold the same weights and see the same batches, in the same process; repetitions of
ours and the peer's are interleaved so background load hits both. Shapes: MiniLM-L6 (H 384, 6 layers)
and BERT-Base (H 768, 12 layers), sequence length 128, with full rows and with realistic padding
(lengths drawn like MRPC pairs: 30..128, mean about 55).

    python benchmarks/model.py                      # CPU, fp32, both shapes
    python benchmarks/model.py --threads 1 --clock cpu   # CPU seconds: steady on a shared machine
    python benchmarks/model.py --device cuda --precision bf16 --batch_size 64
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

from openbert.config import BertConfig
from openbert.model.bert import BertModel

SHAPES = {
    "minilm": dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                   intermediate_size=1536, type_vocab_size=2),
    "base": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, type_vocab_size=2),
}


def make_batch(batch_size: int, seq_len: int, padded: bool, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (batch_size, seq_len), generator=g)
    if padded:
        lengths = (torch.randn(batch_size, generator=g) * 20 + 55).clamp(30, seq_len).long()
    else:
        lengths = torch.full((batch_size,), seq_len)
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    segs = ((torch.arange(seq_len)[None, :] >= lengths[:, None] // 2) & mask.bool()).long()
    return ids.to(device), mask.to(device), segs.to(device)


def build_pair(shape: str, device):
    """(ours, HF) BertModel with identical weights, erf GELU (what HF's "gelu" means)."""
    import transformers

    config = BertConfig(**SHAPES[shape], gelu_form="erf")
    torch.manual_seed(0)
    ours = BertModel(config)
    with tempfile.TemporaryDirectory() as d:
        ours.save_pretrained(d)
        hf = transformers.BertModel.from_pretrained(d, attn_implementation="sdpa")
    return ours.to(device), hf.to(device)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_ours(model, ids, mask, segs):
    return model(ids, mask, segs).sequence_output


def forward_hf(model, ids, mask, segs):
    return model(input_ids=ids, attention_mask=mask, token_type_ids=segs).last_hidden_state


CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of this process)


def time_inference(fn, model, batch, device, precision, iters):
    model.eval()
    with torch.inference_mode(), _autocast(device, precision):
        fn(model, *batch)
        _sync(device)
        t = CLOCK()
        for _ in range(iters):
            fn(model, *batch)
        _sync(device)
    return (CLOCK() - t) / iters


def time_train(fn, model, opt, batch, device, precision, iters):
    model.train()
    mask = batch[1].unsqueeze(-1).to(torch.float32)

    def step():
        with _autocast(device, precision):
            out = fn(model, *batch)
        loss = (out.float() * mask).pow(2).mean()  # the same loss on the real positions for both
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    _sync(device)
    t = CLOCK()
    for _ in range(iters):
        step()
    _sync(device)
    return (CLOCK() - t) / iters


def _autocast(device, precision):
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="minilm,base")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--seq_len", type=int, default=128)
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions (median reported)")
    p.add_argument("--iters", type=int, default=2, help="timed steps per repetition")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--modes", default="forward,train")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="cpu: CPU seconds of this process (steadier than wall time on a busy CPU machine)")
    args = p.parse_args(argv)
    global CLOCK
    if args.clock == "cpu":
        if args.device != "cpu":
            p.error("--clock cpu measures CPU work; use it with --device cpu")
        CLOCK = time.process_time
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} torch {torch.__version__} device {device} "
          f"threads {args.threads} precision {args.precision} batch {args.batch_size} seq {args.seq_len} "
          f"clock {args.clock}")
    print(f"{'shape':7} {'padding':9} {'mode':8} {'openbert seq/s':>15} {'HF seq/s':>10} {'ratio':>7}")
    for shape in args.shapes.split(","):
        ours, hf = build_pair(shape, device)
        opts = {id(m): torch.optim.AdamW(m.parameters(), lr=1e-5) for m in (ours, hf)}
        for padded in (False, True):
            batch = make_batch(args.batch_size, args.seq_len, padded, device)
            for mode in args.modes.split(","):
                times = {"ours": [], "hf": []}
                for _ in range(args.reps):
                    for name, model, fn in (("ours", ours, forward_ours), ("hf", hf, forward_hf)):
                        if mode == "forward":
                            t = time_inference(fn, model, batch, device, args.precision, args.iters)
                        else:
                            t = time_train(fn, model, opts[id(model)], batch, device, args.precision, args.iters)
                        times[name].append(t)
                ours_sps = args.batch_size / statistics.median(times["ours"])
                hf_sps = args.batch_size / statistics.median(times["hf"])
                print(f"{shape:7} {'realistic' if padded else 'none':9} {mode:8} {ours_sps:15.1f} "
                      f"{hf_sps:10.1f} {ours_sps / hf_sps:6.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training engine benchmarks: optimizer step speed and gradient checkpointing memory/speed.

python benchmarks/training.py [--device cpu|cuda] [--reps 7]

1. Optimizer step on BERT-base's parameter set (110M parameters, random gradients): openbert's
   AdamWeightDecay (the original rule on torch's fused AdamW kernel where the build has one, else
   foreach kernels) against torch.optim.AdamW (default settings, foreach=True, fused=True where
   available), repetitions interleaved so background load hits both; ratios printed.
2. Gradient checkpointing on a BERT encoder (--layers, --hidden, batch x seq): peak memory of one
   forward + backward (CUDA: max_memory_allocated; CPU: peak resident memory of a fresh child process
   per setting) and step time with and without checkpointing, interleaved.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from openbert.config import BertConfig
from openbert.model.bert import BertForSequenceClassification
from openbert.training.optimization import AdamWeightDecay, param_groups


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_optimizer(device: torch.device, reps: int, config: BertConfig) -> None:
    model = BertForSequenceClassification(config).to(device)
    named = list(model.named_parameters())
    n = sum(p.numel() for _, p in named)
    for _, p in named:
        p.grad = torch.randn_like(p) * 1e-3
    opts = {
        "openbert AdamWeightDecay": AdamWeightDecay(param_groups(named, 0.01), lr=1e-4),
        "torch AdamW (default)": torch.optim.AdamW(param_groups(named, 0.01), lr=1e-4, eps=1e-6),
        "torch AdamW (foreach)": torch.optim.AdamW(param_groups(named, 0.01), lr=1e-4, eps=1e-6,
                                                   foreach=True),
    }
    try:
        opts["torch AdamW (fused)"] = torch.optim.AdamW(param_groups(named, 0.01), lr=1e-4, eps=1e-6,
                                                        fused=True)
    except RuntimeError:  # no fused kernel for this device in this torch build
        pass
    times = {k: [] for k in opts}
    for opt in opts.values():  # warm-up: allocate state
        opt.step()
    for _ in range(reps):
        for name, opt in opts.items():
            _sync(device)
            t = time.perf_counter()
            opt.step()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    ours = statistics.median(times["openbert AdamWeightDecay"])
    print(f"\n## optimizer step, {n / 1e6:.1f}M parameters, {device}, median of {reps} interleaved")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:28s} {med * 1e3:8.1f} ms   ours/this = {ours / med:5.2f}x time")


def _batch(config, batch, seq, device):
    g = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(0, config.vocab_size, (batch, seq), generator=g).to(device),
            "labels": torch.randint(0, 2, (batch,), generator=g).to(device)}


def _step(model, data):
    model.zero_grad(set_to_none=True)
    model(**data).loss.backward()


def child_peak(config_json: str, checkpointing: bool, batch: int, seq: int) -> None:
    """In a fresh process: peak resident memory growth (MiB) of one forward + backward on the CPU."""
    torch.set_num_threads(2)
    config = BertConfig.from_dict(json.loads(config_json))
    model = BertForSequenceClassification(config)
    model.set_gradient_checkpointing(checkpointing)
    data = _batch(config, batch, seq, torch.device("cpu"))
    for _, p in model.named_parameters():
        p.grad = torch.zeros_like(p)  # gradients allocated up front: measure activations only
    before = _proc_status_mib("VmRSS")
    model(**data).loss.backward()
    # VmHWM: this process image's peak (getrusage's ru_maxrss would include the parent's, from fork)
    print(json.dumps({"peak_growth_mib": _proc_status_mib("VmHWM") - before}))


def _proc_status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{key} not in /proc/self/status")


def bench_checkpointing(device: torch.device, reps: int, config: BertConfig, batch: int, seq: int) -> None:
    print(f"\n## gradient checkpointing: {config.num_hidden_layers} layers, H={config.hidden_size}, "
          f"batch {batch} x seq {seq}, {device}")
    peaks = {}
    for ckpt in (False, True):
        if device.type == "cuda":
            model = BertForSequenceClassification(config).to(device)
            model.set_gradient_checkpointing(ckpt)
            data = _batch(config, batch, seq, device)
            _step(model, data)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            _step(model, data)
            torch.cuda.synchronize()
            peaks[ckpt] = (torch.cuda.max_memory_allocated() - base) / 2**20
            del model, data
        else:
            cfg = json.dumps(config.to_dict())
            out = subprocess.run([sys.executable, __file__, "--child", cfg, str(int(ckpt)), str(batch),
                                  str(seq)], capture_output=True, text=True, check=True)
            peaks[ckpt] = json.loads(out.stdout.strip().splitlines()[-1])["peak_growth_mib"]
    what = "max_memory_allocated above weights" if device.type == "cuda" else "peak RSS growth"
    print(f"peak memory ({what}): plain {peaks[False]:.0f} MiB, checkpointed {peaks[True]:.0f} MiB "
          f"-> {peaks[True] / peaks[False]:.2f}x")
    models = {}
    for ckpt in (False, True):
        torch.manual_seed(0)
        m = BertForSequenceClassification(config).to(device)
        m.set_gradient_checkpointing(ckpt)
        models[ckpt] = m
    data = _batch(config, batch, seq, device)
    times = {False: [], True: []}
    for m in models.values():
        _step(m, data)
    for _ in range(reps):
        for ckpt, m in models.items():
            _sync(device)
            t = time.perf_counter()
            _step(m, data)
            _sync(device)
            times[ckpt].append(time.perf_counter() - t)
    plain, ck = statistics.median(times[False]), statistics.median(times[True])
    print(f"forward+backward: plain {plain * 1e3:.0f} ms, checkpointed {ck * 1e3:.0f} ms -> "
          f"{ck / plain:.2f}x time (median of {reps} interleaved)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child_peak(a.child[0], bool(int(a.child[1])), int(a.child[2]), int(a.child[3]))
        return
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    print(f"torch {torch.__version__}, {a.threads} threads, {time.strftime('%Y-%m-%d')}")
    bench_optimizer(device, a.reps, BertConfig(vocab_size=30522))  # BERT-base shapes
    enc = BertConfig(vocab_size=30522, hidden_size=a.hidden, num_hidden_layers=a.layers,
                     num_attention_heads=max(1, a.hidden // 64), intermediate_size=4 * a.hidden,
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    bench_checkpointing(device, a.reps, enc, a.batch, a.seq)


if __name__ == "__main__":
    main()

"""Tokenization speed: openbert exact, openbert fast, HF tokenizers BertWordPieceTokenizer batch.

    python benchmarks/tokenization.py [--text FILE] [--vocab FILE] [--reps 5] [--cased]

Every repetition runs each contender once, interleaved, so background load hits all of them; the
best repetition of each is reported in MB/s (UTF-8 bytes of input per second) with ratios. The fast
path starts each repetition with an empty word cache ("cold"; the warm figure reuses it). Parity of
the fast path with the exact path is checked on every line first.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from openbert.tokenization.fast import tables
from openbert.tokenization.wordpiece import FullTokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default=str(DATA / "corpus" / "wikitext-2" / "test.txt"))
    ap.add_argument("--vocab", default=str(DATA / "vocab" / "bert-base-uncased-vocab.txt"))
    ap.add_argument("--cased", action="store_true", help="no lower-casing (use a cased vocab)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="processes for the fast path with workers")
    ap.add_argument("--exact_reps", type=int, default=2, help="repetitions of the slow exact path")
    args = ap.parse_args()

    from tokenizers import BertWordPieceTokenizer

    lower = not args.cased
    lines = Path(args.text).read_text(encoding="utf-8").split("\n")
    mb = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    tok = FullTokenizer(args.vocab, do_lower_case=lower)
    hf = BertWordPieceTokenizer(args.vocab, lowercase=lower, strip_accents=lower)

    t0 = time.perf_counter()
    tables()
    print(f"character tables built once per process in {time.perf_counter() - t0:.2f} s")
    exact = [tok.tokenize(line) for line in lines]
    fast = tok.tokenize_batch(lines)
    mismatches = sum(a != b for a, b in zip(exact, fast))
    assert len(exact) == len(fast)
    hf_tokens = [e.tokens for e in hf.encode_batch(lines, add_special_tokens=False)]
    hf_diff = sum(a != b for a, b in zip(exact, hf_tokens))
    print(f"{args.text}: {len(lines)} lines, {mb:.2f} MB; cpus={os.cpu_count()}, "
          f"python {sys.version.split()[0]}")
    print(f"parity: fast vs exact {len(lines) - mismatches}/{len(lines)} lines equal; "
          f"HF vs exact {len(lines) - hf_diff}/{len(lines)}")

    def cold(workers):
        def f():
            tok._fast = None  # fresh engine: empty word cache (and no worker pool)
            tok.tokenize_batch(lines, workers=workers)
            tok.fast.close()
        return f

    contenders = {
        "openbert exact (tokenize per line)": lambda: [tok.tokenize(line) for line in lines],
        "openbert fast, cold cache": cold(0),
        "openbert fast, warm cache": lambda: tok.tokenize_batch(lines),
        f"openbert fast, {args.workers} workers, cold": cold(args.workers),
        f"openbert fast, {args.workers} workers, warm": lambda: tok.tokenize_batch(
            lines, workers=args.workers),
        "HF tokenizers encode_batch": lambda: hf.encode_batch(lines, add_special_tokens=False),
        "HF tokenizers encode_batch + .tokens": lambda: [
            e.tokens for e in hf.encode_batch(lines, add_special_tokens=False)],
    }
    best = {k: float("inf") for k in contenders}
    best_cpu = dict(best)
    for rep in range(args.reps):
        for name, fn in contenders.items():
            if name.startswith("openbert exact") and rep >= args.exact_reps:
                continue
            if name == "openbert fast, warm cache":
                tok.tokenize_batch(lines)  # make sure the cache is warm
            if name.endswith("workers, warm"):
                tok.tokenize_batch(lines, workers=args.workers)  # start the pool, warm its caches
            t, c = time.perf_counter(), time.process_time()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
            best_cpu[name] = min(best_cpu[name], time.process_time() - c)
    tok.fast.close()
    hf_mbs = mb / best["HF tokenizers encode_batch"]
    hf_cpu = mb / best_cpu["HF tokenizers encode_batch"]
    print(f"\n{'contender':42s} {'MB/s':>7s} {'x HF batch':>11s} {'MB/cpu-s':>9s} {'x HF':>6s}")
    for name, secs in best.items():
        cpu = "        -      -" if "workers" in name else \
            f"{mb / best_cpu[name]:9.2f} {mb / best_cpu[name] / hf_cpu:6.2f}"
        print(f"{name:42s} {mb / secs:7.2f} {mb / secs / hf_mbs:11.2f} {cpu}")
    print("\nMB/s: wall clock (HF uses all cores). MB/cpu-s: input per CPU-second of this process "
          "(all its threads); worker processes are not counted there.")


if __name__ == "__main__":
    main()

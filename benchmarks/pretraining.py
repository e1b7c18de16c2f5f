"""Pre-training benchmarks, each against a peer run in the same process, repetitions interleaved.

1. create-pretraining-data, MB of raw text per second:
   peer = the original algorithm in pure Python, one process (string tokens, the exact
   tokenizer line by line, stdlib random calls, one tf.train.Example serialized per instance);
   ours = openbert's pipeline (fast tokenizer, id tokens, inlined draws) with --workers 1 and 2,
   writing shards and TFRecord (the same algorithm; tests/test_data_pretraining.py and the
   comparison in docs/pretraining.md show the instances are the original's).
2. training, sequences per second (forward + backward + AdamW step):
   peer = HF transformers BertForPreTraining (vocab projection on every position, padded batch);
   ours = openbert BertForPreTraining (masked positions gathered first, padding skipped).
   Same config, seq 128, 20 predictions, same batches (real instances from WikiText-2).
3. the cost of checking TFRecord data CRCs on read (on by default, as TensorFlow's reader):
   reading a batch from a TFRecord file with and without the check, against one pre-training step
   (fwd + bwd + AdamW) of BERT-Base (12 layers x 768) on the same batch, seq 128, 20 predictions.

    python benchmarks/pretraining.py [--dupe_factor 5] [--reps 2] [--train_steps 6]
    python benchmarks/pretraining.py --only crc [--crc_batch 8] [--crc_steps 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from openbert.io import tfrecord
from openbert.tasks.pretraining import data as P
from openbert.tokenization.wordpiece import FullTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from original_pretraining_data import original_instances, write_tfrecord  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("OPENBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
VOCAB = DATA / "vocab" / "bert-base-uncased-vocab.txt"


# ---------------------------------------------------------------------------------------------
# 1. data creation against the pure-Python original algorithm (original_pretraining_data.py)
# ---------------------------------------------------------------------------------------------
def bench_data(args):
    text = (DATA / "corpus" / "tinyshakespeare.txt").read_text(encoding="utf-8").split("\n")
    tmp = Path(tempfile.mkdtemp(prefix="openbert-bench-"))
    half = len(text) // 2
    while text[half].strip():  # split at a document boundary
        half += 1
    files = [tmp / "part0.txt", tmp / "part1.txt"]
    files[0].write_text("\n".join(text[:half]) + "\n", encoding="utf-8")
    files[1].write_text("\n".join(text[half:]) + "\n", encoding="utf-8")
    mb = sum(f.stat().st_size for f in files) / 1e6
    cfg = P.PretrainingDataConfig(dupe_factor=args.dupe_factor)
    tok = FullTokenizer(str(VOCAB), True)
    tok.encode_batch(["warm up"])
    names = ["pure Python, 1 process (peer)", "openbert --workers 1, shards",
             "openbert --workers 2, shards", "openbert --workers 2, tfrecord"]
    times = {n: [] for n in names}
    for rep in range(args.reps):
        for name in names:
            out = tmp / f"out{rep}-{names.index(name)}"
            t = time.perf_counter()
            if name.startswith("pure"):
                # one corpus: both files (they split at a document boundary, so the per-file
                # and whole-corpus algorithms do the same work)
                instances = original_instances([str(f) for f in files], tok, cfg)
                write_tfrecord(instances, tok, cfg, str(out))
                n = len(instances)
            else:
                s = P.create_pretraining_data(
                    ",".join(map(str, files)), str(out), tok, cfg,
                    workers=2 if "2" in name else 1,
                    output_format="tfrecord" if "tfrecord" in name else "shards", progress=False)
                n = s.instances
            times[name].append(time.perf_counter() - t)
            print(f"  rep {rep}: {name}: {times[name][-1]:.2f} s, {n} instances", flush=True)
    base = min(times[names[0]])
    print(f"\ncreate-pretraining-data, {mb:.2f} MB of Shakespeare in 2 files, dupe_factor "
          f"{cfg.dupe_factor}, max_seq_length 128 (best of {args.reps}):")
    for name in names:
        best = min(times[name])
        print(f"  {name:34s} {mb / best:7.3f} MB/s   {base / best:6.2f}x")


# ---------------------------------------------------------------------------------------------
# 2. training step throughput
# ---------------------------------------------------------------------------------------------
def bench_train(args):
    from transformers import BertConfig as HFConfig
    from transformers import BertForPreTraining as HFBertForPreTraining

    from openbert.config import BertConfig
    from openbert.model.bert import BertForPreTraining

    torch.manual_seed(0)
    cfg = dict(vocab_size=30522, hidden_size=args.hidden, num_hidden_layers=args.layers,
               num_attention_heads=args.hidden // 64, intermediate_size=4 * args.hidden,
               max_position_embeddings=512, type_vocab_size=2)
    ours = BertForPreTraining(BertConfig(**cfg, hidden_act="gelu"))
    hf = HFBertForPreTraining(HFConfig(**cfg, hidden_act="gelu_new", hidden_dropout_prob=0.1,
                                       attention_probs_dropout_prob=0.1, attn_implementation="sdpa"))
    hf.load_state_dict({k: v for k, v in ours.state_dict().items() if k in hf.state_dict()},
                       strict=False)
    # real instances: WikiText-2 articles, one sentence per line
    tmp = Path(tempfile.mkdtemp(prefix="openbert-bench-"))
    text = (DATA / "corpus" / "wikitext-2" / "valid.txt").read_text(encoding="utf-8")[:400_000]
    src = tmp / "wiki.txt"
    sents = [s.strip() + " ." for p in text.split("\n") for s in p.split(" . ") if len(s.split()) > 3]
    src.write_text("\n".join(sents[i] + ("\n" if i % 20 == 19 else "") for i in range(len(sents))))
    tok = FullTokenizer(str(VOCAB), True)
    P.create_pretraining_data(str(src), str(tmp / "data"), tok,
                              P.PretrainingDataConfig(dupe_factor=1), progress=False)
    ds = P.PretrainingDataset(str(tmp / "data"), 128, 20)
    b = args.batch
    batches = [P.collate([ds[i] for i in range(k * b, (k + 1) * b)]) for k in range(args.train_steps)]

    def hf_batch(batch):
        labels = torch.full_like(batch["input_ids"], -100)
        w = batch["masked_lm_weights"] > 0
        rows = torch.arange(labels.shape[0])[:, None].expand_as(w)
        labels[rows[w], batch["masked_lm_positions"][w]] = batch["masked_lm_ids"][w]
        return {"input_ids": batch["input_ids"], "attention_mask": batch["input_mask"],
                "token_type_ids": batch["segment_ids"], "labels": labels,
                "next_sentence_label": batch["next_sentence_labels"]}

    hf_batches = [hf_batch(x) for x in batches]
    opts = {m: torch.optim.AdamW(m.parameters(), lr=1e-4) for m in (ours, hf)}

    def run(model, data):
        model.train()
        t = time.perf_counter()
        for batch in data:
            loss = model(**batch).loss
            loss.backward()
            opts[model].step()
            opts[model].zero_grad(set_to_none=True)
        return time.perf_counter() - t

    run(ours, batches[:1])
    run(hf, hf_batches[:1])
    times = {"ours": [], "hf": []}
    for _ in range(args.reps):
        times["ours"].append(run(ours, batches))
        times["hf"].append(run(hf, hf_batches))
    n = args.train_steps * b
    fill = float(torch.stack([x["input_mask"].float().mean() for x in batches]).mean())
    print(f"\ntraining step (fwd + bwd + AdamW), fp32, {args.layers} layers, hidden {args.hidden}, "
          f"batch {b}, seq 128, 20 predictions, {args.train_steps} steps, {fill:.0%} real tokens "
          f"(best of {args.reps}, {torch.get_num_threads()} threads):")
    ours_s, hf_s = n / min(times["ours"]), n / min(times["hf"])
    print(f"  HF transformers BertForPreTraining (peer) {hf_s:8.2f} seq/s")
    print(f"  openbert BertForPreTraining              {ours_s:8.2f} seq/s   {ours_s / hf_s:.2f}x")


# ---------------------------------------------------------------------------------------------
# 3. TFRecord data CRCs checked on read, against a BERT-Base pre-training step
# ---------------------------------------------------------------------------------------------
def bench_crc(args):
    from openbert.config import BertConfig
    from openbert.model.bert import BertForPreTraining

    tmp = Path(tempfile.mkdtemp(prefix="openbert-bench-"))
    text = (DATA / "corpus" / "wikitext-2" / "valid.txt").read_text(encoding="utf-8")[:400_000]
    sents = [s.strip() + " ." for p in text.split("\n") for s in p.split(" . ") if len(s.split()) > 3]
    src = tmp / "wiki.txt"
    src.write_text("\n".join(sents[i] + ("\n" if i % 20 == 19 else "") for i in range(len(sents))))
    tok = FullTokenizer(str(VOCAB), True)
    record = tmp / "wiki.tfrecord"
    P.create_pretraining_data(str(src), str(record), tok, P.PretrainingDataConfig(dupe_factor=1),
                              output_format="tfrecord", progress=False)
    checked = P.PretrainingDataset(str(record), 128, 20)
    unchecked = P.PretrainingDataset(str(record), 128, 20, verify_crc=False)
    b, n = args.crc_batch, len(checked)
    reads = max(1, min(n // b, 200))

    def read(ds):
        t = time.perf_counter()
        for k in range(reads):
            P.collate([ds[(k * b + i) % n] for i in range(b)])
        return (time.perf_counter() - t) / reads

    read(checked), read(unchecked)  # warm the page cache
    times = {"checked": [], "unchecked": []}
    for _ in range(max(args.reps, 5)):
        times["checked"].append(read(checked))
        times["unchecked"].append(read(unchecked))
    # the CRC alone, over the same records (what the check adds, free of the reading noise)
    source = checked.sources[0]
    t = time.perf_counter()
    for k in range(reads * b):
        start, length = source.index[k % n]
        tfrecord.check_record(source.buf, source.path, k % n, int(start), int(length))
    crc_only = (time.perf_counter() - t) / reads

    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                                          num_attention_heads=12, intermediate_size=3072,
                                          type_vocab_size=2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = P.collate([checked[i] for i in range(b)])
    model.train()
    steps = []
    for k in range(args.crc_steps + 1):
        t = time.perf_counter()
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k:  # the first step allocates the optimizer state
            steps.append(time.perf_counter() - t)
    step = min(steps)
    best = {k: min(v) for k, v in times.items()}
    extra = best["checked"] - best["unchecked"]
    print(f"\nTFRecord data CRC on read, batch {b} x 128 (20 predictions), {reads} batches per read, "
          f"best of {len(times['checked'])}; BERT-Base step best of {len(steps)} "
          f"({torch.get_num_threads()} threads, {os.getloadavg()[0]:.1f} load):")
    print(f"  read + collate a batch, CRC checked   {1e3 * best['checked']:8.3f} ms")
    print(f"  read + collate a batch, unchecked     {1e3 * best['unchecked']:8.3f} ms")
    print(f"  the CRCs alone                        {1e3 * crc_only:8.3f} ms per batch")
    print(f"  BERT-Base pre-training step (fwd+bwd+AdamW) {step:8.2f} s per batch")
    print(f"  cost of the check: {100 * max(extra, crc_only) / step:.4f}% of a step "
          f"(read difference {1e3 * extra:.3f} ms, CRCs alone {1e3 * crc_only:.3f} ms)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dupe_factor", type=int, default=5)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--train_steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--skip", choices=["data", "train"], default=None)
    p.add_argument("--only", choices=["data", "train", "crc"], default=None)
    p.add_argument("--crc_batch", type=int, default=8)
    p.add_argument("--crc_steps", type=int, default=3)
    args = p.parse_args(argv)
    if not VOCAB.is_file():
        sys.exit(f"needs the real data at {DATA} (set OPENBERT_SHARED_DATA)")
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    runs = {"data": bench_data, "train": bench_train, "crc": bench_crc}
    for name, bench in runs.items():
        if (args.only or name) == name and args.skip != name:
            bench(args)


if __name__ == "__main__":
    main()

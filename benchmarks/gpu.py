"""CUDA: inference (text in, vectors out) and the pre-training step, each against HF transformers in
the same process.

1. ``peak``: the bf16 matrix-product rate this GPU reaches (8192^3, mean of 10 after 3 warm-ups), the
   ceiling the utilisation figures below are also quoted against.
2. ``inference``: real MRPC text (single sentences or pairs) -> the last layer's vector of every
   token, float32 numpy arrays in input order. HF ``BertTokenizerFast`` + ``transformers.BertModel``
   (SDPA) cast to fp32 / bf16 / fp16, length-sorted batches padded per batch; openbert
   ``openbert.encode`` with a model loaded for inference at each precision (bf16: dense layers cast
   once at load; fp16: autocast). Shapes MiniLM-L6 and BERT-Base with random weights (speed does
   not depend on the values; the same weights on both sides, so the differences are real).
   Median seq/s of interleaved repetitions, ratio to HF at the same precision, largest difference
   from HF fp32 over all token vectors.
3. ``pretraining``: one optimizer step (forward + backward under bf16 autocast, clipping at 1.0,
   fused torch AdamW) of ``BertForPreTraining`` at BERT-Base and BERT-Large, seq 128 (20
   predictions) and 512 (80), full rows as create-pretraining-data writes them. openbert gathers
   the masked positions before the vocabulary projection; HF projects every position. Model FLOPs
   per sequence = 3 x the forward's matrix products (encoder + pooler + the masked-LM head on the
   predicted positions); utilisation = achieved / peak (the datasheet's 989 TFLOP/s dense bf16, and
   the measured matrix-product rate).

    python benchmarks/gpu.py                          # everything (a few minutes on an H100/H200)
    python benchmarks/gpu.py --only pretraining --compile
    python benchmarks/gpu.py --smoke                  # tiny shapes and data, also on a CPU: checks the script
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import openbert
from openbert.config import BertConfig
from openbert.model.bert import BertForPreTraining, BertModel
from openbert.tokenization import FullTokenizer
from openbert.training import dense_dtype, prepare_for_inference

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference import DATA, MAX_SEQ_LENGTH, PaddedEngine, max_difference, mrpc  # noqa: E402

DATASHEET_BF16_TFLOPS = 989.4  # H100/H200 SXM, dense bf16
SHAPES = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "smoke": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# 1. the matrix-product ceiling
# ---------------------------------------------------------------------------------------------
def matmul_peak(device, n: int = 8192) -> float:
    """TFLOP/s of an n^3 bf16 product on ``device`` (mean of 10 after 3 warm-ups)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(10):
        a @ b
    _sync(device)
    return 2 * n ** 3 * 10 / (time.perf_counter() - t) / 1e12


# ---------------------------------------------------------------------------------------------
# 2. inference
# ---------------------------------------------------------------------------------------------
def model_folder(shape: str, tmp: Path) -> Path:
    folder = tmp / shape
    if not folder.is_dir():
        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, gelu_form="erf", **SHAPES[shape])  # HF's "gelu"
        BertModel(config).save_pretrained(
            folder, vocab_file=DATA / "vocab" / "bert-base-uncased-vocab.txt")
    return folder


class CudaHF(PaddedEngine):
    """HF BertModel (SDPA) cast to ``precision``, length-sorted batches padded per batch."""

    def __init__(self, folder, batch_size, device, precision):
        super().__init__(folder, batch_size, threads=0)
        import transformers

        self.device = device
        self.model = transformers.BertModel.from_pretrained(
            str(folder), add_pooling_layer=False, attn_implementation="sdpa",
            dtype=DTYPES[precision]).to(device).eval()

    def infer(self, ids, mask, segs):
        with torch.inference_mode():
            out = self.model(input_ids=torch.from_numpy(ids).to(self.device),
                             attention_mask=torch.from_numpy(mask).to(self.device),
                             token_type_ids=torch.from_numpy(segs).to(self.device)).last_hidden_state
            return out.float().cpu().numpy()


class CudaOpenBert:
    """openbert.encode with the folder loaded for inference at ``precision`` on ``device``."""

    def __init__(self, folder, batch_size, device, precision):
        self.model = prepare_for_inference(BertModel.from_pretrained(folder), precision, device)
        self.tokenizer = FullTokenizer(folder / "vocab.txt", do_lower_case=True)
        self.batch_size, self.device, self.precision = batch_size, device, precision

    def run(self, texts):
        return openbert.encode(texts, self.model, tokenizer=self.tokenizer, pooling=None,
                               batch_size=self.batch_size, max_seq_length=MAX_SEQ_LENGTH,
                               device=self.device, precision=self.precision)


def bench_inference(args, device, tmp: Path) -> None:
    precisions = args.precisions.split(",")
    for workload in args.workloads.split(","):
        shape, kind = workload.split("-")
        texts = mrpc(args.lines, pairs=kind == "pairs")
        folder = model_folder(shape, tmp)
        engines = {}
        for p in precisions:
            engines[f"hf-{p}"] = CudaHF(folder, args.batch_size, device, p)
            engines[f"openbert-{p}"] = CudaOpenBert(folder, args.batch_size, device, p)
        outputs = {name: e.run(texts) for name, e in engines.items()}  # warm-up, and the values
        reference = outputs.get("hf-fp32") or CudaHF(folder, args.batch_size, device, "fp32").run(texts)
        times = {name: [] for name in engines}
        for _ in range(args.reps):
            for name, e in engines.items():
                _sync(device)
                t = time.perf_counter()
                e.run(texts)
                _sync(device)
                times[name].append(time.perf_counter() - t)
        tokens = sum(len(x) for x in reference)
        print(f"\n## {workload}: {len(texts)} {'pairs' if kind == 'pairs' else 'sentences'}, mean "
              f"{tokens / len(texts):.1f} tokens, batch {args.batch_size}, median of {args.reps} "
              f"interleaved runs, text in -> float32 vectors out")
        print(f"{'engine':16} {'seq/s':>9} {'vs HF same precision':>21} {'max diff vs HF fp32':>20}  dense dtype")
        for name, e in engines.items():
            sps = len(texts) / statistics.median(times[name])
            peer = name.replace("openbert-", "hf-")
            ratio = statistics.median(times[peer]) / statistics.median(times[name])
            dtype = str(dense_dtype(e.model)).replace("torch.", "")
            print(f"{name:16} {sps:9.1f} {ratio:20.2f}x {max_difference(outputs[name], reference):20.2e}  "
                  f"{dtype}", flush=True)


# ---------------------------------------------------------------------------------------------
# 3. the pre-training step and its model FLOPs utilisation
# ---------------------------------------------------------------------------------------------
def model_flops_per_sequence(c: BertConfig, seq: int, predictions: int) -> float:
    """3 x (forward matrix products): per layer qkv + output (4 H^2), feed-forward (2 H I) per
    token and attention's two S x S products; pooler; masked-LM transform + tied decoder on the
    predicted positions; next-sentence."""
    h, i, v = c.hidden_size, c.intermediate_size, c.vocab_size
    layer = 2 * seq * (4 * h * h + 2 * h * i) + 4 * seq * seq * h
    heads = 2 * h * h + 2 * h * 2 + predictions * (2 * h * h + 2 * h * v)
    return 3.0 * (c.num_hidden_layers * layer + heads)


def pretraining_batch(batch: int, seq: int, predictions: int, vocab: int, device, seed: int = 0):
    """Full rows (create-pretraining-data fills each to max_seq_length), random ids, distinct
    random masked positions per row; the openbert batch and HF's (labels at those positions)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab, (batch, seq), generator=g)
    segs = (torch.arange(seq)[None, :] >= seq // 2).long().expand(batch, seq).contiguous()
    positions = torch.stack([torch.randperm(seq - 2, generator=g)[:predictions] + 1 for _ in range(batch)])
    lm_ids = torch.randint(1000, vocab, (batch, predictions), generator=g)
    nsp = torch.randint(0, 2, (batch,), generator=g)
    ours = dict(input_ids=ids, input_mask=torch.ones_like(ids), segment_ids=segs, masked_lm_positions=positions,
                masked_lm_ids=lm_ids, masked_lm_weights=torch.ones(batch, predictions), next_sentence_labels=nsp)
    labels = torch.full_like(ids, -100).scatter_(1, positions, lm_ids)
    hf = dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=segs, labels=labels,
              next_sentence_label=nsp)
    move = lambda b: {k: t.to(device) for k, t in b.items()}  # noqa: E731
    return move(ours), move(hf)


def time_steps(model, batch, device, steps: int, warmup: int = 3) -> float:
    """Seconds per optimizer step (bf16 autocast forward/backward, clip 1.0, fused AdamW)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t) / steps


def bench_pretraining(args, device, peak: float) -> None:
    import transformers

    print(f"\n## pre-training step, bf16 autocast, fused AdamW, clip 1.0, full rows; MFU against "
          f"{DATASHEET_BF16_TFLOPS:.0f} TFLOP/s (datasheet) and {peak:.0f} (measured 8192^3 product)")
    print(f"{'shape':6} {'seq':>4} {'batch':>5} {'engine':18} {'seq/s':>8} {'vs HF':>6} {'TFLOP/s':>8} "
          f"{'MFU':>6} {'of measured':>11} {'peak GiB':>8}")
    for item in args.pretraining.split(","):
        shape, seq, batch = item.split(":")
        seq, batch = int(seq), int(batch)
        predictions = 20 if seq <= 128 else 80
        config = BertConfig(vocab_size=30522, gelu_form="erf", max_position_embeddings=512, **SHAPES[shape])
        flops = model_flops_per_sequence(config, seq, predictions)
        ours_batch, hf_batch = pretraining_batch(batch, seq, predictions, config.vocab_size, device)
        hf_config = transformers.BertConfig(vocab_size=config.vocab_size, hidden_act="gelu",
                                            max_position_embeddings=512, **SHAPES[shape])
        engines = {"hf": lambda: (transformers.BertForPreTraining._from_config(
            hf_config, attn_implementation="sdpa"), hf_batch),
            "openbert": lambda: (BertForPreTraining(config), ours_batch)}
        if args.compile:
            engines["openbert-compiled"] = lambda: (torch.compile(BertForPreTraining(config)), ours_batch)
        torch.manual_seed(0)
        seconds = {}
        for name, build in engines.items():
            with torch.device(device):
                model, data = build()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds[name] = time_steps(model, data, device, args.steps)
            mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
            sps = batch / seconds[name]
            tflops = flops * sps / 1e12
            print(f"{shape:6} {seq:4d} {batch:5d} {name:18} {sps:8.1f} {seconds['hf'] / seconds[name]:5.2f}x "
                  f"{tflops:8.1f} {tflops / DATASHEET_BF16_TFLOPS:6.1%} {tflops / peak:11.1%} {mem:8.1f}",
                  flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["inference", "pretraining"], default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workloads", default="minilm-single,minilm-pairs,base-single,base-pairs")
    ap.add_argument("--precisions", default="fp32,bf16,fp16")
    ap.add_argument("--lines", type=int, default=3450, help="sentences or pairs of MRPC test (all: 3450 / 1725)")
    ap.add_argument("--batch_size", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pretraining", default="base:128:128,base:512:32,large:128:128,large:512:32",
                    help="shape:seq:batch, comma-separated")
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps per configuration")
    ap.add_argument("--compile", action="store_true", help="also openbert under torch.compile")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes and data: checks the script (CPU too)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.smoke:
        args.workloads, args.lines, args.reps = "smoke-single,smoke-pairs", 24, 1
        args.pretraining, args.steps = "smoke:128:4,smoke:512:2", 1
        if device.type == "cpu":
            args.precisions = "fp32,bf16"
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {name}; torch {torch.__version__}, transformers "
          f"{transformers.__version__}, openbert {openbert.__version__}")
    peak = matmul_peak(device, 8192 if device.type == "cuda" and not args.smoke else 256)
    print(f"# bf16 {8192 if device.type == 'cuda' and not args.smoke else 256}^3 matrix product: {peak:.0f} TFLOP/s")
    with tempfile.TemporaryDirectory(prefix="openbert-gpu-") as tmp:
        if args.only in (None, "inference"):
            bench_inference(args, device, Path(tmp))
    if args.only in (None, "pretraining"):
        bench_pretraining(args, device, peak)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

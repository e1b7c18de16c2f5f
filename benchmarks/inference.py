"""CPU inference, text in, vectors out: openbert against HF transformers, ONNX Runtime and OpenVINO.

Every engine turns the same real MRPC text (single sentences, or sentence pairs) into the last
layer's vector of every token, as float32 numpy arrays in input order, in this one process:

- ``hf-input-order``: HF ``BertTokenizerFast`` + ``transformers.BertModel`` (SDPA attention),
  batches in input order padded per batch;
- ``hf-sorted``: the same with batches of similar length (sorted by token count);
- ``ort-fp32``: the HF model exported to ONNX (TorchScript exporter), rewritten by ONNX Runtime's
  BERT fusion optimizer (fused Attention / SkipLayerNormalization / BiasGelu), length-sorted
  batches;
- ``ov-fp32`` / ``ov-bf16``: OpenVINO on the same ONNX export (INFERENCE_PRECISION_HINT f32 /
  bf16; the precision OpenVINO actually chose is printed), length-sorted batches;
- ``openbert-fp32`` / ``openbert-bf16`` / ``openbert-compiled``: ``openbert.encode(texts, model,
  tokenizer=..., pooling=None)`` with a fp32 model, a model cast to bf16 once for inference
  (``--precision bf16``: ``prepare_for_inference``, which keeps fp32 on a CPU without bf16
  products, as OpenVINO does; the dtype that ran is printed), and ``torch.compile``
  (``compile=True``).

Repetitions of all engines are interleaved (background load hits every engine alike) and the
median seq/s is reported, with each engine's ratio to ``ov-fp32`` and its largest difference
from HF fp32 over all token vectors. Then each engine runs once over the MRPC lines that follow
(as many again, or what is left), text it has not seen: its batches have new lengths, so an
engine that builds kernels per shape pays for it there ("unseen seq/s"), as it would on a user's
new data. Models: MiniLM-L6 (real weights: ``openbert download
minilm-l6``) and the BERT-Base shape (random weights, 12 x 768).

    python benchmarks/inference.py                    # the full run
    python benchmarks/inference.py --quick            # fewer lines and repetitions (minutes)
    python benchmarks/inference.py --threads 1 --clock cpu   # CPU seconds: steadier on a busy machine
    python benchmarks/inference.py --engines openbert-fp32,ov-fp32 --workloads minilm-pairs

Each engine runs with its threading library's defaults, as a user's process would: torch's OpenMP
threads spin briefly after each operation (``OMP_WAIT_POLICY`` unset), ONNX Runtime and OpenVINO
use their own thread pools. ``OMP_WAIT_POLICY=PASSIVE`` in the environment (read when torch
loads) makes torch's threads sleep at once, kinder to other jobs on a shared machine; it slows
the torch engines only (HF, openbert: measured 2026-12-04, openbert MiniLM-L6 sentences 2.41 s ->
2.70 s fp32, 1.01 s -> 1.35 s bf16).
"""
from __future__ import annotations

import os

import argparse
import csv
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import openbert
from openbert.config import BertConfig
from openbert.model.bert import BertModel
from openbert.tokenization import FullTokenizer
from openbert.training import dense_dtype, prepare_for_inference

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("OPENBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
ENGINES = ("hf-input-order", "hf-sorted", "ort-fp32", "ov-fp32", "ov-bf16", "openbert-fp32",
           "openbert-bf16", "openbert-compiled")
WORKLOADS = ("minilm-single", "minilm-pairs", "base-pairs", "base-single")
MAX_SEQ_LENGTH = 128
CLOCK = time.perf_counter


# ---------------------------------------------------------------------------------------------
# data and models
# ---------------------------------------------------------------------------------------------
def mrpc(n: int, pairs: bool) -> list:
    """The first ``n`` sentences (both sides of each MRPC test row) or ``n`` sentence pairs."""
    with open(DATA / "glue" / "MRPC" / "msr_paraphrase_test.txt", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    if pairs:
        return [(r[3], r[4]) for r in rows][:n]
    return [s for r in rows for s in (r[3], r[4])][:n]


def model_folder(name: str, tmp: Path) -> Path:
    """A HF/openbert folder (config.json, model.safetensors, vocab.txt) for ``minilm`` or ``base``."""
    if name == "minilm":
        from openbert.checkpoints import assets

        return Path(assets.fetch("minilm-l6"))
    folder = tmp / "base"
    if not folder.is_dir():
        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, gelu_form="erf")  # BERT-Base shape, HF's "gelu"
        BertModel(config, add_pooling_layer=False).save_pretrained(
            folder, vocab_file=DATA / "vocab" / "bert-base-uncased-vocab.txt")
    return folder


# ---------------------------------------------------------------------------------------------
# engines: prepare(folder) once, then run(texts) -> [n_tokens, H] float32 arrays in input order
# ---------------------------------------------------------------------------------------------
def _sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class PaddedEngine:
    """HF tokenizer, batches padded to their longest row, an ``infer(ids, mask, segs)`` -> [B, S, H]."""

    sort = True

    def __init__(self, folder: Path, batch_size: int, threads: int):
        import transformers

        self.tokenizer = transformers.BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True)
        self.batch_size, self.threads = batch_size, threads

    def _encode(self, texts):
        if texts and isinstance(texts[0], tuple):
            a, b = zip(*texts)
            return self.tokenizer(list(a), list(b), truncation="longest_first", max_length=MAX_SEQ_LENGTH)
        return self.tokenizer(texts, truncation=True, max_length=MAX_SEQ_LENGTH)

    def run(self, texts) -> list[np.ndarray]:
        enc = self._encode(texts)
        ids, segs = enc["input_ids"], enc["token_type_ids"]
        lengths = [len(x) for x in ids]
        batches = (_sorted_batches(lengths, self.batch_size) if self.sort else
                   [list(range(i, min(i + self.batch_size, len(ids)))) for i in range(0, len(ids), self.batch_size)])
        out: list = [None] * len(ids)
        for idx in batches:
            width = max(lengths[i] for i in idx)
            b_ids = np.zeros((len(idx), width), np.int64)
            b_segs = np.zeros((len(idx), width), np.int64)
            b_mask = np.zeros((len(idx), width), np.int64)
            for r, i in enumerate(idx):
                n = lengths[i]
                b_ids[r, :n], b_segs[r, :n], b_mask[r, :n] = ids[i], segs[i], 1
            h = self.infer(b_ids, b_mask, b_segs)  # [B, S, H] float32
            for r, i in enumerate(idx):
                out[i] = np.array(h[r, :lengths[i]], dtype=np.float32)
        return out


class HFEngine(PaddedEngine):
    def __init__(self, folder, batch_size, threads, sort):
        super().__init__(folder, batch_size, threads)
        import transformers

        self.sort = sort
        self.model = transformers.BertModel.from_pretrained(str(folder), add_pooling_layer=False,
                                                            attn_implementation="sdpa").eval()

    def infer(self, ids, mask, segs):
        with torch.inference_mode():
            return self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                              token_type_ids=torch.from_numpy(segs)).last_hidden_state.numpy()


def export_hf_onnx(folder: Path, path: Path) -> Path:
    """The HF model as ONNX through the TorchScript exporter (the graph ORT's fusions expect)."""
    import transformers

    if path.is_file():
        return path
    hf = transformers.BertModel.from_pretrained(str(folder), add_pooling_layer=False,
                                                attn_implementation="eager").eval()

    class Positional(torch.nn.Module):  # the exporter passes inputs by position
        def __init__(self):
            super().__init__()
            self.hf = hf

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.hf(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state

    model = Positional().eval()
    example = tuple(torch.full((2, 16), v, dtype=torch.long) for v in (1, 1, 0))  # distinct tensors
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(model, example, str(path), dynamo=False,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=17,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "last_hidden_state": axes})
    return path


class ORTEngine(PaddedEngine):
    def __init__(self, folder, batch_size, threads, onnx_path: Path):
        super().__init__(folder, batch_size, threads)
        import onnxruntime as ort
        from onnxruntime.transformers.optimizer import optimize_model

        config = BertConfig.from_json_file(folder / "config.json")
        fused_path = onnx_path.with_suffix(".fused.onnx")
        opt = optimize_model(str(onnx_path), model_type="bert", num_heads=config.num_attention_heads,
                             hidden_size=config.hidden_size)
        self.fusions = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        opt.save_model_to_file(str(fused_path))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(fused_path), so, providers=["CPUExecutionProvider"])

    def infer(self, ids, mask, segs):
        return self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": segs})[0]


class OVEngine(PaddedEngine):
    def __init__(self, folder, batch_size, threads, onnx_path: Path, precision: str):
        super().__init__(folder, batch_size, threads)
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(ov.convert_model(str(onnx_path)), "CPU", {
            "INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY"})
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = self.compiled.create_infer_request()

    def infer(self, ids, mask, segs):
        res = self.request.infer({"input_ids": ids, "attention_mask": mask, "token_type_ids": segs})
        return next(iter(res.values()))


class OpenBertEngine:
    def __init__(self, folder, batch_size, threads, precision: str, compile: bool):
        # what --precision does: bf16 casts the dense layers once where the CPU has bf16 products
        self.model = prepare_for_inference(BertModel.from_pretrained(folder), precision, "cpu")
        self.precision = str(dense_dtype(self.model))
        self.tokenizer = FullTokenizer(folder / "vocab.txt", do_lower_case=True)
        self.batch_size, self.compile = batch_size, compile

    def run(self, texts):
        return openbert.encode(texts, self.model, tokenizer=self.tokenizer, pooling=None,
                               batch_size=self.batch_size, max_seq_length=MAX_SEQ_LENGTH,
                               compile=self.compile)


def make_engine(name, folder, batch_size, threads, onnx_path):
    if name.startswith("hf-"):
        return HFEngine(folder, batch_size, threads, sort=name == "hf-sorted")
    if name == "ort-fp32":
        return ORTEngine(folder, batch_size, threads, onnx_path)
    if name.startswith("ov-"):
        return OVEngine(folder, batch_size, threads, onnx_path, "f32" if name == "ov-fp32" else "bf16")
    return OpenBertEngine(folder, batch_size, threads, "bf16" if name == "openbert-bf16" else "fp32",
                          compile=name == "openbert-compiled")


# ---------------------------------------------------------------------------------------------
def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    if any(x.shape != y.shape for x, y in zip(a, b)):
        return float("nan")  # tokenization differs
    return float(max(np.abs(x - y).max() for x, y in zip(a, b)))


def run_workload(workload: str, args, tmp: Path) -> list[dict]:
    model_name, kind = workload.split("-")
    lines = args.base_lines if model_name == "base" else args.lines
    texts = mrpc(lines, pairs=kind == "pairs")
    unseen = mrpc(2 * lines, pairs=kind == "pairs")[lines:]  # lines after those, up to as many
    folder = model_folder(model_name, tmp)
    onnx_path = None
    if any(e.startswith(("ort", "ov")) for e in args.engines):
        onnx_path = export_hf_onnx(folder, tmp / f"{model_name}.onnx")
    engines, notes = {}, []
    for name in args.engines:
        try:
            engines[name] = make_engine(name, folder, args.batch_size, args.threads, onnx_path)
        except ImportError as e:
            notes.append(f"{name} skipped: {e}")
    reference = HFEngine(folder, args.batch_size, args.threads, sort=True).run(texts)
    outputs = {}
    for name, engine in engines.items():  # warm-up (and compilation) outside the timed runs
        outputs[name] = engine.run(texts)
    times = {name: [] for name in engines}
    for _ in range(args.reps):
        for name, engine in engines.items():
            t = CLOCK()
            engine.run(texts)
            times[name].append(CLOCK() - t)
    first = {name: float("nan") for name in engines}  # one run each over text none has seen
    for name, engine in engines.items() if unseen else ():  # (new lengths, new shapes)
        t = CLOCK()
        engine.run(unseen)
        first[name] = CLOCK() - t
    tokens = sum(len(x) for x in reference)
    print(f"\n## {workload}: {len(texts)} {'pairs' if kind == 'pairs' else 'sentences'}, mean "
          f"{tokens / len(texts):.1f} tokens, batch {args.batch_size}, median of {args.reps} interleaved runs")
    for name, e in engines.items():
        extra = getattr(e, "fusions", None) or getattr(e, "precision", None)
        if extra and not name.startswith("openbert-fp32"):
            notes.append(f"{name}: {extra}")
    for n in notes:
        print(f"#   {n}")
    rows = []
    base = statistics.median(times["ov-fp32"]) if "ov-fp32" in times else None
    print(f"{'engine':18} {'seq/s':>8} {'vs ov-fp32':>10} {'max diff vs HF fp32':>20} "
          f"{'unseen seq/s':>13} {'vs ov-fp32':>10}  runs (s)")
    for name in engines:
        t = statistics.median(times[name])
        row = dict(workload=workload, engine=name, seq_s=len(texts) / t,
                   ratio=(base / t) if base else float("nan"),
                   diff=max_difference(outputs[name], reference), unseen_seq_s=len(unseen) / first[name],
                   unseen_ratio=first.get("ov-fp32", float("nan")) / first[name])
        rows.append(row)
        print(f"{name:18} {row['seq_s']:8.1f} {row['ratio']:9.2f}x {row['diff']:20.2e} "
              f"{row['unseen_seq_s']:13.1f} {row['unseen_ratio']:9.2f}x  "
              f"{' '.join(f'{x:.2f}' for x in times[name])}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128 lines (32 for BERT-Base), 3 repetitions")
    ap.add_argument("--workloads", default="minilm-single,minilm-pairs,base-pairs",
                    help=f"comma-separated, of {', '.join(WORKLOADS)}")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, of {', '.join(ENGINES)}")
    ap.add_argument("--lines", type=int, default=1024, help="MiniLM lines (sentences or pairs)")
    ap.add_argument("--base_lines", type=int, default=256, help="BERT-Base lines")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="cpu: CPU seconds of this process, steadier than wall time on a busy machine "
                         "(use with --threads 1: idle worker threads that spin count as work)")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.quick:
        args.lines, args.base_lines, args.reps = 128, 32, 3
    args.engines = [e for e in args.engines.split(",") if e]
    for e in args.engines:
        if e not in ENGINES:
            ap.error(f"--engines: unknown engine {e!r}; use {', '.join(ENGINES)}")
    torch.set_num_threads(args.threads)
    import transformers

    versions = [f"torch {torch.__version__}", f"transformers {transformers.__version__}"]
    for mod in ("onnxruntime", "openvino"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs ({torch.backends.cpu.get_cpu_capability()}), {args.threads} threads, "
          f"{args.clock} clock, "
          f"load average {os.getloadavg()[0]:.1f}; {', '.join(versions)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="openbert-inference-") as tmp:
        for w in args.workloads.split(","):
            rows += run_workload(w, args, Path(tmp))
    print(f"\n# load average at the end {os.getloadavg()[0]:.1f}")
    print("\n| workload | " + " | ".join(args.engines) + " |")
    print("|---|" + "---|" * len(args.engines))
    for w in args.workloads.split(","):
        cells = {r["engine"]: r for r in rows if r["workload"] == w}
        print(f"| {w} | " + " | ".join(f"{cells[e]['seq_s']:.1f}" if e in cells else "-" for e in args.engines) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

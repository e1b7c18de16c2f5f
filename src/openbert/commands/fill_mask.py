"""Top-k predictions of the masked-LM head for every [MASK] in the given texts.

    openbert fill-mask --init_checkpoint=M "the man went to the [MASK] ."

Texts come as arguments or from --input_file (one a line, ``A ||| B`` for pairs). The checkpoint must
hold the pre-training head (cls/predictions): Google's releases and `openbert pretrain` outputs do.
"""
from __future__ import annotations

import json
import os

from ..errors import OpenBertError
from ..io.fileio import atomic_open
from ..tasks.common import check_max_seq_length, default_max_seq_length
from ..tasks.features.fill_mask import fill_mask, load_mlm
from ..tasks.features.writers import check_output_path, first_json_line_has
from ..training.trainer import PRECISIONS, prepare_for_inference
from .flags import add_loading_flags, add_model_source_flags, model_inputs, model_source


def add_arguments(parser) -> None:
    parser.add_argument("texts", nargs="*", help="texts with [MASK] where words should be predicted")
    parser.add_argument("--input_file", default=None, help="one text a line instead of arguments")
    parser.add_argument("--output_file", default=None, help="write JSON lines here instead of printing")
    add_model_source_flags(parser, None, "default 128, or the model's max_position_embeddings if smaller",
                           init_checkpoint_required=True)
    parser.add_argument("--top_k", type=int, default=5, help="predictions per [MASK]")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="bf16: dense layers cast once at load (fp32 on a CPU without bf16 hardware)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_loading_flags(parser)


def _texts(args) -> list[str]:
    if args.input_file and args.texts:
        raise OpenBertError("give texts either as arguments or with --input_file, not both")
    if args.input_file:
        if not os.path.isfile(args.input_file):
            raise OpenBertError(f"--input_file {args.input_file} not found (or not a file)")
        with open(args.input_file, encoding="utf-8", errors="ignore") as f:
            texts = [line.strip() for line in f if line.strip()]
    else:
        texts = list(args.texts)
    if not texts:
        raise OpenBertError('no text given: openbert fill-mask --init_checkpoint=M "the man went to the [MASK] ."')
    return texts


def run(args) -> int:
    texts = _texts(args)
    if args.output_file:
        check_output_path(args.output_file, kind="fill-mask output (JSON lines)",
                          is_kind=lambda p: first_json_line_has(p, "masks"),
                          inputs=[args.input_file, *model_inputs(args)])
    source = model_source(args)
    max_seq_length = args.max_seq_length or default_max_seq_length(source.config)
    check_max_seq_length(max_seq_length, source.config, source.path)
    model = prepare_for_inference(load_mlm(source.path, source.config, source.allow_unused), args.precision,
                                  args.device)
    results = fill_mask(model, source.tokenizer, texts, args.top_k, max_seq_length, args.batch_size,
                        args.device, args.precision)
    if args.output_file:
        with atomic_open(args.output_file, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
        return 0
    for r in results:
        print(r["text"])
        for n, m in enumerate(r["masks"], 1):
            preds = "  ".join(f"{p['token']} {p['probability']:.3f}" for p in m["predictions"])
            print(f"  [MASK] {n} (token {m['position']}): {preds}")
    return 0

"""Contextual embeddings of every token, as the original extract_features.py.

Input: one example a line, ``A ||| B`` for a pair. Output (--output_file): the original JSON lines,
or with --output_format npz|safetensors one array per requested layer (all tokens of all lines, with
``offsets`` per line), optionally pooled to one vector per line (--pooling cls|mean).
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from ..errors import OpenBertError
from ..model.bert import BertModel
from ..tasks.features.extract import (POOLINGS, convert_examples, count_lines, extract, parse_layers,
                                      read_examples)
from ..tasks.features.writers import (OUTPUT_FORMATS, check_output_path, open_writer,
                                      output_format_for)
from ..training.trainer import PRECISIONS, prepare_for_inference, resolve_device
from .flags import add_bool, add_loading_flags, add_model_source_flags, model_inputs, model_source

logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--input_file", required=True, help="one example a line; 'A ||| B' for pairs")
    parser.add_argument("--output_file", required=True)
    parser.add_argument("--layers", default="-1,-2,-3,-4", help="layer indexes, -1 = last encoder layer")
    add_model_source_flags(parser, 128, "longer inputs are truncated (pairs: the longer side first)",
                           init_checkpoint_required=True)
    parser.add_argument("--batch_size", type=int, default=32, help="sequences per batch")
    for name in ("use_tpu", "use_one_hot_embeddings"):  # accepted so original command lines run
        add_bool(parser, name, False, "accepted for compatibility with the original; no effect")
    parser.add_argument("--master", default=None, help="accepted for compatibility; no effect")
    parser.add_argument("--num_tpu_cores", type=int, default=8, help="accepted for compatibility; no effect")
    g = parser.add_argument_group("beyond the original")
    g.add_argument("--output_format", choices=OUTPUT_FORMATS, default=None,
                   help="jsonl (the original layout), npz or safetensors; default from the file name")
    g.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="array outputs")
    g.add_argument("--pooling", choices=POOLINGS, default="none",
                   help="array outputs: one vector per line per layer ([CLS], or mean over its tokens)")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="bf16: dense layers cast once at load (fp32 on a CPU without bf16 hardware)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_bool(g, "progress", True, "show a progress bar")
    add_loading_flags(g)


def run(args) -> int:
    from tqdm.auto import tqdm

    fmt = output_format_for(args.output_file, args.output_format)
    check_output_path(args.output_file, fmt, args.pooling, inputs=[args.input_file, *model_inputs(args)])
    if args.batch_size < 1:
        raise OpenBertError(f"--batch_size must be at least 1, got {args.batch_size}")
    if not os.path.isfile(args.input_file):
        raise OpenBertError(f"--input_file {args.input_file} not found (or not a file)")
    total = count_lines(args.input_file)
    device = resolve_device(args.device)
    source = model_source(args)
    config = source.config
    layers = parse_layers(args.layers, config.num_hidden_layers)
    model = prepare_for_inference(BertModel.from_pretrained(source.path, config=config, allow_unused=source.allow_unused),
                                  args.precision, device)
    features = convert_examples(read_examples(args.input_file), source.tokenizer, args.max_seq_length)
    start, lines, tokens = time.perf_counter(), 0, 0
    with tqdm(total=total, disable=not args.progress, desc="extract-features", unit="line",
              dynamic_ncols=True) as bar, \
            open_writer(args.output_file, fmt, layers, config.hidden_size, np.dtype(args.dtype),
                        args.pooling) as writer:
        for feature, values in extract(features, model, layers, args.batch_size, args.pooling, device,
                                       args.precision, progress=bar):
            writer.write(feature, values)
            lines += 1
            tokens += len(feature.tokens)
    seconds = time.perf_counter() - start
    logger.info("wrote %s (%s): %d lines, %d tokens in %.1f s (%.1f lines/s)", args.output_file, fmt,
                lines, tokens, seconds, lines / max(seconds, 1e-9))
    return 0

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
from ..tasks.features.extract import load_tokenizer
from ..tasks.features.fill_mask import fill_mask, load_mlm
from ..tasks.features.writers import check_output_path
from ..training.trainer import PRECISIONS
from .flags import add_bool


def add_arguments(parser) -> None:
    parser.add_argument("texts", nargs="*", help="texts with [MASK] where words should be predicted")
    parser.add_argument("--input_file", default=None, help="one text a line instead of arguments")
    parser.add_argument("--output_file", default=None, help="write JSON lines here instead of printing")
    parser.add_argument("--init_checkpoint", required=True,
                        help="a checkpoint with the masked-LM head (TF prefix / folder, HF or openbert folder)")
    parser.add_argument("--bert_config_file", default=None, help="default: the one beside --init_checkpoint")
    parser.add_argument("--vocab_file", default=None, help="default: vocab.txt beside --init_checkpoint")
    add_bool(parser, "do_lower_case", True, "lower-case the input (true for uncased models)")
    parser.add_argument("--top_k", type=int, default=5, help="predictions per [MASK]")
    parser.add_argument("--max_seq_length", type=int, default=None,
                        help="default 128, or the model's max_position_embeddings if smaller")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


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
        check_output_path(args.output_file)
    tokenizer = load_tokenizer(args.init_checkpoint, args.vocab_file, args.do_lower_case)
    model = load_mlm(args.init_checkpoint, args.bert_config_file)
    if args.max_seq_length is None:
        args.max_seq_length = min(128, model.config.max_position_embeddings)
    if args.max_seq_length > model.config.max_position_embeddings:
        raise OpenBertError(f"--max_seq_length={args.max_seq_length} is longer than the model's "
                            f"max_position_embeddings ({model.config.max_position_embeddings}); lower it")
    results = fill_mask(model, tokenizer, texts, args.top_k, args.max_seq_length, args.batch_size,
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

"""Convert a checkpoint between the original TF layout and HF/safetensors, without TensorFlow.

  openbert convert --input uncased_L-12_H-768_A-12/bert_model.ckpt --output bert-base-hf
  openbert convert --input bert-base-hf --output bert-base-tf --to tf
  openbert convert --input bert-base-hf --output bert-base-onnx --to onnx


TF -> HF writes config.json, bert_config.json, model.safetensors and vocab.txt (loadable by
openbert and by HF transformers). HF/openbert -> TF writes bert_config.json, vocab.txt,
bert_model.ckpt.index / .data-00000-of-00001 and the `checkpoint` file, as the Google release.
Tensors are copied exactly (TF kernels transposed); optimizer slots and global_step are dropped.
Every tensor must agree with the config written beside it (no layer more or less, no other shape).
The output folder is swapped in complete; an existing one is replaced only when it is an earlier
`openbert convert` output (or with --overwrite_output_dir), never when it holds the input.

--to onnx writes model.onnx (the encoder, or the model with the head the checkpoint carries;
--head chooses), config.json, bert_config.json and vocab.txt (see openbert.checkpoints.onnx; needs
``pip install openbert[onnx]``).
"""
from __future__ import annotations

import logging
import os

import torch

from ..checkpoints import onnx
from ..checkpoints import pretrained as checkpoints
from ..checkpoints.names import tf_name
from ..errors import OpenBertError
from ..io.fileio import check_output_dir
from ..model.bert import BertForPreTraining
from ..tasks.common import resolve_checkpoint
from .flags import add_bool

logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("--input", required=True,
                        help="TF prefix (.../bert_model.ckpt), TF folder, HF or openbert folder, weights "
                             "file, or a model name (openbert download --list)")
    parser.add_argument("--output", required=True, help="folder to write (created if needed)")
    parser.add_argument("--to", choices=["hf", "tf", "onnx"], default=None,
                        help="target layout (default: hf for a TF input, tf otherwise)")
    parser.add_argument("--head", choices=["auto", *onnx.HEADS], default="auto",
                        help="--to onnx: what to export (auto: the head the checkpoint carries, else the encoder)")
    parser.add_argument("--bert_config_file", default=None,
                        help="config of the input (default: bert_config.json / config.json beside it)")
    parser.add_argument("--vocab_file", default=None, help="vocab.txt to copy (default: the one beside the input)")
    add_bool(parser, "overwrite_output_dir", False, "replace --output (deleting what it holds) even "
                                                    "when openbert convert did not write it")


def check_shapes(state: dict[str, torch.Tensor], config, source: str, config_desc: str) -> None:
    """Every tensor agrees with ``config``: encoder / pre-training tensors have the shapes it
    implies and none is beyond it (a layer more), task heads read ``hidden_size`` features, and the
    encoder is complete. OpenBertError naming the tensors otherwise."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in BertForPreTraining(config).state_dict().items()}
    for name, t in state.items():
        want = expected.get(name)
        if want is None and not name.startswith(("bert.", "cls.")) and name.endswith(".weight"):
            want = (t.shape[0], config.hidden_size)  # a task head: [num_outputs, hidden_size]
        elif want is None and not name.startswith(("bert.", "cls.")) and name.endswith(".bias"):
            weight = state.get(name[:-len("bias")] + "weight")
            want = (weight.shape[0],) if weight is not None else tuple(t.shape)
        if want is not None and tuple(t.shape) != want:
            raise OpenBertError(f"shape mismatch for {name} (TF {tf_name(name)[0]}): {source} has "
                                f"{list(t.shape)}, {config_desc} implies {list(want)}; pass the "
                                "config that belongs to this checkpoint (--bert_config_file)")
    beyond = sorted(n for n in state if n.startswith(("bert.", "cls.")) and n not in expected)
    if beyond:
        shown = ", ".join(beyond[:3]) + (" ..." if len(beyond) > 3 else "")
        raise OpenBertError(f"{source} holds {len(beyond)} tensor(s) that {config_desc} has no place for "
                            f"({shown}): pass the config that belongs to this checkpoint "
                            "(--bert_config_file); the output would not match its own config")
    missing = [k for k in expected if k.startswith(("bert.embeddings.", "bert.encoder.")) and k not in state]
    if missing:
        raise OpenBertError(f"{source} lacks {len(missing)} encoder tensor(s) ({', '.join(missing[:3])} ...); "
                            f"is it a BERT checkpoint matching {config_desc}?")


def run(args) -> int:
    src = os.path.abspath(resolve_checkpoint(args.input))  # a path, or a model name -> its folder
    out = os.path.abspath(args.output)
    if os.path.isdir(src) and os.path.realpath(src) == os.path.realpath(out) or \
            os.path.realpath(os.path.dirname(src)) == os.path.realpath(out) and not os.path.isdir(src):
        raise OpenBertError(f"--output {args.output} is the input's own folder; choose a new folder")
    if os.path.isfile(out):
        raise OpenBertError(f"--output {args.output} is a file; pass a folder")
    check_output_dir(out, "convert", "--output", args.overwrite_output_dir,
                     inputs=[src, args.vocab_file, args.bert_config_file])
    state, unmapped, source = checkpoints.read_checkpoint(src)
    to = args.to or ("hf" if source.endswith(".index") else "tf")
    config = checkpoints.load_config(src, args.bert_config_file)
    config_desc = args.bert_config_file or checkpoints.find_config(src)
    check_shapes(state, config, source, config_desc)
    if unmapped:
        logger.warning("%s: not BERT tensors, not converted: %s", source, ", ".join(sorted(unmapped)))
    vocab = args.vocab_file or checkpoints.find_vocab(src)
    if vocab is None:
        logger.warning("no vocab.txt beside %s and no --vocab_file: the output has no vocabulary", src)
    opts = dict(fresh=True, strict=True, overwrite=args.overwrite_output_dir, command="convert",
                flag="--output")
    if to == "onnx":
        head = onnx.head_of_checkpoint(state, src) if args.head == "auto" else args.head
        del state
        model = onnx.HEADS[head][0].from_pretrained(src, config=config)
        written = onnx.export_onnx(model, out, head, vocab, **opts)
        print(f"exported {type(model).__name__} ({head}) from {source} to ONNX: {written}")
        return 0
    if args.head != "auto":
        raise OpenBertError("--head applies to --to onnx only")
    if to == "hf":
        checkpoints.write_hf_folder(state, config, out, vocab, **opts)
        written = os.path.join(out, "model.safetensors")
    else:
        written = checkpoints.write_tf_folder(state, config, out, vocab, **opts)
    print(f"converted {len(state)} tensors from {source} to {to.upper()} layout: {written}")
    return 0

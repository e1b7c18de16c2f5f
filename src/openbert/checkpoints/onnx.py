"""ONNX export: a BERT encoder, or a model with its head, as one ``model.onnx`` file.

``export_onnx(model, directory, head, vocab_file)`` writes into ``directory``:

- ``model.onnx``: inputs ``input_ids``, ``input_mask``, ``segment_ids`` (int64 ``[batch,
  sequence]``, both axes dynamic, sequence at most ``max_position_embeddings``; 1 = real token in
  ``input_mask``), outputs named as the fields of :class:`~openbert.model.bert.BertOutput` that the
  head computes (see :data:`HEADS`), float32;
- ``config.json`` and ``bert_config.json`` (as ``save_pretrained``), and ``vocab.txt`` when given.

The graph is the padded computation with the original -10000 key mask (ONNX runtimes have their
own kernels; openbert's unpadded path is data-dependent): outputs at real positions equal
openbert's, outputs at padding positions are whatever the padded computation gives.

Export goes through ``torch.onnx.export`` (the ``torch.export`` based exporter), which needs the
``onnx`` and ``onnxscript`` packages: ``pip install openbert[onnx]``.
"""
from __future__ import annotations

import json
import os

import torch
from torch import nn

from ..errors import OpenBertError
from ..io.fileio import output_folder
from ..model.bert import (BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification,
                          BertForTokenClassification, BertModel)
from .pretrained import _copy_vocab, find_config

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
# head -> (model class, output names)
HEADS: dict[str, tuple[type, tuple[str, ...]]] = {
    "encoder": (BertModel, ("sequence_output", "pooled_output")),
    "pretraining": (BertForPreTraining, ("masked_lm_logits", "next_sentence_logits")),
    "masked_lm": (BertForPreTraining, ("masked_lm_logits",)),
    "sequence_classification": (BertForSequenceClassification, ("logits",)),
    "token_classification": (BertForTokenClassification, ("logits",)),
    "question_answering": (BertForQuestionAnswering, ("start_logits", "end_logits")),
}
_HEAD_OF_ARCHITECTURE = {"BertModel": "encoder", "BertForPreTraining": "pretraining",
                         "BertForMaskedLM": "masked_lm",
                         "BertForSequenceClassification": "sequence_classification",
                         "BertForTokenClassification": "token_classification",
                         "BertForQuestionAnswering": "question_answering"}


def head_of_checkpoint(state: dict, path) -> str:
    """The head a checkpoint carries: the HF ``architectures`` of its config.json when it names
    one, else from its tensors (classifier -> sequence classification)."""
    config = find_config(path)
    if config is not None and os.path.basename(config) == "config.json":
        with open(config, encoding="utf-8") as f:
            for arch in json.load(f).get("architectures") or []:
                if arch in _HEAD_OF_ARCHITECTURE:
                    return _HEAD_OF_ARCHITECTURE[arch]
    if "cls.seq_relationship.weight" in state:
        return "pretraining"
    if "cls.predictions.bias" in state:
        return "masked_lm"
    if "qa_outputs.weight" in state:
        return "question_answering"
    if "classifier.weight" in state:
        return "sequence_classification"
    return "encoder"


class _Outputs(nn.Module):
    """``model`` with positional inputs and a tuple of the named output tensors."""

    def __init__(self, model: nn.Module, outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.outputs = model, outputs

    def forward(self, input_ids, input_mask, segment_ids):
        out = self.model(input_ids, input_mask, segment_ids)
        return tuple(getattr(out, name) for name in self.outputs)


def export_onnx(model: nn.Module, directory, head: str = "encoder", vocab_file=None,
                opset_version: int = 18, **folder) -> str:
    """Write ``model`` (an instance of ``HEADS[head][0]``) as ``directory/model.onnx`` with its
    configs (and vocab.txt when given); returns the path of model.onnx. The folder is swapped in
    complete, as :func:`openbert.checkpoints.write_hf_folder` writes its own (``folder``: the same
    fresh / strict / overwrite / command / flag options)."""
    if head not in HEADS:
        raise OpenBertError(f"unknown ONNX head {head!r}: use one of {', '.join(HEADS)}")
    cls, outputs = HEADS[head]
    if not isinstance(model, cls):
        raise OpenBertError(f"the {head} head needs a {cls.__name__}, got a {type(model).__name__}")
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise OpenBertError(f"ONNX export needs the onnx and onnxscript packages ({e.name} is missing): "
                            "pip install 'openbert[onnx]'") from None
    directory = os.fspath(directory)
    config = model.config
    wrapper = _Outputs(model, outputs).eval()
    # shapes only (both axes are dynamic); three distinct tensors, or the tracer takes them as one
    example = tuple(torch.full((2, 8), v, dtype=torch.long) for v in (1, 1, 0))
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=config.max_position_embeddings)
    axes = {0: batch, 1: sequence}
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper, example, dynamo=True,
            input_names=list(INPUT_NAMES), output_names=list(outputs), opset_version=opset_version,
            dynamic_shapes={name: axes for name in INPUT_NAMES}, verbose=False)
    num_labels = getattr(model, "num_labels", None) if head.endswith("classification") else None
    with output_folder(directory, **folder) as tmp:
        program.save(os.path.join(tmp, "model.onnx"), external_data=False)  # one file (protobuf's limit:
        # 2 GiB, above BERT-Large)
        config.to_hf_json_file(os.path.join(tmp, "config.json"), cls.hf_architecture
                               if head != "masked_lm" else "BertForMaskedLM", num_labels=num_labels)
        config.to_json_file(os.path.join(tmp, "bert_config.json"))
        _copy_vocab(vocab_file, tmp)
    target = os.path.join(directory, "model.onnx")
    return target


__all__ = ["HEADS", "INPUT_NAMES", "export_onnx", "head_of_checkpoint"]

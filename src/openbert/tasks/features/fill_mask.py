"""Masked-word prediction with the pre-training masked-LM head.

Unlike the plain tokenizer (which splits ``[MASK]`` into ``[``, ``mask``, ``]``), user text here may
hold the literal ``[MASK]`` (any case): the text is split on it, the pieces are tokenized, and a
``[MASK]`` token goes between them. ``A ||| B`` is a pair, as in extract-features.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from ...checkpoints.pretrained import read_checkpoint
from ...errors import OpenBertError
from ...model.bert import BertForPreTraining
from ...training.trainer import predict
from ..common import pad
from .extract import InputFeature, collate, convert_example, parse_line

MASK = "[MASK]"
_MASK_IN_TEXT = re.compile(r"\[mask\]", re.IGNORECASE)
# the masked-LM head's tensors (canonical names) that a checkpoint must hold
MLM_HEAD = ("cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
            "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
            "cls.predictions.bias")


@dataclass
class MaskedFeature(InputFeature):
    masked_lm_positions: list[int] = field(default_factory=list)


def tokenize_with_masks(tokenizer, text: str) -> list[str]:
    """Tokens of ``text`` with every literal ``[MASK]`` kept as the ``[MASK]`` token."""
    tokens = []
    for i, piece in enumerate(_MASK_IN_TEXT.split(text)):
        if i:
            tokens.append(MASK)
        tokens.extend(tokenizer.tokenize(piece))
    return tokens


def make_feature(text: str, index: int, tokenizer, max_seq_length: int, truncate: bool = True) -> MaskedFeature:
    """``[CLS] A [SEP] (B [SEP])`` with [MASK] tokens; raises when no [MASK] is left (and, with
    ``truncate`` False, when the text is longer than ``max_seq_length``)."""
    ex = parse_line(text, index, "input")
    tokens_b = tokenize_with_masks(tokenizer, ex.text_b) if ex.text_b else None
    f = convert_example(ex, tokenizer, max_seq_length, tokenize_with_masks(tokenizer, ex.text_a), tokens_b,
                        truncate)
    positions = [i for i, t in enumerate(f.tokens) if t == MASK]
    if not positions:
        where = "after truncation to --max_seq_length" if _MASK_IN_TEXT.search(text) else "in the text"
        raise OpenBertError(f"input {index + 1} ({text[:60]!r}) has no [MASK] {where}: write [MASK] "
                            "where a word should be predicted")
    return MaskedFeature(f.unique_id, f.tokens, f.input_ids, f.segment_ids, positions)


def _collate(features: list[MaskedFeature]) -> dict[str, torch.Tensor]:
    """Padded ids / mask / segments plus masked_lm_positions [B, P] (0-padded)."""
    batch = collate(features)
    batch["masked_lm_positions"] = pad([f.masked_lm_positions for f in features])
    return batch


def check_mlm_head(state: dict, source: str) -> None:
    """Raise a clear error when a checkpoint's tensors lack the masked-LM head."""
    missing = [n for n in MLM_HEAD if n not in state]
    if missing:
        raise OpenBertError(f"{source} has no masked-LM head (missing {', '.join(missing)}): fill-mask "
                            "needs a pre-training checkpoint (cls/predictions/* in TF, cls.predictions.* "
                            "in HF), such as Google's released models or one written by `openbert pretrain`; "
                            "encoder-only models such as sentence-embedding models cannot fill masks")


def load_mlm(init_checkpoint: str, config=None, allow_unused: bool = False):
    """A :class:`~openbert.model.bert.BertForPreTraining` whose masked-LM head comes from the
    checkpoint; ``config``: a BertConfig or config file (default: the one beside it)."""
    state, _, source = read_checkpoint(init_checkpoint)
    check_mlm_head(state, source)
    del state
    return BertForPreTraining.from_pretrained(init_checkpoint, config=config, allow_unused=allow_unused)


def predict_masks(model, tokenizer, features: list[MaskedFeature], top_k: int = 5, batch_size: int = 32,
                  device="auto", precision: str = "fp32") -> list[list[dict]]:
    """Top-k tokens for every [MASK] of every feature, in input order: per feature
    ``[{"position", "predictions": [{"token", "probability"}, ...]}]`` (softmax over the vocabulary)."""
    if top_k < 1:
        raise OpenBertError(f"--top_k must be at least 1, got {top_k}")
    results: list[list[dict] | None] = [None] * len(features)
    lengths = [len(f.input_ids) for f in features]
    for idx, out in predict(model, features, _collate, batch_size, device, precision, lengths=lengths,
                            progress=False):
        probs = torch.softmax(out.masked_lm_logits.float(), dim=-1)  # [B, P, V]
        top_p, top_ids = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        for row, i in enumerate(idx):
            results[i] = [{"position": pos,
                           "predictions": [{"token": tok, "probability": float(p)} for tok, p in
                                           zip(tokenizer.convert_ids_to_tokens(top_ids[row, j].tolist()),
                                               top_p[row, j].tolist())]}
                          for j, pos in enumerate(features[i].masked_lm_positions)]
    return results


def fill_mask(model, tokenizer, texts: list[str], top_k: int = 5, max_seq_length: int = 128,
              batch_size: int = 32, device="auto", precision: str = "fp32") -> list[dict]:
    """Top-k tokens for every [MASK] of every text, in input order.

    Returns one dict per text: ``{"text", "tokens", "masks": [{"position", "predictions":
    [{"token", "probability"}, ...]}]}`` (probabilities of the softmax over the whole vocabulary).
    """
    if top_k < 1:
        raise OpenBertError(f"--top_k must be at least 1, got {top_k}")
    features = [make_feature(t, i, tokenizer, max_seq_length) for i, t in enumerate(texts)]
    masks = predict_masks(model, tokenizer, features, top_k, batch_size, device, precision)
    return [{"text": t, "tokens": f.tokens, "masks": m} for t, f, m in zip(texts, features, masks)]

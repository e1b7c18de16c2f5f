"""One table between torch and TF tensor names, used in both directions.

Inside openbert a tensor has its *canonical* name: the torch name of a head model
(``bert.encoder.layer.0.attention.self.query.weight``, ``cls.predictions.bias``,
``classifier.weight``), i.e. HF's head layout. A bare :class:`~openbert.model.bert.BertModel` and HF
base-model files drop the ``bert.`` prefix; :func:`canonical_name` puts it back. :data:`NAME_RULES`
maps canonical names to the original TF names and back (kernels ``[in, out]`` in TF are
transposed; embeddings and ``output_weights`` are not).
"""
from __future__ import annotations

import re

import torch

from ..errors import OpenBertError

ENCODER_PREFIX = "bert."
_BASE_PARTS = ("embeddings.", "encoder.", "pooler.")
# tensors in HF files that are not parameters of the original model
IGNORED = re.compile(r"(^|\.)position_ids$|^cls\.predictions\.decoder\.(weight|bias)$")
TIED_DECODER = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")

# Head layers the original stores as ``output_weights`` [out, in] (not transposed) and
# ``output_bias``: torch module -> TF scope (the classifier has none).
OUTPUT_LAYERS = (("cls.seq_relationship", "cls/seq_relationship/"), ("qa_outputs", "cls/squad/"),
                 ("classifier", ""))

# (canonical torch name, TF name, transpose). "{p}" stands for a path: dots in torch, slashes in
# TF, "layer.N" <-> "layer_N". The first matching rule wins, in either direction.
NAME_RULES: tuple[tuple[str, str, bool], ...] = (
    ("bert.embeddings.{p}_embeddings.weight", "bert/embeddings/{p}_embeddings", False),
    ("{p}.LayerNorm.weight", "{p}/LayerNorm/gamma", False),
    ("{p}.LayerNorm.bias", "{p}/LayerNorm/beta", False),
    ("cls.predictions.bias", "cls/predictions/output_bias", False),
    *((f"{module}.{leaf}", f"{scope}output_{tf_leaf}", False) for module, scope in OUTPUT_LAYERS
      for leaf, tf_leaf in (("weight", "weights"), ("bias", "bias"))),
    ("{p}.weight", "{p}/kernel", True),
    ("{p}.bias", "{p}/bias", False),
)


def _pattern(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(re.escape("{p}"), "(.+)") + "$")


_TORCH_PATTERNS = [(_pattern(t), f, tr) for t, f, tr in NAME_RULES]
_TF_PATTERNS = [(_pattern(f), t, tr) for t, f, tr in NAME_RULES]


def _path_to_tf(p: str) -> str:
    return re.sub(r"(^|/)layer/(\d+)(?=/|$)", r"\1layer_\2", p.replace(".", "/"))


def _path_to_torch(p: str) -> str:
    return re.sub(r"(^|\.)layer_(\d+)(?=\.|$)", r"\1layer.\2", p.replace("/", "."))


def tf_name(canonical: str) -> tuple[str, bool] | None:
    """Canonical torch name -> (TF name, transpose?) or None when it has no TF counterpart."""
    for pat, tf_template, transpose in _TORCH_PATTERNS:
        m = pat.match(canonical)
        if m:
            return (tf_template.replace("{p}", _path_to_tf(m.group(1))) if m.groups() else tf_template,
                    transpose)
    return None


def torch_name(tf: str) -> tuple[str, bool] | None:
    """TF name -> (canonical torch name, transpose?) or None when it is not a BERT tensor."""
    for pat, torch_template, transpose in _TF_PATTERNS:
        m = pat.match(tf)
        if m:
            return (torch_template.replace("{p}", _path_to_torch(m.group(1))) if m.groups()
                    else torch_template, transpose)
    return None


def canonical_name(name: str) -> str:
    """HF base-model names (``embeddings.*``, ``encoder.*``, ``pooler.*``) get the ``bert.`` prefix."""
    return ENCODER_PREFIX + name if name.startswith(_BASE_PARTS) else name


def tf_to_canonical(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """{TF name: tensor} -> ({canonical name: tensor (kernels transposed)}, [TF names not mapped])."""
    out, unmapped = {}, []
    for name, t in tensors.items():
        m = torch_name(name)
        if m is None:
            unmapped.append(name)
            continue
        canon, transpose = m
        out[canon] = t.t().contiguous() if transpose else t
    return out, unmapped


def canonical_to_tf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{canonical name: tensor} -> {TF name: tensor}; tied/ignored HF tensors are dropped."""
    out = {}
    for name, t in state.items():
        if IGNORED.search(name):
            continue
        m = tf_name(name)
        if m is None:
            raise OpenBertError(f"tensor {name!r} has no name in the original TF layout")
        tf, transpose = m
        out[tf] = t.t().contiguous() if transpose else t.contiguous()
    return out


def canonical_state(model) -> dict[str, torch.Tensor]:
    """The model's tensors under canonical names (``bert.`` prefix also for a bare BertModel)."""
    return {canonical_name(k): v for k, v in model.state_dict().items()}

"""BertConfig: the original ``bert_config.json``, plus HF's ``config.json`` in and out.

The original file is read and written exactly: keys sorted, 2-space indent, trailing newline, unknown
keys kept. The GELU form is explicit in :attr:`BertConfig.gelu_form`: ``"tanh"`` (the original
release's approximation, the default for ``bert_config.json``) or ``"erf"`` (what HF's ``"gelu"``
means). A ``bert_config.json`` only carries a ``gelu_form`` key when it is not the default.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field, fields

from .errors import OpenBertError
from .io.fileio import atomic_write_text as _atomic_write_text

ACTIVATIONS = ("gelu", "relu", "tanh", "linear")
# HF activation name -> (hidden_act, gelu_form)
_HF_ACT = {
    "gelu": ("gelu", "erf"),
    "gelu_new": ("gelu", "tanh"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "gelu_fast": ("gelu", "tanh"),
    "relu": ("relu", "tanh"),
    "tanh": ("tanh", "tanh"),
    "linear": ("linear", "tanh"),
}
# keys of HF's config.json that are HF bookkeeping, not model facts
_HF_ONLY = {"architectures", "model_type", "transformers_version", "layer_norm_eps", "pad_token_id",
            "position_embedding_type", "use_cache", "classifier_dropout", "torch_dtype", "dtype",
            "gradient_checkpointing", "id2label", "label2id", "problem_type", "hidden_act"}


@dataclass
class BertConfig:
    """Hyper-parameters of a BERT encoder (docs/faithfulness.md, "Model")."""

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 16
    initializer_range: float = 0.02
    gelu_form: str = "tanh"
    layer_norm_eps: float = 1e-12
    extra: dict = field(default_factory=dict)  # unknown keys, kept for round trips

    def __post_init__(self):
        self._check_types()
        if self.hidden_act not in ACTIVATIONS:
            raise OpenBertError(f"unknown hidden_act {self.hidden_act!r}: use one of {', '.join(ACTIVATIONS)}")
        if self.gelu_form not in ("tanh", "erf"):
            raise OpenBertError(f"gelu_form must be 'tanh' or 'erf', got {self.gelu_form!r}")
        if self.hidden_size % self.num_attention_heads:
            raise OpenBertError(f"hidden_size {self.hidden_size} is not a multiple of "
                                f"num_attention_heads {self.num_attention_heads}")

    _INTS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "max_position_embeddings", "type_vocab_size")
    _FLOATS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
               "layer_norm_eps")

    def _check_types(self) -> None:
        """Each value has its type and range: OpenBertError naming the key, the value and the fix."""
        for key in self._INTS:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise OpenBertError(f"config value {key}={v!r} must be a whole number (e.g. "
                                    f"{getattr(BertConfig, key, 12) if key != 'vocab_size' else 30522})")
            if v < 1:
                raise OpenBertError(f"config value {key}={v} must be at least 1")
        for key in self._FLOATS:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise OpenBertError(f"config value {key}={v!r} must be a number (e.g. "
                                    f"{getattr(BertConfig, key)})")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0 <= getattr(self, key) < 1:
                raise OpenBertError(f"config value {key}={getattr(self, key)} must be in [0, 1)")
        for key in ("hidden_act", "gelu_form"):
            if not isinstance(getattr(self, key), str):
                raise OpenBertError(f"config value {key}={getattr(self, key)!r} must be a string")

    # ---- the original bert_config.json -------------------------------------------------------
    _ORIGINAL_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                      "intermediate_size", "hidden_act", "hidden_dropout_prob",
                      "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
                      "initializer_range")

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        """From the original's dict (``vocab_size`` required; other keys default; unknown kept)."""
        if "vocab_size" not in d:
            raise OpenBertError("config has no 'vocab_size': is this a bert_config.json?")
        known = {f.name for f in fields(cls)} - {"extra"}
        kw = {k: v for k, v in d.items() if k in known}
        extra = {k: copy.deepcopy(v) for k, v in d.items() if k not in known}
        return cls(**kw, extra=extra)

    def to_dict(self) -> dict:
        """The original's dict: the 11 original keys, non-default extras, unknown keys."""
        d = {k: getattr(self, k) for k in self._ORIGINAL_KEYS}
        if self.gelu_form != "tanh":
            d["gelu_form"] = self.gelu_form
        if self.layer_norm_eps != 1e-12:
            d["layer_norm_eps"] = self.layer_norm_eps
        d.update(copy.deepcopy(self.extra))
        return d

    def to_json_string(self) -> str:
        """Sorted keys, 2-space indent, trailing newline, exactly as the original writes it."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "BertConfig":
        """Read a ``bert_config.json`` (original) or a HF ``config.json`` (detected by its keys)."""
        d = _read_json(path)
        try:
            if _looks_like_hf(d):
                return cls.from_hf_dict(d)
            return cls.from_dict(d)
        except OpenBertError as e:
            raise OpenBertError(f"{os.fspath(path)}: {e}") from None

    def to_json_file(self, path: str | os.PathLike) -> None:
        _atomic_write_text(path, self.to_json_string())

    # ---- HF config.json ----------------------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict) -> "BertConfig":
        """From HF's config.json: ``"gelu"`` there is the erf form, ``"gelu_new"`` the tanh form."""
        act = d.get("hidden_act", "gelu")
        if not isinstance(act, str) or act not in _HF_ACT:
            raise OpenBertError(f"unsupported hidden_act {act!r} in HF config")
        hidden_act, gelu_form = _HF_ACT[act]
        if d.get("gelu_form") in ("tanh", "erf"):
            gelu_form = d["gelu_form"]
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise OpenBertError(f"position_embedding_type {d['position_embedding_type']!r} is not BERT's "
                                "absolute positions; openbert cannot load this model")
        known = set(cls._ORIGINAL_KEYS)
        kw = {k: d[k] for k in known if k in d}
        kw.update(hidden_act=hidden_act, gelu_form=gelu_form,
                  layer_norm_eps=d.get("layer_norm_eps", 1e-12))
        extra = {k: copy.deepcopy(v) for k, v in d.items()
                 if k not in known and k not in _HF_ONLY and k != "gelu_form"}
        for k in ("id2label", "label2id"):
            if k in d:
                extra[k] = copy.deepcopy(d[k])
        return cls(**kw, extra=extra)

    def to_hf_dict(self, architecture: str | None = None, num_labels: int | None = None) -> dict:
        """HF's config.json for this model (``model_type`` bert); ``num_labels`` writes HF's
        ``id2label``/``label2id`` (how transformers sizes a classifier) unless the config has them."""
        if self.hidden_act == "gelu":
            act = "gelu" if self.gelu_form == "erf" else "gelu_new"
        else:
            act = self.hidden_act
        d = {k: getattr(self, k) for k in self._ORIGINAL_KEYS}
        d.update(hidden_act=act, layer_norm_eps=self.layer_norm_eps, model_type="bert",
                 pad_token_id=0, position_embedding_type="absolute")
        if architecture:
            d["architectures"] = [architecture]
        if num_labels is not None:
            d["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
            d["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
        d.update(copy.deepcopy(self.extra))
        return d

    def to_hf_json_file(self, path: str | os.PathLike, architecture: str | None = None,
                        num_labels: int | None = None) -> None:
        _atomic_write_text(path, json.dumps(self.to_hf_dict(architecture, num_labels), indent=2,
                                            sort_keys=True) + "\n")

    # ---- conveniences ------------------------------------------------------------------------
    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def replace(self, **changes) -> "BertConfig":
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        d.update(changes)
        return BertConfig(**d)


def _looks_like_hf(d: dict) -> bool:
    return "model_type" in d or "architectures" in d or "transformers_version" in d


def _read_json(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except FileNotFoundError:
        raise OpenBertError(f"config file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OpenBertError(f"{path} is not valid JSON ({e}); pass a bert_config.json or config.json") from None
    if not isinstance(d, dict):
        raise OpenBertError(f"{path} does not hold a JSON object; pass a bert_config.json or config.json")
    return d

"""The BERT encoder and its heads, in the style of the original modeling.py; the behaviour is the
contract of docs/faithfulness.md, "Model".

Each module owns its forward and reads like the math (:class:`BertLayer` composes attention,
intermediate and output). State-dict names follow the de-facto torch convention
(``bert.encoder.layer.N.attention.self.query.weight``); :mod:`openbert.checkpoints.names` maps them
1:1 to the original TF names. query/key/value are held as one fused dense layer (see
:class:`BertSelfAttention`) whose state dict keeps the three names.

Shapes: B = batch, S = sequence length, H = hidden size, N = heads, D = H / N, P = masked positions,
T = real (non-padding) tokens in the batch.

Padding waste: when a batch has padding, the encoder works on the T real tokens only ("unpadded"):
every dense layer, LayerNorm and GELU runs on [T, H]; only attention sees the padded [B, N, S, D]
layout (through ``scaled_dot_product_attention`` with the original -10000 key mask). Outputs at
padding positions are then zero instead of the original's meaningless values; every real position is
the same as the padded computation. On the CPU at inference the T rows are followed by copies of
the first up to a :func:`bucketed` count, so the matrix products see few distinct shapes (their
outputs are dropped), and attention runs at :func:`attention_length` S, in whole blocks of 16.
``BertModel.unpad = False`` restores the fully padded path.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import BertConfig
from ..errors import OpenBertError
from .dense import Dense, linear

logger = logging.getLogger(__name__)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The original release's GELU: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))."""
    return F.gelu(x, approximate="tanh")


def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    """The exact GELU, x * Phi(x) (what HF configs call "gelu")."""
    return F.gelu(x)


def get_activation(config: BertConfig):
    if config.hidden_act == "gelu":
        return gelu_tanh if config.gelu_form == "tanh" else gelu_erf
    return {"relu": F.relu, "tanh": torch.tanh, "linear": lambda x: x}[config.hidden_act]


def truncated_normal_(t: torch.Tensor, std: float) -> torch.Tensor:
    """Fill ``t`` from N(0, std^2) with values beyond 2 std redrawn (TF's truncated_normal)."""
    if t.is_meta:
        return t
    with torch.no_grad():
        flat = t.view(-1)
        flat.normal_(0.0, std)
        idx = torch.nonzero(flat.abs() > 2 * std).squeeze(1)  # ~4.6% of the values
        vals = flat[idx]
        while True:
            bad = vals.abs() > 2 * std
            if not bool(bad.any()):
                break
            vals[bad] = torch.empty(int(bad.sum()), dtype=t.dtype, device=t.device).normal_(0.0, std)
        flat[idx] = vals
    return t


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
def bucketed(t: int) -> int:
    """``t`` rounded up to one of 16 sizes per power of two (at least 8): the row count the
    encoder's matrix products see at inference. oneDNN builds a kernel for each new row count
    (~7 ms each for bf16), so unrounded counts that change with every batch of new text cost more
    than the products; rounded, they repeat, for at most 1/16 more rows."""
    step = max(8, 1 << max(0, t.bit_length() - 5))
    return -(-t // step) * step


def attention_length(s: int) -> int:
    """The sequence length attention runs at on the CPU at inference: ``s`` rounded up to a
    multiple of 16, unless it is at most 3 past one (and over 16). torch's CPU flash attention
    works whole blocks of 16 fast and a partial block slowly (measured, 32 x 12 heads of 32:
    S = 28 1.12 ms, S = 32 0.52 ms; S = 120 6.0 ms, S = 128 4.0 ms; S = 17 0.40 ms, S = 32 0.51 ms)."""
    tail = s % 16
    return s if tail == 0 or (s > 16 and tail < 4) else s + 16 - tail


@dataclass
class _Unpadding:
    """Where the T real tokens of a [B, S] batch live, and how attention sees them.

    ``indices`` [T]: the real tokens' positions in the flattened B*S rows; ``gather`` [R]:
    ``indices`` followed by R - T copies of the first one (R = T, or :func:`bucketed` T at
    inference): the encoder works on [R, H], whose last rows :meth:`pad` drops. Attention runs on
    the padded layout [B, S', ...] (S' = S, or :func:`attention_length` S on the CPU at
    inference), whose key mask is ``attention_mask`` [B, S']; ``rows`` [B*S']: the row each of its
    positions reads (its own; padding: the last real token before it, or the first token);
    ``attention_gather`` [R]: the rows of that layout that come back."""

    indices: torch.Tensor  # [T] long
    input_mask: torch.Tensor  # [B, S]: the batch's sizes (read from tensors: symbolic under torch.compile)
    gather: torch.Tensor  # [R] long
    attention_mask: torch.Tensor  # [B, S']
    rows: torch.Tensor  # [B*S'] long
    attention_gather: torch.Tensor  # [R] long

    @property
    def batch(self) -> int:
        return self.input_mask.shape[0]

    @property
    def seq_len(self) -> int:
        return self.input_mask.shape[1]

    @classmethod
    def of(cls, input_mask: torch.Tensor, bucket: bool = False) -> "_Unpadding":
        """``bucket``: inference on the CPU (rounded row count and attention length)."""
        indices = torch.nonzero(input_mask.reshape(-1)).squeeze(1)
        extra = bucketed(len(indices)) - len(indices) if bucket else 0
        seq_len = input_mask.shape[1]
        attention_mask = input_mask
        if bucket and attention_length(seq_len) != seq_len:
            attention_mask = F.pad(input_mask, (0, attention_length(seq_len) - seq_len))
        flat = attention_mask.reshape(-1)
        rows = (flat.long().cumsum(0) - 1).clamp_min(0)
        attention_indices = indices if attention_mask is input_mask else torch.nonzero(flat).squeeze(1)

        def with_extra(ix):  # a new tensor even when none is added: torch.compile guards on aliasing
            return torch.cat([ix, ix[:1].expand(extra)]) if bucket else ix

        return cls(indices, input_mask, with_extra(indices), attention_mask, rows,
                   with_extra(attention_indices))

    def for_attention(self, x: torch.Tensor) -> torch.Tensor:
        """[R, ...] -> [B, S', ...] with a copy of a real row at each padding position: one gather
        instead of zero-fill plus scatter. Attention gives the same result as with zeros there:
        padding keys get the -10000 bias (their weights underflow to exactly 0 either way) and
        padding queries are dropped by :meth:`from_attention`."""
        return x.index_select(0, self.rows).view(tuple(self.attention_mask.shape) + tuple(x.shape[1:]))

    def from_attention(self, x: torch.Tensor) -> torch.Tensor:
        """[B, S', ...] -> [R, ...]."""
        return _rows(x, self.attention_gather)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """[R, ...] -> [B, S, ...] with zeros at padding."""
        out = x.new_zeros((self.batch * self.seq_len,) + tuple(x.shape[1:]))
        out.index_copy_(0, self.indices, x[:len(self.indices)])  # in place: no second [B*S, ...] buffer
        return out.view((self.batch, self.seq_len) + tuple(x.shape[1:]))

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """[B, S, ...] -> [R, ...]."""
        return _rows(x, self.gather)


def _rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[B, S, ...] -> [len(index), ...]: rows of the flattened B*S."""
    return x.reshape((x.shape[0] * x.shape[1],) + tuple(x.shape[2:])).index_select(0, index)


@dataclass
class LossTerm:
    """One term of a model's loss: ``value`` = (sum of the per-unit losses) / (``weight`` + ``eps``),
    a mean over ``weight`` units (examples, labelled tokens, masked-LM weights)."""

    value: torch.Tensor  # scalar
    weight: torch.Tensor  # scalar, float32
    eps: float = 0.0


def num_examples(labels: torch.Tensor) -> torch.Tensor:
    """The weight of a per-example mean loss: the batch size, as a float32 scalar."""
    return torch.tensor(float(labels.shape[0]), device=labels.device)


@dataclass
class BertOutput:
    """What every model returns. Fields a model does not compute are None.

    ``all_encoder_layers`` ([B, S, H] per layer, last = ``sequence_output``) is computed on first
    access, so heads that do not read it pay nothing for it.
    """

    embedding_output: torch.Tensor | None = None  # [B, S, H]
    sequence_output: torch.Tensor | None = None  # [B, S, H]
    pooled_output: torch.Tensor | None = None  # [B, H]
    masked_lm_logits: torch.Tensor | None = None  # [B, P, V]
    next_sentence_logits: torch.Tensor | None = None  # [B, 2]
    logits: torch.Tensor | None = None  # task head: [B, C], [B, S, C], [B, S, 2] (QA) or [B, choices]
    start_logits: torch.Tensor | None = None  # [B, S] (QA)
    end_logits: torch.Tensor | None = None  # [B, S] (QA)
    loss: torch.Tensor | None = None  # scalar, when labels were given
    masked_lm_loss: torch.Tensor | None = None
    next_sentence_loss: torch.Tensor | None = None
    loss_terms: dict[str, LossTerm] = field(default_factory=dict)  # loss = the sum of their values
    _layers: list = field(default_factory=list, repr=False)
    _unpadding: _Unpadding | None = field(default=None, repr=False)

    def add_loss(self, name: str, value: torch.Tensor, weight: torch.Tensor, eps: float = 0.0):
        """Record the loss term ``name`` (see :class:`LossTerm`) and add it to ``loss``."""
        self.loss_terms[name] = LossTerm(value, weight, eps)
        self.loss = value if self.loss is None else self.loss + value
        return value

    @functools.cached_property
    def all_encoder_layers(self) -> Sequence[torch.Tensor]:
        if self._unpadding is None:
            return list(self._layers)
        return _PaddedLayers(self._layers, self._unpadding, self.sequence_output)

    def token_rows(self, layer: int, input_mask: torch.Tensor) -> torch.Tensor:
        """[T, H]: encoder layer ``layer``'s vectors of the real tokens (``input_mask`` [B, S]
        = 1), batch-major; taken as they are when the encoder ran unpadded (no padding back)."""
        if self._unpadding is not None:
            return self._layers[layer][:len(self._unpadding.indices)]
        return self._layers[layer][input_mask.bool()]


class _PaddedLayers(Sequence):
    """The encoder layers [B, S, H] of an unpadded run, each padded back when first read (a
    caller that reads one layer pays for one); the last one is ``sequence_output``."""

    def __init__(self, layers: list[torch.Tensor], unpadding: _Unpadding, last: torch.Tensor):
        self._rows, self._unpadding = layers, unpadding
        self._padded: dict[int, torch.Tensor] = {len(layers) - 1: last}

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        j = range(len(self))[i]  # IndexError past either end, as a list
        if j not in self._padded:
            self._padded[j] = self._unpadding.pad(self._rows[j])
        return self._padded[j]


# ---------------------------------------------------------------------------------------------
# the encoder
# ---------------------------------------------------------------------------------------------
class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` that also normalises bf16/fp16 activations while its own weight and bias
    stay float32 (the masked-LM transform of a model cast with ``to_inference_dtype``; the
    encoder's LayerNorms see its float32 residual stream): statistics in float32, output in the
    input's dtype. CPU kernels take the mixed dtypes as they are; CUDA's want one dtype, so there
    the two [H] vectors are cast for the call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype or x.is_cpu:
            return super().forward(x)
        return F.layer_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)


class BertEmbeddings(nn.Module):
    """word + token type + position (first S rows) -> LayerNorm -> dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
        seq_len = input_ids.shape[1]
        x = (self.word_embeddings(input_ids) + self.token_type_embeddings(segment_ids)
             + self.position_embeddings.weight[:seq_len].unsqueeze(0))
        return self.dropout(self.LayerNorm(x))  # [B, S, H]


class BertSelfAttention(nn.Module):
    """Multi-head self-attention: softmax(q k^T / sqrt(D) + bias) v per head, dropout on the
    probabilities; x [B, S, H] or [T, H] -> context, same shape.

    query, key and value are one fused dense layer ``qkv`` (weight [3H, H]: query rows, then key,
    then value), so the three projections are one matrix product. Its state dict still holds
    ``query.weight``, ``query.bias``, ``key.*`` and ``value.*`` (the original and HF names):
    ``state_dict()`` splits ``qkv`` and ``load_state_dict`` joins the three again.
    """

    _PARTS = ("query", "key", "value")

    def __init__(self, config: BertConfig):
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.qkv = Dense(h, 3 * h)
        self.dropout_p = config.attention_probs_dropout_prob
        self.register_state_dict_post_hook(_split_qkv)
        self.register_load_state_dict_pre_hook(_join_qkv)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None,
                unpadding: _Unpadding | None = None) -> torch.Tensor:
        qkv = self.qkv(x)  # [B, S, 3H] or [T, 3H]
        if unpadding is not None:
            qkv = unpadding.for_attention(qkv)  # [B, S, 3H]
        bsz, seq_len, _ = qkv.shape
        # [B, S, 3, N, D] -> 3 x [B, N, S, D]
        q, k, v = qkv.view(bsz, seq_len, 3, self.num_heads, self.head_size).permute(2, 0, 3, 1, 4).unbind(0)
        mask = None if attn_bias is None else attn_bias.to(q.dtype)  # a no-op unless under autocast
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout_p if self.training else 0.0)
        ctx = ctx.transpose(1, 2).reshape(bsz, seq_len, self.num_heads * self.head_size)  # [B, S, H]
        return ctx if unpadding is None else unpadding.from_attention(ctx)  # [R, H] when unpadded


def _split_qkv(module: BertSelfAttention, state: dict, prefix: str, local_metadata) -> None:
    """state_dict hook: ``qkv.weight`` / ``qkv.bias`` -> ``query.*``, ``key.*``, ``value.*``."""
    weight, bias = state.pop(prefix + "qkv.weight"), state.pop(prefix + "qkv.bias")
    for part, w, b in zip(module._PARTS, weight.chunk(3), bias.chunk(3)):
        state[f"{prefix}{part}.weight"], state[f"{prefix}{part}.bias"] = w, b


def _join_qkv(module: BertSelfAttention, state: dict, prefix: str, *args) -> None:
    """load_state_dict hook: ``query.*``, ``key.*``, ``value.*`` -> ``qkv.weight`` / ``qkv.bias``
    (when all three are there; otherwise they are left to be reported as unexpected)."""
    for leaf in ("weight", "bias"):
        names = [f"{prefix}{part}.{leaf}" for part in module._PARTS]
        if all(n in state for n in names):
            state[f"{prefix}qkv.{leaf}"] = torch.cat([state.pop(n) for n in names], 0)


class BertSelfOutput(nn.Module):
    """a = LayerNorm(x + dropout(dense(context))): back to the hidden size, the residual added.
    ``in_features`` is the width of ``context`` (the hidden size after attention)."""

    def __init__(self, config: BertConfig, in_features: int | None = None):
        super().__init__()
        self.dense = Dense(in_features or config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.LayerNorm(x + self.dropout(self.dense(context)))
        return self.LayerNorm(self.dense.plus(context, x))  # dropout is the identity


class BertAttention(nn.Module):
    """Self-attention and its output projection with the residual: x -> a."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None,
                unpadding: _Unpadding | None = None) -> torch.Tensor:
        return self.output(self.self(x, attn_bias, unpadding), x)


class BertIntermediate(nn.Module):
    """act(dense(a)) to the intermediate size; a GELU is fused into the product."""

    def __init__(self, config: BertConfig):
        super().__init__()
        gelu = config.gelu_form if config.hidden_act == "gelu" else None
        self.dense = Dense(config.hidden_size, config.intermediate_size, gelu=gelu)
        self.act = nn.Identity() if gelu else get_activation(config)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(a))


class BertOutputLayer(BertSelfOutput):
    """h = LayerNorm(a + dropout(dense(intermediate))): the same step after the feed-forward layer."""

    def __init__(self, config: BertConfig):
        super().__init__(config, config.intermediate_size)


class BertLayer(nn.Module):
    """One post-LN Transformer layer.

    a = LN(x + drop(dense(attn(x)))); h = LN(a + drop(dense(act(dense(a))))).

    ``x`` is [B, S, H] (padded) or [T, H] (unpadded, with ``unpadding`` telling where the rows go).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutputLayer(config)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None,
                unpadding: _Unpadding | None = None) -> torch.Tensor:
        a = self.attention(x, attn_bias, unpadding)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the dense layers (float32 unless cast for inference)."""
        return self.layer[0].attention.self.qkv.weight.dtype

    def forward(self, x, attn_bias, unpadding=None) -> list[torch.Tensor]:
        layers = []
        for layer in self.layer:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, attn_bias, unpadding, use_reentrant=False)
            else:
                x = layer(x, attn_bias, unpadding)
            layers.append(x)
        return layers


class BertPooler(nn.Module):
    """tanh(dense(h[:, 0]))."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = Dense(config.hidden_size, config.hidden_size)

    def forward(self, first_token: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(first_token))


class BertPreTrainedModel(nn.Module):
    """Common base: initialisation (docs/faithfulness.md), ``from_pretrained`` / ``save_pretrained``.

    Each parameter is initialised once: :class:`BertModel` initialises the encoder when it is
    built, and a model with a head initialises only its head (:meth:`init_head`).
    """

    hf_architecture: str = "BertModel"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config

    def init_weights(self, only: set[str] | None = None) -> None:
        """Truncated normal (2 std, stddev initializer_range); biases 0; LayerNorm 1/0.

        ``only``: parameter names (as in ``named_parameters``) to initialise; default all.
        """
        std = self.config.initializer_range
        with torch.no_grad():
            for name, p in self.named_parameters():
                if only is not None and name not in only:
                    continue
                module = self.get_submodule(name.rpartition(".")[0]) if "." in name else self
                leaf = name.rpartition(".")[2]
                if isinstance(module, nn.LayerNorm):
                    p.fill_(1.0 if leaf == "weight" else 0.0)
                elif leaf == "weight" and isinstance(module, (nn.Linear, nn.Embedding)):
                    truncated_normal_(p, std)
                else:  # Linear biases, the LM output bias
                    p.zero_()

    def init_head(self) -> None:
        """Initialise the parameters outside the encoder ``bert`` (which initialised itself)."""
        self.init_weights(only={n for n, _ in self.named_parameters() if not n.startswith("bert.")})

    def loss_weights(self, **batch) -> dict[str, torch.Tensor]:
        """{term name: weight} of the loss terms that ``forward(**batch)`` returns, from the labels
        alone (no forward). A trainer sums them over every micro-batch of an optimizer step before
        the first backward, so that each term is normalised by the whole batch's weight."""
        return {}

    def to_inference_dtype(self, dtype: torch.dtype = torch.bfloat16):
        """Cast the dense layers' weights and biases to ``dtype`` (once, in place) for inference.

        Embedding tables and LayerNorm parameters stay float32, and so does the residual stream:
        the embeddings and every layer's output (the residual sum and its LayerNorm) are float32,
        cast to ``dtype`` only where they enter a dense layer; products accumulate in float32 and
        are rounded to ``dtype`` once, as is attention's input (its softmax accumulates in float32).
        Returns the model.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.to(dtype)
        return self

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        for m in self.modules():
            if isinstance(m, BertEncoder):
                m.gradient_checkpointing = enabled

    # Checkpoint files are read and written by openbert.checkpoints, which sits above the model
    # and installs its two functions here when imported (``import openbert`` imports it).
    _load_pretrained = None
    _save_pretrained = None

    @staticmethod
    def install_checkpoint_io(load, save) -> None:
        """Set what ``from_pretrained`` / ``save_pretrained`` call (done by openbert.checkpoints)."""
        BertPreTrainedModel._load_pretrained = staticmethod(load)
        BertPreTrainedModel._save_pretrained = staticmethod(save)

    @classmethod
    def from_pretrained(cls, path, config: BertConfig | None = None, **kwargs):
        """Load from a TF checkpoint, a HF folder or an openbert folder
        (:func:`openbert.checkpoints.pretrained.load_pretrained`)."""
        return cls._load_pretrained(cls, path, config=config, **kwargs)

    def save_pretrained(self, directory, vocab_file=None, overwrite: bool = False) -> None:
        """Write ``config.json`` + ``bert_config.json`` + ``model.safetensors`` (HF-loadable), and
        ``vocab.txt`` copied from ``vocab_file`` when given, swapped in as one complete folder; a
        same-named file openbert did not write is replaced only with ``overwrite``."""
        self._save_pretrained(self, directory, vocab_file=vocab_file, overwrite=overwrite)


def _attention_bias(input_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, S] 1/0 mask -> [B, 1, 1, S] additive bias, (1 - mask) * -10000 on keys only."""
    return ((1.0 - input_mask[:, None, None, :].to(torch.float32)) * -10000.0).to(dtype)


@torch.compiler.disable  # depends on the mask's values: runs eagerly under torch.compile
def _padding(input_mask: torch.Tensor, unpad: bool) -> tuple[bool, _Unpadding | None]:
    """[B, S] mask -> (no padding at all?, where the real tokens are when the encoder unpads).
    On the CPU at inference a batch without padding is unpadded too when attention would run
    faster at a longer length (:func:`attention_length`)."""
    bucket = input_mask.is_cpu and not torch.is_grad_enabled()
    seq_len = input_mask.shape[1]
    longer_attention = unpad and bucket and attention_length(seq_len) != seq_len
    if bool(input_mask.all()) and not longer_attention:
        return True, None
    if not unpad:
        return False, None
    return False, _Unpadding.of(input_mask, bucket=bucket)


class BertModel(BertPreTrainedModel):
    """The encoder: embeddings, ``num_hidden_layers`` layers, pooler.

    forward(input_ids [B, S], input_mask [B, S] (1 = real, default all 1), segment_ids [B, S]
    (default 0)) -> BertOutput with embedding_output, all_encoder_layers, sequence_output,
    pooled_output.
    """

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.unpad = True
        self.init_weights()

    def forward(self, input_ids, input_mask=None, segment_ids=None) -> BertOutput:
        if input_mask is None:
            input_mask = torch.ones_like(input_ids)
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)
        seq_len = input_ids.shape[1]
        if seq_len > self.config.max_position_embeddings:
            raise OpenBertError(f"sequence length {seq_len} > max_position_embeddings "
                                f"{self.config.max_position_embeddings} of this model; use a "
                                f"--max_seq_length of at most {self.config.max_position_embeddings}")
        x = emb = self.embeddings(input_ids, segment_ids)  # [B, S, H] float32
        # torch.export (ONNX) traces shapes, not values: the padded path, always masked
        full, unpadding = (False, None) if torch.compiler.is_exporting() else _padding(input_mask, self.unpad)
        # no padding: no mask at all (adding zeros changes nothing; SDPA's unmasked kernels are faster)
        keys = input_mask if unpadding is None else unpadding.attention_mask
        attn_bias = None if full else _attention_bias(keys, self.encoder.dtype)
        if unpadding is not None:
            x = unpadding.unpad(x)  # [R, H]: the T real tokens (+ rounding rows)
        layers = self.encoder(x, attn_bias, unpadding)
        sequence_output = unpadding.pad(layers[-1]) if unpadding is not None else layers[-1]
        pooled = self.pooler(sequence_output[:, 0]) if self.pooler is not None else None
        return BertOutput(embedding_output=emb, sequence_output=sequence_output, pooled_output=pooled,
                          _layers=layers, _unpadding=unpadding)


# ---------------------------------------------------------------------------------------------
# heads
# ---------------------------------------------------------------------------------------------
class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = Dense(config.hidden_size, config.hidden_size)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.act = get_activation(config)

    def forward(self, x):
        return self.LayerNorm(self.act(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    """dense(H, act) -> LayerNorm -> x @ word_embeddings^T + bias (decoder tied to the input)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x, word_embeddings: torch.Tensor):
        h = self.transform(x).to(word_embeddings.dtype)  # float32 logits also for a cast model
        return linear(h, word_embeddings, self.bias)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = Dense(config.hidden_size, 2)


def gather_positions(sequence: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """sequence [B, S, H], positions [B, P] -> [B, P, H] (the original gather_indexes)."""
    idx = positions.long().unsqueeze(-1).expand(-1, -1, sequence.shape[-1])
    return sequence.gather(1, idx)


def masked_lm_loss(logits, masked_lm_ids, masked_lm_weights) -> torch.Tensor:
    """sum(w * nll) / (sum(w) + 1e-5) over the P gathered positions (logits [B, P, V])."""
    logp = F.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(-1, masked_lm_ids.long().unsqueeze(-1)).squeeze(-1)  # [B, P]
    w = masked_lm_weights.float()
    return (w * nll).sum() / (w.sum() + 1e-5)


class BertForPreTraining(BertPreTrainedModel):
    """Masked LM (on gathered positions only) + next sentence.

    forward(input_ids, input_mask, segment_ids, masked_lm_positions [B, P],
    masked_lm_ids [B, P], masked_lm_weights [B, P], next_sentence_labels [B]); the labels are
    optional and give ``loss`` = masked LM loss + next sentence loss. Without
    ``masked_lm_positions`` the LM head runs on every position.
    """

    hf_architecture = "BertForPreTraining"

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.init_head()

    def forward(self, input_ids, input_mask=None, segment_ids=None, masked_lm_positions=None,
                masked_lm_ids=None, masked_lm_weights=None, next_sentence_labels=None) -> BertOutput:
        out = self.bert(input_ids, input_mask, segment_ids)
        seq = out.sequence_output
        if masked_lm_positions is not None:
            seq = gather_positions(seq, masked_lm_positions)  # [B, P, H]
        out.masked_lm_logits = self.cls.predictions(seq, self.bert.embeddings.word_embeddings.weight)
        out.next_sentence_logits = self.cls.seq_relationship(out.pooled_output)
        weights = self.loss_weights(masked_lm_ids=masked_lm_ids, masked_lm_weights=masked_lm_weights,
                                    next_sentence_labels=next_sentence_labels)
        if masked_lm_ids is not None:
            if masked_lm_weights is None:
                masked_lm_weights = torch.ones_like(masked_lm_ids, dtype=torch.float32)
            out.masked_lm_loss = out.add_loss(
                "masked_lm", masked_lm_loss(out.masked_lm_logits, masked_lm_ids, masked_lm_weights),
                weights["masked_lm"], eps=1e-5)
        if next_sentence_labels is not None:
            out.next_sentence_loss = out.add_loss(
                "next_sentence", F.cross_entropy(out.next_sentence_logits.float(),
                                                 next_sentence_labels.long().view(-1)),
                weights["next_sentence"])
        return out

    def loss_weights(self, masked_lm_ids=None, masked_lm_weights=None, next_sentence_labels=None,
                     **_) -> dict[str, torch.Tensor]:
        """masked_lm: sum(masked_lm_weights) (all ones by default); next_sentence: examples."""
        weights = {}
        if masked_lm_ids is not None:
            weights["masked_lm"] = (masked_lm_weights.float().sum() if masked_lm_weights is not None
                                    else torch.tensor(float(masked_lm_ids.numel()),
                                                      device=masked_lm_ids.device))
        if next_sentence_labels is not None:
            weights["next_sentence"] = num_examples(next_sentence_labels)
        return weights


class BertForSequenceClassification(BertPreTrainedModel):
    """dropout(pooled) -> Linear(H, num_labels). num_labels == 1 is regression (MSE loss)."""

    hf_architecture = "BertForSequenceClassification"

    def __init__(self, config: BertConfig, num_labels: int = 2):
        super().__init__(config)
        self.num_labels = num_labels
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = Dense(config.hidden_size, num_labels)
        self.init_head()

    def forward(self, input_ids, input_mask=None, segment_ids=None, labels=None) -> BertOutput:
        out = self.bert(input_ids, input_mask, segment_ids)
        out.logits = self.classifier(self.dropout(out.pooled_output))  # [B, num_labels]
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(out.logits.float().squeeze(-1), labels.float().view(-1))
            else:
                loss = F.cross_entropy(out.logits.float(), labels.long().view(-1))
            out.add_loss("classification", loss, num_examples(labels))
        return out

    def loss_weights(self, labels=None, **_) -> dict[str, torch.Tensor]:
        return {} if labels is None else {"classification": num_examples(labels)}


class BertForQuestionAnswering(BertPreTrainedModel):
    """Span head on every token: Linear(H, 2) -> start/end logits; loss (CE(start) + CE(end)) / 2."""

    hf_architecture = "BertForQuestionAnswering"

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = Dense(config.hidden_size, 2)
        self.init_head()

    def forward(self, input_ids, input_mask=None, segment_ids=None, start_positions=None,
                end_positions=None) -> BertOutput:
        out = self.bert(input_ids, input_mask, segment_ids)
        out.logits = self.qa_outputs(out.sequence_output)  # [B, S, 2]
        out.start_logits, out.end_logits = out.logits.float().unbind(-1)
        if start_positions is not None and end_positions is not None:
            out.add_loss("span", (F.cross_entropy(out.start_logits, start_positions.long().view(-1))
                                  + F.cross_entropy(out.end_logits, end_positions.long().view(-1))) / 2,
                         num_examples(start_positions))
        return out

    def loss_weights(self, start_positions=None, end_positions=None, **_) -> dict[str, torch.Tensor]:
        if start_positions is None or end_positions is None:
            return {}
        return {"span": num_examples(start_positions)}


class BertForTokenClassification(BertPreTrainedModel):
    """dropout(sequence) -> Linear(H, num_labels) per token; labels -100 are ignored."""

    hf_architecture = "BertForTokenClassification"

    def __init__(self, config: BertConfig, num_labels: int = 2):
        super().__init__(config)
        self.num_labels = num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = Dense(config.hidden_size, num_labels)
        self.init_head()

    def forward(self, input_ids, input_mask=None, segment_ids=None, labels=None) -> BertOutput:
        out = self.bert(input_ids, input_mask, segment_ids)
        out.logits = self.classifier(self.dropout(out.sequence_output))  # [B, S, C]
        if labels is not None:
            out.add_loss("token_classification",
                         F.cross_entropy(out.logits.float().reshape(-1, self.num_labels),
                                         labels.long().reshape(-1), ignore_index=-100),
                         self.loss_weights(labels=labels)["token_classification"])
        return out

    def loss_weights(self, labels=None, **_) -> dict[str, torch.Tensor]:
        """The labelled tokens (labels other than -100)."""
        return {} if labels is None else {"token_classification": (labels != -100).sum().float()}


class BertForMultipleChoice(BertPreTrainedModel):
    """Inputs [B, C, S]; each choice scored by Linear(H, 1) on its pooled output -> logits [B, C]."""

    hf_architecture = "BertForMultipleChoice"

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = Dense(config.hidden_size, 1)
        self.init_head()

    def forward(self, input_ids, input_mask=None, segment_ids=None, labels=None) -> BertOutput:
        bsz, choices, seq_len = input_ids.shape
        flat = lambda t: None if t is None else t.reshape(bsz * choices, seq_len)  # noqa: E731
        out = self.bert(flat(input_ids), flat(input_mask), flat(segment_ids))
        out.logits = self.classifier(self.dropout(out.pooled_output)).view(bsz, choices)
        if labels is not None:
            out.add_loss("multiple_choice", F.cross_entropy(out.logits.float(), labels.long().view(-1)),
                         num_examples(labels))
        return out

    def loss_weights(self, labels=None, **_) -> dict[str, torch.Tensor]:
        return {} if labels is None else {"multiple_choice": num_examples(labels)}

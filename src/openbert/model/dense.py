"""Dense layers: ``y = act(x @ weight.T + bias)``, through oneDNN on the CPU at inference.

Without autograd (feature extraction, evaluation, prediction), on CPUs with AVX-512, :func:`linear`
sends fp32 products to oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, the kernel torch's
own compiler emits for CPU linears) with a GELU fused into the product; bf16 products of a model
cast with ``to_inference_dtype`` take the same kernel wherever oneDNN runs bf16 natively. Which
of oneDNN and ``F.linear``'s BLAS (MKL in the official builds) is faster for fp32 depends on the
CPU (docs/model.md): oneDNN on AVX-512 CPUs, MKL on AVX2-only ones, so the fp32 oneDNN path is on
by default only where ``torch.backends.cpu.get_cpu_capability()`` reports AVX-512. Everything
else (training, other devices, other dtypes, CPU autocast, code traced by ``torch.compile`` or
``torch.export``, a torch build without oneDNN) goes to ``F.linear``. Results equal
``F.linear``'s up to summation order.

``set_onednn(True / False / None)`` (or the environment variable ``OPENBERT_ONEDNN=1`` / ``0``)
turns the oneDNN path on or off (None: by CPU); :func:`onednn_enabled` says whether it is on.

    linear(x [..., in], weight [out, in], bias [out] | None, gelu=None | "tanh" | "erf")
        -> [..., out]
    Dense(in, out, gelu=None): an nn.Linear (same parameters and names) whose forward is linear;
        weights cast to bf16 / fp16 (``to_inference_dtype``) take float32 inputs cast to their dtype;
        on the oneDNN path it keeps a copy of its weight in oneDNN's blocked layout (``pack``),
        made on first use and again after the weight changes (one more copy of the weights in
        memory, 6-10% faster end to end)
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

_ENV = os.environ.get("OPENBERT_ONEDNN")
_state: dict = {"enabled": None if _ENV is None else _ENV != "0", "works": None, "works_bf16": None}


def set_onednn(enabled: bool | None) -> None:
    """oneDNN for CPU fp32 dense layers at inference: True (where the kernel works), False
    (F.linear), None (the default: on CPUs with AVX-512)."""
    _state["enabled"] = None if enabled is None else bool(enabled)


def _fast_on_this_cpu() -> bool:
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def onednn_enabled(dtype: torch.dtype = torch.float32) -> bool:
    """Whether CPU dense layers of ``dtype`` at inference go through oneDNN in this process:
    fp32 by the CPU (see :func:`set_onednn`); bf16 wherever oneDNN runs it natively (``F.linear``
    reaches oneDNN for bf16 too, through a matmul and a separate GELU), unless switched off."""
    enabled = _state["enabled"]
    if enabled is False:
        return False
    if dtype == torch.float32 and enabled is None and not _fast_on_this_cpu():
        return False
    key = "works" if dtype == torch.float32 else "works_bf16"
    if _state.get(key) is None:
        native = dtype == torch.float32 or torch.ops.mkldnn._is_mkldnn_bf16_supported()
        _state[key] = native and _probe(dtype)
    return _state[key]


def _probe(dtype: torch.dtype = torch.float32) -> bool:
    """oneDNN's linear exists in this build and agrees with F.linear on a small product."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    try:
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(s, generator=g).to(dtype) for s in ((3, 8), (5, 8), (5,)))
        return torch.allclose(_pointwise(x, w, b).float(), F.linear(x, w, b).float(),
                              atol=1e-5 if dtype == torch.float32 else 0.05)
    except (RuntimeError, NotImplementedError):
        return False


def _pointwise(x, w, b, attr: str = "none", algorithm: str = ""):
    return torch.ops.mkldnn._linear_pointwise(x, w, b, attr, [], algorithm)


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _gelu(y: torch.Tensor, form: str, in_place: bool) -> torch.Tensor:
    approximate = "tanh" if form == "tanh" else "none"
    # in place (inference): the product's buffer is not read by anything else, and GELU writing
    # into it measured clearly faster than into a fresh [T, intermediate] buffer
    return torch.ops.aten.gelu_(y, approximate=approximate) if in_place else F.gelu(y, approximate=approximate)


def _traced() -> bool:
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _use_onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if _traced():
        return False  # the compiler picks its own kernels (oneDNN ones included); ONNX has F.linear
    if x.device.type != "cpu" or x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        return False
    if x.dtype not in (torch.float32, torch.bfloat16):
        return False
    if _needs_grad(x, weight, bias):
        return False  # oneDNN's kernel has no autograd formula; for training F.linear measured as fast
    if _cpu_autocast():
        return False
    return onednn_enabled(x.dtype)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           gelu: str | None = None) -> torch.Tensor:
    """``x @ weight.T + bias``, then GELU in the form ``gelu`` ("tanh" or "erf") when given."""
    if _use_onednn(x, weight, bias):
        return _onednn_linear(x, weight, bias, gelu)
    y = F.linear(x, weight, bias)
    if gelu is None:
        return y
    return _gelu(y, gelu, in_place=not (_traced() or _needs_grad(x, weight, bias)))


def _onednn_linear(x, weight, bias, gelu: str | None) -> torch.Tensor:
    """oneDNN's linear; ``weight`` plain [out, in] or :func:`pack`-ed."""
    if gelu is None:
        return _pointwise(x, weight, bias)
    return _pointwise(x, weight, bias, "gelu", "tanh" if gelu == "tanh" else "none")


def pack(weight: torch.Tensor) -> torch.Tensor:
    """[out, in] -> the same matrix in oneDNN's blocked layout (an opaque mkldnn tensor), which
    its linear otherwise reorders into on every call (measured 5-18% of a MiniLM/BERT-Base
    product)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _PACK_ROWS_HINT)


_PACK_ROWS_HINT = 1024  # the typical row count of an inference batch (32 x ~32 tokens)


class Dense(nn.Linear):
    """``nn.Linear`` (parameters ``weight`` [out, in], ``bias`` [out]) computed by :func:`linear`;
    ``gelu`` ("tanh" / "erf") applies that GELU to the output, fused into the product."""

    def __init__(self, in_features: int, out_features: int, gelu: str | None = None):
        super().__init__(in_features, out_features)
        self.gelu = gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.weight.dtype and self.weight.dtype != torch.float32:
            x = x.to(self.weight.dtype)  # cast for inference: the float32 residual stream enters here
        if _use_onednn(x, self.weight, self.bias):
            return _onednn_linear(x, self._packed(), self.bias, self.gelu)
        self.__dict__.pop("_packed_weight", None)  # training or another device: no second copy kept
        return linear(x, self.weight, self.bias, self.gelu)

    def plus(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``self(x) + residual`` (same shape as the output): on the oneDNN path with a residual
        of the product's dtype (a float32 model), one product with the sum fused (oneDNN adds in
        float32 as the separate sum does: the same numbers, one pass over [.., out] fewer)."""
        if (residual.dtype == x.dtype == self.weight.dtype and self.gelu is None
                and _use_onednn(x, self.weight, self.bias) and not _needs_grad(residual)):
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, self._packed(), self.bias, "add")
        return residual + self(x)

    def _packed(self) -> torch.Tensor:
        """:func:`pack` of the current weight, made once and again whenever the weight changes:
        in place (its version counter) or replaced (its storage; the cache holds the packed
        tensor's source, so that address cannot be reused by a new weight meanwhile)."""
        w = self.weight
        cached = self.__dict__.get("_packed_weight")
        if (cached is None or cached[0].data_ptr() != w.data_ptr() or cached[1] != w._version
                or cached[0].dtype != w.dtype):
            cached = self.__dict__["_packed_weight"] = (w.detach(), w._version, pack(w))
        return cached[2]

    def __getstate__(self):
        state = super().__getstate__().copy()
        state.pop("_packed_weight", None)  # a cache (and opaque mkldnn tensors do not pickle)
        return state

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", gelu={self.gelu}" if self.gelu else "")


__all__ = ["Dense", "linear", "onednn_enabled", "set_onednn"]

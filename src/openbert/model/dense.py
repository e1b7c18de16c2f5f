"""Dense layers: ``y = act(x @ weight.T + bias)``, through oneDNN on the CPU at inference.

Without autograd (feature extraction, evaluation, prediction), :func:`linear` sends CPU fp32
products to oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, the kernel torch's own
compiler emits for CPU linears) with a GELU fused into the product; on the CPU this is faster than
``F.linear``'s BLAS path (docs/model.md). Everything else (training, other devices, other dtypes,
CPU autocast, code being traced by ``torch.compile``, a torch build without oneDNN) goes to
``F.linear``. Results equal ``F.linear``'s up to summation order.

``set_onednn(False)`` (or the environment variable ``OPENBERT_ONEDNN=0``) turns the oneDNN path
off; :func:`onednn_enabled` says whether it is on.

    linear(x [..., in], weight [out, in], bias [out] | None, gelu=None | "tanh" | "erf")
        -> [..., out]
    Dense(in, out, gelu=None): an nn.Linear (same parameters and names) whose forward is linear
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

_state: dict = {"enabled": os.environ.get("OPENBERT_ONEDNN", "1") != "0", "works": None}


def set_onednn(enabled: bool) -> None:
    """Use oneDNN for CPU fp32 dense layers at inference (True, the default where it works) or F.linear."""
    _state["enabled"] = bool(enabled)


def onednn_enabled() -> bool:
    """Whether CPU fp32 dense layers at inference go through oneDNN in this process."""
    if not _state["enabled"]:
        return False
    if _state["works"] is None:
        _state["works"] = _probe()
    return _state["works"]


def _probe() -> bool:
    """oneDNN's linear exists in this build and agrees with F.linear on a small product."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    try:
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(s, generator=g) for s in ((3, 8), (5, 8), (5,)))
        return torch.allclose(_pointwise(x, w, b), F.linear(x, w, b), atol=1e-5)
    except (RuntimeError, NotImplementedError):
        return False


def _pointwise(x, w, b, attr: str = "none", algorithm: str = ""):
    return torch.ops.mkldnn._linear_pointwise(x, w, b, attr, [], algorithm)


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _gelu(y: torch.Tensor, form: str) -> torch.Tensor:
    return F.gelu(y, approximate="tanh") if form == "tanh" else F.gelu(y)


def _use_onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if torch.compiler.is_compiling():  # the compiler picks its own kernels (oneDNN ones included)
        return False
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return False  # oneDNN's kernel has no autograd formula; for training F.linear measured as fast
    return not _cpu_autocast() and onednn_enabled()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           gelu: str | None = None) -> torch.Tensor:
    """``x @ weight.T + bias``, then GELU in the form ``gelu`` ("tanh" or "erf") when given."""
    if not _use_onednn(x, weight, bias):
        y = F.linear(x, weight, bias)
        return y if gelu is None else _gelu(y, gelu)
    if gelu is None:
        return _pointwise(x, weight, bias)
    return _pointwise(x, weight, bias, "gelu", "tanh" if gelu == "tanh" else "none")


class Dense(nn.Linear):
    """``nn.Linear`` (parameters ``weight`` [out, in], ``bias`` [out]) computed by :func:`linear`;
    ``gelu`` ("tanh" / "erf") applies that GELU to the output, fused into the product."""

    def __init__(self, in_features: int, out_features: int, gelu: str | None = None):
        super().__init__(in_features, out_features)
        self.gelu = gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, self.gelu)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", gelu={self.gelu}" if self.gelu else "")


__all__ = ["Dense", "linear", "onednn_enabled", "set_onednn"]

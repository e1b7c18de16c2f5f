"""BERT's optimizer and learning-rate schedule (docs/faithfulness.md, "Optimizer"), plus LAMB and
torch AdamW.

- :class:`AdamWeightDecay`: the original ``AdamWeightDecayOptimizer``: Adam without bias
  correction, ``eps`` added outside the square root, decoupled weight decay that skips every
  parameter whose name contains ``LayerNorm``, ``layer_norm`` or ``bias``.
- :class:`LAMB`: layer-wise adaptive moments (You et al. 2019), as NVIDIA's BERT recipe uses it.
- :class:`WarmupLinearDecay`: ``lr = init_lr * step / W`` while ``step < W``, then
  ``init_lr * (1 - min(step, T) / T)``.
- :func:`clip_by_global_norm`: the original ``tf.clip_by_global_norm(grads, 1.0)``.
- :func:`create_optimizer`: all of the above from a model, as the original ``create_optimizer``.

Which step the schedule reads: the original builds the learning rate from ``global_step`` *before*
the update increments it, so the k-th update (k = 1, 2, ...) uses ``lr(k - 1)``: the first update of
a warmed-up run has lr 0 and the last one ``init_lr / T``. We do the same (0-based): the scheduler
starts at step 0 and is advanced after each optimizer step. (HF's
``get_linear_schedule_with_warmup`` also reads 0-based steps, but decays as ``(T - step) / (T - W)``
after warmup; the original decays as ``1 - step / T`` from step 0, so the learning rate drops at the
end of warmup from ``init_lr * (W - 1) / W`` to ``init_lr * (1 - W / T)``. We keep the original.)

AdamWeightDecay runs on torch's fused AdamW kernel (bias corrections set to exactly 1), else on
``torch._foreach_*`` kernels, as LAMB does: one call per group of same-device, same-dtype tensors
instead of one Python-level op per parameter. ``"adamw"`` is ``torch.optim.AdamW(fused=True)``
where the build has the kernel.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch
from torch.optim.lr_scheduler import LRScheduler

from ..errors import OpenBertError

EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")
OPTIMIZERS = ("adamw_bert", "lamb", "adamw")


# ---------------------------------------------------------------------------------------------
# parameter groups by name
# ---------------------------------------------------------------------------------------------
def param_groups(named_parameters: Iterable[tuple[str, torch.Tensor]], weight_decay: float,
                 exclude_from_weight_decay: Iterable[str] = EXCLUDE_FROM_WEIGHT_DECAY) -> list[dict]:
    """Split ``(name, parameter)`` pairs into a decayed group and a ``weight_decay=0`` group.

    A parameter is excluded when any string of ``exclude_from_weight_decay`` occurs in its name
    (the original ``_do_use_weight_decay``). Frozen parameters (``requires_grad=False``) are left out.
    Each group keeps the parameter names under ``"names"`` (for logs and tests).
    """
    exclude = tuple(exclude_from_weight_decay)
    decay, no_decay = {"params": [], "names": []}, {"params": [], "names": []}
    for name, p in named_parameters:
        if not p.requires_grad:
            continue
        g = no_decay if any(e in name for e in exclude) else decay
        g["params"].append(p)
        g["names"].append(name)
    decay["weight_decay"] = weight_decay
    no_decay["weight_decay"] = 0.0
    return [g for g in (decay, no_decay) if g["params"]]


def _as_groups(params, weight_decay: float, exclude) -> list:
    """Accept parameters, param-group dicts, or ``(name, parameter)`` pairs (grouped by name)."""
    params = list(params)
    if params and isinstance(params[0], tuple) and len(params[0]) == 2 and isinstance(params[0][0], str):
        return param_groups(params, weight_decay, exclude)
    return params


def _by_device_and_dtype(*lists: list[torch.Tensor]) -> list[tuple[list[torch.Tensor], ...]]:
    """Regroup parallel tensor lists so every ``_foreach`` call sees one device and one dtype."""
    buckets: dict = defaultdict(lambda: tuple([] for _ in lists))
    for items in zip(*lists):
        b = buckets[(items[0].device, items[0].dtype)]
        for dst, t in zip(b, items):
            dst.append(t)
    return list(buckets.values())


def _gather(group: dict, state: dict, names: tuple[str, ...]):
    """Parameters with a gradient, their gradients and the state tensors ``names`` (created as 0)."""
    params, grads, states = [], [], [[] for _ in names]
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise OpenBertError("sparse gradients are not supported; use dense embeddings")
        st = state[p]
        if not st:
            st["step"] = 0
            for n in names:
                st[n] = torch.zeros_like(p, memory_format=torch.preserve_format)
        st["step"] += 1
        params.append(p)
        grads.append(p.grad)
        for lst, n in zip(states, names):
            lst.append(st[n])
    return params, grads, states


# ---------------------------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------------------------
def _check_settings(lr, betas, eps, weight_decay) -> None:
    if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or weight_decay < 0:
        raise OpenBertError(f"invalid optimizer settings: lr={lr} betas={betas} eps={eps} "
                            f"weight_decay={weight_decay}")


class _MomentOptimizer(torch.optim.Optimizer):
    """Adam-family base: ``step`` gathers the parameters that have gradients with their two moment
    buffers (``exp_avg``, ``exp_avg_sq``), grouped by device and dtype, and hands each bucket of
    tensor lists to ``_update(group, params, grads, exp_avgs, exp_avg_sqs)``."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, (ms, vs) = _gather(group, self.state, ("exp_avg", "exp_avg_sq"))
            if not params:
                continue
            for p, g, m, v in _by_device_and_dtype(params, grads, ms, vs):
                self._update(group, p, g, m, v)
        return loss

    def _update(self, group, p, g, m, v) -> None:
        raise NotImplementedError


_FUSED_OK: dict = {}  # (device type, dtype) -> whether torch's fused AdamW kernel ran


def _fused_adamw(p, g, m, v, lr, b1, b2, eps, wd) -> bool:
    """The original update with torch's fused AdamW kernel (one pass over each tensor instead of
    seven ``_foreach`` passes); False where that kernel is unavailable (then the caller runs the
    ``_foreach`` form). The kernel's bias corrections are ``1 - b^t``; with ``t = 1e9`` both are
    exactly 1.0 (``b^t`` underflows to 0), which is the original's update without bias correction:
    ``m``, ``v`` as above, ``p *= 1 - lr wd``, ``p -= lr m / (sqrt(v) + eps)``."""
    key = (p[0].device.type, p[0].dtype)
    if _FUSED_OK.get(key) is False or not hasattr(torch, "_fused_adamw_") or any(
            x.dtype != p[0].dtype for x in g):
        return False
    steps = [torch.full((), 1e9, dtype=torch.float32, device=p[0].device)] * len(p)
    try:
        torch._fused_adamw_(p, g, m, v, [], steps, lr=lr, beta1=b1, beta2=b2, weight_decay=wd,
                            eps=eps, amsgrad=False, maximize=False)
    except (RuntimeError, NotImplementedError):  # e.g. no CPU kernel in this torch build
        _FUSED_OK[key] = False
        return False
    _FUSED_OK[key] = True
    return True


class AdamWeightDecay(_MomentOptimizer):
    """The original BERT optimizer (``AdamWeightDecayOptimizer``).

    ``params``: parameters, param groups, or ``model.named_parameters()`` (then parameters whose
    names contain ``exclude_from_weight_decay`` strings get no weight decay). Per step::

        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        p -= lr * (m / (sqrt(v) + eps) + weight_decay * p)

    There is no bias correction, as in the original.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0,
                 exclude_from_weight_decay: Iterable[str] = EXCLUDE_FROM_WEIGHT_DECAY):
        _check_settings(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(_as_groups(params, weight_decay, exclude_from_weight_decay), defaults)

    def _update(self, group, p, g, m, v) -> None:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if _fused_adamw(p, g, m, v, lr, b1, b2, eps, wd):
            return
        torch._foreach_lerp_(m, g, 1 - b1)  # m = b1 m + (1 - b1) g
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, g, g, 1 - b2)  # v = b2 v + (1 - b2) g^2
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, eps)
        if wd != 0:
            # p - lr * (u + wd p) == p (1 - lr wd) - lr u
            torch._foreach_mul_(p, 1 - lr * wd)
        torch._foreach_addcdiv_(p, m, denom, value=-lr)


class LAMB(_MomentOptimizer):
    """LAMB (layer-wise adaptive moments) as in NVIDIA's BERT pre-training recipe.

    Per parameter tensor: Adam moments with bias correction, ``u = m_hat / (sqrt(v_hat) + eps) +
    weight_decay * p``, then ``p -= lr * (||p|| / ||u||) * u`` (trust ratio 1 when either norm is
    0). As in NVIDIA's FusedLAMB, the trust ratio is applied only to groups with weight decay
    unless ``always_adapt=True``. Gradient clipping is done separately (:func:`clip_by_global_norm`).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.01, bias_correction: bool = True,
                 always_adapt: bool = False,
                 exclude_from_weight_decay: Iterable[str] = EXCLUDE_FROM_WEIGHT_DECAY):
        _check_settings(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        bias_correction=bias_correction, always_adapt=always_adapt)
        super().__init__(_as_groups(params, weight_decay, exclude_from_weight_decay), defaults)

    def _update(self, group, p, g, m, v) -> None:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        t = self.state[p[0]]["step"]
        bc1, bc2 = (1 - b1 ** t, 1 - b2 ** t) if group["bias_correction"] else (1.0, 1.0)
        torch._foreach_lerp_(m, g, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, g, g, 1 - b2)
        denom = torch._foreach_div(v, bc2)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, eps)
        u = torch._foreach_div(m, denom)
        torch._foreach_div_(u, bc1)  # m_hat / (sqrt(v_hat) + eps)
        if wd != 0:
            torch._foreach_add_(u, p, alpha=wd)
        if wd != 0 or group["always_adapt"]:
            w_norm = torch.stack(torch._foreach_norm(p))
            u_norm = torch.stack(torch._foreach_norm(u))
            ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm,
                                torch.ones_like(w_norm))
            torch._foreach_mul_(u, list(ratio.unbind(0)))
        torch._foreach_add_(p, u, alpha=-lr)


def clip_by_global_norm(parameters: Iterable[torch.Tensor], max_norm: float = 1.0) -> torch.Tensor:
    """Scale all gradients by ``max_norm / max(global_norm, max_norm)``; return the global norm.

    The original ``tf.clip_by_global_norm``: gradients are unchanged when the norm is at most
    ``max_norm``. The returned norm is the one before clipping (a 0-dim fp32 tensor). No host sync.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = []
    for (gs,) in _by_device_and_dtype(grads):
        norms.extend(n.float() for n in torch._foreach_norm(gs))
    device = grads[0].device
    total = torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))
    scale = max_norm / torch.clamp(total, min=max_norm)
    for (gs,) in _by_device_and_dtype(grads):
        torch._foreach_mul_(gs, scale.to(gs[0].device, gs[0].dtype))
    return total


# ---------------------------------------------------------------------------------------------
# schedule
# ---------------------------------------------------------------------------------------------
def lr_at(step: int, init_lr: float, num_train_steps: int, num_warmup_steps: int = 0) -> float:
    """The original schedule at ``global_step = step`` (0-based: the k-th update reads step k-1).

    ``init_lr * step / W`` while ``step < W``, else ``init_lr * (1 - min(step, T) / T)``.
    """
    if num_warmup_steps > 0 and step < num_warmup_steps:
        return init_lr * step / num_warmup_steps
    return init_lr * (1.0 - min(step, num_train_steps) / num_train_steps)


class WarmupLinearDecay(LRScheduler):
    """Linear warmup over ``num_warmup_steps``, then linear decay to 0 at ``num_train_steps``.

    Call ``step()`` after each ``optimizer.step()``; the learning rate of update k is
    ``lr_at(k - 1)`` (see the module docstring). The state (``last_epoch`` = steps taken) is saved
    with ``state_dict()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, num_train_steps: int,
                 num_warmup_steps: int = 0, last_epoch: int = -1):
        if num_train_steps < 1:
            raise OpenBertError(f"num_train_steps must be >= 1, got {num_train_steps}")
        if num_warmup_steps < 0:
            raise OpenBertError(f"num_warmup_steps must be >= 0, got {num_warmup_steps}")
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [lr_at(self.last_epoch, base, self.num_train_steps, self.num_warmup_steps)
                for base in self.base_lrs]


def create_optimizer(model: torch.nn.Module, init_lr: float, num_train_steps: int,
                     num_warmup_steps: int = 0, optimizer: str = "adamw_bert",
                     weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.999),
                     eps: float = 1e-6,
                     exclude_from_weight_decay: Iterable[str] = EXCLUDE_FROM_WEIGHT_DECAY):
    """The original ``create_optimizer``: returns ``(optimizer, scheduler)``.

    ``optimizer``: ``"adamw_bert"`` (the original, default), ``"lamb"`` or ``"adamw"``
    (``torch.optim.AdamW``: with bias correction). Weight decay skips parameters by name for all three.
    """
    groups = param_groups(model.named_parameters(), weight_decay, exclude_from_weight_decay)
    if optimizer == "adamw_bert":
        opt = AdamWeightDecay(groups, lr=init_lr, betas=betas, eps=eps, weight_decay=weight_decay)
    elif optimizer == "lamb":
        opt = LAMB(groups, lr=init_lr, betas=betas, eps=eps, weight_decay=weight_decay)
    elif optimizer == "adamw":
        try:  # the fused kernel (CUDA; CPU since torch 2.4), else the _foreach form
            opt = torch.optim.AdamW(groups, lr=init_lr, betas=betas, eps=eps,
                                    weight_decay=weight_decay, fused=True)
        except RuntimeError:
            opt = torch.optim.AdamW(groups, lr=init_lr, betas=betas, eps=eps,
                                    weight_decay=weight_decay, foreach=True)
    else:
        raise OpenBertError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    return opt, WarmupLinearDecay(opt, num_train_steps, num_warmup_steps)


__all__ = ["AdamWeightDecay", "LAMB", "WarmupLinearDecay", "clip_by_global_norm", "create_optimizer",
           "lr_at", "param_groups", "EXCLUDE_FROM_WEIGHT_DECAY", "OPTIMIZERS"]

"""BERT's optimizer, LAMB, the schedule and clipping against
docs/faithfulness.md ("Optimizer") and plain formulas."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from openbert.errors import OpenBertError
from openbert.training.optimization import (LAMB, AdamWeightDecay, WarmupLinearDecay,
                                            clip_by_global_norm, create_optimizer, lr_at,
                                            param_groups)


def test_spec_reference_100_steps():
    """docs/faithfulness.md: w0=[0.1,-0.2,-0.1], x=[0.4,0.2,-0.5], loss=mean((x-w)^2), lr=0.2,
    wd=0, 100 steps."""
    w = nn.Parameter(torch.tensor([0.1, -0.2, -0.1]))
    x = torch.tensor([0.4, 0.2, -0.5])
    opt = AdamWeightDecay([w], lr=0.2, weight_decay=0.0)
    for _ in range(100):
        opt.zero_grad()
        ((x - w) ** 2).mean().backward()
        opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([0.4016460, 0.1978244, -0.4978245]),
                               atol=1e-6, rtol=0)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(4, 3)
        self.LayerNorm = nn.LayerNorm(3)
        self.layer_norm = nn.LayerNorm(3)
        self.output_weights = nn.Parameter(torch.randn(2, 3))
        self.output_bias = nn.Parameter(torch.randn(2))

    def forward(self, x):
        h = self.layer_norm(self.LayerNorm(self.dense(x)))
        return ((h @ self.output_weights.T + self.output_bias) ** 2).mean()


def test_weight_decay_exclusion_by_name():
    model = _Tiny()
    model.dense.bias.requires_grad_(False)
    decay, no_decay = param_groups(model.named_parameters(), 0.01)
    assert sorted(decay["names"]) == ["dense.weight", "output_weights"]
    assert decay["weight_decay"] == 0.01
    assert sorted(no_decay["names"]) == ["LayerNorm.bias", "LayerNorm.weight", "layer_norm.bias",
                                         "layer_norm.weight", "output_bias"]
    assert no_decay["weight_decay"] == 0.0


def _reference_adam_weight_decay(named, grads_per_step, lr, wd, b1=0.9, b2=0.999, eps=1e-6):
    """The original apply_gradients, one tensor at a time, written from docs/faithfulness.md."""
    params = {n: p.detach().clone() for n, p in named}
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    for grads in grads_per_step:
        for n, p in params.items():
            g = grads[n]
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            update = m[n] / (v[n].sqrt() + eps)
            if not any(e in n for e in ("LayerNorm", "layer_norm", "bias")):
                update = update + wd * p
            params[n] = p - lr * update
    return params


def test_adam_weight_decay_matches_the_original_update_rule():
    torch.manual_seed(0)
    model = _Tiny()
    start = [(n, p.detach().clone()) for n, p in model.named_parameters()]
    opt = AdamWeightDecay(model.named_parameters(), lr=0.05, weight_decay=0.1)
    grads_per_step = []
    for _ in range(6):
        opt.zero_grad()
        model(torch.randn(5, 4)).backward()
        grads_per_step.append({n: p.grad.clone() for n, p in model.named_parameters()})
        opt.step()
    want = _reference_adam_weight_decay(start, grads_per_step, lr=0.05, wd=0.1)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), want[n], atol=1e-6, rtol=1e-6, msg=n)
    # the decay really is skipped by name: a decayed and an excluded tensor with zero gradient
    w = nn.Parameter(torch.ones(2))
    b = nn.Parameter(torch.ones(2))
    opt = AdamWeightDecay([("x.weight", w), ("x.bias", b)], lr=0.1, weight_decay=0.5)
    w.grad, b.grad = torch.zeros(2), torch.zeros(2)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((2,), 0.95))
    torch.testing.assert_close(b.detach(), torch.ones(2))


def test_no_bias_correction():
    """First step of Adam without bias correction moves by lr * 0.1 g / (sqrt(0.001) |g| + eps)."""
    w = nn.Parameter(torch.zeros(1))
    opt = AdamWeightDecay([w], lr=1.0)
    w.grad = torch.tensor([2.0])
    opt.step()
    want = -(0.1 * 2.0) / (math.sqrt(0.001 * 4.0) + 1e-6)
    assert w.item() == pytest.approx(want, rel=1e-6)


def test_fused_kernel_path_equals_the_foreach_path(monkeypatch):
    """AdamWeightDecay runs torch's fused AdamW kernel with bias corrections of exactly 1 where
    the kernel exists; 20 steps with and without decay equal the _foreach form."""
    from openbert.training import optimization as O

    torch.manual_seed(0)
    start = [torch.randn(64, 48) for _ in range(4)]
    grads = [[torch.randn(64, 48) for _ in start] for _ in range(20)]

    def run(fused: bool):
        monkeypatch.setattr(O, "_FUSED_OK", {} if fused else {("cpu", torch.float32): False})
        ps = [nn.Parameter(x.clone()) for x in start]
        opt = AdamWeightDecay([{"params": ps[:2], "weight_decay": 0.01},
                               {"params": ps[2:], "weight_decay": 0.0}], lr=1e-2)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g
            opt.step()
        return ps, dict(O._FUSED_OK)

    fused, used = run(True)
    plain, _ = run(False)
    if not used.get(("cpu", torch.float32)):
        pytest.skip("this torch build has no CPU fused AdamW kernel (the _foreach form ran)")
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert not torch.equal(fused[0], start[0])


def _reference_lamb(p, grads, lr, wd, adapt, b1=0.9, b2=0.999, eps=1e-6):
    p = p.clone()
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps) + wd * p
        ratio = 1.0
        if adapt and p.norm() > 0 and u.norm() > 0:
            ratio = (p.norm() / u.norm()).item()
        p = p - lr * ratio * u
    return p


def test_lamb_matches_the_layerwise_rule():
    torch.manual_seed(1)
    w = nn.Parameter(torch.randn(3, 4))
    e = nn.Parameter(torch.randn(7) * 5)  # a second decayed tensor: its own trust ratio
    b = nn.Parameter(torch.randn(4))
    w0, e0, b0 = w.detach().clone(), e.detach().clone(), b.detach().clone()
    opt = LAMB([("dense.weight", w), ("embeddings", e), ("dense.bias", b)], lr=0.01, weight_decay=0.01)
    gw, ge, gb = [], [], []
    for _ in range(4):
        w.grad, e.grad, b.grad = torch.randn(3, 4), torch.randn(7), torch.randn(4)
        gw.append(w.grad.clone())
        ge.append(e.grad.clone())
        gb.append(b.grad.clone())
        opt.step()
    torch.testing.assert_close(w.detach(), _reference_lamb(w0, gw, 0.01, 0.01, adapt=True))
    torch.testing.assert_close(e.detach(), _reference_lamb(e0, ge, 0.01, 0.01, adapt=True))
    # no weight decay on biases, and (as NVIDIA's FusedLAMB) no trust ratio there either
    torch.testing.assert_close(b.detach(), _reference_lamb(b0, gb, 0.01, 0.0, adapt=False))


@pytest.mark.parametrize("step,want", [(0, 0.0), (1, 1e-5), (5, 5e-5), (9, 9e-5), (10, 9e-5),
                                       (50, 5e-5), (99, 1e-6), (100, 0.0), (150, 0.0)])
def test_schedule_values(step, want):
    """init_lr 1e-4, W=10, T=100: warmup init_lr*g/W, then init_lr*(1 - g/T)."""
    assert lr_at(step, 1e-4, 100, 10) == pytest.approx(want, abs=1e-12)


def test_scheduler_is_zero_based():
    """Update k uses lr_at(k - 1): with warmup the first update has lr 0, as in the original."""
    p = nn.Parameter(torch.zeros(1))
    opt = AdamWeightDecay([p], lr=1e-3)
    sched = WarmupLinearDecay(opt, num_train_steps=8, num_warmup_steps=4)
    used = []
    for _ in range(8):
        used.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(1)
        opt.step()
        sched.step()
    assert used == pytest.approx([lr_at(k, 1e-3, 8, 4) for k in range(8)])
    assert used[0] == 0.0 and used[-1] == pytest.approx(1e-3 / 8)
    # no warmup: the first update has the full learning rate
    opt = AdamWeightDecay([p], lr=1e-3)
    WarmupLinearDecay(opt, num_train_steps=8)
    assert opt.param_groups[0]["lr"] == 1e-3


def test_clip_by_global_norm_is_tf_clip_by_global_norm():
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2, 2))
    a.grad = torch.tensor([3.0, 0.0, 0.0])
    b.grad = torch.tensor([[0.0, 4.0], [0.0, 0.0]])
    norm = clip_by_global_norm([a, b], 1.0)
    assert norm.item() == pytest.approx(5.0)
    torch.testing.assert_close(a.grad, torch.tensor([0.6, 0.0, 0.0]))
    torch.testing.assert_close(b.grad, torch.tensor([[0.0, 0.8], [0.0, 0.0]]))
    # under the limit: unchanged, bit for bit
    a.grad = torch.tensor([0.3, 0.1, 0.2])
    b.grad = None
    before = a.grad.clone()
    assert clip_by_global_norm([a, b], 1.0).item() == pytest.approx(math.sqrt(0.14))
    assert torch.equal(a.grad, before)


def test_create_optimizer_options():
    model = _Tiny()
    opt, sched = create_optimizer(model, 2e-5, 100, 10)
    assert isinstance(opt, AdamWeightDecay) and isinstance(sched, WarmupLinearDecay)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    opt, _ = create_optimizer(model, 2e-5, 100, optimizer="lamb")
    assert isinstance(opt, LAMB)
    opt, _ = create_optimizer(model, 2e-5, 100, optimizer="adamw")
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[1]["weight_decay"] == 0.0
    with pytest.raises(OpenBertError, match="unknown optimizer 'sgd'"):
        create_optimizer(model, 2e-5, 100, optimizer="sgd")
    with pytest.raises(OpenBertError, match="num_train_steps must be >= 1"):
        create_optimizer(model, 2e-5, 0)


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(2)
    grads = [torch.randn(5) for _ in range(6)]

    def run(split: int | None):
        p = nn.Parameter(torch.ones(5))
        opt = AdamWeightDecay([("w", p)], lr=0.01, weight_decay=0.01)
        for i, g in enumerate(grads):
            if i == split:
                state = opt.state_dict()
                opt = AdamWeightDecay([("w", p)], lr=0.01, weight_decay=0.01)
                opt.load_state_dict(state)
            p.grad = g.clone()
            opt.step()
        return p.detach()

    assert torch.equal(run(None), run(3))

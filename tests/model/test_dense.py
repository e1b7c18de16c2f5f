"""openbert.model.dense.linear: oneDNN on the CPU at inference equals F.linear (GELU fused), and
F.linear (with its gradients) wherever oneDNN does not apply."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

from openbert.model import dense

needs_onednn = pytest.mark.skipif(not dense._probe(), reason="no oneDNN linear in this build")


@pytest.fixture
def onednn_on(monkeypatch):
    """The oneDNN path on whatever the CPU (by default it is on only where it is the faster one)."""
    monkeypatch.setitem(dense._state, "enabled", True)
    assert dense.onednn_enabled()


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 17, 64, generator=g)  # [B, S, in]
    w = torch.randn(96, 64, generator=g) / 8  # [out, in]
    b = torch.randn(96, generator=g)
    return x, w, b


@needs_onednn
@pytest.mark.parametrize("gelu", [None, "tanh", "erf"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_equals_f_linear(tensors, gelu, with_bias, onednn_on):
    x, w, b = tensors
    b = b if with_bias else None
    want = F.linear(x, w, b)
    if gelu is not None:
        want = F.gelu(want, approximate="tanh" if gelu == "tanh" else "none")
    with torch.no_grad():  # the fused oneDNN path
        got = dense.linear(x, w, b, gelu=gelu)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    got_2d = dense.linear(x.reshape(-1, 64), w, b, gelu=gelu)  # the autograd-free path, 2-D
    torch.testing.assert_close(got_2d, want.reshape(-1, 96), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gelu", [None, "erf"])
def test_training_takes_f_linear_with_its_gradients(tensors, gelu):
    x, w, b = tensors
    xi, wi, bi = (t.clone().requires_grad_() for t in (x, w, b))
    y = dense.linear(xi, wi, bi, gelu=gelu)
    want = F.linear(x, w, b)
    want = want if gelu is None else F.gelu(want)
    assert torch.equal(y, want) and y.grad_fn is not None
    y.sum().backward()
    wr = w.clone().requires_grad_()
    F.linear(x, wr, b).sum().backward() if gelu is None else F.gelu(F.linear(x, wr, b)).sum().backward()
    assert torch.equal(wi.grad, wr.grad)


def test_default_follows_the_cpu(monkeypatch):
    monkeypatch.setitem(dense._state, "enabled", None)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not dense.onednn_enabled()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert dense.onednn_enabled() == dense._probe()


def test_falls_back_to_f_linear(tensors, monkeypatch):
    x, w, b = tensors
    # other dtypes go to F.linear unchanged
    assert torch.equal(dense.linear(x.double(), w.double(), b.double()), F.linear(x.double(), w.double(), b.double()))
    # CPU autocast keeps its bf16 products
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dense.linear(x, w, b).dtype == torch.bfloat16
    # switched off: exactly F.linear (the GELU in place at inference, out of place with autograd)
    monkeypatch.setitem(dense._state, "enabled", False)
    assert not dense.onednn_enabled()
    assert torch.equal(dense.linear(x, w, b), F.linear(x, w, b))
    for form in ("tanh", "none"):
        want = F.gelu(F.linear(x, w, b), approximate=form)
        assert torch.equal(dense.linear(x, w, b, gelu="tanh" if form == "tanh" else "erf"), want)
        with torch.inference_mode():
            assert torch.equal(dense.linear(x, w, b, gelu="tanh" if form == "tanh" else "erf"), want)


@pytest.mark.skipif(not dense.onednn_enabled(torch.bfloat16), reason="oneDNN does not run bf16 natively on this CPU")
@pytest.mark.parametrize("gelu", [None, "erf"])
def test_bf16_products_take_onednn_and_match_f_linear(tensors, gelu, monkeypatch):
    """A model cast to bf16 for inference: oneDNN's linear (GELU fused), within bf16 rounding of
    F.linear in float32; switched off, F.linear's bf16 product."""
    x, w, b = (t.bfloat16() for t in tensors)
    calls, pointwise = [], dense._pointwise
    monkeypatch.setattr(dense, "_pointwise", lambda *a: calls.append(a) or pointwise(*a))
    want = F.linear(x.float(), w.float(), b.float())
    want = want if gelu is None else F.gelu(want)
    with torch.no_grad():
        got = dense.linear(x, w, b, gelu=gelu)
    assert got.dtype == torch.bfloat16 and len(calls) == 1
    torch.testing.assert_close(got.float(), want, rtol=0.02, atol=0.05)
    monkeypatch.setitem(dense._state, "enabled", False)
    with torch.no_grad():
        off = dense.linear(x, w, b, gelu=gelu)
    assert len(calls) == 1
    torch.testing.assert_close(off.float(), want, rtol=0.02, atol=0.05)


@needs_onednn
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dense_packs_its_weight_once_and_again_after_it_changes(tensors, dtype, onednn_on, monkeypatch):
    """At inference a Dense keeps its weight in oneDNN's layout: packed on the first call, reused,
    packed again after an in-place update or a replaced weight; not kept for training; a copied
    or pickled layer carries no packed copy."""
    if not dense.onednn_enabled(dtype):
        pytest.skip("oneDNN does not run this dtype natively here")
    x, w, b = (t.to(dtype) for t in tensors)
    layer = dense.Dense(64, 96, gelu="tanh").to(dtype)
    with torch.no_grad():
        layer.weight.copy_(w), layer.bias.copy_(b)
    packs, pack = [], dense.pack
    monkeypatch.setattr(dense, "pack", lambda t: packs.append(t) or pack(t))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=0.02, atol=0.05)

    def check():
        want = F.gelu(F.linear(x.float(), layer.weight.float(), layer.bias.float()), approximate="tanh")
        with torch.no_grad():
            torch.testing.assert_close(layer(x).float(), want, **tol)

    check(), check()
    assert len(packs) == 1
    with torch.no_grad():
        layer.weight.mul_(-1)  # in place, e.g. an optimizer step
    check()
    assert len(packs) == 2
    layer.weight = torch.nn.Parameter(w.flip(0).clone())  # replaced
    check()
    assert len(packs) == 3
    assert "_packed_weight" not in copy.deepcopy(layer).__dict__
    assert "_packed_weight" not in pickle.loads(pickle.dumps(layer)).__dict__
    layer(x.requires_grad_())  # with autograd: F.linear, the packed copy dropped
    assert "_packed_weight" not in layer.__dict__


@needs_onednn
def test_plus_fuses_the_residual_sum_with_the_same_numbers(tensors, onednn_on, monkeypatch):
    x, w, b = tensors
    residual = torch.randn(3, 17, 96, generator=torch.Generator().manual_seed(1))
    layer = dense.Dense(64, 96)
    with torch.no_grad():
        layer.weight.copy_(w), layer.bias.copy_(b)
    fused, binary = [], torch.ops.mkldnn._linear_pointwise.binary
    monkeypatch.setattr(torch.ops.mkldnn._linear_pointwise, "binary",
                        lambda *a: fused.append(a) or binary(*a), raising=False)
    with torch.no_grad():
        got = layer.plus(x, residual)
        want = residual + layer(x)
    assert len(fused) == 1
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(got, residual + F.linear(x, w, b), atol=1e-5, rtol=1e-5)
    if dense.onednn_enabled(torch.bfloat16):  # a bf16 model's float32 residual stream: the plain sum
        with torch.no_grad():
            mixed = layer.bfloat16().plus(x.bfloat16(), residual)
        assert len(fused) == 1 and mixed.dtype == torch.float32
        layer.float()
    trained = layer.plus(x, residual.requires_grad_())  # with autograd: the plain sum
    assert len(fused) == 1 and trained.grad_fn is not None

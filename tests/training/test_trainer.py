"""The training loop: accumulation, checkpointing, precision, determinism, logs, bad input; predict."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from openbert.errors import OpenBertError
from openbert.training import state as train_state
from openbert.training.trainer import Trainer, TrainingArguments, autocast, predict, resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_training_run import collate, tiny_data, tiny_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _args(out, **kw) -> TrainingArguments:
    base = dict(output_dir=str(out), train_batch_size=8, learning_rate=1e-3, num_train_steps=4,
                num_warmup_steps=1, progress=False, device="cpu", plot=False, save_checkpoints_steps=0)
    base.update(kw)
    return TrainingArguments(**base)


def _train(out, model=None, data=None, lengths=None, **kw):
    model = model if model is not None else tiny_model(0.0)
    result = Trainer(model, _args(out, **kw), data or tiny_data(), collate, lengths=lengths).train()
    return model, result


def _assert_same_weights(a, b, atol):
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(p, q, atol=atol, rtol=0, msg=n)


def test_accumulation_equals_one_big_batch(tmp_path):
    """4 micro-batches of 2 give the same weights (1e-6) as one batch of 8, equal sizes."""
    data = [dict(e, input_ids=e["input_ids"][:4]) for e in tiny_data()]  # equal lengths: no padding
    big, _ = _train(tmp_path / "big", data=data)
    small, _ = _train(tmp_path / "small", data=data, gradient_accumulation_steps=4)
    _assert_same_weights(big, small, 1e-6)
    # and the run really moved the weights
    assert not torch.allclose(big.classifier.weight, tiny_model(0.0).classifier.weight)


def _pretraining_data(n=16, seq_len=12, max_pred=5):
    """Masked-LM examples whose number of real masked positions varies from 1 to max_pred."""
    g = torch.Generator().manual_seed(4)
    data = []
    for i in range(n):
        k = 1 + i % max_pred
        weights = torch.zeros(max_pred)
        weights[:k] = 1.0
        data.append({"input_ids": torch.randint(1, 99, (seq_len,), generator=g),
                     "masked_lm_positions": torch.randint(1, seq_len, (max_pred,), generator=g),
                     "masked_lm_ids": torch.randint(1, 99, (max_pred,), generator=g),
                     "masked_lm_weights": weights,
                     "next_sentence_labels": torch.tensor(i % 2)})
    return data


def _stack(examples):
    return {k: torch.stack([e[k] for e in examples]) for k in examples[0]}


def test_accumulation_equals_one_big_batch_for_the_masked_lm_loss(tmp_path):
    """Uneven masks: the masked-LM loss is normalised by the whole batch's weight, as one batch."""
    from openbert.model.bert import BertForPreTraining

    def model():
        torch.manual_seed(0)
        return BertForPreTraining(tiny_model(0.0).config)

    data = _pretraining_data()
    runs = {}
    for accum in (1, 4):
        m = model()
        args = _args(tmp_path / str(accum), gradient_accumulation_steps=accum, num_train_steps=3)
        runs[accum] = (m, Trainer(m, args, data, _stack).train())
    _assert_same_weights(runs[1][0], runs[4][0], 1e-6)
    assert runs[1][1].loss == pytest.approx(runs[4][1].loss, abs=1e-6)


def test_accumulation_equals_one_big_batch_for_a_token_level_loss(tmp_path):
    """Labelled tokens fall unevenly over micro-batches: the token-classification loss is still
    normalised by the whole batch's labelled tokens, as one batch."""
    from openbert.model.bert import BertForTokenClassification

    g = torch.Generator().manual_seed(5)
    data = []
    for i in range(16):
        labels = torch.full((10,), -100)
        labels[:1 + i % 7] = torch.randint(0, 3, (1 + i % 7,), generator=g)
        data.append({"input_ids": torch.randint(1, 99, (10,), generator=g), "labels": labels})
    runs = {}
    for accum in (1, 4):
        torch.manual_seed(0)
        m = BertForTokenClassification(tiny_model(0.0).config, num_labels=3)
        args = _args(tmp_path / str(accum), gradient_accumulation_steps=accum, num_train_steps=3)
        runs[accum] = (m, Trainer(m, args, data, _stack).train())
    _assert_same_weights(runs[1][0], runs[4][0], 1e-6)
    assert runs[1][1].loss == pytest.approx(runs[4][1].loss, abs=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients():
    """Per-layer recomputation: same gradients (1e-6) with dropout on (the RNG state is replayed)."""
    batch = collate(tiny_data()[:6])
    grads = []
    for enabled in (False, True):
        model = tiny_model(0.1)
        model.set_gradient_checkpointing(enabled)
        torch.manual_seed(3)
        model(**batch).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], atol=1e-6, rtol=0, msg=n)


def test_gradient_checkpointing_in_the_trainer(tmp_path):
    plain, _ = _train(tmp_path / "a")
    ckpt, _ = _train(tmp_path / "b", gradient_checkpointing=True)
    _assert_same_weights(plain, ckpt, 1e-6)


def test_deterministic_on_cpu_with_dropout(tmp_path):
    a, ra = _train(tmp_path / "a", model=tiny_model(0.1))
    b, rb = _train(tmp_path / "b", model=tiny_model(0.1))
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
    c, _ = _train(tmp_path / "c", model=tiny_model(0.1), seed=7)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_bf16_on_cpu_trains_like_fp32(tmp_path):
    """bf16 autocast reaches the same loss neighbourhood as fp32 on a learnable tiny task."""
    kw = dict(num_train_steps=30, learning_rate=3e-3, num_warmup_steps=3, log_every_n_steps=10)
    _, r32 = _train(tmp_path / "fp32", **kw)
    model, r16 = _train(tmp_path / "bf16", precision="bf16", **kw)
    first = r32.history[0]["loss"]
    assert r32.loss < first - 0.05  # fp32 learned something
    assert abs(r16.loss - r32.loss) < 0.1
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_matplotlib_is_a_core_dependency(pytestconfig):
    """metrics.png is promised in every output folder, so the default install must draw it."""
    import tomllib

    project = tomllib.loads((pytestconfig.rootpath / "pyproject.toml").read_text())["project"]
    assert any(d.replace(" ", "").startswith("matplotlib>=") for d in project["dependencies"])


def test_metrics_checkpoints_and_plot(tmp_path):
    _, result = _train(tmp_path, num_train_steps=6, save_checkpoints_steps=2, keep_checkpoint_max=2,
                       log_every_n_steps=2, plot=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"loss", "lr", "seq_per_s", "grad_norm", "epoch"} <= set(rows[0])
    assert rows[-1]["epoch"] == pytest.approx(6 * 8 / 48)
    assert [s for s, _ in train_state.list_checkpoints(tmp_path)] == [4, 6]  # keep-last-2
    assert result.checkpoint.endswith("step-00000006.pt") and result.global_step == 6
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob("*.tmp.*"))  # atomic writes leave no temporaries


def test_overwrite_output_dir_replaces_the_earlier_run(tmp_path):
    _train(tmp_path, num_train_steps=6, save_checkpoints_steps=2, keep_checkpoint_max=0)
    _, result = _train(tmp_path, num_train_steps=3, save_checkpoints_steps=2, keep_checkpoint_max=2,
                       overwrite_output_dir=True)
    assert [s for s, _ in train_state.list_checkpoints(tmp_path)] == [2, 3]
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [3]


def test_the_same_run_again_resumes_by_itself(tmp_path, caplog):
    """As the Estimator: checkpoints of the same model, data and batch settings are continued."""
    common = dict(save_checkpoints_steps=2, keep_checkpoint_max=0, log_every_n_steps=1)
    _train(tmp_path, num_train_steps=4, **common)
    with caplog.at_level("INFO", logger="openbert.training"):
        _, result = _train(tmp_path, num_train_steps=6, **common)
    assert "resuming this run from" in caplog.text and "step-00000004.pt at step 4" in caplog.text
    assert [s for s, _ in train_state.list_checkpoints(tmp_path)] == [2, 4, 6]
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("change,named", [
    (dict(data=tiny_data(seed=2)), "the training data"),
    (dict(model=tiny_model(0.0).__class__(tiny_model().config.replace(intermediate_size=40), num_labels=2)),
     "the model"),
    (dict(seed=7), "--seed=42 there, 7 now"),
    (dict(train_batch_size=4), "--train_batch_size=8 there, 4 now"),
])
def test_checkpoints_of_another_run_are_refused_not_deleted(tmp_path, change, named):
    _train(tmp_path, num_train_steps=2)
    before = {p.name: p.read_bytes() for p in train_state.checkpoint_dir(tmp_path).iterdir()}
    with pytest.raises(OpenBertError, match=f"another run \\({named}.*--resume.*--overwrite_output_dir"):
        _train(tmp_path, num_train_steps=2, **change)
    assert {p.name: p.read_bytes() for p in train_state.checkpoint_dir(tmp_path).iterdir()} == before


def test_resume_continues_another_run_on_purpose(tmp_path):
    _train(tmp_path, num_train_steps=2)
    _, result = _train(tmp_path, data=tiny_data(seed=2), num_train_steps=3, resume=True)
    assert result.global_step == 3


def test_nonfinite_loss_stops_with_a_checkpoint(tmp_path):
    model = tiny_model(0.0)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(OpenBertError, match=r"loss became nan at step 1.*nonfinite-step-00000001\.pt"):
        _train(tmp_path, model=model)
    saved = train_state.load_checkpoint(train_state.checkpoint_dir(tmp_path) / "nonfinite-step-00000001.pt")
    assert saved["global_step"] == 0 and torch.isnan(saved["model"]["classifier.weight"]).all()


def test_length_bucketed_batches_pad_less(tmp_path):
    data = tiny_data()
    lengths = [len(e["input_ids"]) for e in data]
    seen = []

    def recording_collate(examples):
        seen.append([len(e["input_ids"]) for e in examples])
        return collate(examples)

    args = _args(tmp_path, num_train_steps=3)
    Trainer(tiny_model(0.0), args, data, recording_collate, lengths=lengths).train()
    spread = sum(max(b) - min(b) for b in seen)
    seen.clear()
    Trainer(tiny_model(0.0), _args(tmp_path / "b", num_train_steps=3), data, recording_collate).train()
    assert spread < sum(max(b) - min(b) for b in seen) / 2


def test_predict_yields_indices_and_restores_mode():
    data = tiny_data(10)
    model = tiny_model(0.0)
    lengths = [len(e["input_ids"]) for e in data]
    got = {}
    for idx, out in predict(model, data, collate, batch_size=4, device="cpu", lengths=lengths,
                            progress=False):
        assert not out.logits.requires_grad
        for i, row in zip(idx, out.logits):
            got[i] = row
    assert sorted(got) == list(range(10))
    assert model.training
    model.eval()
    for i in (0, 7):
        want = model(**collate([data[i]])).logits[0]
        torch.testing.assert_close(got[i], want, atol=1e-5, rtol=1e-5)


def test_bf16_inference_falls_back_to_fp32_without_bf16_hardware(monkeypatch):
    from openbert.training import trainer as training

    monkeypatch.setattr(training, "native_bf16", lambda device: False)
    assert training.inference_precision("bf16", "cpu") == "fp32"
    model = training.prepare_for_inference(tiny_model(0.0), "bf16", "cpu")
    assert training.dense_dtype(model) == torch.float32
    monkeypatch.setattr(training, "native_bf16", lambda device: True)
    assert training.inference_precision("bf16", "cpu") == "bf16"
    assert training.inference_precision("fp32", "cpu") == "fp32"
    with pytest.raises(OpenBertError, match="--precision=int4 is unknown"):
        training.inference_precision("int4", "cpu")


def test_predict_runs_a_cast_model_as_cast(monkeypatch):
    from openbert.training import trainer as training

    monkeypatch.setattr(training, "native_bf16", lambda device: True)
    data = tiny_data(6)
    model = training.prepare_for_inference(tiny_model(0.0), "bf16", "cpu")
    assert training.dense_dtype(model) == torch.bfloat16
    seen = []
    monkeypatch.setattr(training, "autocast", lambda precision, device: seen.append(precision) or
                        torch.autocast("cpu", enabled=False))
    outs = [out.logits for _, out in predict(model, data, collate, 3, "cpu", "bf16", progress=False)]
    assert seen == ["fp32", "fp32"] and all(o.dtype == torch.bfloat16 for o in outs)


@pytest.mark.parametrize("kw,match", [
    (dict(gradient_accumulation_steps=0), "--gradient_accumulation_steps=0 must be >= 1"),
    (dict(precision="fp8"), "--precision=fp8 is unknown"),
    (dict(optimizer="sgd"), "--optimizer=sgd is unknown"),
    (dict(train_batch_size=10, gradient_accumulation_steps=4), "must be divisible"),
    (dict(num_train_steps=0), "--num_train_steps=0 must be >= 1"),
])
def test_bad_arguments_are_clear_errors(tmp_path, kw, match):
    with pytest.raises(OpenBertError, match=match):
        _args(tmp_path, **kw)


def test_device_and_precision_errors(tmp_path):
    if not torch.cuda.is_available():
        with pytest.raises(OpenBertError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(OpenBertError, match="fp16 needs a CUDA device.*bf16"):
        autocast("fp16", "cpu")
    with pytest.raises(OpenBertError, match="returned no loss"):
        Trainer(tiny_model(0.0), _args(tmp_path), tiny_data(),
                lambda ex: {k: v for k, v in collate(ex).items() if k != "labels"}).train()
    with pytest.raises(OpenBertError, match="training set is empty"):
        Trainer(tiny_model(0.0), _args(tmp_path), [], collate).train()


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_training(tmp_path, precision):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    kw = dict(num_train_steps=40, learning_rate=3e-3, num_warmup_steps=4, log_every_n_steps=10)
    _, r32 = _train(tmp_path / "fp32", device="cuda", **kw)
    model, rlow = _train(tmp_path / precision, device="cuda", precision=precision, **kw)
    assert abs(rlow.loss - r32.loss) < 0.1
    assert all(p.dtype == torch.float32 and p.is_cuda for p in model.parameters())
    if precision == "fp16":
        state = train_state.load_checkpoint(train_state.latest_checkpoint(tmp_path / precision))
        assert state["scaler"]["scale"] > 0

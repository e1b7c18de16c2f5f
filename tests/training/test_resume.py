"""Exact resume: a run killed with SIGKILL and resumed ends with the same weights, bit for bit."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from openbert.errors import OpenBertError
from openbert.training import state as train_state
from openbert.training.plotting import read_metrics
from openbert.training.trainer import Trainer, TrainingArguments

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tiny_training_run  # noqa: E402
from tiny_training_run import collate, tiny_data, tiny_model  # noqa: E402

RUN = [sys.executable, str(HERE / "tiny_training_run.py")]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(out: Path, *extra: str) -> None:
    subprocess.run(RUN + ["--output_dir", str(out), *extra], check=True, env=ENV, timeout=300,
                   capture_output=True)


def _final(out: Path) -> dict:
    return torch.load(out / "final.pt", weights_only=True)


@pytest.mark.parametrize("bucketed", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["shuffled", "length_bucketed"])
def test_sigkill_then_resume_is_bit_exact(tmp_path, bucketed):
    common = ["--num_train_steps", "16", "--save_checkpoints_steps", "4",
              "--gradient_accumulation_steps", "2"] + (["--lengths"] if bucketed else [])
    tiny_training_run.main(["--output_dir", str(tmp_path / "straight"), *common])  # uninterrupted

    killed = tmp_path / "killed"
    proc = subprocess.Popen(RUN + ["--output_dir", str(killed), "--step_delay", "0.05", *common], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not train_state.checkpoint_path(killed, 8).exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / "final.pt").exists()
    stopped_at = train_state.list_checkpoints(killed)[-1][0]
    assert 8 <= stopped_at < 16

    _run(killed, *common, "--resume")
    a, b = _final(tmp_path / "straight"), _final(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the metrics file holds each step exactly once
    steps = [r["step"] for r in read_metrics(killed / "metrics.jsonl")]
    assert steps == list(range(1, 17))


pytestmark = pytest.mark.usefixtures("one_thread")


def _trainer(out, **kw) -> Trainer:
    args = TrainingArguments(output_dir=str(out), train_batch_size=4, learning_rate=1e-3,
                             num_train_steps=2, progress=False, device="cpu", plot=False, **kw)
    return Trainer(tiny_model(0.0), args, tiny_data(16), collate)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(OpenBertError, match="no checkpoint.*without --resume"):
        _trainer(tmp_path, resume=True).train()


def test_resume_from_corrupt_checkpoint_is_a_clear_error(tmp_path):
    _trainer(tmp_path).train()
    path = train_state.latest_checkpoint(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])  # truncated, as a disk-full copy would be
    with pytest.raises(OpenBertError, match=f"{path.name} is unreadable.*delete it"):
        _trainer(tmp_path, resume=True).train()


def test_resume_from_foreign_file_is_a_clear_error(tmp_path):
    path = train_state.checkpoint_path(tmp_path, 5)
    path.parent.mkdir(parents=True)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(OpenBertError, match="not an openbert training checkpoint"):
        _trainer(tmp_path, resume=True).train()


def test_resume_with_a_different_model_shape_is_a_clear_error(tmp_path):
    _trainer(tmp_path).train()
    from openbert.config import BertConfig
    from openbert.model.bert import BertForSequenceClassification

    wider = BertForSequenceClassification(
        BertConfig(vocab_size=99, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=37, max_position_embeddings=64, type_vocab_size=2))
    args = TrainingArguments(output_dir=str(tmp_path), train_batch_size=4, num_train_steps=4,
                             progress=False, device="cpu", resume=True, plot=False)
    with pytest.raises(OpenBertError, match="different model shape.*word_embeddings"):
        Trainer(wider, args, tiny_data(16), collate).train()


def test_resume_with_another_batch_size_is_a_clear_error(tmp_path):
    _trainer(tmp_path).train()
    args = TrainingArguments(output_dir=str(tmp_path), train_batch_size=8, num_train_steps=4,
                             progress=False, device="cpu", resume=True, plot=False)
    with pytest.raises(OpenBertError, match="--train_batch_size=4"):
        Trainer(tiny_model(), args, tiny_data(16), collate).train()


def test_resume_can_extend_a_finished_run(tmp_path):
    """Resuming with more steps continues from the last checkpoint with the new schedule."""
    _trainer(tmp_path).train()
    t = _trainer(tmp_path, resume=True)
    t.args.num_train_steps = 5
    result = t.train()
    assert result.global_step == 5
    assert [s for s, _ in train_state.list_checkpoints(tmp_path)][-1] == 5


def _flip_a_weight_byte(path) -> None:
    """Change one byte inside a tensor's data: torch.load still reads the file without a word."""
    state = torch.load(path, weights_only=True)
    raw = state["model"]["classifier.weight"].numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = bytes(data).find(raw[:64])
    assert at >= 0
    data[at + 3] ^= 0x40
    path.write_bytes(bytes(data))
    assert not torch.equal(torch.load(path, weights_only=True)["model"]["classifier.weight"],
                           state["model"]["classifier.weight"])


def _run4(out, **kw):
    args = TrainingArguments(output_dir=str(out), train_batch_size=4, learning_rate=1e-3,
                             num_train_steps=4, save_checkpoints_steps=2, keep_checkpoint_max=0,
                             progress=False, device="cpu", plot=False, **kw)
    model = tiny_model(0.0)
    Trainer(model, args, tiny_data(16), collate).train()
    return model


def test_a_damaged_checkpoint_is_named_and_the_newest_good_one_is_used(tmp_path, caplog):
    straight = _run4(tmp_path)
    newest = train_state.checkpoint_path(tmp_path, 4)
    _flip_a_weight_byte(newest)
    with pytest.raises(OpenBertError, match=f"{newest.name} is damaged"):
        train_state.load_checkpoint(newest)
    with caplog.at_level("WARNING", logger="openbert.train_state"):
        again = _run4(tmp_path)  # the same run: resumes from step 2, not from the damaged step 4
    assert f"{newest} is damaged" in caplog.text
    assert "resuming from step-00000002.pt, the newest good checkpoint" in caplog.text
    for (k, a), b in zip(straight.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k  # and ends exactly where the undamaged run ended
    train_state.load_checkpoint(newest)  # rewritten, good again


def test_every_checkpoint_damaged_is_an_error_naming_them(tmp_path):
    _run4(tmp_path)
    for step in (2, 4):
        _flip_a_weight_byte(train_state.checkpoint_path(tmp_path, step))
    with pytest.raises(OpenBertError, match=r"step-00000004.pt is damaged.*\(the older step-00000002.pt too\)"):
        _run4(tmp_path)

"""The Trainer's chance-level check: one warning when the loss has not left ln(num_labels) after
30% of the steps, none when it has; wired into classify and squad."""
from __future__ import annotations

import json
import logging
import math

import pytest

from openbert.cli import main
from openbert.training import ChanceLossCheck, TrainingArguments

LN3 = math.log(3)


def _feed(check, losses, total):
    args = TrainingArguments(output_dir="unused", num_train_steps=total)
    for step, loss in enumerate(losses, 1):
        check.on_step(step, loss, args)


def _warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "chance level" in r.getMessage()]


def test_warns_once_on_a_plateau(caplog):
    check = ChanceLossCheck(LN3, "ln(3)", "Try --learning_rate=2e-5.")
    with caplog.at_level(logging.WARNING):
        _feed(check, [LN3 + 0.01 * (-1) ** i for i in range(100)], 100)
    (w,) = _warnings(caplog)
    message = w.getMessage()
    assert check.warned and "steps 21-30 of 100" in message and "ln(3) = 1.0986" in message
    assert "Try --learning_rate=2e-5." in message


@pytest.mark.parametrize("losses", [
    [LN3 * (1 - 0.03)] * 100,  # 3% below: left the plateau
    [LN3] * 20 + [0.9] * 80,  # at chance at first, then learning before 30%
    [LN3 * 1.05] * 100,  # above chance (diverging) is another problem
])
def test_silent_off_the_plateau(caplog, losses):
    check = ChanceLossCheck(LN3, "ln(3)", "")
    with caplog.at_level(logging.WARNING):
        _feed(check, losses, 100)
    assert not check.warned and not _warnings(caplog)


def test_checks_only_at_30_percent(caplog):
    check = ChanceLossCheck(LN3, "ln(3)", "")
    with caplog.at_level(logging.WARNING):
        _feed(check, [0.5] * 30 + [LN3] * 70, 100)  # a late return to chance is not this check's
    assert not _warnings(caplog)
    short = ChanceLossCheck(LN3, "ln(3)", "")
    with caplog.at_level(logging.WARNING):
        _feed(short, [LN3] * 19, 19)  # a smoke run cannot leave chance: not checked
    assert not short.warned and not _warnings(caplog)
    just = ChanceLossCheck(LN3, "ln(3)", "", window=0.3)
    with caplog.at_level(logging.WARNING):
        _feed(just, [LN3] * 20, 20)
    assert just.warned and "steps 1-6 of 20" in _warnings(caplog)[0].getMessage()


def test_bad_settings():
    with pytest.raises(ValueError):
        ChanceLossCheck(LN3, "ln(3)", "", after=0.1, window=0.2)


def _classify(tmp_path, tiny_bert_dir, lr):
    rows = "".join(f"{i % 2}\t{i}\t{i + 1}\tthe {('dog', 'cat')[i % 2]} sat .\tthe mat .\n" for i in range(40))
    data = tmp_path / "MRPC"
    data.mkdir(exist_ok=True)
    (data / "train.tsv").write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + rows)
    return main(["classify", "--task_name=MRPC", "--do_train", f"--data_dir={data}",
                 f"--init_checkpoint={tiny_bert_dir}", f"--output_dir={tmp_path / f'out{lr}'}",
                 "--train_batch_size=8", "--num_train_epochs=4", "--max_seq_length=16",
                 f"--learning_rate={lr}", "--warmup_proportion=0", "--progress=false"])


def test_classify_warns_when_it_does_not_learn(tmp_path, tiny_bert_dir, caplog, one_thread):
    with caplog.at_level(logging.WARNING):
        assert _classify(tmp_path, tiny_bert_dir, 1e-9) == 0  # learns nothing: loss stays ln(2)
    (w,) = _warnings(caplog)
    assert "ln(2), the loss of a uniform guess over 2 labels = 0.6931" in w.getMessage()
    assert "--learning_rate" in w.getMessage() and "--optimizer=adamw" in w.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _classify(tmp_path, tiny_bert_dir, 3e-3) == 0  # learns: silent
    assert not _warnings(caplog)


def test_squad_warns_when_it_does_not_learn(tmp_path, tiny_bert_dir, caplog, one_thread):
    context = "the cat sat on the mat . john smith ran ."
    paragraphs = [{"context": context, "qas": [{"id": str(i), "question": "who ran ?",
                                                "answers": [{"text": "john smith", "answer_start": 23}]}]}
                  for i in range(8)]
    train = tmp_path / "train.json"
    train.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    with caplog.at_level(logging.WARNING):
        assert main(["squad", "--do_train", f"--train_file={train}", f"--init_checkpoint={tiny_bert_dir}",
                     f"--output_dir={tmp_path / 'sq'}", "--train_batch_size=2", "--num_train_epochs=5",
                     "--max_seq_length=32", "--doc_stride=8", "--max_query_length=8",
                     "--learning_rate=1e-9", "--progress=false"]) == 0
    (w,) = _warnings(caplog)
    assert "uniform guess over each window's tokens" in w.getMessage()

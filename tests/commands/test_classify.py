"""`openbert classify` end to end on a tiny model, its outputs, resume, bad input; the real MRPC run (slow)."""
import json
import logging
import math

import pytest
import torch

from openbert.checkpoints.pretrained import save_pretrained
from openbert.cli import main
from openbert.config import BertConfig
from openbert.model.bert import BertForSequenceClassification, BertModel
from openbert.tasks.classification import pipeline as classifier
from openbert.training import trainer as training

WORDS = "the a cat dog sat ran on mat fast slow big small red blue is was".split()
HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


@pytest.fixture
def pretrained(tmp_path):
    """A tiny 'pre-trained' BERT folder (config, weights, vocab) in the openbert/HF layout."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + WORDS) + "\n")
    config = BertConfig(vocab_size=6 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    folder = tmp_path / "pretrained"
    save_pretrained(BertModel(config), folder, vocab_file=vocab)
    return folder


def write_mrpc(folder, n_train=48, n_dev=16, n_test=8):
    """Pairs whose label says whether the two sentences are the same (learnable)."""
    import random

    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)

    def rows(n, labelled=True):
        out = []
        for i in range(n):
            a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
            same = i % 2
            b = a if same else " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
            out.append(f"{same if labelled else i}\t{i}\t{i + 1}\t{a} .\t{b} .\n")
        return "".join(out)

    (folder / "train.tsv").write_text(HEADER + rows(n_train))
    (folder / "dev.tsv").write_text(HEADER + rows(n_dev))
    (folder / "test.tsv").write_text("index\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + rows(n_test, False))
    return folder


def classify(*flags):
    return main(["classify", "--progress=false", *flags])


def read_results(path):
    return dict(line.split(" = ") for line in path.read_text().splitlines())


def test_train_eval_predict_outputs(tmp_path, pretrained):
    data, out = write_mrpc(tmp_path / "MRPC"), tmp_path / "out"
    rc = classify("--task_name=MRPC", "--do_train", "--do_eval=true", "--do_predict", f"--data_dir={data}",
                  f"--init_checkpoint={pretrained}", f"--output_dir={out}", "--train_batch_size=8",
                  "--num_train_epochs=2", "--learning_rate=1e-3", "--max_seq_length=32")
    assert rc == 0
    lines = (out / "eval_results.txt").read_text().splitlines()
    assert [line.split(" = ")[0] for line in lines] == ["eval_accuracy", "eval_f1", "eval_loss", "global_step", "loss"]
    res = read_results(out / "eval_results.txt")
    assert int(res["global_step"]) == int(48 / 8 * 2)
    assert 0 <= float(res["eval_accuracy"]) <= 1 and math.isfinite(float(res["eval_loss"]))
    rows = [list(map(float, r.split("\t"))) for r in (out / "test_results.tsv").read_text().splitlines()]
    assert len(rows) == 8 and all(len(r) == 2 and abs(sum(r) - 1) < 1e-5 for r in rows)
    # the saved model loads back with its label names, and gives the same test probabilities
    model = BertForSequenceClassification.from_pretrained(out)
    assert model.num_labels == 2 and classifier.label_names(model.config) == ["0", "1"]
    assert (out / "vocab.txt").is_file() and (out / "metrics.jsonl").is_file()


def test_eval_only_restores_fine_tuned_model(tmp_path, pretrained):
    data, out = write_mrpc(tmp_path / "MRPC"), tmp_path / "out"
    common = ["--task_name=mrpc", f"--data_dir={data}", f"--output_dir={out}", "--max_seq_length=32"]
    assert classify(*common, "--do_train", "--do_eval", f"--init_checkpoint={pretrained}",
                    "--train_batch_size=8", "--num_train_epochs=1") == 0
    trained = read_results(out / "eval_results.txt")
    (out / "eval_results.txt").unlink()
    assert classify(*common, "--do_eval") == 0  # no --init_checkpoint: the model in --output_dir
    assert read_results(out / "eval_results.txt") == trained


def test_fresh_head_logged_as_info_when_training_and_warned_when_evaluated_untrained(tmp_path, pretrained, caplog):
    data = write_mrpc(tmp_path / "MRPC")
    common = ["--task_name=mrpc", f"--data_dir={data}", f"--init_checkpoint={pretrained}", "--max_seq_length=32"]
    with caplog.at_level(logging.INFO):
        assert classify(*common, "--do_train", f"--output_dir={tmp_path / 'a'}", "--train_batch_size=8",
                        "--num_train_epochs=1") == 0
    heads = [r for r in caplog.records if "classifier.weight" in r.getMessage()]
    assert [r.levelname for r in heads] == ["INFO"] and "fresh task head" in heads[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO):  # evaluating the pre-trained encoder: its head is random
        assert classify(*common, "--do_eval", f"--output_dir={tmp_path / 'b'}") == 0
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "has no trained task head" in warning.getMessage() and "--do_train" in warning.getMessage()


def test_interrupted_run_resumes(tmp_path, pretrained, monkeypatch):
    data = write_mrpc(tmp_path / "MRPC")
    common = ["--task_name=MRPC", "--do_train", "--do_eval", f"--data_dir={data}", f"--init_checkpoint={pretrained}",
              "--train_batch_size=8", "--num_train_epochs=1", "--save_checkpoints_steps=2", "--max_seq_length=32"]
    assert classify(*common, f"--output_dir={tmp_path / 'full'}") == 0
    want = read_results(tmp_path / "full" / "eval_results.txt")

    real_step, calls = training.Trainer._step, []

    def failing_step(self, *a):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_step(self, *a)

    monkeypatch.setattr(training.Trainer, "_step", failing_step)
    assert classify(*common, f"--output_dir={tmp_path / 'cut'}") == 130  # interrupted after 3 steps
    assert not (tmp_path / "cut" / "eval_results.txt").exists()
    monkeypatch.setattr(training.Trainer, "_step", real_step)
    assert classify(*common, f"--output_dir={tmp_path / 'cut'}", "--resume") == 0
    got = read_results(tmp_path / "cut" / "eval_results.txt")
    assert got["global_step"] == want["global_step"] == "6"
    assert float(got["eval_loss"]) == pytest.approx(float(want["eval_loss"]), rel=1e-4)
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))


def test_custom_jsonl_regression(tmp_path, pretrained):
    rows = [{"s1": " ".join(WORDS[i % 7: i % 7 + 3]), "s2": "the cat", "score": i % 5} for i in range(24)]
    (tmp_path / "tr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    rc = classify("--task_name=custom", "--do_train", "--do_eval", "--do_predict", f"--data_dir={tmp_path}",
                  "--train_file=tr.jsonl", "--dev_file=tr.jsonl", "--test_file=tr.jsonl", "--text_a_column=s1",
                  "--text_b_column=s2", "--label_column=score", "--regression", f"--init_checkpoint={pretrained}",
                  f"--output_dir={out}", "--train_batch_size=8", "--num_train_epochs=1", "--max_seq_length=16")
    assert rc == 0
    assert sorted(read_results(out / "eval_results.txt")) == ["eval_loss", "eval_pearson", "eval_spearman",
                                                              "global_step", "loss"]
    assert all(len(line.split("\t")) == 1 for line in (out / "test_results.tsv").read_text().splitlines())


def test_custom_labels_remembered_for_eval(tmp_path, pretrained):
    (tmp_path / "train.tsv").write_text("text_a\tlabel\nthe cat sat\tpos\nthe dog ran\tneg\n" * 4)
    out = tmp_path / "out"
    common = ["--task_name=custom", f"--data_dir={tmp_path}", "--dev_file=train.tsv", f"--output_dir={out}",
              "--max_seq_length=16"]
    assert classify(*common, "--do_train", f"--init_checkpoint={pretrained}", "--train_batch_size=4") == 0
    assert classify(*common, "--do_eval") == 0  # labels come from the saved model
    assert "eval_accuracy" in read_results(out / "eval_results.txt")


@pytest.mark.parametrize("flags,message", [
    ([], "at least one of --do_train, --do_eval or --do_predict must be true"),
    (["--do_train", "--max_seq_length=100"], "cannot use --max_seq_length=100: .* up to sequence length 64"),
    (["--do_train", "--task_name=glue"], "unknown task 'glue'; known tasks: cola, mnli"),
    (["--do_eval", "--data_dir=EMPTY"], r"mrpc dev set not found: looked for .*dev\.tsv"),
    (["--do_train", "--data_dir=SHORT"], r"train\.tsv, line 3: expected at least 5 tab-separated columns"),
    (["--do_train", "--data_dir=BADLABEL"], r"train\.tsv, line 2: unknown label 'yes'"),
])
def test_bad_input(tmp_path, pretrained, capsys, flags, message):
    for name, body in {"EMPTY": "", "SHORT": "1\t1\t2\ta\tb\n0\t3\tonly a\n", "BADLABEL": "yes\t1\t2\ta\tb\n"}.items():
        (tmp_path / name).mkdir()
        if body:
            (tmp_path / name / "train.tsv").write_text(HEADER + body)
    flags = [f.replace("=EMPTY", f"={tmp_path / 'EMPTY'}").replace("=SHORT", f"={tmp_path / 'SHORT'}")
             .replace("=BADLABEL", f"={tmp_path / 'BADLABEL'}") for f in flags]
    if not any(f.startswith("--task_name") for f in flags):
        flags.append("--task_name=MRPC")
    if not any(f.startswith("--max_seq_length") for f in flags):
        flags.append("--max_seq_length=32")
    if not any(f.startswith("--data_dir") for f in flags):
        flags.append(f"--data_dir={tmp_path / 'SHORT'}")
    rc = classify(*flags, f"--init_checkpoint={pretrained}", f"--output_dir={tmp_path / 'out'}")
    assert rc == 2
    import re

    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err


@pytest.mark.slow
def test_real_minilm_on_mrpc(tmp_path, minilm_dir, shared_data):
    """MiniLM-L6 fine-tuned on Microsoft's MRPC train file beats the majority baseline (66.5%) on its test file."""
    out = tmp_path / "mrpc"
    rc = classify("--task_name=MRPC", "--do_train", "--do_eval", f"--data_dir={shared_data / 'glue' / 'MRPC'}",
                  f"--init_checkpoint={minilm_dir}", f"--output_dir={out}", "--num_train_epochs=3",
                  "--learning_rate=2e-5", "--eval_batch_size=64")
    assert rc == 0
    assert float(read_results(out / "eval_results.txt")["eval_accuracy"]) > 0.72


# ---- nothing a user made is lost; errors before training ---------------------------------------
def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_output_dir_equal_to_the_init_checkpoint_is_refused(tmp_path, pretrained, capsys):
    data = write_mrpc(tmp_path / "MRPC")
    before = _tree(pretrained)
    rc = classify("--task_name=MRPC", "--do_train", f"--data_dir={data}", f"--init_checkpoint={pretrained}",
                  f"--output_dir={pretrained}", "--max_seq_length=32")
    assert rc == 2
    err = capsys.readouterr().err
    assert "--output_dir" in err and "an input of this command" in err and "Traceback" not in err
    assert _tree(pretrained) == before


def test_bad_dev_file_and_learning_rate_stop_the_run_before_training(tmp_path, pretrained, capsys):
    data = write_mrpc(tmp_path / "MRPC")
    (data / "dev.tsv").write_text(HEADER)  # a header, no rows
    out = tmp_path / "out"
    common = ["--task_name=MRPC", "--do_train", "--do_eval", f"--data_dir={data}", f"--init_checkpoint={pretrained}",
              f"--output_dir={out}", "--max_seq_length=32"]
    assert classify(*common) == 2
    assert f"{data / 'dev.tsv'}: the mrpc dev set has no examples" in capsys.readouterr().err
    assert not out.exists()  # no training happened, nothing was written
    assert classify(*common, "--learning_rate=0") == 2
    assert "--learning_rate=0.0 must be > 0" in capsys.readouterr().err
    assert not out.exists()


def test_a_rerun_continues_the_same_run_and_refuses_another(tmp_path, pretrained, capsys, caplog):
    data = write_mrpc(tmp_path / "MRPC")
    out = tmp_path / "out"
    common = ["--task_name=MRPC", "--do_train", f"--data_dir={data}", f"--init_checkpoint={pretrained}",
              f"--output_dir={out}", "--max_seq_length=32", "--train_batch_size=8", "--save_checkpoints_steps=2"]
    assert classify(*common, "--num_train_epochs=1") == 0
    with caplog.at_level("INFO", logger="openbert.training"):
        assert classify(*common, "--num_train_epochs=2") == 0  # the same run, trained longer: continued
    assert "resuming this run from" in caplog.text and "step-00000006.pt at step 6" in caplog.text
    assert int(sorted((out / "checkpoints").iterdir())[-1].name[5:13]) == 12
    assert classify(*common, "--num_train_epochs=2", "--max_train_examples=40") == 2  # other data
    err = capsys.readouterr().err
    assert "another run (the training data)" in err and "--resume" in err and "--overwrite_output_dir" in err
    kept = _tree(out)
    assert classify(*common, "--num_train_epochs=1", "--max_train_examples=40", "--overwrite_output_dir") == 0
    assert _tree(out) != kept and int(sorted((out / "checkpoints").iterdir())[-1].name[5:13]) == 5

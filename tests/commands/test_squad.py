"""`openbert squad` and `openbert squad-eval` end to end: real MiniLM-L6 weights fine-tuned on a
SQuAD-format file built from CoNLL-2003 (openbert.tasks.squad.synth), bad input, evaluation CLI."""
from __future__ import annotations

import json
import os
import random

import pytest

from openbert.cli import main
from openbert.tasks.squad import synth as squad_synth
from openbert.tasks.squad.metrics import evaluate


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.fixture(scope="module")
def conll(shared_data):

    train, dev = shared_data / "conll2003" / "eng.train", shared_data / "conll2003" / "eng.testa"
    if not train.is_file():
        pytest.skip(f"CoNLL-2003 not found at {train}")
    return train, dev


def _first_k_words_baseline(data: dict) -> dict:
    """Trivial baseline: the context's first k words, k = the mean gold answer length (rounded)."""
    golds = [len(qa["answers"][0]["text"].split()) for a in data["data"] for p in a["paragraphs"]
             for qa in p["qas"] if qa["answers"]]
    k = max(1, round(sum(golds) / len(golds)))
    return {qa["id"]: " ".join(p["context"].split()[:k]) for a in data["data"] for p in a["paragraphs"]
            for qa in p["qas"]}


def _random_span_baseline(data: dict, seed=0) -> dict:
    """Trivial baseline: a random span of the context as long as the gold answer."""
    rng = random.Random(seed)
    out = {}
    for a in data["data"]:
        for p in a["paragraphs"]:
            words = p["context"].split()
            for qa in p["qas"]:
                n = len(qa["answers"][0]["text"].split()) if qa["answers"] else 1
                s = rng.randrange(0, max(1, len(words) - n))
                out[qa["id"]] = " ".join(words[s:s + n])
    return out


def _fine_tune_and_predict(tmp_path, minilm_dir, conll, train_paragraphs, dev_paragraphs, epochs, extra=()):
    train_json = squad_synth.build(conll[0], max_paragraphs=train_paragraphs, sentences_per_paragraph=4)
    dev_json = squad_synth.build(conll[1], max_paragraphs=dev_paragraphs, sentences_per_paragraph=4)
    train, dev = _write(tmp_path / "train.json", train_json), _write(tmp_path / "dev.json", dev_json)
    out = tmp_path / "out"
    rc = main(["squad", f"--init_checkpoint={minilm_dir}", "--do_train", f"--train_file={train}", "--do_predict",
               f"--predict_file={dev}", "--max_seq_length=96", "--doc_stride=48", "--max_query_length=24",
               "--train_batch_size=16", "--learning_rate=1e-4", f"--num_train_epochs={epochs}",
               f"--output_dir={out}", "--progress=false", "--seed=1", *extra])
    assert rc == 0
    return dev_json, out


def _check_run(dev_json, out, capsys, min_f1):
    preds = json.loads((out / "predictions.json").read_text())
    assert set(preds) == {qa["id"] for a in dev_json["data"] for p in a["paragraphs"] for qa in p["qas"]}
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert all(nbest[k][0]["text"] == v for k, v in preds.items())
    assert (out / "predictions.json").read_text().startswith('{\n    "')  # indent 4, as the original
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics == pytest.approx(evaluate(dev_json, preds))
    assert '"f1"' in capsys.readouterr().out
    first_k = evaluate(dev_json, _first_k_words_baseline(dev_json))["f1"]
    rand = evaluate(dev_json, _random_span_baseline(dev_json))["f1"]
    print(f"SQuAD-CoNLL dev F1 {metrics['f1']:.1f} EM {metrics['exact_match']:.1f}; "
          f"first-k-words baseline F1 {first_k:.1f}, random-span baseline F1 {rand:.1f}")
    assert metrics["f1"] > min_f1
    assert metrics["f1"] > 2 * max(first_k, rand, 5.0)
    return metrics


@pytest.mark.slow
def test_fine_tune_minilm_on_conll_squad(tmp_path, minilm_dir, conll, capsys):
    dev_json, out = _fine_tune_and_predict(tmp_path, minilm_dir, conll, 150, 30, epochs=2)
    _check_run(dev_json, out, capsys, min_f1=15.0)
    assert (out / "model.safetensors").is_file() and not (out / "null_odds.json").exists()


def test_fine_tune_minilm_few_steps(tmp_path, minilm_dir, conll, capsys):
    """The fast twin of the test above: a few real training steps, then predict and evaluate."""
    dev_json, out = _fine_tune_and_predict(tmp_path, minilm_dir, conll, 12, 4, epochs=1)
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()][-1] == 2
    preds = json.loads((out / "predictions.json").read_text())
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics == pytest.approx(evaluate(dev_json, preds)) and len(preds) == 12
    assert (out / "model.safetensors").is_file() and not (out / "null_odds.json").exists()
    capsys.readouterr()
    assert main(["squad-eval", str(tmp_path / "dev.json"), str(out / "predictions.json")]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(metrics)


@pytest.mark.slow
def test_fine_tune_minilm_v2(tmp_path, minilm_dir, conll, capsys):
    train_json = squad_synth.build(conll[0], max_paragraphs=200, sentences_per_paragraph=4, version_2=True)
    dev_json = squad_synth.build(conll[1], max_paragraphs=30, sentences_per_paragraph=4, version_2=True)
    train, dev = _write(tmp_path / "train.json", train_json), _write(tmp_path / "dev.json", dev_json)
    out = tmp_path / "out"
    shape = ["--max_seq_length=96", "--doc_stride=48", "--max_query_length=24", f"--output_dir={out}",
             "--progress=false"]
    args = ["squad", f"--init_checkpoint={minilm_dir}", "--do_train", f"--train_file={train}", "--do_predict",
            f"--predict_file={dev}", "--train_batch_size=16", "--learning_rate=1e-4", "--num_train_epochs=3",
            *shape]
    assert main(args) == 2  # v2.0 data without --version_2_with_negative
    assert "--version_2_with_negative" in capsys.readouterr().err
    assert main(args + ["--version_2_with_negative"]) == 0
    metrics = json.loads((out / "eval_results.json").read_text())
    odds = json.loads((out / "null_odds.json").read_text())
    preds = json.loads((out / "predictions.json").read_text())
    assert set(odds) == set(preds)
    assert all((preds[k] == "") == (odds[k] > 0.0) for k in preds)
    assert metrics["HasAns_total"] > 0 and metrics["NoAns_total"] > 0
    no_answer_baseline = evaluate(dev_json, {k: "" for k in preds})["f1"]
    print(f"v2 dev: {metrics}; always-no-answer baseline F1 {no_answer_baseline:.1f}")
    assert metrics["f1"] > no_answer_baseline + 5.0 and metrics["HasAns_f1"] > 10.0
    assert metrics["best_f1"] >= metrics["f1"]
    # squad-eval on the written files gives the same numbers
    capsys.readouterr()
    assert main(["squad-eval", dev, str(out / "predictions.json"), "--na-prob-file", str(out / "null_odds.json")]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(metrics)
    # predicting again from the model saved in --output_dir reproduces the predictions
    before = (out / "predictions.json").read_text()
    assert main(["squad", "--do_predict", f"--predict_file={dev}", "--version_2_with_negative", *shape]) == 0
    assert (out / "predictions.json").read_text() == before


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
def _run(tmp_path, minilm_dir, *flags):
    return main(["squad", f"--init_checkpoint={minilm_dir}", f"--output_dir={tmp_path / 'out'}",
                 "--progress=false", *flags])


@pytest.mark.parametrize("flags, message", [
    ([], "at least one of --do_train or --do_predict"),
    (["--do_train"], "--do_train needs --train_file"),
    (["--do_predict"], "--do_predict needs --predict_file"),
    (["--do_predict", "--predict_file=x.json", "--doc_stride=384"], "--doc_stride=384 must be"),
    (["--do_predict", "--predict_file=x.json", "--max_seq_length=80", "--max_query_length=8",
      "--doc_stride=128"], "--doc_stride=128"),
    (["--do_predict", "--predict_file=x.json", "--max_seq_length=64"], "must be greater than --max_query_length=64"),
    (["--do_predict", "--predict_file=x.json", "--max_seq_length=1024"], "only trained up to sequence length 512"),
])
def test_bad_flags(tmp_path, minilm_dir, capsys, flags, message):
    assert _run(tmp_path, minilm_dir, *flags) == 2
    assert message in capsys.readouterr().err


def test_non_squad_json_and_missing_file(tmp_path, minilm_dir, capsys):
    bad = _write(tmp_path / "mrpc.json", [{"sentence1": "a", "sentence2": "b", "label": 1}])
    assert _run(tmp_path, minilm_dir, "--do_predict", f"--predict_file={bad}") == 2
    err = capsys.readouterr().err
    assert "not SQuAD format" in err and "mrpc.json" in err
    assert _run(tmp_path, minilm_dir, "--do_train", f"--train_file={tmp_path / 'none.json'}") == 2
    assert "file not found" in capsys.readouterr().err
    assert not (tmp_path / "out" / "predictions.json").exists()


def test_v2_data_without_flag(tmp_path, minilm_dir, capsys):
    data = {"version": "v2.0", "data": [{"paragraphs": [{"context": "a b", "qas": [
        {"id": "x", "question": "q?", "answers": [], "is_impossible": True}]}]}]}
    path = _write(tmp_path / "v2.json", data)
    assert _run(tmp_path, minilm_dir, "--do_predict", f"--predict_file={path}") == 2
    assert "add --version_2_with_negative" in capsys.readouterr().err


def test_predict_with_untrained_head_writes_files(tmp_path, minilm_dir, capsys):
    """A real checkpoint without a QA head: the head is initialised fresh, predictions still valid."""
    ctx = "The leader was John Smith (1895-1943). " * 20  # long context: several windows
    data = {"version": "v2.0", "data": [{"paragraphs": [{"context": ctx, "qas": [
        {"id": "a", "question": "Who was the leader?", "answers": [{"text": "John Smith", "answer_start": 15}],
         "is_impossible": False},
        {"id": "b", "question": "Where?", "answers": [], "is_impossible": True}]}]}]}
    path = _write(tmp_path / "dev.json", data)
    assert _run(tmp_path, minilm_dir, "--do_predict", f"--predict_file={path}", "--version_2_with_negative",
                "--max_seq_length=64", "--max_query_length=16", "--doc_stride=16") == 0
    out = tmp_path / "out"
    preds = json.loads((out / "predictions.json").read_text())
    odds = json.loads((out / "null_odds.json").read_text())
    assert set(preds) == set(odds) == {"a", "b"}
    for k, v in preds.items():
        assert v == "" or v in ctx
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics["total"] == 2 and "best_f1_thresh" in metrics


# ------------------------------------------------------------------------------------------------
# squad-eval
# ------------------------------------------------------------------------------------------------
def test_squad_eval_cli(tmp_path, capsys):
    data = {"version": "1.1", "data": [{"paragraphs": [{"context": "c", "qas": [
        {"id": "1", "question": "q", "answers": [{"text": "Denver Broncos", "answer_start": 0},
                                                 {"text": "Broncos", "answer_start": 0}]},
        {"id": "2", "question": "q", "answers": [{"text": "Steve Smith Jr.", "answer_start": 0}]}]}]}]}
    d = _write(tmp_path / "dev.json", data)
    p = _write(tmp_path / "pred.json", {"1": "the broncos", "2": "Steve Smith"})
    assert main(["squad-eval", d, p, "-o", str(tmp_path / "m.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == pytest.approx({"exact_match": 50.0, "f1": 90.0})
    assert json.loads((tmp_path / "m.json").read_text()) == out
    # nbest file instead of predictions, and a non-JSON file: clear errors
    nb = _write(tmp_path / "nbest.json", {"1": [{"text": "x"}]})
    assert main(["squad-eval", d, nb]) == 2
    assert "not a string" in capsys.readouterr().err
    (tmp_path / "garbage.json").write_text("{oops")
    assert main(["squad-eval", d, str(tmp_path / "garbage.json")]) == 2
    assert "not a JSON file" in capsys.readouterr().err
    assert main(["squad-eval", str(tmp_path / "missing.json"), p]) == 2
    assert "file not found" in capsys.readouterr().err


def test_squad_eval_follows_the_declared_version_and_version_flag(tmp_path, capsys):
    data = {"version": "1.1", "data": [{"paragraphs": [{"context": "c", "qas": [
        {"id": "1", "question": "q", "answers": [{"text": "Broncos", "answer_start": 0}], "is_impossible": True},
        {"id": "2", "question": "q", "answers": [{"text": "Steve", "answer_start": 0}]}]}]}]}
    d = _write(tmp_path / "dev.json", data)
    p = _write(tmp_path / "pred.json", {"1": "Broncos", "2": "Steve"})
    assert main(["squad-eval", d, p]) == 0
    assert json.loads(capsys.readouterr().out) == {"exact_match": 100.0, "f1": 100.0}
    assert main(["squad-eval", d, p, "--version", "2.0"]) == 0
    assert json.loads(capsys.readouterr().out)["HasAns_total"] == 2


def test_squad_eval_out_file_into_a_missing_folder_or_onto_a_folder(tmp_path, capsys):
    data = {"version": "1.1", "data": [{"paragraphs": [{"context": "c", "qas": [
        {"id": "1", "question": "q", "answers": [{"text": "x", "answer_start": 0}]}]}]}]}
    d, p = _write(tmp_path / "dev.json", data), _write(tmp_path / "pred.json", {"1": "x"})
    assert main(["squad-eval", d, p, "-o", str(tmp_path / "new" / "dir" / "m.json")]) == 0
    assert json.loads((tmp_path / "new" / "dir" / "m.json").read_text())["f1"] == 100.0
    (tmp_path / "folder").mkdir()
    assert main(["squad-eval", d, p, "-o", str(tmp_path / "folder")]) == 2
    assert "--out-file" in capsys.readouterr().err and os.listdir(tmp_path / "folder") == []
    assert sorted(os.listdir(tmp_path)) == ["dev.json", "folder", "new", "pred.json"]

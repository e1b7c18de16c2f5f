"""The NER pipeline on a tiny model: it learns, every word gets one tag, files in conlleval's format."""
import sys
from pathlib import Path

import pytest

from openbert.tasks.ner import data as D
from openbert.tasks.ner import metrics as M
from openbert.tasks.ner import pipeline
from openbert.tasks import common
from openbert.training import TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conll_fixtures import synthetic_conll, tiny_bert, tokenizer  # noqa: E402

CPU = common.RunOptions(device="cpu", progress=False)


@pytest.fixture
def setup(tmp_path, one_thread):
    (tmp_path / "train.txt").write_text(synthetic_conll(30, seed=1))
    (tmp_path / "dev.txt").write_text(synthetic_conll(6, seed=2))
    train = D.read_conll(tmp_path / "train.txt")
    dev = D.read_conll(tmp_path / "dev.txt")
    labels = D.label_list(train)
    label_map = {t: i for i, t in enumerate(labels)}
    tok = tokenizer(tmp_path)
    return tmp_path, train, dev, labels, label_map, tok


def trained(tmp_path, features, labels, steps=60):
    from openbert.checkpoints import load_config

    folder = tiny_bert(tmp_path)
    model = pipeline.build_model(folder, load_config(folder), len(labels))
    args = TrainingArguments(output_dir=str(tmp_path / "run"), train_batch_size=8, learning_rate=2e-3,
                             num_train_steps=steps, num_warmup_steps=5, save_checkpoints_steps=None,
                             progress=False, plot=False, device="cpu")
    result = pipeline.train(model, features, args)
    return model, result


def test_learns_and_reports_conlleval(setup):
    tmp_path, train, dev, labels, label_map, tok = setup
    model, result = trained(tmp_path, D.convert_to_features(train, tok, 32, label_map), labels)
    assert result.global_step == 60
    dev_features = D.convert_to_features(dev, tok, 32, label_map)
    res, predictions, report = pipeline.evaluate(model, dev, dev_features, labels, "iob1", 4, 60, options=CPU)
    assert sorted(res)[:5] == ["eval_accuracy", "eval_f1", "eval_f1_LOC", "eval_f1_ORG", "eval_f1_PER"]
    assert {"eval_precision", "eval_recall", "eval_loss", "loss", "global_step"} <= set(res)
    assert res["eval_f1"] > 0.9, res  # the tags follow from the words: a working pipeline learns them
    assert [len(p) for p in predictions] == [len(s.words) for s in dev.sentences]
    assert report.startswith(f"processed {sum(len(s.words) for s in dev.sentences) + 6} tokens")  # + -DOCSTART-

    # the written file, read back as conlleval reads it, gives the same numbers
    rows = pipeline.conll_rows(dev, predictions)
    pipeline.write_predictions(tmp_path / "pred.txt", rows)
    lines = (tmp_path / "pred.txt").read_text().split("\n")
    assert lines[0] == "-DOCSTART- O O" and lines[1] == ""
    back = [tuple(line.split()) if line else None for line in lines[:-1]]
    assert back == rows
    assert M.scores(M.count_chunks(back))["f1"] == pytest.approx(res["eval_f1"])

    # document context: the same words, each predicted once, from wider windows
    ctx = D.convert_to_features(dev, tok, 32, label_map, document_context=True)
    assert len(ctx) == len(dev.sentences) and sum(len(f.input_ids) for f in ctx) > sum(
        len(f.input_ids) for f in dev_features)
    tags = pipeline.predict_tags(model, dev, ctx, labels, 4, CPU)
    assert [len(t) for t in tags] == [len(s.words) for s in dev.sentences]


def test_eval_loss_is_the_mean_word_loss(setup):
    import torch

    tmp_path, train, dev, labels, label_map, tok = setup
    model, _ = trained(tmp_path, D.convert_to_features(train, tok, 32, label_map), labels, steps=3)
    features = D.convert_to_features(dev, tok, 32, label_map)
    res, _, _ = pipeline.evaluate(model, dev, features, labels, "iob1", len(features), 3, options=CPU)
    model.eval()
    with torch.no_grad():
        loss = model(**D.collate(features)).loss.item()  # one batch: mean over all labelled words
    assert res["eval_loss"] == pytest.approx(loss, rel=1e-5) and res["loss"] == pytest.approx(loss, rel=1e-5)


def test_rows_of_an_unlabelled_file_and_iobes(tmp_path):
    (tmp_path / "t.txt").write_text("-DOCSTART-\n\nJohn\nSmith\n\nParis\n")
    data = D.read_conll(tmp_path / "t.txt", labelled=None)
    rows = pipeline.conll_rows(data, [["I-PER", "I-PER"], ["I-LOC"]])
    assert rows == [("-DOCSTART-", "O"), None, ("John", "I-PER"), ("Smith", "I-PER"), None, ("Paris", "I-LOC"), None]
    (tmp_path / "e.txt").write_text("John S-PER\nSmith S-PER\n")
    iobes = D.read_conll(tmp_path / "e.txt")
    assert pipeline.conll_rows(iobes, [["S-PER", "E-PER"]], "iobes") == [
        ("John", "B-PER", "B-PER"), ("Smith", "B-PER", "I-PER"), None]
    res, _ = pipeline.tag_metrics(iobes, [["S-PER", "S-PER"]], "iobes")
    assert res["f1"] == 1.0
    res, text = pipeline.tag_metrics(iobes, [["S-PER", "S-PER"]], "none")
    assert res == {"accuracy": 1.0} and "accuracy" in text

"""`openbert ner` end to end on a tiny model: outputs, eval-only from the saved model, bad input;
the real MiniLM-L6 run on CoNLL-2003 (slow)."""
import re
import sys
from pathlib import Path

import pytest

from openbert.cli import main
from openbert.model import BertForTokenClassification
from openbert.tasks import common
from openbert.tasks.ner import metrics as M

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks" / "ner"))
from conll_fixtures import synthetic_conll, tiny_bert  # noqa: E402

RESULT_KEYS = ["eval_accuracy", "eval_f1", "eval_loss", "eval_precision", "eval_recall", "global_step", "loss"]


def ner(*flags):
    return main(["ner", "--progress=false", "--seed=1", *flags])


def read_results(path):
    return dict(line.split(" = ") for line in path.read_text().splitlines())


@pytest.fixture
def conll_dir(tmp_path):
    folder = tmp_path / "conll"
    folder.mkdir()
    (folder / "eng.train").write_text(synthetic_conll(16, seed=1))
    (folder / "eng.testa").write_text(synthetic_conll(4, seed=2))
    (folder / "eng.testb").write_text(synthetic_conll(4, seed=3) + "-DOCSTART- -X- -X- O\n")
    return folder


def test_train_eval_predict_outputs(tmp_path, conll_dir, one_thread):
    out = tmp_path / "out"
    rc = ner("--do_train", "--do_eval", "--do_predict", f"--data_dir={conll_dir}",
             f"--init_checkpoint={tiny_bert(tmp_path)}", f"--output_dir={out}", "--train_batch_size=8",
             "--num_train_epochs=3", "--learning_rate=2e-3", "--max_seq_length=32", "--document_context")
    assert rc == 0
    res = read_results(out / "eval_results.txt")
    keys = [line.split(" = ")[0] for line in (out / "eval_results.txt").read_text().splitlines()]
    assert keys == sorted(keys) and set(RESULT_KEYS) <= set(keys)
    assert {"eval_f1_PER", "eval_precision_LOC", "eval_recall_ORG"} <= set(keys)
    assert 0 <= float(res["eval_f1"]) <= 1 and int(res["global_step"]) > 0
    assert (out / "eval_conlleval.txt").read_text().startswith("processed ")

    # test_predictions.txt: word gold predicted, blank lines, -DOCSTART- kept (the trailing one too)
    lines = (out / "test_predictions.txt").read_text().rstrip("\n").split("\n")
    gold = (conll_dir / "eng.testb").read_text().rstrip("\n").split("\n")
    assert len(lines) == len(gold) and lines[-1] == "-DOCSTART- O O"
    for mine, theirs in zip(lines, gold):
        assert (mine == "") == (theirs == "")
        if mine:
            assert mine.split()[:2] == [theirs.split()[0], theirs.split()[-1]] and len(mine.split()) == 3
    # test_results.txt is conlleval over that very file
    rows = [tuple(line.split()) if line else None for line in lines]
    s = M.scores(M.count_chunks(rows))
    test = read_results(out / "test_results.txt")
    assert float(test["test_f1"]) == pytest.approx(s["f1"]) and float(test["test_accuracy"]) == pytest.approx(
        s["accuracy"])

    model = BertForTokenClassification.from_pretrained(out)
    assert common.label_names(model.config) == ["O", "I-LOC", "I-ORG", "I-PER"]
    assert model.config.extra["tag_scheme"] == "iob1"


def test_eval_only_uses_the_saved_model_and_unlabelled_test(tmp_path, conll_dir, one_thread):
    out = tmp_path / "out"
    common = [f"--data_dir={conll_dir}", f"--output_dir={out}", "--max_seq_length=32"]
    assert ner(*common, "--do_train", "--do_eval", f"--init_checkpoint={tiny_bert(tmp_path)}",
               "--train_batch_size=8") == 0
    trained = read_results(out / "eval_results.txt")
    (out / "eval_results.txt").unlink()
    words_only = "".join(line.split()[0] + "\n" if line.strip() else "\n"
                         for line in (conll_dir / "eng.testb").read_text().splitlines())
    (conll_dir / "words.txt").write_text(words_only)
    assert ner(*common, "--do_eval", "--do_predict", "--test_file=words.txt") == 0
    assert read_results(out / "eval_results.txt") == trained
    lines = (out / "test_predictions.txt").read_text().splitlines()
    assert all(len(line.split()) == 2 for line in lines if line) and not (out / "test_results.txt").exists()


def test_chunk_column_and_iob2_files(tmp_path, one_thread):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "train.txt").write_text(synthetic_conll(8, seed=1, scheme="iob2"))
    (folder / "valid.txt").write_text(synthetic_conll(2, seed=2, scheme="iob2"))
    out = tmp_path / "out"
    assert ner("--do_train", "--do_eval", f"--data_dir={folder}", f"--init_checkpoint={tiny_bert(tmp_path)}",
               f"--output_dir={out}", "--max_seq_length=32", "--train_batch_size=8") == 0
    model = BertForTokenClassification.from_pretrained(out)
    assert model.config.extra["tag_scheme"] == "iob2" and "B-PER" in common.label_names(model.config)
    # the second column ("X" everywhere) as plain tags: token accuracy only
    assert ner("--do_train", "--do_eval", f"--data_dir={folder}", f"--init_checkpoint={tiny_bert(tmp_path)}",
               f"--output_dir={tmp_path / 'pos'}", "--max_seq_length=32", "--tag_column=1",
               "--train_batch_size=8") == 0
    assert sorted(read_results(tmp_path / "pos" / "eval_results.txt")) == [
        "eval_accuracy", "eval_loss", "global_step", "loss"]


BAD = {
    "eng.train": "John NNP I-PER\nSmith NNP I-PER\n\nParis NNP I-LOC\n",
    "one_column.txt": "John NNP I-PER\nSmith\n",
    "empty.txt": "",
    "iob1.txt": "Peter NNP I-PER\n",
}


@pytest.mark.parametrize("flags,message", [
    (["--tag_column=5"], r"eng\.train, line 1: no tag column 5 \(the line has 3 columns"),
    (["--tag_scheme=bilou"], r"--tag_scheme=bilou is unknown; choose one of auto, iob1, iob2, iobes, none"),
    (["--train_file=empty.txt"], r"empty\.txt: no sentences \(an empty file\?\)"),
    (["--train_file=one_column.txt"], r"one_column\.txt, line 2: one column \('Smith'\)"),
    (["--train_file=iob1.txt", "--tag_scheme=iob2"], r"iob1\.txt, line 1: tag 'I-PER' cannot follow 'O' in IOB2"),
    (["--train_file=nope.txt"], r"the train file not found: looked for .*nope\.txt"),
    (["--doc_stride=40"], r"--doc_stride=40 must be between 1 and --max_seq_length - 2 = 30"),
    (["--do_train=false"], "at least one of --do_train, --do_eval or --do_predict must be true"),
    (["--max_seq_length=100"], r"cannot use --max_seq_length=100: .* up to sequence length 64"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, flags, message):
    data = tmp_path / "data"
    data.mkdir()
    for name, text in BAD.items():
        (data / name).write_text(text)
    out = tmp_path / "out"
    args = ["--do_train", f"--data_dir={data}", f"--init_checkpoint={tiny_bert(tmp_path)}", f"--output_dir={out}"]
    if not any(f.startswith("--max_seq_length") for f in flags):
        args.append("--max_seq_length=32")
    assert ner(*args, *flags) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "model.safetensors").exists()


def test_eval_without_labels_in_the_model(tmp_path, conll_dir, capsys):
    rc = ner("--do_eval", f"--data_dir={conll_dir}", f"--init_checkpoint={tiny_bert(tmp_path)}",
             f"--output_dir={tmp_path / 'out'}", "--max_seq_length=32")
    assert rc == 2 and "the model has no tag labels (id2label" in capsys.readouterr().err


@pytest.mark.slow
def test_real_minilm_on_conll2003(tmp_path, minilm_dir, shared_data):
    """MiniLM-L6 (uncased) fine-tuned on the first 3,000 sentences of eng.train for two epochs, then
    every sentence of eng.testa predicted; conlleval's numbers agree with seqeval on the predictions."""
    seqeval = pytest.importorskip("seqeval.metrics")
    out = tmp_path / "ner"
    rc = ner("--do_train", "--do_predict", f"--data_dir={shared_data / 'conll2003'}", "--test_file=eng.testa",
             f"--init_checkpoint={minilm_dir}", f"--output_dir={out}", "--max_train_examples=3000",
             "--num_train_epochs=2", "--learning_rate=1e-4", "--train_batch_size=32", "--predict_batch_size=64")
    assert rc == 0
    sentences, gold, pred = [], [], []
    for line in (out / "test_predictions.txt").read_text().splitlines() + [""]:
        if not line or line.startswith("-DOCSTART-"):
            if sentences:
                gold.append([g for g, _ in sentences])
                pred.append([p for _, p in sentences])
            sentences = []
            continue
        _, g, p = line.split()
        sentences.append((g, p))
    assert len(gold) == 3250 and sum(map(len, gold)) == 51362  # every word of eng.testa, once
    res = read_results(out / "test_results.txt")
    assert float(res["test_f1"]) == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-9)
    assert float(res["test_precision"]) == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-9)
    assert float(res["test_f1"]) > 0.75, res  # an untrained head scores about 0

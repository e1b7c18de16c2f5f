"""`openbert multiple-choice` end to end on a tiny model (SWAG CSV and custom JSON lines), bad
input; the real MiniLM-L6 run on the SWAG-format set built from WikiText-2 (slow)."""
import json
import re
import sys
from pathlib import Path

import pytest

from openbert.cli import main
from openbert.model import BertForMultipleChoice

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks" / "multiple_choice"))
from mc_fixtures import questions, tiny_bert, write_swag  # noqa: E402


def mc(*flags):
    return main(["multiple-choice", "--progress=false", "--seed=1", *flags])


def read_results(path):
    return dict(line.split(" = ") for line in path.read_text().splitlines())


@pytest.fixture
def swag_dir(tmp_path):
    folder = tmp_path / "swag"
    folder.mkdir()
    write_swag(folder / "train.csv", 48, seed=1)
    write_swag(folder / "val.csv", 16, seed=2)
    write_swag(folder / "test.csv", 8, seed=3, labelled=False)
    return folder


def test_swag_train_eval_predict(tmp_path, swag_dir, one_thread):
    out = tmp_path / "out"
    common = ["--task_name=swag", f"--data_dir={swag_dir}", f"--output_dir={out}", "--max_seq_length=32"]
    assert mc(*common, "--do_train", "--do_eval", "--do_predict", f"--init_checkpoint={tiny_bert(tmp_path)}",
              "--train_batch_size=8", "--num_train_epochs=2", "--learning_rate=1e-3") == 0
    lines = (out / "eval_results.txt").read_text().splitlines()
    assert [line.split(" = ")[0] for line in lines] == ["eval_accuracy", "eval_loss", "global_step", "loss"]
    assert read_results(out / "eval_results.txt")["global_step"] == str(int(48 / 8 * 2))
    rows = [list(map(float, r.split("\t"))) for r in (out / "test_results.tsv").read_text().splitlines()]
    assert len(rows) == 8 and all(len(r) == 4 and abs(sum(r) - 1) < 1e-5 for r in rows)
    assert isinstance(BertForMultipleChoice.from_pretrained(out), BertForMultipleChoice)
    # eval only: the model fine-tuned in --output_dir, the same results
    want = read_results(out / "eval_results.txt")
    (out / "eval_results.txt").unlink()
    assert mc(*common, "--do_eval") == 0
    assert read_results(out / "eval_results.txt") == want


def test_custom_jsonl_with_three_choices(tmp_path, one_thread):
    def jsonl(path, n, seed, labelled=True):
        rows = [{"context": c, "choices": e, **({"label": k} if labelled else {})}
                for c, e, k in questions(n, seed, choices=3)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    jsonl(tmp_path / "train.jsonl", 24, 1)
    jsonl(tmp_path / "dev.jsonl", 8, 2)
    jsonl(tmp_path / "new.jsonl", 5, 3, labelled=False)
    out = tmp_path / "out"
    assert mc("--task_name=custom", "--do_train", "--do_eval", "--do_predict", f"--data_dir={tmp_path}",
              "--test_file=new.jsonl", f"--init_checkpoint={tiny_bert(tmp_path)}", f"--output_dir={out}",
              "--max_seq_length=32", "--train_batch_size=8") == 0
    assert 0 <= float(read_results(out / "eval_results.txt")["eval_accuracy"]) <= 1
    rows = (out / "test_results.tsv").read_text().splitlines()
    assert len(rows) == 5 and all(len(r.split("\t")) == 3 for r in rows)


@pytest.mark.parametrize("flags,message", [
    (["--task_name=race"], "--task_name=race is unknown; choose one of swag, custom"),
    (["--train_file=missing.csv"], r"the swag train file not found: looked for .*missing\.csv"),
    (["--train_file=bad.csv"], r"bad\.csv, line 2: no column 'ending3'"),
    (["--train_file=empty.csv"], r"empty\.csv: no examples"),
    (["--do_train=false"], "at least one of --do_train, --do_eval or --do_predict must be true"),
    (["--train_batch_size=0"], "--train_batch_size=0 must be at least 1"),
    (["--max_seq_length=100"], r"cannot use --max_seq_length=100: .* up to sequence length 64"),
])
def test_bad_input_one_line_exit_2(tmp_path, swag_dir, capsys, flags, message):
    (swag_dir / "bad.csv").write_text("sent1,sent2,ending0,ending1,ending2,label\na,b,c,d,e,0\n")
    (swag_dir / "empty.csv").write_text("sent1,sent2,ending0,ending1,ending2,ending3,label\n")
    args = ["--do_train", f"--data_dir={swag_dir}", f"--init_checkpoint={tiny_bert(tmp_path)}",
            f"--output_dir={tmp_path / 'out'}"]
    if not any(f.startswith("--task_name") for f in flags):
        args.append("--task_name=swag")
    if not any(f.startswith("--max_seq_length") for f in flags):
        args.append("--max_seq_length=32")
    assert mc(*args, *flags) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.slow
def test_real_minilm_on_wikitext_swag(tmp_path, minilm_dir, shared_data):
    """MiniLM-L6 fine-tuned on 640 questions of the SWAG-format set built from WikiText-2 beats chance
    (25%) by far on its 345 val questions."""
    from openbert.tasks.multiple_choice import synth

    wiki = shared_data / "corpus" / "wikitext-2"
    data = tmp_path / "swag"
    synth.write_swag(synth.build(synth.read_documents([str(wiki / "valid.txt"), str(wiki / "test.txt")])), data)
    out = tmp_path / "out"
    assert mc("--task_name=swag", "--do_train", "--do_eval", f"--data_dir={data}", f"--init_checkpoint={minilm_dir}",
              f"--output_dir={out}", "--max_seq_length=80", "--train_batch_size=16", "--learning_rate=5e-5",
              "--num_train_epochs=1", "--max_train_examples=640", "--eval_batch_size=32") == 0
    assert float(read_results(out / "eval_results.txt")["eval_accuracy"]) > 0.5

"""A model name as --init_checkpoint: every command resolves it through the one resolution, fetching
on first use; `download --list` shows what is cached and where; a cache entry's folder is
refused with the folder that holds the model."""
from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from openbert.checkpoints import assets
from openbert.cli import main


@pytest.fixture
def named(tmp_path, tiny_bert_dir, monkeypatch):
    """``tiny-bert``: the tiny model as a registry entry served from a local zip, into an empty cache."""
    archive = tmp_path / "tiny-bert.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in tiny_bert_dir.iterdir():
            z.write(f, f"release/model/{f.name}")
    asset = assets.Asset("tiny-bert", "a tiny BERT", archive.name, hashlib.sha256(archive.read_bytes()).hexdigest(),
                         url=f"file://{archive}", subdir="release/model")
    monkeypatch.setitem(assets.ASSETS, "tiny-bert", asset)
    monkeypatch.setenv("OPENBERT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _listing(capsys):
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("tiny-bert "))
    return out, line


def test_every_command_takes_a_model_name(tmp_path, named, capsys, one_thread):
    out, line = _listing(capsys)
    assert f"cache: {named}" in out and line.split()[1:] == ["model", "not", "cached"]
    data = tmp_path / "MRPC"
    data.mkdir()
    (data / "train.tsv").write_text("h\th\th\th\th\n" + "".join(f"{i % 2}\t{i}\t{i}\tthe cat sat .\tthe dog ran .\n"
                                                               for i in range(8)))
    # classify fetches it on first use
    assert main(["classify", "--task_name=MRPC", "--do_train", f"--data_dir={data}", "--init_checkpoint=tiny-bert",
                 f"--output_dir={tmp_path / 'cls'}", "--train_batch_size=4", "--num_train_epochs=1",
                 "--max_seq_length=16", "--progress=false"]) == 0
    _, line = _listing(capsys)
    where = named / "tiny-bert" / "release" / "model"
    assert line.split()[1:] == ["model", "cached:", str(where)]
    assert (tmp_path / "cls" / "vocab.txt").read_text() == (where / "vocab.txt").read_text()
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{
        "context": "john smith sat on the mat .", "qas": [{"id": "q", "question": "who sat ?",
                                                         "answers": [{"text": "john smith", "answer_start": 0}]}]}]}]}))
    assert main(["squad", "--do_train", f"--train_file={squad}", "--init_checkpoint=tiny-bert",
                 f"--output_dir={tmp_path / 'sq'}", "--train_batch_size=1", "--num_train_epochs=1",
                 "--max_seq_length=32", "--doc_stride=8", "--max_query_length=8", "--progress=false"]) == 0
    (tmp_path / "in.txt").write_text("the cat sat .\n")
    assert main(["extract-features", "--init_checkpoint=tiny-bert", f"--input_file={tmp_path / 'in.txt'}",
                 f"--output_file={tmp_path / 'f.jsonl'}", "--layers=-1", "--max_seq_length=16"]) == 0
    assert main(["convert", "--input=tiny-bert", f"--output={tmp_path / 'tf'}"]) == 0
    assert (tmp_path / "tf" / "bert_model.ckpt.index").is_file()
    capsys.readouterr()
    # fill-mask and pretrain resolve the name too (this encoder has no masked-LM head to fill with)
    assert main(["fill-mask", "--init_checkpoint=tiny-bert", "the [MASK] ."]) == 2
    assert f"{where}/model.safetensors has no masked-LM head" in capsys.readouterr().err
    assert main(["pretrain", "--do_eval", f"--input_file={tmp_path / 'none'}", "--init_checkpoint=tiny-bert",
                 f"--output_dir={tmp_path / 'pt'}"]) == 2
    # the config came from the name's folder (the tiny model's position table is 64 long)
    err = capsys.readouterr().err
    assert f"the model ({where}) was only trained up to sequence length 64" in err


def test_cache_entry_folder_names_the_model_folder(tmp_path, named, capsys):
    root = assets.fetch("tiny-bert").parents[1]  # <cache>/tiny-bert, the model is two levels down
    (tmp_path / "in.txt").write_text("a b\n")
    for argv in (["classify", "--task_name=MRPC", "--do_train", "--data_dir=x", "--output_dir=o"],
                 ["fill-mask", "x [MASK]"],
                 ["extract-features", f"--input_file={tmp_path / 'in.txt'}", f"--output_file={tmp_path / 'o'}"]):
        assert main([*argv, f"--init_checkpoint={root}"]) == 2
        err = capsys.readouterr().err
        assert f"(the model is in {root}/release/model: pass that folder, or the model's name, tiny-bert)" in err


def test_a_data_set_name_is_not_a_model(capsys):
    assert main(["fill-mask", "--init_checkpoint=snli", "a [MASK] ."]) == 2
    assert "'snli' is a data set, not a model; model names: minilm-l6" in capsys.readouterr().err

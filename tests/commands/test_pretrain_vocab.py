"""The vocabulary travels with pre-training data: create-pretraining-data keeps it in the shard
folder, pretrain saves it with the model, fill-mask and extract-features need no extra flag."""
from __future__ import annotations

import json
import random

import pytest

from openbert.cli import main


@pytest.fixture
def shards(tmp_path, tiny_bert_dir, tiny_words):
    rng = random.Random(0)
    docs = "\n\n".join("\n".join(" ".join(rng.choice(tiny_words) for _ in range(rng.randint(4, 9))) + " ."
                                 for _ in range(6)) for _ in range(6))
    (tmp_path / "corpus.txt").write_text(docs + "\n")
    assert main(["create-pretraining-data", f"--input_file={tmp_path / 'corpus.txt'}",
                 f"--output_file={tmp_path / 'data'}", f"--vocab_file={tiny_bert_dir / 'vocab.txt'}",
                 "--max_seq_length=32", "--max_predictions_per_seq=5", "--progress=false"]) == 0
    return tmp_path / "data"


def _pretrain(data, config, out, *extra):
    return main(["pretrain", "--do_train", f"--input_file={data}", f"--output_dir={out}",
                 f"--bert_config_file={config}", "--max_seq_length=32", "--max_predictions_per_seq=5",
                 "--train_batch_size=4", "--num_train_steps=2", "--num_warmup_steps=0",
                 "--save_checkpoints_steps=0", "--progress=false", *extra])


def test_vocab_kept_with_the_data_and_the_model(tmp_path, tiny_bert_dir, shards, capsys, one_thread):
    vocab = (tiny_bert_dir / "vocab.txt").read_text()
    assert (shards / "vocab.txt").read_text() == vocab
    assert json.loads((shards / "meta.json").read_text())["vocab_file"] == "vocab.txt"
    out = tmp_path / "model"
    assert _pretrain(shards, tiny_bert_dir / "config.json", out) == 0  # no --vocab_file
    assert (out / "vocab.txt").read_text() == vocab
    capsys.readouterr()
    # the pre-trained folder is all fill-mask and extract-features need
    assert main(["fill-mask", f"--init_checkpoint={out}", "the cat [MASK] on the mat ."]) == 0
    assert "[MASK]" in capsys.readouterr().out
    (tmp_path / "in.txt").write_text("the cat sat .\n")
    assert main(["extract-features", f"--init_checkpoint={out}", f"--input_file={tmp_path / 'in.txt'}",
                 f"--output_file={tmp_path / 'f.jsonl'}", "--layers=-1", "--max_seq_length=16"]) == 0
    assert json.loads((tmp_path / "f.jsonl").read_text().splitlines()[0])["features"][0]["token"] == "[CLS]"


def test_another_vocab_than_the_datas_is_refused(tmp_path, tiny_bert_dir, shards, capsys):
    other = tmp_path / "other_vocab.txt"
    other.write_text((tiny_bert_dir / "vocab.txt").read_text().replace("cat\n", "cow\n"))
    assert _pretrain(shards, tiny_bert_dir / "config.json", tmp_path / "m", f"--vocab_file={other}") == 2
    err = capsys.readouterr().err
    assert "is not the vocabulary the data was made with" in err and str(shards / "vocab.txt") in err
    assert not (tmp_path / "m").exists()

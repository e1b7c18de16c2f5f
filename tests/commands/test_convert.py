"""`openbert convert`: TF -> HF -> TF through the command line, exact; clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from openbert.checkpoints import pretrained as checkpoints
from openbert.checkpoints.tf_bundle import TFCheckpointReader
from openbert.cli import main
from openbert.model.bert import BertForPreTraining


@pytest.fixture
def tiny_tf(shared_data):
    return shared_data / "checkpoints" / "tiny_tf"


def test_tf_to_hf_to_tf_is_exact(tiny_tf, shared_data, tmp_path, capsys):
    vocab = shared_data / "vocab" / "bert-base-uncased-vocab.txt"
    assert main(["convert", "--input", str(tiny_tf / "bert_model.ckpt"), "--output", str(tmp_path / "hf"),
                 f"--vocab_file={vocab}"]) == 0
    assert "converted 46 tensors" in capsys.readouterr().out
    hf = tmp_path / "hf"
    assert sorted(p.name for p in hf.iterdir()) == [".openbert-manifest.json", "bert_config.json", "config.json",
                                                   "model.safetensors", "vocab.txt"]
    hf_config = json.loads((hf / "config.json").read_text())
    assert hf_config["hidden_act"] == "gelu_new"  # the original's tanh GELU, in HF's words
    assert hf_config["architectures"] == ["BertForPreTraining"]
    expected = np.load(tiny_tf / "variables.npz")
    weights = load_file(hf / "model.safetensors")
    kernel = weights["bert.encoder.layer.1.attention.self.key.weight"]
    assert torch.equal(kernel, torch.from_numpy(expected["bert/encoder/layer_1/attention/self/key/kernel"]).t())

    assert main(["convert", "--input", str(hf), "--output", str(tmp_path / "tf"), "--to", "tf"]) == 0
    tf = tmp_path / "tf"
    assert sorted(p.name for p in tf.iterdir()) == [".openbert-manifest.json", "bert_config.json",
                                                   "bert_model.ckpt.data-00000-of-00001",
                                                   "bert_model.ckpt.index", "checkpoint", "vocab.txt"]
    reader = TFCheckpointReader(tf / "bert_model.ckpt")
    assert sorted(reader.entries) == sorted(expected.files)
    for name in expected.files:
        np.testing.assert_array_equal(reader.get_tensor(name).numpy(), expected[name], err_msg=name)
    assert json.loads((tf / "bert_config.json").read_text()) == json.loads((tiny_tf / "bert_config.json").read_text())
    assert checkpoints.find_vocab(tf) == str(tf / "vocab.txt")


def test_classifier_checkpoint_converts_with_its_head(tiny_tf, tmp_path):
    from openbert.model.bert import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(tiny_tf, num_labels=3)
    checkpoints.save_tf_checkpoint(model, tmp_path / "tf")
    assert TFCheckpointReader(tmp_path / "tf" / "bert_model.ckpt").entries["output_weights"].shape == (3, 16)
    assert main(["convert", "--input", str(tmp_path / "tf"), "--output", str(tmp_path / "hf")]) == 0
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and len(config["id2label"]) == 3
    back = BertForSequenceClassification.from_pretrained(tmp_path / "hf")
    assert torch.equal(back.classifier.weight, model.classifier.weight)


def test_convert_errors(tiny_tf, tmp_path, shared_data, capsys):
    assert main(["convert", "--input", str(tmp_path / "missing.ckpt"), "--output", str(tmp_path / "o")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    other = shared_data / "checkpoints" / "google_index_only" / "uncased_L-4_H-256_A-4" / "bert_config.json"
    assert main(["convert", "--input", str(tiny_tf), "--output", str(tmp_path / "o"),
                 "--bert_config_file", str(other)]) == 2
    err = capsys.readouterr().err
    assert "shape mismatch" in err and "[16]" in err and "[256]" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_convert_never_writes_tensors_its_config_has_no_place_for(tiny_tf, tmp_path, capsys):
    config = tmp_path / "one_layer.json"
    cfg = json.loads((tiny_tf / "bert_config.json").read_text())
    config.write_text(json.dumps({**cfg, "num_hidden_layers": 1}))
    assert main(["convert", "--input", str(tiny_tf), "--output", str(tmp_path / "o"),
                 "--bert_config_file", str(config)]) == 2
    err = capsys.readouterr().err
    assert "holds 16 tensor(s) that" in err and "bert.encoder.layer.1." in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_convert_into_a_folder_of_the_users_files_is_refused(tiny_tf, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    (out / "vocab.txt").write_text("my vocab")
    assert main(["convert", "--input", str(tiny_tf), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--output" in err and "did not write" in err and "--overwrite_output_dir" in err
    assert (out / "config.json").read_text() == '{"mine": true}' and (out / "vocab.txt").read_text() == "my vocab"
    assert main(["convert", "--input", str(tiny_tf), "--output", str(out), "--overwrite_output_dir"]) == 0
    assert not (out / "vocab.txt").exists() and "architectures" in (out / "config.json").read_text()


def test_convert_replaces_its_own_earlier_output_whole(tiny_tf, tmp_path):
    out = tmp_path / "o"
    assert main(["convert", "--input", str(tiny_tf), "--output", str(out), "--to", "tf"]) == 0
    assert (out / "bert_model.ckpt.index").is_file()
    assert main(["convert", "--input", str(tiny_tf), "--output", str(out), "--to", "hf"]) == 0
    assert not (out / "bert_model.ckpt.index").exists() and (out / "model.safetensors").is_file()
    BertForPreTraining.from_pretrained(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_a_convert_killed_midway_leaves_the_old_model_loadable(tiny_tf, tmp_path, monkeypatch):
    """The output folder is swapped in complete: a crash while writing leaves the old one whole."""
    out = tmp_path / "o"
    assert main(["convert", "--input", str(tiny_tf), "--output", str(out), "--to", "tf"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    from openbert.checkpoints import pretrained as ck

    def dies(*a, **k):
        raise KeyboardInterrupt  # as a signal arriving after the .data file was written
    monkeypatch.setattr(ck, "write_checkpoint_state", dies)
    assert main(["convert", "--input", str(tiny_tf), "--output", str(out), "--to", "tf"]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    BertForPreTraining.from_pretrained(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]

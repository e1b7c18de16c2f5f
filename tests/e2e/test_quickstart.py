"""`openbert quickstart` on a small slice of the real model and data; `openbert download`."""
import re

from openbert.cli import main


def test_quickstart_small(tmp_path, minilm_dir, snli_dir, capsys):
    out = tmp_path / "qs"
    rc = main(["quickstart", "--train_examples=48", "--eval_examples=40", "--train_batch_size=16",
               "--eval_batch_size=40", f"--output_dir={out}", "--progress=false"])
    assert rc == 0
    text = capsys.readouterr().out
    m = re.search(r"SNLI test accuracy \(40 pairs\): ([\d.]+)%   majority-class baseline \((\w+)\): ([\d.]+)%", text)
    assert m, text
    assert 0 <= float(m.group(1)) <= 100 and m.group(2) in ("contradiction", "entailment", "neutral")
    assert "3 steps of 16" in text
    assert (out / "model.safetensors").is_file() and (out / "vocab.txt").is_file()


def test_download_prints_cached_path(minilm_dir, capsys):
    assert main(["download", "minilm-l6"]) == 0
    assert capsys.readouterr().out.strip() == str(minilm_dir)


def test_download_list_and_errors(capsys):
    assert main(["download", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "minilm-l6" in listing and "snli" in listing and "bert-base-uncased" in listing
    assert main(["download", "no-such-model"]) == 2
    assert "unknown asset 'no-such-model'; known:" in capsys.readouterr().err
    assert main(["download"]) == 2
    assert "--list" in capsys.readouterr().err

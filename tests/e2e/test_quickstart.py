"""`openbert quickstart` on a small slice of the real model and data; `openbert download`."""
import re
from pathlib import Path

import pytest

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


TINY = ["quickstart", "--train_examples=48", "--eval_examples=40", "--train_batch_size=16",
        "--eval_batch_size=40", "--max_seq_length=32", "--progress=false"]


def test_default_output_is_a_new_folder_in_the_cache(tmp_path, minilm_dir, snli_dir, capsys, monkeypatch):
    """Run from a checkout (the cwd) twice: nothing lands in the cwd, each run gets its own folder
    under <cache>/runs/, printed, with the model and metrics.png."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for entry in (minilm_dir.parents[1], snli_dir.parents[1]):  # the real cached assets, linked
        (cache / entry.name).symlink_to(entry, target_is_directory=True)
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    outs = []
    for _ in range(2):
        assert main([*TINY, f"--cache_dir={cache}"]) == 0
        text = capsys.readouterr().out
        out = re.search(r"^  output (.+)$", text, re.M).group(1)
        assert f"fine-tuned model saved in {out}/" in text
        outs.append(out)
    assert outs[0] != outs[1] and not list(cwd.iterdir())
    for out in map(Path, outs):
        assert out.parent == cache / "runs" and out.name.startswith("quickstart-")
        assert {"model.safetensors", "vocab.txt", "config.json", "metrics.jsonl", "metrics.png"} <= {
            f.name for f in out.iterdir()}


def test_an_earlier_runs_folder_is_never_replaced(tmp_path, capsys):
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"a model openbert did not write")
    assert main([*TINY, f"--output_dir={out}"]) == 2
    assert "--overwrite_output_dir" in capsys.readouterr().err
    assert [f.name for f in out.iterdir()] == ["model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == b"a model openbert did not write"


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


SEEDS = (42, 1, 2, 3, 4, 5, 6, 7, 8, 9)  # the default seed and nine more: the README's table


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_default_recipe_learns_on_every_seed(tmp_path, minilm_dir, snli_dir, capsys, seed):
    """The full default quickstart (12,000 pairs, 375 steps; about 3 minutes on 2 idle cores)
    leaves chance on every seed: at least 60% on the 2,000 test pairs (majority class 32.5%)."""
    assert main(["quickstart", f"--seed={seed}", f"--output_dir={tmp_path / 'qs'}", "--progress=false"]) == 0
    text = capsys.readouterr().out
    accuracy = float(re.search(r"SNLI test accuracy \(2000 pairs\): ([\d.]+)%", text).group(1))
    assert accuracy >= 60.0, text

"""`openbert extract-features`: the original command line end to end, bad input, MiniLM vs HF."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from openbert.checkpoints.pretrained import save_pretrained, save_tf_checkpoint
from openbert.cli import main
from openbert.model.bert import BertModel
from openbert.tasks.features.extract import convert_examples, extract, parse_line
from openbert.tokenization.wordpiece import FullTokenizer

WORDS = "the man went to store he bought a gallon of milk dog is hairy . ? who was jim henson".split()
INPUT = "The man went to the store .\nhe bought a gallon of milk ||| the dog is hairy .\n\nwho was Jim Henson ?\n"


@pytest.fixture
def tiny_ckpt(tmp_path, tiny_config):
    """A tiny random model as an original TF checkpoint folder; returns (prefix, model, tokenizer)."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    model = BertModel(tiny_config.replace(vocab_size=len(WORDS) + 5, max_position_embeddings=128)).eval()
    prefix = save_tf_checkpoint(model, tmp_path / "ckpt", vocab_file=str(vocab))
    return prefix, model, FullTokenizer(vocab)


def _run(*argv) -> int:
    return main(["extract-features", *argv, "--progress=false"])


def test_original_command_line_jsonl(tiny_ckpt, tmp_path):
    prefix, model, tokenizer = tiny_ckpt
    (tmp_path / "in.txt").write_text(INPUT, encoding="utf-8")
    rc = _run(f"--input_file={tmp_path / 'in.txt'}", f"--output_file={tmp_path / 'out.jsonl'}",
              f"--vocab_file={tmp_path / 'vocab.txt'}", f"--bert_config_file={tmp_path / 'ckpt' / 'bert_config.json'}",
              f"--init_checkpoint={prefix}", "--layers=-1,-2,-3,-4", "--max_seq_length=128",
              "--batch_size=8", "--do_lower_case=True", "--use_tpu=False")
    assert rc == 0
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    feats = list(convert_examples((parse_line(l, i) for i, l in enumerate(INPUT.splitlines())), tokenizer, 128))
    expected = dict((f.unique_id, v) for f, v in extract(feats, model, [-1, -2, -3, -4], batch_size=1))
    for line, f in zip(lines, feats):
        d = json.loads(line)
        assert list(d) == ["linex_index", "features"] and d["linex_index"] == f.unique_id
        assert [t["token"] for t in d["features"]] == f.tokens
        assert [layer["index"] for layer in d["features"][0]["layers"]] == [-1, -2, -3, -4]
        got = np.array([[layer["values"] for layer in t["layers"]] for t in d["features"]])
        np.testing.assert_allclose(got, expected[f.unique_id], atol=1e-6)
    assert json.loads(lines[2])["features"][0]["token"] == "[CLS]" and len(json.loads(lines[2])["features"]) == 2


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_array_output_matches_jsonl(tiny_ckpt, tmp_path, fmt):
    prefix, _, _ = tiny_ckpt
    (tmp_path / "in.txt").write_text(INPUT * 5, encoding="utf-8")
    common = [f"--input_file={tmp_path / 'in.txt'}", f"--init_checkpoint={tmp_path / 'ckpt'}", "--layers=-1,0",
              "--batch_size=3"]
    assert _run(*common, f"--output_file={tmp_path / 'out.jsonl'}") == 0
    assert _run(*common, f"--output_file={tmp_path / ('out.' + fmt)}") == 0  # format from the name
    assert _run(*common, f"--output_file={tmp_path / 'pooled.bin'}", f"--output_format={fmt}",
                "--pooling=cls", "--dtype=float16") == 0
    if fmt == "npz":
        a, p = dict(np.load(tmp_path / "out.npz")), dict(np.load(tmp_path / "pooled.bin"))
    else:
        from safetensors.numpy import load_file
        a, p = load_file(str(tmp_path / "out.safetensors")), load_file(str(tmp_path / "pooled.bin"))
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(a["offsets"]) == len(rows) + 1 == 21 and p["layer_-1"].shape == (20, 32)
    for i, d in enumerate(rows):
        for j, idx in enumerate([-1, 0]):
            ref = np.array([t["layers"][j]["values"] for t in d["features"]])
            np.testing.assert_allclose(a[f"layer_{idx}"][a["offsets"][i]:a["offsets"][i + 1]], ref, atol=6e-7)
            np.testing.assert_allclose(p[f"layer_{idx}"][i].astype(np.float32), ref[0], atol=3e-3)


@pytest.mark.parametrize("content,flags,message", [
    ("ok\nfirst ||| second ||| third\n", [], "line 2: 2 '|||' separators"),
    ("ok\n", ["--layers=-1,-6"], "layer index -6 is out of range for a model with 5 encoder layers"),
    ("ok\n", ["--layers=-1", "--pooling=mean"], "--pooling needs array output"),
    ("ok\n", ["--max_seq_length=129"], "only trained up to sequence length 128"),
    ("ok\n", ["--do_lower_case=false", "--init_checkpoint=google/uncased_L-12_H-768_A-12/bert_model.ckpt"],
     "does not match --init_checkpoint"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(tiny_ckpt, tmp_path, capsys, content, flags, message):
    prefix, _, _ = tiny_ckpt
    (tmp_path / "in.txt").write_text(content, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    rc = _run(f"--input_file={tmp_path / 'in.txt'}", f"--output_file={out}", f"--init_checkpoint={prefix}", *flags)
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("out.jsonl*"))


def test_missing_paths(tiny_ckpt, tmp_path, capsys):
    prefix, _, _ = tiny_ckpt
    (tmp_path / "in.txt").write_text("ok\n", encoding="utf-8")
    assert _run(f"--input_file={tmp_path / 'in.txt'}", f"--output_file={tmp_path / 'no' / 'out.jsonl'}",
                f"--init_checkpoint={prefix}") == 2
    assert "does not exist; create it first" in capsys.readouterr().err
    assert _run(f"--input_file={tmp_path / 'missing.txt'}", f"--output_file={tmp_path / 'out.jsonl'}",
                f"--init_checkpoint={prefix}") == 2
    assert "missing.txt not found" in capsys.readouterr().err


def _mrpc_lines(shared_data, n: int) -> list[str]:
    with open(shared_data / "glue" / "MRPC" / "msr_paraphrase_test.txt", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:n + 1]
    return [r[3] if i % 3 else f"{r[3]} ||| {r[4]}" for i, r in enumerate(rows)]


def test_minilm_last_layer_equals_hf_last_hidden_state(minilm_dir, shared_data, tmp_path):
    transformers = pytest.importorskip("transformers")
    lines = _mrpc_lines(shared_data, 48)
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.safetensors"
    assert _run(f"--input_file={tmp_path / 'in.txt'}", f"--output_file={out}", f"--init_checkpoint={minilm_dir}",
                "--layers=-1", "--batch_size=16") == 0
    from safetensors.numpy import load_file
    a = load_file(str(out))
    hf = transformers.BertModel.from_pretrained(str(minilm_dir), add_pooling_layer=False).eval()
    ids, offsets = a["input_ids"], a["offsets"]
    assert len(offsets) == len(lines) + 1
    ref_tok = transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))
    for i, line in enumerate(lines):
        seg = ids[offsets[i]:offsets[i + 1]].astype(np.int64)
        a_text, _, b_text = line.partition(" ||| ")
        assert seg.tolist() == ref_tok(a_text, b_text or None)["input_ids"]  # same tokens as HF
        sep = np.flatnonzero(seg == ref_tok.sep_token_id)[0]
        token_type = (np.arange(len(seg)) > sep).astype(np.int64)
        with torch.no_grad():
            ref = hf(input_ids=torch.from_numpy(seg)[None],
                     token_type_ids=torch.from_numpy(token_type)[None]).last_hidden_state[0].numpy()
        np.testing.assert_allclose(a["layer_-1"][offsets[i]:offsets[i + 1]], ref, atol=1e-4, rtol=0)


def test_openbert_folder_and_hf_names_load(tiny_ckpt, tmp_path):
    """An openbert (HF-layout) folder written by save_pretrained works as --init_checkpoint too."""
    _, model, _ = tiny_ckpt
    save_pretrained(model, tmp_path / "hf", vocab_file=str(tmp_path / "vocab.txt"))
    (tmp_path / "in.txt").write_text(INPUT, encoding="utf-8")
    assert _run(f"--input_file={tmp_path / 'in.txt'}", f"--output_file={tmp_path / 'a.jsonl'}",
                f"--init_checkpoint={tmp_path / 'hf'}") == 0
    assert _run(f"--input_file={tmp_path / 'in.txt'}", f"--output_file={tmp_path / 'b.jsonl'}",
                f"--init_checkpoint={tmp_path / 'ckpt'}") == 0
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_encode_from_a_path_equals_hf_mean_pooling(minilm_dir, shared_data):
    """openbert.encode(texts, model=path): mean over real tokens of HF's last hidden state."""
    transformers = pytest.importorskip("transformers")
    import openbert

    texts = [line.replace(" ||| ", " ") for line in _mrpc_lines(shared_data, 12)]
    emb = openbert.encode(texts, model=minilm_dir, batch_size=5)
    assert emb.shape == (12, 384) and emb.dtype == np.float32
    hf = transformers.BertModel.from_pretrained(str(minilm_dir), add_pooling_layer=False).eval()
    enc = transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = hf(**enc).last_hidden_state
    m = enc["attention_mask"][..., None].float()
    np.testing.assert_allclose(emb, ((h * m).sum(1) / m.sum(1)).numpy(), atol=1e-4, rtol=0)

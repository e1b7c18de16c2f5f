"""tasks.features.writers: the original JSON lines, npz / safetensors arrays, atomic outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from openbert.errors import OpenBertError
from openbert.tasks.features.extract import extract
from openbert.tasks.features.writers import ArrayWriter, open_writer, round6


def test_round6_is_pythons_round():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20000) * 3, rng.standard_normal(2000) * 1e-5,
                        np.arange(-257, 257, 2) / 128,  # exact ties k + 0.5 at the 6th decimal
                        [0.0, -0.0, -1e-9, 0.0000005, 123.4567895]]).astype(np.float32)
    assert round6(x).tolist() == [round(float(v), 6) for v in x]
    assert [repr(v) for v in round6(x).tolist()] == [repr(round(float(v), 6)) for v in x]


def test_jsonl_layout(model, tokenizer, tmp_path, make_features, reference):
    feats = make_features()
    layers = [-1, -2, 0]
    out = tmp_path / "out.jsonl"
    with open_writer(str(out), "jsonl", layers, model.config.hidden_size) as w:
        for f, v in extract(feats, model, layers, batch_size=2):
            w.write(f, v)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(feats)
    for i, (line, f) in enumerate(zip(lines, feats)):
        d = json.loads(line, object_pairs_hook=lambda kv: kv)  # keep the key order
        assert [k for k, _ in d] == ["linex_index", "features"]
        assert d[0][1] == i
        ref = reference(model, f, layers)
        assert [t[0][1] for t in d[1][1]] == f.tokens  # [CLS] ... [SEP], no padding
        for j, tok in enumerate(d[1][1]):
            assert [k for k, _ in tok] == ["token", "layers"]
            assert [[k for k, _ in layer] for layer in tok[1][1]] == [["index", "values"]] * 3
            assert [layer[0][1] for layer in tok[1][1]] == layers
            for li, layer in enumerate(tok[1][1]):
                vals = layer[1][1]
                assert len(vals) == model.config.hidden_size
                assert all(v == round(v, 6) for v in vals)
                np.testing.assert_allclose(vals, ref[j, li], atol=2e-6)
    assert lines[0].startswith('{"linex_index": 0, "features": [{"token": "[CLS]", "layers": [{"index": -1, '
                               '"values": [')


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
@pytest.mark.parametrize("pooling", ["none", "mean"])
def test_arrays_equal_jsonl_values(model, tokenizer, tmp_path, fmt, pooling, make_features):
    feats = make_features()
    layers = [-1, -3]
    jsonl = tmp_path / "out.jsonl"
    with open_writer(str(jsonl), "jsonl", layers, model.config.hidden_size) as w:
        for f, v in extract(feats, model, layers, batch_size=3):
            w.write(f, v)
    out = tmp_path / f"out.{fmt}"
    with open_writer(str(out), fmt, layers, model.config.hidden_size, np.float32, pooling) as w:
        for f, v in extract(feats, model, layers, batch_size=3, pooling=pooling):
            w.write(f, v)
    assert not list(tmp_path.glob("*.parts.*")) and not list(tmp_path.glob("*.tmp.*"))
    if fmt == "npz":
        arrays = dict(np.load(out))
    else:
        from safetensors.numpy import load_file
        arrays = load_file(str(out))
    assert sorted(arrays) == ["input_ids", "layer_-1", "layer_-3", "layers", "offsets"]
    assert arrays["layers"].tolist() == layers
    offsets = arrays["offsets"]
    assert offsets.tolist() == np.cumsum([0] + [len(f.tokens) for f in feats]).tolist()
    assert arrays["input_ids"].tolist() == [i for f in feats for i in f.input_ids]
    for li, line in enumerate(jsonl.read_text().splitlines()):
        d = json.loads(line)
        for j, idx in enumerate(layers):
            token_values = np.array([t["layers"][j]["values"] for t in d["features"]])
            if pooling == "none":
                got = arrays[f"layer_{idx}"][offsets[li]:offsets[li + 1]]
                np.testing.assert_allclose(got, token_values, atol=6e-7)
            else:
                np.testing.assert_allclose(arrays[f"layer_{idx}"][li], token_values.mean(0), atol=2e-6)


def test_float16_and_empty_arrays(model, tokenizer, tmp_path, make_features, reference):
    feats = make_features()
    out = tmp_path / "half.safetensors"
    with ArrayWriter(out, "safetensors", [-1], model.config.hidden_size, np.float16) as w:
        for f, v in extract(feats, model, [-1]):
            w.write(f, v)
    from safetensors.numpy import load_file
    a = load_file(str(out))
    assert a["layer_-1"].dtype == np.float16 and a["layer_-1"].shape == (sum(len(f.tokens) for f in feats), 32)
    ref = np.concatenate([reference(model, f, [-1])[:, 0] for f in feats])
    np.testing.assert_allclose(a["layer_-1"].astype(np.float32), ref, atol=5e-3)
    for fmt in ("npz", "safetensors"):
        with ArrayWriter(tmp_path / f"empty.{fmt}", fmt, [-1], 32) as w:
            pass
        a = dict(np.load(tmp_path / "empty.npz")) if fmt == "npz" else load_file(str(tmp_path / "empty.safetensors"))
        assert a["layer_-1"].shape == (0, 32) and a["offsets"].tolist() == [0]


def test_failed_run_leaves_nothing(model, tokenizer, tmp_path, make_features):
    out = tmp_path / "out.npz"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with ArrayWriter(out, "npz", [-1], 32) as w:
            for f, v in extract(make_features(), model, [-1]):
                w.write(f, v)
            raise RuntimeError("interrupted")
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz", "vocab.txt"]


def test_output_errors(tmp_path):
    with pytest.raises(OpenBertError, match="does not exist; create it first"):
        with open_writer(str(tmp_path / "missing" / "out.jsonl"), "jsonl", [-1], 32):
            pass
    with pytest.raises(OpenBertError, match="--pooling needs array output"):
        with open_writer(str(tmp_path / "out.jsonl"), "jsonl", [-1], 32, pooling="mean"):
            pass
    assert not (tmp_path / "out.jsonl").exists()

"""tasks.features: input lines, the original layout, length-sorted batches, writers, encode()."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from openbert.errors import OpenBertError
from openbert.model.bert import BertModel
from openbert.tasks.features.extract import (InputExample, convert_example, convert_examples,
                                             encode, extract, parse_layers, parse_line,
                                             read_examples)
from openbert.tasks.features.writers import ArrayWriter, open_writer, round6
from openbert.tokenization.wordpiece import FullTokenizer

WORDS = ("the man went to store he bought a gallon of milk dog is hairy who was jim henson ? "
         "puppet ##eer no it not . , hello world un ##want ##ed runn ##ing").split()


@pytest.fixture
def tokenizer(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return FullTokenizer(tmp_path / "vocab.txt", do_lower_case=True)


@pytest.fixture
def model(tiny_config, tokenizer):
    torch.manual_seed(0)
    return BertModel(tiny_config.replace(vocab_size=len(tokenizer.vocab))).eval()


LINES = ["The man went to the store.", "he bought a gallon of milk ||| the dog is hairy .",
         "", "who was Jim Henson ? ||| Jim Henson was a puppeteer", "hello",
         "unwanted running unwanted running unwanted running , the dog"]


def _features(tokenizer, lines=LINES, max_seq_length=128):
    return list(convert_examples((parse_line(l, i) for i, l in enumerate(lines)), tokenizer, max_seq_length))


def _reference(model, feature, layer_indexes):
    """One example alone, unpadded: [n, L, H] float32."""
    ids = torch.tensor([feature.input_ids])
    seg = torch.tensor([feature.segment_ids])
    with torch.no_grad():
        out = model(ids, torch.ones_like(ids), seg)
    return torch.stack([out.all_encoder_layers[i][0] for i in layer_indexes], 1).numpy()


# ---- reading -------------------------------------------------------------------------------------
def test_parse_line_single_pair_and_empty():
    assert parse_line("  hello world \n", 0) == InputExample(0, "hello world")
    assert parse_line("a b ||| c d\n", 3) == InputExample(3, "a b", "c d")
    assert parse_line("a|||b", 1) == InputExample(1, "a|||b")  # the original needs spaces around |||
    assert parse_line("\n", 7) == InputExample(7, "")


def test_two_separators_is_an_error_naming_the_line(tmp_path):
    p = tmp_path / "in.txt"
    p.write_text("one\ntwo ||| three\nfour ||| five ||| six\n", encoding="utf-8")
    with pytest.raises(OpenBertError, match=r"in.txt, line 3: 2 '\|\|\|' separators"):
        list(read_examples(p))


def test_read_examples_keeps_line_numbers_and_missing_file(tmp_path):
    p = tmp_path / "in.txt"
    p.write_bytes(b"first\n\nthird \xff ||| x\r\n")
    ex = list(read_examples(p))
    assert [e.unique_id for e in ex] == [0, 1, 2]
    assert ex[1] == InputExample(1, "") and ex[2] == InputExample(2, "third ", "x")  # \xff dropped
    with pytest.raises(OpenBertError, match="input file not found"):
        list(read_examples(tmp_path / "nope.txt"))


# ---- features ------------------------------------------------------------------------------------
def test_layout_cls_sep_segments(tokenizer):
    f = _features(tokenizer)
    assert f[0].tokens == ["[CLS]", "the", "man", "went", "to", "the", "store", ".", "[SEP]"]
    assert f[0].segment_ids == [0] * 9
    assert f[1].tokens == ["[CLS]", "he", "bought", "a", "gallon", "of", "milk", "[SEP]",
                           "the", "dog", "is", "hairy", ".", "[SEP]"]
    assert f[1].segment_ids == [0] * 8 + [1] * 6
    assert f[2].tokens == ["[CLS]", "[SEP]"]  # an empty line is kept
    assert f[3].tokens[-4:] == ["a", "puppet", "##eer", "[SEP]"]
    assert f[1].input_ids == tokenizer.convert_tokens_to_ids(f[1].tokens)


def test_truncation_as_the_original(tokenizer):
    ex = InputExample(0, "un want ed the man went to the store", "the dog")
    f = convert_example(ex, tokenizer, 9)  # 9 - 3 = 6 tokens: pop from the longer (A) side
    assert f.tokens == ["[CLS]", "un", "[UNK]", "[UNK]", "the", "[SEP]", "the", "dog", "[SEP]"]
    f = convert_example(InputExample(0, "the man went to", "the dog is hairy"), tokenizer, 7)
    assert f.tokens == ["[CLS]", "the", "man", "[SEP]", "the", "dog", "[SEP]"]  # ties pop from B
    f = convert_example(InputExample(0, "the man went to the store"), tokenizer, 5)
    assert f.tokens == ["[CLS]", "the", "man", "went", "[SEP]"]
    # the batch path gives the same features as the one-at-a-time path
    lines = LINES * 50
    exact = [convert_example(parse_line(l, i), tokenizer, 12) for i, l in enumerate(lines)]
    assert exact == _features(tokenizer, lines, max_seq_length=12)


def test_parse_layers():
    assert parse_layers("-1,-2,-3,-4", 5) == [-1, -2, -3, -4]
    assert parse_layers([0, 4, -5], 5) == [0, 4, -5]
    with pytest.raises(OpenBertError, match="layer index -6 is out of range for a model with 5"):
        parse_layers("-1,-6", 5)
    with pytest.raises(OpenBertError, match="layer index 5 is out of range"):
        parse_layers(5, 5)
    with pytest.raises(OpenBertError, match="comma-separated integers"):
        parse_layers("last", 5)


# ---- computing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("window_bytes", [1 << 30, 1])
def test_extract_returns_input_order_and_unbatched_values(model, tokenizer, window_bytes):
    feats = _features(tokenizer)
    layers = [-1, 0, -3]
    got = list(extract(feats, model, layers, batch_size=4, window_bytes=window_bytes))
    assert [f.unique_id for f, _ in got] == list(range(len(LINES)))
    for f, v in got:
        assert v.shape == (len(f.tokens), 3, model.config.hidden_size) and v.dtype == np.float32
        np.testing.assert_allclose(v, _reference(model, f, layers), atol=1e-5)


def test_extract_pooling(model, tokenizer):
    feats = _features(tokenizer)
    rows = [v for _, v in extract(feats, model, [-1, -2], batch_size=4)]
    cls = [v for _, v in extract(feats, model, [-1, -2], batch_size=4, pooling="cls")]
    mean = [v for _, v in extract(feats, model, [-1, -2], batch_size=4, pooling="mean")]
    for r, c, m in zip(rows, cls, mean):
        np.testing.assert_allclose(c, r[0], atol=1e-6)
        np.testing.assert_allclose(m, r.mean(0), atol=1e-5)
    with pytest.raises(OpenBertError, match="pooling 'max'"):
        list(extract(feats, model, [-1], pooling="max"))


# ---- writers -------------------------------------------------------------------------------------
def test_round6_is_pythons_round():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20000) * 3, rng.standard_normal(2000) * 1e-5,
                        np.arange(-257, 257, 2) / 128,  # exact ties k + 0.5 at the 6th decimal
                        [0.0, -0.0, -1e-9, 0.0000005, 123.4567895]]).astype(np.float32)
    assert round6(x).tolist() == [round(float(v), 6) for v in x]
    assert [repr(v) for v in round6(x).tolist()] == [repr(round(float(v), 6)) for v in x]


def test_jsonl_layout(model, tokenizer, tmp_path):
    feats = _features(tokenizer)
    layers = [-1, -2, 0]
    out = tmp_path / "out.jsonl"
    with open_writer(str(out), "jsonl", layers, model.config.hidden_size) as w:
        for f, v in extract(feats, model, layers, batch_size=2):
            w.write(f, v)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(LINES)
    for i, (line, f) in enumerate(zip(lines, feats)):
        d = json.loads(line, object_pairs_hook=lambda kv: kv)  # keep the key order
        assert [k for k, _ in d] == ["linex_index", "features"]
        assert d[0][1] == i
        ref = _reference(model, f, layers)
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
def test_arrays_equal_jsonl_values(model, tokenizer, tmp_path, fmt, pooling):
    feats = _features(tokenizer)
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


def test_float16_and_empty_arrays(model, tokenizer, tmp_path):
    feats = _features(tokenizer)
    out = tmp_path / "half.safetensors"
    with ArrayWriter(out, "safetensors", [-1], model.config.hidden_size, np.float16) as w:
        for f, v in extract(feats, model, [-1]):
            w.write(f, v)
    from safetensors.numpy import load_file
    a = load_file(str(out))
    assert a["layer_-1"].dtype == np.float16 and a["layer_-1"].shape == (sum(len(f.tokens) for f in feats), 32)
    ref = np.concatenate([_reference(model, f, [-1])[:, 0] for f in feats])
    np.testing.assert_allclose(a["layer_-1"].astype(np.float32), ref, atol=5e-3)
    for fmt in ("npz", "safetensors"):
        with ArrayWriter(tmp_path / f"empty.{fmt}", fmt, [-1], 32) as w:
            pass
        a = dict(np.load(tmp_path / "empty.npz")) if fmt == "npz" else load_file(str(tmp_path / "empty.safetensors"))
        assert a["layer_-1"].shape == (0, 32) and a["offsets"].tolist() == [0]


def test_failed_run_leaves_nothing(model, tokenizer, tmp_path):
    out = tmp_path / "out.npz"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError):
        with ArrayWriter(out, "npz", [-1], 32) as w:
            for f, v in extract(_features(tokenizer), model, [-1]):
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


# ---- encode --------------------------------------------------------------------------------------
def test_encode_shapes_and_values(model, tokenizer):
    texts = ["the man went to the store", ("who was jim henson ?", "a puppeteer"), "hello world"]
    emb = encode(texts, model, tokenizer=tokenizer)  # mean of the last layer
    assert emb.shape == (3, 32) and emb.dtype == np.float32
    feats = _features(tokenizer, ["the man went to the store", "who was jim henson ? ||| a puppeteer",
                                  "hello world"])
    for e, f in zip(emb, feats):
        np.testing.assert_allclose(e, _reference(model, f, [-1])[:, 0].mean(0), atol=1e-5)
    cls = encode(texts, model, tokenizer=tokenizer, layers=[-1, 0], pooling="cls")
    assert cls.shape == (3, 2, 32)
    per_token = encode(texts, model, tokenizer=tokenizer, pooling=None)
    assert [p.shape for p in per_token] == [(8, 32), (11, 32), (4, 32)]
    one = encode("hello world", model, tokenizer=tokenizer)
    np.testing.assert_allclose(one, emb[2], atol=1e-6)
    assert encode([], model, tokenizer=tokenizer).shape == (0, 32)
    with pytest.raises(OpenBertError, match="needs tokenizer"):
        encode(texts, model)


def test_encode_many_random_lengths_in_order(model, tokenizer):
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(0, 30))) for _ in range(50)]
    emb = encode(texts, model, tokenizer=tokenizer, batch_size=7)
    for t, e in zip(texts, emb):
        np.testing.assert_allclose(e, encode([t], model, tokenizer=tokenizer, batch_size=1)[0], atol=1e-5)


def test_vocab_without_special_tokens_is_a_clear_error(tmp_path):
    (tmp_path / "v.txt").write_text("[UNK]\nthe\nman\n", encoding="utf-8")
    with pytest.raises(OpenBertError, match=r"'\[CLS\]' is not in the vocabulary \(needed for line 4\)"):
        convert_example(InputExample(3, "the man"), FullTokenizer(tmp_path / "v.txt"), 16)

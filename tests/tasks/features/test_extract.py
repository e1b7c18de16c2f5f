"""tasks.features.extract: input lines, the original layout, length-sorted batches, encode()."""
from __future__ import annotations

import random

import numpy as np
import pytest

from openbert.errors import OpenBertError
from openbert.tasks.features.extract import (InputExample, convert_example, convert_examples, encode,
                                             extract, parse_layers, parse_line, read_examples)
from openbert.tokenization.wordpiece import FullTokenizer


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
def test_small_blocks_use_the_fast_tokenizer_once_it_is_built(tokenizer, lines, monkeypatch):
    examples = [parse_line(t, i) for i, t in enumerate(lines)]
    exact = list(convert_examples(examples, tokenizer, 16))
    assert not tokenizer.fast_built  # a few lines do not repay building the fast tables
    tokenizer.tokenize_batch(["warm"])
    calls = []
    real = tokenizer.tokenize_batch
    monkeypatch.setattr(tokenizer, "tokenize_batch", lambda texts: calls.append(len(texts)) or real(texts))
    fast = list(convert_examples(examples, tokenizer, 16))
    assert calls and fast == exact


def test_layout_cls_sep_segments(tokenizer, make_features):
    f = make_features()
    assert f[0].tokens == ["[CLS]", "the", "man", "went", "to", "the", "store", ".", "[SEP]"]
    assert f[0].segment_ids == [0] * 9
    assert f[1].tokens == ["[CLS]", "he", "bought", "a", "gallon", "of", "milk", "[SEP]",
                           "the", "dog", "is", "hairy", ".", "[SEP]"]
    assert f[1].segment_ids == [0] * 8 + [1] * 6
    assert f[2].tokens == ["[CLS]", "[SEP]"]  # an empty line is kept
    assert f[3].tokens[-4:] == ["a", "puppet", "##eer", "[SEP]"]
    assert f[1].input_ids == tokenizer.convert_tokens_to_ids(f[1].tokens)


def test_truncation_as_the_original(tokenizer, make_features, lines):
    ex = InputExample(0, "un want ed the man went to the store", "the dog")
    f = convert_example(ex, tokenizer, 9)  # 9 - 3 = 6 tokens: pop from the longer (A) side
    assert f.tokens == ["[CLS]", "un", "[UNK]", "[UNK]", "the", "[SEP]", "the", "dog", "[SEP]"]
    f = convert_example(InputExample(0, "the man went to", "the dog is hairy"), tokenizer, 7)
    assert f.tokens == ["[CLS]", "the", "man", "[SEP]", "the", "dog", "[SEP]"]  # ties pop from B
    f = convert_example(InputExample(0, "the man went to the store"), tokenizer, 5)
    assert f.tokens == ["[CLS]", "the", "man", "went", "[SEP]"]
    # the batch path gives the same features as the one-at-a-time path
    many = lines * 50
    exact = [convert_example(parse_line(l, i), tokenizer, 12) for i, l in enumerate(many)]
    assert exact == make_features(many, max_seq_length=12)


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
def test_extract_returns_input_order_and_unbatched_values(model, tokenizer, window_bytes, make_features, reference):
    feats = make_features()
    layers = [-1, 0, -3]
    got = list(extract(feats, model, layers, batch_size=4, window_bytes=window_bytes))
    assert [f.unique_id for f, _ in got] == list(range(len(feats)))
    for f, v in got:
        assert v.shape == (len(f.tokens), 3, model.config.hidden_size) and v.dtype == np.float32
        np.testing.assert_allclose(v, reference(model, f, layers), atol=1e-5)


def test_extract_pooling(model, tokenizer, make_features):
    feats = make_features()
    rows = [v for _, v in extract(feats, model, [-1, -2], batch_size=4)]
    cls = [v for _, v in extract(feats, model, [-1, -2], batch_size=4, pooling="cls")]
    mean = [v for _, v in extract(feats, model, [-1, -2], batch_size=4, pooling="mean")]
    for r, c, m in zip(rows, cls, mean):
        np.testing.assert_allclose(c, r[0], atol=1e-6)
        np.testing.assert_allclose(m, r.mean(0), atol=1e-5)
    with pytest.raises(OpenBertError, match="pooling 'max'"):
        list(extract(feats, model, [-1], pooling="max"))


# ---- encode --------------------------------------------------------------------------------------
def test_encode_shapes_and_values(model, tokenizer, make_features, reference):
    texts = ["the man went to the store", ("who was jim henson ?", "a puppeteer"), "hello world"]
    emb = encode(texts, model, tokenizer=tokenizer)  # mean of the last layer
    assert emb.shape == (3, 32) and emb.dtype == np.float32
    feats = make_features(["the man went to the store", "who was jim henson ? ||| a puppeteer",
                                  "hello world"])
    for e, f in zip(emb, feats):
        np.testing.assert_allclose(e, reference(model, f, [-1])[:, 0].mean(0), atol=1e-5)
    cls = encode(texts, model, tokenizer=tokenizer, layers=[-1, 0], pooling="cls")
    assert cls.shape == (3, 2, 32)
    per_token = encode(texts, model, tokenizer=tokenizer, pooling=None)
    assert [p.shape for p in per_token] == [(8, 32), (11, 32), (4, 32)]
    one = encode("hello world", model, tokenizer=tokenizer)
    np.testing.assert_allclose(one, emb[2], atol=1e-6)
    assert encode([], model, tokenizer=tokenizer).shape == (0, 32)
    with pytest.raises(OpenBertError, match="needs tokenizer"):
        encode(texts, model)


def test_encode_many_random_lengths_in_order(model, tokenizer, words):
    rng = random.Random(0)
    texts = [" ".join(rng.choices(words, k=rng.randint(0, 30))) for _ in range(50)]
    emb = encode(texts, model, tokenizer=tokenizer, batch_size=7)
    for t, e in zip(texts, emb):
        np.testing.assert_allclose(e, encode([t], model, tokenizer=tokenizer, batch_size=1)[0], atol=1e-5)


def test_vocab_without_special_tokens_is_a_clear_error(tmp_path):
    (tmp_path / "v.txt").write_text("[UNK]\nthe\nman\n", encoding="utf-8")
    with pytest.raises(OpenBertError, match=r"'\[CLS\]' is not in the vocabulary \(needed for line 4\)"):
        convert_example(InputExample(3, "the man"), FullTokenizer(tmp_path / "v.txt"), 16)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_encode_a_saved_model_on_cuda(model, tokenizer, words, tmp_path, precision):
    """A folder loaded for CUDA inference at each precision (bf16: dense layers cast at load) gives
    the CPU float32 vectors, within the precision's rounding."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    model.save_pretrained(tmp_path / "m", vocab_file=tmp_path / "vocab.txt")
    rng = random.Random(0)
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 30))) for _ in range(40)]
    ref = encode(texts, model, tokenizer=tokenizer, pooling=None)
    got = encode(texts, str(tmp_path / "m"), pooling=None, device="cuda", precision=precision, batch_size=8)
    atol = 1e-4 if precision == "fp32" else 0.1
    for r, g in zip(ref, got):
        assert g.dtype == np.float32 and g.shape == r.shape
        np.testing.assert_allclose(g, r, atol=atol)

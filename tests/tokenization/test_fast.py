"""The fast batch path gives exactly the exact path's tokens and ids."""
from __future__ import annotations

import random
import sys
import unicodedata

import pytest

from openbert.tokenization import fast as tokenization_fast
from openbert.tokenization import unicode
from openbert.tokenization.wordpiece import BasicTokenizer, FullTokenizer

VOCABS = {  # name -> (file, do_lower_case)
    "uncased": ("bert-base-uncased-vocab.txt", True),
    "cased": ("bert-base-cased-vocab.txt", False),
    "chinese": ("bert-base-chinese-vocab.txt", True),
}
CORPORA = ["corpus/wikitext-2/test.txt", "corpus/wikitext-2/valid.txt", "corpus/tinyshakespeare.txt",
           "glue/MRPC/msr_paraphrase_train.txt", "glue/MRPC/msr_paraphrase_test.txt"]


@pytest.fixture(scope="module")
def tokenizers(shared_data):
    return {name: FullTokenizer(shared_data / "vocab" / f, do_lower_case=lower)
            for name, (f, lower) in VOCABS.items()}


def assert_parity(tok: FullTokenizer, texts, workers=0):
    """tokenize_batch / encode_batch equal tokenize / convert_tokens_to_ids on every text."""
    tok._fast = None  # start from an empty word cache
    fast = tok.tokenize_batch(texts, workers=workers)
    assert len(fast) == len(texts)
    for text, got in zip(texts, fast):
        want = tok.tokenize(text)
        assert got == want, f"fast path differs on {text!r}"
    ids = tok.encode_batch(texts, workers=workers)
    assert ids == [tok.convert_tokens_to_ids(t) for t in fast]


# -- the character tables are the original's predicates -------------------------------------------
def test_tables_match_the_exact_predicates_on_every_code_point():
    t = tokenization_fast.tables()
    assert t.unidata_version == unicodedata.unidata_version
    every = "".join(map(chr, range(0x110000)))
    dropped = {cp for cp in range(0x110000)
               if cp == 0 or cp == 0xFFFD or unicode.is_control(chr(cp))}
    assert {ord(c) for c in "".join(t.drop.findall(every))} == dropped
    cjk = {cp for cp in range(0x110000) if unicode.is_chinese_char(cp)}
    assert {ord(c) for c in t.cjk.findall(every)} == cjk
    punct = {cp for cp in range(0x110000) if unicode.is_punctuation(chr(cp))}
    assert set(t.split_cased) == punct
    mn = {cp for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Mn"}
    assert set(t.split_lower) == punct | mn
    assert all(t.split_lower[cp] is None for cp in mn)
    assert all(t.split_lower[cp] == t.split_cased[cp] == f" {chr(cp)} " for cp in punct)
    bmp = every[:0x10000]
    assert {ord(c) for c in t.bmp_words.findall(bmp) if len(c) == 1} >= {c for c in punct if c < 0x10000}
    assert {ord(c) for c in "".join(t.bmp_mn.findall(bmp))} == {c for c in mn if c < 0x10000}
    assert "".join(t.astral.findall(every)) == every[0x10000:]


def _code_point_texts(lo, hi, step=64):
    """Every code point in [lo, hi) inside words, beside punctuation, Greek capitals and spaces."""
    texts = []
    for start in range(lo, hi, step):
        chars = [chr(cp) for cp in range(start, min(start + step, hi))]
        texts.append(" ".join(f"x{c}Y {c}\u03a3.{c}" for c in chars))
    return texts


@pytest.mark.parametrize("lower", [True, False])
def test_basic_parity_every_bmp_code_point(lower):
    texts = _code_point_texts(0, 0x10000)
    basic = BasicTokenizer(do_lower_case=lower)
    for text in texts:
        assert tokenization_fast.basic_tokenize(text, lower) == basic.tokenize(text), text


@pytest.mark.slow
@pytest.mark.parametrize("lower", [True, False])
def test_basic_parity_every_code_point(lower):
    texts = _code_point_texts(0x10000, 0x110000, step=256)
    basic = BasicTokenizer(do_lower_case=lower)
    for text in texts:
        assert tokenization_fast.basic_tokenize(text, lower) == basic.tokenize(text)


def test_hf_disagreement_code_points_follow_python(tokenizers):
    """Code points where HF tokenizers' older Unicode tables differ: we follow unicodedata."""
    tricky = "".join(map(chr, [*range(0x1AC1, 0x1ACF), *range(0x1DF6, 0x1DFC),
                               *range(0x2E43, 0x2E4E), 0x166D, 0x1734, 0x1B7D]))
    texts = [tricky, f"ab{tricky}cd", " ".join(tricky), f"Caf\u00e9{tricky[:3]}X"]
    for tok in tokenizers.values():
        assert_parity(tok, texts)


# -- random Unicode strings ---------------------------------------------------------------------
_POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" * 3,
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\u00bf\u00a1\u2014\u2026\u3002\uff0c\u300c",
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u00a0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
    "\x00\x01\x07\x1b\x7f\x9f\ufffd\u00ad\u200b\u200c\u200d\u200e\u2060\ufeff\U000e0001",
    "\u0300\u0301\u0308\u0327\u0651\u093c\u20dd\u1ac1\u1dfa\u302a",
    "\u4e00\u535a\u63a8\u9fff\u3400\uf900\ufa30\U00020000\U0002a700\U0002f800\u3042\u30a2\uac00",
    "\u03a3\u03c3\u03c2\u0130\u0131\u00df\u1e9e\u212a\u2126\u00c5\u00e9\u00f1\u0439\u0419\u05d0",
    "\U0001f600\U0001f44d\U0001f3fd\u2764\ufe0f\U0001f1fa\U0001f1f8\u2603",
    "\ud800\udfff\ue000\U0010fffd\u0378",
]


def _random_texts(n, seed):
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        k = rng.randint(0, 80)
        pools = rng.sample(_POOLS, rng.randint(1, len(_POOLS)))
        text = "".join(rng.choice(rng.choice(pools)) for _ in range(k))
        if rng.random() < 0.05:  # a word over 200 characters, with and without a tail
            text += " " + "ab\u00e9" * rng.randint(67, 80) + rng.choice(["", ".", "\u0301"])
        if rng.random() < 0.1:  # bytes, some of them invalid UTF-8
            raw = text.encode("utf-8", "surrogatepass")
            pos = rng.randint(0, len(raw))
            texts.append(raw[:pos] + bytes([rng.choice([0x80, 0xc3, 0xff, 0xed])]) + raw[pos:])
            continue
        texts.append(text)
    return texts


@pytest.mark.parametrize("name", list(VOCABS))
def test_random_unicode_parity(tokenizers, name):
    assert_parity(tokenizers[name], _random_texts(3000, seed=len(name)))


# -- real corpora ---------------------------------------------------------------------------------
def _lines(shared_data, rel):
    return (shared_data / rel).read_text(encoding="utf-8").split("\n")


# Each corpus with one vocabulary by default; the whole matrix is the slow test below.
@pytest.mark.parametrize("rel,name", list(zip(CORPORA, ["uncased", "cased", "chinese", "uncased",
                                                        "cased"])))
def test_corpus_parity(shared_data, tokenizers, rel, name):
    assert_parity(tokenizers[name], _lines(shared_data, rel))


@pytest.mark.slow
@pytest.mark.parametrize("rel", CORPORA)
@pytest.mark.parametrize("name", list(VOCABS))
def test_corpus_parity_all_vocabs(shared_data, tokenizers, rel, name):
    assert_parity(tokenizers[name], _lines(shared_data, rel))


# -- batch mechanics ----------------------------------------------------------------------------
def test_workers_give_the_same_result(shared_data, tokenizers):
    texts = _lines(shared_data, "glue/MRPC/msr_paraphrase_test.txt")[:1200]
    tok = tokenizers["uncased"]
    try:
        assert_parity(tok, texts, workers=2)
        assert tok.fast._pool is not None  # the batch really went to worker processes
        assert tok.encode_batch(texts[:10], workers=2) == tok.encode_batch(texts[:10])
    finally:
        tok.fast.close()


def test_cache_overflow_is_cleared(shared_data, tokenizers, monkeypatch):
    monkeypatch.setattr(tokenization_fast, "_MAX_CACHE", 50)
    tok = tokenizers["cased"]
    texts = _lines(shared_data, "corpus/wikitext-2/test.txt")[:200]
    assert_parity(tok, texts)
    tok._fast, most = None, 0
    seeded = len(tok.fast._pieces)
    for text in texts:  # one batch per text: the caches are cleared whenever they would pass 50
        assert tok.tokenize_batch([text]) == [tok.tokenize(text)]
        most = max(most, len(set(tokenization_fast.whitespace_chunks(text))))
        assert len(tok.fast._pieces) <= seeded + 50 + most


def test_cache_seeding_only_takes_chunks_that_stay_whole(tokenizers):
    uncased, cased = (tokenization_fast.FastWordpiece(tokenizers[n].vocab, tokenizers[n].do_lower_case)
                      for n in ("uncased", "cased"))
    assert uncased._pieces["the"] == ("the",) and "[CLS]" not in uncased._pieces
    assert "The" in cased._pieces and "The" not in uncased._pieces
    assert uncased._word_pieces["[CLS]"] == ("[CLS]",)  # a basic word may be any vocabulary entry


def test_vocab_without_unk(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("want\n##ed\nrun\n", encoding="utf-8")
    tok = FullTokenizer(path)
    texts = ["wanted runs", "run"] * 300
    assert tok.tokenize_batch(texts) == [tok.tokenize(t) for t in texts]  # [UNK] as a token
    assert tok.tokenize_batch(texts, workers=2)[:2] == [["want", "##ed", "[UNK]"], ["run"]]
    assert tok.encode_batch(["run wanted"]) == [[2, 0, 1]]
    with pytest.raises(KeyError, match="token '\\[UNK\\]' is not in the vocabulary"):
        tok.encode_batch(["runs"])


def test_batch_rejects_a_single_string(tokenizers):
    with pytest.raises(TypeError, match="list of texts"):
        tokenizers["uncased"].tokenize_batch("one text")
    assert tokenizers["uncased"].tokenize_batch([]) == []
    assert tokenizers["uncased"].encode_batch(("", b"")) == [[], []]


def test_tokenizer_pickles_without_its_engine(tokenizers):
    import pickle

    tok = tokenizers["uncased"]
    tok.tokenize_batch(["warm the engine"])
    clone = pickle.loads(pickle.dumps(tok))
    assert clone._fast is None
    assert clone.tokenize_batch(["Hello, world"]) == [["hello", ",", "world"]]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))

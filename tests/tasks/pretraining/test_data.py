"""create_pretraining_data: each step hand-checked with scripted random draws, the inlined draws
against the stdlib, reading rules, statistics on a real corpus, workers and bad input."""
from __future__ import annotations

import random

import numpy as np
import pytest

from openbert.errors import OpenBertError
from openbert.tasks.pretraining import data as P
from openbert.tokenization.wordpiece import FullTokenizer

# ids:        0      1      2      3       4    5     6       7      8     9     10    11
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##want", "##ed", "run", "x", "##y", "a",
         "b", "c", "d", "e", "f", "g", "h"]
CLS, SEP, MASK = 2, 3, 4


class ScriptedRng:
    """Stands in for random.Random: returns the scripted values and records every call."""

    def __init__(self, randoms=(), bits=()):
        self.randoms, self.bits, self.calls = list(randoms), list(bits), []

    def random(self):
        self.calls.append("random")
        return self.randoms.pop(0)

    def getrandbits(self, k):
        self.calls.append(("bits", k))
        return self.bits.pop(0)

    def done(self):
        return not self.randoms and not self.bits


@pytest.fixture
def vocab():
    return P.MaskingVocab({t: i for i, t in enumerate(VOCAB)})


@pytest.fixture
def tokenizer(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB + ["hello", "world", "one", "two", "three", "four"]) + "\n")
    return FullTokenizer(str(path), do_lower_case=True)


# -- the inlined random draws equal the stdlib's --------------------------------------------------
def test_randint_and_shuffle_equal_stdlib():
    for seed in range(20):
        ours, ref = random.Random(seed), random.Random(seed)
        for n in (1, 2, 3, 7, 64, 65, 127, 128, 129, 30522):
            assert P.randint(ours, 0, n - 1) == ref.randint(0, n - 1)
            assert P.randint(ours, 2, n + 2) == ref.randint(2, n + 2)
            x, y = list(range(n)), list(range(n))
            P.shuffle(x, ours)
            ref.shuffle(y)
            assert x == y
        assert ours.getstate() == ref.getstate()


# -- truncate_seq_pair ------------------------------------------------------------------------------
def test_truncate_trims_longer_front_or_back():
    a, b = [1, 2, 3, 4, 5], [6, 7]
    rng = ScriptedRng(randoms=[0.1, 0.9, 0.3])
    P.truncate_seq_pair(a, b, 4, rng)
    # 0.1 < 0.5: drop a's first; 0.9: drop a's last; a (3) > b (2): 0.3 drops a's first
    assert (a, b) == ([3, 4], [6, 7]) and rng.done()


def test_truncate_ties_trim_b():
    a, b = [1, 2], [3, 4]
    rng = ScriptedRng(randoms=[0.7])
    P.truncate_seq_pair(a, b, 3, rng)
    assert (a, b) == ([1, 2], [3]) and rng.done()


# -- masking ----------------------------------------------------------------------------------------
def _identity_shuffle_bits(n):
    """getrandbits values that make shuffle of n items keep the order (j = i at each step)."""
    return list(range(n - 1, 0, -1))


def test_mask_80_10_10(vocab):
    tokens = [CLS, 11, 12, 13, SEP, 14, 15, SEP]  # 8 tokens, 5 candidates
    # shuffle keeps [1, 2, 3, 5, 6]; num_to_predict = round(8 * 0.375) = 3 -> positions 1, 2, 3
    # pos 1: 0.5 < 0.8 -> [MASK]; pos 2: 0.85, then 0.3 < 0.5 -> kept;
    # pos 3: 0.85, then 0.7 -> random word: getrandbits(5) = 17 -> vocab_words[17] = "g"
    rng = ScriptedRng(randoms=[0.5, 0.85, 0.3, 0.85, 0.7], bits=_identity_shuffle_bits(5) + [17])
    out, pos, labels = P.create_masked_lm_predictions(tokens, 0.375, 20, vocab, rng)
    assert out == [CLS, MASK, 12, 17, SEP, 14, 15, SEP]
    assert pos == [1, 2, 3] and labels == [11, 12, 13]
    # shuffle: j = _randbelow(i + 1) for i = 4..1 -> getrandbits(bit_length(i + 1))
    assert rng.calls[:4] == [("bits", 3), ("bits", 3), ("bits", 2), ("bits", 2)]
    assert rng.calls[-1] == ("bits", len(VOCAB).bit_length()) and rng.done()


def test_mask_random_word_redraws_out_of_range(vocab):
    tokens = [CLS, 11, SEP, 12, SEP]  # candidates 1, 3; num_to_predict = max(1, round(0.75)) = 1
    rng = ScriptedRng(randoms=[0.95, 0.95], bits=[1, 31, 19, 5])  # 31, 19 >= 19 words: redrawn
    out, pos, labels = P.create_masked_lm_predictions(tokens, 0.15, 20, vocab, rng)
    assert out == [CLS, 5, SEP, 12, SEP] and pos == [1] and labels == [11] and rng.done()


def test_mask_positions_sorted_and_capped(vocab):
    tokens = [CLS] + [11] * 10 + [SEP] + [12] * 10 + [SEP]  # 23 tokens
    # shuffle reverses nothing: scripted j = 0 at each step rotates; check sortedness and the cap
    rng = ScriptedRng(randoms=[0.1] * 2, bits=[0] * 19)
    out, pos, labels = P.create_masked_lm_predictions(tokens, 0.5, 2, vocab, rng)
    assert len(pos) == 2 and pos == sorted(pos) and all(out[p] == MASK for p in pos)
    assert rng.done()


def test_whole_word_groups_and_overflow_skip(vocab):
    # un ##want ##ed | run | [SEP] | x ##y  ->  groups [1,2,3] [4] [6,7]; "##y" joins "x"
    tokens = [CLS, 5, 6, 7, 8, SEP, 9, 10, SEP]
    # identity shuffle of 3 groups; num_to_predict = round(9 * 0.2) = 2:
    # [1,2,3] would overflow -> skipped (not a stop); [4] taken; [6,7] would overflow -> skipped
    rng = ScriptedRng(randoms=[0.1], bits=_identity_shuffle_bits(3))
    out, pos, labels = P.create_masked_lm_predictions(tokens, 0.2, 20, vocab, rng, True)
    assert pos == [4] and labels == [8] and out[4] == MASK and rng.done()
    # a larger budget takes the whole first word, every piece drawn in order
    rng = ScriptedRng(randoms=[0.1, 0.1, 0.1], bits=_identity_shuffle_bits(3))
    out, pos, labels = P.create_masked_lm_predictions(tokens, 0.35, 20, vocab, rng, True)
    assert pos == [1, 2, 3] and labels == [5, 6, 7] and rng.done()


def test_whole_word_group_joins_across_sep(vocab):
    # the original joins a ## piece to the candidate before it even across [SEP]
    tokens = [CLS, 9, SEP, 10, SEP]
    rng = ScriptedRng(randoms=[0.1, 0.1], bits=[])  # one group [1, 3]: no shuffle draws
    _, pos, _ = P.create_masked_lm_predictions(tokens, 0.4, 20, vocab, rng, True)
    assert pos == [1, 3] and rng.done()


# -- documents into instances -----------------------------------------------------------------------
def test_short_seq_target_and_actual_next_then_forced_random(vocab):
    docs = [[[11, 12], [13, 14], [15, 16]], [[17, 18, 11]]]
    cfg = P.PretrainingDataConfig(max_seq_length=8, short_seq_prob=0.1, masked_lm_prob=0.15)
    rng = ScriptedRng(
        randoms=[0.05,   # < short_seq_prob: target = randint(2, 5)
                 0.7,    # instance 1: >= 0.5 -> actual next
                 0.1,    # instance 1 mask: [MASK]
                 0.9, 0.2],  # instance 2 mask: kept
        bits=[1,         # randint(2, 5) = 2 + 1 = 3
              0,         # a_end = randint(1, 1)
              3, 2, 1,   # instance 1: identity shuffle of 4 candidates (k = 3, 2, 2)
              1,         # instance 2 (one segment -> random next, no draw): random doc = 1
              0,         # random_start = randint(0, 0)
              4, 3, 2, 1])  # instance 2: identity shuffle of 5 candidates
    inst = P.create_instances_from_document(docs, 0, cfg, vocab, rng)
    assert rng.done()
    assert rng.calls[1] == ("bits", 3)  # _randbelow(4)
    assert [i.tokens for i in inst] == [[CLS, MASK, 12, SEP, 13, 14, SEP],
                                        [CLS, 15, 16, SEP, 17, 18, 11, SEP]]
    assert [i.segment_ids for i in inst] == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1]]
    assert [i.is_random_next for i in inst] == [False, True]
    assert [i.masked_lm_positions for i in inst] == [[1], [1]]
    assert [i.masked_lm_labels for i in inst] == [[11], [15]]


def test_random_next_gives_back_unused_segments(vocab):
    docs = [[[11, 12], [13, 14], [15, 16]], [[17]]]
    cfg = P.PretrainingDataConfig(max_seq_length=8, short_seq_prob=0.0, masked_lm_prob=0.15)
    rng = ScriptedRng(
        randoms=[0.5,   # not < 0.0: target = 5
                 0.3,   # random next
                 0.1,   # mask (instance 1)
                 0.9,   # instance 2: actual next
                 0.9, 0.9,  # mask: not [MASK], not kept -> random word
                 ],
        bits=[0,        # a_end = 1 + randint draw 0 (len(chunk) = 3: _randbelow(2))
              1, 0,     # random doc 1, start 0
              2, 1,     # identity shuffle (3 candidates)
              0,        # instance 2: chunk [13,14],[15,16]: a_end = 1
              3, 2, 1,  # identity shuffle (4 candidates)
              11])      # random word id 11
    inst = P.create_instances_from_document(docs, 0, cfg, vocab, rng)
    assert rng.done() and len(inst) == 2
    # segments 2 and 3 went back: the second instance starts at segment 2
    assert inst[0].tokens == [CLS, MASK, 12, SEP, 17, SEP] and inst[0].is_random_next
    assert inst[1].tokens == [CLS, 11, 14, SEP, 15, 16, SEP] and not inst[1].is_random_next
    assert inst[1].masked_lm_labels == [13]


def test_random_document_ten_tries_then_own(vocab):
    docs = [[[11]], [[12]]]
    cfg = P.PretrainingDataConfig(max_seq_length=8, short_seq_prob=0.0, masked_lm_prob=0.15)
    rng = ScriptedRng(randoms=[0.5, 0.1], bits=[0] * 10 + [0, 1])
    inst = P.create_instances_from_document(docs, 0, cfg, vocab, rng)
    # ten draws of document 0 (itself): it is used anyway, as the original does
    assert inst[0].tokens == [CLS, MASK, SEP, 11, SEP] and inst[0].is_random_next
    assert rng.calls == (["random"] + [("bits", 2)] * 10  # target, ten document draws
                         + [("bits", 1), ("bits", 2), "random"])  # start, shuffle, mask
    assert rng.done()


def test_truncation_inside_instances_respects_max_seq_length(vocab):
    rng = random.Random(3)
    docs = [[[11] * 30, [12] * 30], [[13] * 40]]
    cfg = P.PretrainingDataConfig(max_seq_length=16, dupe_factor=3)
    for inst in P.create_training_instances(docs, cfg, vocab, rng):
        assert len(inst.tokens) <= 16 and inst.tokens[0] == CLS and inst.tokens[-1] == SEP
        assert inst.segment_ids.count(0) >= 3 and inst.segment_ids.count(1) >= 2


# -- reading text -----------------------------------------------------------------------------------
def test_read_documents_boundaries(tmp_path, tokenizer):
    f1 = tmp_path / "1.txt"
    f2 = tmp_path / "2.txt"
    f1.write_bytes(b"Hello world\n\n  \none two\r three\n")
    f2.write_bytes(b"four\n\n\x00\nhello")
    docs = P.read_documents([str(f1), str(f2)], tokenizer)
    ids = tokenizer.vocab
    # blank and whitespace-only lines end documents; "\r" is not a line break; the second file
    # continues the last document of the first (no boundary between files); a line that
    # tokenizes to nothing is skipped without ending the document
    assert [d for d in docs if d] == [
        [[ids["hello"], ids["world"]]],
        [[ids["one"], ids["two"], ids["three"]], [ids["four"]]],
        [[ids["hello"]]]]


def test_vocab_without_specials_is_an_error():
    with pytest.raises(OpenBertError, match=r"vocab.txt has no \[MASK\]"):
        P.MaskingVocab({"[CLS]": 0, "[SEP]": 1, "a": 2}, "vocab.txt")


# -- whole runs -------------------------------------------------------------------------------------
def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_empty_corpus_and_single_document_errors(tmp_path, tokenizer):
    empty = _write(tmp_path / "empty.txt", "\n \n\n")
    with pytest.raises(OpenBertError, match="holds no text"):
        P.create_pretraining_data(empty, str(tmp_path / "o1"), tokenizer, progress=False)
    one = _write(tmp_path / "one.txt", "hello world\n")
    with pytest.raises(OpenBertError, match="single document"):
        P.create_pretraining_data(one, str(tmp_path / "o2"), tokenizer, progress=False)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    with pytest.raises(OpenBertError, match="matches no file"):
        P.create_pretraining_data(str(tmp_path / "nope*.txt"), str(tmp_path / "o3"), tokenizer)
    with pytest.raises(OpenBertError, match="too small"):
        P.PretrainingDataConfig(max_seq_length=4).validate()


@pytest.fixture(scope="module")
def real_tokenizer(shared_data):
    return FullTokenizer(str(shared_data / "vocab" / "bert-base-uncased-vocab.txt"), True)


def _articles_one_sentence_per_line(text: str) -> str:
    """WikiText -> one sentence per line, articles (split at ' = Title = ') as documents."""
    import re

    docs = []
    for article in re.split(r"\n \= [^=\n]+ \= \n", text):
        sents = [s.strip() + " ." for p in article.split("\n") if len(p.split()) > 20
                 for s in p.split(" . ") if s.strip()]
        if sents:
            docs.append("\n".join(sents))
    return "\n\n".join(docs) + "\n"


def test_statistics_on_real_corpus(shared_data, real_tokenizer, tmp_path):
    text = (shared_data / "corpus" / "wikitext-2" / "valid.txt").read_text(encoding="utf-8")
    path = _write(tmp_path / "wiki.txt", _articles_one_sentence_per_line(text))
    cfg = P.PretrainingDataConfig(dupe_factor=2)
    s = P.create_pretraining_data(path, str(tmp_path / "out"), real_tokenizer, cfg, progress=False)
    assert s.documents > 50 and s.instances > 4000
    assert 0.145 < s.mask_rate < 0.152  # num_to_predict = round(0.15 * length), at most 20
    # 50% random next, plus the chunks of one segment (a document's last) that must be random
    assert 0.47 < s.random_next_rate < 0.56
    assert s.tokens / s.instances > 100  # most instances fill max_seq_length = 128


def test_workers_do_not_change_the_output_and_file_k_gets_seed_plus_k(shared_data, real_tokenizer,
                                                                        tmp_path):
    from openbert.io.shards import Shards

    lines = (shared_data / "corpus" / "tinyshakespeare.txt").read_text().split("\n")
    a = _write(tmp_path / "a.txt", "\n".join(lines[:600]) + "\n")
    b = _write(tmp_path / "b.txt", "\n".join(lines[600:1200]) + "\n")
    cfg = P.PretrainingDataConfig(dupe_factor=2, max_seq_length=64, random_seed=5)
    P.create_pretraining_data(f"{a},{b}", str(tmp_path / "w1"), real_tokenizer, cfg, workers=1,
                              progress=False)
    P.create_pretraining_data(f"{a},{b}", str(tmp_path / "w2"), real_tokenizer, cfg, workers=2,
                              progress=False)
    single = P.PretrainingDataConfig(dupe_factor=2, max_seq_length=64, random_seed=6)
    P.create_pretraining_data(b, str(tmp_path / "b_only"), real_tokenizer, single, progress=False)
    w1, w2, b_only = (Shards(str(tmp_path / d)) for d in ("w1", "w2", "b_only"))
    assert len(w1) == len(w2) > 0
    for i in range(len(w1)):
        x, y = w1.instance(i), w2.instance(i)
        assert all(np.array_equal(x[k], y[k]) for k in x)
    # shard 1 (file b, seed 5 + 1) equals a run on file b alone with seed 6
    start = int(w1.starts[1])
    assert len(b_only) == len(w1) - start
    for i in range(len(b_only)):
        x, y = w1.instance(start + i), b_only.instance(i)
        assert all(np.array_equal(x[k], y[k]) for k in x)


def test_one_file_matches_direct_algorithm_run(shared_data, real_tokenizer, tmp_path):
    """The file pipeline equals read_documents + create_training_instances with Random(seed)."""
    lines = (shared_data / "corpus" / "tinyshakespeare.txt").read_text().split("\n")[:400]
    path = _write(tmp_path / "s.txt", "\n".join(lines) + "\n")
    cfg = P.PretrainingDataConfig(dupe_factor=1, do_whole_word_mask=True, max_seq_length=48)
    out = tmp_path / "o.tfrecord"
    P.create_pretraining_data(path, str(out), real_tokenizer, cfg, output_format="tfrecord",
                              progress=False)
    docs = P.read_documents([path], real_tokenizer)
    vocab = P.MaskingVocab(real_tokenizer.vocab)
    ref = P.create_training_instances(docs, cfg, vocab, random.Random(cfg.random_seed))
    from openbert.io.tfrecord import decode_example, read_records

    records = [decode_example(r) for r in read_records(out)]
    assert len(records) == len(ref)
    for rec, inst in zip(records, ref):
        n = len(inst.tokens)
        assert rec["input_ids"][:n].tolist() == inst.tokens
        assert rec["segment_ids"][:n].tolist() == inst.segment_ids
        m = len(inst.masked_lm_positions)
        assert rec["masked_lm_positions"][:m].tolist() == inst.masked_lm_positions
        assert rec["masked_lm_ids"][:m].tolist() == inst.masked_lm_labels
        assert rec["next_sentence_labels"].tolist() == [int(inst.is_random_next)]


def _original_reference():
    """benchmarks/original_pretraining_data.py: the original algorithm on string tokens with the
    stdlib random methods."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "original_pretraining_data.py"
    spec = importlib.util.spec_from_file_location("original_pretraining_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("corpus,lines,flags", [
    ("tinyshakespeare.txt", 1500, dict(dupe_factor=2)),
    ("tinyshakespeare.txt", 1500, dict(dupe_factor=1, do_whole_word_mask=True, max_seq_length=64,
                                       random_seed=7)),
    ("wikitext-2/valid.txt", 400, dict(dupe_factor=1, short_seq_prob=0.5, masked_lm_prob=0.3)),
    ("wikitext-2/valid.txt", 400, dict(dupe_factor=1, do_whole_word_mask=True, max_seq_length=32,
                                       max_predictions_per_seq=5)),
])
def test_fast_path_equals_the_original_algorithm(shared_data, real_tokenizer, tmp_path, corpus,
                                                 lines, flags):
    """Instance for instance, the file pipeline equals the original algorithm run on strings with
    random.Random's own methods (tokens, segments, is_random_next, positions, labels, order)."""
    text = (shared_data / "corpus" / corpus).read_text(encoding="utf-8").split("\n")[:lines]
    path = _write(tmp_path / "c.txt", "\n".join(text) + "\n")
    cfg = P.PretrainingDataConfig(**flags)
    ref = _original_reference().original_instances([path], real_tokenizer, cfg)
    docs = P.read_documents([path], real_tokenizer)
    arrays = P.create_instance_arrays(docs, cfg, P.MaskingVocab(real_tokenizer.vocab),
                                      random.Random(cfg.random_seed))
    assert len(arrays) == len(ref) > 100
    ids = real_tokenizer.convert_tokens_to_ids
    for i, (tokens, segs, is_random, positions, labels) in enumerate(ref):
        ours = arrays.instance(i)
        assert ours.tokens == ids(tokens)
        assert ours.segment_ids == segs
        assert ours.is_random_next == is_random
        assert ours.masked_lm_positions == positions
        assert ours.masked_lm_labels == ids(labels)


def test_dynamic_masking(vocab):
    tokens = np.array([CLS] + [11] * 20 + [SEP] + [12] * 17 + [SEP])  # 40 tokens
    ex = {"input_ids": tokens.copy(), "segment_ids": np.zeros(40, np.int64),
          "masked_lm_positions": np.array([3, 30]), "masked_lm_ids": np.array([11, 12]),
          "next_sentence_labels": 0}
    ex["input_ids"][[3, 30]] = MASK
    dm = P.DynamicMasking(CLS, SEP, MASK, len(VOCAB), 0.15, 5, seed=1)
    first, second = dm(ex, 7), dm(ex, 7)
    for out in (first, second):
        pos = out["masked_lm_positions"]
        assert len(pos) == 5 and list(pos) == sorted(pos)  # min(5, round(40 * 0.15) = 6)
        assert np.array_equal(out["masked_lm_ids"], tokens[pos])  # labels = unmasked tokens
        keep = np.setdiff1d(np.arange(40), pos)
        assert np.array_equal(out["input_ids"][keep], tokens[keep])  # the rest restored
        assert CLS not in out["input_ids"][pos] and SEP not in out["masked_lm_ids"]
    assert not np.array_equal(first["masked_lm_positions"], second["masked_lm_positions"])
    again = P.DynamicMasking(CLS, SEP, MASK, len(VOCAB), 0.15, 5, seed=1)(ex, 7)
    assert np.array_equal(again["input_ids"], first["input_ids"])  # same seed, same access


def test_dynamic_masking_rates():
    rng_tokens = np.arange(10, 1010) % 500 + 10
    tokens = np.concatenate([[1], rng_tokens[:126], [2]])
    ex = {"input_ids": tokens, "segment_ids": np.zeros(128, np.int64),
          "masked_lm_positions": np.zeros(0, np.int64), "masked_lm_ids": np.zeros(0, np.int64),
          "next_sentence_labels": 1}
    dm = P.DynamicMasking(1, 2, 3, 600, 0.15, 20, seed=0)
    masked = kept = total = 0
    for i in range(400):
        out = dm(ex, i)
        pos = out["masked_lm_positions"]
        total += len(pos)
        masked += int((out["input_ids"][pos] == 3).sum())
        kept += int((out["input_ids"][pos] == tokens[pos]).sum())
    assert total == 400 * 19
    assert 0.78 < masked / total < 0.82 and 0.09 < kept / total < 0.115


def test_the_run_fingerprint_draws_no_dynamic_masks(shared_data):
    """Telling training runs apart must not shift the masks the run then trains on."""
    ds = P.PretrainingDataset(str(shared_data / "tfrecord" / "pretraining_tiny.tfrecord"), 16, 4)
    plain = ds.fingerprint()
    ds.dynamic_masking = P.DynamicMasking(1, 2, 3, 100, 0.15, 4, seed=0)
    assert ds.fingerprint() == plain and ds.dynamic_masking.counts == {}
    ds[0]
    assert ds.dynamic_masking.counts == {0: 1}

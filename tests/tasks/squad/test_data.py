"""SQuAD data code: reading, answer spans, windows, max-context, features, collate."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from openbert.errors import OpenBertError
from openbert.tasks.squad import data as squad


@pytest.fixture(scope="module")
def tokenizer(shared_data):
    from openbert.tokenization.wordpiece import FullTokenizer

    vocab = shared_data / "vocab" / "bert-base-uncased-vocab.txt"
    if not vocab.is_file():
        pytest.skip(f"Google vocab not found at {vocab}")
    return FullTokenizer(vocab, do_lower_case=True)


def write_squad(tmp_path, paragraphs, version="1.1", name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"version": version, "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return path


def qa(qid, question, text=None, start=None, impossible=None):
    q = {"id": qid, "question": question, "answers": [] if text is None else [{"text": text, "answer_start": start}]}
    if impossible is not None:
        q["is_impossible"] = impossible
    return q


def test_split_context_whitespace_and_char_map():
    doc, offsets = squad.split_context(" The\tcat\u202Fsat  on\r\nmats.")
    assert doc == ["The", "cat", "sat", "on", "mats."]
    assert offsets[:6] == [-1, 0, 0, 0, 0, 1]
    assert len(offsets) == len(" The\tcat\u202Fsat  on\r\nmats.")
    assert offsets[-1] == 4
    # U+00A0 is not a separator in the original
    assert squad.split_context("a\u00A0b")[0] == ["a\u00A0b"]


def test_read_training_answer_word_positions(tmp_path):
    ctx = "The leader was John Smith (1895-1943)."
    path = write_squad(tmp_path, [{"context": ctx, "qas": [qa("q1", "Who?", "John Smith", ctx.index("John")),
                                                            qa("q2", "Born?", "1895", ctx.index("1895"))]}])
    ex = squad.read_squad_examples(path, is_training=True)
    assert [(e.start_position, e.end_position) for e in ex] == [(3, 4), (5, 5)]
    assert ex[0].doc_tokens is ex[1].doc_tokens  # one paragraph, shared words
    # prediction mode keeps no answers
    pe = squad.read_squad_examples(path, is_training=False)
    assert pe[0].start_position is None and pe[0].orig_answer_text is None


def test_answer_start_mismatch_is_counted_and_skipped(tmp_path, caplog):
    ctx = "Paris is the capital of France."
    path = write_squad(tmp_path, [{"context": ctx, "qas": [
        qa("good", "Capital?", "Paris", 0),
        qa("bad", "Country?", "France", 0),          # answer_start points at "Paris"
        qa("out", "Country?", "France", 500)]}])     # answer_start beyond the context
    stats = squad.ReadStats()
    with caplog.at_level(logging.WARNING):
        ex = squad.read_squad_examples(path, is_training=True, stats=stats)
    assert [e.qas_id for e in ex] == ["good"]
    assert stats.skipped_ids == ["bad", "out"] and stats.num_questions == 3
    assert "skipped 2 of 3" in caplog.text


def test_v2_data_without_flag_is_an_error(tmp_path):
    path = write_squad(tmp_path, [{"context": "a b c", "qas": [qa("q", "x?", impossible=True)]}], version="v2.0")
    for is_training in (True, False):
        with pytest.raises(OpenBertError, match="--version_2_with_negative"):
            squad.read_squad_examples(path, is_training=is_training)
    ex = squad.read_squad_examples(path, is_training=True, version_2_with_negative=True)
    assert ex[0].is_impossible and ex[0].start_position == -1 and ex[0].orig_answer_text == ""


def test_training_needs_exactly_one_answer(tmp_path):
    q = qa("q", "x?", "a", 0)
    q["answers"].append({"text": "b", "answer_start": 2})
    path = write_squad(tmp_path, [{"context": "a b c", "qas": [q]}])
    with pytest.raises(OpenBertError, match="exactly 1 answer"):
        squad.read_squad_examples(path, is_training=True)
    assert len(squad.read_squad_examples(path, is_training=False)) == 1


@pytest.mark.parametrize("content, match", [
    ("not json at all", "not a JSON file"),
    ('{"sentences": ["a", "b"]}', 'top level must be an object with a "data" list'),
    ('[1, 2, 3]', "not SQuAD format"),
    ('{"data": [{"title": "x"}]}', 'no "paragraphs" list'),
    ('{"data": [{"paragraphs": [{"context": "c"}]}]}', '"qas" list'),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"question": "q"}]}]}]}', 'needs an "id"'),
])
def test_non_squad_json_is_a_clear_error(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(OpenBertError, match=match) as e:
        squad.read_squad_examples(path, is_training=False)
    assert str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(OpenBertError, match="file not found"):
        squad.read_squad_examples(tmp_path / "nope.json", is_training=True)


def test_doc_spans_and_max_context_original_example():
    # The original's docstring: "the man went to the store and bought a gallon of milk",
    # windows of 5 words with stride 3: A = 0..4, B = 3..7, C = 6..10, D = 9..12.
    spans = squad.doc_spans_for(13, 5, 3)
    assert spans == [(0, 5), (3, 5), (6, 5), (9, 4)]
    assert squad.max_context_span(spans, 7) == 2  # "bought": B has (4, 0), C has (1, 3)
    assert squad.max_context_span(spans, 3) == 0  # "to": A (3, 1) vs B (0, 4)
    assert squad.max_context_span(spans, 12) == 3
    # short document: one window; stride larger than the window never leaves gaps
    assert squad.doc_spans_for(4, 10, 2) == [(0, 4)]
    assert squad.doc_spans_for(10, 3, 100) == [(0, 3), (3, 3), (6, 3), (9, 1)]
    for n, window, stride in [(13, 5, 3), (100, 17, 5), (50, 8, 8), (7, 3, 1)]:
        spans = squad.doc_spans_for(n, window, stride)
        assert squad.max_context_spans(spans, n) == [squad.max_context_span(spans, i) for i in range(n)]
    with pytest.raises(OpenBertError, match="no room for the document"):
        squad.doc_spans_for(10, 0, 2)


def _long_example(n_words=300):
    words = [f"word{i % 50}" if i % 7 else "Montréal," for i in range(n_words)]
    return squad.SquadExample("long", "which word comes here ?", words)


@pytest.mark.parametrize("max_seq_length, doc_stride", [(64, 16), (64, 40), (48, 48), (40, 100)])
def test_long_context_every_token_covered_once_as_max_context(tokenizer, max_seq_length, doc_stride):
    ex = _long_example()
    feats = squad.convert_examples_to_features([ex], tokenizer, max_seq_length, doc_stride, 64, False)
    _, _, all_doc_tokens, ids = squad._WordTokenizer(tokenizer).tokenize_doc(ex.doc_tokens)
    assert ids == tokenizer.convert_tokens_to_ids(all_doc_tokens)
    assert len(feats) > 3
    covered = [0] * len(all_doc_tokens)
    max_context = [0] * len(all_doc_tokens)
    for f in feats:
        assert len(f.input_ids) <= max_seq_length
        assert f.tokens[0] == "[CLS]" and f.tokens[-1] == "[SEP]"
        doc_offset = f.tokens.index("[SEP]") + 1
        assert f.segment_ids == [0] * doc_offset + [1] * (len(f.tokens) - doc_offset)
        assert f.input_ids == tokenizer.convert_tokens_to_ids(f.tokens)
        for pos, orig in f.token_to_orig_map.items():
            assert ex.doc_tokens[orig]  # maps to a real word
        # each window starts min(previous length, doc_stride) after the previous one
        first = sum(min(len(g.tokens) - doc_offset - 1, doc_stride) for g in feats[:f.doc_span_index])
        for i in range(doc_offset, len(f.tokens) - 1):
            covered[first + i - doc_offset] += 1
            max_context[first + i - doc_offset] += f.token_is_max_context[i]
            assert all_doc_tokens[first + i - doc_offset] == f.tokens[i]
    assert all(c >= 1 for c in covered)
    assert max_context == [1] * len(all_doc_tokens)
    assert [f.unique_id for f in feats] == list(range(squad.UNIQUE_ID_BASE, squad.UNIQUE_ID_BASE + len(feats)))


def test_question_truncated_to_max_query_length(tokenizer):
    ex = squad.SquadExample("q", "one two three four five six seven", ["a", "b"])
    (f,) = squad.convert_examples_to_features([ex], tokenizer, 32, 8, 3, False)
    assert f.tokens == ["[CLS]", "one", "two", "three", "[SEP]", "a", "b", "[SEP]"]
    assert f.token_to_orig_map == {5: 0, 6: 1}


def _train_features(tmp_path, tokenizer, ctx, answer, question="q ?", max_seq_length=384, doc_stride=128,
                    occurrence=0):
    start = -1
    for _ in range(occurrence + 1):
        start = ctx.index(answer, start + 1)
    path = write_squad(tmp_path, [{"context": ctx, "qas": [qa("id", question, answer, start)]}])
    ex = squad.read_squad_examples(path, is_training=True)
    return ex, squad.convert_examples_to_features(ex, tokenizer, max_seq_length, doc_stride, 64, True)


def _answer_tokens(f):
    return f.tokens[f.start_position:f.end_position + 1]


def test_improved_span_punctuation_attached(tmp_path, tokenizer):
    ex, (f,) = _train_features(tmp_path, tokenizer, "The leader was John Smith (1895-1943).", "1895")
    assert (ex[0].start_position, ex[0].end_position) == (5, 5)  # the word "(1895-1943)."
    assert _answer_tokens(f) == ["1895"]
    ex, (f,) = _train_features(tmp_path, tokenizer, "It was won by Smith's team.", "Smith")
    assert _answer_tokens(f) == ["smith"]


def test_no_improvement_inside_a_word(tmp_path, tokenizer):
    ex, (f,) = _train_features(tmp_path, tokenizer, "The Japanese electronics industry is the largest.", "Japan")
    assert _answer_tokens(f) == ["japanese"]


def test_accented_answer(tmp_path, tokenizer):
    ctx = "They met at the Caf\u00e9 Mont\u00e9al in Qu\u00e9bec city."
    ex, (f,) = _train_features(tmp_path, tokenizer, ctx, "Qu\u00e9bec")
    assert _answer_tokens(f) == ["quebec"]
    ex, (f,) = _train_features(tmp_path, tokenizer, ctx, "Caf\u00e9 Mont\u00e9al")
    assert "".join(_answer_tokens(f)).replace("#", "") == "cafemonteal"


def test_answer_at_window_edges(tmp_path, tokenizer):
    # 20 one-piece words; question "q ?" = 2 tokens; max_seq_length 13 -> 8 doc tokens a window,
    # stride 4: windows 0..7, 4..11, 8..15, 12..19.
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
             "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
    ctx = " ".join(words)
    doc_offset = 4  # [CLS] q ? [SEP]
    _, feats = _train_features(tmp_path, tokenizer, ctx, "seven", max_seq_length=13, doc_stride=4)
    assert [(f.start_position, f.end_position) for f in feats] == [(doc_offset + 7,) * 2, (doc_offset + 3,) * 2,
                                                                  (0, 0), (0, 0)]
    assert _answer_tokens(feats[0]) == ["seven"]  # last token of window 0
    _, feats = _train_features(tmp_path, tokenizer, ctx, "seven eight", max_seq_length=13, doc_stride=4)
    # spans the edge of window 0: only window 1 holds it whole
    assert [(f.start_position, f.end_position) for f in feats] == [(0, 0), (doc_offset + 3, doc_offset + 4),
                                                                  (0, 0), (0, 0)]
    _, feats = _train_features(tmp_path, tokenizer, ctx, "eight", max_seq_length=13, doc_stride=4)
    assert [(f.start_position, f.end_position) for f in feats] == [(0, 0), (doc_offset + 4,) * 2,
                                                                  (doc_offset,) * 2, (0, 0)]
    assert _answer_tokens(feats[2]) == ["eight"]  # first token of window 2
    _, feats = _train_features(tmp_path, tokenizer, ctx, "nineteen", max_seq_length=13, doc_stride=4)
    assert _answer_tokens(feats[-1]) == ["nineteen"] and feats[-1].tokens[-2] == "nineteen"


def test_v2_impossible_targets_cls_in_every_window(tmp_path, tokenizer):
    ctx = " ".join(["alpha beta gamma delta"] * 10)
    path = write_squad(tmp_path, [{"context": ctx, "qas": [qa("imp", "what ?", impossible=True),
                                                            qa("pos", "what ?", "gamma", 11, impossible=False)]}],
                       version="v2.0")
    ex = squad.read_squad_examples(path, is_training=True, version_2_with_negative=True)
    feats = squad.convert_examples_to_features(ex, tokenizer, 24, 8, 64, True)
    imp = [f for f in feats if f.example_index == 0]
    pos = [f for f in feats if f.example_index == 1]
    assert len(imp) > 1 and all(f.is_impossible and (f.start_position, f.end_position) == (0, 0) for f in imp)
    assert _answer_tokens(pos[0]) == ["gamma"] and not pos[0].is_impossible


def test_collate_pads_and_masks(tmp_path, tokenizer):
    _, feats = _train_features(tmp_path, tokenizer, " ".join(["word"] * 30) + " answer here", "answer",
                               max_seq_length=20, doc_stride=5)
    batch = squad.collate_train(feats[:3])
    lengths = [len(f.input_ids) for f in feats[:3]]
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["input_mask"].sum(1).tolist() == lengths
    assert batch["segment_ids"].dtype == torch.long
    assert batch["start_positions"].tolist() == [f.start_position for f in feats[:3]]
    assert set(squad.collate_predict(feats[:2], pad_to=20)) == {"input_ids", "input_mask", "segment_ids"}
    assert squad.collate_predict(feats[:2], pad_to=20)["input_ids"].shape == (2, 20)

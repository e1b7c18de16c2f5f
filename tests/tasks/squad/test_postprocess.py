"""SQuAD post-processing: get_final_text, n-best filtering, v2 null answers, output files."""
from __future__ import annotations

import json
import math

import pytest

from openbert.tasks.squad import data as squad
from openbert.tasks.squad.postprocess import (NULL_SCORE_NO_ANSWER, RawResult, _strip_spaces,
                                              compute_predictions, compute_softmax,
                                              get_best_indexes, get_final_text, write_predictions)


@pytest.fixture(scope="module")
def tokenizer(shared_data):
    from openbert.tokenization.wordpiece import FullTokenizer

    vocab = shared_data / "vocab" / "bert-base-uncased-vocab.txt"
    if not vocab.is_file():
        pytest.skip(f"Google vocab not found at {vocab}")
    return FullTokenizer(vocab, do_lower_case=True)


@pytest.mark.parametrize("pred, orig, lower, expected", [
    ("steve smith", "Steve Smith's", True, "Steve Smith"),
    # decomposed accent: one character more than "cafe town" -> no alignment -> the original words
    ("cafe town", "Cafe\u0301 Town", True, "Cafe\u0301 Town"),
    ("1895", "(1895-1943).", True, "1895"),
    ("1943", "(1895-1943).", True, "1943"),
    ("Steve Smith", "Steve Smith's", False, "Steve Smith"),
    ("montreal", "Montr\u00e9al,", True, "Montr\u00e9al"),
    # not found: fall back to the original words
    ("paris", "Steve Smith's", True, "Steve Smith's"),
    # cased prediction against lower-cased alignment fails to find: original text
    ("steve", "Steve", False, "Steve"),
])
def test_get_final_text(pred, orig, lower, expected):
    assert get_final_text(pred, orig, lower) == expected


def test_get_final_text_length_mismatch_falls_back():
    # the tokenizer drops the zero-width space (category Cf): lengths differ -> orig_text
    orig = "foo\u200bbar baz"
    assert get_final_text("foobar", orig, True) == orig
    assert get_final_text("baz", "foo bar baz", True) == "baz"


def test_strip_spaces_map():
    text, m = _strip_spaces("a b  c")
    assert text == "abc" and dict(m) == {0: 0, 1: 2, 2: 5}


def test_best_indexes_and_softmax():
    assert get_best_indexes([0.1, 3.0, -1.0, 3.0, 2.0], 3) == [1, 3, 4]
    probs = compute_softmax([1.0, 2.0, 3.0])
    assert probs == pytest.approx([math.exp(i) / sum(math.exp(j) for j in (1, 2, 3)) for i in (1, 2, 3)])
    assert compute_softmax([1000.0, 1000.0]) == [0.5, 0.5] and compute_softmax([]) == []


def _setup(tokenizer, context, question="who ?", max_seq_length=384, doc_stride=128, qid="q"):
    doc_tokens, _ = squad.split_context(context)
    ex = squad.SquadExample(qid, question, doc_tokens)
    feats = squad.convert_examples_to_features([ex], tokenizer, max_seq_length, doc_stride, 64, False)
    return ex, feats


def _logits(feature, start: dict, end: dict, default=-10.0):
    n = len(feature.tokens)
    s = [default] * n
    e = [default] * n
    for k, v in start.items():
        s[k] = v
    for k, v in end.items():
        e[k] = v
    return RawResult(feature.unique_id, s, e)


def test_nbest_filters_and_order(tokenizer):
    ex, (f,) = _setup(tokenizer, "The leader was Steve Smith's (1895-1943) brother.")
    # tokens: [CLS] who ? [SEP] the leader was steve smith ' s ( 1895 - 1943 ) brother . [SEP]
    pos = {t: i for i, t in reversed(list(enumerate(f.tokens)))}
    steve, smith, leader, year = pos["steve"], pos["smith"], pos["leader"], pos["1895"]
    result = _logits(f, {1: 9.0, 0: 8.5, steve: 5.0, year: 4.0, smith: 3.0, len(f.tokens) - 1: 8.0},
                     {2: 9.0, smith: 5.0, leader: 4.5, year: 4.0, len(f.tokens) - 1: 8.0})
    out = compute_predictions([ex], [f], [result], n_best_size=20, max_answer_length=30)
    texts = [e["text"] for e in out.nbest["q"]]
    # question tokens, [CLS], the final [SEP] and end < start never appear; best = steve..smith
    assert out.predictions["q"] == "Steve Smith"
    # scores 10, 9, 8 (tie: the better start logit was listed first), 8, 7
    assert texts[:5] == ["Steve Smith", "Steve Smith's (1895", "1895", "Smith", "Smith's (1895"]
    assert all(e["start_logit"] + e["end_logit"] < 0 for e in out.nbest["q"][5:])
    nb = out.nbest["q"]
    # never: starts in the question / [CLS] / final [SEP] (9, 8.5, 8), ends there (9, 8), or
    # "steve" -> "leader" (5 + 4.5: ends before it starts)
    assert not any(e["start_logit"] in (9.0, 8.5, 8.0) or e["end_logit"] in (9.0, 8.0) for e in nb)
    assert not any((e["start_logit"], e["end_logit"]) == (5.0, 4.5) for e in nb)
    assert nb[0]["start_logit"] == 5.0 and nb[0]["end_logit"] == 5.0
    assert sum(e["probability"] for e in nb) == pytest.approx(1.0)
    assert [e["probability"] for e in nb] == sorted((e["probability"] for e in nb), reverse=True)
    assert list(nb[0]) == ["text", "probability", "start_logit", "end_logit"]
    assert out.null_odds == {}

    # max_answer_length: steve..smith is 2 tokens, steve..1895 is 6
    short = compute_predictions([ex], [f], [result], n_best_size=20, max_answer_length=1)
    assert all(e["text"].count(" ") == 0 for e in short.nbest["q"])
    assert [e["text"] for e in short.nbest["q"]][:2] == ["1895", "Smith"]  # 4 + 4 = 8 before 3 + 5
    # n_best_size caps both the candidate indexes and the list
    few = compute_predictions([ex], [f], [result], n_best_size=2, max_answer_length=30)
    assert len(few.nbest["q"]) <= 2


def test_nonce_when_nothing_valid(tokenizer):
    ex, (f,) = _setup(tokenizer, "Hello world")
    result = _logits(f, {0: 5.0, 1: 4.0}, {0: 5.0, 1: 4.0}, default=-100.0)
    out = compute_predictions([ex], [f], [result], n_best_size=2)
    assert out.predictions["q"] == "empty"
    assert out.nbest["q"] == [{"text": "empty", "probability": 1.0, "start_logit": 0.0, "end_logit": 0.0}]


def test_windows_max_context_dedup_and_v2_null_minimum(tokenizer):
    words = " ".join(f"w{i}" for i in range(40))  # "w12" -> "w", "##12": 2 pieces a word
    ex, feats = _setup(tokenizer, words, max_seq_length=30, doc_stride=10)
    assert len(feats) > 2
    results = []
    for k, f in enumerate(feats):
        # every window votes for every doc token equally; only max-context starts may be used
        doc = list(f.token_to_orig_map)
        results.append(_logits(f, {0: 1.0 + k, **{i: 2.0 for i in doc}}, {0: 1.0 + k, **{i: 2.0 for i in doc}},
                               default=-50.0))
    out = compute_predictions([ex], feats, results, n_best_size=20, max_answer_length=4,
                              version_2_with_negative=True)
    texts = [e["text"] for e in out.nbest["q"]]
    assert len(texts) == len(set(texts))  # de-duplicated across windows
    # the null candidate uses the window with the smallest null score (window 0: 1 + 1)
    null = [e for e in out.nbest["q"] if e["text"] == ""]
    assert len(null) == 1 and null[0]["start_logit"] == 1.0 and null[0]["end_logit"] == 1.0
    # null score 2.0 - best non-null 4.0 = -2.0 <= 0: answer
    assert out.null_odds["q"] == pytest.approx(-2.0)
    assert out.predictions["q"] != ""
    # with a threshold below the difference the answer becomes ""
    out = compute_predictions([ex], feats, results, n_best_size=20, max_answer_length=4,
                              version_2_with_negative=True, null_score_diff_threshold=-3.0)
    assert out.predictions["q"] == ""


def test_start_only_from_its_max_context_window(tokenizer):
    ex, feats = _setup(tokenizer, " ".join(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"] * 3),
                       max_seq_length=12, doc_stride=3)
    f0, f1 = feats[0], feats[1]
    # the last doc token of window 0 is also in window 1, where it has more context
    last0 = max(f0.token_to_orig_map)
    word = f0.token_to_orig_map[last0]
    pos1 = next(i for i, w in f1.token_to_orig_map.items() if w == word)
    assert not f0.token_is_max_context[last0] and f1.token_is_max_context[pos1]
    results = [_logits(f, {}, {}) for f in feats]
    results[0] = _logits(f0, {last0: 9.0}, {last0: 9.0})
    results[1] = _logits(f1, {pos1: 1.0}, {pos1: 1.0})
    out = compute_predictions([ex], feats, results, n_best_size=20)
    best = out.nbest["q"][0]
    assert best["text"] == ex.doc_tokens[word] and best["start_logit"] == 1.0


def test_v2_only_null_candidate_does_not_crash(tokenizer):
    ex, (f,) = _setup(tokenizer, "Hello world")
    result = _logits(f, {0: 5.0, 1: 4.0}, {0: 5.0, 1: 4.0}, default=-100.0)
    out = compute_predictions([ex], [f], [result], n_best_size=2, version_2_with_negative=True)
    assert out.predictions["q"] == ""
    assert out.null_odds["q"] == NULL_SCORE_NO_ANSWER
    assert [e["text"] for e in out.nbest["q"]] == [""]


def test_v2_null_added_when_outside_nbest(tokenizer):
    ex, (f,) = _setup(tokenizer, "alpha beta gamma delta epsilon")
    doc = list(f.token_to_orig_map)
    result = _logits(f, {0: -5.0, doc[0]: 3.0, doc[1]: 2.0}, {0: -5.0, doc[1]: 3.0, doc[2]: 2.0})
    out = compute_predictions([ex], [f], [result], n_best_size=1, version_2_with_negative=True)
    assert [e["text"] for e in out.nbest["q"]] == ["alpha beta", ""]
    assert out.null_odds["q"] == pytest.approx(-10.0 - 6.0)
    assert out.predictions["q"] == "alpha beta"


def test_write_predictions_files(tmp_path, tokenizer):
    ex, (f,) = _setup(tokenizer, "Caf\u00e9 Town is nice")
    doc = list(f.token_to_orig_map)
    result = _logits(f, {doc[0]: 3.0}, {doc[1]: 3.0})
    out = compute_predictions([ex], [f], [result], version_2_with_negative=True)
    paths = write_predictions(out, tmp_path, version_2_with_negative=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbest_predictions.json", "null_odds.json",
                                                          "predictions.json"]
    text = (tmp_path / "predictions.json").read_text()
    assert text == json.dumps({"q": "Caf\u00e9 Town"}, indent=4) + "\n"
    assert json.loads((tmp_path / "nbest_predictions.json").read_text())["q"][0]["text"] == "Caf\u00e9 Town"
    assert set(paths) == {"predictions", "nbest_predictions", "null_odds"}
    v1 = tmp_path / "v1"
    v1.mkdir()
    write_predictions(out, v1)
    assert not (v1 / "null_odds.json").exists()


def test_final_text_span_locates_get_final_text_in_the_original_words():
    from openbert.tasks.squad.postprocess import final_text_span

    assert final_text_span("steve smith", "Steve Smith's", True) == (0, 11)
    assert get_final_text("steve smith", "Steve Smith's", True) == "Steve Smith"
    assert final_text_span("not there", "Steve Smith's", True) == (0, 13)  # fallback: all of it


def test_context_offsets_map_answer_spans_back_onto_the_context_whitespace_and_all():
    from openbert.tasks.squad.postprocess import context_offsets

    context = " The  quick\tbrown\n\nfox's tail."
    # words: The quick brown fox's tail. ; " ".join(words[1:4]) == "quick brown fox's"
    s, e = context_offsets(context, (1, 3, 6, 15))  # "brown fox"
    assert context[s:e] == "brown\n\nfox"
    s, e = context_offsets(context, (0, 0, 0, 3))
    assert context[s:e] == "The"
    s, e = context_offsets(context, (4, 4, 0, 4))
    assert context[s:e] == "tail"

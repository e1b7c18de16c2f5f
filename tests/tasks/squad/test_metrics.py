"""The official SQuAD v1.1 / v2.0 metrics on hand-computed cases."""
from __future__ import annotations

import pytest

from openbert.errors import OpenBertError
from openbert.tasks.squad.metrics import (compute_exact, compute_f1, evaluate, evaluate_v1,
                                          evaluate_v2, find_best_thresh, normalize_answer)


@pytest.mark.parametrize("text, expected", [
    ("The Eiffel Tower", "eiffel tower"),
    ("an apple, a pear & the plum!", "apple pear plum"),
    ("  Smith's   (1895-1943). ", "smiths 18951943"),
    ("Theatre and anthem", "theatre and anthem"),  # only whole-word articles
    ("A", ""),
    ("caf\u00e9 \u2013 bar", "caf\u00e9 \u2013 bar"),  # only ASCII punctuation is removed
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_and_f1_hand_computed():
    assert compute_exact("The Eiffel Tower", "eiffel tower.") == 1
    assert compute_exact("Eiffel Tower", "Tower") == 0
    # gold 3 tokens (steve, smith, jr), pred 2 (steve, smith): p=1, r=2/3 -> f1=0.8
    assert compute_f1("Steve Smith Jr.", "the steve smith") == pytest.approx(0.8)
    # repeated tokens count with multiplicity: common = {new: 1, york: 1}, p = r = 2/3
    assert compute_f1("new new york", "new york york") == pytest.approx(2 / 3)
    assert compute_f1("Paris", "London") == 0.0
    # v2: empty against empty is 1, empty against a word 0; v1 gives 0 for any empty side
    assert compute_f1("", "") == 1.0 and compute_f1("", "x") == 0.0 and compute_f1("the", "") == 1.0
    assert compute_f1("", "", empty_matches_empty=False) == 0.0


def _data(qas):
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


def _qa(qid, *answers, impossible=None):
    q = {"id": qid, "question": "?", "answers": [{"text": a, "answer_start": 0} for a in answers]}
    if impossible is not None:
        q["is_impossible"] = impossible
    return q


def test_v1_max_over_golds_and_missing_predictions():
    data = _data([_qa("1", "Denver Broncos", "The Broncos"), _qa("2", "Steve Smith Jr."), _qa("3", "x")])
    preds = {"1": "broncos", "2": "Steve Smith"}  # "3" missing: counts 0
    out = evaluate_v1(data, preds)
    # q1: EM 1 (vs "The Broncos"), F1 1; q2: EM 0, F1 0.8; q3: 0
    assert out == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 * 1.8 / 3)}
    assert list(out) == ["exact_match", "f1"]


def test_v2_splits_and_missing():
    data = _data([_qa("a", "Denver Broncos"), _qa("b", "Steve Smith Jr."),
                  _qa("c", impossible=True), _qa("d", impossible=True)])
    preds = {"a": "Denver Broncos", "b": "Smith", "c": "", "d": "something"}
    out = evaluate_v2(data, preds)
    # a: 1/1; b: EM 0, F1 p=1 r=1/3 -> 0.5; c: 1/1; d: 0/0
    assert out["exact"] == pytest.approx(50.0) and out["f1"] == pytest.approx(62.5) and out["total"] == 4
    assert out["HasAns_exact"] == pytest.approx(50.0) and out["HasAns_f1"] == pytest.approx(75.0)
    assert out["HasAns_total"] == 2 and out["NoAns_total"] == 2
    assert out["NoAns_exact"] == pytest.approx(50.0) and out["NoAns_f1"] == pytest.approx(50.0)
    assert "best_f1" not in out
    # gold answers that normalise to nothing count as no answer
    assert evaluate_v2(_data([_qa("e", "the")]), {"e": ""})["exact"] == 100.0
    # missing predictions are left out of the totals, as in the official script
    assert evaluate_v2(data, {"a": "Denver Broncos"})["total"] == 1


def test_v2_na_prob_threshold_and_best_thresholds():
    data = _data([_qa("a", "Denver"), _qa("b", "Paris"), _qa("c", impossible=True), _qa("d", impossible=True)])
    preds = {"a": "Denver", "b": "London", "c": "Rome", "d": ""}
    na = {"a": -3.0, "b": 1.0, "c": 2.0, "d": 5.0}
    out = evaluate_v2(data, preds, na, na_prob_thresh=1.5)
    # na > 1.5 -> predicted null: c (right: 1), d (right: 1); a right, b wrong -> 75
    assert out["exact"] == pytest.approx(75.0)
    # sweep ascending na: start 2 (no-answer count); a +1 = 3 (thresh -3); b +0; c -1 (pred "Rome");
    # d +0 -> best 3/4 at -3.0
    assert out["best_exact"] == pytest.approx(75.0) and out["best_exact_thresh"] == -3.0
    assert out["best_f1"] == pytest.approx(75.0) and out["best_f1_thresh"] == -3.0
    # a NoAns prediction that is empty costs nothing; a HasAns gain later raises the threshold
    best, thresh = find_best_thresh({"x": "", "y": "ok"}, {"x": 1.0, "y": 1.0}, {"x": 0.5, "y": 0.9},
                                    {"x": False, "y": True})
    assert (best, thresh) == (100.0, 0.9)
    with pytest.raises(OpenBertError, match="null-odds file has no entry"):
        evaluate_v2(data, preds, {"a": 0.0})


def test_evaluate_picks_the_version():
    v1 = {"version": "1.1", "data": _data([_qa("a", "x y")])}
    v2 = {"version": "v2.0", "data": _data([_qa("a", "x y")])}
    assert set(evaluate(v1, {"a": "x"})) == {"exact_match", "f1"}
    assert evaluate(v1, {"a": "x"})["f1"] == pytest.approx(100 * 2 / 3)
    assert evaluate(v2, {"a": "x"})["HasAns_total"] == 1
    # no version field: an impossible question means v2.0
    assert "exact" in evaluate({"data": _data([_qa("a", impossible=True)])}, {"a": ""})


def test_the_declared_version_wins_over_the_questions():
    """A file declared 1.1 is scored by evaluate-v1.1.py even when a question carries
    is_impossible (the official v1.1 script ignores that field); ``version`` forces one."""
    data = _data([_qa("a", "x y"), _qa("b", "z", impossible=False)])
    data[0]["paragraphs"][0]["qas"][1]["is_impossible"] = True
    v1 = {"version": "1.1", "data": data}
    assert set(evaluate(v1, {"a": "x", "b": "z"})) == {"exact_match", "f1"}
    assert "HasAns_total" in evaluate(v1, {"a": "x", "b": "z"}, version="2.0")
    assert set(evaluate({"version": "v2.0", "data": data}, {"a": "x", "b": "z"}, version="1.1")) == {
        "exact_match", "f1"}
    with pytest.raises(OpenBertError, match="--version 3.0: use 1.1 or 2.0"):
        evaluate(v1, {}, version="3.0")

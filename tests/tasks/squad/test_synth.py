"""The CoNLL-2003 -> SQuAD-format builder: real spans, exact offsets, v2 impossible questions."""
from __future__ import annotations

import json

import pytest

from openbert.errors import OpenBertError
from openbert.tasks.squad import data as squad
from openbert.tasks.squad import synth as squad_synth


def test_entity_spans_iob1_and_iob2():
    sent = [("EU", "I-ORG"), ("rejects", "O"), ("German", "I-MISC"), ("call", "O"),
            ("Peter", "I-PER"), ("Blackburn", "I-PER"), ("Bonn", "I-LOC"), ("Paris", "B-LOC")]
    assert squad_synth.entity_spans(sent) == [(0, 0, "ORG"), (2, 2, "MISC"), (4, 5, "PER"), (6, 6, "LOC"),
                                              (7, 7, "LOC")]


def test_build_from_conll(shared_data, tmp_path):
    conll = shared_data / "conll2003" / "eng.testa"
    data = squad_synth.build(conll, max_paragraphs=20, questions_per_paragraph=2)
    assert data["version"] == "1.1"
    qas = [(p, qa) for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert len(qas) == 40 and len({qa["id"] for _, qa in qas}) == 40
    for p, qa in qas:
        (ans,) = qa["answers"]
        assert p["context"][ans["answer_start"]:ans["answer_start"] + len(ans["text"])] == ans["text"]
        assert qa["question"].endswith(" ?") and any(w in qa["question"] for w in squad_synth.QUESTION_WORDS.values())
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    stats = squad.ReadStats()
    assert len(squad.read_squad_examples(path, is_training=True, stats=stats)) == 40 and not stats.skipped_ids
    v2 = squad_synth.build(conll, max_paragraphs=20, version_2=True, impossible_fraction=0.5)
    imp = [qa for a in v2["data"] for p in a["paragraphs"] for qa in p["qas"] if qa["is_impossible"]]
    assert v2["version"] == "v2.0" and imp and all(qa["answers"] == [] for qa in imp)
    assert squad_synth.build(conll, max_paragraphs=20, questions_per_paragraph=2) == data  # deterministic


def test_bad_conll_file(tmp_path):
    with pytest.raises(OpenBertError, match="not found"):
        squad_synth.read_conll_documents(tmp_path / "none")
    bad = tmp_path / "bad.txt"
    bad.write_text("-DOCSTART- -X- O O\n\nword\n")
    with pytest.raises(OpenBertError, match="bad.txt:3"):
        squad_synth.read_conll_documents(bad)

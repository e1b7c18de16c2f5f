"""conlleval's counts on hand-checked cases, its report text, and agreement with seqeval on real data."""
import random

import pytest

from openbert.tasks.ner import metrics as M
from openbert.tasks.ner.data import read_conll, to_iob2


def rows(gold: str, pred: str, breaks=()):
    """Rows of one sentence from space-separated tags; a sentence break after the positions in ``breaks``."""
    out = []
    for i, (g, p) in enumerate(zip(gold.split(), pred.split())):
        out.append((f"w{i}", g, p))
        if i in breaks:
            out.append(None)
    return out + [None]


def counts(gold, pred, breaks=()):
    c = M.count_chunks(rows(gold, pred, breaks))
    return c.found_correct, c.found_guessed, c.correct_chunk


def test_iob1_i_after_o_starts_an_entity():
    # gold IOB1 (I- opens the entity), prediction IOB2: the same two entities
    assert counts("I-PER I-PER O I-LOC", "B-PER I-PER O B-LOC") == (2, 2, 2)


def test_iob1_b_separates_adjacent_entities_of_one_type():
    assert counts("I-PER I-PER B-PER I-PER", "I-PER I-PER B-PER I-PER") == (2, 2, 2)
    # merging them is one wrong entity, against two gold ones
    assert counts("I-PER I-PER B-PER I-PER", "I-PER I-PER I-PER I-PER") == (2, 1, 0)
    # b after the same type's I in IOB2 also starts a new one
    assert counts("B-ORG B-ORG", "B-ORG I-ORG") == (2, 1, 0)


def test_type_change_splits_and_boundaries():
    assert counts("I-PER I-PER", "I-PER I-LOC") == (1, 2, 0)
    assert counts("I-LOC I-PER", "I-LOC I-PER") == (2, 2, 2)  # a type change starts a new entity
    # too long or too short by one word is wrong
    assert counts("I-PER O", "I-PER I-PER") == (1, 1, 0)
    assert counts("I-PER I-PER O", "I-PER O O") == (1, 1, 0)
    # a sentence break ends an entity: I-PER | I-PER is two
    assert counts("I-PER I-PER", "I-PER I-PER", breaks=(0,)) == (2, 2, 2)
    # an entity that ends the file is counted
    c = M.count_chunks([("a", "O", "O"), ("b", "I-MISC", "I-MISC")])
    assert (c.found_correct, c.found_guessed, c.correct_chunk) == (1, 1, 1)


def test_entity_cut_by_a_window_counts_once():
    # a window boundary is not a sentence break: the words of a long sentence are scored as one sequence
    gold = "O I-ORG I-ORG I-ORG O"
    assert counts(gold, gold) == (1, 1, 1)
    assert counts(gold, "O I-ORG I-ORG B-ORG O") == (1, 2, 0)


def test_hyphenated_types_split_at_the_first_hyphen():
    assert counts("B-NP-SBJ I-NP-SBJ", "B-NP-SBJ I-NP-SBJ") == (1, 1, 1)
    assert M.count_chunks(rows("B-NP-SBJ", "B-NP-SBJ")).gold_by_type == {"NP-SBJ": 1}


def test_token_accuracy_counts_docstart_lines_not_breaks():
    c = M.count_chunks([("-DOCSTART-", "O", "O"), None, ("a", "I-PER", "O"), ("b", "O", "O"), None])
    assert (c.token_counter, c.correct_tags) == (3, 2)
    assert M.scores(c)["accuracy"] == pytest.approx(2 / 3)
    # the -X- first field is a break, whatever the tags say
    c = M.count_chunks([("a", "I-PER", "I-PER"), ("-X-", "I-PER", "I-PER"), ("b", "I-PER", "I-PER")])
    assert (c.token_counter, c.found_correct, c.correct_chunk) == (2, 2, 2)


def test_scores_and_report_text():
    c = M.count_chunks(rows("I-PER I-PER O I-LOC O I-ORG", "I-PER I-PER O I-ORG O I-ORG"))
    s = M.scores(c)
    assert (s["precision"], s["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert s["per_type"]["ORG"]["precision"] == 0.5 and s["per_type"]["ORG"]["recall"] == 1.0
    assert M.report(c) == (
        "processed 6 tokens with 3 phrases; found: 3 phrases; correct: 2.\n"
        "accuracy:  83.33%; precision:  66.67%; recall:  66.67%; FB1:  66.67\n"
        "              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  0\n"
        "              ORG: precision:  50.00%; recall: 100.00%; FB1:  66.67  2\n"
        "              PER: precision: 100.00%; recall: 100.00%; FB1: 100.00  1\n")


def test_nothing_found_scores_zero():
    s = M.scores(M.count_chunks(rows("O O", "O O")))
    assert (s["precision"], s["recall"], s["f1"], s["accuracy"]) == (0.0, 0.0, 0.0, 1.0)


def test_iobes_is_evaluated_through_iob2():
    gold, pred = "S-PER S-PER B-LOC E-LOC", "S-PER S-PER B-LOC I-LOC"
    # conlleval itself knows no S-: it would merge the two single-word PER entities
    assert counts(gold, gold)[0] == 2
    g, p = " ".join(to_iob2(gold.split(), "iobes")), " ".join(to_iob2(pred.split(), "iobes"))
    assert g == "B-PER B-PER B-LOC I-LOC" and counts(g, g) == (3, 3, 3)
    assert counts(g, p) == (3, 3, 3)  # E-LOC vs I-LOC before the end: the same entity


def _corrupt(tags, rng):
    """Prediction-like errors: wrong type, dropped entity, spurious entity, I/B swaps."""
    out = []
    for t in tags:
        r = rng.random()
        if t != "O" and r < 0.06:
            t = t[:2] + rng.choice(["PER", "LOC", "ORG", "MISC"])
        elif t != "O" and r < 0.10:
            t = "O"
        elif t == "O" and r < 0.02:
            t = rng.choice(["I-PER", "I-LOC", "B-ORG"])
        elif t.startswith("I-") and r < 0.13:
            t = "B-" + t[2:]
        out.append(t)
    return out


def test_agrees_with_seqeval_on_conll2003_dev(shared_data):
    seqeval = pytest.importorskip("seqeval.metrics")
    data = read_conll(shared_data / "conll2003" / "eng.testa")
    rng = random.Random(0)
    gold = [s.tags for s in data.sentences]
    pred = [_corrupt(t, rng) for t in gold]
    rs = []
    for s, p in zip(data.sentences, pred):
        rs.extend(zip(s.words, s.tags, p))
        rs.append(None)
    ours = M.scores(M.count_chunks(rs))
    assert ours["f1"] == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-12)
    assert ours["precision"] == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-12)
    assert ours["recall"] == pytest.approx(seqeval.recall_score(gold, pred), abs=1e-12)
    assert ours["accuracy"] == pytest.approx(seqeval.accuracy_score(gold, pred), abs=1e-12)
    report = seqeval.classification_report(gold, pred, output_dict=True)
    for kind, t in ours["per_type"].items():
        assert t["f1"] == pytest.approx(report[kind]["f1-score"], abs=1e-12), kind
        assert t["support"] == report[kind]["support"]
    assert 0.5 < ours["f1"] < 0.95  # the corruption is real, not a no-op

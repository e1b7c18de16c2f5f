"""CoNLL reading, tag schemes, first-sub-token alignment, windows, document context, batches."""
import sys
from pathlib import Path

import pytest
import torch

from openbert.errors import OpenBertError
from openbert.tasks.ner import data as D

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conll_fixtures import CONLL, tokenizer  # noqa: E402


def write(tmp_path, text, name="train.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


# -- reading ---------------------------------------------------------------------------------
def test_read_conll_sentences_documents_lines(tmp_path):
    data = D.read_conll(write(tmp_path, CONLL))
    assert [s.words for s in data.sentences] == [["John", "Smith", "lives", "in", "Paris", "."],
                                                ["the", "city", "is", "big"],
                                                ["Mary", "works", "for", "Acme", "Corp", "."]]
    assert data.sentences[0].tags == ["I-PER", "I-PER", "O", "O", "I-LOC", "O"]
    assert [s.document for s in data.sentences] == [1, 1, 2]
    assert [s.line for s in data.sentences] == [3, 10, 17]
    assert [s.docstarts for s in data.sentences] == [1, 0, 1] and data.trailing_docstarts == 0
    assert data.labelled


def test_tag_column_tabs_and_trailing_docstart(tmp_path):
    text = CONLL.replace(" ", "\t") + "\n-DOCSTART- -X- -X- O\n"
    data = D.read_conll(write(tmp_path, text), tag_column=2)
    assert data.sentences[0].tags == ["I-NP", "I-NP", "I-VP", "I-PP", "I-NP", "O"]
    assert D.read_conll(write(tmp_path, text), tag_column=-3).sentences[0].tags[0] == "NNP"
    assert data.trailing_docstarts == 1


def test_unlabelled_file(tmp_path):
    data = D.read_conll(write(tmp_path, "John\nSmith\n\nParis\n"), labelled=None)
    assert not data.labelled and data.sentences[1].tags is None and data.sentences[1].words == ["Paris"]
    assert [s.document for s in data.sentences] == [0, 0]  # no -DOCSTART-: one document


@pytest.mark.parametrize("text,flags,message", [
    ("John NNP I-PER\nSmith\n", {}, r"train\.txt, line 2: one column \('Smith'\)"),
    ("John NNP I-PER\n\nParis NNP\n", {"tag_column": 3}, r"train\.txt, line 1: no tag column 3 \(the line has 3"),
    ("John I-PER\n", {"tag_column": -2}, r"line 1: no tag column -2"),
    ("", {}, r"train\.txt: no sentences \(an empty file\?\)"),
    ("\n-DOCSTART- -X- O\n\n", {}, r"train\.txt: no sentences"),
])
def test_bad_files_name_file_and_line(tmp_path, text, flags, message):
    with pytest.raises(OpenBertError, match=message):
        D.read_conll(write(tmp_path, text), **flags)


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(OpenBertError, match="file not found"):
        D.read_conll(tmp_path / "nope.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00a I-PER\n")
    with pytest.raises(OpenBertError, match="not UTF-8"):
        D.read_conll(tmp_path / "bin.txt")


# -- tag schemes -----------------------------------------------------------------------------
def sentences(*tag_lines):
    return [D.Sentence(["w"] * len(t.split()), t.split(), 0, 1) for t in tag_lines]


def test_detect_scheme():
    assert D.detect_scheme(sentences("I-PER I-PER O I-LOC")) == "iob1"
    assert D.detect_scheme(sentences("B-PER I-PER O", "I-LOC")) == "iob1"  # a sentence may start with I-
    assert D.detect_scheme(sentences("B-PER I-PER O B-LOC")) == "iob2"
    assert D.detect_scheme(sentences("B-PER I-LOC")) == "iob1"  # I- of another type starts an entity
    assert D.detect_scheme(sentences("S-PER O B-LOC E-LOC")) == "iobes"
    assert D.detect_scheme(sentences("NNP VBZ")) == "none"


def check(tags, scheme):
    D.check_tags(D.ConllFile("f.txt", sentences(tags), True), scheme)


def test_check_tags_names_line_and_scheme():
    check("I-PER B-PER O", "iob1")
    check("B-PER I-PER O B-LOC", "iob2")
    check("S-PER B-LOC I-LOC E-LOC O", "iobes")
    check("NNP VBZ", "none")
    with pytest.raises(OpenBertError, match=r"f\.txt, line 2: tag 'E-PER' is not IOB2"):
        check("B-PER E-PER", "iob2")
    with pytest.raises(OpenBertError, match=r"line 3: tag 'I-PER' cannot follow 'O' in IOB2; is the file IOB1"):
        check("B-PER O I-PER", "iob2")
    with pytest.raises(OpenBertError, match=r"line 2: tag 'O' cannot follow 'B-PER' in IOBES"):
        check("B-PER O", "iobes")
    with pytest.raises(OpenBertError, match=r"line 1: tag 'B-PER' cannot end a sentence in IOBES"):
        check("B-PER", "iobes")
    with pytest.raises(OpenBertError, match="line 1: tag 'PER' is not IOB1"):
        check("PER", "iob1")


def test_unknown_scheme():
    assert D.check_scheme("IOB2") == "iob2"
    with pytest.raises(OpenBertError, match=r"--tag_scheme=bilou is unknown; choose one of auto, iob1, iob2, iobes"):
        D.check_scheme("bilou")


def test_label_list_o_first():
    data = D.ConllFile("f", sentences("I-PER O B-LOC", "I-LOC"), True)
    assert D.label_list(data) == ["O", "B-LOC", "I-LOC", "I-PER"]


# -- features --------------------------------------------------------------------------------
def test_label_on_first_sub_token(tmp_path):
    tok = tokenizer(tmp_path)
    data = D.read_conll(write(tmp_path, "running I-PER\nruns O\nparis I-LOC\n"))
    label_map = {"O": 0, "I-PER": 1, "I-LOC": 2}
    (f,) = D.convert_to_features(data, tok, 16, label_map)
    assert tok.convert_ids_to_tokens(f.input_ids) == ["[CLS]", "run", "##ning", "run", "##s", "paris", "[SEP]"]
    assert f.label_ids == [-100, 1, -100, 0, -100, 2, -100]
    assert f.positions == [1, 3, 5] and f.words == [0, 1, 2] and f.sentence == 0


def test_word_without_pieces_gets_unk(tmp_path):
    tok = tokenizer(tmp_path)
    data = D.read_conll(write(tmp_path, "paris I-LOC\n\u200b O\n"))
    (f,) = D.convert_to_features(data, tok, 16, {"O": 0, "I-LOC": 1})
    assert tok.convert_ids_to_tokens(f.input_ids) == ["[CLS]", "paris", "[UNK]", "[SEP]"]


def test_windows_and_max_context():
    assert D.windows(5, 8, 4) == [(0, 5)]
    assert D.windows(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    spans = D.windows(10, 4, 2)
    assert spans == [(0, 4), (2, 6), (4, 8), (6, 10)]
    # position 2: one token of context each side in (0, 4), none on the left in (2, 6)
    assert [D.best_window(p, spans) for p in range(10)] == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]


def long_sentence(tmp_path, n=23):
    words = ["john", "running", "paris", "the", "city"]
    lines = [f"{words[i % 5]} {'I-PER' if i % 3 == 0 else 'O'}" for i in range(n)]
    return D.read_conll(write(tmp_path, "\n".join(lines) + "\n"))


@pytest.mark.parametrize("max_seq_length,stride", [(8, 1), (8, 3), (8, 6), (12, None), (64, None)])
def test_every_word_predicted_exactly_once(tmp_path, max_seq_length, stride):
    tok = tokenizer(tmp_path)
    data = long_sentence(tmp_path)
    label_map = {"O": 0, "I-PER": 1}
    features = D.convert_to_features(data, tok, max_seq_length, label_map, doc_stride=stride)
    predicted = sorted(w for f in features for w in f.words)
    assert predicted == list(range(23))
    pieces = D.tokenize_words(data.sentences, tok)[0]
    for f in features:
        assert len(f.input_ids) <= max_seq_length
        assert f.input_ids[0] == tok.vocab["[CLS]"] and f.input_ids[-1] == tok.vocab["[SEP]"]
        for p, w in zip(f.positions, f.words):
            assert f.input_ids[p] == pieces[w][0]  # the word's first sub-token
            assert f.label_ids[p] == label_map[data.sentences[0].tags[w]]
        assert sum(label != -100 for label in f.label_ids) == len(f.positions)
    if max_seq_length == 64:
        assert len(features) == 1


def test_bad_stride(tmp_path):
    with pytest.raises(OpenBertError, match=r"--doc_stride=7 must be between 1 and --max_seq_length - 2 = 6"):
        D.convert_to_features(long_sentence(tmp_path), tokenizer(tmp_path), 8, {"O": 0, "I-PER": 1}, doc_stride=7)


def test_document_context_fills_window_from_the_same_document(tmp_path):
    tok = tokenizer(tmp_path)
    data = D.read_conll(write(tmp_path, CONLL))
    label_map = {t: i for i, t in enumerate(["O", "I-LOC", "I-ORG", "I-PER"])}
    plain = D.convert_to_features(data, tok, 32, label_map)
    ctx = D.convert_to_features(data, tok, 32, label_map, document_context=True)
    assert len(ctx) == len(plain) == 3
    tokens = [tok.convert_ids_to_tokens(f.input_ids) for f in ctx]
    # sentence 0: its document's next sentence on the right (nothing on the left)
    assert tokens[0] == ["[CLS]", "john", "smith", "lives", "in", "paris", ".", "the", "city", "is", "big", "[SEP]"]
    # sentence 1: the previous one on the left; sentence 2 (document 2) is never context for document 1
    assert tokens[1] == ["[CLS]", "john", "smith", "lives", "in", "paris", ".", "the", "city", "is", "big", "[SEP]"]
    assert tokens[2] == ["[CLS]", "mary", "works", "for", "acme", "corp", ".", "[SEP]"]
    # only the centre sentence is predicted (and labelled)
    assert ctx[0].positions == [1, 2, 3, 4, 5, 6] and ctx[1].positions == [7, 8, 9, 10]
    assert [ctx[1].label_ids[p] for p in ctx[1].positions] == [0, 0, 0, 0]
    assert sum(label != -100 for label in ctx[0].label_ids) == 6


def test_document_context_splits_the_budget(tmp_path):
    tok = tokenizer(tmp_path)
    body = "\n\n".join(f"{w} O" for w in ["john", "smith", "lives", "in", "paris", "and", "works"])
    data = D.read_conll(write(tmp_path, body + "\n"))
    (f,) = [f for f in D.convert_to_features(data, tok, 7, {"O": 0}, document_context=True) if f.sentence == 3]
    # a window of 5 tokens: the centre word and 2 on each side
    assert tok.convert_ids_to_tokens(f.input_ids) == ["[CLS]", "smith", "lives", "in", "paris", "and", "[SEP]"]
    assert f.positions == [3]
    (first,) = [f for f in D.convert_to_features(data, tok, 7, {"O": 0}, document_context=True) if f.sentence == 0]
    assert tok.convert_ids_to_tokens(first.input_ids)[1:-1] == ["john", "smith", "lives", "in", "paris"]


def test_document_context_long_sentence_falls_back_to_windows(tmp_path):
    tok = tokenizer(tmp_path)
    data = long_sentence(tmp_path)
    a = D.convert_to_features(data, tok, 10, {"O": 0, "I-PER": 1}, doc_stride=4)
    b = D.convert_to_features(data, tok, 10, {"O": 0, "I-PER": 1}, doc_stride=4, document_context=True)
    assert [(f.input_ids, f.positions) for f in a] == [(f.input_ids, f.positions) for f in b]


def test_unknown_tags_are_ignored_with_a_warning(tmp_path, caplog):
    tok = tokenizer(tmp_path)
    data = D.read_conll(write(tmp_path, "john B-PER\nparis I-LOC\n"))
    (f,) = D.convert_to_features(data, tok, 16, {"O": 0, "I-LOC": 1})
    assert f.label_ids == [-100, -100, 1, -100]
    assert "tag 'B-PER' (1 words) is not among the model's labels" in caplog.text


def test_unlabelled_features(tmp_path):
    tok = tokenizer(tmp_path)
    data = D.read_conll(write(tmp_path, "john\nparis\n"), labelled=None)
    (f,) = D.convert_to_features(data, tok, 16, {"O": 0})
    assert f.label_ids == [-100] * 4 and f.positions == [1, 2]


def test_collate_pads_labels_with_ignore():
    a = D.TaggingFeatures([2, 5, 6, 3], [-100, 1, 0, -100], 0, [1, 2], [0, 1])
    b = D.TaggingFeatures([2, 7, 3], [-100, 2, -100], 1, [1], [0])
    batch = D.collate([a, b])
    assert batch["input_ids"].tolist() == [[2, 5, 6, 3], [2, 7, 3, 0]]
    assert batch["input_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["segment_ids"].tolist() == [[0] * 4] * 2
    assert batch["labels"].tolist() == [[-100, 1, 0, -100], [-100, 2, -100, -100]]
    assert batch["labels"].dtype == torch.long and "labels" not in D.collate_unlabelled([a])

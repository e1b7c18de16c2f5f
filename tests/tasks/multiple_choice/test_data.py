"""SWAG CSV and custom JSON lines, the [CLS] context [SEP] start ending [SEP] layout, batches."""
import json

import pytest

from openbert.errors import OpenBertError
from openbert.tasks.multiple_choice import data as D
from openbert.tokenization import FullTokenizer

HEADER = ",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"
ROW = '0,v,1,"The cat sat. The dog","The cat sat.",The dog,gold,ran away .,"sat, too .",is red .,was big .,1\n'


@pytest.fixture
def tok(tmp_path):
    words = ["the", "cat", "sat", "dog", "ran", "away", "too", "is", "red", "was", "big", ".", ","]
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + words) + "\n")
    return FullTokenizer(tmp_path / "vocab.txt")


def test_read_swag(tmp_path):
    (tmp_path / "train.csv").write_text(HEADER + ROW)
    (ex,) = D.read_examples("swag", tmp_path / "train.csv", "train")
    assert (ex.context, ex.start, ex.endings, ex.label) == ("The cat sat.", "The dog",
                                                             ["ran away .", "sat, too .", "is red .", "was big ."], 1)
    test = HEADER.replace(",label\n", "\n") + ROW.rsplit(",", 1)[0] + "\n"
    (tmp_path / "test.csv").write_text(test)
    assert D.read_examples("swag", tmp_path / "test.csv", "test")[0].label is None


@pytest.mark.parametrize("text,split,message", [
    (HEADER.replace("ending3", "end3") + ROW, "train", r"train\.csv, line 2: no column 'ending3'"),
    (HEADER + ROW.replace(",1\n", ",4\n"), "train", r"line 2: label 4 is out of range for 4 choices"),
    (HEADER + ROW.replace(",1\n", ",one\n"), "train", r"line 2: label 'one' is not a choice number"),
    (HEADER + ROW.replace(",1\n", ",\n"), "train", r"line 2: no label"),
    (HEADER, "train", r"train\.csv: no examples \(an empty file\?\)"),
    (HEADER + ROW + "1,v,2\n", "train", r"train\.csv, line 3: 3 columns, the header has 12"),
])
def test_bad_swag_names_file_and_line(tmp_path, text, split, message):
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(OpenBertError, match=message):
        D.read_examples("swag", tmp_path / "train.csv", split)


def test_read_custom_any_number_of_choices(tmp_path):
    rows = [{"context": "the cat", "choices": ["sat", "ran", "is red"], "label": 2},
            {"context": "the dog", "choices": ["a", "b", "c"], "label": "0"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ex = D.read_examples("custom", tmp_path / "d.jsonl", "dev")
    assert [e.endings for e in ex][0] == ["sat", "ran", "is red"] and [e.label for e in ex] == [2, 0]
    assert ex[0].start == ""


@pytest.mark.parametrize("rows,split,message", [
    ([{"context": "a", "choices": ["x", "y"], "label": 0}, {"context": "b", "choices": ["x", "y", "z"], "label": 0}],
     "train", r"line 2: 3 choices, the first line has 2"),
    ([{"context": "a", "choices": ["x"], "label": 0}], "train", r"line 1: \"choices\" must be a list of at least 2"),
    ([{"text": "a", "choices": ["x", "y"], "label": 0}], "train", r"line 1: \"context\" must be a string"),
    ([{"context": "a", "choices": ["x", "y"]}], "train", r"line 1: no \"label\""),
    ([{"context": "a", "choices": ["x", "y"], "label": True}], "train", r"label True is not a choice number"),
])
def test_bad_custom(tmp_path, rows, split, message):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(OpenBertError, match=message):
        D.read_examples("custom", tmp_path / "d.jsonl", split)


def test_unknown_task():
    with pytest.raises(OpenBertError, match="--task_name=race is unknown; choose one of swag, custom"):
        D.check_task("race")


def test_features_pair_layout_and_trimming(tmp_path, tok):
    (tmp_path / "train.csv").write_text(HEADER + ROW)
    (ex,) = D.read_examples("swag", tmp_path / "train.csv", "train")
    (f,) = D.convert_examples_to_features([ex], 32, tok)
    assert len(f.input_ids) == 4 and f.label == 1
    assert tok.convert_ids_to_tokens(f.input_ids[0]) == ["[CLS]", "the", "cat", "sat", ".", "[SEP]", "the", "dog",
                                                         "ran", "away", ".", "[SEP]"]
    assert f.segment_ids[0] == [0] * 6 + [1] * 6
    # trimmed to max_seq_length, the longer side first: context 4 tokens, second 5 -> 3 + 3
    (f,) = D.convert_examples_to_features([ex], 9, tok)
    assert tok.convert_ids_to_tokens(f.input_ids[0]) == ["[CLS]", "the", "cat", "sat", "[SEP]", "the", "dog",
                                                         "ran", "[SEP]"]
    assert all(len(ids) <= 9 for ids in f.input_ids) and D.length(f) == 9


def test_collate_shapes():
    a = D.MultipleChoiceFeatures([[2, 5, 3], [2, 5, 6, 3]], [[0, 0, 0], [0, 0, 1, 1]], 1)
    b = D.MultipleChoiceFeatures([[2, 3], [2, 7, 3]], [[0, 0], [0, 1, 1]], 0)
    batch = D.collate([a, b])
    assert batch["input_ids"].shape == (2, 2, 4) and batch["labels"].tolist() == [1, 0]
    assert batch["input_ids"][1].tolist() == [[2, 3, 0, 0], [2, 7, 3, 0]]
    assert batch["input_mask"][0].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch["segment_ids"][0].tolist() == [[0, 0, 0, 0], [0, 0, 1, 1]]
    assert "labels" not in D.collate_unlabelled([a])

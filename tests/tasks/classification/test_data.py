"""Processors on small files in the original layouts, features and per-batch padding."""
import json

import pytest
import torch

from openbert.errors import OpenBertError
from openbert.tasks.classification import data as C


def write_tsv(path, rows, bom=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join("\t".join(r) + "\n" for r in rows)
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


MRPC_HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]


def test_mrpc_glue_layout_bom_and_literal_quotes(tmp_path):
    write_tsv(tmp_path / "train.tsv", [MRPC_HEADER, ["1", "11", "12", 'He said "hi', 'She "said" bye'],
                                       ["0", "13", "14", "a b", "c d"]], bom=True)
    write_tsv(tmp_path / "test.tsv", [["index"] + MRPC_HEADER[1:], ["0", "1", "2", "x", "y"]])
    p = C.get_processor("MRPC")
    train = p.get_train_examples(tmp_path)
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
        ("train-1", 'He said "hi', 'She "said" bye', "1"), ("train-2", "a b", "c d", "0")]
    test = p.get_test_examples(tmp_path)
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in test] == [("test-1", "x", "y", "0")]
    assert p.get_labels() == ["0", "1"] and p.metrics == ("accuracy", "f1")


def test_mrpc_microsoft_files(tmp_path):
    write_tsv(tmp_path / "msr_paraphrase_train.txt", [MRPC_HEADER, ["1", "1", "2", "a", "b"]], bom=True)
    write_tsv(tmp_path / "msr_paraphrase_test.txt", [MRPC_HEADER, ["0", "3", "4", "c", "d"]], bom=True)
    p = C.get_processor("mrpc")
    assert p.get_train_examples(tmp_path)[0].label == "1"
    assert p.get_dev_examples(tmp_path)[0].label == "0"  # Microsoft's test file is labelled
    assert p.get_test_examples(tmp_path)[0].text_a == "c"


def test_mrpc_real_files(shared_data):
    p = C.get_processor("mrpc")
    d = shared_data / "glue" / "MRPC"
    train, dev = p.get_train_examples(d), p.get_dev_examples(d)
    assert (len(train), len(dev)) == (4076, 1725)
    assert train[0].text_a.startswith('Amrozi accused his brother, whom he called "the witness"')
    assert sum(e.label == "1" for e in dev) == 1147  # majority baseline 66.5%


def test_cola_headers(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["gj04", "1", "", "Our friends won't buy this analysis."],
                                       ["gj04", "0", "*", "One more pseudo generalization."]])
    write_tsv(tmp_path / "test.tsv", [["index", "sentence"], ["0", "Bill whistled past the house."]])
    p = C.get_processor("cola")
    train = p.get_train_examples(tmp_path)
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
        ("train-0", "Our friends won't buy this analysis.", None, "1"),
        ("train-1", "One more pseudo generalization.", None, "0")]
    test = p.get_test_examples(tmp_path)
    assert [(e.guid, e.text_a, e.label) for e in test] == [("test-1", "Bill whistled past the house.", "0")]
    assert p.metrics == ("accuracy", "mcc")


def mnli_row(idx, a, b, label=None):
    row = [idx, "1", "2", "fiction", "(parse a)", "(parse b)", "(a)", "(b)", a, b]
    return row + ([label, label] if label else [])


def test_mnli_matched_and_mismatched(tmp_path):
    header = mnli_row("index", "sentence1", "sentence2", "gold_label")
    write_tsv(tmp_path / "train.tsv", [header, mnli_row("7", "A man.", "A person.", "entailment")])
    write_tsv(tmp_path / "dev_matched.tsv", [header, mnli_row("8", "x", "y", "neutral")])
    write_tsv(tmp_path / "dev_mismatched.tsv", [header, mnli_row("9", "p", "q", "contradiction")])
    write_tsv(tmp_path / "test_matched.tsv", [header[:10], mnli_row("10", "t", "u")])
    p = C.get_processor("mnli")
    assert p.get_labels() == ["contradiction", "entailment", "neutral"]
    [e] = p.get_train_examples(tmp_path)
    assert (e.guid, e.text_a, e.text_b, e.label) == ("train-7", "A man.", "A person.", "entailment")
    assert p.get_dev_examples(tmp_path)[0].guid == "dev_matched-8"
    [t] = p.get_test_examples(tmp_path)
    assert (t.guid, t.text_a, t.label) == ("test-10", "t", "contradiction")
    mm = C.get_processor("MNLI-MM")
    [d] = mm.get_dev_examples(tmp_path)
    assert (d.guid, d.text_a, d.label) == ("dev_mismatched-9", "p", "contradiction")


def test_xnli_language_and_contradictory(tmp_path):
    write_tsv(tmp_path / "multinli" / "multinli.train.zh.tsv",
              [["premise", "hypo", "label"], ["我们", "他们", "contradictory"], ["a", "b", "neutral"]])
    dev = [["language", "gold_label", "s1_binary", "s2_binary", "s1_parse", "s2_parse", "sentence1", "sentence2"]]
    dev += [["en", "neutral", "", "", "", "", "en a", "en b"], ["zh", "entailment", "", "", "", "", "zh a", "zh b"]]
    write_tsv(tmp_path / "xnli.dev.tsv", dev)
    p = C.get_processor("xnli")
    train = p.get_train_examples(tmp_path)
    assert [(e.guid, e.text_a, e.label) for e in train] == [("train-1", "我们", "contradiction"),
                                                            ("train-2", "a", "neutral")]
    assert [(e.guid, e.text_a, e.label) for e in p.get_dev_examples(tmp_path)] == [("dev-2", "zh a", "entailment")]
    en = C.get_processor("xnli", language="en")
    assert [e.text_b for e in en.get_dev_examples(tmp_path)] == ["en b"]


@pytest.mark.parametrize("task,train_row,test_row,want_train,want_test", [
    ("sst-2", ["it 's a charming journey", "1"], ["0", "a bad film"], ("it 's a charming journey", None, "1"),
     ("a bad film", None, "0")),
    ("qnli", ["0", "What?", "This.", "not_entailment"], ["0", "Who?", "Him."], ("What?", "This.", "not_entailment"),
     ("Who?", "Him.", "entailment")),
    ("qqp", ["1", "2", "3", "How?", "Why?", "1"], ["0", "Q1?", "Q2?"], ("How?", "Why?", "1"), ("Q1?", "Q2?", "0")),
    ("rte", ["0", "Dana smiled.", "Dana is happy.", "entailment"], ["0", "s1", "s2"],
     ("Dana smiled.", "Dana is happy.", "entailment"), ("s1", "s2", "entailment")),
    ("wnli", ["0", "s1", "s2", "1"], ["0", "t1", "t2"], ("s1", "s2", "1"), ("t1", "t2", "0")),
    ("sts-b", ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none", "A plane.", "An air plane.",
               "5.000"], ["0", "g", "f", "y", "1", "n", "n", "x", "y"], ("A plane.", "An air plane.", 5.0),
     ("x", "y", 0.0)),
])
def test_other_glue_tasks(tmp_path, task, train_row, test_row, want_train, want_test):
    write_tsv(tmp_path / "train.tsv", [["h"] * len(train_row), train_row])
    write_tsv(tmp_path / "dev.tsv", [["h"] * len(train_row), train_row])
    write_tsv(tmp_path / "test.tsv", [["h"] * len(test_row), test_row])
    p = C.get_processor(task)
    for split, want in (("train", want_train), ("dev", want_train), ("test", want_test)):
        [e] = p.get_examples(tmp_path, split)
        assert (e.text_a, e.text_b, e.label) == want
        assert e.guid == f"{split}-1"


def test_stsb_real_is_regression(shared_data):
    p = C.get_processor("STS-B")
    assert p.is_regression and p.num_labels == 1 and p.metrics == ("pearson", "spearman")
    d = shared_data / "glue" / "STS-B"
    assert [len(p.get_examples(d, s)) for s in C.SPLITS] == [5749, 1500, 1379]


def test_custom_tsv_csv_jsonl(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["id", "sentence", "label"], ["1", 'say "hi', "pos"], ["2", "meh", "neg"]])
    (tmp_path / "dev.csv").write_text('sentence,label\n"a, quoted ""one""",neg\n', encoding="utf-8")
    (tmp_path / "test.jsonl").write_text(json.dumps({"sentence": "j"}) + "\n\n", encoding="utf-8")
    p = C.get_processor("custom", files={"train": ["train.tsv"], "dev": ["dev.csv"], "test": ["test.jsonl"]},
                        text_a="sentence")
    train = p.get_train_examples(tmp_path)
    assert p.get_labels() == ["neg", "pos"]  # sorted distinct train labels
    assert [(e.text_a, e.text_b, e.label) for e in train] == [('say "hi', None, "pos"), ("meh", None, "neg")]
    assert [(e.text_a, e.label) for e in p.get_dev_examples(tmp_path)] == [('a, quoted "one"', "neg")]
    assert [(e.text_a, e.label) for e in p.get_test_examples(tmp_path)] == [("j", "neg")]


def test_custom_jsonl_pairs_int_labels(tmp_path):
    rows = [{"q": "a", "p": "b", "y": 1}, {"q": "c", "p": "d", "y": 0}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    p = C.get_processor("custom", files={"train": ["train.jsonl"]}, text_a="q", text_b="p", label="y")
    assert [(e.text_a, e.text_b, e.label) for e in p.get_train_examples(tmp_path)] == [("a", "b", "1"), ("c", "d", "0")]


def test_snli_drops_no_majority(tmp_path):
    rows = [{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"},
            {"sentence1": "c", "sentence2": "d", "gold_label": "-"}]
    (tmp_path / "snli_1.0_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    p = C.get_processor("snli")
    assert [(e.text_a, e.label) for e in p.get_test_examples(tmp_path)] == [("a", "neutral")]


# ---- bad input ---------------------------------------------------------------------------------
def test_missing_file_names_candidates(tmp_path):
    with pytest.raises(OpenBertError, match=r"mrpc dev set not found: .*dev\.tsv.*msr_paraphrase_test\.txt"):
        C.get_processor("mrpc").get_dev_examples(tmp_path)


def test_short_row_names_file_and_line(tmp_path):
    path = write_tsv(tmp_path / "train.tsv", [MRPC_HEADER, ["1", "1", "2", "a", "b"], ["0", "3", "only a"]])
    with pytest.raises(OpenBertError, match=r"train\.tsv, line 3: expected at least 5 tab-separated columns"):
        C.get_processor("mrpc").get_train_examples(tmp_path)
    assert path.exists()


def test_unknown_label(tmp_path):
    write_tsv(tmp_path / "train.tsv", [MRPC_HEADER, ["yes", "1", "2", "a", "b"]])
    with pytest.raises(OpenBertError, match=r"train\.tsv, line 2: unknown label 'yes'; mrpc labels are 0, 1"):
        C.get_processor("mrpc").get_train_examples(tmp_path)


def test_unknown_task_lists_known():
    with pytest.raises(OpenBertError, match=r"unknown task 'glue'; known tasks: cola, mnli, .*mrpc.*custom"):
        C.get_processor("glue")


def test_regression_label_not_a_number(tmp_path):
    row = ["0", "g", "f", "y", "1", "n", "n", "x", "y", "high"]
    write_tsv(tmp_path / "train.tsv", [["h"] * 10, row])
    with pytest.raises(OpenBertError, match="line 2: label 'high' is not a number"):
        C.get_processor("sts-b").get_train_examples(tmp_path)


def test_custom_missing_column(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["text", "label"], ["a", "b"]])
    p = C.get_processor("custom", files={"train": ["train.tsv"]})
    with pytest.raises(OpenBertError, match=r"line 2: no column 'text_a' \(found: text, label\)"):
        p.get_train_examples(tmp_path)


# ---- features and batches ----------------------------------------------------------------------
class _PlainTokenizer:
    """Only the original FullTokenizer API (no fast batch path)."""

    def __init__(self, full):
        self.tokenize, self.convert_tokens_to_ids = full.tokenize, full.convert_tokens_to_ids


@pytest.fixture
def tokenizer(shared_data):
    tokenization = pytest.importorskip("openbert.tokenization")
    return tokenization.FullTokenizer(str(shared_data / "vocab" / "bert-base-uncased-vocab.txt"), True)


def test_features_layout(tokenizer):
    ex = [C.InputExample("a", "The cat sat.", "A dog ran far away today", "1"),
          C.InputExample("b", "Hello world", None, "0")]
    f = C.convert_examples_to_features(ex, ["0", "1"], 10, tokenizer)
    # 7 tokens for 10 - 3: "the cat sat ." (4) vs "a dog ran far away today" (6): B loses 2,
    # then on the 4-4 tie B loses one more
    toks = tokenizer.convert_ids_to_tokens(f[0].input_ids)
    assert toks == ["[CLS]", "the", "cat", "sat", ".", "[SEP]", "a", "dog", "ran", "[SEP]"]
    assert f[0].segment_ids == [0] * 6 + [1] * 4 and f[0].label_id == 1
    assert tokenizer.convert_ids_to_tokens(f[1].input_ids) == ["[CLS]", "hello", "world", "[SEP]"]
    assert f[1].segment_ids == [0] * 4 and f[1].label_id == 0
    plain = C.convert_examples_to_features(ex, ["0", "1"], 10, _PlainTokenizer(tokenizer))
    assert [x.input_ids for x in plain] == [x.input_ids for x in f]
    short = C.convert_examples_to_features([C.InputExample("c", "one two three four", None, "0")], ["0", "1"],
                                           4, tokenizer)
    assert tokenizer.convert_ids_to_tokens(short[0].input_ids) == ["[CLS]", "one", "two", "[SEP]"]


def test_collate_pads_per_batch():
    feats = [C.InputFeatures([101, 5, 102], [0, 0, 0], 1), C.InputFeatures([101, 102], [0, 0], 0)]
    b = C.collate(feats)
    assert b["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert b["input_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b["segment_ids"].shape == (2, 3) and b["labels"].tolist() == [1, 0]
    assert b["labels"].dtype == torch.long
    reg = C.collate([C.InputFeatures([1, 2], [0, 1], 2.5)])
    assert reg["labels"].dtype == torch.float32 and reg["segment_ids"].tolist() == [[0, 1]]
    assert "labels" not in C.collate_unlabelled(feats)

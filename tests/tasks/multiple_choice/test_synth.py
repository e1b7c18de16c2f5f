"""The SWAG-format set built from WikiText-2: real sentences, true continuations, no shared documents."""
import pytest

from openbert.tasks.multiple_choice import data as D
from openbert.tasks.multiple_choice import synth


@pytest.fixture(scope="module")
def built(shared_data):
    wiki = shared_data / "corpus" / "wikitext-2"
    documents = synth.read_documents([str(wiki / "valid.txt"), str(wiki / "test.txt")])
    return documents, synth.build(documents, seed=0)


def test_documents_from_wikitext(built):
    documents, _ = built
    # at most one per " = Title = " line (60 in valid.txt, 62 in test.txt), none lost to headings
    assert 115 < len(documents) <= 60 + 62
    sentences = [s for d in documents for p in d for s in p]
    assert not any("<unk>" in s or " @-@ " in s for s in sentences)
    # the article's first sentence has an <unk>: its paragraph starts with the second
    assert documents[0][0][0].startswith("It is closely related to the American lobster , H. americanus .")
    assert documents[0][0][1].startswith("It may grow to a length of 60 cm")


def test_questions(built):
    documents, splits = built
    text = {s for d in documents for p in d for s in p}
    assert len(splits["train"]) > 1000 and len(splits["val"]) > 100 and len(splits["test"]) > 100
    labels = [int(r["label"]) for r in splits["train"]]
    assert min(labels.count(k) for k in range(4)) > 200  # balanced
    docs = {split: {r["video-id"] for r in rows} for split, rows in splits.items()}
    assert not docs["train"] & docs["val"] and not docs["train"] & docs["test"] and not docs["val"] & docs["test"]
    for r in splits["val"][:50]:
        gold = r[f"ending{r['label']}"]
        assert r["sent1"] in text and f"{r['sent2']} {gold}" in text  # the true next sentence
        assert len({r[f"ending{k}"] for k in range(4)}) == 4
    assert synth.build(documents, seed=0)["val"][:5] == splits["val"][:5]  # deterministic


def test_written_files_read_as_swag(built, tmp_path):
    _, splits = built
    counts = synth.write_swag(splits, tmp_path)
    train = D.read_examples("swag", tmp_path / "train.csv", "train")
    test = D.read_examples("swag", tmp_path / "test.csv", "test")
    assert len(train) == counts["train"] and all(e.label is None for e in test)
    r = splits["train"][0]
    assert (train[0].context, train[0].start, train[0].label) == (r["sent1"], r["sent2"], int(r["label"]))


def test_command_line(shared_data, tmp_path, capsys):
    wiki = shared_data / "corpus" / "wikitext-2" / "valid.txt"
    assert synth.main([f"--input_file={wiki}", f"--output_dir={tmp_path}", "--test_labels"]) == 0
    assert "questions in" in capsys.readouterr().out
    assert D.read_examples("swag", tmp_path / "test.csv", "test")[0].label is not None
    assert synth.main([f"--input_file={tmp_path / 'none*.txt'}", f"--output_dir={tmp_path}"]) == 2

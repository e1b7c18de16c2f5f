"""openbert predict: text or JSON lines in, JSON lines out (file or stdout), the pipelines' results,
errors naming the line, no half-written output."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import openbert
from openbert.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_text_lines_to_embeddings_equal_encode(tiny_models, tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("the cat sat\n\nthe dog ||| went to the store\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["predict", f"--init_checkpoint={tiny_models['mlm']}", f"--input_file={inp}",
                 f"--output_file={out}", "--noprogress"]) == 0
    rows = _rows(out)
    assert [r["line"] for r in rows] == [1, 3]  # blank lines are skipped, line numbers kept
    ref = openbert.encode(["the cat sat", "the dog ||| went to the store"], tiny_models["mlm"], max_seq_length=64)
    np.testing.assert_allclose([r["embedding"] for r in rows], ref, atol=1e-4)
    assert main(["predict", f"--init_checkpoint={tiny_models['mlm']}", f"--input_file={inp}",
                 f"--output_file={out}", "--normalize", "--pooling=cls", "--noprogress"]) == 0
    ref = openbert.encode(["the cat sat", "the dog ||| went to the store"], tiny_models["mlm"], pooling="cls",
                          max_seq_length=64)
    np.testing.assert_allclose([r["embedding"] for r in _rows(out)],
                               ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-5)


def test_jsonl_classifier_with_ids(tiny_models, tmp_path):
    inp = tmp_path / "in.jsonl"
    records = [{"id": "a", "text": "great movie", "text_pair": "bad film"}, {"id": 7, "text": "the cat sat"}]
    inp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["predict", f"--init_checkpoint={tiny_models['cls']}", f"--input_file={inp}",
                 f"--output_file={out}", "--noprogress"]) == 0
    rows = _rows(out)
    ref = openbert.pipeline("classify", model=tiny_models["cls"])([("great movie", "bad film"), "the cat sat"])
    assert [r["id"] for r in rows] == ["a", 7]
    assert [r["label"] for r in rows] == [r["label"] for r in ref]
    assert rows[0]["scores"] == pytest.approx(ref[0]["scores"], abs=1e-5)


def test_ner_text_lines_and_word_lists(tiny_models, tmp_path):
    """A token classifier's model predicts ner by default; {"words": [...]} is tagged as given."""
    inp = tmp_path / "in.jsonl"
    records = [{"id": 1, "text": "john smith sat on the mat ."}, {"id": 2, "words": ["the", "big", "dog"]}]
    inp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["predict", f"--init_checkpoint={tiny_models['ner']}", f"--input_file={inp}",
                 f"--output_file={out}", "--noprogress"]) == 0
    rows = _rows(out)
    ref = openbert.pipeline("ner", model=tiny_models["ner"])(["john smith sat on the mat .", ["the", "big", "dog"]])
    assert [r["id"] for r in rows] == [1, 2]
    assert [{k: r[k] for k in ("text", "words", "tags")} for r in rows] == \
        [{k: r[k] for k in ("text", "words", "tags")} for r in ref]
    inp.write_text('{"words": "not a list"}\n', encoding="utf-8")
    assert main(["predict", f"--init_checkpoint={tiny_models['ner']}", f"--input_file={inp}",
                 f"--output_file={tmp_path / 'bad.jsonl'}", "--noprogress"]) == 2
    assert not (tmp_path / "bad.jsonl").exists()


def test_qa_and_fill_mask_through_stdin_and_stdout(tiny_models, monkeypatch, capsys):
    item = {"question": "who went ?", "context": "A man went to the store."}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(item) + "\n" + "who sat ? ||| the cat sat .\n"))
    assert main(["predict", f"--init_checkpoint={tiny_models['qa']}", "--input_format=jsonl", "--noprogress"]) == 2
    assert "line 2: not valid JSON" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(item) + "\n"))
    assert main(["predict", f"--init_checkpoint={tiny_models['qa']}", "--noprogress"]) == 0
    row = json.loads(capsys.readouterr().out)
    ref = openbert.pipeline("qa", model=tiny_models["qa"])(item)
    assert row["answer"] == ref["answer"] and (row["start"], row["end"]) == (ref["start"], ref["end"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("who went ? ||| A man went to the store.\n"))
    assert main(["predict", f"--init_checkpoint={tiny_models['qa']}", "--noprogress"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == ref["answer"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("the [MASK] sat\n"))
    assert main(["predict", f"--init_checkpoint={tiny_models['mlm']}", "--task=fill-mask", "--top_k=2",
                 "--noprogress"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["line"] == 1 and row["tokens"][2] == "[MASK]" and len(row["masks"][0]["predictions"]) == 2


def test_errors_name_the_line_and_leave_no_output_file(tiny_models, tmp_path, capsys):
    inp = tmp_path / "in.txt"
    inp.write_text("the [MASK] sat\n" * 3 + "no mask here\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["predict", f"--init_checkpoint={tiny_models['mlm']}", f"--input_file={inp}", f"--output_file={out}",
            "--task=fill-mask", "--noprogress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{inp}, line 4:" in err and "has no [MASK]" in err
    assert not out.exists() and not list(tmp_path.glob("out.jsonl.tmp*"))
    out.write_text("precious\n")
    assert main(args) == 2 and out.read_text() == "precious\n"  # an earlier file stays as it was
    for extra, words in [([f"--input_file={tmp_path / 'missing.txt'}"], "not found"),
                         (["--task=qa"], "cannot do qa"),
                         ([f"--output_file={inp}"], "is the --input_file"),
                         (["--batch_size=0"], "--batch_size must be at least 1")]:
        assert main(args + extra) == 2
        assert words in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n\n")
    assert main(args + [f"--input_file={tmp_path / 'empty.txt'}"]) == 2
    assert "has no input lines" in capsys.readouterr().err


def test_the_command_line_streams_stdin_to_stdout(tiny_models):
    r = subprocess.run([sys.executable, "-m", "openbert", "predict", f"--init_checkpoint={tiny_models['cls']}"],
                       input="great movie\nbad film\n", capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["line"] for row in rows] == [1, 2] and all(row["label"] in ("neg", "neu", "pos") for row in rows)
    assert "predict (classify)" in r.stderr  # the progress bar goes to stderr

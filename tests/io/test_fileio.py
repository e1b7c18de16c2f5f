"""Atomic writes: the target is replaced only when writing succeeded."""
import os

import pytest

from openbert.io.fileio import atomic_open, atomic_path, atomic_write_text


def test_atomic_write_replaces_file(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")
    atomic_write_text(p, "new")
    assert p.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("precious")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write("half")
            raise RuntimeError("crash mid-write")
    assert p.read_text() == "precious"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_directory(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "a").write_text("old")
    with atomic_path(d) as tmp:
        os.makedirs(tmp)
        with open(os.path.join(tmp, "b"), "w") as f:
            f.write("new")
    assert sorted(os.listdir(d)) == ["b"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_read_records_tsv_csv_jsonl(tmp_path):
    from openbert.errors import OpenBertError
    from openbert.io.fileio import read_records

    (tmp_path / "a.tsv").write_text('x\ty\n"1\t2\n')
    (tmp_path / "a.csv").write_text('x,y\n"1,5",2\n')
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n\n{"x": 2}\n')
    assert list(read_records(tmp_path / "a.tsv")) == [(2, {"x": '"1', "y": "2"})]  # TSV: quotes are literal
    assert list(read_records(tmp_path / "a.csv")) == [(2, {"x": "1,5", "y": "2"})]
    assert list(read_records(tmp_path / "a.jsonl")) == [(1, {"x": 1}), (3, {"x": 2})]
    (tmp_path / "b.csv").write_text("x,y\n1\n")
    with pytest.raises(OpenBertError, match=r"b\.csv, line 2: 1 columns, the header has 2"):
        list(read_records(tmp_path / "b.csv"))
    with pytest.raises(OpenBertError, match="unknown format '.xml'"):
        list(read_records(tmp_path / "a.xml"))

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

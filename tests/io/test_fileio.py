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


def test_fresh_dir_is_always_a_new_empty_folder(tmp_path, monkeypatch):
    from openbert.io import fileio

    monkeypatch.setattr(fileio.time, "strftime", lambda fmt: "20261203-140000")  # one second
    (tmp_path / "runs" / "quickstart-20261203-140000-2").mkdir(parents=True)  # taken already
    made = [fileio.fresh_dir(tmp_path / "runs", "quickstart") for _ in range(3)]
    assert [os.path.basename(p) for p in made] == ["quickstart-20261203-140000", "quickstart-20261203-140000-3",
                                                   "quickstart-20261203-140000-4"]
    assert all(os.path.isdir(p) and not os.listdir(p) for p in made)


# ---- atomic output folders, "is this folder ours", clean-up ----------------------------------
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from openbert.io import fileio  # noqa: E402
from openbert.errors import OpenBertError  # noqa: E402
from openbert.io.fileio import (MANIFEST, check_output_dir, claim_output_dir, clean_stale,  # noqa: E402
                             output_folder, read_manifest)


def _dead_pid() -> int:
    """The id of a process that has ended (and was reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write(folder, name, text):
    with open(os.path.join(folder, name), "w") as f:
        f.write(text)


def test_output_folder_swaps_in_the_complete_folder_and_lists_what_it_wrote(tmp_path):
    out = tmp_path / "model"
    with output_folder(out, "convert", fresh=True, strict=True) as tmp:
        _write(tmp, "a.bin", "1")
        _write(tmp, "config.json", "{}")
    assert sorted(os.listdir(out)) == [MANIFEST, "a.bin", "config.json"]
    m = read_manifest(out)
    assert m["command"] == "convert" and m["files"] == {"a.bin": "convert", "config.json": "convert"}
    # a second output of the same command replaces it whole (fresh: a.bin is gone)
    with output_folder(out, "convert", fresh=True, strict=True) as tmp:
        _write(tmp, "b.bin", "2")
    assert sorted(os.listdir(out)) == [MANIFEST, "b.bin"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two_renames"])
def test_a_failed_output_leaves_the_old_folder_untouched(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)
    out = tmp_path / "model"
    with output_folder(out, "convert") as tmp:
        _write(tmp, "weights", "old")
    with pytest.raises(RuntimeError):
        with output_folder(out, "convert") as tmp:
            _write(tmp, "weights", "half")
            raise RuntimeError("killed mid-write")
    assert (out / "weights").read_text() == "old"
    with output_folder(out, "convert") as tmp:
        _write(tmp, "weights", "new")
    assert (out / "weights").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_a_swap_cut_short_is_put_back_on_the_next_run(tmp_path):
    """Without an atomic exchange a kill between the two renames leaves NAME.old.<pid> and
    NAME.tmp.<pid>, no NAME: the next run restores the old complete folder."""
    pid = _dead_pid()
    out = tmp_path / "model"
    (tmp_path / f"model.old.{pid}").mkdir()
    (tmp_path / f"model.old.{pid}" / "weights").write_text("old")
    (tmp_path / f"model.tmp.{pid}").mkdir()
    (tmp_path / f"model.tmp.{pid}" / "weights").write_text("new")
    clean_stale(out)
    assert sorted(os.listdir(tmp_path)) == ["model"] and (out / "weights").read_text() == "old"


def test_leftovers_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    for name in (f"out.txt.tmp.{dead}", f"out.txt.tmp.{alive}", f"out.txt.parts.{dead}"):
        (tmp_path / name).write_text("x")
    atomic_write_text(tmp_path / "out.txt", "done")
    assert sorted(os.listdir(tmp_path)) == ["out.txt", f"out.txt.tmp.{alive}"]


def test_folder_with_files_openbert_did_not_write_is_refused_and_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OpenBertError, match=r"--output_dir .*out holds files openbert did not write "
                                            r"\(notes.txt\).*--overwrite_output_dir"):
        check_output_dir(out, "classify")
    with pytest.raises(OpenBertError, match="did not write"):
        with output_folder(out, "classify", strict=True) as tmp:
            _write(tmp, "model", "x")
    assert sorted(os.listdir(out)) == ["notes.txt"]
    assert check_output_dir(out, "classify", overwrite=True) == "replace"


def test_output_of_another_command_is_refused(tmp_path):
    out = tmp_path / "out"
    claim_output_dir(out, "pretrain")
    (out / "config.json").write_text("{}")  # written behind openbert's back: not in the manifest
    with pytest.raises(OpenBertError, match="did not write"):
        check_output_dir(out, "pretrain")
    atomic_write_text(out / "config.json", "{}")  # an atomic write in an output folder is recorded
    assert check_output_dir(out, "pretrain") == "ours"
    with pytest.raises(OpenBertError, match="holds the output of `openbert pretrain`"):
        check_output_dir(out, "classify", flag="--output_dir")


def test_an_output_folder_never_swallows_an_input(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "corpus.txt").write_text("text")
    for overwrite in (False, True):
        with pytest.raises(OpenBertError, match="holds .*corpus.txt, an input of this command"):
            check_output_dir(out, "create-pretraining-data", "--output_file", overwrite=overwrite,
                             inputs=[out / "corpus.txt"])
    with pytest.raises(OpenBertError, match="--output_file .* is a file"):
        check_output_dir(out / "corpus.txt", "create-pretraining-data", "--output_file")


def test_claim_with_overwrite_empties_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    assert claim_output_dir(out, "classify", overwrite=True) == "replace"
    assert os.listdir(out) == [MANIFEST] and read_manifest(out)["command"] == "classify"


def test_library_writes_keep_other_files_and_never_replace_them(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "README").write_text("the user's")
    (out / "vocab.txt").write_text("the user's")
    with output_folder(out) as tmp:
        _write(tmp, "weights", "w")
    assert (out / "README").read_text() == "the user's" and (out / "weights").read_text() == "w"
    with pytest.raises(OpenBertError, match="vocab.txt is not a file openbert wrote"):
        with output_folder(out) as tmp:
            os.remove(os.path.join(tmp, "vocab.txt"))
            _write(tmp, "vocab.txt", "ours")
    assert (out / "vocab.txt").read_text() == "the user's"


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        out = tmp_path / "model"
        with output_folder(out) as tmp:
            fd = os.open(os.path.join(tmp, "secret"), os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        with atomic_path(tmp_path / "f.bin") as t:
            os.close(os.open(t, os.O_CREAT | os.O_WRONLY, 0o600))
    finally:
        os.umask(old)
    assert (out / "secret").stat().st_mode & 0o777 == 0o640
    assert (out / MANIFEST).stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o640


def test_a_missing_folder_is_created_and_removed_again_on_failure(tmp_path):
    atomic_write_text(tmp_path / "a" / "b" / "out.json", "{}")
    assert (tmp_path / "a" / "b" / "out.json").read_text() == "{}"
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "c" / "d" / "out.json") as f:
            raise RuntimeError("fails")
    assert sorted(os.listdir(tmp_path)) == ["a"]


def test_a_file_is_never_written_onto_a_folder(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(OpenBertError, match="a folder of that name exists"):
        atomic_write_text(tmp_path / "out", "{}")
    assert os.listdir(tmp_path) == ["out"] and os.listdir(tmp_path / "out") == []


def test_manifest_is_json_naming_the_writer(tmp_path):
    claim_output_dir(tmp_path / "run", "squad")
    fileio.record_outputs(tmp_path / "run", ["checkpoints/step-1.pt", "metrics.jsonl"], "train")
    m = json.loads((tmp_path / "run" / MANIFEST).read_text())
    assert m["format"] == "openbert-output" and m["command"] == "squad"
    assert m["files"] == {"checkpoints/": "train", "metrics.jsonl": "train"}


def test_a_folder_is_never_written_onto_a_file(tmp_path):
    (tmp_path / "model").write_text("a file of the user's")
    with pytest.raises(OpenBertError, match="model is a file; pass a folder"):
        with output_folder(tmp_path / "model") as tmp:
            _write(tmp, "weights", "w")
    assert (tmp_path / "model").read_text() == "a file of the user's" and os.listdir(tmp_path) == ["model"]


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

"""Atomic file writing (write to a temporary name beside the target, then rename: a crash or an
error mid-write never leaves a half-written file under the target name), input globs, and readers
of JSON, JSON lines and delimited text that name the file and line of what they cannot read.
"""
from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import shutil
from typing import Sequence

from ..errors import OpenBertError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Works for files and directories. On an exception the temporary is removed and ``path`` is
    left as it was.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if os.path.isdir(tmp) and os.path.isdir(path):
        old = f"{path}.old.{os.getpid()}"
        os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs):
    """``open()`` that only replaces ``path`` when the ``with`` block succeeds."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def _remove(p: str) -> None:
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p, ignore_errors=True)
    elif os.path.lexists(p):
        os.remove(p)


def expand_input_files(patterns: str | Sequence[str]) -> list[str]:
    """Comma-separated globs (the original's ``--input_file``) or a list -> regular files, each
    glob's matches sorted, globs in the given order. OpenBertError when a glob matches nothing."""
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",")]
    patterns = [p for p in patterns if p]
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise OpenBertError(f"--input_file {pattern} matches no file: check the path or glob")
        files.extend(m for m in matches if os.path.isfile(m))
    if not files:
        raise OpenBertError(f"--input_file {','.join(patterns)} names no regular file")
    return files


def read_json(path: str | os.PathLike, expected: str):
    """Parse a JSON file; OpenBertError naming the file and ``expected`` (what it should hold)
    when it is missing or not JSON."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OpenBertError(f"{path}: file not found (expected {expected})")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OpenBertError(f"{path}: not a JSON file ({e}); expected {expected}") from None


def read_tsv(path: str | os.PathLike, delimiter: str = "\t", quoting: int = csv.QUOTE_NONE):
    """Yield ``(line_number, row)`` for each non-blank row of a delimited text file.

    TSV as the original: tab delimiter, no quote handling (``"`` is a literal character). A UTF-8
    byte-order mark (Microsoft's MRPC files have one) is dropped.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
            for row in reader:
                if row and any(row):
                    yield reader.line_num, row
    except UnicodeDecodeError as e:
        raise OpenBertError(f"{path}: not UTF-8 text ({e}); convert the file to UTF-8") from None
    except csv.Error as e:
        raise OpenBertError(f"{path}: malformed line ({e}); check the file's quoting") from None


def read_jsonl(path: str | os.PathLike):
    """Yield ``(line_number, dict)`` for each non-blank line of a JSON-lines file."""
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise OpenBertError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise OpenBertError(f"{path}, line {n}: expected a JSON object per line")
            yield n, obj


def read_records(path: str | os.PathLike):
    """Yield ``(line_number, dict)`` per record of a .tsv (header row, no quote handling), .csv
    (header row, standard quoting) or .jsonl/.json (one object per line) file."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in (".jsonl", ".json"):
        yield from read_jsonl(path)
        return
    if suffix not in (".tsv", ".csv", ".txt"):
        raise OpenBertError(f"{path}: unknown format {suffix!r}; use .tsv, .csv or .jsonl")
    delimiter, quoting = (",", csv.QUOTE_MINIMAL) if suffix == ".csv" else ("\t", csv.QUOTE_NONE)
    header = None
    for line, row in read_tsv(path, delimiter, quoting):
        if header is None:
            header = row
            continue
        if len(row) != len(header):
            raise OpenBertError(f"{path}, line {line}: {len(row)} columns, the header has "
                                f"{len(header)} ({', '.join(header)})")
        yield line, dict(zip(header, row))

"""Safe outputs: atomic files and folders, "is this folder ours", clean-up after a crash.

Every openbert writer goes through this module, so that a crash, a ``kill -9`` or a bad flag never
loses a user's file:

- :func:`atomic_path` / :func:`atomic_open`: a file (or folder) is written under the temporary name
  ``NAME.tmp.<pid>`` beside it and renamed onto ``NAME`` only when complete.
- :func:`output_folder`: a multi-file output (a model, a converted checkpoint, a shard set) is
  written into the sibling ``NAME.tmp.<pid>`` and swapped in with one atomic exchange of the two
  folders (two renames where the system has no exchange), so ``NAME`` is always either the old or
  the new complete folder.
- The manifest ``.openbert-manifest.json`` that openbert writes into every output folder it makes
  lists the entries it wrote and which command wrote them. :func:`check_output_dir` refuses a
  folder that holds anything else (or another command's output), naming the flag that chose it,
  and never lets an output folder swallow one of the command's inputs.
- :func:`clean_stale` / :func:`clean_stale_in`: leftovers ``*.tmp.<pid>`` / ``*.old.<pid>`` of
  processes that died are removed on the next run (an old folder whose swap was cut short is put
  back).

Everything written follows the process umask (some libraries create files with mode 0600).

Also: input globs, and readers of JSON, JSON lines and delimited text that name the file and
line of what they cannot read.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import csv
import glob
import json
import logging
import os
import re
import shutil
import time
from typing import Callable, Iterable, Sequence

from ..errors import OpenBertError

logger = logging.getLogger(__name__)

MANIFEST = ".openbert-manifest.json"
MANIFEST_FORMAT = "openbert-output"
# NAME.tmp.<pid>: being written; NAME.old.<pid>: the folder being swapped out; NAME.parts.<pid>:
# pieces of an array file being assembled
_STALE = re.compile(r"^(?P<name>.+)\.(?P<kind>tmp|old|parts)\.(?P<pid>\d+)$")


# ---------------------------------------------------------------------------------------------
# modes, liveness, removal, exchange
# ---------------------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: str, recursive: bool = True) -> None:
    """Give ``path`` (and, for a folder, everything in it) the mode a plain ``open()`` /
    ``mkdir()`` would: 0666 / 0777 minus the umask."""
    mask = _umask()

    def fix(p: str, is_dir: bool) -> None:
        if not os.path.islink(p):
            os.chmod(p, (0o777 if is_dir else 0o666) & ~mask)

    if os.path.isdir(path) and not os.path.islink(path):
        fix(path, True)
        if recursive:
            for root, dirs, files in os.walk(path):
                for d in dirs:
                    fix(os.path.join(root, d), True)
                for f in files:
                    fix(os.path.join(root, f), False)
    elif os.path.lexists(path):
        fix(path, False)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(p: str) -> None:
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p, ignore_errors=True)
    elif os.path.lexists(p):
        os.remove(p)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Swap the paths ``a`` and ``b`` in one atomic step (Linux renameat2); False when the system
    or the file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), a)


def _swap_in(tmp: str, path: str) -> None:
    """Put the complete ``tmp`` at ``path``; an existing folder at ``path`` goes."""
    if os.path.isdir(tmp) and os.path.isdir(path) and not os.path.islink(path):
        if _exchange(tmp, path):
            _remove(tmp)  # now the old folder
            return
        old = f"{path}.old.{os.getpid()}"
        _remove(old)
        os.replace(path, old)
        os.replace(tmp, path)  # a kill between these two renames: clean_stale puts `old` back
        _remove(old)
    else:
        os.replace(tmp, path)


def clean_stale(path: str | os.PathLike) -> None:
    """Remove the leftovers ``path.tmp.<pid>`` / ``path.parts.<pid>`` of dead processes; put back
    ``path.old.<pid>`` when ``path`` itself is missing (a swap that was cut short)."""
    path = os.path.abspath(os.fspath(path))
    parent, base = os.path.split(path)
    try:
        names = os.listdir(parent)
    except OSError:
        return
    _clean(parent, [n for n in names if (m := _STALE.match(n)) and m.group("name") == base])


def clean_stale_in(folder: str | os.PathLike) -> None:
    """:func:`clean_stale` for every entry of ``folder`` (and of its sub-folders)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return
    for root, dirs, files in os.walk(folder):
        _clean(root, [n for n in dirs + files if _STALE.match(n)])


def _clean(parent: str, names: Iterable[str]) -> None:
    for name in sorted(names, key=lambda n: _STALE.match(n).group("kind") != "old"):
        m = _STALE.match(name)
        if _alive(int(m.group("pid"))):
            continue
        stale, target = os.path.join(parent, name), os.path.join(parent, m.group("name"))
        if m.group("kind") == "old" and not os.path.lexists(target):
            os.replace(stale, target)
            logger.warning("restored %s from %s (a swap was interrupted)", target, name)
        else:
            _remove(stale)
            logger.info("removed %s, left by a process that ended before finishing it", stale)


# ---------------------------------------------------------------------------------------------
# atomic files
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Works for files and directories. A missing parent folder is created (and removed again when
    the block fails). On an exception the temporary is removed and ``path`` is left as it was.
    The result follows the umask; in an openbert output folder the name is recorded in the
    manifest before it is written.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    created = _makedirs(parent)
    clean_stale(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    _remove(tmp)
    if os.path.basename(path) != MANIFEST:
        record_outputs(parent, [os.path.basename(path)], create=False)
    try:
        yield tmp
        if os.path.lexists(tmp):
            follow_umask(tmp)
            if os.path.isdir(path) and not os.path.isdir(tmp):
                raise OpenBertError(f"cannot write the file {path}: a folder of that name exists; "
                                    f"choose a file name")
            _swap_in(tmp, path)
    except BaseException:
        _discard(tmp, created)
        raise


def _discard(tmp: str, created: list[str]) -> None:
    """After a failed write: remove the temporary ``tmp`` and the (empty) folders made for it."""
    _remove(tmp)
    for d in created:
        with contextlib.suppress(OSError):
            os.rmdir(d)


def _makedirs(folder: str) -> list[str]:
    """Create ``folder`` and missing parents -> the folders created, deepest first."""
    created = []
    d = os.path.abspath(folder)
    while not os.path.isdir(d):
        if os.path.lexists(d):
            raise OpenBertError(f"cannot write into {d}: it is a file, not a folder")
        created.append(d)
        d = os.path.dirname(d)
    for c in reversed(created):
        os.mkdir(c)
    return created


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


def check_output_file(path: str | os.PathLike, flag: str, kind: str,
                      is_kind: Callable[[str], bool] | None = None,
                      inputs: Iterable[str | os.PathLike | None] = ()) -> None:
    """Refuse an output file that would destroy something: a folder at ``path``, one of the
    command's ``inputs``, or an existing non-empty file that is not ``kind`` (``is_kind(path)``
    says whether it is; None: any existing file may be replaced)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OpenBertError(f"{flag} {path} is a folder; pass a file name for the {kind}")
    real = os.path.realpath(path)
    for inp in inputs:
        if inp is not None and os.path.realpath(os.fspath(inp)) == real:
            raise OpenBertError(f"{flag} {path} is also an input of this command; choose another "
                                f"output file (openbert never overwrites an input)")
    if is_kind is not None and os.path.isfile(path) and os.path.getsize(path) and not is_kind(path):
        raise OpenBertError(f"{flag} {path} exists and is not a {kind}; openbert replaces only a "
                            f"file of the kind it writes: choose another name or move that file")
    d = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(d):
        if os.path.lexists(d):
            raise OpenBertError(f"{flag} {path}: {d} is a file, not a folder")
        d = os.path.dirname(d)


def fresh_dir(parent: str | os.PathLike, prefix: str) -> str:
    """Create and return a new, empty folder ``parent/prefix-YYYYMMDD-HHMMSS`` (``-2``, ``-3``, ...
    when that exists): never one an earlier run (or a concurrent one) made."""
    os.makedirs(parent, exist_ok=True)
    stamp = os.path.join(os.fspath(parent), f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}")
    for n in range(1, 10_000):
        path = stamp if n == 1 else f"{stamp}-{n}"
        try:
            os.mkdir(path)  # atomic: fails when it exists
            return path
        except FileExistsError:
            continue
    raise OpenBertError(f"cannot make a new folder under {parent}: too many named {stamp}-*")


# ---------------------------------------------------------------------------------------------
# the manifest: what openbert wrote in a folder
# ---------------------------------------------------------------------------------------------
def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of ``folder``: ``{"command": ..., "files": {entry: command}}``, or None when
    there is none (or it is unreadable: then the folder is not known to be openbert's)."""
    path = os.path.join(os.fspath(folder), MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or not isinstance(m.get("files"), dict):
        return None
    return m


def write_manifest(folder: str | os.PathLike, command: str, files: dict[str, str]) -> None:
    m = {"format": MANIFEST_FORMAT, "version": 1, "command": command,
         "files": dict(sorted(files.items()))}
    atomic_write_text(os.path.join(os.fspath(folder), MANIFEST), json.dumps(m, indent=1) + "\n")


def _entry(name: str, is_dir: bool) -> str:
    return name + "/" if is_dir else name


def _top(relpath: str) -> str:
    """``checkpoints/step-1.pt`` -> ``checkpoints/``; ``config.json`` -> ``config.json``."""
    head, sep, _ = relpath.replace(os.sep, "/").partition("/")
    return head + "/" if sep else head


def record_outputs(folder: str | os.PathLike, names: Sequence[str], command: str | None = None,
                   create: bool = True) -> None:
    """Add ``names`` (paths relative to ``folder``; a name ending in ``/`` is a sub-folder owned
    whole) to the manifest of ``folder`` before they are written. Without a manifest: one is
    created when ``create`` and the folder is empty, else nothing is recorded."""
    folder = os.fspath(folder)
    m = read_manifest(folder)
    if m is None:
        if not create or (os.path.isdir(folder) and os.listdir(folder)):
            return
        os.makedirs(folder, exist_ok=True)
        m = {"command": command or "openbert", "files": {}}
    files = dict(m["files"])
    owned = {k.rstrip("/") for k in files}
    new = {_top(n): command or m["command"] for n in names}
    new = {k: v for k, v in new.items() if k.rstrip("/") not in owned}
    if new:
        files.update(new)
        write_manifest(folder, m["command"], files)


def _entries(folder: str) -> list[str]:
    """The entries of ``folder`` but its manifest and leftovers of dead processes."""
    out = []
    for name in sorted(os.listdir(folder)):
        m = _STALE.match(name)
        if name == MANIFEST or (m and not _alive(int(m.group("pid")))):
            continue
        out.append(name)
    return out


def foreign_entries(folder: str | os.PathLike, manifest: dict | None = None) -> list[str]:
    """Entries of ``folder`` that its manifest does not list (all of them without a manifest)."""
    folder = os.fspath(folder)
    files = (manifest or read_manifest(folder) or {"files": {}})["files"]
    owned = {k.rstrip("/") for k in files}
    return [name for name in _entries(folder) if name not in owned]


def _inside(inner: str, outer: str) -> bool:
    inner, outer = os.path.realpath(inner), os.path.realpath(outer)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_output_dir(path: str | os.PathLike, command: str, flag: str = "--output_dir",
                     overwrite: bool = False, overwrite_flag: str | None = "--overwrite_output_dir",
                     inputs: Iterable[str | os.PathLike | None] = (),
                     legacy: Callable[[str], bool] | None = None, what: str | None = None) -> str:
    """May ``command`` write its output folder at ``path``? -> ``"new"`` (absent or empty),
    ``"ours"`` (an earlier output of ``command`` holding nothing else) or ``"replace"``
    (anything else, allowed by ``overwrite``). OpenBertError otherwise, naming ``flag`` and
    ``overwrite_flag``. A folder holding one of ``inputs`` is always refused. ``legacy(path)``
    may vouch for a folder written before manifests existed; ``what`` names the output in errors
    ("an openbert shard directory")."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OpenBertError(f"{flag} {path} is a file; pass a folder ({command} writes a folder there)")
    for inp in inputs:
        if inp is not None and _inside(os.fspath(inp), path):
            raise OpenBertError(f"{flag} {path} holds {os.fspath(inp)}, an input of this command; "
                                f"choose another folder (openbert never deletes or overwrites an input)")
    if not os.path.isdir(path) or not _entries(path):
        return "new"
    m = read_manifest(path)
    foreign = foreign_entries(path, m)
    if m is not None and m["command"] == command and not foreign:
        return "ours"
    if m is None and legacy is not None and legacy(path):
        return "ours"
    if overwrite:
        return "replace"
    how = f", or pass {overwrite_flag} to replace it" if overwrite_flag else ""
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        kind = f"is not {what}: it " if what else ""
        raise OpenBertError(f"{flag} {path} {kind}holds files openbert did not write ({shown}); "
                            f"choose a new or empty folder{how}")
    raise OpenBertError(f"{flag} {path} holds the output of `openbert {m['command']}`; choose a "
                        f"new folder{how}")


def claim_output_dir(path: str | os.PathLike, command: str, flag: str = "--output_dir",
                     overwrite: bool = False, overwrite_flag: str | None = "--overwrite_output_dir",
                     inputs: Iterable[str | os.PathLike | None] = ()) -> str:
    """:func:`check_output_dir`, then make ``path`` ``command``'s output folder in place (for
    outputs written over time, like a training run): created with a manifest, or emptied first
    when it is to be replaced. Returns the state check_output_dir gave."""
    path = os.fspath(path)
    clean_stale(path)
    state = check_output_dir(path, command, flag, overwrite, overwrite_flag, inputs)
    if state == "replace":
        entries = os.listdir(path)
        logger.warning("%s %s: removing its %d earlier entries (%s)", flag, path, len(entries),
                       overwrite_flag)
        for name in entries:
            _remove(os.path.join(path, name))
    if state != "ours":
        _makedirs(path)
        write_manifest(path, command, {})
    else:
        clean_stale_in(path)
    return state


def _clone(src: str, dst: str) -> None:
    """Hard-link copy of a file or folder tree (a plain copy where links are impossible)."""
    if os.path.isdir(src) and not os.path.islink(src):
        os.mkdir(dst)
        shutil.copystat(src, dst)
        for name in os.listdir(src):
            _clone(os.path.join(src, name), os.path.join(dst, name))
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def output_folder(path: str | os.PathLike, command: str | None = None, fresh: bool = True,
                  strict: bool = False, overwrite: bool = False, flag: str = "--output_dir",
                  overwrite_flag: str | None = "--overwrite_output_dir",
                  inputs: Iterable[str | os.PathLike | None] = (),
                  legacy: Callable[[str], bool] | None = None, what: str | None = None):
    """Yield a staging folder whose content replaces the folder ``path`` atomically when the block
    succeeds (nothing changes when it fails or the process dies).

    fresh: the new folder holds only what the block writes (earlier openbert outputs there go);
    otherwise it also keeps every earlier entry, and files the block writes replace theirs.
    strict: the folder must pass :func:`check_output_dir` for ``command`` (commands' outputs);
    otherwise (library writers) files openbert did not write are kept, and replacing one of them
    is refused unless ``overwrite``. The manifest is updated to list what the block wrote.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OpenBertError(f"{flag} {path} is a file; pass a folder (a folder is written there)")
    clean_stale(path)
    state = check_output_dir(path, command or "openbert", flag, overwrite, overwrite_flag, inputs,
                             legacy, what) if strict else None
    old = read_manifest(path) if os.path.isdir(path) else None
    command = command or (old["command"] if old else "openbert")
    created = _makedirs(os.path.dirname(path))
    tmp = f"{path}.tmp.{os.getpid()}"
    _remove(tmp)
    os.mkdir(tmp)
    kept: dict[str, str | None] = {}  # entry -> who wrote it (None: not openbert)
    try:
        if os.path.isdir(path) and state != "replace":
            clean_stale_in(path)
            files = {k.rstrip("/"): v for k, v in (old["files"] if old else {}).items()}
            for name in _entries(path):
                entry = _entry(name, os.path.isdir(os.path.join(path, name)))
                # a folder vouched for by `legacy` (no manifest) is openbert's as a whole
                writer = files.get(name, "openbert" if state == "ours" and old is None else None)
                if fresh and writer is not None:
                    continue
                _clone(os.path.join(path, name), os.path.join(tmp, name))
                kept[entry] = writer
        yield tmp
        files = {}
        for name in os.listdir(tmp):
            if name == MANIFEST:
                continue
            p = os.path.join(tmp, name)
            entry = _entry(name, os.path.isdir(p))
            if entry in kept:
                if kept[entry] is not None:
                    files[entry] = kept[entry]
                elif not os.path.isdir(p) and not _same(p, os.path.join(path, name)) and not overwrite:
                    raise OpenBertError(f"{os.path.join(path, name)} is not a file openbert wrote; "
                                        f"move it away or choose another folder")
                continue
            follow_umask(p)
            files[entry] = command
        lost = [e for e, w in kept.items() if w is None and not os.path.lexists(os.path.join(tmp, e.rstrip("/")))]
        if lost and not overwrite:
            raise OpenBertError(f"{path}/{lost[0].rstrip('/')} is not a file openbert wrote; move "
                                f"it away or choose another folder")
        write_manifest(tmp, command, files)
        follow_umask(tmp, recursive=False)
        _swap_in(tmp, path)
    except BaseException:
        _discard(tmp, created)
        raise


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
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

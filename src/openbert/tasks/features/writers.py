"""Writers of extracted features, both atomic: :class:`JsonlWriter` (the original layout, values
rounded to 6 decimals) and :class:`ArrayWriter` (``.npz`` / ``.safetensors``: one ``[rows, H]``
array per requested layer, ``input_ids``, ``offsets``).

A feature written is anything with ``unique_id``, ``tokens`` and ``input_ids``
(:class:`~openbert.tasks.features.extract.InputFeature`).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import zipfile

import numpy as np

from ...errors import OpenBertError
from ...io.fileio import atomic_open, atomic_path, check_output_file

OUTPUT_FORMATS = ("jsonl", "npz", "safetensors")


def round6(values: np.ndarray) -> np.ndarray:
    """``round(float(x), 6)`` of the original for every float32 ``x``, vectorised.

    Exact: a float32 times 1e6 is exact in float64, so rint decides ties as Python's round does,
    and k / 1e6 is the double nearest to the decimal, which is what Python's round returns.
    """
    return np.round(values.astype(np.float64), 6)


class JsonlWriter:
    """The original's JSON lines: ``{"linex_index", "features": [{"token", "layers": [{"index",
    "values"}]}]}``, keys in that order, values rounded to 6 decimals."""

    def __init__(self, f, layer_indexes: list[int]):
        self.f = f
        self.layer_indexes = layer_indexes

    def write(self, feature, values: np.ndarray) -> None:
        """``values``: [n_tokens, L, H] for ``feature.tokens``."""
        rounded = round6(values).tolist()
        feats = [{"token": tok, "layers": [{"index": li, "values": v}
                                          for li, v in zip(self.layer_indexes, per_layer)]}
                 for tok, per_layer in zip(feature.tokens, rounded)]
        self.f.write(json.dumps({"linex_index": feature.unique_id, "features": feats}) + "\n")


_ST_DTYPE = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.int32): "I32",
             np.dtype(np.int64): "I64"}


class ArrayWriter:
    """Streams arrays into parts on disk, then assembles one ``.npz`` or ``.safetensors`` file.

    Arrays: ``layer_<i>`` for each requested layer index ``i`` — ``[total_tokens, H]`` (line ``k``'s
    rows are ``offsets[k]:offsets[k+1]``), or ``[num_lines, H]`` when pooled — ``input_ids``
    ``[total_tokens]`` int32, ``offsets`` ``[num_lines + 1]`` int64, ``layers`` ``[L]`` int64.
    Use as a context manager; the output appears (atomically) only when the block succeeds.
    """

    def __init__(self, path: str | os.PathLike, fmt: str, layer_indexes: list[int], hidden_size: int,
                 dtype=np.float32, pooling: str = "none"):
        if fmt not in ("npz", "safetensors"):
            raise OpenBertError(f"array format {fmt!r}: use npz or safetensors")
        self.path, self.fmt = os.fspath(path), fmt
        self.layer_indexes, self.hidden = list(layer_indexes), hidden_size
        self.pooling, self.pooled = pooling, pooling != "none"
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float16, np.float32):
            raise OpenBertError(f"dtype {self.dtype}: use float16 or float32")
        self.rows = 0  # token rows written
        self.lines = 0
        self._parts_dir = f"{self.path}.parts.{os.getpid()}"
        self._parts: dict = {}

    def __enter__(self) -> "ArrayWriter":
        os.makedirs(self._parts_dir, exist_ok=True)
        self._parts = {name: open(os.path.join(self._parts_dir, name), "wb") for name in self._names()}
        self._parts["offsets"].write(np.zeros(1, np.int64).tobytes())
        return self

    def _names(self) -> list[str]:
        return [f"layer_{i}" for i in self.layer_indexes] + ["input_ids", "offsets"]

    def write(self, feature, values: np.ndarray) -> None:
        """``values``: [n_tokens, L, H], or [L, H] when pooled."""
        values = values.astype(self.dtype, copy=False)
        for j, i in enumerate(self.layer_indexes):
            self._parts[f"layer_{i}"].write(np.ascontiguousarray(values[..., j, :]).tobytes())
        self._parts["input_ids"].write(np.asarray(feature.input_ids, np.int32).tobytes())
        self.rows += len(feature.input_ids)
        self.lines += 1
        self._parts["offsets"].write(np.int64(self.rows).tobytes())

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            for f in self._parts.values():
                f.close()
            if exc_type is None:
                with atomic_path(self.path) as tmp:
                    (self._write_npz if self.fmt == "npz" else self._write_safetensors)(tmp)
        finally:
            shutil.rmtree(self._parts_dir, ignore_errors=True)

    def _arrays(self) -> list[tuple[str, np.dtype, tuple[int, ...], str | None]]:
        """(name, dtype, shape, part file or None for ``layers``) in file order."""
        first = self.lines if self.pooled else self.rows
        out = [(f"layer_{i}", self.dtype, (first, self.hidden), f"layer_{i}") for i in self.layer_indexes]
        out += [("input_ids", np.dtype(np.int32), (self.rows,), "input_ids"),
                ("offsets", np.dtype(np.int64), (self.lines + 1,), "offsets"),
                ("layers", np.dtype(np.int64), (len(self.layer_indexes),), None)]
        return out

    def _copy(self, part: str | None, dst) -> None:
        if part is None:
            dst.write(np.asarray(self.layer_indexes, np.int64).tobytes())
            return
        with open(os.path.join(self._parts_dir, part), "rb") as src:
            shutil.copyfileobj(src, dst, 16 << 20)

    def _write_npz(self, tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, dtype, shape, part in self._arrays():
                with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array_header_1_0(f, {
                        "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
                    self._copy(part, f)

    def _write_safetensors(self, tmp: str) -> None:
        header, offset = {}, 0
        for name, dtype, shape, _ in self._arrays():
            size = int(np.prod(shape)) * dtype.itemsize
            header[name] = {"dtype": _ST_DTYPE[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        header["__metadata__"] = {"format": "openbert-features", "pooling": self.pooling,
                                  "layers": ",".join(map(str, self.layer_indexes))}
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for _, _, _, part in self._arrays():
                self._copy(part, f)


def output_format_for(path: str, fmt: str | None) -> str:
    """``--output_format``, or from the file name: ``.npz`` / ``.safetensors``, else jsonl."""
    if fmt:
        if fmt not in OUTPUT_FORMATS:
            raise OpenBertError(f"--output_format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}")
        return fmt
    for f in ("npz", "safetensors"):
        if path.endswith(f".{f}"):
            return f
    return "jsonl"


def first_json_line_has(path: str, key: str) -> bool:
    """True when the first line of ``path`` is a JSON object holding ``key``."""
    try:
        with open(path, encoding="utf-8") as f:
            row = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(row, dict) and key in row


def is_features_file(path: str, fmt: str) -> bool:
    """True when ``path`` looks like an earlier extract-features output in ``fmt``."""
    if fmt == "jsonl":
        return first_json_line_has(path, "linex_index")
    try:
        if fmt == "npz":
            with zipfile.ZipFile(path) as z:
                return {"offsets.npy", "layers.npy"} <= set(z.namelist())
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(min(n, 1 << 24)))
        return header.get("__metadata__", {}).get("format") == "openbert-features"
    except (OSError, ValueError, struct.error, AttributeError, zipfile.BadZipFile):
        return False


def check_output_path(path: str | os.PathLike, fmt: str = "jsonl", pooling: str = "none",
                      kind: str | None = None, is_kind=None, inputs=()) -> None:
    """Fail before any work when the output cannot be written as asked: its folder is missing,
    it is a folder or an input, or it exists and is not ``kind`` (default: an extract-features
    output in ``fmt``)."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise OpenBertError(f"cannot write {path}: directory {d} does not exist; create it first")
    if os.path.isdir(path):
        raise OpenBertError(f"--output_file {path} is a directory; pass a file name")
    if kind is None:
        kind, is_kind = f"extract-features {fmt} output", lambda p: is_features_file(p, fmt)
    check_output_file(path, "--output_file", kind, is_kind, inputs)
    if fmt == "jsonl" and pooling != "none":
        raise OpenBertError("--pooling needs array output: add --output_format npz or safetensors "
                            "(the original JSON lines hold every token)")


@contextlib.contextmanager
def open_writer(path: str, fmt: str, layer_indexes: list[int], hidden_size: int, dtype=np.float32,
                pooling: str = "none"):
    """A writer for ``fmt`` (jsonl / npz / safetensors) whose output appears atomically at ``path``."""
    check_output_path(path, fmt, pooling)
    if fmt == "jsonl":
        with atomic_open(path, "w") as f:
            yield JsonlWriter(f, layer_indexes)
    else:
        with ArrayWriter(path, fmt, layer_indexes, hidden_size, dtype, pooling) as w:
            yield w

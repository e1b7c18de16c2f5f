"""TFRecord files of ``tf.train.Example`` protos, read and written without TensorFlow.

A TFRecord file is a sequence of records, each::

    uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

with :func:`openbert.io.protobuf.masked_crc32c`.

A ``tf.train.Example`` is the protobuf ``Example{Features features = 1}``,
``Features{map<string, Feature> feature = 1}``, ``Feature{oneof: BytesList bytes_list = 1;
FloatList float_list = 2; Int64List int64_list = 3}``, each list ``repeated value = 1`` (packed
varints for int64, packed little-endian float32 for floats). :func:`encode_example` writes packed
lists in the order the features are given; :func:`decode_example` reads packed and unpacked lists,
as TensorFlow does.
"""
from __future__ import annotations

import mmap
import os
import struct
from typing import Iterator, Mapping, Sequence

import numpy as np

from ..errors import OpenBertError
from .fileio import atomic_path, check_output_file
from .protobuf import encode_varint, fields, length_delimited, masked_crc32c

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------
def frame_record(data: bytes) -> bytes:
    """One record's bytes as stored in the file (length, CRCs, data)."""
    length = struct.pack("<Q", len(data))
    return b"".join((length, struct.pack("<I", masked_crc32c(length)), data,
                     struct.pack("<I", masked_crc32c(data))))


class TFRecordWriter:
    """Write records to ``path`` atomically: the file appears only when ``close()`` succeeds.

    Use as a context manager; on an exception the partial file is removed.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._f = open(self._tmp, "wb")
        self.num_records = 0

    def write(self, data: bytes) -> None:
        self._f.write(frame_record(data))
        self.num_records += 1

    def write_framed(self, framed: bytes, count: int) -> None:
        """Append already framed records (see :func:`frame_record`)."""
        self._f.write(framed)
        self.num_records += count

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
            self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
            err = RuntimeError("aborted")
            self._ctx.__exit__(RuntimeError, err, None)  # removes the temporary file

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def looks_like_tfrecord(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with a TFRecord record header (its length checksum matches)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    if len(head) < 12:
        return False
    length, length_crc = _HEADER.unpack(head)
    return masked_crc32c(head[:8]) == length_crc


def check_tfrecord_output(path: str | os.PathLike, flag: str = "--output_file", inputs=()) -> None:
    """Fail before any work when ``path`` may not receive a TFRecord file: it is a folder, an
    input, or an existing file that is not a TFRecord (a missing folder is created on writing)."""
    check_output_file(path, flag, "TFRecord file", looks_like_tfrecord, inputs)


def index_records(path: str | os.PathLike, verify: bool = True) -> np.ndarray:
    """Scan a TFRecord file -> int64 array [N, 2] of (data offset, data length) per record.

    Checks every length CRC (and, with ``verify``, every data CRC); a corrupt or truncated file
    raises OpenBertError naming the file and the record.
    """
    path = os.fspath(path)
    buf = open_mapped(path)
    out, pos, n = [], 0, len(buf)
    while pos < n:
        if pos + 12 > n:
            raise _corrupt(path, len(out), "the file ends inside a record header")
        length, length_crc = _HEADER.unpack_from(buf, pos)
        if masked_crc32c(buf[pos:pos + 8]) != length_crc:
            raise _corrupt(path, len(out), "bad length checksum")
        start = pos + 12
        end = start + length
        if end + 4 > n:
            raise _corrupt(path, len(out), "the file ends inside a record")
        if verify:
            check_record(buf, path, len(out), start, length)
        out.append((start, length))
        pos = end + 4
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def check_record(buf, path: str, index: int, start: int, length: int) -> None:
    """Verify the data checksum of the record at ``buf[start:start + length]`` (OpenBertError
    naming the file and record when it does not match)."""
    if masked_crc32c(buf[start:start + length]) != _FOOTER.unpack_from(buf, start + length)[0]:
        raise _corrupt(path, index, "bad data checksum")


def open_mapped(path: str) -> bytes | mmap.mmap:
    """The file's bytes, memory-mapped (not read into memory); OpenBertError if unreadable."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise OpenBertError(f"cannot read TFRecord file {path}: {e.strerror}; check the path "
                            f"given to --input_file") from None


def _corrupt(path: str, index: int, why: str) -> OpenBertError:
    return OpenBertError(f"TFRecord file {path} is corrupt at record {index} ({why}): "
                         f"re-create it with `openbert create-pretraining-data`")


def read_records(path: str | os.PathLike) -> Iterator[bytes]:
    """Every record's data bytes in file order (CRCs checked)."""
    index = index_records(path)
    buf = open_mapped(os.fspath(path))
    for start, length in index:
        yield buf[start:start + length]


# ---------------------------------------------------------------------------------------------
# tf.train.Example
# ---------------------------------------------------------------------------------------------
_VARINT_TABLE_SIZE = 1 << 16
_varint_table: list[bytes] | None = None


def _varint_table_get() -> list[bytes]:
    global _varint_table
    if _varint_table is None:
        _varint_table = [encode_varint(i) for i in range(_VARINT_TABLE_SIZE)]
    return _varint_table


def _encode_varints(values: Sequence[int]) -> bytes:
    table = _varint_table_get()
    if values and 0 <= min(values) and max(values) < _VARINT_TABLE_SIZE:
        return b"".join([table[v] for v in values])
    return b"".join([encode_varint(int(v)) for v in values])


def encode_example(int_features: Mapping[str, Sequence[int]],
                   float_features: Mapping[str, Sequence[float]] = ()) -> bytes:
    """Serialize a ``tf.train.Example`` holding int64 lists and float lists (packed)."""
    entries = []
    for name, values in int_features.items():
        values = values.tolist() if isinstance(values, np.ndarray) else values
        feature = length_delimited(3, length_delimited(1, _encode_varints(values)))
        entries.append(length_delimited(1, length_delimited(1, name.encode()) +
                                         length_delimited(2, feature)))
    for name, values in dict(float_features).items():
        floats = np.asarray(values, dtype="<f4").tobytes()
        feature = length_delimited(2, length_delimited(1, floats))
        entries.append(length_delimited(1, length_delimited(1, name.encode()) +
                                         length_delimited(2, feature)))
    return length_delimited(1, b"".join(entries))


def _varint_sizes(v: np.ndarray) -> np.ndarray:
    """Bytes of each varint of ``v`` (uint64, any shape) -> int64 array of the same shape."""
    nb = np.ones(v.shape, np.int64)
    top = int(v.max()) if v.size else 0
    shift = 7
    while shift < 64 and top >= 1 << shift:
        nb += v >= np.uint64(1 << shift)
        shift += 7
    return nb


def _put_varints(out: np.ndarray, starts: np.ndarray, v: np.ndarray, nb: np.ndarray) -> None:
    """Write varint ``v[i]`` (uint64) of ``nb[i]`` bytes at ``out[starts[i]:]``."""
    if not nb.size:
        return
    first = (v & np.uint64(0x7F)).astype(np.uint8)
    longer = np.flatnonzero(nb > 1)
    first[longer] |= 0x80
    out[starts] = first
    for j in range(1, int(nb.max())):
        sel = longer if j == 1 else np.flatnonzero(nb > j)
        byte = ((v[sel] >> np.uint64(7 * j)) & np.uint64(0x7F)).astype(np.uint8)
        byte[nb[sel] > j + 1] |= 0x80
        out[starts[sel] + j] = byte


def _varint_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint-encode every row of an int matrix [N, L] at once -> (all bytes as uint8, row
    offsets [N+1]); negative values take ten bytes (int64 two's complement)."""
    v = np.ascontiguousarray(values, dtype=np.int64).view(np.uint64).reshape(values.shape[0], -1)
    nb = _varint_sizes(v).reshape(-1)
    starts = np.zeros(nb.size + 1, np.int64)
    np.cumsum(nb, out=starts[1:])
    out = np.empty(int(starts[-1]), np.uint8)
    _put_varints(out, starts[:-1], v.reshape(-1), nb)
    row_offsets = starts[::v.shape[1]] if v.shape[1] else np.zeros(v.shape[0] + 1, np.int64)
    return out, row_offsets


def encode_examples(int_features: Mapping[str, np.ndarray],
                    float_features: Mapping[str, np.ndarray] = ()) -> list[bytes]:
    """Serialize N ``tf.train.Example`` at once from feature matrices ([N, L] each): the same
    bytes as :func:`encode_example` row by row, every field assembled with numpy.

    Per row: ``0a len(features)`` then per feature ``0a len(entry) | key | 12 len(feature) |
    kind len(list) | 0a len(payload) | payload`` (key = ``0a len(name) name``; kind 1a for int64
    lists, 12 for float lists).
    """
    columns = []  # (key bytes, kind byte, payload bytes uint8, payload row offsets [N+1])
    for name, values in int_features.items():
        values = np.asarray(values)
        columns.append((length_delimited(1, name.encode()), 0x1A,
                        *_varint_rows(values.reshape(len(values), -1))))
    for name, values in dict(float_features).items():
        f = np.ascontiguousarray(values, dtype="<f4").reshape(len(values), -1)
        width = f.shape[1] * 4
        columns.append((length_delimited(1, name.encode()), 0x12,
                        np.frombuffer(f.tobytes(), np.uint8),
                        np.arange(f.shape[0] + 1, dtype=np.int64) * width))
    if not columns:
        return []
    n = len(columns[0][3]) - 1
    u = np.uint64
    sizes = []  # per column: (payload, list, feature, entry) lengths and their varint sizes
    total = np.zeros(n, np.int64)
    for key, _, _, offs in columns:
        p = np.diff(offs)
        l1 = 1 + _varint_sizes(p.astype(u)) + p
        l2 = 1 + _varint_sizes(l1.astype(u)) + l1
        l3 = len(key) + 1 + _varint_sizes(l2.astype(u)) + l2
        sizes.append((p, l1, l2, l3))
        total += 1 + _varint_sizes(l3.astype(u)) + l3
    head = _varint_sizes(total.astype(u))
    record = 1 + head + total
    base = np.zeros(n + 1, np.int64)
    np.cumsum(record, out=base[1:])
    out = np.empty(int(base[-1]), np.uint8)
    cur = base[:-1].copy()

    def const(data: bytes) -> None:
        out[cur[:, None] + np.arange(len(data))] = np.frombuffer(data, np.uint8)
        cur[:] += len(data)

    def varint(values: np.ndarray) -> None:
        nb = _varint_sizes(values.astype(u))
        _put_varints(out, cur, values.astype(u), nb)
        cur[:] += nb

    const(b"\x0a")
    varint(total)
    for (key, kind, payload, offs), (p, l1, l2, l3) in zip(columns, sizes):
        const(b"\x0a")
        varint(l3)
        const(key + b"\x12")
        varint(l2)
        const(bytes([kind]))
        varint(l1)
        const(b"\x0a")
        varint(p)
        dest = np.repeat(cur - offs[:-1], p) + np.arange(int(offs[-1]) - int(offs[0]),
                                                         dtype=np.int64) + int(offs[0])
        out[dest] = payload[int(offs[0]):int(offs[-1])]
        cur += p
    data = out.tobytes()
    return [data[base[i]:base[i + 1]] for i in range(n)]


def _decode_packed_varints(payload: bytes) -> np.ndarray:
    """Packed varints -> int64 array (vectorized)."""
    b = np.frombuffer(payload, dtype=np.uint8)
    if b.size == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero(b < 0x80)
    if ends.size == b.size:
        return b.astype(np.int64)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lens = ends - starts + 1
    values = np.zeros(ends.size, dtype=np.uint64)
    for j in range(int(lens.max())):
        sel = lens > j
        values[sel] |= (b[starts[sel] + j] & 0x7F).astype(np.uint64) << np.uint64(7 * j)
    return values.view(np.int64)


def _decode_list(buf: bytes, kind: int) -> np.ndarray | list[bytes]:
    ints, floats, raw = [], [], []
    for field, wire, value in fields(buf):
        if field != 1:
            continue
        if kind == 3:  # int64
            if wire == 2:
                ints.append(_decode_packed_varints(value))
            else:
                ints.append(np.asarray([value], dtype=np.uint64).view(np.int64))
        elif kind == 2:  # float: packed bytes, or one fixed32 per value
            floats.append(np.frombuffer(value, dtype="<f4") if wire == 2 else
                          np.asarray([value], dtype=np.uint32).view(np.float32))
        else:
            raw.append(bytes(value))
    if kind == 3:
        return np.concatenate(ints) if ints else np.zeros(0, dtype=np.int64)
    if kind == 2:
        return np.concatenate(floats).astype(np.float32) if floats else np.zeros(0, np.float32)
    return raw


def decode_example(data: bytes) -> dict[str, np.ndarray | list[bytes]]:
    """Parse a serialized ``tf.train.Example`` -> {name: int64 array | float32 array | [bytes]}."""
    out: dict = {}
    try:
        for field, _, features in fields(data):
            if field != 1:
                continue
            for f2, _, entry in fields(features):
                if f2 != 1:
                    continue
                name, value = "", None
                for f3, _, v in fields(entry):
                    if f3 == 1:
                        name = bytes(v).decode("utf-8")
                    elif f3 == 2:
                        value = v
                out[name] = np.zeros(0, dtype=np.int64)
                for kind, _, lst in fields(value or b""):
                    out[name] = _decode_list(lst, kind)
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise ValueError(f"not a tf.train.Example ({e})") from None
    return out

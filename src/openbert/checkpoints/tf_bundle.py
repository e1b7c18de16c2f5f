"""TensorFlow checkpoints ("tensor bundles") read and written without TensorFlow.

A checkpoint with prefix ``P`` is two kinds of file:

- ``P.index``: a leveldb-format SSTable. Its key ``""`` holds a ``BundleHeaderProto`` (number of
  data shards, endianness, version); every other key is a tensor name whose value is a
  ``BundleEntryProto`` (dtype, shape, shard id, offset, size, masked CRC32C of the bytes).
  The table is data blocks (prefix-compressed entries + restart array), an empty meta-index block,
  an index block of block handles, and a 48-byte footer ending in the magic 0xdb4775248b80fb57.
  Every block is followed by a 5-byte trailer: compression type (0) and the masked CRC32C of the
  block and its type byte.
- ``P.data-SSSSS-of-NNNNN``: the raw little-endian tensor bytes at the offsets the index gives.

:class:`TFCheckpointReader` checks every CRC it can (index blocks, each tensor); :func:`write_tf_checkpoint`
writes the same bytes TensorFlow's ``BundleWriter`` writes for the same tensors (16-entry restart
interval, 256 KiB blocks, shortest-separator index keys).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import torch

from ..errors import OpenBertError
from ..io.fileio import atomic_open
from ..io.protobuf import encode_varint, fields, masked_crc32c, read_varint, signed64

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # two block handles padded to 40 bytes + 8-byte magic
BLOCK_TRAILER_SIZE = 5
BLOCK_SIZE = 256 * 1024  # TensorFlow's table::Options default
RESTART_INTERVAL = 16
BUNDLE_VERSION = 1  # kTensorBundleVersion

# TF DataType enum -> torch dtype (little-endian fixed-width types only)
TF_DTYPES: dict[int, torch.dtype] = {
    1: torch.float32, 2: torch.float64, 3: torch.int32, 4: torch.uint8, 5: torch.int16, 6: torch.int8,
    9: torch.int64, 10: torch.bool, 14: torch.bfloat16, 19: torch.float16,
}
TORCH_TO_TF = {v: k for k, v in TF_DTYPES.items()}
TF_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
                  7: "string", 8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16",
                  18: "complex128", 19: "float16", 20: "resource", 21: "variant", 22: "uint32",
                  23: "uint64"}


# ---------------------------------------------------------------------------------------------
# index entries
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorEntry:
    """One tensor's ``BundleEntryProto``: where its bytes are and what they are."""

    name: str
    tf_dtype: int  # TF DataType enum value
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  # masked CRC32C of the tensor's bytes, as stored
    sliced: bool = False  # a partitioned variable (its slices are separate entries)

    @property
    def dtype_name(self) -> str:
        return TF_DTYPE_NAMES.get(self.tf_dtype, f"DataType({self.tf_dtype})")

    @property
    def dtype(self) -> torch.dtype | None:
        return TF_DTYPES.get(self.tf_dtype)


def _parse_shape(buf) -> tuple[int, ...]:
    dims = []
    for f, _, v in fields(buf):
        if f == 2:  # Dim
            size = 0
            for df, _, dv in fields(v):
                if df == 1:
                    size = signed64(dv)
            dims.append(size)
        elif f == 3 and v:
            raise ValueError("tensor shape of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, buf) -> TensorEntry:
    kw = dict(tf_dtype=0, shape=(), shard_id=0, offset=0, size=0, crc32c=0, sliced=False)
    for f, _, v in fields(buf):
        if f == 1:
            kw["tf_dtype"] = v
        elif f == 2:
            kw["shape"] = _parse_shape(v)
        elif f == 3:
            kw["shard_id"] = v
        elif f == 4:
            kw["offset"] = signed64(v)
        elif f == 5:
            kw["size"] = signed64(v)
        elif f == 6:
            kw["crc32c"] = v
        elif f == 7:
            kw["sliced"] = True
    return TensorEntry(name=name, **kw)


def _encode_entry(e: TensorEntry) -> bytes:
    """BundleEntryProto bytes, field order and defaults as TensorFlow serialises them."""
    dims = b"".join(b"\x12" + encode_varint(len(d)) + d for d in (b"\x08" + encode_varint(n) if n else b""
                                                             for n in e.shape))
    out = bytearray()
    if e.tf_dtype:
        out += b"\x08" + encode_varint(e.tf_dtype)
    out += b"\x12" + encode_varint(len(dims)) + dims
    if e.shard_id:
        out += b"\x18" + encode_varint(e.shard_id)
    if e.offset:
        out += b"\x20" + encode_varint(e.offset)
    if e.size:
        out += b"\x28" + encode_varint(e.size)
    out += b"\x35" + struct.pack("<I", e.crc32c)
    return bytes(out)


def _encode_header(num_shards: int) -> bytes:
    """BundleHeaderProto: num_shards, little endian (the default, omitted), version {producer 1}."""
    version = b"\x08" + encode_varint(BUNDLE_VERSION)
    return b"\x08" + encode_varint(num_shards) + b"\x1a" + encode_varint(len(version)) + version


# ---------------------------------------------------------------------------------------------
# SSTable reading
# ---------------------------------------------------------------------------------------------
class _Corrupt(ValueError):
    pass


def _block_entries(block) -> list[tuple[bytes, bytes]]:
    """A decoded block (without trailer) -> its (key, value) pairs in order."""
    if len(block) < 4:
        raise _Corrupt("block too short")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise _Corrupt("bad restart count")
    entries, key, pos = [], b"", 0
    while pos < limit:
        shared, pos = read_varint(block, pos)
        non_shared, pos = read_varint(block, pos)
        value_len, pos = read_varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise _Corrupt("bad block entry")
        key = key[:shared] + bytes(block[pos:pos + non_shared])
        pos += non_shared
        entries.append((key, bytes(block[pos:pos + value_len])))
        pos += value_len
    return entries


def _read_block(data: bytes, offset: int, size: int, path: str) -> memoryview:
    end = offset + size + BLOCK_TRAILER_SIZE
    if offset < 0 or end > len(data):
        raise _Corrupt(f"block at offset {offset} runs past the end of the file")
    block = memoryview(data)[offset:offset + size]
    kind = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if masked_crc32c(bytes(block) + data[offset + size:offset + size + 1]) != stored:
        raise OpenBertError(f"{path}: CRC32C mismatch in the index block at offset {offset}: "
                            "the file is corrupt; copy or download it again")
    if kind != 0:
        raise _Corrupt(f"compressed block (type {kind}); TensorFlow bundles are never compressed")
    return block


def read_index(path: str | os.PathLike) -> tuple[int, dict[str, TensorEntry]]:
    """Parse a ``.index`` file -> (number of data shards, {tensor name: TensorEntry}).

    Raises OpenBertError for a missing file, a file that is not a TF tensor-bundle index, or a
    CRC mismatch in one of its blocks.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise OpenBertError(f"checkpoint index not found: {path}") from None
    except IsADirectoryError:
        raise OpenBertError(f"{path} is a directory, not a checkpoint .index file") from None
    if len(data) < FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
        raise OpenBertError(f"{path} is not a TensorFlow checkpoint index (no SSTable footer magic); "
                            "pass the prefix of a TF checkpoint (e.g. .../bert_model.ckpt) written by "
                            "tf.train.Saver / tf.train.Checkpoint")
    try:
        footer = data[len(data) - FOOTER_SIZE:]
        _, pos = read_varint(footer, 0)  # meta-index handle (empty block, not needed)
        _, pos = read_varint(footer, pos)
        index_offset, pos = read_varint(footer, pos)
        index_size, pos = read_varint(footer, pos)
        index = _read_block(data, index_offset, index_size, path)
        num_shards, entries = 1, {}
        for _, handle in _block_entries(index):
            off, p = read_varint(handle, 0)
            size, _ = read_varint(handle, p)
            for key, value in _block_entries(_read_block(data, off, size, path)):
                if key == b"":
                    for fno, _, v in fields(value):
                        if fno == 1:
                            num_shards = v
                        elif fno == 2 and v != 0:
                            raise OpenBertError(f"{path}: big-endian checkpoints are not supported")
                    continue
                name = key.decode("utf-8")
                entries[name] = _parse_entry(name, value)
    except (_Corrupt, ValueError, struct.error, UnicodeDecodeError) as e:
        raise OpenBertError(f"{path} is corrupt or not a TensorFlow tensor-bundle index ({e}); "
                            "copy or download the checkpoint again") from None
    return num_shards, entries


def data_file_name(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


# ---------------------------------------------------------------------------------------------
# reader
# ---------------------------------------------------------------------------------------------
OPTIMIZER_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1", "/Momentum")
STEP_NAMES = ("global_step",)


def is_optimizer_state(name: str) -> bool:
    """Slots (``.../adam_m``, ``.../adam_v``) and ``global_step``: training state, not weights."""
    return name in STEP_NAMES or name.endswith(OPTIMIZER_SUFFIXES)


class TFCheckpointReader:
    """Read the tensors of a TF checkpoint ``prefix`` (``.../bert_model.ckpt``).

    ``entries`` maps every tensor name to its :class:`TensorEntry`; ``get_tensor(name)`` returns a
    CPU torch tensor after checking its size and CRC32C.
    """

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = os.fspath(prefix)
        self.index_path = self.prefix + ".index"
        self.num_shards, self.entries = read_index(self.index_path)
        self.data_paths = [data_file_name(self.prefix, i, self.num_shards) for i in range(self.num_shards)]
        self._sizes = {}
        for p in self.data_paths:
            if not os.path.isfile(p):
                raise OpenBertError(f"checkpoint data file missing: {p} (the index {self.index_path} "
                                    f"expects {self.num_shards} data shard(s) beside it)")
            self._sizes[p] = os.path.getsize(p)

    def names(self, include_optimizer: bool = False) -> list[str]:
        """Tensor names (sorted); optimizer slots and global_step only when asked."""
        return [n for n in self.entries if include_optimizer or not is_optimizer_state(n)]

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def get_tensor(self, name: str) -> torch.Tensor:
        try:
            e = self.entries[name]
        except KeyError:
            raise OpenBertError(f"tensor {name!r} is not in checkpoint {self.prefix}") from None
        if e.sliced:
            raise OpenBertError(f"{name!r} in {self.prefix} is a partitioned variable; merge its slices "
                                "with TensorFlow first (openbert reads whole tensors only)")
        if e.dtype is None:
            raise OpenBertError(f"tensor {name!r} in {self.prefix} has dtype {e.dtype_name}, which "
                                "openbert does not read")
        if not 0 <= e.shard_id < self.num_shards:
            raise OpenBertError(f"{self.index_path}: tensor {name!r} names shard {e.shard_id} of "
                                f"{self.num_shards}; the index is corrupt")
        path = self.data_paths[e.shard_id]
        expected = int(np.prod(e.shape, dtype=np.int64)) * torch.empty((), dtype=e.dtype).element_size()
        if e.size != expected:
            raise OpenBertError(f"{self.index_path}: tensor {name!r} has {e.size} bytes for shape "
                                f"{list(e.shape)} {e.dtype_name}; the index is corrupt")
        if e.offset + e.size > self._sizes[path]:
            raise OpenBertError(f"{path} is truncated: tensor {name!r} needs bytes {e.offset}.."
                                f"{e.offset + e.size} but the file has {self._sizes[path]}; copy or "
                                "download the checkpoint again")
        raw = bytearray(e.size)  # read straight into the buffer the tensor will own
        with open(path, "rb") as f:
            f.seek(e.offset)
            got = f.readinto(raw)
        if got != e.size:
            raise OpenBertError(f"{path} is truncated while reading tensor {name!r}")
        if masked_crc32c(raw) != e.crc32c:
            raise OpenBertError(f"CRC32C mismatch for tensor {name!r} in {path}: the data file is "
                                "corrupt; copy or download the checkpoint again")
        if e.size == 0:
            return torch.empty(e.shape, dtype=e.dtype)
        return torch.frombuffer(raw, dtype=e.dtype).reshape(e.shape)

    def read_all(self, include_optimizer: bool = False) -> dict[str, torch.Tensor]:
        """{name: tensor} for every tensor; optimizer slots and global_step only when asked."""
        return {n: self.get_tensor(n) for n in self.names(include_optimizer)}


# ---------------------------------------------------------------------------------------------
# SSTable writing (what TensorFlow's table::TableBuilder writes)
# ---------------------------------------------------------------------------------------------
def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    """leveldb BytewiseComparator::FindShortestSeparator."""
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n:
        b = start[i]
        if b < 0xFF and b + 1 < limit[i]:
            return start[:i] + bytes([b + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    """leveldb BytewiseComparator::FindShortSuccessor."""
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


class _BlockBuilder:
    def __init__(self, restart_interval: int):
        self.restart_interval = restart_interval
        self.reset()

    def reset(self):
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""

    def add(self, key: bytes, value: bytes):
        shared = 0
        if self.counter < self.restart_interval:
            n = min(len(self.last_key), len(key))
            while shared < n and self.last_key[shared] == key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        self.buf += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        self.buf += key[shared:] + value
        self.last_key = key
        self.counter += 1

    def size_estimate(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def empty(self) -> bool:
        return not self.buf

    def finish(self) -> bytes:
        return bytes(self.buf) + b"".join(struct.pack("<I", r) for r in self.restarts) + \
            struct.pack("<I", len(self.restarts))


def build_table(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Sorted (key, value) pairs -> the bytes of an uncompressed leveldb/TF SSTable."""
    out = bytearray()
    data = _BlockBuilder(RESTART_INTERVAL)
    index = _BlockBuilder(1)
    pending_handle = None
    last_key = b""

    def write_block(block: bytes) -> bytes:
        handle = encode_varint(len(out)) + encode_varint(len(block))
        out.extend(block)
        out.extend(b"\x00" + struct.pack("<I", masked_crc32c(block + b"\x00")))
        return handle

    for key, value in items:
        if pending_handle is not None:
            index.add(_shortest_separator(last_key, key), pending_handle)
            pending_handle = None
        data.add(key, value)
        last_key = key
        if data.size_estimate() >= BLOCK_SIZE:
            pending_handle = write_block(data.finish())
            data.reset()
    if not data.empty():
        pending_handle = write_block(data.finish())
    meta_handle = write_block(_BlockBuilder(RESTART_INTERVAL).finish())
    if pending_handle is not None:
        index.add(_short_successor(last_key), pending_handle)
    index_handle = write_block(index.finish())
    footer = meta_handle + index_handle
    footer += b"\x00" * (40 - len(footer)) + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out + footer)


def encode_index(entries: Iterable[TensorEntry], num_shards: int = 1) -> bytes:
    """The ``.index`` bytes for these entries (sorted by name, header first)."""
    items = [(b"", _encode_header(num_shards))]
    items += sorted((e.name.encode("utf-8"), _encode_entry(e)) for e in entries)
    return build_table(items)


def write_tf_checkpoint(prefix: str | os.PathLike, tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Write ``tensors`` as a one-shard TF checkpoint: ``prefix.index`` + ``prefix.data-00000-of-00001``.

    Tensors go into the data file in name order (as TensorFlow's Saver writes them). Both files
    are written atomically. Returns the paths written.
    """
    prefix = os.fspath(prefix)
    entries, offset = [], 0
    data_path = data_file_name(prefix, 0, 1)
    with atomic_open(data_path, "wb") as f:
        for name in sorted(tensors):
            t = tensors[name]
            if not isinstance(t, torch.Tensor):
                t = torch.as_tensor(t)
            if t.dtype not in TORCH_TO_TF:
                raise OpenBertError(f"cannot write tensor {name!r} of dtype {t.dtype} to a TF checkpoint")
            t = t.detach().cpu().contiguous()
            raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            f.write(raw)
            entries.append(TensorEntry(name=name, tf_dtype=TORCH_TO_TF[t.dtype], shape=tuple(t.shape),
                                       shard_id=0, offset=offset, size=len(raw), crc32c=masked_crc32c(raw)))
            offset += len(raw)
    index_path = prefix + ".index"
    with atomic_open(index_path, "wb") as f:
        f.write(encode_index(entries))
    return [index_path, data_path]


def write_checkpoint_state(directory: str | os.PathLike, prefix_name: str) -> str:
    """The ``checkpoint`` text file TF uses to find the latest prefix in ``directory``."""
    path = os.path.join(os.fspath(directory), "checkpoint")
    with atomic_open(path, "w") as f:
        f.write(f'model_checkpoint_path: "{prefix_name}"\nall_model_checkpoint_paths: "{prefix_name}"\n')
    return path


def read_checkpoint_state(directory: str | os.PathLike) -> str | None:
    """The prefix named by ``directory/checkpoint`` (absolute), or None when there is no such file."""
    path = os.path.join(os.fspath(directory), "checkpoint")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model_checkpoint_path":
                name = value.strip().strip('"')
                return name if os.path.isabs(name) else os.path.join(os.fspath(directory), name)
    raise OpenBertError(f"{path} has no model_checkpoint_path line; is it a TF checkpoint state file?")

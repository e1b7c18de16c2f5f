"""The small encodings that TensorFlow's files share: masked CRC32C and the protobuf wire format.

Both TFRecord files (:mod:`openbert.io.tfrecord`) and TF checkpoints
(:mod:`openbert.checkpoints.tf_bundle`) store ``masked_crc32c(x) = ((crc >> 15) | (crc << 17)) +
0xa282ead8`` (mod 2**32) over CRC32C, and protobuf messages (``tf.train.Example``,
``BundleEntryProto``): a message is a sequence of fields ``varint(field << 3 | wire type) value``.
"""
from __future__ import annotations

import struct
from typing import Iterator

import google_crc32c
import numpy as np

MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC32C of ``data`` that TFRecord files and TF checkpoints (leveldb tables) store."""
    # a numpy view passes a writable buffer (bytearray) to google_crc32c without a copy
    crc = google_crc32c.value(data if isinstance(data, bytes) else np.frombuffer(data, np.uint8))
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def read_varint(buf, pos: int) -> tuple[int, int]:
    """The varint at ``buf[pos:]`` -> (value, next position); ValueError when it is truncated."""
    result = shift = 0
    try:
        while True:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result, pos
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")
    except IndexError:
        raise ValueError("truncated varint") from None


def encode_varint(value: int) -> bytes:
    """``value`` as a varint; a negative int64 takes ten bytes (two's complement), as in protobuf."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def signed64(value: int) -> int:
    """A varint read as uint64 -> the int64 it encodes."""
    return value - (1 << 64) if value >= 1 << 63 else value


def length_delimited(field: int, payload: bytes) -> bytes:
    """One length-delimited field (wire type 2): key, length, payload."""
    return encode_varint((field << 3) | 2) + encode_varint(len(payload)) + payload


_FIXED = {1: struct.Struct("<Q"), 5: struct.Struct("<I")}


def fields(buf) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) for each field of one protobuf message.

    ``value`` is an int for varints (wire 0) and fixed64 / fixed32 (wires 1 and 5, unsigned
    little-endian) and a slice of ``buf`` for length-delimited fields (wire 2). A truncated
    message or an unknown wire type raises ValueError.
    """
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > n:
                raise ValueError("truncated length-delimited field")
            value = buf[pos:pos + length]
            pos += length
        elif wire in _FIXED:
            fixed = _FIXED[wire]
            if pos + fixed.size > n:
                raise ValueError("truncated fixed-width field")
            value = fixed.unpack_from(buf, pos)[0]
            pos += fixed.size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value

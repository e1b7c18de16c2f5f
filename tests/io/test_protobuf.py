"""io.protobuf: the masked CRC32C and the protobuf wire format that TF files share."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from openbert.io.protobuf import (encode_varint, fields, length_delimited, masked_crc32c, read_varint,
                                  signed64)


def test_masked_crc32c_known_values():
    # CRC32C("123456789") = 0xE3069283; TF masks it: rotate right 15, add 0xa282ead8
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"") == 0xA282EAD8
    data = bytearray(b"123456789")
    assert masked_crc32c(data) == masked_crc32c(memoryview(data)) == masked_crc32c(bytes(data))
    assert masked_crc32c(np.frombuffer(bytes(data), np.uint8)) == masked_crc32c(bytes(data))


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1, -2**63])
def test_varints_round_trip(value):
    raw = encode_varint(value)
    assert len(raw) == (10 if value < 0 else max(1, (value.bit_length() + 6) // 7))
    got, end = read_varint(raw + b"rest", 0)
    assert signed64(got) == value and end == len(raw)


def test_fields_of_every_wire_type():
    msg = (encode_varint(1 << 3 | 0) + encode_varint(150) + length_delimited(2, b"abc")
           + encode_varint(3 << 3 | 5) + struct.pack("<I", 7) + encode_varint(4 << 3 | 1) + struct.pack("<Q", 9))
    assert list(fields(msg)) == [(1, 0, 150), (2, 2, b"abc"), (3, 5, 7), (4, 1, 9)]


@pytest.mark.parametrize("msg", [b"\x08", b"\x08\x80", b"\x12\x05ab", b"\x1d\x01\x02", b"\x0b"])
def test_truncated_or_unknown_fields_are_value_errors(msg):
    with pytest.raises(ValueError):
        list(fields(msg))

"""TFRecord: records written by TensorFlow read back; our files round-trip; corruption is caught."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from openbert.errors import OpenBertError
from openbert.io import tfrecord as T


def test_reads_records_written_by_tensorflow(shared_data):
    path = shared_data / "tfrecord" / "pretraining_tiny.tfrecord"
    rows = json.loads((shared_data / "tfrecord" / "pretraining_tiny.json").read_text())
    records = [T.decode_example(r) for r in T.read_records(path)]
    assert len(records) == len(rows) == 5
    for rec, row in zip(records, rows):
        assert set(rec) == set(row)
        for key, values in row.items():
            assert rec[key].tolist() == values, key
        assert rec["masked_lm_weights"].dtype == np.float32
        assert rec["input_ids"].dtype == np.int64


def test_our_records_round_trip_and_match_tensorflow_sizes(shared_data, tmp_path):
    tf_path = shared_data / "tfrecord" / "pretraining_tiny.tfrecord"
    rows = json.loads((shared_data / "tfrecord" / "pretraining_tiny.json").read_text())
    out = tmp_path / "ours.tfrecord"
    with T.TFRecordWriter(out) as w:
        for row in rows:
            ints = {k: v for k, v in row.items() if k != "masked_lm_weights"}
            w.write(T.encode_example(ints, {"masked_lm_weights": row["masked_lm_weights"]}))
    ours = list(T.read_records(out))
    theirs = list(T.read_records(tf_path))
    # the same fields, packed the same way: equal sizes (TF orders map entries its own way)
    assert [len(r) for r in ours] == [len(r) for r in theirs]
    assert out.stat().st_size == tf_path.stat().st_size
    for rec, row in zip(ours, rows):
        dec = T.decode_example(rec)
        assert {k: dec[k].tolist() for k in dec} == row


def test_identical_bytes_when_copying_records(shared_data, tmp_path):
    tf_path = shared_data / "tfrecord" / "pretraining_tiny.tfrecord"
    out = tmp_path / "copy.tfrecord"
    with T.TFRecordWriter(out) as w:
        for r in T.read_records(tf_path):
            w.write(r)
    assert out.read_bytes() == tf_path.read_bytes()


def test_values_beyond_one_byte_negative_and_floats():
    ints = {"a": [0, 127, 128, 30521, 2**31, 2**40, -1, -(2**63)], "empty": []}
    floats = {"w": [1.0, 0.0, -2.5, 1e-3]}
    dec = T.decode_example(T.encode_example(ints, floats))
    assert dec["a"].tolist() == ints["a"] and dec["empty"].tolist() == []
    assert dec["w"].tolist() == np.asarray(floats["w"], np.float32).tolist()


def test_unpacked_int64_list_is_read():
    # Int64List{value: 3, value: 300} written unpacked (field 1, wire type 0, one key per value)
    int64_list = b"\x08\x03" + b"\x08\xac\x02"
    feature = b"\x1a" + bytes([len(int64_list)]) + int64_list
    entry = b"\x0a\x01x" + b"\x12" + bytes([len(feature)]) + feature
    features = b"\x0a" + bytes([len(entry)]) + entry
    example = b"\x0a" + bytes([len(features)]) + features
    assert T.decode_example(example)["x"].tolist() == [3, 300]


def test_corrupt_and_truncated_files(tmp_path):
    good = tmp_path / "g.tfrecord"
    with T.TFRecordWriter(good) as w:
        w.write(T.encode_example({"x": [1, 2, 3]}))
        w.write(T.encode_example({"x": [4]}))
    data = bytearray(good.read_bytes())
    bad = tmp_path / "bad.tfrecord"
    data[14] ^= 0xFF  # inside the first record's data
    bad.write_bytes(bytes(data))
    with pytest.raises(OpenBertError, match=r"bad\.tfrecord is corrupt at record 0 \(bad data"):
        T.index_records(bad)
    short = tmp_path / "short.tfrecord"
    short.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(OpenBertError, match="corrupt at record 1"):
        T.index_records(short)
    with pytest.raises(OpenBertError, match="cannot read TFRecord file"):
        T.index_records(tmp_path / "missing.tfrecord")
    first = len(T.encode_example({"x": [1, 2, 3]}))
    assert T.index_records(good).tolist() == [[12, first], [12 + first + 4 + 12, first - 2]]


def test_writer_is_atomic(tmp_path):
    out = tmp_path / "x.tfrecord"
    with pytest.raises(KeyError):
        with T.TFRecordWriter(out) as w:
            w.write(b"abc")
            raise KeyError("stop")
    assert list(tmp_path.iterdir()) == []


def test_record_framing():
    framed = T.frame_record(b"hello")
    length, crc = struct.unpack("<QI", framed[:12])
    assert length == 5 and crc == T.masked_crc32c(framed[:8])
    assert framed[12:17] == b"hello"
    assert struct.unpack("<I", framed[17:])[0] == T.masked_crc32c(b"hello")


def test_bulk_encoding_equals_one_by_one():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30522, (50, 32))
    ids[:, 20:] = 0
    ids[0, 0], ids[1, 1], ids[2, 2] = -5, 2**40, -(2**63)
    labels = rng.integers(0, 2, (50, 1))
    weights = rng.random((50, 4)).astype(np.float32)
    bulk = T.encode_examples({"input_ids": ids, "next_sentence_labels": labels},
                             {"masked_lm_weights": weights})
    one = [T.encode_example({"input_ids": ids[i].tolist(), "next_sentence_labels": labels[i].tolist()},
                            {"masked_lm_weights": weights[i]}) for i in range(50)]
    assert bulk == one
    assert T.decode_example(bulk[2])["input_ids"][:3].tolist() == ids[2, :3].tolist()
    # rows whose payloads straddle 127 bytes: one- and two-byte length prefixes at every level
    wide = rng.integers(0, 30522, (40, 90))
    wide[::2, 30:] = 0
    w = rng.random((40, 40)).astype(np.float32)
    bulk = T.encode_examples({"input_ids": wide}, {"w": w})
    assert bulk == [T.encode_example({"input_ids": wide[i].tolist()}, {"w": w[i]}) for i in range(40)]
    assert len({len(b) for b in bulk}) > 2 and max(len(b) for b in bulk) > 300


def _flip_inside_record(src, dst, record: int) -> None:
    """Copy a TFRecord file with one byte of a record's float payload changed: the proto stays
    valid (floats are fixed-size), only the data checksum can tell."""
    data = bytearray(open(src, "rb").read())
    start, length = T.index_records(src)[record]
    weights = np.asarray([1.0, 1.0], "<f4").tobytes()
    at = bytes(data[start:start + length]).find(weights)
    assert at >= 0
    data[start + at] ^= 0x01  # 1.0 -> 1.0000001: still a valid tf.train.Example
    open(dst, "wb").write(bytes(data))


def test_pretraining_input_checks_every_record_checksum_by_default(shared_data, tmp_path):
    from openbert.tasks.pretraining.data import PretrainingDataset

    bad = tmp_path / "flipped.tfrecord"
    _flip_inside_record(shared_data / "tfrecord" / "pretraining_tiny.tfrecord", bad, record=2)
    data = PretrainingDataset(str(bad), 16, 4)
    data[0], data[1]  # the good records read
    with pytest.raises(OpenBertError, match=r"flipped.tfrecord is corrupt at record 2 \(bad data checksum\)"):
        data[2]
    unchecked = PretrainingDataset(str(bad), 16, 4, verify_crc=False)
    assert unchecked[2]["input_ids"].size  # without the check the damage would go unseen

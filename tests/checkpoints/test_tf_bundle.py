"""TF tensor bundles without TensorFlow: real TF-written fixtures, real Google index files, corruption."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from openbert.checkpoints.tf_bundle import (TFCheckpointReader, encode_index, read_checkpoint_state,
                                            read_index, write_checkpoint_state, write_tf_checkpoint)
from openbert.errors import OpenBertError


@pytest.fixture
def tiny_tf(shared_data):
    return shared_data / "checkpoints" / "tiny_tf"


@pytest.fixture
def copy_of_tiny(tiny_tf, tmp_path):
    for f in tiny_tf.iterdir():
        shutil.copy(f, tmp_path / f.name)
        (tmp_path / f.name).chmod(0o644)
    return tmp_path


def test_tiny_tf_every_tensor_equals_tensorflow_values(tiny_tf):
    reader = TFCheckpointReader(tiny_tf / "bert_model.ckpt")
    expected = np.load(tiny_tf / "variables.npz")
    assert sorted(reader.names()) == sorted(expected.keys())
    for name in expected.keys():
        t = reader.get_tensor(name)
        assert t.dtype == torch.float32
        np.testing.assert_array_equal(t.numpy(), expected[name], err_msg=name)


def test_tiny_tf_slots_and_global_step_on_request(tiny_tf):
    reader = TFCheckpointReader(tiny_tf / "bert_model.ckpt")
    names = reader.names(include_optimizer=True)
    assert "global_step" in names and "global_step" not in reader.names()
    assert reader.get_tensor("global_step").item() == 1234
    assert reader.get_tensor("global_step").dtype == torch.int64
    slots = [n for n in names if n.endswith(("/adam_m", "/adam_v"))]
    assert len(slots) == 2 * len(reader.names())
    m = reader.get_tensor("bert/pooler/dense/kernel/adam_m")
    v = reader.get_tensor("bert/pooler/dense/kernel/adam_v")
    assert torch.all(m == np.float32(0.001)) and torch.all(v == np.float32(0.0001))
    assert set(reader.read_all(include_optimizer=True)) == set(names)


def test_dtypes_tf_every_dtype_exact(shared_data):
    folder = shared_data / "checkpoints" / "dtypes_tf"
    reader = TFCheckpointReader(folder / "model.ckpt")
    expected = json.loads((folder / "expected.json").read_text())
    assert sorted(reader.entries) == sorted(expected)
    for name, exp in expected.items():
        t = reader.get_tensor(name)
        assert str(t.dtype) == f"torch.{exp['dtype']}", name
        assert list(t.shape) == exp["shape"], name
        if exp["dtype"] == "int64":
            assert t.reshape(-1).tolist() == [int(v) for v in exp["values"]]
        else:
            assert t.double().reshape(-1).tolist() == exp["values"], name


@pytest.mark.parametrize("model", ["uncased_L-4_H-256_A-4", "chinese_L-12_H-768_A-12"])
def test_google_index_files_parse_to_variables_txt(shared_data, model):
    folder = shared_data / "checkpoints" / "google_index_only" / model
    num_shards, entries = read_index(folder / "bert_model.ckpt.index")
    assert num_shards == 1
    rows = (folder / "variables.txt").read_text().splitlines()
    assert len(rows) == len(entries)
    for row in rows:
        m = re.match(r"^(\S+) (\w+) \[([\d, ]*)\] offset=(\d+) size=(\d+)$", row)
        name, dtype, shape, offset, size = m.groups()
        e = entries[name]
        assert e.dtype_name == dtype
        assert list(e.shape) == [int(s) for s in shape.split(",") if s.strip()]
        assert (e.offset, e.size) == (int(offset), int(size))


@pytest.mark.parametrize("model", ["uncased_L-4_H-256_A-4", "chinese_L-12_H-768_A-12"])
def test_index_writer_reproduces_google_index_bytes(shared_data, model):
    path = shared_data / "checkpoints" / "google_index_only" / model / "bert_model.ckpt.index"
    num_shards, entries = read_index(path)
    assert encode_index(entries.values(), num_shards) == path.read_bytes()


@pytest.mark.parametrize("fixture,prefix", [("tiny_tf", "bert_model.ckpt"), ("dtypes_tf", "model.ckpt")])
def test_writer_reproduces_tensorflow_files_byte_for_byte(shared_data, tmp_path, fixture, prefix):
    src = shared_data / "checkpoints" / fixture / prefix
    reader = TFCheckpointReader(src)
    write_tf_checkpoint(tmp_path / "out", {n: reader.get_tensor(n) for n in reader.entries})
    assert (tmp_path / "out.index").read_bytes() == src.with_name(prefix + ".index").read_bytes()
    assert (tmp_path / "out.data-00000-of-00001").read_bytes() == \
        src.with_name(prefix + ".data-00000-of-00001").read_bytes()


def test_many_tensors_span_several_blocks_and_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {f"scope_{i:04d}/weights/with/a/long/name": torch.randn(3, generator=g) for i in range(6000)}
    tensors["big"] = torch.randn(300, 500, generator=g).to(torch.bfloat16)
    write_tf_checkpoint(tmp_path / "m.ckpt", tensors)
    assert (tmp_path / "m.ckpt.index").stat().st_size > 256 * 1024  # more than one data block
    reader = TFCheckpointReader(tmp_path / "m.ckpt")
    assert sorted(reader.entries) == sorted(tensors)
    for name in ("scope_0000/weights/with/a/long/name", "scope_5999/weights/with/a/long/name", "big"):
        assert torch.equal(reader.get_tensor(name), tensors[name])


def test_checkpoint_state_file(tmp_path):
    write_checkpoint_state(tmp_path, "bert_model.ckpt")
    assert read_checkpoint_state(tmp_path) == str(tmp_path / "bert_model.ckpt")
    assert read_checkpoint_state(tmp_path / "nothing") is None


# ---- corruption ------------------------------------------------------------------------------
def test_flipped_byte_in_data_names_the_tensor(copy_of_tiny):
    reader = TFCheckpointReader(copy_of_tiny / "bert_model.ckpt")
    e = reader.entries["bert/pooler/dense/kernel"]
    data = copy_of_tiny / "bert_model.ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[e.offset + 5] ^= 0x01
    data.write_bytes(bytes(raw))
    reader = TFCheckpointReader(copy_of_tiny / "bert_model.ckpt")
    with pytest.raises(OpenBertError, match=r"CRC32C mismatch for tensor 'bert/pooler/dense/kernel'"):
        reader.get_tensor("bert/pooler/dense/kernel")
    reader.get_tensor("bert/pooler/dense/bias")  # the others are intact


def test_truncated_data_file(copy_of_tiny):
    data = copy_of_tiny / "bert_model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    reader = TFCheckpointReader(copy_of_tiny / "bert_model.ckpt")
    with pytest.raises(OpenBertError, match="truncated"):
        reader.read_all()


def test_flipped_byte_in_index_is_a_block_crc_error(copy_of_tiny):
    index = copy_of_tiny / "bert_model.ckpt.index"
    raw = bytearray(index.read_bytes())
    raw[40] ^= 0x20
    index.write_bytes(bytes(raw))
    with pytest.raises(OpenBertError, match="CRC32C mismatch in the index block"):
        TFCheckpointReader(copy_of_tiny / "bert_model.ckpt")


def test_index_of_another_format(tmp_path):
    (tmp_path / "x.ckpt.index").write_bytes(b"PK\x03\x04" + b"\x00" * 100)  # a zip, not an SSTable
    with pytest.raises(OpenBertError, match="not a TensorFlow checkpoint index"):
        TFCheckpointReader(tmp_path / "x.ckpt")


def test_missing_index_and_missing_data_file(copy_of_tiny):
    with pytest.raises(OpenBertError, match="checkpoint index not found"):
        TFCheckpointReader(copy_of_tiny / "other.ckpt")
    (copy_of_tiny / "bert_model.ckpt.data-00000-of-00001").unlink()
    with pytest.raises(OpenBertError, match=r"data file missing: .*data-00000-of-00001"):
        TFCheckpointReader(copy_of_tiny / "bert_model.ckpt")


def test_unknown_tensor_name(tiny_tf):
    with pytest.raises(OpenBertError, match="'nope' is not in checkpoint"):
        TFCheckpointReader(tiny_tf / "bert_model.ckpt").get_tensor("nope")

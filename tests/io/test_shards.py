"""openbert shards: written by create-pretraining-data, read back equal to the TFRecord output."""
from __future__ import annotations

import json

import numpy as np
import pytest

from openbert.errors import OpenBertError
from openbert.io.shards import Shards
from openbert.io.tfrecord import decode_example, read_records
from openbert.tasks.pretraining import data as P
from openbert.tokenization.wordpiece import FullTokenizer


@pytest.fixture(scope="module")
def made(shared_data, tmp_path_factory):
    """The same 500 Shakespeare lines written as shards and as two TFRecord files."""
    tmp = tmp_path_factory.mktemp("shards")
    lines = (shared_data / "corpus" / "tinyshakespeare.txt").read_text().split("\n")[:500]
    text = tmp / "s.txt"
    text.write_text("\n".join(lines) + "\n")
    tok = FullTokenizer(str(shared_data / "vocab" / "bert-base-uncased-vocab.txt"), True)
    cfg = P.PretrainingDataConfig(dupe_factor=2, max_seq_length=64, max_predictions_per_seq=10)
    P.create_pretraining_data(str(text), str(tmp / "shards"), tok, cfg, progress=False)
    P.create_pretraining_data(str(text), f"{tmp / 'a.tfrecord'},{tmp / 'b.tfrecord'}", tok, cfg,
                              output_format="tfrecord", progress=False)
    return tmp, cfg


def test_layout_and_meta(made):
    tmp, cfg = made
    meta = json.loads((tmp / "shards" / "meta.json").read_text())
    assert meta["format"] == "openbert-pretraining-shards" and meta["version"] == 1
    assert meta["max_seq_length"] == 64 and meta["max_predictions_per_seq"] == 10
    assert meta["vocab_size"] == 30522 and meta["mask_id"] == 103 and meta["cls_id"] == 101
    assert meta["shards"][0]["seed"] == cfg.random_seed
    d = tmp / "shards" / "shard_00000"
    ids = np.load(d / "input_ids.npy")
    assert ids.dtype == np.uint16
    offsets = np.load(d / "offsets.npy")
    assert offsets[-1] == len(ids) and len(offsets) == meta["num_instances"] + 1
    # no padding stored: every instance ends with [SEP] (102)
    assert (ids[offsets[1:] - 1] == 102).all() and (ids[offsets[:-1]] == 101).all()


def test_shards_equal_tfrecord_features(made):
    tmp, cfg = made
    shards = Shards(str(tmp / "shards"))
    recs = [decode_example(r) for f in ("a", "b") for r in read_records(tmp / f"{f}.tfrecord")]
    # round-robin over two files: a holds instances 0, 2, 4 ...; b holds 1, 3, 5 ...
    n = len(shards)
    order = list(range(0, n, 2)) + list(range(1, n, 2))
    assert len(recs) == n
    arrays = P.InstanceArrays(*(np.concatenate([s[k] for s in shards.shards])
                                for k in ("input_ids", "offsets", "a_lengths", "masked_lm_positions",
                                          "masked_lm_ids", "mlm_offsets", "next_sentence_labels")))
    padded = arrays.padded(64, 10)
    for rec, i in zip(recs, order):
        for key in rec:
            assert np.array_equal(rec[key], padded[key][i].reshape(-1)), key
        ex = shards.instance(i)
        k = int(rec["input_mask"].sum())
        assert np.array_equal(ex["input_ids"], rec["input_ids"][:k])
        assert np.array_equal(ex["segment_ids"], rec["segment_ids"][:k])
        m = int(rec["masked_lm_weights"].sum())
        assert np.array_equal(ex["masked_lm_ids"], rec["masked_lm_ids"][:m])
        assert ex["next_sentence_labels"] == rec["next_sentence_labels"][0]


def test_dataset_reads_shards_and_tfrecords_alike(made):
    tmp, _ = made
    a = P.PretrainingDataset(str(tmp / "shards"), 64, 10)
    b = P.PretrainingDataset(f"{tmp / 'a.tfrecord'},{tmp / 'b.tfrecord'}", 64, 10)
    assert len(a) == len(b) and b.lengths is None and len(a.lengths) == len(a)
    x, y = a[2], b[1]  # instance 2 is the second record of a.tfrecord
    assert all(np.array_equal(x[k], y[k]) for k in x)


def test_mismatched_flags_are_an_error(made):
    tmp, _ = made
    with pytest.raises(OpenBertError, match="created with --max_seq_length=64 but --max_seq_length=128"):
        P.PretrainingDataset(str(tmp / "shards"), 128, 10)
    with pytest.raises(OpenBertError, match="--max_predictions_per_seq=10 but"):
        P.PretrainingDataset(str(tmp / "a.tfrecord"), 64, 20)


def test_unreadable_and_inconsistent_shards(made, tmp_path):
    import shutil

    tmp, _ = made
    broken = tmp_path / "broken"
    shutil.copytree(tmp / "shards", broken)
    (broken / "shard_00000" / "offsets.npy").write_bytes(b"not numpy")
    with pytest.raises(OpenBertError, match=r"unreadable shard file .*offsets\.npy"):
        Shards(str(broken))
    short = tmp_path / "short"
    shutil.copytree(tmp / "shards", short)
    ids = np.load(short / "shard_00000" / "input_ids.npy")
    np.save(short / "shard_00000" / "input_ids.npy", ids[:-5])
    with pytest.raises(OpenBertError, match="inconsistent"):
        Shards(str(short))
    (tmp_path / "nometa").mkdir()
    with pytest.raises(OpenBertError, match="without meta.json"):
        P.PretrainingDataset(str(tmp_path / "nometa"), 64, 10)
    with pytest.raises(OpenBertError, match="cannot read shard directory"):
        Shards(str(tmp_path / "nometa"))


def test_output_is_atomic_and_never_overwrites_other_files(shared_data, tmp_path):
    tok = FullTokenizer(str(shared_data / "vocab" / "bert-base-uncased-vocab.txt"), True)
    bad = tmp_path / "bad.txt"
    bad.write_text("only one document\n")
    with pytest.raises(OpenBertError):
        P.create_pretraining_data(str(bad), str(tmp_path / "out"), tok, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "precious.txt").write_text("keep me")
    good = tmp_path / "good.txt"
    good.write_text("a b c\n\nd e f\n")
    with pytest.raises(OpenBertError, match="not an openbert shard directory"):
        P.create_pretraining_data(str(good), str(taken), tok, progress=False)
    assert (taken / "precious.txt").read_text() == "keep me"


# ---- the output is replaced only when it is openbert's own, never an input ------------------
def _cpd(tmp_path, shared_data, *flags):
    from openbert.cli import main

    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text("a b c .\nd e f .\n\ng h i .\nj k l .\n")
    flags = [f.replace("CORPUS", str(corpus)) for f in flags]
    if not any(f.startswith("--input_file") for f in flags):
        flags.append(f"--input_file={corpus}")
    return main(["create-pretraining-data", f"--vocab_file={shared_data / 'vocab' / 'bert-base-uncased-vocab.txt'}",
                 "--max_seq_length=32", "--max_predictions_per_seq=5", "--progress=false", *flags])


def test_shard_folder_with_the_users_files_is_refused_and_kept(shared_data, tmp_path, capsys):
    out = tmp_path / "out"
    assert _cpd(tmp_path, shared_data, f"--output_file={out}") == 0
    (out / "notes.txt").write_text("mine")  # a folder that holds meta.json and the user's file
    assert _cpd(tmp_path, shared_data, f"--output_file={out}") == 2
    assert "notes.txt" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"
    assert (out / "meta.json").is_file()


def test_the_input_corpus_inside_the_output_folder_is_never_deleted(shared_data, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "corpus.txt").write_text("a b c .\nd e f .\n\ng h i .\n")
    assert _cpd(tmp_path, shared_data, f"--input_file={folder / 'corpus.txt'}", f"--output_file={folder}") == 2
    assert "an input of this command" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["corpus.txt"]


def test_an_earlier_shard_output_is_replaced_whole(shared_data, tmp_path):
    out = tmp_path / "out"
    two = tmp_path / "two.txt"
    two.write_text("m n o .\np q r .\n\ns t u .\nv w x .\n")
    assert _cpd(tmp_path, shared_data, f"--input_file=CORPUS,{two}", f"--output_file={out}") == 0
    assert (out / "shard_00001").is_dir()
    assert _cpd(tmp_path, shared_data, f"--output_file={out}") == 0  # one file: one shard now
    assert not (out / "shard_00001").exists() and Shards(str(out)).meta["shards"][0]["source"].endswith("corpus.txt")


def test_a_shard_folder_written_before_manifests_is_still_replaced(shared_data, tmp_path):
    out = tmp_path / "out"
    assert _cpd(tmp_path, shared_data, f"--output_file={out}") == 0
    (out / ".openbert-manifest.json").unlink()
    assert _cpd(tmp_path, shared_data, f"--output_file={out}", "--random_seed=7") == 0
    assert Shards(str(out)).meta["random_seed"] == 7


def test_tfrecord_output_replaces_only_a_tfrecord(shared_data, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert _cpd(tmp_path, shared_data, "--output_format=tfrecord", f"--output_file={notes}") == 2
    assert "notes.txt exists and is not a TFRecord file" in capsys.readouterr().err
    assert notes.read_text() == "my notes"
    rec = tmp_path / "missing" / "folder" / "data.tfrecord"  # a missing folder is created
    assert _cpd(tmp_path, shared_data, "--output_format=tfrecord", f"--output_file={rec}") == 0
    first = rec.read_bytes()
    assert _cpd(tmp_path, shared_data, "--output_format=tfrecord", f"--output_file={rec}",
                "--random_seed=3") == 0  # an existing TFRecord file is replaced
    assert rec.read_bytes() != first
    assert _cpd(tmp_path, shared_data, "--output_format=tfrecord", "--output_file=CORPUS") == 2
    assert "also an input" in capsys.readouterr().err

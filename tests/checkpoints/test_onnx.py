"""ONNX export: onnxruntime runs the file (dynamic batch and sequence) and matches openbert on
padded batches, for the encoder and the heads; `openbert convert --to onnx`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript", reason="ONNX export needs onnx and onnxscript (openbert[onnx])")
ort = pytest.importorskip("onnxruntime", reason="the ONNX tests run the file with onnxruntime")

from openbert.checkpoints.onnx import HEADS, export_onnx, head_of_checkpoint  # noqa: E402
from openbert.cli import main  # noqa: E402
from openbert.errors import OpenBertError  # noqa: E402
from openbert.model.bert import BertForSequenceClassification, BertModel  # noqa: E402


def _batches(vocab: int, seed: int = 0):
    """Padded batches of several shapes: [B, S] ids, mask (row 0 half padding), segments."""
    g = torch.Generator().manual_seed(seed)
    for bsz, seq in ((3, 9), (1, 5), (6, 33)):
        ids = torch.randint(1, vocab, (bsz, seq), generator=g)
        mask = torch.ones_like(ids)
        mask[0, seq // 2:] = 0
        if bsz > 2:
            mask[2, seq - 2:] = 0
        segs = (torch.arange(seq)[None, :] >= seq // 3).long().expand(bsz, seq).contiguous() * mask
        yield ids, mask, segs


def _run(session, ids, mask, segs):
    return session.run(None, {"input_ids": ids.numpy(), "input_mask": mask.numpy(),
                              "segment_ids": segs.numpy()})


@pytest.mark.parametrize("head", ["encoder", "sequence_classification", "question_answering", "pretraining"])
def test_onnxruntime_matches_openbert_on_padded_batches(tiny_config, tmp_path, head):
    torch.manual_seed(0)
    cls, names = HEADS[head]
    model = (cls(tiny_config, num_labels=3) if cls is BertForSequenceClassification else cls(tiny_config)).eval()
    path = export_onnx(model, tmp_path, head)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "input_mask", "segment_ids"]
    assert [o.name for o in session.get_outputs()] == list(names)
    for ids, mask, segs in _batches(tiny_config.vocab_size):
        with torch.no_grad():
            out = model(ids, mask, segs)
        real = mask.bool().numpy()
        for name, got in zip(names, _run(session, ids, mask, segs)):
            want = getattr(out, name).numpy()
            assert got.shape == want.shape, name
            if got.ndim >= 2 and got.shape[:2] == ids.shape:  # per token: real positions only
                got, want = got[real], want[real]
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=name)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [cls.hf_architecture]
    assert (tmp_path / "bert_config.json").is_file()


def test_export_checks_the_head(tiny_config, tmp_path):
    with pytest.raises(OpenBertError, match="unknown ONNX head 'ner'"):
        export_onnx(BertModel(tiny_config), tmp_path, "ner")
    with pytest.raises(OpenBertError, match="the question_answering head needs a BertForQuestionAnswering"):
        export_onnx(BertModel(tiny_config), tmp_path, "question_answering")
    assert head_of_checkpoint({"classifier.weight": None}, tmp_path / "absent") == "sequence_classification"
    assert head_of_checkpoint({}, tmp_path / "absent") == "encoder"


def test_convert_to_onnx_writes_model_config_and_vocab(minilm_dir, shared_data, tmp_path, capsys):
    """The real MiniLM-L6 through the command: the encoder, vocab.txt and config beside it."""
    out = tmp_path / "onnx"
    assert main(["convert", "--input", str(minilm_dir), "--output", str(out), "--to", "onnx"]) == 0
    assert "exported BertModel (encoder)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".openbert-manifest.json", "bert_config.json", "config.json",
                                                     "model.onnx", "vocab.txt"]
    model = BertModel.from_pretrained(minilm_dir).eval()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for ids, mask, segs in _batches(model.config.vocab_size, seed=1):
        with torch.no_grad():
            want = model(ids, mask, segs)
        seq, pooled = _run(session, ids, mask, segs)
        real = mask.bool().numpy()
        np.testing.assert_allclose(seq[real], want.sequence_output.numpy()[real], atol=1e-4, rtol=0)
        np.testing.assert_allclose(pooled, want.pooled_output.numpy(), atol=1e-4, rtol=0)


def test_convert_head_flag_only_for_onnx(tmp_path, tiny_config):
    BertModel(tiny_config).save_pretrained(tmp_path / "m")
    assert main(["convert", "--input", str(tmp_path / "m"), "--output", str(tmp_path / "tf"),
                 "--head", "encoder"]) == 2


def test_export_is_all_or_nothing(tiny_config, tmp_path, monkeypatch):
    """A failed export leaves the folder as it was; a user's file beside it is never replaced."""
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    path = export_onnx(BertModel(tiny_config).eval(), out)
    assert sorted(p.name for p in out.iterdir()) == [".openbert-manifest.json", "bert_config.json",
                                                     "config.json", "model.onnx", "notes.txt"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken_save(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.onnx.ONNXProgram, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export_onnx(BertModel(tiny_config).eval(), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]  # no staging folder left
    assert path == str(out / "model.onnx")


def test_convert_to_onnx_refuses_a_foreign_folder(tiny_config, tmp_path):
    BertModel(tiny_config).save_pretrained(tmp_path / "m")
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "data.csv").write_text("a,b")
    assert main(["convert", "--input", str(tmp_path / "m"), "--output", str(out), "--to", "onnx"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["data.csv"]

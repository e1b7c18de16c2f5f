"""checkpoints: the TF <-> torch name map, load_pretrained / save_pretrained in every layout,
real-weight parity with HF transformers, exact round trips, clear errors."""
from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from openbert.checkpoints import names
from openbert.checkpoints import pretrained as checkpoints
from openbert.checkpoints.tf_bundle import TFCheckpointReader
from openbert.config import BertConfig
from openbert.errors import OpenBertError
from openbert.model.bert import (BertForMultipleChoice, BertForPreTraining,
                                 BertForQuestionAnswering, BertForSequenceClassification,
                                 BertForTokenClassification, BertModel)


@pytest.fixture
def tiny_tf(shared_data):
    return shared_data / "checkpoints" / "tiny_tf"


def _tiny_config():
    return BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=32, max_position_embeddings=24, type_vocab_size=2)


# ---- TF checkpoints ---------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["prefix", "index_file", "folder"])
def test_tf_checkpoint_loads_exactly(tiny_tf, form):
    path = {"prefix": tiny_tf / "bert_model.ckpt", "index_file": tiny_tf / "bert_model.ckpt.index",
            "folder": tiny_tf}[form]
    model = BertForPreTraining.from_pretrained(path)
    expected = np.load(tiny_tf / "variables.npz")
    state = model.state_dict()
    assert len(state) == len(expected.files)
    for name, value in state.items():
        tf, transpose = names.tf_name(name)
        want = torch.from_numpy(expected[tf])
        assert torch.equal(value, want.t() if transpose else want), name
    assert model.config.gelu_form == "tanh"  # a bert_config.json means the original's tanh GELU


def test_google_release_folder_without_checkpoint_file(tiny_tf, tmp_path):
    for f in ("bert_config.json", "bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001"):
        shutil.copy(tiny_tf / f, tmp_path / f)
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    model = BertModel.from_pretrained(tmp_path)
    assert model.config.hidden_size == 16
    assert checkpoints.find_vocab(tmp_path / "bert_model.ckpt") == str(tmp_path / "vocab.txt")
    assert checkpoints.find_config(tmp_path / "bert_model.ckpt") == str(tmp_path / "bert_config.json")


def test_head_missing_from_checkpoint_is_initialised_and_logged(tiny_tf, caplog):
    with caplog.at_level(logging.WARNING, logger="openbert.checkpoints"):
        model = BertForSequenceClassification.from_pretrained(tiny_tf, num_labels=3)
    assert "classifier.weight" in caplog.text and "initialised fresh" in caplog.text
    assert model.classifier.weight.shape == (3, 16)
    assert torch.all(model.classifier.bias == 0) and model.classifier.weight.std() > 0


def test_fresh_head_for_training_is_info_anything_else_a_warning(tmp_path, caplog):
    """Fine-tuning from an encoder: the fresh head is expected (INFO); a fresh pooler, or an
    untrained head used as it is, stays a warning."""
    BertModel(_tiny_config(), add_pooling_layer=False).save_pretrained(tmp_path)
    with caplog.at_level(logging.INFO, logger="openbert.checkpoints"):
        BertForSequenceClassification.from_pretrained(tmp_path, num_labels=2, fresh_head_expected=True)
    levels = {r.getMessage().split(": ")[1]: r.levelname for r in caplog.records}
    assert levels == {"fresh task head, to be trained": "INFO", "not in the checkpoint, initialised fresh": "WARNING"}
    assert [r for r in caplog.records if r.levelname == "WARNING"][0].getMessage().endswith(
        "bert.pooler.dense.weight, bert.pooler.dense.bias")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="openbert.checkpoints"):
        BertForSequenceClassification.from_pretrained(tmp_path, num_labels=2)  # not for training
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "classifier.weight" in warning.getMessage() and "pooler" in warning.getMessage()


def test_config_checkpoint_shape_mismatch_names_tensor_and_shapes(tiny_tf):
    wrong = _tiny_config().replace(intermediate_size=64)
    with pytest.raises(OpenBertError) as err:
        BertModel.from_pretrained(tiny_tf, config=wrong)
    msg = str(err.value)
    assert "bert/encoder/layer_0/intermediate/dense/" in msg
    assert "has [32]" in msg and "expects [64]" in msg and "bert_model.ckpt.index" in msg


def test_missing_encoder_tensors_are_an_error(tiny_tf):
    with pytest.raises(OpenBertError, match="lacks 16 encoder tensor"):
        BertModel.from_pretrained(tiny_tf, config=_tiny_config().replace(num_hidden_layers=3))


def test_missing_checkpoint_and_missing_config(tmp_path):
    with pytest.raises(OpenBertError, match="checkpoint not found"):
        BertModel.from_pretrained(tmp_path / "nope" / "bert_model.ckpt", config=_tiny_config())
    save_file({"x": torch.zeros(1)}, tmp_path / "model.safetensors")
    with pytest.raises(OpenBertError, match="no bert_config.json or config.json"):
        BertModel.from_pretrained(tmp_path)


def test_corrupt_safetensors_is_a_clear_error(tmp_path):
    _tiny_config().to_json_file(tmp_path / "bert_config.json")
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(OpenBertError, match="cannot read weights"):
        BertModel.from_pretrained(tmp_path)


# ---- HF layouts -------------------------------------------------------------------------------
def test_base_and_head_layouts_load_both_ways(tmp_path):
    torch.manual_seed(0)
    base = BertModel(_tiny_config())
    base.save_pretrained(tmp_path / "base")
    assert not any(k.startswith("bert.") for k in load_file(tmp_path / "base" / "model.safetensors"))
    head = BertForSequenceClassification.from_pretrained(tmp_path / "base")  # no prefix -> prefix
    assert torch.equal(head.bert.encoder.layer[1].output.dense.weight, base.encoder.layer[1].output.dense.weight)
    head.save_pretrained(tmp_path / "head")
    assert all(k.startswith(("bert.", "classifier.")) for k in load_file(tmp_path / "head" / "model.safetensors"))
    back = BertModel.from_pretrained(tmp_path / "head")  # prefix -> no prefix
    for k, v in base.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_pytorch_model_bin_and_num_labels_from_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = BertForSequenceClassification(_tiny_config(), num_labels=5)
    model.config.to_hf_json_file(tmp_path / "config.json", "BertForSequenceClassification")
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    loaded = BertForSequenceClassification.from_pretrained(tmp_path)
    assert loaded.num_labels == 5
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


@pytest.mark.parametrize("cls,kwargs", [(BertForQuestionAnswering, {}), (BertForTokenClassification,
                                                                        {"num_labels": 9}),
                                        (BertForMultipleChoice, {})])
def test_every_head_saves_and_reloads_exactly(tmp_path, cls, kwargs):
    torch.manual_seed(0)
    model = cls(_tiny_config(), **kwargs)
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_save_pretrained_writes_both_configs_and_vocab(tmp_path, shared_data):
    vocab = shared_data / "vocab" / "bert-base-uncased-vocab.txt"
    config = _tiny_config().replace(gelu_form="erf")
    BertModel(config).save_pretrained(tmp_path, vocab_file=vocab)
    assert (tmp_path / "vocab.txt").read_bytes() == vocab.read_bytes()
    assert BertConfig.from_json_file(tmp_path / "bert_config.json") == config
    assert BertConfig.from_json_file(tmp_path / "config.json") == config


# ---- transformers interop ---------------------------------------------------------------------
def _batch(vocab_size, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (3, 12), generator=g)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    segs = (torch.arange(12) >= 6).long().expand(3, -1).contiguous()
    return ids, mask, segs


def test_transformers_loads_pretraining_export_with_same_outputs(tiny_tf, tmp_path):
    transformers = pytest.importorskip("transformers")
    ours = BertForPreTraining.from_pretrained(tiny_tf).eval()
    ours.save_pretrained(tmp_path)
    hf, info = transformers.BertForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf.eval()
    ids, mask, segs = _batch(50)
    with torch.no_grad():
        o = ours(ids, mask, segs)
        h = hf(input_ids=ids, attention_mask=mask, token_type_ids=segs)
    real = mask.bool()
    torch.testing.assert_close(o.masked_lm_logits[real], h.prediction_logits[real], atol=1e-4, rtol=0)
    torch.testing.assert_close(o.next_sentence_logits, h.seq_relationship_logits, atol=1e-4, rtol=0)


def _mrpc_batch(shared_data, vocab_file, n=8):
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(str(vocab_file), lowercase=True)
    lines = (shared_data / "glue" / "MRPC" / "msr_paraphrase_test.txt").read_text(encoding="utf-8-sig").splitlines()
    pairs = [line.split("\t")[3:5] for line in lines[1:n + 1]]
    encs = tok.encode_batch([tuple(p) for p in pairs])
    seq_len = max(len(e.ids) for e in encs) + 3  # every row has padding
    ids = torch.zeros(n, seq_len, dtype=torch.long)
    mask = torch.zeros_like(ids)
    segs = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)] = torch.tensor(e.ids)
        mask[i, :len(e.ids)] = 1
        segs[i, :len(e.ids)] = torch.tensor(e.type_ids)
    return ids, mask, segs


def test_minilm_matches_transformers_on_mrpc_with_padding(minilm_dir, shared_data):
    transformers = pytest.importorskip("transformers")
    ours = BertModel.from_pretrained(minilm_dir).eval()
    assert ours.config.gelu_form == "erf"  # HF "gelu" is the erf form
    hf = transformers.BertModel.from_pretrained(minilm_dir).eval()
    ids, mask, segs = _mrpc_batch(shared_data, minilm_dir / "vocab.txt")
    with torch.no_grad():
        o = ours(ids, mask, segs)
        h = hf(input_ids=ids, attention_mask=mask, token_type_ids=segs)
    real = mask.bool()
    torch.testing.assert_close(o.sequence_output[real], h.last_hidden_state[real], atol=1e-4, rtol=0)
    torch.testing.assert_close(o.pooled_output, h.pooler_output, atol=1e-4, rtol=0)


def test_minilm_hf_openbert_hf_round_trip_is_exact(minilm_dir, tmp_path):
    original = load_file(minilm_dir / "model.safetensors")
    BertModel.from_pretrained(minilm_dir).save_pretrained(tmp_path)
    written = load_file(tmp_path / "model.safetensors")
    assert set(written) == {k for k in original if not k.endswith("position_ids")}
    for k, v in written.items():
        assert torch.equal(v, original[k]), k


def test_minilm_openbert_tf_openbert_round_trip_is_exact(minilm_dir, tmp_path):
    model = BertModel.from_pretrained(minilm_dir)
    prefix = checkpoints.save_tf_checkpoint(model, tmp_path, vocab_file=minilm_dir / "vocab.txt")
    reader = TFCheckpointReader(prefix)
    assert "bert/encoder/layer_5/attention/self/query/kernel" in reader.entries
    back = BertModel.from_pretrained(tmp_path)
    assert back.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


# ---- strict loading: every checkpoint tensor is used, or dropped on purpose --------------------
def test_config_with_fewer_layers_than_the_weights_is_an_error_naming_them(tiny_tf):
    one_layer = _tiny_config().replace(num_hidden_layers=1)
    with pytest.raises(OpenBertError) as err:
        BertForPreTraining.from_pretrained(tiny_tf, config=one_layer)
    msg = str(err.value)
    assert "holds 16 tensor(s)" in msg and "bert.encoder.layer.1.attention.output.LayerNorm.bias" in msg
    assert "--allow_unused_weights" in msg
    model = BertForPreTraining.from_pretrained(tiny_tf, config=one_layer, allow_unused=True)
    assert len(model.bert.encoder.layer) == 1


def test_fine_tuning_drops_the_pre_training_heads_and_pooler_as_the_original(tiny_tf, caplog):
    with caplog.at_level(logging.INFO, logger="openbert.checkpoints"):
        qa = BertForQuestionAnswering.from_pretrained(tiny_tf)
    assert "not used by BertForQuestionAnswering" in caplog.text and "bert.pooler.dense.weight" in caplog.text
    assert "cls.predictions.bias" in caplog.text and qa.qa_outputs.weight.shape == (2, 16)


def test_another_tasks_head_is_dropped_only_on_purpose(tmp_path):
    torch.manual_seed(0)
    BertForSequenceClassification(_tiny_config(), num_labels=3).save_pretrained(tmp_path / "clf")
    with pytest.raises(OpenBertError, match=r"2 tensor\(s\) that BertForQuestionAnswering .* does not use "
                                            r"\(classifier.bias, classifier.weight\)"):
        BertForQuestionAnswering.from_pretrained(tmp_path / "clf")
    BertForQuestionAnswering.from_pretrained(tmp_path / "clf", allow_unused=True)
    BertModel.from_pretrained(tmp_path / "clf")  # a bare encoder uses no head: any head is dropped


def test_saved_weights_follow_the_umask(tmp_path):
    """safetensors creates its file with mode 0600; openbert's outputs follow the umask."""
    old = os.umask(0o022)
    try:
        BertModel(_tiny_config()).save_pretrained(tmp_path / "m")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert set(modes.values()) == {0o644}, modes

"""BertConfig: the original bert_config.json exactly, HF config.json both ways, explicit GELU form."""
from __future__ import annotations

import json

import pytest

from openbert.config import BertConfig
from openbert.errors import OpenBertError


def test_defaults_are_the_original():
    c = BertConfig(vocab_size=30522)
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (768, 12, 12, 3072)
    assert (c.hidden_act, c.gelu_form, c.hidden_dropout_prob, c.attention_probs_dropout_prob) == \
        ("gelu", "tanh", 0.1, 0.1)
    assert (c.max_position_embeddings, c.type_vocab_size, c.initializer_range) == (512, 16, 0.02)
    assert c.layer_norm_eps == 1e-12


def test_json_is_sorted_two_space_with_trailing_newline(tmp_path):
    c = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=5, num_attention_heads=4, intermediate_size=37)
    text = c.to_json_string()
    assert text.endswith("}\n") and text.startswith('{\n  "attention_probs_dropout_prob": 0.1,\n')
    keys = list(json.loads(text))
    assert keys == sorted(keys) and len(keys) == 11
    c.to_json_file(tmp_path / "bert_config.json")
    assert BertConfig.from_json_file(tmp_path / "bert_config.json") == c
    assert (tmp_path / "bert_config.json").read_text() == text


def test_google_config_with_unknown_keys_round_trips(shared_data, tmp_path):
    path = shared_data / "checkpoints" / "google_index_only" / "chinese_L-12_H-768_A-12" / "bert_config.json"
    original = json.loads(path.read_text())
    c = BertConfig.from_json_file(path)
    assert c.vocab_size == 21128 and c.extra["pooler_type"] == "first_token_transform"
    assert json.loads(c.to_json_string()) == original
    c.to_json_file(tmp_path / "c.json")
    assert BertConfig.from_json_file(tmp_path / "c.json") == c


def test_hf_gelu_forms_both_ways():
    hf = {"model_type": "bert", "vocab_size": 10, "hidden_act": "gelu"}
    assert BertConfig.from_hf_dict(hf).gelu_form == "erf"
    assert BertConfig.from_hf_dict(dict(hf, hidden_act="gelu_new")).gelu_form == "tanh"
    assert BertConfig(vocab_size=10).to_hf_dict()["hidden_act"] == "gelu_new"
    assert BertConfig(vocab_size=10, gelu_form="erf").to_hf_dict()["hidden_act"] == "gelu"
    # an erf model written as bert_config.json says so explicitly; the tanh default stays silent
    assert BertConfig(vocab_size=10, gelu_form="erf").to_dict()["gelu_form"] == "erf"
    assert "gelu_form" not in BertConfig(vocab_size=10).to_dict()


def test_hf_config_round_trip(minilm_dir, tmp_path):
    c = BertConfig.from_json_file(minilm_dir / "config.json")
    assert (c.hidden_size, c.num_hidden_layers, c.gelu_form, c.type_vocab_size) == (384, 6, "erf", 2)
    assert "_name_or_path" in c.extra and "model_type" not in c.extra
    c.to_hf_json_file(tmp_path / "config.json", "BertModel")
    d = json.loads((tmp_path / "config.json").read_text())
    assert d["model_type"] == "bert" and d["architectures"] == ["BertModel"] and d["hidden_act"] == "gelu"
    assert BertConfig.from_json_file(tmp_path / "config.json") == c


def test_num_labels_written_as_id2label():
    d = BertConfig(vocab_size=10).to_hf_dict("BertForSequenceClassification", num_labels=3)
    assert d["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}


def test_bad_configs(tmp_path):
    with pytest.raises(OpenBertError, match="vocab_size"):
        BertConfig.from_dict({"hidden_size": 4})
    with pytest.raises(OpenBertError, match="hidden_act"):
        BertConfig(vocab_size=5, hidden_act="swish")
    with pytest.raises(OpenBertError, match="multiple of"):
        BertConfig(vocab_size=5, hidden_size=30, num_attention_heads=4)
    with pytest.raises(OpenBertError, match="not found"):
        BertConfig.from_json_file(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(OpenBertError, match="not valid JSON"):
        BertConfig.from_json_file(tmp_path / "bad.json")
    with pytest.raises(OpenBertError, match="position_embedding_type"):
        BertConfig.from_hf_dict({"vocab_size": 5, "position_embedding_type": "relative_key"})


@pytest.mark.parametrize("key,value,message", [
    ("num_hidden_layers", "two", "num_hidden_layers='two' must be a whole number"),
    ("hidden_size", 16.5, "hidden_size=16.5 must be a whole number"),
    ("vocab_size", True, "vocab_size=True must be a whole number"),
    ("num_attention_heads", 0, "num_attention_heads=0 must be at least 1"),
    ("hidden_dropout_prob", "0.1", "hidden_dropout_prob='0.1' must be a number"),
    ("attention_probs_dropout_prob", 1.5, r"attention_probs_dropout_prob=1.5 must be in \[0, 1\)"),
    ("hidden_act", ["gelu"], "hidden_act"),
])
def test_config_values_of_the_wrong_type_name_the_key_and_file(tmp_path, key, value, message):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({"vocab_size": 30, "hidden_size": 16, "num_attention_heads": 4, key: value}))
    with pytest.raises(OpenBertError, match=message) as err:
        BertConfig.from_json_file(path)
    assert str(err.value).startswith(str(path))
    hf = tmp_path / "config.json"
    hf.write_text(json.dumps({"model_type": "bert", "vocab_size": 30, "hidden_size": 16,
                              "num_attention_heads": 4, key: value}))
    with pytest.raises(OpenBertError, match=key):
        BertConfig.from_json_file(hf)

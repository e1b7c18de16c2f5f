"""checkpoints.names: the one TF <-> torch name table, both ways."""
from __future__ import annotations

import pytest

from openbert.checkpoints import names
from openbert.config import BertConfig
from openbert.model.bert import (BertForPreTraining, BertForQuestionAnswering,
                                 BertForSequenceClassification, BertModel)


def _tiny_config():
    return BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=32, max_position_embeddings=24, type_vocab_size=2)


# ---- the name map -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [BertForPreTraining, BertForSequenceClassification, BertForQuestionAnswering,
                                 BertModel])
def test_name_map_round_trips_every_parameter(cls):
    model = cls(_tiny_config())
    for name in names.canonical_state(model):
        tf, transpose = names.tf_name(name)
        assert names.torch_name(tf) == (name, transpose)


def test_name_map_follows_the_original_names():
    cases = {
        "bert.embeddings.word_embeddings.weight": ("bert/embeddings/word_embeddings", False),
        "bert.embeddings.LayerNorm.weight": ("bert/embeddings/LayerNorm/gamma", False),
        "bert.encoder.layer.11.attention.self.query.weight":
            ("bert/encoder/layer_11/attention/self/query/kernel", True),
        "bert.encoder.layer.3.attention.output.LayerNorm.bias":
            ("bert/encoder/layer_3/attention/output/LayerNorm/beta", False),
        "bert.encoder.layer.0.intermediate.dense.bias": ("bert/encoder/layer_0/intermediate/dense/bias", False),
        "bert.pooler.dense.weight": ("bert/pooler/dense/kernel", True),
        "cls.predictions.transform.dense.weight": ("cls/predictions/transform/dense/kernel", True),
        "cls.predictions.bias": ("cls/predictions/output_bias", False),
        "cls.seq_relationship.weight": ("cls/seq_relationship/output_weights", False),
        "classifier.weight": ("output_weights", False),
        "classifier.bias": ("output_bias", False),
        "qa_outputs.weight": ("cls/squad/output_weights", False),
        "qa_outputs.bias": ("cls/squad/output_bias", False),
    }
    for name, expected in cases.items():
        assert names.tf_name(name) == expected
    assert names.torch_name("global_step") is None

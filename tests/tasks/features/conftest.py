"""Fixtures of the feature tests: a small vocabulary, a tiny BertModel, features of a few lines and
the values of one example run alone."""
from __future__ import annotations

import pytest
import torch

from openbert.model.bert import BertModel
from openbert.tasks.features.extract import convert_examples, parse_line
from openbert.tokenization.wordpiece import FullTokenizer

WORDS = ("the man went to store he bought a gallon of milk dog is hairy who was jim henson ? "
         "puppet ##eer no it not . , hello world un ##want ##ed runn ##ing").split()
LINES = ["The man went to the store.", "he bought a gallon of milk ||| the dog is hairy .",
         "", "who was Jim Henson ? ||| Jim Henson was a puppeteer", "hello",
         "unwanted running unwanted running unwanted running , the dog"]


@pytest.fixture
def lines() -> list[str]:
    """Input lines: sentences, pairs, an empty line, pieces not in the vocabulary."""
    return list(LINES)


@pytest.fixture
def words() -> list[str]:
    """The vocabulary's words and pieces (no special tokens)."""
    return list(WORDS)


@pytest.fixture
def tokenizer(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return FullTokenizer(tmp_path / "vocab.txt", do_lower_case=True)


@pytest.fixture
def model(tiny_config, tokenizer):
    torch.manual_seed(0)
    return BertModel(tiny_config.replace(vocab_size=len(tokenizer.vocab))).eval()


@pytest.fixture
def make_features(tokenizer):
    """features(lines=LINES, max_seq_length=128): the features of ``lines``."""
    def features(lines=LINES, max_seq_length=128):
        return list(convert_examples((parse_line(l, i) for i, l in enumerate(lines)), tokenizer,
                                     max_seq_length))
    return features


@pytest.fixture
def reference():
    """reference(model, feature, layer_indexes): one example alone, unpadded: [n, L, H] float32."""
    def run(model, feature, layer_indexes):
        ids = torch.tensor([feature.input_ids])
        seg = torch.tensor([feature.segment_ids])
        with torch.no_grad():
            out = model(ids, torch.ones_like(ids), seg)
        return torch.stack([out.all_encoder_layers[i][0] for i in layer_indexes], 1).numpy()
    return run

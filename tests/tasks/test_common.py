"""What every task shares: step count, model source, tokenizer, head building, pair layout, padding."""
import math

import numpy as np
import pytest

from openbert.config import BertConfig
from openbert.errors import OpenBertError
from openbert.model.bert import BertForQuestionAnswering, BertForTokenClassification
from openbert.tasks import common


def test_num_train_steps_as_original():
    assert common.num_train_steps(3668, 32, 3.0) == int(3668 / 32 * 3.0) == 343
    assert common.num_train_steps(10, 32, 1.0) == 1
    assert math.isclose(int(343 * 0.1), 34)


def test_max_seq_length_must_fit_the_position_table():
    cfg = BertConfig(vocab_size=10, max_position_embeddings=128)
    common.check_max_seq_length(128, cfg, "m")
    with pytest.raises(OpenBertError, match="only trained up to sequence length 128"):
        common.check_max_seq_length(129, cfg, "m")
    with pytest.raises(OpenBertError, match="at least 3"):
        common.check_max_seq_length(2, cfg, "m")


def _source(**kw):
    return common.resolve_model_source(**{"max_seq_length": 16, **kw})


def _model_dir(tmp_path):
    cfg = BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=8, max_position_embeddings=32)
    m = BertForQuestionAnswering(cfg)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\nsat\n.\n")
    m.save_pretrained(tmp_path / "model", vocab_file=str(vocab))
    return tmp_path / "model"


def test_model_source_finds_vocab_and_config_beside_the_checkpoint(tmp_path):
    model_dir = _model_dir(tmp_path)
    src = _source(init_checkpoint=str(model_dir))
    assert src.path == str(model_dir) and src.config.vocab_size == 8
    assert src.tokenizer.tokenize("The cat sat.") == ["the", "cat", "sat", "."]


def test_predict_without_training_uses_the_fine_tuned_output_dir(tmp_path):
    model_dir = _model_dir(tmp_path)
    src = _source(saved_model_dir=str(model_dir), init_checkpoint="/elsewhere/bert_model.ckpt")
    assert src.path == str(model_dir)


def test_model_source_errors(tmp_path):
    with pytest.raises(OpenBertError, match="--init_checkpoint .* or at least --bert_config_file"):
        _source()
    model_dir = _model_dir(tmp_path)
    with pytest.raises(OpenBertError, match="does not exist"):
        _source(init_checkpoint=str(model_dir), vocab_file=str(tmp_path / "missing.txt"))
    with pytest.raises(OpenBertError, match="only trained up to"):
        _source(init_checkpoint=str(model_dir), max_seq_length=64)


def test_build_model_from_scratch_or_checkpoint(tmp_path, caplog):
    model_dir = _model_dir(tmp_path)
    cfg = BertConfig.from_json_file(model_dir / "bert_config.json")
    loaded = common.build_model(BertForQuestionAnswering, str(model_dir), cfg)
    fresh = common.build_model(BertForQuestionAnswering, None, cfg)
    assert "random weights" in caplog.text
    assert type(loaded) is type(fresh) is BertForQuestionAnswering


def test_truncate_seq_pair_longer_first_ties_b():
    a, b = list("abcdef"), list("xyz")
    common.truncate_seq_pair(a, b, 6)
    assert (a, b) == (list("abc"), list("xyz"))
    a, b = list("abcd"), list("wxyz")
    common.truncate_seq_pair(a, b, 5)
    assert (a, b) == (list("abc"), list("wx"))


def test_pack_pair_is_the_original_layout():
    seq, seg = common.pack_pair(list("abcde"), list("xyz"), 7, "C", "S")
    assert seq == ["C", "a", "b", "S", "x", "y", "S"] and seg == [0, 0, 0, 0, 1, 1, 1]
    seq, seg = common.pack_pair(list("abcde"), None, 5, 101, 102)
    assert seq == [101, "a", "b", "c", 102] and seg == [0] * 5
    seq, seg = common.pack_pair([7], [], 8, 1, 2)  # an empty B is still a pair
    assert seq == [1, 7, 2, 2] and seg == [0, 0, 0, 1]


def test_pad_and_encoder_inputs():
    import numpy as np
    import torch

    assert common.pad([[1, 2, 3], [4]]).tolist() == [[1, 2, 3], [4, 0, 0]]
    assert common.pad([[0.5]], 2, np.float32).dtype == torch.float32
    batch = common.encoder_inputs([[5, 6, 7], [8]], [[0, 0, 1], [0]], length=4)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
    assert batch["input_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert batch["segment_ids"].tolist() == [[0, 0, 1, 0], [0, 0, 0, 0]]
    assert all(t.dtype == torch.long for t in batch.values())


def test_pad_with_a_value():
    assert common.pad([[1, 2, 3], [4]], value=-100).tolist() == [[1, 2, 3], [4, -100, -100]]


def test_eval_losses_as_the_estimator():
    # per-example sums over counts: eval_loss is the mean over all units, loss the mean of batch means
    res = common.eval_losses([2.0, 4.0, 3.0], [1, 3, 1], batch_size=2)
    assert res["eval_loss"] == pytest.approx(9 / 5) and res["loss"] == pytest.approx((6 / 4 + 3 / 1) / 2)


def test_softmax_rows():
    p = common.softmax(np.array([[1000.0, 1000.0], [0.0, math.log(3.0)]]))
    assert np.allclose(p, [[0.5, 0.5], [0.25, 0.75]])


def test_find_data_file(tmp_path):
    (tmp_path / "b.txt").write_text("x")
    assert common.find_data_file(tmp_path, ["a.txt", "b.txt"], "the train file", "--train_file") == str(
        tmp_path / "b.txt")
    with pytest.raises(OpenBertError, match=r"the dev file not found: looked for .*a\.txt; point --data_dir"):
        common.find_data_file(tmp_path, ["a.txt"], "the dev file", "--dev_file")
    assert common.find_data_file(tmp_path, ["a.txt"], "f", "--f", given=str(tmp_path / "b.txt")).endswith("b.txt")
    with pytest.raises(OpenBertError, match=r"looked for .*c\.txt, c\.txt; check --test_file"):
        common.find_data_file(tmp_path, ["a.txt"], "the test file", "--test_file", given="c.txt")


def test_saved_labels_come_back(tmp_path):
    cfg = BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=8, max_position_embeddings=32)
    common.save_with_labels(BertForTokenClassification(cfg, num_labels=3), tmp_path, ["O", "B-X", "I-X"],
                            tag_scheme="iob2")
    loaded = BertForTokenClassification.from_pretrained(tmp_path)
    assert common.label_names(loaded.config) == ["O", "B-X", "I-X"] and loaded.num_labels == 3
    assert loaded.config.extra["tag_scheme"] == "iob2"

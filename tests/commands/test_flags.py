"""commands.flags: the shared flags and the typed arguments built from them."""
import argparse

import pytest

from openbert.commands.flags import (add_model_source_flags, add_training_flags, model_source,
                                     training_arguments)
from openbert.config import BertConfig
from openbert.errors import OpenBertError
from openbert.model.bert import BertModel


def test_training_arguments_from_flags_and_overrides():
    p = argparse.ArgumentParser()
    p.add_argument("--output_dir")
    p.add_argument("--train_batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=5e-5)
    add_training_flags(p)
    ns = p.parse_args(["--output_dir=o", "--precision=bf16", "--gradient_checkpointing",
                       "--gradient_accumulation_steps=4", "--resume=true"])
    args = training_arguments(ns, num_train_steps=100, num_warmup_steps=10)
    assert (args.precision, args.gradient_checkpointing, args.gradient_accumulation_steps) == ("bf16", True, 4)
    assert (args.resume, args.train_batch_size, args.num_train_steps) == (True, 32, 100)
    with pytest.raises(TypeError, match="unknown TrainingArguments fields"):
        training_arguments(ns, num_epochs=3)
    with pytest.raises(OpenBertError, match="--output_dir is required"):
        training_arguments(p.parse_args([]), num_train_steps=1)


def test_model_source_flags_are_the_same_everywhere(tmp_path):
    cfg = BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=8, max_position_embeddings=32)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n")
    BertModel(cfg).save_pretrained(tmp_path / "m", vocab_file=str(tmp_path / "vocab.txt"))
    p = argparse.ArgumentParser()
    add_model_source_flags(p, 16)
    src = model_source(p.parse_args([f"--init_checkpoint={tmp_path / 'm'}", "--do_lower_case=false"]))
    assert src.config.max_position_embeddings == 32 and src.tokenizer.do_lower_case is False
    with pytest.raises(OpenBertError, match="cannot use --max_seq_length=64"):
        model_source(p.parse_args([f"--init_checkpoint={tmp_path / 'm'}", "--max_seq_length=64"]))

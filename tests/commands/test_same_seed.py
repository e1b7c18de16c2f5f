"""The same --seed gives a bit-identical saved model on CPU: classify, squad, pretrain (tiny models
and data, two runs each, every tensor compared with torch.equal), and a short real quickstart."""
from __future__ import annotations

import json
import random
import re

import pytest
import torch
from safetensors.torch import load_file

from openbert.cli import main



def assert_same_weights(a, b):
    sa, sb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert sorted(sa) == sorted(sb)
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, f"tensors differ between two runs with one seed: {differ}"


def twice(tmp_path, argv_for):
    """Run ``main(argv_for(out))`` into two output folders; return them."""
    outs = [tmp_path / "run1", tmp_path / "run2"]
    for out in outs:
        assert main(argv_for(out)) == 0
    return outs


def _sentence(rng, words):
    return " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))


def test_classify_same_seed_same_model(tmp_path, tiny_bert_dir, tiny_words, one_thread):
    rng = random.Random(0)
    rows = "".join(f"{i % 2}\t{i}\t{i + 1}\t{_sentence(rng, tiny_words)} .\t{_sentence(rng, tiny_words)} .\n"
                   for i in range(32))
    data = tmp_path / "MRPC"
    data.mkdir()
    (data / "train.tsv").write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + rows)
    outs = twice(tmp_path, lambda out: [
        "classify", "--task_name=MRPC", "--do_train", f"--data_dir={data}", f"--init_checkpoint={tiny_bert_dir}",
        f"--output_dir={out}", "--train_batch_size=8", "--num_train_epochs=1", "--max_seq_length=32",
        "--seed=7", "--progress=false"])
    assert_same_weights(*outs)
    # a different seed gives a different head (the seed reaches the fresh weights)
    assert main(["classify", "--task_name=MRPC", "--do_train", f"--data_dir={data}",
                 f"--init_checkpoint={tiny_bert_dir}", f"--output_dir={tmp_path / 'other'}",
                 "--train_batch_size=8", "--num_train_epochs=1", "--max_seq_length=32", "--seed=8",
                 "--progress=false"]) == 0
    other = load_file(tmp_path / "other" / "model.safetensors")["classifier.weight"]
    assert not torch.equal(other, load_file(outs[0] / "model.safetensors")["classifier.weight"])


def test_squad_same_seed_same_model(tmp_path, tiny_bert_dir, tiny_words, one_thread):
    rng = random.Random(0)
    paragraphs = []
    for i in range(12):
        context = f"{_sentence(rng, tiny_words)} john smith {_sentence(rng, tiny_words)} ."
        start = context.index("john smith")
        paragraphs.append({"context": context, "qas": [{"id": str(i), "question": "who sat ?",
                                                         "answers": [{"text": "john smith",
                                                                      "answer_start": start}]}]})
    train = tmp_path / "train.json"
    train.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    outs = twice(tmp_path, lambda out: [
        "squad", "--do_train", f"--train_file={train}", f"--init_checkpoint={tiny_bert_dir}",
        f"--output_dir={out}", "--train_batch_size=4", "--num_train_epochs=1", "--max_seq_length=32",
        "--doc_stride=8", "--max_query_length=8", "--seed=7", "--progress=false"])
    assert_same_weights(*outs)


def test_pretrain_same_seed_same_model(tmp_path, tiny_bert_dir, tiny_words, one_thread):
    rng = random.Random(0)
    docs = "\n\n".join("\n".join(f"{_sentence(rng, tiny_words)} ." for _ in range(6)) for _ in range(6))
    (tmp_path / "corpus.txt").write_text(docs + "\n")
    assert main(["create-pretraining-data", f"--input_file={tmp_path / 'corpus.txt'}",
                 f"--output_file={tmp_path / 'data'}", f"--vocab_file={tiny_bert_dir / 'vocab.txt'}",
                 "--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=2",
                 "--progress=false"]) == 0
    common = [f"--input_file={tmp_path / 'data'}", f"--bert_config_file={tiny_bert_dir / 'config.json'}",
              "--max_seq_length=32", "--max_predictions_per_seq=5", "--train_batch_size=4",
              "--num_train_steps=4", "--num_warmup_steps=1", "--save_checkpoints_steps=0",
              "--seed=7", "--progress=false"]
    # fresh weights (no --init_checkpoint), once with stored and once with dynamic masks
    outs = twice(tmp_path, lambda out: ["pretrain", "--do_train", f"--output_dir={out}", *common])
    assert_same_weights(*outs)
    outs = twice(tmp_path / "dyn", lambda out: ["pretrain", "--do_train", f"--output_dir={out}",
                                                 "--dynamic_masking", *common])
    assert_same_weights(*outs)


def test_short_quickstart_same_seed_same_result(tmp_path, minilm_dir, snli_dir, capsys):
    """Two short real quickstarts with one seed print the same accuracy and loss and save the same model."""
    results = []
    for out in (tmp_path / "qs1", tmp_path / "qs2"):
        assert main(["quickstart", "--train_examples=64", "--eval_examples=32", "--train_batch_size=16",
                     "--eval_batch_size=32", "--max_seq_length=32", f"--output_dir={out}", "--seed=3",
                     "--progress=false"]) == 0
        text = capsys.readouterr().out
        loss = re.search(r"final training loss ([\d.]+)", text)
        acc = re.search(r"SNLI test accuracy \(32 pairs\): ([\d.]+)%", text)
        assert loss and acc, text
        results.append((loss.group(1), acc.group(1)))
    assert results[0] == results[1]
    assert_same_weights(tmp_path / "qs1", tmp_path / "qs2")

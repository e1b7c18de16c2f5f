"""Every command, given bad input, answers with one line: exit code 2, no traceback, the culprit
(flag or file) named, and nothing written, changed or left behind anywhere in its workspace."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from openbert.checkpoints.pretrained import save_pretrained
from openbert.cli import main
from openbert.config import BertConfig
from openbert.io import tfrecord
from openbert.io.fileio import atomic_write_text, claim_output_dir
from openbert.model.bert import BertForPreTraining, BertModel

WORDS = "the a cat dog sat ran on mat fast slow big small red blue is was".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + WORDS
MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
CONFIG = dict(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=32, max_position_embeddings=64, type_vocab_size=2)


def _squad(qas):
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": "the cat sat on the mat .", "qas": qas}]}]}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, request):
    """The workspace every case runs in: a tiny pre-trained model, task data, files of the user's."""
    w = tmp_path_factory.mktemp("bad_inputs")
    (w / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    torch.manual_seed(0)
    save_pretrained(BertForPreTraining(BertConfig(**CONFIG)), w / "model", vocab_file=w / "vocab.txt")
    save_pretrained(BertModel(BertConfig(**CONFIG)), w / "encoder", vocab_file=w / "vocab.txt")
    (w / "big_vocab.txt").write_text("\n".join(VOCAB + [f"extra{i}" for i in range(9)]) + "\n")
    for name, change in {"layers_two": {"num_hidden_layers": "two"}, "hidden_half": {"hidden_size": 16.5},
                         "one_layer": {"num_hidden_layers": 1}}.items():
        (w / f"{name}.json").write_text(json.dumps({**CONFIG, **change}))
    mrpc = w / "MRPC"
    mrpc.mkdir()
    rows = "".join(f"{i % 2}\t{i}\t{i + 1}\tthe cat sat .\tthe dog ran .\n" for i in range(8))
    for split in ("train", "test"):
        (mrpc / f"{split}.tsv").write_text(MRPC_HEADER + rows)
    (mrpc / "dev.tsv").write_text(MRPC_HEADER)  # a header and no rows
    qa = {"id": "q1", "question": "where did the cat sit ?", "answers": [{"text": "the mat", "answer_start": 15}]}
    (w / "train.json").write_text(json.dumps(_squad([qa])))
    (w / "no_questions.json").write_text(json.dumps(_squad([])))
    (w / "pred.json").write_text(json.dumps({"q1": "the mat"}))
    (w / "corpus.txt").write_text("the cat sat .\nthe dog ran .\n\nthe mat is red .\na cat is big .\n")
    (w / "notes.txt").write_text("the user's notes, not a TFRecord, not a vocabulary\n")
    (w / "text_dir").mkdir()
    (w / "text_dir" / "corpus.txt").write_text("the cat sat .\nthe dog ran .\n\nthe mat is red .\n")
    (w / "taken").mkdir()
    (w / "taken" / "precious.txt").write_text("keep me")
    (w / "a_file").write_text("not a folder")
    conll = w / "conll"
    conll.mkdir()
    (conll / "eng.train").write_text("-DOCSTART- -X- O O\n\nthe DT O\ncat NN I-PER\n\n")
    (conll / "eng.testa").write_text("")
    (w / "conll_one_column").mkdir()
    (w / "conll_one_column" / "eng.train").write_text("the DT O\ncat\n\n")
    (w / "choices").mkdir()
    (w / "choices" / "train.jsonl").write_text('{"context": "the cat", "choices": ["sat .", "ran ."], "label": 5}\n')
    (w / "some_dir").mkdir()
    claim_output_dir(w / "pretrain_out", "pretrain")  # the output of another command
    atomic_write_text(w / "pretrain_out" / "eval_results.txt", "loss = 1\n")
    shared = Path(os.environ.get("OPENBERT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    tiny = shared / "tfrecord" / "pretraining_tiny.tfrecord"
    if tiny.is_file():  # one byte of record 0's float payload changed: the proto stays valid
        data = bytearray(tiny.read_bytes())
        start, length = tfrecord.index_records(tiny)[0]
        at = bytes(data[start:start + length]).find(np.asarray([1.0], "<f4").tobytes())
        data[start + at] ^= 0x01
        (w / "flipped.tfrecord").write_bytes(bytes(data))
        (w / "tf_config.json").write_text(json.dumps({**CONFIG, "vocab_size": 100}))
    return w


M, V = "--init_checkpoint={W}/model", "--progress=false"
CLS = ["classify", "--task_name=MRPC", "--data_dir={W}/MRPC", "--max_seq_length=16", V]
SQUAD = ["squad", "--max_seq_length=32", "--max_query_length=8", "--doc_stride=8", V]
PRE = ["pretrain", "--input_file={W}/corpus.txt", "--max_seq_length=16", "--max_predictions_per_seq=4", V]
CPD = ["create-pretraining-data", "--input_file={W}/corpus.txt", "--vocab_file={W}/vocab.txt",
       "--max_seq_length=16", "--max_predictions_per_seq=4", V]
XF = ["extract-features", "--input_file={W}/corpus.txt", M, "--max_seq_length=32"]
NER = ["ner", "--max_seq_length=16", V]
MC = ["multiple-choice", "--task_name=custom", "--max_seq_length=16", V]
PREDICT = ["predict", M, "--input_file={W}/corpus.txt", "--noprogress"]

# (id, argv, what the error line must name)
CASES = [
    # quickstart: checked before anything is fetched
    ("quickstart-zero-examples", ["quickstart", "--train_examples=0", "--output_dir={W}/qs"], ["--train_examples=0"]),
    ("quickstart-negative-lr", ["quickstart", "--learning_rate=-1", "--output_dir={W}/qs"], ["--learning_rate=-1"]),
    ("quickstart-output-is-file", ["quickstart", "--output_dir={W}/a_file"], ["--output_dir", "a_file", "is a file"]),
    ("quickstart-output-not-ours", ["quickstart", "--output_dir={W}/taken"],
     ["--output_dir", "precious.txt", "--overwrite_output_dir"]),
    # tokenize
    ("tokenize-missing-vocab", ["tokenize", "--vocab_file={W}/nope.txt"], ["nope.txt"]),
    ("tokenize-vocab-is-folder", ["tokenize", "--vocab_file={W}/some_dir"], ["some_dir"]),
    # build-vocab
    ("build-vocab-missing-input", ["build-vocab", "--input_file={W}/nope.txt", "--output_file={W}/v.txt"],
     ["--input_file", "nope.txt"]),
    ("build-vocab-zero-size", ["build-vocab", "--input_file={W}/corpus.txt", "--output_file={W}/v.txt",
                               "--vocab_size=0"], ["--vocab_size=0"]),
    ("build-vocab-onto-notes", ["build-vocab", "--input_file={W}/corpus.txt", "--output_file={W}/notes.txt"],
     ["--output_file", "notes.txt", "is not a vocabulary"]),
    ("build-vocab-onto-folder", ["build-vocab", "--input_file={W}/corpus.txt", "--output_file={W}/some_dir"],
     ["--output_file", "some_dir", "is a folder"]),
    ("build-vocab-onto-input", ["build-vocab", "--input_file={W}/corpus.txt", "--output_file={W}/corpus.txt"],
     ["--output_file", "corpus.txt", "input"]),
    # create-pretraining-data
    ("cpd-missing-vocab", ["create-pretraining-data", "--input_file={W}/corpus.txt", "--vocab_file={W}/nope.txt",
                           "--output_file={W}/shards"], ["nope.txt"]),
    ("cpd-folder-of-user-files", CPD + ["--output_file={W}/taken"], ["--output_file", "precious.txt"]),
    ("cpd-input-inside-output", [*CPD[:1], "--input_file={W}/text_dir/corpus.txt", *CPD[2:],
                                 "--output_file={W}/text_dir"], ["--output_file", "an input of this command"]),
    ("cpd-tfrecord-onto-notes", CPD + ["--output_format=tfrecord", "--output_file={W}/notes.txt"],
     ["--output_file", "notes.txt", "is not a TFRecord file"]),
    ("cpd-zero-dupe-factor", CPD + ["--output_file={W}/shards", "--dupe_factor=0"], ["dupe_factor"]),
    ("cpd-masked-lm-prob", CPD + ["--output_file={W}/shards", "--masked_lm_prob=2"], ["masked_lm_prob"]),
    # pretrain
    ("pretrain-zero-batch", PRE + ["--do_train", "--bert_config_file={W}/model/bert_config.json",
                                   "--output_dir={W}/p", "--train_batch_size=0"], ["--train_batch_size=0"]),
    ("pretrain-zero-lr", PRE + ["--do_train", "--bert_config_file={W}/model/bert_config.json",
                                "--output_dir={W}/p", "--learning_rate=0"], ["--learning_rate=0.0"]),
    ("pretrain-output-is-file", PRE + ["--do_train", M, "--output_dir={W}/a_file"], ["--output_dir", "is a file"]),
    ("pretrain-output-is-init", PRE + ["--do_train", M, "--output_dir={W}/model"],
     ["--output_dir", "an input of this command"]),
    ("pretrain-missing-input", [*PRE[:1], "--input_file={W}/nope", *PRE[2:], "--do_train", M, "--output_dir={W}/p"],
     ["--input_file", "nope"]),
    ("pretrain-config-type", PRE + ["--do_train", "--bert_config_file={W}/layers_two.json", "--output_dir={W}/p"],
     ["layers_two.json", "num_hidden_layers='two' must be a whole number"]),
    ("pretrain-config-float-size", PRE + ["--do_train", "--bert_config_file={W}/hidden_half.json",
                                          "--output_dir={W}/p"], ["hidden_half.json", "hidden_size=16.5"]),
    ("pretrain-corrupt-tfrecord", [*PRE[:1], "--input_file={W}/flipped.tfrecord", *PRE[2:], "--do_train",
                                   "--bert_config_file={W}/tf_config.json", "--output_dir={W}/p"],
     ["flipped.tfrecord", "corrupt at record 0", "bad data checksum"]),
    # classify
    ("classify-zero-batch", CLS + ["--do_train", M, "--output_dir={W}/c", "--train_batch_size=0"],
     ["--train_batch_size=0"]),
    ("classify-zero-lr", CLS + ["--do_train", M, "--output_dir={W}/c", "--learning_rate=0"], ["--learning_rate=0.0"]),
    ("classify-zero-epochs", CLS + ["--do_train", M, "--output_dir={W}/c", "--num_train_epochs=0"],
     ["--num_train_epochs=0.0"]),
    ("classify-warmup", CLS + ["--do_train", M, "--output_dir={W}/c", "--warmup_proportion=2"],
     ["--warmup_proportion=2.0"]),
    ("classify-accumulation", CLS + ["--do_train", M, "--output_dir={W}/c", "--gradient_accumulation_steps=0"],
     ["--gradient_accumulation_steps=0"]),
    ("classify-output-is-init", CLS + ["--do_train", M, "--output_dir={W}/model"],
     ["--output_dir", "an input of this command"]),
    ("classify-output-is-file", CLS + ["--do_train", M, "--output_dir={W}/a_file"], ["--output_dir", "is a file"]),
    ("classify-output-of-pretrain", CLS + ["--do_train", M, "--output_dir={W}/pretrain_out"],
     ["--output_dir", "holds the output of `openbert pretrain`", "--overwrite_output_dir"]),
    ("classify-empty-dev-file", CLS + ["--do_train", "--do_eval", M, "--output_dir={W}/c"],
     ["dev.tsv", "dev set has no examples"]),
    ("classify-config-type", CLS + ["--do_train", M, "--bert_config_file={W}/layers_two.json", "--output_dir={W}/c"],
     ["layers_two.json", "num_hidden_layers"]),
    ("classify-vocab-too-big", CLS + ["--do_train", M, "--vocab_file={W}/big_vocab.txt", "--output_dir={W}/c"],
     ["--vocab_file", "big_vocab.txt", "vocab_size=22"]),
    ("classify-fewer-layers", CLS + ["--do_train", M, "--bert_config_file={W}/one_layer.json", "--output_dir={W}/c"],
     ["bert.encoder.layer.1.", "--allow_unused_weights"]),
    # squad
    ("squad-zero-batch", SQUAD + ["--do_train", "--train_file={W}/train.json", M, "--output_dir={W}/s",
                                  "--train_batch_size=0"], ["--train_batch_size=0"]),
    ("squad-missing-predict-file", SQUAD + ["--do_predict", "--predict_file={W}/nope.json", M, "--output_dir={W}/s"],
     ["nope.json", "file not found"]),
    ("squad-no-questions", SQUAD + ["--do_predict", "--predict_file={W}/no_questions.json", M, "--output_dir={W}/s"],
     ["no_questions.json", "no usable questions"]),
    ("squad-output-is-init", SQUAD + ["--do_train", "--train_file={W}/train.json", M, "--output_dir={W}/model"],
     ["--output_dir", "an input of this command"]),
    ("squad-doc-stride", [*SQUAD[:3], "--doc_stride=0", V, "--do_predict", "--predict_file={W}/train.json", M,
                          "--output_dir={W}/s"], ["--doc_stride=0"]),
    # squad-eval
    ("squad-eval-onto-folder", ["squad-eval", "{W}/train.json", "{W}/pred.json", "-o", "{W}/some_dir"],
     ["--out-file", "some_dir", "is a folder"]),
    ("squad-eval-onto-notes", ["squad-eval", "{W}/train.json", "{W}/pred.json", "-o", "{W}/notes.txt"],
     ["--out-file", "notes.txt", "is not a squad-eval metrics file"]),
    ("squad-eval-missing-data", ["squad-eval", "{W}/nope.json", "{W}/pred.json"], ["nope.json", "file not found"]),
    ("squad-eval-bad-version", ["squad-eval", "{W}/train.json", "{W}/pred.json", "--version", "3.0"],
     ["--version", "invalid choice"]),
    # extract-features
    ("extract-zero-batch", XF + ["--output_file={W}/f.jsonl", "--batch_size=0"], ["--batch_size"]),
    ("extract-vocab-too-big", XF + ["--vocab_file={W}/big_vocab.txt", "--output_file={W}/f.jsonl"],
     ["--vocab_file", "big_vocab.txt", "vocab_size=22"]),
    ("extract-onto-notes", XF + ["--output_file={W}/notes.txt"], ["--output_file", "notes.txt", "is not a"]),
    ("extract-missing-folder", XF + ["--output_file={W}/no/such/dir/f.jsonl"], ["does not exist"]),
    ("extract-bad-layers", XF + ["--output_file={W}/f.jsonl", "--layers=7"], ["--layers"]),
    ("extract-missing-checkpoint", ["extract-features", "--input_file={W}/corpus.txt",
                                    "--init_checkpoint={W}/nope", "--output_file={W}/f.jsonl"], ["nope"]),
    # fill-mask
    ("fill-mask-zero-top-k", ["fill-mask", M, "--top_k=0", "the [MASK] sat ."], ["--top_k"]),
    ("fill-mask-no-mlm-head", ["fill-mask", "--init_checkpoint={W}/encoder", "the [MASK] sat ."], ["masked-LM head"]),
    ("fill-mask-onto-notes", ["fill-mask", M, "--output_file={W}/notes.txt", "the [MASK] sat ."],
     ["--output_file", "notes.txt"]),
    # ner
    ("ner-zero-batch", NER + ["--do_train", "--data_dir={W}/conll", M, "--output_dir={W}/n", "--train_batch_size=0"],
     ["--train_batch_size=0"]),
    ("ner-one-column", NER + ["--do_train", "--data_dir={W}/conll_one_column", M, "--output_dir={W}/n"],
     ["eng.train", "line 2"]),
    ("ner-unknown-scheme", NER + ["--do_train", "--data_dir={W}/conll", M, "--output_dir={W}/n",
                                  "--tag_scheme=bio3"], ["--tag_scheme"]),
    ("ner-empty-dev-file", NER + ["--do_train", "--do_eval", "--data_dir={W}/conll", M, "--output_dir={W}/n"],
     ["eng.testa"]),
    ("ner-output-is-init", NER + ["--do_train", "--data_dir={W}/conll", M, "--output_dir={W}/model"],
     ["--output_dir", "an input of this command"]),
    # multiple-choice
    ("mc-label-out-of-range", MC + ["--do_train", "--data_dir={W}/choices", M, "--output_dir={W}/m"],
     ["train.jsonl", "line 1"]),
    ("mc-unknown-task", [MC[0], "--task_name=nope", *MC[2:], "--do_train", "--data_dir={W}/choices", M,
                         "--output_dir={W}/m"], ["--task_name"]),
    ("mc-missing-data", MC + ["--do_train", "--data_dir={W}/some_dir", M, "--output_dir={W}/m"], ["some_dir"]),
    # predict and serve
    ("predict-zero-batch", PREDICT + ["--output_file={W}/p.jsonl", "--batch_size=0"], ["--batch_size"]),
    ("predict-missing-input", ["predict", M, "--input_file={W}/nope.txt", "--output_file={W}/p.jsonl"],
     ["--input_file", "nope.txt"]),
    ("predict-onto-notes", PREDICT + ["--output_file={W}/notes.txt"], ["--output_file", "notes.txt", "is not a"]),
    ("serve-zero-threads", ["serve", M, "--num_threads=0"], ["--num_threads"]),
    ("serve-bad-port", ["serve", M, "--port=70000"], ["--port=70000"]),
    # convert
    ("convert-into-user-folder", ["convert", "--input={W}/model", "--output={W}/taken"],
     ["--output", "precious.txt", "--overwrite_output_dir"]),
    ("convert-fewer-layers", ["convert", "--input={W}/model", "--output={W}/conv",
                              "--bert_config_file={W}/one_layer.json"], ["one_layer.json", "has no place for"]),
    ("convert-output-is-file", ["convert", "--input={W}/model", "--output={W}/a_file"], ["--output", "is a file"]),
    ("convert-missing-input", ["convert", "--input={W}/nope", "--output={W}/conv"], ["nope", "checkpoint not found"]),
    # download
    ("download-unknown", ["download", "no-such-model"], ["no-such-model"]),
    ("download-no-name", ["download"], ["name an asset"]),
]


def _snapshot(folder: Path) -> dict:
    """Every entry under ``folder`` with the hash of its bytes (folders as None)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder)] = None
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_the_table_covers_every_command_with_over_40_cases():
    from openbert.cli import COMMANDS

    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[1][0] for c in CASES} == set(COMMANDS)


@pytest.mark.parametrize("argv,named", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_leaves_nothing(ws, capsys, argv, named):
    argv = [a.replace("{W}", str(ws)) for a in argv]
    if any("flipped.tfrecord" in a for a in argv) and not (ws / "flipped.tfrecord").exists():
        pytest.skip("needs the real TFRecord file in ../shared/data")
    before = _snapshot(ws)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse rejects a flag value itself: exit code 2 and a usage line
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:") or ": error:" in line]
    assert len(lines) == 1, err
    for word in named:
        assert word in lines[0], lines[0]
    assert _snapshot(ws) == before  # nothing written, changed or left behind

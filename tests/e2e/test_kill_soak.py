"""kill -9 at 10 random moments of a `pretrain` run and of a `classify` run (tiny models): after
each kill the output folder is absent or openbert's and loadable, and rerunning the same command
ends with the uninterrupted run's model and results, bit for bit."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from openbert.checkpoints.pretrained import save_pretrained
from openbert.cli import main
from openbert.config import BertConfig
from openbert.io import fileio
from openbert.model.bert import BertForPreTraining, BertForSequenceClassification
from openbert.training import state as train_state

pytestmark = pytest.mark.slow

KILLS = 10
WORDS = "the a cat dog sat ran on mat fast slow big small red blue is was".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + WORDS
CONFIG = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A vocabulary, complete initial models (no head initialised at random), shards, MRPC files."""
    w = tmp_path_factory.mktemp("soak")
    (w / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    torch.manual_seed(0)
    save_pretrained(BertForPreTraining(CONFIG), w / "init_pretrain", vocab_file=w / "vocab.txt")
    save_pretrained(BertForSequenceClassification(CONFIG, num_labels=2), w / "init_classify",
                    vocab_file=w / "vocab.txt")
    rng = random.Random(0)
    docs = ["\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))) + " ."
                      for _ in range(rng.randint(3, 6))) for _ in range(40)]
    (w / "corpus.txt").write_text("\n\n".join(docs) + "\n")
    assert main(["create-pretraining-data", f"--input_file={w / 'corpus.txt'}", f"--output_file={w / 'shards'}",
                 f"--vocab_file={w / 'vocab.txt'}", "--max_seq_length=32", "--max_predictions_per_seq=5",
                 "--dupe_factor=2", "--progress=false"]) == 0
    mrpc = w / "MRPC"
    mrpc.mkdir()
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    for split, n in (("train", 64), ("dev", 16)):
        rows = []
        for i in range(n):
            a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
            b = a if i % 2 else " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
            rows.append(f"{i % 2}\t{i}\t{i + 1}\t{a} .\t{b} .\n")
        (mrpc / f"{split}.tsv").write_text(header + "".join(rows))
    return w


def _pretrain(w: Path, out: Path) -> list[str]:
    return ["pretrain", f"--input_file={w / 'shards'}", f"--output_dir={out}", "--do_train", "--do_eval",
            f"--init_checkpoint={w / 'init_pretrain'}", "--max_seq_length=32", "--max_predictions_per_seq=5",
            "--train_batch_size=8", "--num_train_steps=24", "--num_warmup_steps=4", "--learning_rate=1e-3",
            "--save_checkpoints_steps=3", "--max_eval_steps=4", "--log_every_n_steps=1", "--progress=false",
            "--device=cpu"]


def _classify(w: Path, out: Path) -> list[str]:
    return ["classify", "--task_name=MRPC", f"--data_dir={w / 'MRPC'}", f"--output_dir={out}", "--do_train",
            "--do_eval", f"--init_checkpoint={w / 'init_classify'}", "--max_seq_length=32",
            "--train_batch_size=4", "--num_train_epochs=1.5", "--learning_rate=1e-3",
            "--save_checkpoints_steps=3", "--log_every_n_steps=1", "--progress=false", "--device=cpu"]


def _run(argv: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "openbert", *argv], env=ENV, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def _loads_or_absent(out: Path, model_cls, command: str) -> str:
    """What a kill left: nothing, or an openbert output folder whose every part loads."""
    if not out.exists():
        return "absent"
    assert fileio.foreign_entries(out) == [], sorted(os.listdir(out))  # only what the manifest lists
    manifest = fileio.read_manifest(out)
    if manifest is None:  # killed between creating the folder and writing its manifest
        assert [n for n in os.listdir(out) if not n.startswith(fileio.MANIFEST)] == [], os.listdir(out)
        return "empty"
    assert manifest["command"] == command
    found = train_state.load_latest(out)  # the newest checkpoint verifies (no fallback needed)
    if found is not None:
        assert found[0] == train_state.latest_checkpoint(out)
    if (out / "model.safetensors").exists():
        model_cls.from_pretrained(out)
        return "model"
    assert not (out / "config.json").exists()  # never a half-written model
    return "checkpoints" if found else "started"


def _same_result(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert (a / "eval_results.txt").read_text() == (b / "eval_results.txt").read_text()
    steps = [json.loads(x)["step"] for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))


@pytest.mark.parametrize("command,argv,model_cls", [("pretrain", _pretrain, BertForPreTraining),
                                                    ("classify", _classify, BertForSequenceClassification)])
def test_kill_9_anywhere_then_rerun_is_the_uninterrupted_run(inputs, tmp_path, command, argv, model_cls):
    straight = tmp_path / "straight"
    t0 = time.perf_counter()
    _run(argv(inputs, straight))
    duration = time.perf_counter() - t0
    rng = random.Random(f"{command}-soak")
    seen = []
    for k in range(KILLS):
        out = tmp_path / f"killed{k}"
        at = rng.uniform(0.0, duration)
        proc = subprocess.Popen([sys.executable, "-m", "openbert", *argv(inputs, out)], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.append((round(at, 2), _loads_or_absent(out, model_cls, command)))
        _run(argv(inputs, out))  # the same command again: resumes by itself
        _same_result(straight, out)
        assert not [p for p in tmp_path.rglob("*") if fileio._STALE.match(p.name)]
    print(f"\n{command}: uninterrupted {duration:.1f} s; kill at (s) -> what was left: {seen}")

"""torchrun data parallelism on CPU (gloo) equals one process with the same global batch."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from openbert.training import state as train_state
from openbert.training.batching import GlobalBatchSampler
from openbert.training.plotting import read_metrics

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tiny_training_run  # noqa: E402


@pytest.mark.skipif(shutil.which("torchrun") is None or not torch.distributed.is_available(),
                    reason="needs torchrun and torch.distributed")
def test_torchrun_two_processes_equal_one_process(tmp_path):
    common = ["--dropout", "0", "--num_train_steps", "6", "--train_batch_size", "8",
              "--save_checkpoints_steps", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = tmp_path / "ddp"
    proc = subprocess.run(["torchrun", "--standalone", "--nproc_per_node=2",
                           str(HERE / "tiny_training_run.py"), "--output_dir", str(ddp), *common,
                           "--gradient_accumulation_steps", "2"],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = tmp_path / "single"
    # one process, the same global batch of 8 as 2 ranks x 2 micro-batches x 2 examples
    tiny_training_run.main(["--output_dir", str(single), *common])
    a = torch.load(ddp / "final.pt", weights_only=True)
    b = torch.load(single / "final.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0, msg=k)
    assert not torch.equal(b["classifier.weight"], tiny_training_run.tiny_model(0.0).state_dict()["classifier.weight"])
    # rank 0 alone wrote: each step logged once, checkpoints at 3 and 6 holding both ranks' RNG states
    assert [r["step"] for r in read_metrics(ddp / "metrics.jsonl")] == list(range(1, 7))
    assert [s for s, _ in train_state.list_checkpoints(ddp)] == [3, 6]
    assert len(train_state.load_checkpoint(train_state.latest_checkpoint(ddp))["rng"]) == 2


def test_global_batch_is_sharded_across_ranks_and_micro_batches():
    """Ranks x micro-batches partition each global batch, identically to a single process."""
    one = GlobalBatchSampler(30, 12, seed=5)
    for step in range(8):  # crosses epoch boundaries (30 examples, 12 per step)
        parts = [GlobalBatchSampler(30, 12, seed=5, rank=r, world_size=2, accumulation=3).micro_batches(step)
                 for r in range(2)]
        flat = [i for rank in parts for mb in rank for i in mb]
        assert flat == one.global_batch(step).tolist()
        assert all(len(mb) == 2 for rank in parts for mb in rank)
    # every example once per epoch: the first 5 steps cover 2 full epochs
    seen = sorted(i for s in range(5) for i in one.global_batch(s).tolist())
    assert seen == sorted(list(range(30)) * 2)

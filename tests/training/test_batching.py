"""Batch composition: deterministic from (seed, step), every example once per epoch, length buckets."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from openbert.errors import OpenBertError
from openbert.training.batching import GlobalBatchSampler, inference_batches


def test_epochs_are_permutations_and_steps_are_deterministic():
    s = GlobalBatchSampler(10, 4, seed=3)
    stream = np.concatenate([s.global_batch(k) for k in range(10)])  # 40 = 4 epochs
    for e in range(4):
        assert sorted(stream[e * 10:(e + 1) * 10].tolist()) == list(range(10))
    assert not np.array_equal(stream[:10], stream[10:20])  # reshuffled each epoch
    again = GlobalBatchSampler(10, 4, seed=3)
    assert np.array_equal(again.global_batch(7), s.global_batch(7))  # random access: resume
    assert not np.array_equal(GlobalBatchSampler(10, 4, seed=4).global_batch(0), s.global_batch(0))


def test_length_buckets_keep_similar_lengths_together_and_cover_the_data():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=64)
    s = GlobalBatchSampler(64, 8, seed=1, lengths=lengths, bucket_batches=8)
    batches = [s.global_batch(k) for k in range(8)]  # one chunk = 64 stream elements = 1 epoch
    assert Counter(np.concatenate(batches).tolist()) == Counter(range(64))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < np.ptp(lengths) / 4
    assert [lengths[b].min() for b in batches] != sorted(lengths[b].min() for b in batches)  # order shuffled


def test_inference_batches_sorted_by_length():
    assert inference_batches(5, 2) == [[0, 1], [2, 3], [4]]
    assert inference_batches(5, 2, lengths=[9, 3, 7, 3, 1]) == [[4, 1], [3, 2], [0]]


@pytest.mark.parametrize("kw,match", [
    (dict(num_examples=0, global_batch_size=4), "training set is empty"),
    (dict(num_examples=8, global_batch_size=6, world_size=2, accumulation=2), "multiple of world size"),
    (dict(num_examples=8, global_batch_size=4, lengths=[1, 2]), "got 2 lengths for 8"),
])
def test_bad_input(kw, match):
    with pytest.raises(OpenBertError, match=match):
        GlobalBatchSampler(seed=0, **kw)

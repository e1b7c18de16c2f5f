"""Which examples go into which micro-batch: deterministic from (seed, step), so resume is exact.

The training data is an endless stream: epoch e is a permutation of the N examples drawn from
``(seed, e)``, and the epochs follow one another. Optimizer step s takes the global batch
``stream[s * B : (s + 1) * B]`` (B = ``train_batch_size``), so every step sees a full batch and the
data position after step s is simply ``(s + 1) * B`` (epoch = position // N). The global batch is
cut into ``world_size * accumulation`` equal micro-batches; rank r takes micro-batches
``r * accumulation ... (r + 1) * accumulation - 1`` (the same sharding as a DistributedSampler over
the global batch).

With ``lengths``, the stream is cut into chunks of ``bucket_batches`` global batches; each chunk is
sorted by length and split into global batches whose order is then shuffled from ``(seed, chunk)``:
examples of similar length share a batch, so the collate function can pad per batch.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, Sequence

import numpy as np

from ..errors import OpenBertError


class GlobalBatchSampler:
    """Index lists of one rank's micro-batches, step by step.

    ``num_examples`` N, ``global_batch_size`` B (one optimizer step over all ranks), ``world_size``
    and ``accumulation`` (micro-batches per rank and step); B must be divisible by
    ``world_size * accumulation``.
    """

    def __init__(self, num_examples: int, global_batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1, accumulation: int = 1, lengths: Sequence[int] | None = None,
                 bucket_batches: int = 50):
        if num_examples < 1:
            raise OpenBertError("the training set is empty: nothing to train on")
        parts = world_size * accumulation
        if global_batch_size < 1 or global_batch_size % parts:
            raise OpenBertError(
                f"--train_batch_size={global_batch_size} is the global batch of one optimizer step and "
                f"must be a positive multiple of world size ({world_size}) x "
                f"--gradient_accumulation_steps ({accumulation}) = {parts}")
        if lengths is not None and len(lengths) != num_examples:
            raise OpenBertError(f"got {len(lengths)} lengths for {num_examples} training examples")
        self.n = num_examples
        self.global_batch_size = global_batch_size
        self.micro_batch_size = global_batch_size // parts
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.accumulation = accumulation
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        self.bucket_batches = bucket_batches
        self._cache: OrderedDict = OrderedDict()

    # -- the stream -------------------------------------------------------------------------
    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
            if len(self._cache) > 4:
                self._cache.popitem(last=False)
        return self._cache[key]

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The permutation of the N examples for ``epoch``."""
        return self._cached(("epoch", epoch),
                            lambda: np.random.default_rng([self.seed, epoch]).permutation(self.n))

    def stream(self, start: int, count: int) -> np.ndarray:
        """Stream elements ``[start, start + count)`` (example indices)."""
        out, pos = [], start
        while pos < start + count:
            epoch, off = divmod(pos, self.n)
            take = min(self.n - off, start + count - pos)
            out.append(self.epoch_order(epoch)[off:off + take])
            pos += take
        return np.concatenate(out)

    def _bucketed_chunk(self, chunk: int) -> np.ndarray:
        size = self.global_batch_size * self.bucket_batches
        idx = self.stream(chunk * size, size)
        idx = idx[np.argsort(self.lengths[idx], kind="stable")]
        batches = idx.reshape(self.bucket_batches, self.global_batch_size)
        order = np.random.default_rng([self.seed, chunk, 1]).permutation(self.bucket_batches)
        return batches[order]

    def global_batch(self, step: int) -> np.ndarray:
        """The B example indices of optimizer step ``step`` (0-based), over all ranks."""
        if self.lengths is None:
            return self.stream(step * self.global_batch_size, self.global_batch_size)
        chunk, j = divmod(step, self.bucket_batches)
        return self._cached(("chunk", chunk), lambda: self._bucketed_chunk(chunk))[j]

    def micro_batches(self, step: int) -> list[list[int]]:
        """This rank's ``accumulation`` micro-batches of step ``step``."""
        g = self.global_batch(step)
        b = self.micro_batch_size
        first = self.rank * self.accumulation
        return [g[(first + a) * b:(first + a + 1) * b].tolist() for a in range(self.accumulation)]

    def iterate(self, start_step: int, end_step: int) -> Iterator[list[int]]:
        """Micro-batches of steps ``start_step .. end_step - 1``, in order."""
        for step in range(start_step, end_step):
            yield from self.micro_batches(step)


class IndexBatches:
    """A re-iterable ``batch_sampler`` for torch's DataLoader over a fixed range of steps."""

    def __init__(self, sampler: GlobalBatchSampler, start_step: int, end_step: int):
        self.sampler, self.start_step, self.end_step = sampler, start_step, end_step

    def __iter__(self):
        return self.sampler.iterate(self.start_step, self.end_step)

    def __len__(self) -> int:
        return (self.end_step - self.start_step) * self.sampler.accumulation


def inference_batches(num_examples: int, batch_size: int,
                      lengths: Sequence[int] | None = None) -> list[list[int]]:
    """Consecutive batches of example indices; sorted by length (stable) when ``lengths`` is given."""
    if batch_size < 1:
        raise OpenBertError(f"batch size must be >= 1, got {batch_size}")
    if lengths is not None:
        if len(lengths) != num_examples:
            raise OpenBertError(f"got {len(lengths)} lengths for {num_examples} examples")
        order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    else:
        order = np.arange(num_examples)
    return [order[i:i + batch_size].tolist() for i in range(0, num_examples, batch_size)]

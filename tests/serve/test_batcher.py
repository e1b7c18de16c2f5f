"""The dynamic batcher: length-sorted token-budget batches, each caller's results in its order,
concurrent callers sharing batches, failures and shutdown."""
from __future__ import annotations

import asyncio
import threading

import pytest

from openbert.errors import OpenBertError
from openbert.serve.batcher import Batcher, ShuttingDown, plan_batches
from openbert.serve.metrics import server_metrics


def test_plan_batches_sorts_by_length_and_keeps_the_padded_budget():
    lengths = [5, 1, 9, 3, 3, 8]
    batches = plan_batches(lengths, 12)
    assert sorted(i for b in batches for i in b) == list(range(6))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths)  # length-sorted
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 12 or len(b) == 1
    assert plan_batches([100, 2], 10) == [[1], [0]]  # longer than the budget: alone
    assert plan_batches([], 10) == []


class Recorder:
    """A runner that records each batch and answers each feature with (feature, batch number)."""

    def __init__(self, gate: threading.Event | None = None):
        self.batches: list[list] = []
        self.gate = gate

    def __call__(self, features):
        if self.gate is not None:
            assert self.gate.wait(30)
        self.batches.append(list(features))
        return [(f, len(self.batches)) for f in features]


def _run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_requests_on_their_way_share_a_batch_and_each_gets_its_own_results_in_order():
    rec = Recorder()
    # max_wait is far longer than the test may take: the batch starts when nobody else is on the way
    batcher = Batcher({"embed": rec}, max_batch_tokens=1000, max_wait_ms=600_000, metrics=server_metrics())

    async def caller(r):
        with batcher.arriving() as ticket:
            await asyncio.sleep(0.01 * r)  # reading and tokenizing, each its own time
            return await batcher.submit("embed", [f"r{r}-{i}" for i in range(3)], [r + 1, 2, 3], ticket)

    async def main():
        batcher.start()
        return await asyncio.gather(*(caller(r) for r in range(5)))

    try:
        results = _run(main())
    finally:
        batcher.close(30)
    for r, res in enumerate(results):
        assert [f for f, _ in res] == [f"r{r}-{i}" for i in range(3)]
    assert len(rec.batches) == 1 and len(rec.batches[0]) == 15  # the five waited for one another
    m = batcher.metrics
    assert m.value("batch_size", task="embed") == (15.0, 1)
    assert m.value("sequences_total", task="embed") == 15


def test_a_lone_request_does_not_wait_for_company():
    rec = Recorder()
    batcher = Batcher({"embed": rec}, max_batch_tokens=1000, max_wait_ms=600_000).start()
    try:
        assert [f for f, _ in _run(batcher.submit("embed", ["only"], [3]))] == ["only"]
        with_ticket_given_up = batcher.arriving()  # a request that fails before submitting
        with pytest.raises(ValueError), with_ticket_given_up:
            raise ValueError("bad request")
        assert [f for f, _ in _run(batcher.submit("embed", ["next"], [3]))] == ["next"]
    finally:
        batcher.close(30)


def test_batches_respect_the_token_budget():
    rec = Recorder()
    batcher = Batcher({"embed": rec}, max_batch_tokens=8, max_wait_ms=1).start()
    try:
        out = _run(batcher.submit("embed", ["a", "b", "c", "d", "e"], [4, 4, 4, 1, 1]))
    finally:
        batcher.close(30)
    assert [f for f, _ in out] == ["a", "b", "c", "d", "e"]
    for b in rec.batches:
        lengths = {"a": 4, "b": 4, "c": 4, "d": 1, "e": 1}
        assert len(b) * max(lengths[f] for f in b) <= 8


def test_tasks_never_share_a_batch():
    rec_a, rec_b = Recorder(), Recorder()
    batcher = Batcher({"a": rec_a, "b": rec_b}, max_batch_tokens=1000, max_wait_ms=50).start()

    async def main():
        return await asyncio.gather(batcher.submit("a", ["x", "y"], [1, 1]), batcher.submit("b", ["z"], [1]))

    try:
        ra, rb = _run(main())
    finally:
        batcher.close(30)
    assert [f for f, _ in ra] == ["x", "y"] and [f for f, _ in rb] == ["z"]
    assert all(f in ("x", "y") for b in rec_a.batches for f in b)
    assert rec_b.batches == [["z"]]


def test_a_failing_batch_fails_its_callers_only_and_the_batcher_keeps_working():
    def runner(features):
        if "bad" in features:
            raise ValueError("boom")
        return list(features)

    batcher = Batcher({"t": runner}, max_batch_tokens=1, max_wait_ms=0).start()  # one sequence a batch

    async def main():
        bad = batcher.submit("t", ["bad"], [1])
        good = batcher.submit("t", ["good"], [1])
        return await asyncio.gather(bad, good, return_exceptions=True)

    try:
        bad, good = _run(main())
        again = _run(batcher.submit("t", ["again"], [1]))
    finally:
        batcher.close(30)
    assert isinstance(bad, ValueError) and good == ["good"] and again == ["again"]


def test_close_finishes_the_queue_then_refuses_new_work():
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = Batcher({"t": rec}, max_batch_tokens=1, max_wait_ms=0).start()

    async def main():
        tasks = [asyncio.ensure_future(batcher.submit("t", [i], [1])) for i in range(4)]
        while batcher.queued != 3:  # the worker has taken the first batch and waits at the gate
            await asyncio.sleep(0.01)
        closer = threading.Thread(target=batcher.close, args=(30,))
        closer.start()
        gate.set()
        done = await asyncio.gather(*tasks)
        closer.join(30)
        with pytest.raises(ShuttingDown):
            await batcher.submit("t", [9], [1])
        return done

    done = _run(main())
    assert [d[0][0] for d in done] == [0, 1, 2, 3]
    assert not batcher._thread.is_alive()


def test_a_cancelled_callers_sequences_are_dropped_from_the_queue():
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = Batcher({"t": rec}, max_batch_tokens=1, max_wait_ms=0).start()

    async def main():
        first = asyncio.ensure_future(batcher.submit("t", ["first"], [1]))
        while batcher.queued:
            await asyncio.sleep(0.01)
        gone = asyncio.ensure_future(batcher.submit("t", ["gone-1", "gone-2"], [1, 1]))
        await asyncio.sleep(0.05)
        gone.cancel()
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await batcher.submit("t", ["last"], [1])

    try:
        first, last = _run(main())
    finally:
        batcher.close(30)
    assert [f for b in rec.batches for f in b] == ["first", "last"]


def test_bad_settings_are_errors():
    with pytest.raises(OpenBertError, match="max_batch_tokens"):
        Batcher({}, max_batch_tokens=0)
    with pytest.raises(OpenBertError, match="max_wait_ms"):
        Batcher({}, max_wait_ms=-1)

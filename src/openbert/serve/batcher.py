"""Dynamic batching: concurrent requests' sequences run through the model together.

A caller (a request handler on the event loop) submits its sequences and awaits its own results,
in its own order. One worker thread owns the model. Before running, it waits for company: until
the queue holds ``max_batch_tokens`` tokens, or its oldest sequence has waited ``max_wait_ms``, or
no other request is on its way (callers announce themselves with :meth:`Batcher.arriving` while
they read and tokenize), so a lone request runs at once and a burst shares one batch; while the
model is busy, new requests queue up and go together into the next batch. It then sorts what is
queued by length, cuts it into batches of at most ``max_batch_tokens`` padded tokens
(sequences x longest) and runs the batch that holds the oldest sequence; the rest stay queued and
may be joined by newer arrivals. The oldest sequence is always served next, so nothing starves.
Sequences of different tasks (embed, classify, ...) never share a batch.

``runners[task](features) -> results`` runs one batch (one result per feature, in order); it is
called on the worker thread only.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ..errors import OpenBertError

logger = logging.getLogger(__name__)


class ShuttingDown(RuntimeError):
    """The batcher is closed: no new work is accepted."""


class _Request:
    """One caller's sequences: results fill in as their batches finish; the future resolves once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future, n: int):
        self.loop, self.future = loop, future
        self.results: list = [None] * n
        self.remaining = n
        self.failed = False

    @property
    def cancelled(self) -> bool:
        return self.future.cancelled()

    def deliver(self, index: int, value) -> None:
        self.results[index] = value
        self.remaining -= 1
        if self.remaining == 0 and not self.failed:
            self._resolve(lambda f: f.set_result(self.results))

    def fail(self, exc: BaseException) -> None:
        if not self.failed:
            self.failed = True
            self._resolve(lambda f: f.set_exception(exc))

    def _resolve(self, how) -> None:
        def done():
            if not self.future.done():
                how(self.future)
        try:
            self.loop.call_soon_threadsafe(done)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


class _Ticket:
    settled = False


@dataclass
class _Item:
    request: _Request
    index: int  # position in the request
    task: str
    feature: object
    length: int
    enqueued: float


def plan_batches(lengths: Sequence[int], max_batch_tokens: int) -> list[list[int]]:
    """Indexes sorted by length (stable), cut into batches of at most ``max_batch_tokens`` padded
    tokens (``len(batch) * longest``); a sequence longer than the budget runs alone."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, current = [], []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > max_batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class Batcher:
    """Queue + one worker thread. ``await submit(task, features, lengths)`` -> that call's results.

    ``metrics`` (a :class:`~openbert.serve.metrics.Metrics` with the server families) is optional.
    ``close()`` stops taking work, runs everything queued, then joins the worker.
    """

    def __init__(self, runners: Mapping[str, Callable[[list], list]], max_batch_tokens: int = 16384,
                 max_wait_ms: float = 5.0, metrics=None):
        if max_batch_tokens < 1:
            raise OpenBertError(f"--max_batch_tokens must be at least 1, got {max_batch_tokens}")
        if max_wait_ms < 0:
            raise OpenBertError(f"--max_wait_ms must be >= 0, got {max_wait_ms}")
        self.runners = dict(runners)
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.metrics = metrics
        self._pending: list[_Item] = []
        self._arriving = 0  # requests announced by arriving() and not yet submitted
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- the caller's side (event loop) ----------------------------------------------------
    def start(self) -> "Batcher":
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="openbert-batcher", daemon=True)
            self._thread.start()
        return self

    @contextlib.contextmanager
    def arriving(self):
        """Announce a request that will submit soon (while it reads and tokenizes its inputs):
        queued sequences wait for it, at most ``max_wait_ms``. Yields a ticket for ``submit``."""
        ticket = _Ticket()
        with self._cond:
            self._arriving += 1
        try:
            yield ticket
        finally:
            self._settle(ticket)

    def _settle(self, ticket: "_Ticket | None") -> None:
        """The announced request has submitted (or given up); called with or without the lock."""
        if ticket is not None and not ticket.settled:
            ticket.settled = True
            with self._cond:
                self._arriving -= 1
                self._cond.notify()

    async def submit(self, task: str, features: Sequence, lengths: Sequence[int],
                     ticket: "_Ticket | None" = None) -> list:
        """Queue ``features`` (``lengths`` tokens each) for ``task``; -> their results in order.
        ``ticket``: from :meth:`arriving`, settled here together with the queueing."""
        if task not in self.runners:
            raise KeyError(f"no runner for task {task!r}")
        if len(features) != len(lengths):
            raise ValueError(f"{len(features)} features but {len(lengths)} lengths")
        if not features:
            self._settle(ticket)
            return []
        loop = asyncio.get_running_loop()
        request = _Request(loop, loop.create_future(), len(features))
        now = time.perf_counter()
        with self._cond:
            if ticket is not None and not ticket.settled:
                ticket.settled = True
                self._arriving -= 1
            if self._closing or self._thread is None:
                raise ShuttingDown("the server is shutting down")
            for i, (f, n) in enumerate(zip(features, lengths)):
                self._pending.append(_Item(request, i, task, f, int(n), now))
            self._gauge()
            self._cond.notify()
        return await request.future

    def close(self, timeout: float | None = None) -> None:
        """Take no more work; finish what is queued; wait for the worker (at most ``timeout`` s)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._pending)

    # -- the worker thread ------------------------------------------------------------------
    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.set("queue_size", len(self._pending))

    def _next_batch(self) -> list[_Item] | None:
        """Block until a batch is due; -> its items (removed from the queue), or None to stop."""
        with self._cond:
            while True:
                # a caller that went away (cancelled) or already failed needs nothing more
                self._pending = [it for it in self._pending if not (it.request.cancelled or it.request.failed)]
                if self._pending:
                    if (self._closing or self._arriving == 0
                            or sum(it.length for it in self._pending) >= self.max_batch_tokens):
                        break
                    left = self._pending[0].enqueued + self.max_wait - time.perf_counter()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                elif self._closing:
                    return None
                else:
                    self._cond.wait()
            oldest = self._pending[0]
            group = [it for it in self._pending if it.task == oldest.task]
            batches = plan_batches([it.length for it in group], self.max_batch_tokens)
            chosen = next(b for b in batches if 0 in b)  # group[0] is the oldest item
            batch = [group[i] for i in chosen]
            taken = {id(it) for it in batch}
            self._pending = [it for it in self._pending if id(it) not in taken]
            self._gauge()
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: list[_Item]) -> None:
        task = batch[0].task
        start = time.perf_counter()
        try:
            results = self.runners[task]([it.feature for it in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the {task} runner gave {len(results)} results for {len(batch)} inputs")
        except BaseException as e:  # noqa: BLE001 (handed to the callers, who answer 500)
            logger.exception("a %s batch of %d sequences failed", task, len(batch))
            for it in batch:
                it.request.fail(e)
            return
        finally:
            if self.metrics is not None:
                m, seconds = self.metrics, time.perf_counter() - start
                m.observe("batch_size", len(batch), task=task)
                m.observe("batch_tokens", len(batch) * max(it.length for it in batch), task=task)
                m.observe("inference_duration_seconds", seconds, task=task)
                m.inc("sequences_total", len(batch), task=task)
                for it in batch:
                    m.observe("queue_duration_seconds", start - it.enqueued)
        for it, r in zip(batch, results):
            it.request.deliver(it.index, r)

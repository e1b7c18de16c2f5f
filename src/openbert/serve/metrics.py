"""Server metrics in the Prometheus text exposition format (version 0.0.4), without a dependency.

:class:`Metrics` holds counters, gauges and histograms keyed by label values; every method is
thread-safe (the batcher's worker thread and the event loop both record). ``render()`` -> the text
that ``GET /metrics`` returns.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


@dataclass
class _Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    label_names: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    # label values -> value (counter / gauge) or [bucket counts..., sum, count] (histogram)
    series: dict = field(default_factory=dict)


def _fmt(v: float) -> str:
    v = float(v)
    if v == math.inf:
        return "+Inf"
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters, gauges and histograms; ``render()`` gives the Prometheus text format."""

    def __init__(self, prefix: str = "openbert"):
        self.prefix = prefix
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}

    def _family(self, name: str, kind: str, help: str, label_names=(), buckets=()) -> _Family:
        fam = self._families.get(name)
        if fam is None:
            fam = self._families[name] = _Family(f"{self.prefix}_{name}", kind, help, tuple(label_names),
                                                 tuple(buckets))
        return fam

    def counter(self, name: str, help: str, label_names=()) -> None:
        with self._lock:
            self._family(name, "counter", help, label_names)

    def gauge(self, name: str, help: str, label_names=()) -> None:
        with self._lock:
            self._family(name, "gauge", help, label_names)

    def histogram(self, name: str, help: str, buckets, label_names=()) -> None:
        with self._lock:
            self._family(name, "histogram", help, label_names, buckets)

    def inc(self, name: str, amount: float = 1.0, **labels) -> None:
        """Add ``amount`` to a counter or gauge."""
        with self._lock:
            fam = self._families[name]
            key = tuple(str(labels[n]) for n in fam.label_names)
            fam.series[key] = fam.series.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels) -> None:
        with self._lock:
            fam = self._families[name]
            fam.series[tuple(str(labels[n]) for n in fam.label_names)] = float(value)

    def observe(self, name: str, value: float, **labels) -> None:
        """Record one observation in a histogram."""
        with self._lock:
            fam = self._families[name]
            key = tuple(str(labels[n]) for n in fam.label_names)
            row = fam.series.get(key)
            if row is None:
                row = fam.series[key] = [0] * len(fam.buckets) + [0.0, 0]
            for i, upper in enumerate(fam.buckets):
                if value <= upper:
                    row[i] += 1
            row[-2] += value
            row[-1] += 1

    def value(self, name: str, **labels):
        """A counter's / gauge's value, or a histogram's ``(sum, count)`` (0 when never recorded)."""
        with self._lock:
            fam = self._families[name]
            row = fam.series.get(tuple(str(labels[n]) for n in fam.label_names))
            if fam.kind == "histogram":
                return (0.0, 0) if row is None else (row[-2], row[-1])
            return 0.0 if row is None else row

    def render(self) -> str:
        lines = []
        with self._lock:
            for fam in self._families.values():
                lines.append(f"# HELP {fam.name} {fam.help}")
                lines.append(f"# TYPE {fam.name} {fam.kind}")
                for key, v in sorted(fam.series.items()):
                    pairs = [f'{n}="{_escape(x)}"' for n, x in zip(fam.label_names, key)]
                    if fam.kind != "histogram":
                        lines.append(f"{fam.name}{_labels(pairs)} {_fmt(v)}")
                        continue
                    for upper, c in zip((*fam.buckets, math.inf), (*v[:len(fam.buckets)], v[-1])):
                        le = _labels(pairs + [f'le="{_fmt(upper)}"'])
                        lines.append(f"{fam.name}_bucket{le} {c}")
                    lines.append(f"{fam.name}_sum{_labels(pairs)} {_fmt(v[-2])}")
                    lines.append(f"{fam.name}_count{_labels(pairs)} {v[-1]}")
        return "\n".join(lines) + "\n"


def _labels(pairs: list[str]) -> str:
    return "{" + ",".join(pairs) + "}" if pairs else ""


def server_metrics() -> Metrics:
    """The families ``openbert serve`` records (requests, batches, queue time, latency)."""
    m = Metrics()
    m.counter("requests_total", "HTTP requests by route and status code", ("route", "status"))
    m.histogram("request_duration_seconds", "time from request received to response ready",
                LATENCY_BUCKETS, ("route",))
    m.gauge("requests_in_flight", "requests being handled now")
    m.histogram("queue_duration_seconds", "time a sequence waited in the queue before its batch ran",
                LATENCY_BUCKETS)
    m.histogram("batch_size", "sequences per model batch", SIZE_BUCKETS, ("task",))
    m.histogram("batch_tokens", "padded tokens (sequences x longest) per model batch", TOKEN_BUCKETS,
                ("task",))
    m.histogram("inference_duration_seconds", "model time per batch", LATENCY_BUCKETS, ("task",))
    m.gauge("queue_size", "sequences waiting for a batch")
    m.counter("sequences_total", "sequences run through the model", ("task",))
    return m

"""Prometheus text format of the server metrics."""
from __future__ import annotations

import re

from openbert.serve.metrics import Metrics, server_metrics


def test_counters_gauges_and_histograms_render_in_the_text_format():
    m = Metrics("x")
    m.counter("requests_total", "requests", ("route", "status"))
    m.gauge("queue", "queued")
    m.histogram("size", "sizes", (1, 4), ("task",))
    m.inc("requests_total", route="/embed", status=200)
    m.inc("requests_total", 2, route="/embed", status=200)
    m.inc("requests_total", route='/a"b', status=422)
    m.set("queue", 3)
    for v in (1, 3, 9):
        m.observe("size", v, task="embed")
    text = m.render()
    assert "# HELP x_requests_total requests\n# TYPE x_requests_total counter\n" in text
    assert 'x_requests_total{route="/embed",status="200"} 3\n' in text
    assert 'x_requests_total{route="/a\\"b",status="422"} 1\n' in text
    assert "# TYPE x_queue gauge\nx_queue 3\n" in text
    assert 'x_size_bucket{task="embed",le="1"} 1\n' in text
    assert 'x_size_bucket{task="embed",le="4"} 2\n' in text  # cumulative
    assert 'x_size_bucket{task="embed",le="+Inf"} 3\n' in text
    assert 'x_size_sum{task="embed"} 13\n' in text and 'x_size_count{task="embed"} 3\n' in text
    assert m.value("size", task="embed") == (13.0, 3) and m.value("requests_total", route="/x", status=1) == 0.0
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$|^[a-z_]+\{.*\} [0-9]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line) or '\\"' in line, line


def test_server_families_exist_before_any_request():
    text = server_metrics().render()
    for name in ("requests_total", "request_duration_seconds", "queue_duration_seconds", "batch_size",
                 "batch_tokens", "inference_duration_seconds", "queue_size", "requests_in_flight"):
        assert f"# TYPE openbert_{name} " in text

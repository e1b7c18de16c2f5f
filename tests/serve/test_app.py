"""`openbert serve` for real: a subprocess on 127.0.0.1 (a free port it picks), a tiny model, bounded
requests with timeouts. Every route, the response schemas, bad requests, batching of concurrent
requests (seen in /metrics), outputs equal to openbert.encode / the pipelines, SIGTERM drain."""
from __future__ import annotations

import base64
import json
import signal
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

import openbert  # noqa: E402
from loopback import TIMEOUT, ServerProcess, metric, post, request  # noqa: E402

TEXTS = ["the cat sat on the mat", "paris is the capital of france", "who went to the store ?",
         "the big red dog went north and the small blue cat went south", "a"]


@pytest.fixture(scope="module")
def mlm_server(tiny_models, tmp_path_factory):
    """The masked-LM model: /v1/embeddings, /embed, /fill-mask. Requests wait up to 300 ms for
    company, so concurrent ones share batches."""
    s = ServerProcess(tiny_models["mlm"], tmp_path_factory.mktemp("mlm") / "server.log", "--max_wait_ms=300",
                      "--max_client_batch_size=8")
    yield s.ready()
    s.stop()


@pytest.fixture(scope="module")
def encode_ref(tiny_models):
    def ref(texts, **kw):
        return openbert.encode(texts, tiny_models["mlm"], max_seq_length=64, **kw)
    return ref


def test_index_health_and_routes(mlm_server):
    status, index, _ = request(mlm_server.port, "GET", "/")
    assert status == 200 and index["tasks"] == ["fill-mask", "embed"]
    posts = [r["path"] for r in index["routes"] if r["method"] == "POST"]
    assert posts == ["/v1/embeddings", "/embed", "/fill-mask"]
    assert {r["path"] for r in index["routes"] if r["method"] == "GET"} == {"/", "/health", "/metrics"}
    assert request(mlm_server.port, "GET", "/health")[:2] == (200, {"status": "ok"})


def test_openai_embeddings(mlm_server, encode_ref, tiny_models):
    status, out = post(mlm_server.port, "/v1/embeddings", {"input": TEXTS, "model": "tiny"})
    assert status == 200
    assert out["object"] == "list" and out["model"] == "tiny"
    assert [d["index"] for d in out["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 32 for d in out["data"])
    np.testing.assert_allclose([d["embedding"] for d in out["data"]], encode_ref(TEXTS), atol=1e-4)
    from openbert.tokenization import FullTokenizer

    tok = FullTokenizer(tiny_models["mlm"] / "vocab.txt")
    tokens = sum(len(tok.tokenize(t)) + 2 for t in TEXTS)
    assert out["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    # a single string, and base64 (what the openai client asks for by default)
    status, one = post(mlm_server.port, "/v1/embeddings", {"input": TEXTS[0], "encoding_format": "base64"})
    assert status == 200 and len(one["data"]) == 1
    vec = np.frombuffer(base64.b64decode(one["data"][0]["embedding"]), np.float32)
    np.testing.assert_allclose(vec, encode_ref(TEXTS[0]), atol=1e-4)


def test_tei_embed(mlm_server, encode_ref):
    status, out = post(mlm_server.port, "/embed", {"inputs": TEXTS})
    ref = encode_ref(TEXTS)
    assert status == 200 and isinstance(out, list) and len(out) == len(TEXTS)
    np.testing.assert_allclose(out, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-4)  # normalize: true
    status, raw = post(mlm_server.port, "/embed", {"inputs": TEXTS[1], "normalize": False})
    assert status == 200 and len(raw) == 1
    np.testing.assert_allclose(raw[0], ref[1], atol=1e-4)
    long = "the cat sat on the mat " * 20
    status, cut = post(mlm_server.port, "/embed", {"inputs": [long], "normalize": False})  # truncated
    assert status == 200
    np.testing.assert_allclose(cut[0], encode_ref(long), atol=1e-4)
    status, err = post(mlm_server.port, "/embed", {"inputs": [long], "truncate": False})
    assert status == 413 and "more than max_seq_length 64" in err["error"] and err["error_type"] == "Validation"


def test_fill_mask_route_equals_the_pipeline(mlm_server, tiny_models):
    texts = ["the [MASK] sat on the mat", "paris is the [MASK] of france"]
    status, out = post(mlm_server.port, "/fill-mask", {"inputs": texts, "top_k": 3})
    assert status == 200
    ref = openbert.pipeline("fill-mask", model=tiny_models["mlm"], max_seq_length=64)(texts, top_k=3)
    assert [o["tokens"] for o in out] == [r["tokens"] for r in ref]
    for o, r in zip(out, ref):
        assert [p["token"] for p in o["masks"][0]["predictions"]] == [p["token"] for p in r["masks"][0]["predictions"]]
        np.testing.assert_allclose([p["probability"] for p in o["masks"][0]["predictions"]],
                                   [p["probability"] for p in r["masks"][0]["predictions"]], atol=1e-4)
    status, err = post(mlm_server.port, "/fill-mask", {"inputs": "no mask here"})
    assert status == 422 and "has no [MASK]" in err["error"]


@pytest.mark.parametrize("path, raw, status, words", [
    ("/embed", b"{not json", 400, "not valid JSON"),
    ("/embed", b"[1, 2]", 400, "must be a JSON object"),
    ("/embed", b"{}", 422, 'missing "inputs"'),
    ("/embed", b'{"inputs": 3}', 422, "non-empty string"),
    ("/embed", b'{"inputs": ""}', 422, '"inputs" is empty'),
    ("/embed", b'{"inputs": []}', 422, "non-empty"),
    ("/embed", b'{"inputs": ["a", 7]}', 422, '"inputs"[1] must be a string'),
    ("/embed", b'{"inputs": "a", "normalize": "yes"}', 422, "option normalize must be bool"),
    ("/embed", json.dumps({"inputs": ["a"] * 9}).encode(), 413, "at most --max_client_batch_size=8"),
    ("/v1/embeddings", b'{"input": [[1, 2, 3]]}', 422, "token ids are not accepted"),
    ("/v1/embeddings", b'{"input": "a", "dimensions": 8}', 422, "32-dimensional"),
    ("/v1/embeddings", b'{"input": "a", "encoding_format": "int8"}', 422, "encoding_format"),
    ("/fill-mask", b'{"inputs": "a [MASK]", "top_k": 0}', 422, "top_k must be from 1 to 1000"),
    ("/qa", b'{"question": "q", "context": "c"}', 404, "cannot do qa"),
    ("/nowhere", b"{}", 404, "Not Found"),
])
def test_bad_requests_get_a_4xx_json_error(mlm_server, path, raw, status, words):
    got, body, _ = request(mlm_server.port, "POST", path, raw=raw)
    assert got == status
    message = body["error"]["message"] if path.startswith("/v1/") else body["error"]
    assert words in message
    if path.startswith("/v1/"):
        assert body["error"]["type"] == "invalid_request_error"


def test_wrong_method_and_the_server_keeps_serving(mlm_server):
    status, body, _ = request(mlm_server.port, "GET", "/embed")
    assert status == 405 and "error" in body
    assert post(mlm_server.port, "/embed", {"inputs": "still here"})[0] == 200


def test_concurrent_requests_are_batched_and_each_gets_its_own_results(mlm_server, encode_ref):
    before = request(mlm_server.port, "GET", "/metrics")[1]
    n = 8
    bodies = [{"inputs": [TEXTS[(i + j) % len(TEXTS)] + f" {'cat ' * i}" for j in range(3)], "normalize": False}
              for i in range(n)]
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def client(i):
        barrier.wait(TIMEOUT)
        results[i] = post(mlm_server.port, "/embed", bodies[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads)
    for body, (status, out) in zip(bodies, results):
        assert status == 200
        np.testing.assert_allclose(out, encode_ref(body["inputs"]), atol=1e-4)
    status, after, headers = request(mlm_server.port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    sequences = metric(after, "openbert_sequences_total", task="embed") - metric(before, "openbert_sequences_total",
                                                                                task="embed")
    batches = (metric(after, "openbert_batch_size_count", task="embed")
               - metric(before, "openbert_batch_size_count", task="embed"))
    assert sequences == 3 * n
    assert batches < n  # requests shared batches
    assert metric(after, "openbert_requests_total", route="/embed", status="200") >= n
    assert metric(after, "openbert_queue_duration_seconds_count") >= 3 * n
    assert "# TYPE openbert_request_duration_seconds histogram" in after


def test_classifier_and_qa_servers(tiny_models, tmp_path):
    cls = ServerProcess(tiny_models["cls"], tmp_path / "cls.log")
    qa = ServerProcess(tiny_models["qa2"], tmp_path / "qa.log")  # both start at once
    try:
        cls.ready()
        index = request(cls.port, "GET", "/")[1]
        assert [r["path"] for r in index["routes"] if r["method"] == "POST"] == ["/v1/embeddings", "/embed", "/predict"]
        inputs = [TEXTS[0], ["great movie", "bad film"]]
        status, out = post(cls.port, "/predict", {"inputs": inputs})
        ref = openbert.pipeline("classify", model=tiny_models["cls"])([TEXTS[0], ("great movie", "bad film")])
        assert status == 200 and [o["label"] for o in out] == [r["label"] for r in ref]
        for o, r in zip(out, ref):
            assert set(o) == {"label", "score", "scores"} and list(o["scores"]) == ["neg", "neu", "pos"]
            np.testing.assert_allclose(list(o["scores"].values()), list(r["scores"].values()), atol=1e-4)
        assert post(cls.port, "/predict", {"inputs": [["a", "b", "c"]]})[0] == 422
        assert post(cls.port, "/fill-mask", {"inputs": "a [MASK]"})[0] == 404
        cls.stop()
        qa.ready()
        item = {"question": "where did the cat sit ?", "context": "The  cat sat on the mat.\nParis is big."}
        status, out = post(qa.port, "/qa", {**item, "null_score_diff_threshold": 1e9})
        ref = openbert.pipeline("qa", model=tiny_models["qa2"])(item, null_score_diff_threshold=1e9)
        assert status == 200 and len(out) == 1 and set(out[0]) == {"answer", "score", "start", "end"}
        assert out[0]["answer"] == ref["answer"] and (out[0]["start"], out[0]["end"]) == (ref["start"], ref["end"])
        assert out[0]["score"] == pytest.approx(ref["score"], abs=1e-4)
        assert " ".join(item["context"][out[0]["start"]:out[0]["end"]].split()) == out[0]["answer"]
        status, none = post(qa.port, "/qa", {"inputs": [item, item], "null_score_diff_threshold": -1e9})
        assert status == 200 and [o["answer"] for o in none] == ["", ""] and none[0]["start"] is None
        assert post(qa.port, "/qa", {"question": "q"})[0] == 422
        assert post(qa.port, "/qa", {"inputs": [{"question": "q", "context": ""}]})[0] == 422
    finally:
        cls.stop()
        qa.stop()


def _start_upload(port: int, path: str, body: bytes) -> socket.socket:
    """A request whose headers and first half of the body are sent: in flight until the rest comes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    sock.sendall(head + body[:len(body) // 2])
    return sock


def _finish_upload(sock: socket.socket, body: bytes):
    """Send the rest of the body; -> (status, JSON)."""
    with sock:
        sock.sendall(body[len(body) // 2:])
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def test_sigterm_finishes_the_requests_in_flight_then_exits(tiny_models, tmp_path, encode_ref):
    server = ServerProcess(tiny_models["mlm"], tmp_path / "drain.log").ready()
    try:
        bodies = [json.dumps({"inputs": TEXTS[i], "normalize": False}).encode() for i in range(3)]
        socks = [_start_upload(server.port, "/embed", b) for b in bodies]
        deadline = time.monotonic() + TIMEOUT
        while metric(request(server.port, "GET", "/metrics")[1], "openbert_requests_in_flight") < len(socks):
            assert time.monotonic() < deadline, "the requests never reached the server"
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + TIMEOUT
        while "finishing the requests in flight" not in server.text():
            assert time.monotonic() < deadline and server.proc.poll() is None, server.text()
            time.sleep(0.05)
        time.sleep(0.3)
        assert server.proc.poll() is None  # still draining: the requests are not done
        with pytest.raises(OSError):  # no new connections
            request(server.port, "GET", "/health", timeout=5)
        for i, (sock, body) in enumerate(zip(socks, bodies)):
            status, out = _finish_upload(sock, body)
            assert status == 200
            np.testing.assert_allclose(out[0], encode_ref(TEXTS[i]), atol=1e-4)
        assert server.proc.wait(TIMEOUT) == 0, server.text()
        assert "every request in flight was answered" in server.text()
    finally:
        server.stop()


def test_ner_server_tags_texts_and_word_lists(tiny_models, tmp_path):
    ner = ServerProcess(tiny_models["ner"], tmp_path / "ner.log")
    try:
        ner.ready()
        index = request(ner.port, "GET", "/")[1]
        assert index["tasks"] == ["ner", "embed"]
        assert [r["path"] for r in index["routes"] if r["method"] == "POST"] == ["/v1/embeddings", "/embed", "/ner"]
        pipe = openbert.pipeline("ner", model=tiny_models["ner"])
        text, words = "John Smith sat on the mat in paris.", ["the", "big", "dog"]
        status, out = post(ner.port, "/ner", {"inputs": text})
        ref = pipe(text)
        assert status == 200 and len(out) == 1
        assert out[0]["tags"] == ref["tags"] and out[0]["words"] == ref["words"]
        assert [(e["type"], e["start"], e["end"]) for e in out[0]["entities"]] == \
            [(e["type"], e["start"], e["end"]) for e in ref["entities"]]
        status, out = post(ner.port, "/ner", {"words": words})
        assert status == 200 and out[0]["tags"] == pipe([words])[0]["tags"]
        status, out = post(ner.port, "/ner", {"inputs": [words, ["a"]]})
        assert status == 200 and [o["words"] for o in out] == [words, ["a"]]
        assert post(ner.port, "/ner", {"words": ["a", ""]})[0] == 422
        assert post(ner.port, "/ner", {"inputs": [["a"], 3]})[0] == 422
        assert post(ner.port, "/predict", {"inputs": "a"})[0] == 404
    finally:
        ner.stop()

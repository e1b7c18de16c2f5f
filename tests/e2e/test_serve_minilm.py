"""`openbert serve` with the real MiniLM-L6: 32 concurrent loopback clients, every vector equal to
openbert.encode (slow)."""
from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

import openbert  # noqa: E402
from loopback import ROOT, TIMEOUT, ServerProcess, metric, post, request  # noqa: E402

CLIENTS = 32
REQUESTS_PER_CLIENT = 4


def _sentences(n: int) -> list[str]:
    """Real sentences (MRPC) when the shared data is there, else varied built-in ones."""
    shared = Path(os.environ.get("OPENBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
    path = shared / "glue" / "MRPC" / "msr_paraphrase_train.txt"
    if path.is_file():
        with open(path, encoding="utf-8-sig") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        return [r[3] for r in rows[:n]]
    words = ("the quick brown fox jumps over the lazy dog while a small bird sings in the old tree near "
             "the river and children play football in the park on a sunny afternoon").split()
    return [" ".join(words[i % 7:i % 7 + 3 + i % 23]) for i in range(n)]


@pytest.mark.slow
def test_minilm_server_32_concurrent_clients_vectors_equal_encode(minilm_dir, tmp_path):
    sentences = _sentences(CLIENTS * REQUESTS_PER_CLIENT * 3)
    server = ServerProcess(minilm_dir, tmp_path / "server.log", threads=2).ready()
    try:
        # client c, request r: 1 to 3 texts, so requests of different sizes share batches
        plan = [[sentences[(c * REQUESTS_PER_CLIENT + r) * 3:(c * REQUESTS_PER_CLIENT + r) * 3 + 1 + (c + r) % 3]
                 for r in range(REQUESTS_PER_CLIENT)] for c in range(CLIENTS)]
        got: dict = {}
        errors: list = []
        barrier = threading.Barrier(CLIENTS)

        def client(c):
            try:
                barrier.wait(TIMEOUT)
                for r, texts in enumerate(plan[c]):
                    path = "/v1/embeddings" if r % 2 else "/embed"
                    body = {"input": texts} if r % 2 else {"inputs": texts, "normalize": False}
                    status, out = post(server.port, path, body, timeout=TIMEOUT * 5)
                    assert status == 200, out
                    got[c, r] = [d["embedding"] for d in out["data"]] if r % 2 else out
            except BaseException as e:  # noqa: BLE001 (reported below)
                errors.append(e)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 10)
        assert not errors, errors[:3]
        assert not any(t.is_alive() for t in threads)
        texts = [t for c in range(CLIENTS) for r in range(REQUESTS_PER_CLIENT) for t in plan[c][r]]
        ref = openbert.encode(texts, minilm_dir, max_seq_length=512)
        vectors = [v for c in range(CLIENTS) for r in range(REQUESTS_PER_CLIENT) for v in got[c, r]]
        np.testing.assert_allclose(np.array(vectors), ref, atol=1e-4)
        text = request(server.port, "GET", "/metrics")[1]
        assert metric(text, "openbert_sequences_total", task="embed") >= len(texts)
        assert metric(text, "openbert_batch_size_count", task="embed") < CLIENTS * REQUESTS_PER_CLIENT
    finally:
        server.stop()

"""Throughput and latency of `openbert serve` (dynamic batching) on the loopback interface.

The same real sentences (MRPC; built-in ones without the shared data) are embedded by the same
model (MiniLM-L6 by default) three ways, in one run:

- offline: ``openbert.encode`` in this process (batches of 32, length-sorted): the ceiling (the
  better of a run before and one after the server phases);
- one client at a time: one request after another to the server;
- N concurrent clients (default 32), each on its own keep-alive connection.

Requests carry ``--texts_per_request`` texts (default 1) to ``--route`` (default /v1/embeddings).
The server is a subprocess (``openbert serve --num_threads=T``, T = this process's torch threads),
the clients are threads here. Every phase is bounded by a request count and ``--max_seconds``.
Prints texts/s, per-request p50 / p99 latency, CPU time per text (of the server process for the
served rows, of this process offline: steadier than wall time on a shared machine) and the ratios
(goals: N clients >= 0.8x offline, >= 2x one client), and checks the server's vectors against the
offline ones.

Usage: ``python benchmarks/serve.py [--model minilm-l6] [--clients 32] [--requests 1024]``
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared machines: idle OpenMP threads must not spin

import argparse
import csv
import http.client
import json
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

try:  # lighter clients (they share the machine with the server)
    from orjson import dumps as _dumps, loads as _loads
except ImportError:
    def _dumps(obj) -> bytes:
        return json.dumps(obj).encode()
    _loads = json.loads

import openbert
from openbert.checkpoints.assets import model_path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("OPENBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def sentences(n: int) -> list[str]:
    path = DATA / "glue" / "MRPC" / "msr_paraphrase_test.txt"
    if path.is_file():
        with open(path, encoding="utf-8-sig") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        texts = [s for r in rows for s in (r[3], r[4])]
    else:
        words = ("the quick brown fox jumps over the lazy dog while a small bird sings in the old tree "
                 "near the river and children play football in the park on a sunny afternoon").split()
        texts = [" ".join(words[i % 9:i % 9 + 6 + i % 19]) for i in range(2000)]
    return [texts[i % len(texts)] for i in range(n)]


class Server:
    """`openbert serve` on 127.0.0.1, a free port; stopped with SIGTERM."""

    def __init__(self, model: str, threads: int, flags: list[str]):
        self.log = tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False)
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen([sys.executable, "-m", "openbert", "serve", f"--init_checkpoint={model}",
                                      "--port=0", f"--num_threads={threads}", *flags],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            m = re.search(r"on http://127\.0\.0\.1:(\d+)", Path(self.log.name).read_text(errors="replace"))
            if m and self._healthy(int(m.group(1))):
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"the server did not start:\n{Path(self.log.name).read_text(errors='replace')}")

    @staticmethod
    def _healthy(port: int) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except OSError:
            return False

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used (Linux /proc; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        os.unlink(self.log.name)


def _body(route: str, texts: list[str]) -> bytes:
    return _dumps({"input": texts} if route == "/v1/embeddings" else {"inputs": texts, "normalize": False})


def _vectors(route: str, out) -> list:
    return [d["embedding"] for d in out["data"]] if route == "/v1/embeddings" else out


def run_clients(port: int, route: str, batches: list[list[str]], clients: int, max_seconds: float):
    """``clients`` threads share ``batches`` (requests) in order until done or out of time;
    -> (seconds, texts done, latencies, {request index: vectors})."""
    lock = threading.Lock()
    state = {"next": 0}
    latencies: list[float] = []
    vectors: dict[int, list] = {}
    errors: list = []
    deadline = time.perf_counter() + max_seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= len(batches):
                    return
                t0 = time.perf_counter()
                conn.request("POST", route, body=_body(route, batches[i]),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                out = _loads(resp.read())
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status}: {out}")
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    vectors[i] = _vectors(route, out)
        except BaseException as e:  # noqa: BLE001 (reported)
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + 300)
    seconds = time.perf_counter() - start
    if errors:
        raise SystemExit(f"client error: {errors[0]!r}")
    return seconds, sum(len(batches[i]) for i in vectors), latencies, vectors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm-l6", help="a named model or a checkpoint path")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=1024, help="requests of the concurrent phase")
    p.add_argument("--single_requests", type=int, default=256, help="requests of the one-client phase")
    p.add_argument("--texts_per_request", type=int, default=1)
    p.add_argument("--route", default="/v1/embeddings", choices=("/v1/embeddings", "/embed"))
    p.add_argument("--max_seconds", type=float, default=120.0, help="time bound of each phase")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, both sides")
    p.add_argument("--server_flags", default="", help="extra `openbert serve` flags, space-separated")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    model = model_path(args.model)
    k = args.texts_per_request
    batches = [sentences(args.requests * k)[i * k:(i + 1) * k] for i in range(args.requests)]
    single = batches[:args.single_requests]
    texts = [t for b in batches for t in b]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads; model {args.model}; {len(texts)} texts, {k} per request, {args.route}")

    def run_offline():
        t0, c0 = time.perf_counter(), time.process_time()
        vectors = openbert.encode(texts, model, max_seq_length=512, batch_size=32)
        return vectors, len(texts) / (time.perf_counter() - t0), (time.process_time() - c0) / len(texts)

    openbert.encode(texts[:64], model, max_seq_length=512)  # load + warm up
    offline, offline_rate, offline_cpu = run_offline()

    server = Server(model, args.threads, args.server_flags.split())
    try:
        run_clients(server.port, args.route, batches[:2 * args.clients], args.clients, 60)  # warm up
        c0 = server.cpu_seconds()
        s1, n1, lat1, _ = run_clients(server.port, args.route, single, 1, args.max_seconds)
        c1 = server.cpu_seconds()
        sn, nn, latn, vecs = run_clients(server.port, args.route, batches, args.clients, args.max_seconds)
        c2 = server.cpu_seconds()
    finally:
        server.stop()
    _, again_rate, again_cpu = run_offline()
    offline_rate, offline_cpu = max(offline_rate, again_rate), min(offline_cpu, again_cpu)
    cpu1 = None if c0 is None else (c1 - c0) / n1
    cpun = None if c0 is None else (c2 - c1) / nn
    got = np.array([v for i in sorted(vecs) for v in vecs[i]])
    want = np.concatenate([offline[i * k:(i + 1) * k] for i in sorted(vecs)])
    diff = float(np.abs(got - want).max())

    one_rate, n_rate = n1 / s1, nn / sn
    ms = lambda xs, q: 1000 * float(np.percentile(xs, q))  # noqa: E731
    rows = [("offline openbert.encode (batch 32)", offline_rate, None, None, offline_cpu, len(texts)),
            ("1 client at a time", one_rate, ms(lat1, 50), ms(lat1, 99), cpu1, n1),
            (f"{args.clients} concurrent clients", n_rate, ms(latn, 50), ms(latn, 99), cpun, nn)]
    print("| how | texts/s | p50 ms | p99 ms | CPU ms/text | texts |\n|---|---|---|---|---|---|")
    for name, rate, p50, p99, cpu, n in rows:
        lat = f"{p50:.1f} | {p99:.1f}" if p50 is not None else "- | -"
        print(f"| {name} | {rate:.1f} | {lat} | {'-' if cpu is None else f'{1000 * cpu:.2f}'} | {n} |")
    print(f"{args.clients} clients / offline: {n_rate / offline_rate:.2f}x (goal >= 0.8); "
          f"/ one client: {n_rate / one_rate:.2f}x (goal >= 2); max |server - offline| {diff:.2e}")


if __name__ == "__main__":
    main()

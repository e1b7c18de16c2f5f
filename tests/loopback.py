"""`openbert serve` in a subprocess on the loopback interface, and a small HTTP client (stdlib only),
for the tests that run the real server."""
from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60  # seconds for any one request


class ServerProcess:
    """``openbert serve`` in a subprocess; its log in a file; ``port`` read from the log."""

    def __init__(self, model, log: Path, *flags: str, threads: int = 1):
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "OMP_NUM_THREADS": str(threads)}
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "openbert", "serve", f"--init_checkpoint={model}",
                                      "--host=127.0.0.1", "--port=0", f"--num_threads={threads}", *flags],
                                     stdout=self._log_file, stderr=subprocess.STDOUT, env=env)
        self.port = None

    def ready(self) -> "ServerProcess":
        """Wait (at most 3 minutes) until GET /health answers."""
        if self.port is None:
            self.port = self._wait_ready(deadline=time.monotonic() + 180)
        return self

    def _wait_ready(self, deadline: float) -> int:
        port = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.text()}")
            if port is None:
                m = re.search(r"on http://127\.0\.0\.1:(\d+)", self.text())
                port = int(m.group(1)) if m else None
            if port is not None:
                try:
                    if request(port, "GET", "/health", timeout=5)[0] == 200:
                        return port
                except OSError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the server did not become ready:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log_file.close()


def request(port: int, method: str, path: str, body=None, timeout: float = TIMEOUT, raw: bytes | None = None):
    """-> (status, parsed JSON or text, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        payload = resp.read()
        ctype = resp.getheader("content-type", "")
        value = json.loads(payload) if ctype.startswith("application/json") else payload.decode()
        return resp.status, value, dict(resp.getheaders())
    finally:
        conn.close()


def post(port, path, body, **kw):
    status, value, _ = request(port, "POST", path, body, **kw)
    return status, value


def metric(text: str, name: str, **labels) -> float:
    """One sample of the Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)$"
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0

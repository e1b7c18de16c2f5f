"""openbert serve's command line: without the serve extra, a taken port, flags shown with defaults."""
from __future__ import annotations

import socket
import sys

import pytest

from openbert.cli import build_parser, main


def test_without_the_serve_extra_it_says_how_to_install_it(tiny_models, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    assert main(["serve", f"--init_checkpoint={tiny_models['mlm']}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: openbert serve needs the serve extra: pip install 'openbert[serve]'"


def test_a_port_in_use_is_one_clear_error(tiny_models, capsys):
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", f"--init_checkpoint={tiny_models['mlm']}", f"--port={port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert main(["serve", f"--init_checkpoint={tiny_models['mlm']}", "--port=70000"]) == 2
    assert "--port=70000" in capsys.readouterr().err


def test_help_shows_the_defaults():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["serve"]
    text = sub.format_help()
    for flag, default in [("--host", "127.0.0.1"), ("--port", "8080"), ("--max_batch_tokens", "16384"),
                          ("--max_wait_ms", "5.0"), ("--pooling", "mean"), ("--precision", "fp32")]:
        assert flag in text and f"default: {default}" in text

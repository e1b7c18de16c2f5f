"""Serve one model over HTTP with dynamic batching: embeddings (OpenAI- and
text-embeddings-inference-compatible), and classification, question answering or fill-mask when the
model has the head for it.

    pip install 'openbert[serve]'
    openbert serve --init_checkpoint=minilm-l6 --port=8080
    curl -s localhost:8080/v1/embeddings -H 'Content-Type: application/json' -d '{"input": ["a sentence"]}'

GET / lists the routes; GET /health, GET /metrics (Prometheus). SIGTERM (or Ctrl-C) stops taking
connections, finishes the requests in flight and exits. See docs/serving.md.
"""
from __future__ import annotations

import logging
import socket

from ..errors import OpenBertError
from ..training.trainer import PRECISIONS
from .flags import add_bool, add_model_source_flags

logger = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    g = parser.add_argument_group("the model (a checkpoint path, or a named model such as minilm-l6)")
    add_model_source_flags(g, max_seq_length=None, init_checkpoint_required=True,
                           max_seq_length_help="longer texts are truncated (413 with \"truncate\": false) "
                                               "(default: the model's max_position_embeddings; qa 384, "
                                               "fill-mask 128)")
    net = parser.add_argument_group("the server")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to listen on; 0.0.0.0 for every interface (default: %(default)s)")
    net.add_argument("--port", type=int, default=8080, help="0 picks a free port (default: %(default)s)")
    add_bool(net, "access_log", False, "log every request")
    net.add_argument("--max_client_batch_size", type=int, default=256,
                     help="most inputs in one request (default: %(default)s)")
    run = parser.add_argument_group("running the model")
    run.add_argument("--precision", choices=PRECISIONS, default="fp32",
                     help="autocast precision (default: %(default)s)")
    run.add_argument("--pooling", choices=("mean", "cls"), default="mean",
                     help="embeddings: mean over the tokens or the [CLS] vector (default: %(default)s)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    run.add_argument("--num_threads", type=int, default=None,
                     help="torch intra-op threads (default: torch's choice, one per core)")
    batching = parser.add_argument_group("batching requests together")
    batching.add_argument("--max_batch_tokens", type=int, default=16384,
                          help="padded tokens (sequences x longest) per model batch (default: %(default)s)")
    batching.add_argument("--max_wait_ms", type=float, default=5.0,
                          help="longest a request waits for others to share its batch (default: %(default)s)")


def _require_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise OpenBertError("openbert serve needs the serve extra: pip install 'openbert[serve]'") from None


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is one clear error."""
    if not 0 <= port <= 65535:
        raise OpenBertError(f"--port={port}: use 0..65535 (0 picks a free port)")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise OpenBertError(f"--host={host}: cannot resolve it ({e.strerror}); use an address such as 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise OpenBertError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port or stop "
                            "the program using it") from None
    sock.listen(2048)
    return sock


def run(args) -> int:
    _require_extra()
    import torch
    import uvicorn

    from ..serve.app import Server
    from ..serve.pipelines import load_model

    if args.num_threads is not None:
        if args.num_threads < 1:
            raise OpenBertError(f"--num_threads must be at least 1, got {args.num_threads}")
        torch.set_num_threads(args.num_threads)
    sock = _bind(args.host, args.port)
    try:
        loaded = load_model(args.init_checkpoint, None, args.device, args.precision, args.do_lower_case,
                            args.bert_config_file, args.vocab_file)
        server = Server(loaded, args.max_batch_tokens, args.max_wait_ms, args.max_client_batch_size,
                        max_seq_length=args.max_seq_length, pooling=args.pooling)
        server.warm_up()
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        logger.info("serving %s (%s) on http://%s:%d: %s", loaded.name, ", ".join(loaded.tasks), shown, port,
                    ", ".join(["GET /", "GET /health", "GET /metrics"] + [f"POST {r.path}" for r in server.routes]))
        _Server = _server_class()
        config = uvicorn.Config(server.app(), log_level="info", access_log=args.access_log, lifespan="on",
                                timeout_graceful_shutdown=None)
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()
    logger.info("stopped: every request in flight was answered")
    return 0


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, exiting with status 0 after a SIGTERM / SIGINT drain (uvicorn re-raises
        the signal once it has shut down, which would end the process with the signal's status)."""

        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            if not self.force_exit:
                logger.info("signal %d: finishing the requests in flight, then exiting", sig)
            getattr(self, "_captured_signals", []).clear()

    return Server

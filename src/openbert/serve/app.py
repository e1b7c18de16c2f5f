"""The HTTP routes of ``openbert serve`` (a Starlette app; uvicorn runs it).

One model per process. Its pipelines (see :mod:`openbert.serve.pipelines`) tokenize and
post-process in a thread pool; the model stage of every request goes through one
:class:`~openbert.serve.batcher.Batcher`, so concurrent requests share batches.

Routes (each task's only when the model has the head for it; ``GET /`` lists them):

- ``POST /v1/embeddings``  OpenAI-compatible: ``{"input": str | [str], "encoding_format"?:
  "float" | "base64", "model"?, "dimensions"?}`` -> ``{"object": "list", "data": [{"object":
  "embedding", "index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``
- ``POST /embed``  text-embeddings-inference compatible: ``{"inputs": str | [str], "normalize"?:
  true, "truncate"?: true}`` -> ``[[float, ...], ...]``
- ``POST /predict``  ``{"inputs": str | [str | [str, str]], "truncate"?}`` -> ``[{"label", "score",
  "scores"}]``
- ``POST /qa``  ``{"question", "context"}`` or ``{"inputs": [{"question", "context"}]}`` ->
  ``[{"answer", "score", "start", "end"}]``
- ``POST /fill-mask``  ``{"inputs": str | [str], "top_k"?: 5}`` -> ``[{"text", "tokens", "masks"}]``
- ``POST /ner``  when the model is a token classifier (``openbert ner``): tags and entities
- ``GET /``, ``GET /health``, ``GET /metrics`` (Prometheus text format)

Bad requests get a 4xx with a JSON error (OpenAI's shape on ``/v1/*``, TEI's elsewhere): 400
invalid JSON, 422 wrong or missing fields, 413 too many inputs, a body too large, or a text longer
than ``max_seq_length`` with ``truncate: false``; 503 while shutting down.
"""
from __future__ import annotations

import base64
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..errors import OpenBertError
from ..tasks.features.extract import SequenceTooLong
from .batcher import Batcher, ShuttingDown
from .metrics import CONTENT_TYPE, server_metrics
from .pipelines import LoadedModel, Pipeline, Prepared, make_pipeline

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 32 << 20
INLINE_BYTES = 4096  # requests up to this size are tokenized and post-processed on the event loop


try:  # 20x faster than json for vectors of floats; part of the serve extra, optional here
    import orjson
except ImportError:  # pragma: no cover (the extra installs it)
    orjson = None


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSON response, rendered with orjson when it is installed."""

    def render(self, content: Any) -> bytes:
        if orjson is None:
            return super().render(content)
        return orjson.dumps(content)


class RequestError(Exception):
    """A bad request: answered with ``status`` and a JSON error."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------
# request bodies -> (inputs, options)
# ---------------------------------------------------------------------------------------------
def _texts(body: dict, key: str, pairs: bool = False) -> list:
    """``body[key]``: a non-empty string or a non-empty list of them (or of [a, b] pairs)."""
    if key not in body:
        raise RequestError(422, f'missing "{key}": give a string or a list of strings')
    value = body[key]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise RequestError(422, f'"{key}" must be a non-empty string or a non-empty list of strings')
    for i, x in enumerate(items):
        if isinstance(x, str):
            if not x.strip():
                raise RequestError(422, f'"{key}" is empty' if isinstance(value, str) else f'"{key}"[{i}] is empty')
        elif pairs and isinstance(x, list) and len(x) == 2 and all(isinstance(t, str) for t in x):
            if not x[0].strip():
                raise RequestError(422, f'"{key}"[{i}]: the first text of the pair is empty')
        else:
            want = "a string or a [text_a, text_b] pair" if pairs else "a string"
            raise RequestError(422, f'"{key}"[{i}] must be {want}, got {type(x).__name__}'
                               + (" (token ids are not accepted: send text)" if isinstance(x, (int, list)) else ""))
    return [tuple(x) if isinstance(x, list) else x for x in items]


def _options(body: dict, names: tuple[str, ...]) -> dict:
    return {n: body[n] for n in names if n in body and body[n] is not None}


def _parse_openai(body: dict, server: "Server") -> tuple[list, dict]:
    texts = _texts(body, "input")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise RequestError(422, f'"encoding_format" must be "float" or "base64", got {fmt!r}')
    dims = body.get("dimensions")
    hidden = server.loaded.config.hidden_size
    if dims is not None and (isinstance(dims, bool) or dims != hidden):
        raise RequestError(422, f'"dimensions" {dims!r}: this model gives {hidden}-dimensional embeddings only')
    return texts, {}


def _respond_openai(body: dict, results: list, prepared: Prepared, server: "Server"):
    base64_out = body.get("encoding_format") == "base64"
    data = [{"object": "embedding", "index": i,
             "embedding": (base64.b64encode(np.asarray(v, np.float32).tobytes()).decode() if base64_out else v)}
            for i, v in enumerate(results)]
    n = prepared.num_tokens
    return {"object": "list", "data": data, "model": body.get("model") or server.model_name,
            "usage": {"prompt_tokens": n, "total_tokens": n}}


def _parse_tei(body: dict, server: "Server") -> tuple[list, dict]:
    texts = _texts(body, "inputs")
    direction = str(body.get("truncation_direction") or "right").lower()
    if direction != "right":
        raise RequestError(422, '"truncation_direction": only "right" is supported')
    if body.get("prompt_name") is not None:
        raise RequestError(422, '"prompt_name" is not supported: this model has no prompts')
    opts = _options(body, ("normalize", "truncate"))
    opts.setdefault("normalize", True)  # as text-embeddings-inference
    return texts, opts


def _parse_predict(body: dict, server: "Server") -> tuple[list, dict]:
    return _texts(body, "inputs", pairs=True), _options(body, ("truncate",))


def _parse_qa(body: dict, server: "Server") -> tuple[list, dict]:
    if "inputs" in body:
        items = body["inputs"]
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list) or not items:
            raise RequestError(422, '"inputs" must be a non-empty list of {"question": ..., "context": ...}')
    elif "question" in body or "context" in body:
        items = [{"question": body.get("question"), "context": body.get("context")}]
    else:
        raise RequestError(422, 'give "question" and "context", or "inputs": [{"question": ..., "context": ...}]')
    for i, x in enumerate(items):
        if not isinstance(x, dict) or not isinstance(x.get("question"), str) or not isinstance(x.get("context"), str):
            raise RequestError(422, f'input {i}: "question" and "context" must be strings')
        if not x["question"].strip() or not x["context"].strip():
            raise RequestError(422, f'input {i}: "question" and "context" must not be empty')
    return ([{"question": x["question"], "context": x["context"]} for x in items],
            _options(body, ("max_answer_length", "n_best_size", "null_score_diff_threshold")))


def _words(value, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(w, str) and w.strip() for w in value):
        raise RequestError(422, f'{where} must be a non-empty list of non-empty words (strings)')
    return value


def _parse_ner(body: dict, server: "Server") -> tuple[list, dict]:
    """``"inputs"``: a text, or a list of texts and word lists; or ``"words"``: one word list."""
    if "words" in body:
        return [_words(body["words"], '"words"')], {}
    items = body.get("inputs")
    if isinstance(items, list) and items and all(isinstance(x, list) for x in items):
        return [_words(x, f'"inputs"[{i}]') for i, x in enumerate(items)], {}
    return _texts(body, "inputs"), {}


def _parse_fill_mask(body: dict, server: "Server") -> tuple[list, dict]:
    return _texts(body, "inputs", pairs=True), _options(body, ("top_k", "truncate"))


def _as_list(body, results, prepared, server):
    return results


@dataclass
class TaskRoute:
    path: str
    task: str
    description: str
    parse: Callable[[dict, "Server"], tuple[list, dict]]
    respond: Callable[[dict, list, Prepared, "Server"], Any] = _as_list
    openai: bool = False


ROUTES = [
    TaskRoute("/v1/embeddings", "embed", "OpenAI-compatible embeddings", _parse_openai, _respond_openai,
              openai=True),
    TaskRoute("/embed", "embed", "text-embeddings-inference compatible embeddings", _parse_tei),
    TaskRoute("/predict", "classify", "sequence classification: label and scores", _parse_predict),
    TaskRoute("/qa", "qa", "extractive question answering: answer, score, character offsets", _parse_qa),
    TaskRoute("/fill-mask", "fill-mask", "top-k tokens for every [MASK]", _parse_fill_mask),
    TaskRoute("/ner", "ner", "named entities: tags per word, entities with character offsets", _parse_ner),
]


WARM_UP = {"embed": ["warm up"], "classify": ["warm up"], "fill-mask": ["warm [MASK] up"], "ner": ["warm up"],
           "qa": [{"question": "what is warm?", "context": "warm up ."}]}


def register_route(route: TaskRoute) -> None:
    """Add (or replace) the route of a task (for tasks that bring their own request format)."""
    ROUTES[:] = [r for r in ROUTES if r.path != route.path] + [route]


# ---------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------
class Server:
    """A loaded model, its pipelines, the batcher and the metrics, behind Starlette routes."""

    def __init__(self, loaded: LoadedModel, max_batch_tokens: int = 16384, max_wait_ms: float = 5.0,
                 max_client_batch_size: int = 256, **pipeline_kwargs):
        if max_client_batch_size < 1:
            raise OpenBertError(f"--max_client_batch_size must be at least 1, got {max_client_batch_size}")
        self.loaded = loaded
        self.model_name = loaded.name
        self.max_client_batch_size = max_client_batch_size
        self.pipelines: dict[str, Pipeline] = {t: make_pipeline(t, loaded, **pipeline_kwargs)
                                               for t in loaded.tasks}
        self.routes = [r for r in ROUTES if r.task in self.pipelines]
        self.metrics = server_metrics()
        self.batcher = Batcher({t: p.forward for t, p in self.pipelines.items()}, max_batch_tokens,
                               max_wait_ms, self.metrics)

    def warm_up(self) -> None:
        """Run every pipeline once on a tiny input (first-call allocations happen before serving)."""
        for task, pipe in self.pipelines.items():
            if task in WARM_UP:
                pipe(WARM_UP[task])

    # -- handlers -----------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        routes = [{"method": "POST", "path": r.path, "task": r.task, "description": r.description}
                  for r in self.routes]
        routes += [{"method": "GET", "path": p, "description": d} for p, d in
                   (("/", "this list"), ("/health", "200 when ready"),
                    ("/metrics", "Prometheus metrics"))]
        return JSONResponse({"model": self.model_name, "tasks": list(self.pipelines), "routes": routes})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics_text(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics.render(), media_type=CONTENT_TYPE)

    def handler(self, route: TaskRoute):
        async def handle(request: Request) -> Response:
            start = time.perf_counter()
            self.metrics.inc("requests_in_flight", 1)
            status = 500
            try:
                response = await self._answer(request, route)
                status = response.status_code
                return response
            except RequestError as e:
                status = e.status
                return error_response(e.status, str(e), route.openai)
            except ShuttingDown as e:
                status = 503
                return error_response(503, str(e), route.openai)
            except Exception:  # noqa: BLE001 (the server keeps serving)
                logger.exception("%s failed", route.path)
                return error_response(500, "internal error: see the server log", route.openai)
            finally:
                self.metrics.inc("requests_in_flight", -1)
                self.metrics.inc("requests_total", route=route.path, status=status)
                self.metrics.observe("request_duration_seconds", time.perf_counter() - start, route=route.path)
        return handle

    def unsupported(self, route: TaskRoute):
        async def handle(request: Request) -> Response:
            self.metrics.inc("requests_total", route=route.path, status=404)
            return error_response(404, f"{route.path} is not served: the model {self.model_name} cannot do "
                                       f"{route.task} (it serves {', '.join(self.pipelines)}); GET / lists "
                                       "the routes", route.openai)
        return handle

    async def _answer(self, request: Request, route: TaskRoute) -> Response:
        with self.batcher.arriving() as ticket:  # queued batches may wait for this request
            body, size = await read_json(request)
            small = size <= INLINE_BYTES  # tokenize / post-process on the loop: cheaper than a thread hop
            inputs, options = route.parse(body, self)
            if len(inputs) > self.max_client_batch_size:
                raise RequestError(413, f"{len(inputs)} inputs in one request; at most "
                                        f"--max_client_batch_size={self.max_client_batch_size}")
            pipe = self.pipelines[route.task]
            try:
                prepared = (pipe.prepare(inputs, **options) if small else
                            await run_in_threadpool(pipe.prepare, inputs, **options))
            except SequenceTooLong as e:
                raise RequestError(413, str(e)) from None
            except OpenBertError as e:
                raise RequestError(422, str(e)) from None
            raw = await self.batcher.submit(route.task, prepared.features, prepared.lengths, ticket)
        results = pipe.finish(prepared, raw) if small else await run_in_threadpool(pipe.finish, prepared, raw)
        return JSONResponse(route.respond(body, results, prepared, self))

    # -- the app ------------------------------------------------------------------------------
    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app):
            self.batcher.start()
            try:
                yield
            finally:
                self.batcher.close()

        routes = [Route("/", self.index, methods=["GET"]), Route("/health", self.health, methods=["GET"]),
                  Route("/metrics", self.metrics_text, methods=["GET"])]
        routes += [Route(r.path, self.handler(r), methods=["POST"]) for r in self.routes]
        routes += [Route(r.path, self.unsupported(r), methods=["POST"]) for r in ROUTES if r not in self.routes]

        async def http_error(request: Request, exc: HTTPException) -> Response:
            return error_response(exc.status_code, exc.detail, request.url.path.startswith("/v1/"),
                                  headers=getattr(exc, "headers", None))

        return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})


def error_response(status: int, message: str, openai: bool = False, headers=None) -> JSONResponse:
    """OpenAI's error shape on ``/v1/*``, text-embeddings-inference's elsewhere."""
    if openai:
        kind = "invalid_request_error" if status < 500 else "server_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    else:
        kind = "Validation" if status < 500 else "Unhealthy" if status == 503 else "Backend"
        body = {"error": message, "error_type": kind}
    return JSONResponse(body, status_code=status, headers=headers)


async def read_json(request: Request) -> tuple[dict, int]:
    """The request body as a JSON object, and its size in bytes (400 when it is not an object, 413
    when it is too large)."""
    import json

    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise RequestError(413, f"request body of {length} bytes; at most {MAX_REQUEST_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise RequestError(413, f"request body larger than {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(400, f"the body is not valid JSON ({e}); send a JSON object") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"the body must be a JSON object, got {type(body).__name__}")
    return body, size

"""Prediction on new text: ``openbert.pipeline(task, model=PATH|NAME)`` -> a callable that returns
plain Python objects (lists, dicts, floats, strings).

    embed = openbert.pipeline("embed", model="minilm-l6")
    embed(["a sentence", ("text a", "text b")])        # -> [[float, ...], [float, ...]]
    openbert.pipeline("classify", model="out/mrpc")("a ||| b")  # -> {"label", "score", "scores"}
    openbert.pipeline("qa", model="out/squad")({"question": ..., "context": ...})
    # -> {"answer", "score", "start", "end"}: context[start:end] is the answer
    openbert.pipeline("fill-mask", model=M)("the [MASK] sat")  # -> {"text", "tokens", "masks"}
    openbert.pipeline("ner", model="out/conll")("John lives in Berlin")  # -> {"tags", "entities", ...}

A single input gives a single result, a list gives a list. Text inputs are strings (``"A ||| B"``
is a pair, as everywhere in openbert) or ``(text_a, text_b)`` pairs.

Every pipeline has three stages; ``__call__`` runs them in a row, ``openbert serve`` runs them
apart so that the model stage batches sequences of concurrent requests together:

- ``prepare(inputs, **options)`` -> :class:`Prepared` (tokenization and checks: features with
  their lengths, plus what ``finish`` needs);
- ``forward(features)`` -> one raw result per feature (the model; any mix of requests' features);
- ``finish(prepared, raw)`` -> one result per input (the task's own post-processing).

The work itself is the tasks' code (features, classifier, SQuAD windows and post-processing,
fill-mask); nothing here re-implements it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import OpenBertError

logger = logging.getLogger(__name__)

TASKS = ("embed", "classify", "qa", "fill-mask", "ner")
POOLINGS = ("mean", "cls")
_TOKENIZER_LOCK = threading.Lock()  # the fast tokenizer's caches are shared by every call


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """A checkpoint loaded once: the model with its head, its tokenizer and the tasks it serves."""

    path: str
    name: str  # as the user named it (a path or a named model)
    model: torch.nn.Module
    tokenizer: Any
    tasks: tuple[str, ...]  # "embed" always; the head's task(s)
    device: torch.device
    precision: str = "fp32"

    @property
    def config(self):
        return self.model.config

    @property
    def encoder(self):
        """The BertModel under the head (for embeddings)."""
        return getattr(self.model, "bert", self.model)


def _architectures(path: str) -> list[str]:
    """``architectures`` of the HF config.json beside the checkpoint ([] when there is none)."""
    from ..checkpoints.pretrained import find_config

    found = find_config(path)
    if not found or os.path.basename(found) != "config.json":
        return []
    try:
        with open(found, encoding="utf-8") as f:
            value = json.load(f).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [str(a) for a in value] if isinstance(value, list) else []


def head_tasks(names, architectures: Sequence[str] = ()) -> tuple[str, ...]:
    """The tasks a checkpoint's tensors (canonical ``names``) support, its head's task first."""
    from ..tasks.features.fill_mask import MLM_HEAD

    names = set(names)
    tasks = []
    if "qa_outputs.weight" in names:
        tasks.append("qa")
    if "classifier.weight" in names:
        if any("TokenClassification" in a for a in architectures):
            tasks.append("ner")
        elif not any("MultipleChoice" in a for a in architectures):
            tasks.append("classify")
    if all(n in names for n in MLM_HEAD):
        tasks.append("fill-mask")
    return (*tasks, "embed")


def _model_class(task: str):
    from ..model import bert as modeling

    return {"embed": modeling.BertModel, "classify": modeling.BertForSequenceClassification,
            "qa": modeling.BertForQuestionAnswering, "ner": modeling.BertForTokenClassification,
            "fill-mask": modeling.BertForPreTraining}[task]


_WHAT_HEAD = {
    "classify": "a sequence classifier (classifier.*), such as a model fine-tuned by `openbert classify`",
    "qa": "a question-answering head (qa_outputs.*), such as a model fine-tuned by `openbert squad`",
    "fill-mask": "the masked-LM head (cls.predictions.*), such as Google's released checkpoints",
    "ner": "a token classifier (BertForTokenClassification), such as a model fine-tuned by `openbert ner`",
}


def inspect_checkpoint(model: str | os.PathLike) -> tuple[str, tuple[str, ...], str]:
    """``(path, tasks it supports (its head's first), the file read)`` for a path or named model."""
    from ..checkpoints.assets import model_path
    from ..checkpoints.pretrained import read_checkpoint

    path = model_path(model)
    state, _, source = read_checkpoint(path)
    return path, head_tasks(state, _architectures(path)), source


def load_model(model: str | os.PathLike, task: str | None = None, device="auto", precision: str = "fp32",
               do_lower_case: bool = True, bert_config_file=None, vocab_file=None) -> LoadedModel:
    """Load a checkpoint (path or named model) once, with the head ``task`` needs (default: the
    checkpoint's own head, or the bare encoder); config and vocab beside it unless given."""
    from ..tasks.common import build_model, resolve_model_source
    from ..training.trainer import autocast, resolve_device

    if task is not None and task not in TASKS:
        raise OpenBertError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    path, supported, source = inspect_checkpoint(model)
    if task is not None and task not in supported:
        raise OpenBertError(f"{source} cannot do {task}: it needs {_WHAT_HEAD[task]}; this checkpoint "
                            f"supports {', '.join(supported)}")
    main = task or supported[0]
    device = resolve_device(device)
    autocast(precision, device)  # checks the precision against the device
    src = resolve_model_source(path, bert_config_file, vocab_file, do_lower_case)
    net = build_model(_model_class(main), src.path, src.config)
    net.to(device).eval()
    tasks = (main, "embed") if main != "embed" else ("embed",)
    return LoadedModel(path, os.fspath(model), net, src.tokenizer, tasks, device, precision)


# ---------------------------------------------------------------------------------------------
# pipelines
# ---------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """What ``prepare`` made of one call's inputs."""

    features: list
    inputs: list  # the inputs as given (normalised)
    options: dict = field(default_factory=dict)
    state: Any = None  # task-specific (SQuAD examples, ...)

    @property
    def lengths(self) -> list[int]:
        return [len(f.input_ids) for f in self.features]

    @property
    def num_tokens(self) -> int:
        return sum(self.lengths)


def _is_pair(x) -> bool:
    return isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(t, str) for t in x)


class Pipeline:
    """Base: ``pipe(inputs, **options)``; see the module doc for the three stages."""

    task = ""
    options: dict = {}  # option name -> default

    def __init__(self, loaded: LoadedModel, max_seq_length: int | None = None, batch_size: int = 32):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.precision = loaded.precision
        if batch_size < 1:
            raise OpenBertError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        from ..tasks.common import check_max_seq_length

        self.max_seq_length = max_seq_length or min(self.default_max_seq_length,
                                                    loaded.config.max_position_embeddings)
        check_max_seq_length(self.max_seq_length, loaded.config, loaded.name)

    default_max_seq_length = 512

    def is_single(self, inputs) -> bool:
        return isinstance(inputs, str) or _is_pair(inputs) and isinstance(inputs, tuple)

    def __call__(self, inputs, **options):
        single = self.is_single(inputs)
        prepared = self.prepare([inputs] if single else list(inputs), **options)
        raw = self.forward(prepared.features, self.batch_size) if prepared.features else []
        out = self.finish(prepared, raw)
        return out[0] if single else out

    def check_options(self, options: dict) -> dict:
        """``options`` over the defaults; each must have its default's type (ints for floats too)."""
        unknown = set(options) - set(self.options)
        if unknown:
            raise OpenBertError(f"unknown option(s) for {self.task}: {', '.join(sorted(unknown))}; "
                                f"known: {', '.join(self.options) or 'none'}")
        for name, value in options.items():
            default = self.options[name]
            kinds = (int, float) if isinstance(default, float) else (type(default),)
            if (isinstance(value, bool) and not isinstance(default, bool)) or not isinstance(value, kinds):
                kind = "a number" if isinstance(default, float) else type(default).__name__
                raise OpenBertError(f"option {name} must be {kind}, got {value!r}")
        return {**self.options, **options}

    def run_options(self):
        """How the tasks' inference functions run this pipeline's model (no progress bars)."""
        from ..tasks.common import RunOptions

        return RunOptions(self.device, self.precision, progress=False)

    def prepare(self, inputs: list, **options) -> Prepared:
        raise NotImplementedError

    def forward(self, features: list, batch_size: int | None = None) -> list:
        raise NotImplementedError

    def finish(self, prepared: Prepared, raw: list) -> list:
        raise NotImplementedError


class TextPipeline(Pipeline):
    """Inputs are texts or pairs -> ``[CLS] A [SEP] (B [SEP])`` features, as extract-features."""

    def text_examples(self, inputs: list) -> list:
        from ..tasks.features.extract import InputExample, parse_line

        examples = []
        for i, x in enumerate(inputs):
            if isinstance(x, str):
                examples.append(parse_line(x, i, "inputs"))
            elif _is_pair(x):
                examples.append(InputExample(i, x[0], x[1] or None))
            else:
                raise OpenBertError(f"input {i + 1}: expected a string or a [text_a, text_b] pair, "
                                    f"got {type(x).__name__}")
        return examples

    def text_features(self, inputs: list, truncate: bool) -> list:
        """Features through the fast tokenizer even for one text (its tables, built on the first
        call, then pay off; same tokens as the exact tokenizer); one call at a time, as its caches
        are shared."""
        from ..tasks.features.extract import convert_examples

        examples = self.text_examples(inputs)
        with _TOKENIZER_LOCK:
            return list(convert_examples(examples, self.tokenizer, self.max_seq_length, truncate=bool(truncate),
                                         fast_min=1))


class EmbedPipeline(TextPipeline):
    """One vector per input: the last layer pooled (mean over real tokens, or [CLS]), as
    :func:`openbert.encode`; ``normalize`` scales it to unit length."""

    task = "embed"
    options = {"normalize": False, "truncate": True}

    def __init__(self, loaded: LoadedModel, pooling: str = "mean", **kwargs):
        super().__init__(loaded, **kwargs)
        if pooling not in POOLINGS:
            raise OpenBertError(f"--pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
        self.pooling = pooling

    def prepare(self, inputs: list, **options) -> Prepared:
        opts = self.check_options(options)
        return Prepared(self.text_features(inputs, opts["truncate"]), inputs, opts)

    def forward(self, features: list, batch_size: int | None = None) -> list:
        from ..tasks.features.extract import extract

        return [v[0] for _, v in extract(features, self.loaded.encoder, [-1], batch_size or len(features),
                                         self.pooling, self.device, self.precision)]

    def finish(self, prepared: Prepared, raw: list) -> list[list[float]]:
        if not raw:
            return []
        vectors = np.stack(raw)  # [N, H] float32
        if prepared.options["normalize"]:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.tolist()


class ClassifyPipeline(TextPipeline):
    """Label and class probabilities per input, label names from the saved ``id2label``; a
    regression model (one output) gives ``{"label": None, "score": value}``."""

    task = "classify"
    options = {"truncate": True}

    def __init__(self, loaded: LoadedModel, **kwargs):
        from ..tasks.classification.pipeline import label_names

        super().__init__(loaded, **kwargs)
        n = self.model.num_labels
        names = label_names(loaded.config)
        self.labels = [str(x) for x in names] if names and len(names) == n else [f"LABEL_{i}" for i in range(n)]

    def prepare(self, inputs: list, **options) -> Prepared:
        opts = self.check_options(options)
        return Prepared(self.text_features(inputs, opts["truncate"]), inputs, opts)

    def forward(self, features: list, batch_size: int | None = None) -> list:
        from ..tasks.classification.pipeline import probabilities

        return list(probabilities(self.model, features, batch_size or len(features), self.device,
                                  self.precision, progress=False))

    def finish(self, prepared: Prepared, raw: list) -> list[dict]:
        out = []
        for p in raw:
            if len(self.labels) == 1:
                out.append({"label": None, "score": float(p[0])})
                continue
            best = int(np.argmax(p))
            out.append({"label": self.labels[best], "score": float(p[best]),
                        "scores": {name: float(v) for name, v in zip(self.labels, p)}})
        return out


class QAPipeline(Pipeline):
    """Answer span per ``{"question", "context"}`` (or ``(question, context)``): SQuAD windows,
    the original post-processing; a SQuAD 2.0 model may answer "" (no answer)."""

    task = "qa"
    default_max_seq_length = 384
    options = {"max_answer_length": 30, "n_best_size": 20, "null_score_diff_threshold": 0.0}

    def __init__(self, loaded: LoadedModel, doc_stride: int | None = None, max_query_length: int | None = None,
                 version_2_with_negative: bool | None = None, **kwargs):
        """``doc_stride`` / ``max_query_length``: the original's 128 / 64, at most half of
        ``max_seq_length`` (for models with short position tables)."""
        super().__init__(loaded, **kwargs)
        doc_stride = doc_stride or min(128, self.max_seq_length // 2)
        max_query_length = max_query_length or min(64, self.max_seq_length // 2)
        if self.max_seq_length <= max_query_length + 3:
            raise OpenBertError(f"--max_seq_length={self.max_seq_length} must be greater than max_query_length"
                                f"={max_query_length} + 3, to leave room for the context")
        if not 1 <= doc_stride < self.max_seq_length:
            raise OpenBertError(f"doc_stride={doc_stride} must be at least 1 and below max_seq_length")
        self.doc_stride, self.max_query_length = doc_stride, max_query_length
        if version_2_with_negative is None:  # as the model was fine-tuned (openbert squad records it)
            version_2_with_negative = bool(loaded.config.extra.get("version_2_with_negative", False))
        self.version_2_with_negative = version_2_with_negative
        self.do_lower_case = bool(getattr(self.tokenizer, "do_lower_case", True))

    def is_single(self, inputs) -> bool:
        return isinstance(inputs, dict) or isinstance(inputs, tuple)

    def prepare(self, inputs: list, **options) -> Prepared:
        from ..tasks.squad.data import SquadExample, convert_examples_to_features, split_context

        opts = self.check_options(options)
        for name in ("max_answer_length", "n_best_size"):
            if opts[name] < 1:
                raise OpenBertError(f"option {name} must be at least 1, got {opts[name]}")
        examples, contexts = [], []
        for i, x in enumerate(inputs):
            if isinstance(x, dict):
                question, context = x.get("question"), x.get("context")
            elif isinstance(x, (tuple, list)) and len(x) == 2:
                question, context = x
            else:
                raise OpenBertError(f"input {i + 1}: expected {{\"question\": ..., \"context\": ...}}")
            if not isinstance(question, str) or not isinstance(context, str):
                raise OpenBertError(f"input {i + 1}: \"question\" and \"context\" must be strings")
            doc_tokens, _ = split_context(context)
            if not doc_tokens:
                raise OpenBertError(f"input {i + 1}: the context is empty")
            examples.append(SquadExample(qas_id=str(i), question_text=question, doc_tokens=doc_tokens))
            contexts.append(context)
        with _TOKENIZER_LOCK:  # the SQuAD windows tokenize through the fast path too
            features = convert_examples_to_features(examples, self.tokenizer, self.max_seq_length,
                                                    self.doc_stride, self.max_query_length, is_training=False)
        return Prepared(features, inputs, opts, state=(examples, contexts))

    def forward(self, features: list, batch_size: int | None = None) -> list:
        from ..tasks.squad.pipeline import raw_results

        return raw_results(self.model, features, batch_size or len(features), self.run_options())

    def finish(self, prepared: Prepared, raw: list) -> list[dict]:
        from ..tasks.squad.postprocess import compute_predictions, context_offsets

        examples, contexts = prepared.state
        o = prepared.options
        preds = compute_predictions(examples, prepared.features, raw, o["n_best_size"], o["max_answer_length"],
                                    self.do_lower_case, self.version_2_with_negative,
                                    o["null_score_diff_threshold"])
        out = []
        for example, context in zip(examples, contexts):
            answer = preds.predictions[example.qas_id]
            nbest = preds.nbest[example.qas_id]
            i = next((k for k, e in enumerate(nbest) if e["text"] == answer), 0)
            span = preds.spans[example.qas_id][i]
            start, end = context_offsets(context, span) if answer and span is not None else (None, None)
            out.append({"answer": answer, "score": float(nbest[i]["probability"]), "start": start, "end": end})
        return out


class FillMaskPipeline(Pipeline):
    """Top-k tokens for every ``[MASK]`` of every text, with the masked-LM head."""

    task = "fill-mask"
    default_max_seq_length = 128
    options = {"top_k": 5, "truncate": True}

    def prepare(self, inputs: list, **options) -> Prepared:
        from ..tasks.features.fill_mask import make_feature

        opts = self.check_options(options)
        top_k = opts["top_k"]
        if not 1 <= top_k <= 1000:
            raise OpenBertError(f"option top_k must be from 1 to 1000, got {top_k}")
        texts = []
        for i, x in enumerate(inputs):
            if _is_pair(x):
                x = f"{x[0]} ||| {x[1]}"
            if not isinstance(x, str):
                raise OpenBertError(f"input {i + 1}: expected a string with [MASK], got {type(x).__name__}")
            texts.append(x)
        features = [make_feature(t, i, self.tokenizer, self.max_seq_length, bool(opts["truncate"]))
                    for i, t in enumerate(texts)]
        for f in features:
            f.top_k = top_k  # forward runs features of several calls: each keeps its own k
        return Prepared(features, texts, opts)

    def forward(self, features: list, batch_size: int | None = None) -> list:
        from ..tasks.features.fill_mask import predict_masks

        k = max(getattr(f, "top_k", 5) for f in features)
        return predict_masks(self.model, self.tokenizer, features, k, batch_size or len(features),
                             self.device, self.precision)

    def finish(self, prepared: Prepared, raw: list) -> list[dict]:
        k = prepared.options["top_k"]
        return [{"text": t, "tokens": f.tokens,
                 "masks": [{**m, "predictions": m["predictions"][:k]} for m in masks]}
                for t, f, masks in zip(prepared.inputs, prepared.features, raw)]


def split_words(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the words of ``text`` as BERT's basic tokenizer splits
    it: at whitespace, and every punctuation character a word of its own."""
    from ..tokenization.unicode import is_punctuation, is_whitespace

    spans, start = [], None
    for i, ch in enumerate(text):
        if is_whitespace(ch) or is_punctuation(ch):
            if start is not None:
                spans.append((start, i))
                start = None
            if not is_whitespace(ch):
                spans.append((i, i + 1))
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(text)))
    return spans


class NerPipeline(Pipeline):
    """Tags and entities per text (or per list of words, tagged as given), with a model fine-tuned
    by ``openbert ner``: each word's tag from its first sub-token, long texts in windows (every
    word predicted once), entities read with conlleval's rules in the model's tag scheme.

    -> ``{"text", "words", "tags", "entities": [{"type", "text", "start", "end", "first_word",
    "last_word", "score"}]}``; ``start`` / ``end`` are character offsets into ``text`` (for a list
    of words, ``text`` is the words joined by spaces); ``score`` is the mean probability of the
    entity's word tags."""

    task = "ner"
    default_max_seq_length = 128
    options = {}

    def __init__(self, loaded: LoadedModel, doc_stride: int | None = None, **kwargs):
        from ..tasks.common import label_names

        super().__init__(loaded, **kwargs)
        self.labels = label_names(loaded.config)
        n = self.model.num_labels
        if not self.labels or len(self.labels) != n:
            raise OpenBertError(f"{loaded.name}: the model has no tag names for its {n} outputs (id2label in "
                                "config.json); use a model fine-tuned by `openbert ner`")
        size = self.max_seq_length - 2
        self.doc_stride = doc_stride or max(1, size // 2)
        if not 1 <= self.doc_stride <= size:
            raise OpenBertError(f"doc_stride={doc_stride} must be between 1 and max_seq_length - 2 = {size}")

    def is_single(self, inputs) -> bool:
        return isinstance(inputs, str)

    def prepare(self, inputs: list, **options) -> Prepared:
        from ..tasks.ner.data import ConllFile, Sentence, convert_to_features

        opts = self.check_options(options)
        sentences, texts, offsets = [], [], []
        for i, x in enumerate(inputs):
            if isinstance(x, str):
                spans = split_words(x)
                words, text = [x[a:b] for a, b in spans], x
            elif isinstance(x, (list, tuple)) and all(isinstance(w, str) and w and not w.isspace() for w in x):
                words, text = list(x), " ".join(x)
                spans, at = [], 0
                for w in words:
                    spans.append((at, at + len(w)))
                    at += len(w) + 1
            else:
                raise OpenBertError(f"input {i + 1}: expected a text or a list of non-empty words")
            sentences.append(Sentence(words, None, document=i, line=i + 1))
            texts.append(text)
            offsets.append(spans)
        data = ConllFile("inputs", sentences, labelled=False)
        with _TOKENIZER_LOCK:
            features = convert_to_features(data, self.tokenizer, self.max_seq_length, None, self.doc_stride)
        return Prepared(features, texts, opts, state=(data, offsets))

    def forward(self, features: list, batch_size: int | None = None) -> list:
        from ..tasks.ner.pipeline import word_logits

        return word_logits(self.model, features, batch_size or len(features), self.run_options())

    def finish(self, prepared: Prepared, raw: list) -> list[dict]:
        from ..tasks.ner.metrics import chunks

        data, offsets = prepared.state
        tags = [[""] * len(s.words) for s in data.sentences]
        probs = [[0.0] * len(s.words) for s in data.sentences]
        for f, logits in zip(prepared.features, raw):
            p = np.exp(logits - logits.max(axis=-1, keepdims=True))  # [words, num_labels]
            p /= p.sum(axis=-1, keepdims=True)
            for word, row in zip(f.words, p):
                best = int(row.argmax())
                tags[f.sentence][word], probs[f.sentence][word] = self.labels[best], float(row[best])
        out = []
        for i, (s, text, spans) in enumerate(zip(data.sentences, prepared.inputs, offsets)):
            entities = [{"type": kind, "text": text[spans[a][0]:spans[b - 1][1]], "start": spans[a][0],
                         "end": spans[b - 1][1], "first_word": a, "last_word": b - 1,
                         "score": float(np.mean(probs[i][a:b]))} for kind, a, b in chunks(tags[i])]
            out.append({"text": text, "words": s.words, "tags": tags[i], "entities": entities})
        return out


# task -> pipeline class; a task module may add its own (see ``register``)
PIPELINES: dict[str, type[Pipeline]] = {"embed": EmbedPipeline, "classify": ClassifyPipeline,
                                        "qa": QAPipeline, "fill-mask": FillMaskPipeline, "ner": NerPipeline}


def register(task: str, cls: type[Pipeline]) -> None:
    """Make ``task`` available to ``pipeline()``, ``openbert predict`` and ``openbert serve``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    PIPELINES[task] = cls


def make_pipeline(task: str, loaded: LoadedModel, **kwargs) -> Pipeline:
    """The ``task`` pipeline over an already loaded model; kwargs it does not take (and None
    values) are dropped, so one set of settings serves every task of a model."""
    import inspect

    cls = PIPELINES[task]
    accepted = set()
    for c in cls.__mro__:
        if "__init__" in c.__dict__:
            accepted |= set(inspect.signature(c.__init__).parameters)
    return cls(loaded, **{k: v for k, v in kwargs.items() if k in accepted and v is not None})


def pipeline(task: str, model: str | os.PathLike, precision: str = "fp32", device="auto",
             do_lower_case: bool = True, max_seq_length: int | None = None, batch_size: int = 32,
             **kwargs) -> Pipeline:
    """Load ``model`` (a checkpoint path or a named model such as ``minilm-l6``) for ``task``.

    task: embed | classify | qa | fill-mask | ner. kwargs go to the pipeline: ``pooling`` (embed:
    mean | cls), ``doc_stride`` (qa, ner), ``max_query_length`` / ``version_2_with_negative`` (qa).
    ``max_seq_length`` defaults to the model's maximum (512 for BERT; qa 384, fill-mask and ner 128).
    """
    if task not in PIPELINES:
        raise OpenBertError(f"unknown task {task!r}: use one of {', '.join(PIPELINES)}")
    loaded = load_model(model, task, device, precision, do_lower_case)
    return PIPELINES[task](loaded, max_seq_length=max_seq_length, batch_size=batch_size, **kwargs)

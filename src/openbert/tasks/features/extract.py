"""Contextual features from BERT: the original extract_features.py and ``encode``.

Reading: one example a line, ``A ||| B`` for a pair (docs/faithfulness.md, "Feature extraction").
Features: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, truncated as the original (longer side
first), no padding.

Computing: lines are read in windows; inside a window they run in length-sorted batches (so almost
no padding is computed: :class:`~openbert.model.bert.BertModel` skips padded rows in its dense layers)
and come back in input order. A window holds at most ``window_bytes`` of outputs, so inputs larger
than memory stream through.

Writing: :mod:`openbert.tasks.features.writers`.
"""
from __future__ import annotations

import functools
import itertools
import os
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from ...errors import OpenBertError
from ...model.bert import BertModel
from ...training.trainer import predict, prepare_for_inference, resolve_device
from ..common import (check_max_seq_length, default_max_seq_length, encoder_inputs, pack_pair,
                      resolve_model_source)

SEPARATOR = "|||"
_PAIR = re.compile(r"^(.*) \|\|\| (.*)$")
POOLINGS = ("none", "cls", "mean")
# fewer examples than this are tokenized one at a time (same tokens), unless the fast engine is built
FAST_TOKENIZER_MIN = 256


# ---------------------------------------------------------------------------------------------
# input lines -> examples -> features
# ---------------------------------------------------------------------------------------------
@dataclass
class InputExample:
    unique_id: int  # the line number from 0: the output's ``linex_index``
    text_a: str
    text_b: str | None = None


@dataclass
class InputFeature:
    unique_id: int
    tokens: list[str]  # with [CLS] / [SEP]
    input_ids: list[int]
    segment_ids: list[int]


def parse_line(line: str, unique_id: int, source: str = "input") -> InputExample:
    """One input line -> example. ``A ||| B`` is a pair (as the original: `` ||| `` with spaces).

    A line with more than one ``|||`` is an error (the original would silently split at the last).
    An empty line is kept: it becomes ``[CLS] [SEP]``, so indexes stay line numbers.
    """
    line = line.strip()
    if line.count(SEPARATOR) > 1:
        raise OpenBertError(f"{source}, line {unique_id + 1}: {line.count(SEPARATOR)} '|||' separators; "
                            "write one example a line, 'text' or 'text A ||| text B'")
    m = _PAIR.match(line)
    if m is None:
        return InputExample(unique_id, line)
    return InputExample(unique_id, m.group(1), m.group(2))


def read_examples(path: str | os.PathLike) -> Iterator[InputExample]:
    """Stream the examples of an input file (UTF-8, invalid bytes dropped as the original)."""
    path = os.fspath(path)
    try:
        f = open(path, encoding="utf-8", errors="ignore", newline="\n")
    except FileNotFoundError:
        raise OpenBertError(f"input file not found: {path}") from None
    except IsADirectoryError:
        raise OpenBertError(f"--input_file {path} is a directory; pass a text file, one example a line") from None
    with f:
        for i, line in enumerate(f):
            yield parse_line(line, i, path)


def count_lines(path: str | os.PathLike) -> int:
    """Number of examples in ``path`` (for the progress bar), read in 1 MiB blocks."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


class SequenceTooLong(OpenBertError):
    """An input is longer than ``max_seq_length`` and truncation was turned off."""


def convert_example(example: InputExample, tokenizer, max_seq_length: int,
                    tokens_a: list[str] | None = None, tokens_b: list[str] | None = None,
                    truncate: bool = True) -> InputFeature:
    """Tokenize (unless the tokens are given), truncate and lay out one example as the original.

    No padding: ``input_ids`` has exactly ``len(tokens)`` ids. ``truncate`` False: an example
    longer than ``max_seq_length`` raises :class:`SequenceTooLong` instead of being cut.
    """
    if tokens_a is None:
        tokens_a = tokenizer.tokenize(example.text_a)
        tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
    if not truncate:
        n = len(tokens_a) + (len(tokens_b) + 3 if tokens_b else 2)
        if n > max_seq_length:
            raise SequenceTooLong(f"input {example.unique_id + 1} has {n} tokens with [CLS] and [SEP], more "
                                  f"than max_seq_length {max_seq_length}: shorten it or allow truncation")
    tokens, segment_ids = pack_pair(list(tokens_a), list(tokens_b) if tokens_b else None, max_seq_length,
                                    "[CLS]", "[SEP]")
    try:
        input_ids = tokenizer.convert_tokens_to_ids(tokens)
    except KeyError as e:
        raise OpenBertError(f"{e.args[0]} (needed for line {example.unique_id + 1}): the vocab file does not "
                            "match this use; pass the vocab.txt that came with the checkpoint") from None
    return InputFeature(example.unique_id, tokens, input_ids, segment_ids)


def convert_examples(examples: Iterable[InputExample], tokenizer, max_seq_length: int,
                     chunk: int = 2048, truncate: bool = True,
                     fast_min: int = FAST_TOKENIZER_MIN) -> Iterator[InputFeature]:
    """Stream features, tokenizing ``chunk`` examples at a time with the fast batch path
    (``tokenizer.tokenize_batch``, same tokens as ``tokenize``) when the tokenizer has one and the
    block has at least ``fast_min`` examples (enough to repay building its tables; a long-lived
    caller that has built them passes 1). ``truncate``: see :func:`convert_example`."""
    if max_seq_length < 3:
        raise OpenBertError(f"--max_seq_length={max_seq_length} leaves no room for text next to "
                            f"[CLS] and [SEP]; use at least 3")
    batch_tokenize = getattr(tokenizer, "tokenize_batch", None)
    examples = iter(examples)
    while block := list(itertools.islice(examples, chunk)):
        if batch_tokenize is None or (len(block) < fast_min and not getattr(tokenizer, "fast_built", False)):
            yield from (convert_example(e, tokenizer, max_seq_length, truncate=truncate) for e in block)
            continue
        pairs = [e for e in block if e.text_b]
        toks_a = batch_tokenize([e.text_a for e in block])
        toks_b = dict(zip((e.unique_id for e in pairs), batch_tokenize([e.text_b for e in pairs])))
        for e, ta in zip(block, toks_a):
            tb = toks_b.get(e.unique_id)
            yield convert_example(e, tokenizer, max_seq_length, list(ta), None if tb is None else list(tb),
                                  truncate)


def parse_layers(layers: str | int | Sequence[int], num_hidden_layers: int) -> list[int]:
    """``"-1,-2"`` (or ints) -> layer indexes, checked against the model: -L..L-1, -1 = last layer."""
    if isinstance(layers, int):
        layers = [layers]
    if isinstance(layers, str):
        try:
            layers = [int(x) for x in layers.split(",") if x.strip()]
        except ValueError:
            raise OpenBertError(f"--layers {layers!r}: expected comma-separated integers such as -1,-2,-3,-4") from None
    layers = list(layers)
    if not layers:
        raise OpenBertError("no layers requested: pass --layers such as -1 or -1,-2,-3,-4")
    n = num_hidden_layers
    for i in layers:
        if not -n <= i < n:
            raise OpenBertError(f"--layers: layer index {i} is out of range for a model with {n} "
                                f"encoder layers: use -{n}..-1 (-1 = last) or 0..{n - 1}")
    return layers


# ---------------------------------------------------------------------------------------------
# computing: windows of lines, length-sorted batches, results in input order
# ---------------------------------------------------------------------------------------------
def _windows(features: Iterable[InputFeature], max_rows: int) -> Iterator[list[InputFeature]]:
    """Group consecutive features so that each group has at most ``max_rows`` output rows."""
    window, rows = [], 0
    for f in features:
        window.append(f)
        rows += len(f.tokens)
        if rows >= max_rows:
            yield window
            window, rows = [], 0
    if window:
        yield window


def collate(features: list[InputFeature]) -> dict[str, torch.Tensor]:
    """input_ids, input_mask, segment_ids [B, S] padded to the longest feature."""
    return encoder_inputs([f.input_ids for f in features], [f.segment_ids for f in features])


def _select(out, lengths: torch.Tensor, layer_indexes: list[int], pooling: str) -> torch.Tensor:
    """BertOutput of a batch with ``lengths`` [B] -> [T, L, H] real-token rows (batch-major), or
    pooled [B, L, H], float32."""
    device = out.sequence_output.device
    lengths = lengths.to(device)
    mask = torch.arange(out.sequence_output.shape[1], device=device)[None, :] < lengths[:, None]  # [B, S]
    if pooling == "mean":  # over real tokens, [CLS] and [SEP] included; a fixed summation order
        h = torch.stack([out.all_encoder_layers[i] for i in layer_indexes], dim=2).float()  # [B, S, L, H]
        m = mask[:, :, None, None].to(h.dtype)
        return (h * m).sum(1) / m.sum(1)
    rows = torch.stack([out.token_rows(i, mask) for i in layer_indexes], dim=1).float()  # [T, L, H]
    if pooling == "cls":
        return rows[lengths.cumsum(0) - lengths]  # each sequence's first row
    return rows


def extract(features: Iterable[InputFeature], model, layer_indexes: list[int], batch_size: int = 32,
            pooling: str = "none", device=None, precision: str = "fp32",
            window_bytes: int = 512 << 20, progress=None,
            compile: bool = False) -> Iterator[tuple[InputFeature, np.ndarray]]:
    """Run ``model`` (a BertModel) over ``features``; yield ``(feature, values)`` in input order.

    ``values`` is float32 ``[n_tokens, L, H]`` (L = len(layer_indexes)), or ``[L, H]`` when pooled.
    ``device`` None keeps the model where it is; ``precision`` fp32 / bf16 / fp16 (see
    :func:`~openbert.training.predict`: a model cast with ``to_inference_dtype`` runs as cast,
    a float32 one under autocast); ``compile``: ``torch.compile`` the model (in place).
    ``progress`` (a tqdm bar or None) is advanced by the number of lines done.
    """
    if pooling not in POOLINGS:
        raise OpenBertError(f"pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
    device = next(model.parameters()).device if device is None else resolve_device(device)
    hidden = model.config.hidden_size
    max_rows = max(window_bytes // (4 * hidden * len(layer_indexes)), batch_size * 512)
    for window in _windows(features, max_rows):
        lengths = [len(f.input_ids) for f in window]
        results: list[np.ndarray | None] = [None] * len(window)
        for idx, out in predict(model, window, collate, batch_size, device, precision,
                                lengths=lengths, progress=False, compile=compile):
            batch_lengths = torch.tensor([lengths[i] for i in idx])
            values = _select(out, batch_lengths, layer_indexes, pooling).cpu().numpy()
            if pooling == "none":
                values = np.split(values, np.cumsum(batch_lengths.numpy())[:-1])
            for i, v in zip(idx, values):
                results[i] = v
        for f, v in zip(window, results):
            yield f, v
        if progress is not None:
            progress.update(len(window))


# ---------------------------------------------------------------------------------------------
# loading a model + tokenizer, and the Python API
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def load_encoder(init_checkpoint: str, bert_config_file: str | None = None, vocab_file: str | None = None,
                 do_lower_case: bool = True, max_seq_length: int | None = None, device: str = "auto",
                 precision: str = "fp32", allow_unused: bool = False):
    """``(BertModel, FullTokenizer)`` for a checkpoint (TF prefix / folder, HF or openbert folder,
    or a model name such as ``minilm-l6``, fetched on first use), ready for inference on ``device``
    at ``precision`` (bf16: dense layers cast once, where the device has bf16; see
    :func:`~openbert.training.trainer.prepare_for_inference`).

    The config and vocab are found beside the checkpoint unless given; ``max_seq_length`` is
    checked against the model when given (``allow_unused``: see
    :func:`openbert.checkpoints.pretrained.load_pretrained`). Cached: ``encode`` calls with the
    same path and settings load it once.
    """
    source = resolve_model_source(init_checkpoint, bert_config_file, vocab_file, do_lower_case,
                                  max_seq_length)
    model = BertModel.from_pretrained(source.path, config=source.config, allow_unused=allow_unused)
    return prepare_for_inference(model, precision, device), source.tokenizer


def encode(texts: str | Sequence[str | tuple[str, str]], model, tokenizer=None, layers=-1,
           pooling: str | None = "mean", max_seq_length: int | None = None, batch_size: int = 32,
           do_lower_case: bool = True, device=None, precision: str = "fp32", compile: bool = False):
    """Embeddings as numpy float32 arrays, in the order of ``texts``.

    texts: a string, or a list of strings / ``(text_a, text_b)`` pairs / ``"A ||| B"`` strings.
    model: a checkpoint path (TF prefix, HF or openbert folder) or a ``BertModel`` (then pass
    ``tokenizer``, a FullTokenizer). do_lower_case: for a path (default true, as the original).
    layers: an index (-1 = last layer) or a list of indexes.
    pooling: ``"mean"`` (over real tokens, [CLS]/[SEP] included), ``"cls"``, or None for per-token.
    max_seq_length: longer texts are truncated (default 128, or the model's maximum if smaller).
    precision: fp32, bf16 (a path: dense layers cast once at load where the device has bf16; a
    model object: as it is cast, else autocast), fp16. compile: ``torch.compile`` the model.

    Returns, for N texts: pooled ``[N, H]`` (one layer) or ``[N, L, H]`` (a list of layers); with
    ``pooling=None`` a list of N arrays ``[n_tokens, H]`` / ``[n_tokens, L, H]``. A single string
    gives the one array (``[H]``, ``[L, H]``, ...).
    """
    single_text = isinstance(texts, str)
    texts = [texts] if single_text else list(texts)
    if isinstance(model, (str, os.PathLike)):
        device = device or "auto"
        model, loaded_tokenizer = load_encoder(os.fspath(model), None, None, do_lower_case,
                                               device=str(device), precision=precision)
        tokenizer = tokenizer or loaded_tokenizer
    model = getattr(model, "bert", model)  # a model with heads: use its encoder
    if tokenizer is None:
        raise OpenBertError("encode() with a model object needs tokenizer=FullTokenizer(vocab_file, ...)")
    single_layer = isinstance(layers, int)
    layer_indexes = parse_layers(layers, model.config.num_hidden_layers)
    if max_seq_length is None:
        max_seq_length = default_max_seq_length(model.config)
    check_max_seq_length(max_seq_length, model.config, "the model passed to encode")
    examples = [InputExample(i, *t) if isinstance(t, tuple) else parse_line(t, i, "texts")
                for i, t in enumerate(texts)]
    features = convert_examples(examples, tokenizer, max_seq_length)
    pooling = pooling or "none"
    values = [v for _, v in extract(features, model, layer_indexes, batch_size, pooling, device, precision,
                                    compile=compile)]
    if single_layer:
        values = [v[..., 0, :] for v in values]
    if pooling == "none":
        return values[0] if single_text else values
    if not values:
        return np.zeros((0,) + ((model.config.hidden_size,) if single_layer else
                                (len(layer_indexes), model.config.hidden_size)), np.float32)
    return values[0] if single_text else np.stack(values)

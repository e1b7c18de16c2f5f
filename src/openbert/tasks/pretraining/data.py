"""Pre-training data: the original create_pretraining_data algorithm, and batches for training.

Text in, instances out (docs/faithfulness.md, "Pre-training data"): one sentence per line, blank
lines between documents.
For the same text, vocabulary, flags and seed the instances are IDENTICAL to those of Google's
create_pretraining_data.py: every ``random.Random`` draw is made in the same order with the same
arguments (``shuffle``, ``randint`` and ``_randbelow`` are inlined here as exact equivalents, which
only saves Python call overhead). Tokens are handled as vocabulary ids, not strings; the result
is the same because a token and its id convert one-to-one.

Beyond the original: :func:`create_pretraining_data` processes input files in parallel
(``workers``), one file at a time per process, so memory holds one file's documents, not the
corpus. File ``k`` (in the order the ``--input_file`` globs list them, each glob sorted) gets its
own ``random.Random(random_seed + k)``; with one input file that is exactly the original's run.
``whole_corpus=True`` reads all files as one corpus as the original does (one process).

Training side: :class:`PretrainingDataset` (openbert shards or TFRecord files), :func:`collate`
and dynamic masking (:class:`DynamicMasking`).
"""
from __future__ import annotations

import glob
import logging
import multiprocessing
import os
import random
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from ...errors import OpenBertError
from ...io.fileio import expand_input_files
from ...tokenization.wordpiece import load_vocab
from ..common import encoder_inputs, pad

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainingDataConfig:
    """The original flags and defaults (docs/faithfulness.md, "Pre-training data")."""

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    random_seed: int = 12345
    do_whole_word_mask: bool = False

    def validate(self) -> None:
        if self.max_seq_length < 5:
            raise OpenBertError(f"--max_seq_length={self.max_seq_length} is too small: an instance "
                                f"needs [CLS] A [SEP] B [SEP] with A and B non-empty (use >= 5)")
        if self.max_predictions_per_seq < 1:
            raise OpenBertError("--max_predictions_per_seq must be >= 1")
        if self.dupe_factor < 1:
            raise OpenBertError("--dupe_factor must be >= 1")
        if not 0.0 <= self.masked_lm_prob <= 1.0 or not 0.0 <= self.short_seq_prob <= 1.0:
            raise OpenBertError("--masked_lm_prob and --short_seq_prob must lie in [0, 1]")


class MaskingVocab:
    """What instance creation needs from a vocabulary (token -> id, in file order).

    ``random_words``: the ids of ``list(vocab.keys())``, from which the original draws its random
    replacement word; ``is_subword[id]``: the token starts with ``##`` (whole-word grouping).
    """

    def __init__(self, vocab: Mapping[str, int], vocab_file: str = "the vocabulary"):
        missing = [t for t in ("[CLS]", "[SEP]", "[MASK]") if t not in vocab]
        if missing:
            raise OpenBertError(
                f"vocab file {vocab_file} has no {', '.join(missing)}: pre-training data needs the "
                f"[CLS], [SEP] and [MASK] tokens; use the vocab.txt of a BERT model (or add them "
                f"as lines of the file)")
        self.cls_id = vocab["[CLS]"]
        self.sep_id = vocab["[SEP]"]
        self.mask_id = vocab["[MASK]"]
        self.random_words = list(vocab.values())
        self.size = max(vocab.values()) + 1
        self.is_subword = bytearray(self.size)
        for token, i in vocab.items():
            if token.startswith("##"):
                self.is_subword[i] = 1


@dataclass
class TrainingInstance:
    """One sentence pair: ``tokens`` are ids ``[CLS] A [SEP] B [SEP]`` with masks applied."""

    tokens: list[int]
    segment_ids: list[int]
    is_random_next: bool
    masked_lm_positions: list[int]
    masked_lm_labels: list[int]


# ---------------------------------------------------------------------------------------------
# random.Random draws, inlined (each equals the stdlib method on the same generator state)
# ---------------------------------------------------------------------------------------------
def _randbelow(getrandbits, n: int) -> int:
    """``random.Random._randbelow_with_getrandbits(n)``."""
    k = n.bit_length()
    r = getrandbits(k)
    while r >= n:
        r = getrandbits(k)
    return r


def randint(rng: random.Random, a: int, b: int) -> int:
    """``rng.randint(a, b)``: the same single ``_randbelow(b - a + 1)`` draw, without the
    argument checks of ``randrange``."""
    return a + _randbelow(rng.getrandbits, b - a + 1)


_BITS = [(i + 1).bit_length() for i in range(4096)]  # _BITS[i] = bits of _randbelow(i + 1)


def shuffle(x: list, rng: random.Random) -> None:
    """``rng.shuffle(x)``: Fisher-Yates from the end, ``j = _randbelow(i + 1)``."""
    getrandbits = rng.getrandbits
    bits = _BITS if len(x) <= len(_BITS) else [(i + 1).bit_length() for i in range(len(x))]
    for i in range(len(x) - 1, 0, -1):
        k = bits[i]
        j = getrandbits(k)
        while j > i:
            j = getrandbits(k)
        x[i], x[j] = x[j], x[i]


# ---------------------------------------------------------------------------------------------
# the algorithm (create_instances_from_document, create_masked_lm_predictions, truncate_seq_pair)
# ---------------------------------------------------------------------------------------------
def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int,
                      rng: random.Random) -> None:
    """Trim the longer list (B on ties) until both fit; the first token with probability 1/2,
    else the last."""
    rand = rng.random
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rand() < 0.5:
            del trunc[0]
        else:
            trunc.pop()


def create_masked_lm_predictions(tokens: list[int], masked_lm_prob: float,
                                 max_predictions_per_seq: int, vocab: MaskingVocab,
                                 rng: random.Random, do_whole_word_mask: bool = False
                                 ) -> tuple[list[int], list[int], list[int]]:
    """tokens (ids, with [CLS]/[SEP]) -> (masked tokens, sorted positions, labels at them).

    Candidates are all positions but [CLS]/[SEP] (whole-word mode: a ``##`` piece joins the group
    before it); they are shuffled, then taken in order until ``num_to_predict``; a group that
    would overflow it is skipped. Each chosen position: 80% [MASK], 10% kept, 10% a random word.
    """
    cls_id, sep_id = vocab.cls_id, vocab.sep_id
    n = len(tokens)
    if do_whole_word_mask:
        sub = vocab.is_subword
        cand: list = []
        for i, t in enumerate(tokens):
            if t == cls_id or t == sep_id:
                continue
            if cand and sub[t]:
                cand[-1].append(i)
            else:
                cand.append([i])
    elif (n >= 3 and tokens[0] == cls_id and tokens[-1] == sep_id and tokens.count(cls_id) == 1
          and tokens.count(sep_id) == 2):
        # the usual [CLS] A [SEP] B [SEP]: every other position, without a scan in Python
        s = tokens.index(sep_id)
        cand = [*range(1, s), *range(s + 1, n - 1)]
    else:
        cand = [i for i, t in enumerate(tokens) if t != cls_id and t != sep_id]
    shuffle(cand, rng)
    output = list(tokens)
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(n * masked_lm_prob))))
    if do_whole_word_mask:
        chosen: list[int] = []
        covered: set[int] = set()
        for group in cand:
            if len(chosen) >= num_to_predict:
                break
            if len(chosen) + len(group) > num_to_predict:
                continue
            if any(i in covered for i in group):
                continue
            covered.update(group)
            chosen.extend(group)
    else:
        # single positions never overlap or overflow: the first num_to_predict are taken
        chosen = cand[:num_to_predict]
    rand, getrandbits = rng.random, rng.getrandbits
    words = vocab.random_words
    n_words = len(words)
    k_words = n_words.bit_length()
    mask_id = vocab.mask_id
    for index in chosen:
        if rand() < 0.8:
            output[index] = mask_id
        elif rand() < 0.5:
            pass  # keep the original token
        else:
            r = getrandbits(k_words)
            while r >= n_words:
                r = getrandbits(k_words)
            output[index] = words[r]
    chosen.sort()
    return output, chosen, [tokens[i] for i in chosen]


def _document_instances(all_documents: Sequence[Sequence[Sequence[int]]], document_index: int,
                        cfg: PretrainingDataConfig, vocab: MaskingVocab, rng: random.Random,
                        emit) -> None:
    """The original create_instances_from_document: calls ``emit(tokens, a_length,
    is_random_next, masked_lm_positions, masked_lm_labels)`` for each instance of the document
    (``a_length``: the tokens with segment id 0, ``[CLS] A [SEP]``)."""
    document = all_documents[document_index]
    max_num_tokens = cfg.max_seq_length - 3
    target_seq_length = max_num_tokens
    rand = rng.random
    cls_id, sep_id = vocab.cls_id, vocab.sep_id
    masked_lm_prob, max_predictions = cfg.masked_lm_prob, cfg.max_predictions_per_seq
    whole_word = cfg.do_whole_word_mask
    if rand() < cfg.short_seq_prob:
        target_seq_length = randint(rng, 2, max_num_tokens)
    current_chunk: list = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            a_end = 1
            if len(current_chunk) >= 2:
                a_end = randint(rng, 1, len(current_chunk) - 1)
            tokens_a: list[int] = []
            for j in range(a_end):
                tokens_a.extend(current_chunk[j])
            tokens_b: list[int] = []
            if len(current_chunk) == 1 or rand() < 0.5:
                is_random_next = True
                target_b_length = target_seq_length - len(tokens_a)
                for _ in range(10):
                    random_document_index = randint(rng, 0, len(all_documents) - 1)
                    if random_document_index != document_index:
                        break
                random_document = all_documents[random_document_index]
                random_start = randint(rng, 0, len(random_document) - 1)
                for j in range(random_start, len(random_document)):
                    tokens_b.extend(random_document[j])
                    if len(tokens_b) >= target_b_length:
                        break
                # the unused segments of this chunk go back for the next instance
                i -= len(current_chunk) - a_end
            else:
                is_random_next = False
                for j in range(a_end, len(current_chunk)):
                    tokens_b.extend(current_chunk[j])
            if len(tokens_a) + len(tokens_b) > max_num_tokens:
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            tokens, positions, labels = create_masked_lm_predictions(
                [cls_id, *tokens_a, sep_id, *tokens_b, sep_id], masked_lm_prob, max_predictions,
                vocab, rng, whole_word)
            emit(tokens, len(tokens_a) + 2, is_random_next, positions, labels)
            current_chunk = []
            current_length = 0
        i += 1


def create_instances_from_document(all_documents: Sequence[Sequence[Sequence[int]]],
                                   document_index: int, cfg: PretrainingDataConfig,
                                   vocab: MaskingVocab, rng: random.Random
                                   ) -> list[TrainingInstance]:
    """All instances of one document (segments = token-id lists of its lines)."""
    instances: list[TrainingInstance] = []

    def emit(tokens, a_length, is_random_next, positions, labels):
        instances.append(TrainingInstance(tokens, [0] * a_length + [1] * (len(tokens) - a_length),
                                          is_random_next, positions, labels))

    _document_instances(all_documents, document_index, cfg, vocab, rng, emit)
    return instances


def create_instance_arrays(all_documents: list, cfg: PretrainingDataConfig, vocab: MaskingVocab,
                           rng: random.Random) -> "InstanceArrays":
    """The original create_training_instances -> InstanceArrays: drop empty documents, shuffle
    them, ``dupe_factor`` passes over all, shuffle the instances. Instances are collected as flat
    lists; the final shuffle draws a permutation (the same draws as shuffling the instances)
    that numpy applies."""
    all_documents = [d for d in all_documents if d]
    shuffle(all_documents, rng)
    ids: list[int] = []
    positions: list[int] = []
    labels: list[int] = []
    lengths: list[int] = []
    a_lengths: list[int] = []
    mlm_lengths: list[int] = []
    random_next: list[bool] = []

    def emit(tokens, a_length, is_random_next, pos, lab):
        ids.extend(tokens)
        lengths.append(len(tokens))
        a_lengths.append(a_length)
        positions.extend(pos)
        labels.extend(lab)
        mlm_lengths.append(len(pos))
        random_next.append(is_random_next)

    for _ in range(cfg.dupe_factor):
        for document_index in range(len(all_documents)):
            _document_instances(all_documents, document_index, cfg, vocab, rng, emit)
    order = list(range(len(lengths)))
    shuffle(order, rng)
    order = np.asarray(order, np.int64)
    input_ids, offsets = _gather_rows(np.asarray(ids, np.int32), np.asarray(lengths, np.int64),
                                      order)
    mlm_pos, mlm_offsets = _gather_rows(np.asarray(positions, np.int32),
                                        np.asarray(mlm_lengths, np.int64), order)
    mlm_ids, _ = _gather_rows(np.asarray(labels, np.int32), np.asarray(mlm_lengths, np.int64),
                              order)
    return InstanceArrays(input_ids, offsets, np.asarray(a_lengths, np.int32)[order], mlm_pos,
                          mlm_ids, mlm_offsets, np.asarray(random_next, np.int8)[order])


def _gather_rows(flat: np.ndarray, lengths: np.ndarray, order: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length rows back to back (``flat``, row i has ``lengths[i]`` items) -> the rows
    in ``order``, back to back, and their offsets [N+1]."""
    starts = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=starts[1:])
    new_lengths = lengths[order]
    new_offsets = np.zeros(len(order) + 1, np.int64)
    np.cumsum(new_lengths, out=new_offsets[1:])
    index = np.repeat(starts[:-1][order] - new_offsets[:-1], new_lengths)
    index += np.arange(int(new_offsets[-1]), dtype=np.int64)
    return flat[index], new_offsets


def create_training_instances(all_documents: list, cfg: PretrainingDataConfig,
                              vocab: MaskingVocab, rng: random.Random) -> list[TrainingInstance]:
    """:func:`create_instance_arrays` as a list of :class:`TrainingInstance`."""
    arrays = create_instance_arrays(all_documents, cfg, vocab, rng)
    return [arrays.instance(i) for i in range(len(arrays))]


# ---------------------------------------------------------------------------------------------
# reading text
# ---------------------------------------------------------------------------------------------

def read_lines(path: str) -> list[str]:
    """A text file's lines split on ``\\n`` only (as TF's GFile.readline), each stripped;
    invalid UTF-8 bytes are dropped."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "ignore")
    except OSError as e:
        raise OpenBertError(f"cannot read input file {path}: {e.strerror}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def read_documents(paths: Sequence[str], tokenizer, documents: list | None = None) -> list:
    """Tokenize files into documents (lists of segments = token-id lists), as the original reads:
    a blank line starts a new document; files continue the document the previous file ended in;
    lines that tokenize to nothing are skipped. Empty documents are kept (callers drop them)."""
    documents = [[]] if documents is None else documents
    for path in paths:
        lines = read_lines(path)
        texts = [line for line in lines if line]
        ids = iter(tokenizer.encode_batch(texts)) if texts else iter(())
        for line in lines:
            if not line:
                documents.append([])
                continue
            tokens = next(ids)
            if tokens:
                documents[-1].append(tokens)
    return documents


# ---------------------------------------------------------------------------------------------
# instances as flat arrays (what workers return and writers store)
# ---------------------------------------------------------------------------------------------
@dataclass
class InstanceArrays:
    """N instances, unpadded, back to back.

    input_ids [T] int32, offsets [N+1] int64 (instance i = input_ids[offsets[i]:offsets[i+1]]),
    a_lengths [N] int32 (tokens with segment id 0: [CLS] A [SEP]), masked_lm_positions /
    masked_lm_ids [M] int32 with mlm_offsets [N+1], next_sentence_labels [N] int8 (1 = random).
    """

    input_ids: np.ndarray
    offsets: np.ndarray
    a_lengths: np.ndarray
    masked_lm_positions: np.ndarray
    masked_lm_ids: np.ndarray
    mlm_offsets: np.ndarray
    next_sentence_labels: np.ndarray

    def __len__(self) -> int:
        return len(self.a_lengths)

    def instance(self, i: int) -> TrainingInstance:
        s, e = self.offsets[i], self.offsets[i + 1]
        ms, me = self.mlm_offsets[i], self.mlm_offsets[i + 1]
        a = int(self.a_lengths[i])
        return TrainingInstance(self.input_ids[s:e].tolist(), [0] * a + [1] * int(e - s - a),
                                bool(self.next_sentence_labels[i]),
                                self.masked_lm_positions[ms:me].tolist(),
                                self.masked_lm_ids[ms:me].tolist())

    def padded(self, max_seq_length: int, max_predictions_per_seq: int) -> dict[str, np.ndarray]:
        """The original's fixed-size features for all instances ([N, L] / [N, P] / [N, 1])."""
        n = len(self)
        lengths = np.diff(self.offsets)
        mlm_lengths = np.diff(self.mlm_offsets)
        if n and (lengths.max() > max_seq_length or mlm_lengths.max() > max_predictions_per_seq):
            raise ValueError("instances longer than max_seq_length / max_predictions_per_seq")
        col = np.arange(max_seq_length)
        input_mask = (col[None, :] < lengths[:, None]).astype(np.int64)
        input_ids = np.zeros((n, max_seq_length), np.int64)
        input_ids[input_mask.astype(bool)] = self.input_ids
        segment_ids = (input_mask.astype(bool) & (col[None, :] >= self.a_lengths[:, None])
                       ).astype(np.int64)
        pcol = np.arange(max_predictions_per_seq)
        mlm_mask = pcol[None, :] < mlm_lengths[:, None]
        positions = np.zeros((n, max_predictions_per_seq), np.int64)
        positions[mlm_mask] = self.masked_lm_positions
        ids = np.zeros((n, max_predictions_per_seq), np.int64)
        ids[mlm_mask] = self.masked_lm_ids
        return {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids,
                "masked_lm_positions": positions, "masked_lm_ids": ids,
                "masked_lm_weights": mlm_mask.astype(np.float32),
                "next_sentence_labels": self.next_sentence_labels.astype(np.int64)[:, None]}


def serialize_tfrecords(arrays: InstanceArrays, max_seq_length: int,
                        max_predictions_per_seq: int, chunk: int = 4096) -> list[bytes]:
    """Each instance as a framed TFRecord record of the original's tf.train.Example (encoded
    ``chunk`` instances at a time, which keeps the temporary arrays small)."""
    from ...io.tfrecord import encode_examples, frame_record

    f = arrays.padded(max_seq_length, max_predictions_per_seq)
    ints = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
            "next_sentence_labels")
    records = []
    for s in range(0, len(arrays), chunk):
        examples = encode_examples({k: f[k][s:s + chunk] for k in ints},
                                   {"masked_lm_weights": f["masked_lm_weights"][s:s + chunk]})
        records.extend(frame_record(e) for e in examples)
    return records


@dataclass
class CreateSummary:
    """Counts over a run; ``mask_rate`` = masked positions / tokens."""

    files: int = 0
    bytes: int = 0
    documents: int = 0
    single_segment_documents: int = 0
    instances: int = 0
    tokens: int = 0
    masked: int = 0
    random_next: int = 0
    seconds: float = 0.0
    per_file: list = field(default_factory=list)

    @property
    def mask_rate(self) -> float:
        return self.masked / max(1, self.tokens)

    @property
    def random_next_rate(self) -> float:
        return self.random_next / max(1, self.instances)

    def add(self, other: "CreateSummary") -> None:
        for k in ("files", "bytes", "documents", "single_segment_documents", "instances",
                  "tokens", "masked", "random_next"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def text(self) -> str:
        mb = self.bytes / 1e6
        return (f"{self.files} file(s), {mb:.2f} MB, {self.documents} documents, "
                f"{self.instances} instances, {self.tokens} tokens, mask rate "
                f"{self.mask_rate:.4f}, random next {self.random_next_rate:.4f}, "
                f"{self.seconds:.1f} s ({mb / max(self.seconds, 1e-9):.2f} MB/s)")


def _check_documents(documents: list, source: str) -> None:
    if not documents:
        raise OpenBertError(f"{source} holds no text: the input needs one sentence per line, "
                            f"with blank lines between documents")
    if len(documents) == 1:
        raise OpenBertError(
            f"{source} holds a single document: next-sentence pairs need a random sentence from "
            f"ANOTHER document; separate documents with blank lines"
            + (" (or pass --whole_corpus to read all files as one corpus)"
               if "file" in source else ""))


def _instances_for(documents: list, seed: int, cfg: PretrainingDataConfig, vocab: MaskingVocab,
                   source: str, nbytes: int) -> tuple[InstanceArrays, CreateSummary]:
    documents = [d for d in documents if d]
    _check_documents(documents, source)
    arrays = create_instance_arrays(documents, cfg, vocab, random.Random(seed))
    s = CreateSummary(files=1, bytes=nbytes, documents=len(documents),
                      single_segment_documents=sum(len(d) == 1 for d in documents),
                      instances=len(arrays), tokens=len(arrays.input_ids),
                      masked=len(arrays.masked_lm_ids),
                      random_next=int(arrays.next_sentence_labels.sum()))
    return arrays, s


_worker: dict = {}


def _worker_init(tokenizer, vocab: MaskingVocab, cfg: PretrainingDataConfig, fmt: str) -> None:
    _worker.update(tokenizer=tokenizer, vocab=vocab, cfg=cfg, fmt=fmt)


def _process_file(job: tuple[int, str]):
    """One input file -> (file index, arrays, summary, framed TFRecord records or None)."""
    k, path = job
    w = _worker
    cfg = w["cfg"]
    documents = read_documents([path], w["tokenizer"])
    arrays, s = _instances_for(documents, cfg.random_seed + k, cfg, w["vocab"], f"input file {path}",
                               os.path.getsize(path))
    records = None
    if w["fmt"] == "tfrecord":
        records = serialize_tfrecords(arrays, cfg.max_seq_length, cfg.max_predictions_per_seq)
    return k, arrays, s, records


def iter_file_instances(files: Sequence[str], tokenizer, cfg: PretrainingDataConfig,
                        vocab: MaskingVocab, workers: int = 1, output_format: str = "shards",
                        whole_corpus: bool = False):
    """Yield (source, arrays, summary, framed records or None) per input file in order
    (``whole_corpus``: once, for all files read as one corpus with ``random_seed``)."""
    cfg.validate()
    if whole_corpus:
        documents = read_documents(files, tokenizer)
        nbytes = sum(os.path.getsize(f) for f in files)
        arrays, s = _instances_for(documents, cfg.random_seed, cfg, vocab,
                                   f"the input ({len(files)} files)" if len(files) > 1
                                   else f"input file {files[0]}", nbytes)
        s.files = len(files)
        records = (serialize_tfrecords(arrays, cfg.max_seq_length, cfg.max_predictions_per_seq)
                   if output_format == "tfrecord" else None)
        yield ",".join(files), arrays, s, records
        return
    jobs = list(enumerate(files))
    workers = max(1, min(workers, len(files)))
    if workers == 1:
        _worker_init(tokenizer, vocab, cfg, output_format)
        for job in jobs:
            k, arrays, s, records = _process_file(job)
            yield files[k], arrays, s, records
        return
    tokenizer.encode_batch(["warm up the fast path tables before forking"])
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(
            workers, initializer=_worker_init,
            initargs=(tokenizer, vocab, cfg, output_format)) as pool:
        for k, arrays, s, records in pool.imap(_process_file, jobs):
            yield files[k], arrays, s, records


def create_pretraining_data(input_files: str | Sequence[str], output: str, tokenizer,
                            cfg: PretrainingDataConfig = PretrainingDataConfig(), workers: int = 1,
                            output_format: str = "shards", whole_corpus: bool = False,
                            progress: bool = True) -> CreateSummary:
    """Read text files, create instances, write them.

    ``output_format="shards"``: ``output`` is a directory of openbert shards (one shard per input
    file; see :mod:`openbert.io.shards`). ``"tfrecord"``: ``output`` is a comma-separated list of
    TFRecord files; instances go round-robin over them, as the original writes.
    """
    from tqdm import tqdm

    from ...io.shards import ShardWriter, check_output
    from ...io.tfrecord import TFRecordWriter, check_tfrecord_output

    files = expand_input_files(input_files)
    if output_format == "tfrecord":
        outputs = [p for p in output.split(",") if p]
        if not outputs:
            raise OpenBertError("--output_file names no file: pass comma-separated TFRecord file names")
        for p in outputs:
            check_tfrecord_output(p, inputs=files)
    elif output_format == "shards":
        check_output(output, inputs=files)
    else:
        raise OpenBertError(f"--output_format={output_format}: use shards or tfrecord")
    vocab = MaskingVocab(tokenizer.vocab, getattr(tokenizer, "vocab_file", "the vocabulary"))
    total = CreateSummary()
    t0 = time.perf_counter()
    if output_format == "tfrecord":
        sink = []
        try:
            for p in outputs:
                sink.append(TFRecordWriter(p))
        except BaseException:
            for w in sink:
                w.abort()
            raise
    else:
        sink = ShardWriter(output, cfg, vocab, do_lower_case=getattr(tokenizer, "do_lower_case", None),
                           inputs=files, vocab_file=getattr(tokenizer, "vocab_file", None))
    bar = tqdm(total=sum(os.path.getsize(f) for f in files), unit="B", unit_scale=True,
               disable=not progress, desc="create-pretraining-data")
    ok = False
    try:
        written = 0
        for k, (source, arrays, s, records) in enumerate(
                iter_file_instances(files, tokenizer, cfg, vocab, workers, output_format,
                                    whole_corpus)):
            if output_format == "tfrecord":
                for r in records:
                    sink[written % len(sink)].write_framed(r, 1)
                    written += 1
            else:
                sink.add(arrays, source=source, seed=cfg.random_seed + (0 if whole_corpus else k))
            total.add(s)
            total.per_file.append((source, s.instances))
            bar.update(s.bytes)
            bar.set_postfix(instances=total.instances)
        ok = True
    finally:
        bar.close()
        if output_format == "tfrecord":
            for w in sink:
                w.close() if ok else w.abort()
        else:
            sink.close() if ok else sink.abort()
    total.seconds = time.perf_counter() - t0
    if total.single_segment_documents == total.documents:
        logger.warning("every document has a single line, so every pair is a random next "
                       "sentence: put one sentence per line with blank lines only between "
                       "documents")
    return total


# ---------------------------------------------------------------------------------------------
# training input: shards or TFRecord files -> examples -> batches
# ---------------------------------------------------------------------------------------------
class _TFRecordSource:
    """One TFRecord file of the original's features, read by record offset.

    Each record's data checksum is verified when it is read (``verify_crc``), as TensorFlow's
    reader does, so a damaged record stops training with an error naming the file and record.
    """

    def __init__(self, path: str, verify_crc: bool = True):
        from ...io.tfrecord import index_records, open_mapped

        self.path = path
        self.verify_crc = verify_crc
        self.index = index_records(path, verify=False)  # length checksums only; data on read
        self.buf = open_mapped(path)
        self.max_seq_length = self.max_predictions_per_seq = None
        if len(self.index):
            first = self._decode(0)
            self.max_seq_length = len(first["input_ids"])
            self.max_predictions_per_seq = len(first["masked_lm_ids"])

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):  # the memory map is reopened in the receiving process
        return {**self.__dict__, "buf": None}

    def __setstate__(self, state):
        from ...io.tfrecord import open_mapped

        self.__dict__.update(state)
        self.buf = open_mapped(self.path)

    def _decode(self, i: int) -> dict:
        from ...io.tfrecord import check_record, decode_example

        start, length = self.index[i]
        if self.verify_crc:
            check_record(self.buf, self.path, i, start, length)
        try:
            ex = decode_example(self.buf[start:start + length])
            return {k: ex[k] for k in ("input_ids", "input_mask", "segment_ids",
                                       "masked_lm_positions", "masked_lm_ids",
                                       "masked_lm_weights", "next_sentence_labels")}
        except (ValueError, KeyError) as e:
            raise OpenBertError(f"record {i} of {self.path} is not a pre-training example ({e}): "
                                f"create the file with `openbert create-pretraining-data`") from None

    def instance(self, i: int) -> dict[str, np.ndarray]:
        ex = self._decode(i)
        n = int(ex["input_mask"].sum())
        m = int((ex["masked_lm_weights"] > 0).sum())
        return {"input_ids": ex["input_ids"][:n], "segment_ids": ex["segment_ids"][:n],
                "masked_lm_positions": ex["masked_lm_positions"][:m],
                "masked_lm_ids": ex["masked_lm_ids"][:m],
                "next_sentence_labels": int(ex["next_sentence_labels"][0])}


def _same_vocab(vocab_files: list[str]) -> str | None:
    """The one vocabulary the shard directories were made with (None when none recorded it)."""
    for other in vocab_files[1:]:
        if load_vocab(vocab_files[0]) != load_vocab(other):
            raise OpenBertError(f"the input was made with different vocabularies ({vocab_files[0]} and "
                                f"{other}): train on data made with one vocabulary")
    return vocab_files[0] if vocab_files else None


class PretrainingDataset:
    """Map-style dataset over openbert shard directories and/or TFRecord files.

    ``dataset[i]`` -> dict of unpadded arrays: input_ids, segment_ids [n], masked_lm_positions,
    masked_lm_ids [m], next_sentence_labels (int). The data must have been created with
    ``max_seq_length`` / ``max_predictions_per_seq`` (the original's fixed-size features);
    ``dynamic_masking`` re-masks every access (see :class:`DynamicMasking`).
    """

    def __init__(self, input_files: str | Sequence[str], max_seq_length: int,
                 max_predictions_per_seq: int, dynamic_masking: "DynamicMasking | None" = None,
                 verify_crc: bool = True):
        from ...io.shards import Shards, is_shard_dir

        if isinstance(input_files, str):
            input_files = [p for p in input_files.split(",") if p]
        paths = []
        for pattern in input_files:
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise OpenBertError(f"--input_file {pattern} matches nothing: pass shard "
                                    f"directories or TFRecord files made by create-pretraining-data")
            paths.extend(matches)
        self.sources = []
        for p in paths:
            if is_shard_dir(p):
                src = Shards(p)
            elif os.path.isdir(p):
                raise OpenBertError(f"{p} is a directory without meta.json: pass an openbert shard "
                                    f"directory or TFRecord files")
            else:
                src = _TFRecordSource(p, verify_crc)
            for what, have, want in (("max_seq_length", src.max_seq_length, max_seq_length),
                                     ("max_predictions_per_seq", src.max_predictions_per_seq,
                                      max_predictions_per_seq)):
                if have is not None and have != want:
                    raise OpenBertError(
                        f"{p} was created with --{what}={have} but --{what}={want} was given: "
                        f"pass --{what}={have}, or re-create the data with --{what}={want}")
            self.sources.append(src)
        counts = [len(s) for s in self.sources]
        if not sum(counts):
            raise OpenBertError(f"no instances in {', '.join(paths)}")
        self.starts = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=self.starts[1:])
        self.max_seq_length = max_seq_length
        self.max_predictions_per_seq = max_predictions_per_seq
        self.dynamic_masking = dynamic_masking
        self.subword_ids = next((getattr(s, "subword_ids", None) for s in self.sources
                                 if getattr(s, "subword_ids", None) is not None), None)
        self.meta = next((s.meta for s in self.sources if hasattr(s, "meta")), {})
        self.vocab_file = _same_vocab([s.vocab_file for s in self.sources if getattr(s, "vocab_file", None)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def lengths(self) -> np.ndarray | None:
        """Token counts per instance (shards only; None when a TFRecord file is among them)."""
        if all(hasattr(s, "lengths") for s in self.sources):
            return np.concatenate([s.lengths for s in self.sources])
        return None

    def stored(self, i: int) -> dict:
        """Instance ``i`` as stored (no dynamic masking)."""
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.sources[k].instance(int(i - self.starts[k]))

    def fingerprint(self) -> str:
        """A digest of the stored instances, for telling training runs apart; it draws no dynamic
        masks (that would shift the masks training then sees)."""
        from ...training.state import data_fingerprint

        return data_fingerprint(self, item=self.stored)

    def __getitem__(self, i: int) -> dict:
        ex = self.stored(i)
        if self.dynamic_masking is not None:
            ex = self.dynamic_masking(ex, int(i))
        return ex


class DynamicMasking:
    """Fresh masks at every access of an instance, from its unmasked tokens (beyond the original).

    The unmasked tokens are the stored ones with ``masked_lm_ids`` put back at
    ``masked_lm_positions``; then the original's rule is applied with numpy: candidates are all
    positions but [CLS]/[SEP] (``##`` pieces joined to their word when ``whole_word``), shuffled,
    taken until num_to_predict = min(P, max(1, round(n * masked_lm_prob))) (overflowing words
    skipped); 80% [MASK], 10% kept, 10% a random id. Access ``c`` of instance ``i`` uses the
    generator seeded with (seed, i, c), so epoch e of a run sees the same masks on every run.
    """

    def __init__(self, cls_id: int, sep_id: int, mask_id: int, vocab_size: int,
                 masked_lm_prob: float = 0.15, max_predictions_per_seq: int = 20,
                 subword_ids: np.ndarray | None = None, seed: int = 0):
        self.cls_id, self.sep_id, self.mask_id = cls_id, sep_id, mask_id
        self.vocab_size = vocab_size
        self.masked_lm_prob = masked_lm_prob
        self.max_predictions_per_seq = max_predictions_per_seq
        self.is_subword = None
        if subword_ids is not None:
            self.is_subword = np.zeros(vocab_size, bool)
            self.is_subword[np.asarray(subword_ids, np.int64)] = True
        self.seed = seed
        self.counts: dict[int, int] = {}

    def __call__(self, ex: dict, index: int) -> dict:
        count = self.counts.get(index, 0)
        self.counts[index] = count + 1
        rng = np.random.default_rng((self.seed, index, count))
        tokens = np.array(ex["input_ids"], np.int64)
        tokens[ex["masked_lm_positions"]] = ex["masked_lm_ids"]
        n = len(tokens)
        cand = np.flatnonzero((tokens != self.cls_id) & (tokens != self.sep_id))
        num = min(self.max_predictions_per_seq, max(1, int(round(n * self.masked_lm_prob))))
        if self.is_subword is not None:
            # a ## piece joins the candidate before it (the original's grouping)
            starts = ~self.is_subword[tokens[cand]]
            starts[:1] = True
            word = np.cumsum(starts) - 1  # word id of each candidate
            order = rng.permutation(int(word[-1]) + 1) if len(cand) else np.zeros(0, np.int64)
            sizes = np.bincount(word)
            chosen_words, total = [], 0
            for w in order:
                if total >= num:
                    break
                if total + sizes[w] <= num:
                    chosen_words.append(w)
                    total += sizes[w]
            positions = np.sort(cand[np.isin(word, chosen_words)])
        else:
            positions = np.sort(rng.permutation(cand)[:num])
        labels = tokens[positions]
        out = tokens.copy()
        u = rng.random(len(positions))
        out[positions[u < 0.8]] = self.mask_id
        rand = u >= 0.9
        out[positions[rand]] = rng.integers(0, self.vocab_size, int(rand.sum()))
        return {**ex, "input_ids": out, "masked_lm_positions": positions, "masked_lm_ids": labels}


def collate(examples: list[dict], next_sentence: bool = True) -> dict:
    """Pad a list of dataset items into a batch of torch tensors.

    input_ids / input_mask / segment_ids [B, S] (S = longest in the batch), masked_lm_positions /
    masked_lm_ids / masked_lm_weights [B, P] (P = most predictions in the batch; weights 0 on
    padding), next_sentence_labels [B] (left out when ``next_sentence`` is False).
    """
    batch = encoder_inputs([e["input_ids"] for e in examples], [e["segment_ids"] for e in examples])
    p = max(1, max(len(e["masked_lm_positions"]) for e in examples))
    batch["masked_lm_positions"] = pad([e["masked_lm_positions"] for e in examples], p)
    batch["masked_lm_ids"] = pad([e["masked_lm_ids"] for e in examples], p)
    batch["masked_lm_weights"] = pad([np.ones(len(e["masked_lm_positions"]), np.float32) for e in examples],
                                     p, np.float32)
    if next_sentence:
        batch["next_sentence_labels"] = torch.tensor([e["next_sentence_labels"] for e in examples])
    return batch

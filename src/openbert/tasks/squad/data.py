"""SQuAD v1.1 / v2.0 data: JSON -> examples -> windowed features -> batches (run_squad.py).

``read_squad_examples(path, is_training, version_2_with_negative)`` -> list of :class:`SquadExample`
``convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length,
is_training)`` -> list of :class:`InputFeatures` (one per document window, unpadded)
``collate_train`` / ``collate_predict``: list of features -> dict of padded tensors for the model.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch

from ...errors import OpenBertError
from ...io.fileio import read_json
from ..common import encoder_inputs

logger = logging.getLogger(__name__)

UNIQUE_ID_BASE = 1000000000  # the original's first unique_id


def is_whitespace(c: str) -> bool:
    """The original's context separator: space, tab, CR, LF and U+202F (narrow no-break space)."""
    return c == " " or c == "\t" or c == "\r" or c == "\n" or ord(c) == 0x202F


@dataclass
class SquadExample:
    """One question on one paragraph.

    ``doc_tokens`` are the paragraph's whitespace-separated words (shared by the paragraph's
    questions); ``start_position``/``end_position`` are word indexes of the answer (training only),
    -1 for impossible questions.
    """
    qas_id: str
    question_text: str
    doc_tokens: list[str]
    orig_answer_text: str | None = None
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False


@dataclass
class InputFeatures:
    """One window ``[CLS] question [SEP] doc-window [SEP]`` of one example (no padding).

    ``token_to_orig_map``/``token_is_max_context`` are keyed by position in ``tokens`` (document
    tokens only). ``start_position``/``end_position`` are positions in ``tokens`` (0 = [CLS] when the
    answer is outside the window or the question is impossible); None at prediction time.
    """
    unique_id: int
    example_index: int
    doc_span_index: int
    tokens: list[str]
    token_to_orig_map: dict[int, int]
    token_is_max_context: dict[int, bool]
    input_ids: list[int]
    segment_ids: list[int]
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False

    @property
    def input_mask(self) -> list[int]:
        return [1] * len(self.input_ids)


@dataclass
class ReadStats:
    """What ``read_squad_examples`` skipped; ``skipped_ids`` lists the question ids."""
    num_questions: int = 0
    skipped_ids: list[str] = field(default_factory=list)


def split_context(paragraph_text: str) -> tuple[list[str], list[int]]:
    """Whitespace-split a context -> (doc_tokens, char_to_word_offset), as the original.

    ``char_to_word_offset[i]`` is the index of the word that character ``i`` belongs to (a
    whitespace character maps to the word before it, -1 before the first word).
    """
    doc_tokens: list[str] = []
    char_to_word_offset: list[int] = []
    prev_is_whitespace = True
    for c in paragraph_text:
        if is_whitespace(c):
            prev_is_whitespace = True
        else:
            if prev_is_whitespace:
                doc_tokens.append(c)
            else:
                doc_tokens[-1] += c
            prev_is_whitespace = False
        char_to_word_offset.append(len(doc_tokens) - 1)
    return doc_tokens, char_to_word_offset


def load_squad_json(path: str | os.PathLike) -> dict:
    """Read a SQuAD-format JSON file; OpenBertError when it is missing, not JSON or not SQuAD."""
    path = os.fspath(path)
    data = read_json(path, 'a SQuAD JSON file such as train-v1.1.json: {"version": ..., "data": '
                           '[{"paragraphs": [{"context": ..., "qas": [...]}]}]}')
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise OpenBertError(f"{path}: not SQuAD format: the top level must be an object with a "
                            '"data" list of articles, each {"paragraphs": [{"context": ..., "qas": [...]}]}')
    for i, entry in enumerate(data["data"]):
        paragraphs = entry.get("paragraphs") if isinstance(entry, dict) else None
        if not isinstance(paragraphs, list):
            raise OpenBertError(f'{path}: not SQuAD format: data[{i}] has no "paragraphs" list')
        for j, p in enumerate(paragraphs):
            if not isinstance(p, dict) or not isinstance(p.get("context"), str) or not isinstance(p.get("qas"), list):
                raise OpenBertError(f'{path}: not SQuAD format: data[{i}].paragraphs[{j}] needs a '
                                    '"context" string and a "qas" list')
            for k, qa in enumerate(p["qas"]):
                if not isinstance(qa, dict) or "id" not in qa or not isinstance(qa.get("question"), str):
                    raise OpenBertError(f'{path}: not SQuAD format: data[{i}].paragraphs[{j}].qas[{k}] '
                                        'needs an "id" and a "question" string')
    return data


def is_version_2(data: dict) -> bool:
    """True when a SQuAD JSON holds v2.0 data: its declared version says so, or, declaring none,
    a question is impossible."""
    from .metrics import declared_version

    declared = declared_version(data)
    if declared:
        return declared == "2.0"
    return any(qa.get("is_impossible", False) for entry in data["data"]
               for p in entry["paragraphs"] for qa in p["qas"])


def read_squad_examples(path: str | os.PathLike, is_training: bool,
                        version_2_with_negative: bool = False,
                        stats: ReadStats | None = None) -> list[SquadExample]:
    """Read a SQuAD JSON file into examples, as the original ``read_squad_examples``.

    Training needs exactly one answer per possible question. Answers whose text cannot be found at
    ``answer_start`` are skipped (counted in ``stats`` and logged), as the original does. v2.0 data
    without ``version_2_with_negative`` is an error (the original fails on it too).
    """
    data = load_squad_json(path)
    path = os.fspath(path)
    if not version_2_with_negative and is_version_2(data):
        raise OpenBertError(f"{path}: this is SQuAD v2.0 data (it has impossible questions); "
                            "add --version_2_with_negative")
    stats = stats if stats is not None else ReadStats()
    examples: list[SquadExample] = []
    for entry in data["data"]:
        for paragraph in entry["paragraphs"]:
            doc_tokens, char_to_word_offset = split_context(paragraph["context"])
            for qa in paragraph["qas"]:
                stats.num_questions += 1
                example = SquadExample(qas_id=qa["id"], question_text=qa["question"], doc_tokens=doc_tokens)
                if is_training:
                    if not _set_training_answer(example, qa, paragraph["context"], char_to_word_offset,
                                                version_2_with_negative, path):
                        stats.skipped_ids.append(qa["id"])
                        continue
                examples.append(example)
    if stats.skipped_ids:
        logger.warning("%s: skipped %d of %d questions whose answer could not be found in the context "
                       "(answer_start does not match the answer text)", path, len(stats.skipped_ids),
                       stats.num_questions)
    return examples


def _set_training_answer(example: SquadExample, qa: dict, context: str, char_to_word_offset: list[int],
                         version_2_with_negative: bool, path: str) -> bool:
    """Fill the example's answer word span; False when the answer cannot be recovered."""
    if version_2_with_negative:
        example.is_impossible = bool(qa.get("is_impossible", False))
    if example.is_impossible:
        example.start_position = example.end_position = -1
        example.orig_answer_text = ""
        return True
    answers = qa.get("answers")
    if not isinstance(answers, list) or len(answers) != 1:
        raise OpenBertError(f"{path}: question {qa['id']!r} has {len(answers or [])} answers; "
                            "for training, each question needs exactly 1 answer")
    answer = answers[0]
    try:
        orig_answer_text = answer["text"]
        answer_offset = int(answer["answer_start"])
    except (KeyError, TypeError, ValueError) as e:
        raise OpenBertError(f'{path}: question {qa["id"]!r}: an answer needs "text" and an integer '
                            f'"answer_start" ({e!r})') from e
    end_offset = answer_offset + len(orig_answer_text) - 1
    if not orig_answer_text or answer_offset < 0 or end_offset >= len(context):
        logger.warning("Could not find answer %r at %d in question %r", orig_answer_text,
                       answer_offset, qa["id"])
        return False
    start_position = max(char_to_word_offset[answer_offset], 0)  # -1: leading whitespace
    end_position = char_to_word_offset[end_offset]
    actual_text = " ".join(example.doc_tokens[start_position:end_position + 1])
    cleaned_answer_text = " ".join(orig_answer_text.split())
    if actual_text.find(cleaned_answer_text) == -1:
        logger.warning("Could not find answer: '%s' vs. '%s'", actual_text, cleaned_answer_text)
        return False
    example.orig_answer_text = orig_answer_text
    example.start_position = start_position
    example.end_position = end_position
    return True


class _WordTokenizer:
    """Per-word WordPiece tokenization with a memo: SQuAD words repeat across questions and windows."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[str, list[str]] = {}
        self.last_doc: list[str] | None = None
        self.last_maps: tuple[list[int], list[int], list[str], list[int]] | None = None

    def tokenize_all(self, texts) -> list[list[str]]:
        """``[tokenizer.tokenize(t) for t in texts]`` through the batch path when there is one."""
        texts = list(texts)
        batch = getattr(self.tokenizer, "tokenize_batch", None)
        return batch(texts) if batch is not None else [self.tokenizer.tokenize(t) for t in texts]

    def prepare(self, examples: list[SquadExample]) -> list[list[str]]:
        """Tokenize every distinct context word in one batch; -> the questions' tokens."""
        words = {w for doc in {id(e.doc_tokens): e.doc_tokens for e in examples}.values() for w in doc}
        words = [w for w in words if w not in self.cache]
        self.cache.update(zip(words, self.tokenize_all(words)))
        return self.tokenize_all(e.question_text for e in examples)

    def tokenize_doc(self, doc_tokens: list[str]) -> tuple[list[int], list[int], list[str], list[int]]:
        """-> (tok_to_orig_index, orig_to_tok_index, all_doc_tokens, their ids); reused for the
        paragraph's next question."""
        if doc_tokens is self.last_doc:
            return self.last_maps
        tok_to_orig_index: list[int] = []
        orig_to_tok_index: list[int] = []
        all_doc_tokens: list[str] = []
        for i, token in enumerate(doc_tokens):
            orig_to_tok_index.append(len(all_doc_tokens))
            sub_tokens = self.cache.get(token)
            if sub_tokens is None:
                sub_tokens = self.cache[token] = self.tokenizer.tokenize(token)
            tok_to_orig_index.extend([i] * len(sub_tokens))
            all_doc_tokens.extend(sub_tokens)
        all_doc_ids = self.tokenizer.convert_tokens_to_ids(all_doc_tokens)
        self.last_doc = doc_tokens
        self.last_maps = (tok_to_orig_index, orig_to_tok_index, all_doc_tokens, all_doc_ids)
        return self.last_maps


def doc_spans_for(num_doc_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list[tuple[int, int]]:
    """Sliding windows (start, length) over the document tokens, as the original.

    Each window is as long as fits; the next starts ``min(length, doc_stride)`` later, until one
    reaches the end, so every token is in at least one window.
    """
    if max_tokens_for_doc < 1:
        raise OpenBertError(f"no room for the document: max_seq_length leaves {max_tokens_for_doc} tokens "
                            "after [CLS] question [SEP] [SEP]; raise --max_seq_length or lower --max_query_length")
    spans = []
    start = 0
    while start < num_doc_tokens:
        length = min(num_doc_tokens - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length == num_doc_tokens:
            break
        start += min(length, doc_stride)
    return spans


def max_context_span(doc_spans: list[tuple[int, int]], position: int) -> int | None:
    """Index of the window where token ``position`` has the most context.

    Score = min(left, right) + 0.01 * window_length; the first window wins ties.
    """
    best_score = None
    best_index = None
    for index, (start, length) in enumerate(doc_spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, index
    return best_index


def max_context_spans(doc_spans: list[tuple[int, int]], num_doc_tokens: int) -> list[int]:
    """:func:`max_context_span` of every document token (one pass over the windows)."""
    best_index = [0] * num_doc_tokens
    best_score = [-1.0] * num_doc_tokens
    for index, (start, length) in enumerate(doc_spans):
        end = start + length - 1
        for position in range(start, end + 1):
            score = min(position - start, end - position) + 0.01 * length
            if score > best_score[position]:
                best_score[position], best_index[position] = score, index
    return best_index


def improve_answer_span(doc_tokens: list[str], input_start: int, input_end: int, tokenizer,
                        orig_answer_text: str) -> tuple[int, int]:
    """Shrink a word-level answer span to the sub-span whose WordPieces equal the tokenized answer.

    E.g. "1895" in "(1895-1943)." -> the single piece "1895". Unchanged when there is no exact match
    (e.g. "Japan" annotated inside "Japanese").
    """
    tok_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
    for new_start in range(input_start, input_end + 1):
        for new_end in range(input_end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start:new_end + 1]) == tok_answer_text:
                return new_start, new_end
    return input_start, input_end


def convert_examples_to_features(examples: list[SquadExample], tokenizer, max_seq_length: int,
                                 doc_stride: int, max_query_length: int,
                                 is_training: bool) -> list[InputFeatures]:
    """Examples -> one feature per document window, as the original ``convert_examples_to_features``.

    ``tokenizer`` is a FullTokenizer (``tokenize``, ``convert_tokens_to_ids``). Questions are cut to
    ``max_query_length`` tokens; documents are never cut: windows of ``max_seq_length - len(q) - 3``
    tokens advance by ``doc_stride``. Training windows without the answer, and impossible questions,
    get start = end = 0 ([CLS]).
    """
    if doc_stride < 1:
        raise OpenBertError(f"--doc_stride must be at least 1, got {doc_stride}")
    words = _WordTokenizer(tokenizer)
    all_query_tokens = words.prepare(examples)
    features: list[InputFeatures] = []
    unique_id = UNIQUE_ID_BASE
    for example_index, example in enumerate(examples):
        query_tokens = all_query_tokens[example_index][:max_query_length]
        tok_to_orig_index, orig_to_tok_index, all_doc_tokens, all_doc_ids = words.tokenize_doc(example.doc_tokens)

        tok_start_position = tok_end_position = None
        if is_training and example.is_impossible:
            tok_start_position = tok_end_position = -1
        if is_training and not example.is_impossible:
            tok_start_position = orig_to_tok_index[example.start_position]
            if example.end_position < len(example.doc_tokens) - 1:
                tok_end_position = orig_to_tok_index[example.end_position + 1] - 1
            else:
                tok_end_position = len(all_doc_tokens) - 1
            tok_start_position, tok_end_position = improve_answer_span(
                all_doc_tokens, tok_start_position, tok_end_position, tokenizer, example.orig_answer_text)

        # The -3 accounts for [CLS], [SEP] and [SEP]
        doc_spans = doc_spans_for(len(all_doc_tokens), max_seq_length - len(query_tokens) - 3, doc_stride)
        prefix = ["[CLS]"] + query_tokens + ["[SEP]"]
        doc_offset = len(prefix)
        prefix_ids = tokenizer.convert_tokens_to_ids(prefix)
        best_span = max_context_spans(doc_spans, len(all_doc_tokens))
        sep_id = tokenizer.convert_tokens_to_ids(["[SEP]"])
        for doc_span_index, (doc_start, length) in enumerate(doc_spans):
            doc_end = doc_start + length  # exclusive
            tokens = prefix + all_doc_tokens[doc_start:doc_end] + ["[SEP]"]
            positions = range(doc_offset, doc_offset + length)
            token_to_orig_map = dict(zip(positions, tok_to_orig_index[doc_start:doc_end]))
            token_is_max_context = dict(zip(positions, (b == doc_span_index for b in best_span[doc_start:doc_end])))
            input_ids = prefix_ids + all_doc_ids[doc_start:doc_end] + sep_id
            segment_ids = [0] * doc_offset + [1] * (length + 1)

            start_position = end_position = None
            if is_training:
                if (example.is_impossible or not (tok_start_position >= doc_start
                                                   and tok_end_position < doc_end)):
                    start_position = end_position = 0
                else:
                    start_position = tok_start_position - doc_start + doc_offset
                    end_position = tok_end_position - doc_start + doc_offset
            features.append(InputFeatures(
                unique_id=unique_id, example_index=example_index, doc_span_index=doc_span_index,
                tokens=tokens, token_to_orig_map=token_to_orig_map,
                token_is_max_context=token_is_max_context, input_ids=input_ids, segment_ids=segment_ids,
                start_position=start_position, end_position=end_position,
                is_impossible=example.is_impossible))
            unique_id += 1
    return features


def collate_predict(features: list[InputFeatures], pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Features -> {input_ids, input_mask, segment_ids} [B, S], zero-padded to the longest (or ``pad_to``)."""
    return encoder_inputs([f.input_ids for f in features], [f.segment_ids for f in features], pad_to)


def collate_train(features: list[InputFeatures], pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """As :func:`collate_predict`, plus ``start_positions`` and ``end_positions`` [B]."""
    batch = collate_predict(features, pad_to)
    batch["start_positions"] = torch.tensor([f.start_position for f in features], dtype=torch.long)
    batch["end_positions"] = torch.tensor([f.end_position for f in features], dtype=torch.long)
    return batch

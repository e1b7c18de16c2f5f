"""Named-entity (and any word-level tagging) data: CoNLL files, tag schemes, windows, batches.

Files in, batches out:

- :func:`read_conll` reads the CoNLL format: one word per line with its columns separated by
  spaces or tabs, a blank line between sentences, ``-DOCSTART-`` lines between documents (kept,
  so predictions can be written back in the same shape). ``tag_column`` picks the tag (default:
  the last column), so NER, chunking and POS columns all work.
- tag schemes: IOB1 (CoNLL-2003 as distributed: ``B-`` only between two adjacent entities of one
  type), IOB2 (every entity starts with ``B-``) and IOBES (``S-`` single, ``E-`` last); ``none``
  for plain tags (POS). :func:`detect_scheme` tells them apart, :func:`check_tags` names the file
  and line of a tag outside the scheme.
- :func:`convert_to_features`: each word is WordPiece-tokenized; its label sits on its first
  sub-token, the other sub-tokens get -100 (ignored by the loss). A sentence longer than one
  window (``max_seq_length - 2`` sub-tokens) is split into windows ``doc_stride`` apart, and each
  word is predicted in exactly one of them: the one where it has the most context on its shorter
  side. With ``document_context``, each window holds one sentence in the middle of its
  neighbours from the same document (as many as fit) and predicts that sentence's words only.
- :func:`collate` pads a batch to its longest window; labels are padded with -100.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Sequence

import torch

from ...errors import OpenBertError
from ..common import encode_texts, encoder_inputs, pad

logger = logging.getLogger(__name__)

DOCSTART = "-DOCSTART-"
IGNORE = -100  # label of positions the loss and the metrics skip
SCHEMES = ("iob1", "iob2", "iobes", "none")
PREFIXES = {"iob1": ("B", "I"), "iob2": ("B", "I"), "iobes": ("B", "I", "E", "S")}
SPLIT_FILES = {
    "train": ("eng.train", "train.txt"),
    "dev": ("eng.testa", "valid.txt", "dev.txt"),
    "test": ("eng.testb", "test.txt"),
}


@dataclass
class Sentence:
    """One sentence of a CoNLL file: its ``words``, their ``tags`` (None in a file without tags),
    the ``document`` it belongs to (count of ``-DOCSTART-`` lines before it), the ``line`` of
    its first word, and how many ``-DOCSTART-`` lines come right before it (``docstarts``)."""

    words: list[str]
    tags: list[str] | None
    document: int
    line: int
    docstarts: int = 0


@dataclass
class ConllFile:
    """The sentences of ``path``; ``labelled``: whether it carries tags; ``trailing_docstarts``:
    ``-DOCSTART-`` lines after the last sentence."""

    path: str
    sentences: list[Sentence]
    labelled: bool
    trailing_docstarts: int = 0


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def read_conll(path: str | os.PathLike, tag_column: int = -1, labelled: bool | None = True) -> ConllFile:
    """Read a CoNLL file.

    ``tag_column``: the tag's column, counted from 0 (the word); negative counts from the end (-1:
    the last). ``labelled``: True: every word needs a tag; False: words only (other columns are
    ignored); None: decided by the first word line (one column: no tags). OpenBertError naming
    the file and line for an empty file, a missing tag column or a line with one column.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OpenBertError(f"{path}: file not found (expected a CoNLL file: one word per line)")
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    document, docstarts, start = 0, 0, 0

    def close():
        nonlocal words, tags, docstarts
        if words:
            sentences.append(Sentence(words, tags if labelled else None, document, start, docstarts))
            words, tags, docstarts = [], [], 0

    try:
        with open(path, encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                cols = line.split()
                if not cols:
                    close()
                    continue
                if cols[0] == DOCSTART:
                    close()
                    document += 1
                    docstarts += 1
                    continue
                if labelled is None:
                    labelled = len(cols) > 1
                if not words:
                    start = n
                words.append(cols[0])
                if labelled:
                    tags.append(_tag(cols, tag_column, path, n))
            close()
    except UnicodeDecodeError as e:
        raise OpenBertError(f"{path}: not UTF-8 text ({e}); convert the file to UTF-8") from None
    if not sentences:
        raise OpenBertError(f"{path}: no sentences (an empty file?); expected one word per line, "
                            f"a blank line between sentences")
    return ConllFile(path, sentences, bool(labelled), docstarts)


def _tag(cols: list[str], tag_column: int, path: str, line: int) -> str:
    if len(cols) == 1:
        raise OpenBertError(f"{path}, line {line}: one column ({cols[0]!r}); expected the word and its "
                            f"tag separated by a space or tab")
    index = tag_column if tag_column >= 0 else len(cols) + tag_column
    if not 0 < index < len(cols):
        raise OpenBertError(f"{path}, line {line}: no tag column {tag_column} (the line has {len(cols)} "
                            f"columns, the word is column 0); set --tag_column")
    return cols[index]


# ---------------------------------------------------------------------------------------------
# tag schemes
# ---------------------------------------------------------------------------------------------
def split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") for "B-PER": the prefix before the first hyphen and the type after it, as
    conlleval splits (a tag without a hyphen has type "")."""
    prefix, sep, kind = tag.partition("-")
    return (prefix, kind) if sep else (tag, "")


def _fits(tag: str, scheme: str) -> bool:
    if tag == "O" or scheme == "none":
        return True
    prefix, kind = split_tag(tag)
    return bool(kind) and prefix in PREFIXES[scheme]


def detect_scheme(sentences: Sequence[Sentence]) -> str:
    """The scheme the tags are written in: "iobes" when ``E-`` or ``S-`` occur, "iob1" when an
    ``I-X`` starts an entity (after ``O``, another type or the sentence start), "iob2" for other
    B/I tags, "none" when some tag is not O, B-X, I-X, E-X or S-X (POS tags)."""
    iobes = iob1 = False
    for s in sentences:
        prev = "O"
        for tag in s.tags:
            if not _fits(tag, "iobes"):
                return "none"
            prefix, kind = split_tag(tag)
            if prefix in ("E", "S"):
                iobes = True
            elif prefix == "I" and (prev == "O" or split_tag(prev)[1] != kind):
                iob1 = True
            prev = tag
    return "iobes" if iobes else "iob1" if iob1 else "iob2"


def check_scheme(scheme: str) -> str:
    """``scheme`` lower-cased, or OpenBertError naming --tag_scheme and the known schemes."""
    name = str(scheme).lower()
    if name not in SCHEMES + ("auto",):
        raise OpenBertError(f"--tag_scheme={scheme} is unknown; choose one of auto, {', '.join(SCHEMES)}")
    return name


def check_tags(data: ConllFile, scheme: str) -> None:
    """OpenBertError naming the file and line of the first tag the scheme does not allow: a prefix
    it lacks, or (IOB2, IOBES) an entity that does not start with B-/S- or a B- that IOBES ends
    without E-."""
    for s in data.sentences:
        prev = "O"
        for i, tag in enumerate(s.tags or ()):
            where = f"{data.path}, line {s.line + i}"
            if not _fits(tag, scheme):
                allowed = "/".join(f"{p}-" for p in PREFIXES[scheme])
                raise OpenBertError(f"{where}: tag {tag!r} is not {scheme.upper()} (O or {allowed}TYPE); "
                                    f"set --tag_scheme (auto, {', '.join(SCHEMES)})")
            if scheme in ("iob2", "iobes") and not _may_follow(prev, tag, scheme):
                raise OpenBertError(f"{where}: tag {tag!r} cannot follow {prev!r} in {scheme.upper()}"
                                    f"{_hint(scheme)}")
            prev = tag
        if scheme == "iobes" and not _may_follow(prev, "O", scheme):
            raise OpenBertError(f"{data.path}, line {s.line + len(s.words) - 1}: tag {prev!r} cannot end a "
                                f"sentence in IOBES{_hint(scheme)}")


def _may_follow(prev: str, tag: str, scheme: str) -> bool:
    """IOB2 and IOBES: I- (and E-) only continue an entity of their type; IOBES: B- and I- are
    followed by I- or E- of their type."""
    p_prefix, p_kind = split_tag(prev)
    prefix, kind = split_tag(tag)
    continues = prefix in ("I", "E") and p_prefix in ("B", "I") and p_kind == kind
    if prefix in ("I", "E") and not continues:
        return False
    return not (scheme == "iobes" and p_prefix in ("B", "I") and not continues)


def _hint(scheme: str) -> str:
    return ("; is the file IOB1 (CoNLL-2003 as distributed)? set --tag_scheme=iob1" if scheme == "iob2"
            else "; set --tag_scheme to the file's scheme")


def to_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """IOBES tags as IOB2 (S- -> B-, E- -> I-), the form conlleval evaluates correctly; other
    schemes unchanged."""
    if scheme != "iobes":
        return list(tags)
    return ["B" + t[1:] if t.startswith("S-") else "I" + t[1:] if t.startswith("E-") else t for t in tags]


def label_list(data: ConllFile) -> list[str]:
    """The tags of a training file: "O" first (when present), then the others sorted."""
    found = {t for s in data.sentences for t in s.tags}
    return (["O"] if "O" in found else []) + sorted(found - {"O"})


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------
@dataclass
class TaggingFeatures:
    """One window: ``input_ids`` of ``[CLS] tokens [SEP]``; ``label_ids`` per position (the tag id
    on the first sub-token of each word the window predicts, -100 elsewhere and in files without
    tags); ``sentence``: index of the sentence it predicts; ``positions`` / ``words``: the
    positions of the predicted words' first sub-tokens and those words' indices."""

    input_ids: list[int]
    label_ids: list[int]
    sentence: int
    positions: list[int] = field(default_factory=list)
    words: list[int] = field(default_factory=list)


def tokenize_words(sentences: Sequence[Sentence], tokenizer) -> list[list[list[int]]]:
    """Per sentence, per word: its WordPiece ids (``[UNK]`` for a word that leaves no piece,
    e.g. a control character, so every word has a first sub-token)."""
    vocab = sorted({w for s in sentences for w in s.words})
    ids = encode_texts(tokenizer, vocab)
    unk = tokenizer.convert_tokens_to_ids(["[UNK]"])
    by_word = {w: (i or unk) for w, i in zip(vocab, ids)}
    return [[by_word[w] for w in s.words] for s in sentences]


def windows(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    """(start, end) spans of ``size`` over ``length`` tokens, starting ``stride`` apart; the last
    one reaches the end (one span when ``length <= size``)."""
    spans, start = [], 0
    while True:
        end = min(start + size, length)
        spans.append((start, end))
        if end >= length:
            return spans
        start += stride


def best_window(position: int, spans: Sequence[tuple[int, int]]) -> int:
    """The span in which ``position`` has the most context on its shorter side (the first such)."""
    best, score = 0, -1
    for k, (start, end) in enumerate(spans):
        if start <= position < end:
            s = min(position - start, end - 1 - position)
            if s > score:
                best, score = k, s
    return best


def convert_to_features(data: ConllFile, tokenizer, max_seq_length: int, label_map: dict[str, int] | None,
                        doc_stride: int | None = None, document_context: bool = False) -> list[TaggingFeatures]:
    """Windows of ``data`` (see the module docstring), every word predicted exactly once.

    ``label_map``: tag -> id (None or an unlabelled file: every label -100); a tag it lacks is
    ignored (-100) with a warning. ``doc_stride`` defaults to half a window.
    """
    size = max_seq_length - 2
    stride = doc_stride or max(1, size // 2)
    if not 1 <= stride <= size:
        raise OpenBertError(f"--doc_stride={doc_stride} must be between 1 and --max_seq_length - 2 = {size}")
    cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    pieces = tokenize_words(data.sentences, tokenizer)
    labelled = data.labelled and label_map is not None
    unknown: dict[str, int] = {}
    # per sentence: its flat sub-tokens and the first sub-token of each word
    flat, firsts = [], []
    for words in pieces:
        ids, first = [], []
        for w in words:
            first.append(len(ids))
            ids.extend(w)
        flat.append(ids)
        firsts.append(first)

    def labels_of(i: int) -> list[int]:
        if not labelled:
            return [IGNORE] * len(firsts[i])
        out = []
        for tag in data.sentences[i].tags:
            if tag not in label_map:
                unknown[tag] = unknown.get(tag, 0) + 1
            out.append(label_map.get(tag, IGNORE))
        return out

    features = []
    for i, s in enumerate(data.sentences):
        ids, first, labels = flat[i], firsts[i], labels_of(i)
        if document_context and len(ids) <= size:
            left, right = _context(data.sentences, flat, i, size - len(ids))
            spans = [(0, len(ids))]
            owner = [0] * len(first)
        else:
            left, right = [], []
            spans = windows(len(ids), size, stride)
            owner = [best_window(p, spans) for p in first]
        for k, (start, end) in enumerate(spans):
            input_ids = [cls_id] + left + ids[start:end] + right + [sep_id]
            label_ids = [IGNORE] * len(input_ids)
            offset = 1 + len(left) - start
            positions, words = [], []
            for j, p in enumerate(first):
                if owner[j] == k:
                    positions.append(p + offset)
                    words.append(j)
                    label_ids[p + offset] = labels[j]
            features.append(TaggingFeatures(input_ids, label_ids, i, positions, words))
    for tag, count in sorted(unknown.items()):
        logger.warning("%s: tag %r (%d words) is not among the model's labels; those words are not "
                       "in the loss and can only be counted as errors", data.path, tag, count)
    return features


def _context(sentences: Sequence[Sentence], flat: Sequence[list[int]], i: int, budget: int):
    """Sub-tokens of the sentences around ``i`` in its document, ``budget`` in all, split evenly
    between the left (nearest first) and the right; a side that runs out gives its share to the other."""
    doc = sentences[i].document
    left: list[int] = []
    j = i - 1
    while j >= 0 and sentences[j].document == doc and len(left) < budget:
        left = flat[j] + left
        j -= 1
    right: list[int] = []
    j = i + 1
    while j < len(sentences) and sentences[j].document == doc and len(right) < budget:
        right = right + flat[j]
        j += 1
    n_left = min(len(left), budget // 2)
    n_right = min(len(right), budget - n_left)
    n_left = min(len(left), budget - n_right)
    return left[len(left) - n_left:], right[:n_right]


def collate(features: Sequence[TaggingFeatures], with_labels: bool = True) -> dict[str, torch.Tensor]:
    """input_ids, input_mask, segment_ids (all 0) [B, S] long, padded to the longest window, and
    ``labels`` [B, S] (-100 on padding) when ``with_labels``."""
    ids = [f.input_ids for f in features]
    batch = encoder_inputs(ids, [[0] * len(r) for r in ids])
    if with_labels:
        batch["labels"] = pad([f.label_ids for f in features], batch["input_ids"].shape[1], value=IGNORE)
    return batch


def collate_unlabelled(features: Sequence[TaggingFeatures]) -> dict[str, torch.Tensor]:
    """:func:`collate` without labels (prediction)."""
    return collate(features, with_labels=False)

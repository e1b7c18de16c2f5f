"""Entity-level precision, recall and F1 exactly as CoNLL's ``conlleval`` script computes them.

conlleval reads lines of ``word ... gold predicted``, a blank line (or a first field ``-X-``)
between sentences. A tag splits at its first hyphen into a prefix and a type ("B-PER" -> B, PER;
"O" -> O, ""). A chunk (entity) starts at B-, at I- after O, at E- after O or E-, at any tag (but O
and ".") whose type differs from the previous one's, and at "[" / "]"; it ends by the mirror rules.
So IOB1 is read as written (an ``I-`` after ``O`` starts an entity; ``B-`` separates two adjacent
entities of one type), and IOB2 too. IOBES must be mapped to IOB2 first (conlleval has no rule
for ``S-``); :func:`openbert.tasks.ner.data.to_iob2` does that.

A chunk is correct when gold and prediction start it at the same word, with the same type, and
end it at the same word. Token accuracy counts every line but the sentence breaks, so
``-DOCSTART-`` lines (tag ``O``) count as tokens, as conlleval counts them.

:func:`count_chunks` takes ``(first_field, gold, predicted)`` rows (None for a sentence break);
:func:`scores` turns the counts into ``{"f1", "precision", "recall", "accuracy"}`` fractions and
per-type scores; :func:`report` prints conlleval's own text.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

BOUNDARY = "-X-"


@dataclass
class ChunkCounts:
    """conlleval's counters: chunks found correctly, in the prediction and in the gold tags
    (overall and per type), and tokens tagged correctly out of all tokens."""

    correct_chunk: int = 0
    found_guessed: int = 0
    found_correct: int = 0
    correct_tags: int = 0
    token_counter: int = 0
    correct_by_type: Counter = field(default_factory=Counter)
    guessed_by_type: Counter = field(default_factory=Counter)
    gold_by_type: Counter = field(default_factory=Counter)


def _split(tag: str) -> tuple[str, str]:
    """conlleval's ``/^([^-]*)-(.*)$/``: prefix before the first hyphen, type after it."""
    prefix, sep, kind = tag.partition("-")
    return (prefix, kind) if sep else (tag, "")


# (previous tag, tag) pairs with a chunk boundary between them, whatever the types
_ENDS = {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
_STARTS = {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}


def _boundary(pairs: set, prev_tag: str, tag: str, inside: str, prev_type: str, kind: str) -> bool:
    """conlleval's rule: a listed tag pair, a change of type next to a chunk tag ``inside``, or a
    bracket tag."""
    return ((prev_tag, tag) in pairs or (inside not in ("O", ".") and prev_type != kind)
            or inside in ("[", "]"))


def end_of_chunk(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    """Did a chunk end between the previous word and this one? (conlleval's endOfChunk)"""
    return _boundary(_ENDS, prev_tag, tag, prev_tag, prev_type, kind)


def start_of_chunk(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
    """Did a chunk start between the previous word and this one? (conlleval's startOfChunk)"""
    return _boundary(_STARTS, prev_tag, tag, tag, prev_type, kind)


def chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, first word, last word + 1)`` of every chunk in one sentence's tags, found with
    conlleval's own start / end rules (so IOB1, IOB2 and IOBES read as they are scored)."""
    out: list[tuple[str, int, int]] = []
    start, prev_tag, prev_type = None, "O", ""
    for i, t in enumerate([*tags, "O"]):
        tag, kind = _split(t)
        if start is not None and end_of_chunk(prev_tag, tag, prev_type, kind):
            out.append((prev_type, start, i))
            start = None
        if start_of_chunk(prev_tag, tag, prev_type, kind):
            start = i
        prev_tag, prev_type = tag, kind
    return out


def count_chunks(rows: Iterable[tuple[str, str, str] | None]) -> ChunkCounts:
    """conlleval's main loop over ``(first_field, gold_tag, predicted_tag)`` rows; ``None`` (or a
    first field ``-X-``) is a sentence break."""
    c = ChunkCounts()
    in_correct = False
    last_correct, last_correct_type = "O", ""
    last_guessed, last_guessed_type = "O", ""
    for row in rows:
        if row is None or row[0] == BOUNDARY:
            first, gold, guess = BOUNDARY, "O", "O"
        else:
            first, gold, guess = row
        guessed, guessed_type = _split(guess)
        correct, correct_type = _split(gold)
        if first == BOUNDARY:
            guessed = "O"
        if in_correct:
            gold_end = end_of_chunk(last_correct, correct, last_correct_type, correct_type)
            guess_end = end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
            if gold_end and guess_end and last_guessed_type == last_correct_type:
                in_correct = False
                c.correct_chunk += 1
                c.correct_by_type[last_correct_type] += 1
            elif gold_end != guess_end or guessed_type != correct_type:
                in_correct = False
        gold_start = start_of_chunk(last_correct, correct, last_correct_type, correct_type)
        guess_start = start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if gold_start and guess_start and guessed_type == correct_type:
            in_correct = True
        if gold_start:
            c.found_correct += 1
            c.gold_by_type[correct_type] += 1
        if guess_start:
            c.found_guessed += 1
            c.guessed_by_type[guessed_type] += 1
        if first != BOUNDARY:
            if correct == guessed and guessed_type == correct_type:
                c.correct_tags += 1
            c.token_counter += 1
        last_guessed, last_correct = guessed, correct
        last_guessed_type, last_correct_type = guessed_type, correct_type
    if in_correct:
        c.correct_chunk += 1
        c.correct_by_type[last_correct_type] += 1
    return c


def _prf(correct: int, guessed: int, gold: int) -> tuple[float, float, float]:
    precision = correct / guessed if guessed else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def scores(c: ChunkCounts) -> dict:
    """Overall ``precision``, ``recall``, ``f1``, ``accuracy`` (fractions, 0 when undefined, as
    conlleval) and ``per_type``: {type: {"precision", "recall", "f1", "support"}} (support: gold
    chunks of that type)."""
    precision, recall, f1 = _prf(c.correct_chunk, c.found_guessed, c.found_correct)
    per_type = {}
    for kind in sorted(set(c.gold_by_type) | set(c.guessed_by_type)):
        p, r, f = _prf(c.correct_by_type[kind], c.guessed_by_type[kind], c.gold_by_type[kind])
        per_type[kind] = {"precision": p, "recall": r, "f1": f, "support": c.gold_by_type[kind]}
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": c.correct_tags / c.token_counter if c.token_counter else 0.0,
            "per_type": per_type}


def report(c: ChunkCounts) -> str:
    """The text conlleval prints for these counts (percentages with two decimals)."""
    s = scores(c)
    lines = [f"processed {c.token_counter} tokens with {c.found_correct} phrases; "
             f"found: {c.found_guessed} phrases; correct: {c.correct_chunk}."]
    if c.token_counter:
        lines.append(f"accuracy: {100 * s['accuracy']:6.2f}%; precision: {100 * s['precision']:6.2f}%; "
                     f"recall: {100 * s['recall']:6.2f}%; FB1: {100 * s['f1']:6.2f}")
    for kind, t in s["per_type"].items():
        lines.append(f"{kind:>17}: precision: {100 * t['precision']:6.2f}%; recall: {100 * t['recall']:6.2f}%; "
                     f"FB1: {100 * t['f1']:6.2f}  {c.guessed_by_type[kind]}")
    return "\n".join(lines) + "\n"

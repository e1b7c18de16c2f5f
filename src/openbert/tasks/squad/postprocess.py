"""SQuAD post-processing: window logits -> answer texts, as the original ``write_predictions``.

``compute_predictions(examples, features, results, ...)`` -> :class:`SquadPredictions`
(``predictions`` {id: text}, ``nbest`` {id: [{text, probability, start_logit, end_logit}]},
``null_odds`` {id: score_null - best_non_null}, v2 only); ``write_predictions`` writes
``predictions.json``, ``nbest_predictions.json`` and (v2) ``null_odds.json`` with indent 4.
"""
from __future__ import annotations

import collections
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Sequence

from ...io.fileio import atomic_write_text
from ...tokenization.wordpiece import BasicTokenizer
from .data import split_context

logger = logging.getLogger(__name__)

NULL_SCORE_NO_ANSWER = 1000000.0  # null_odds when no non-null candidate exists (the original's "large")


@dataclass
class RawResult:
    """Start/end logits of one feature (window); ``unique_id`` as in the features."""
    unique_id: int
    start_logits: Sequence[float]
    end_logits: Sequence[float]


@dataclass
class SquadPredictions:
    predictions: dict = field(default_factory=collections.OrderedDict)
    nbest: dict = field(default_factory=collections.OrderedDict)
    null_odds: dict = field(default_factory=collections.OrderedDict)
    # {id: [span per n-best entry]}: (first word, last word, start, end) of the answer, start/end
    # (exclusive) in " ".join(doc_tokens[first:last + 1]); None for the null / nonce answers
    spans: dict = field(default_factory=collections.OrderedDict)


@dataclass
class _Prelim:
    feature_index: int
    start_index: int
    end_index: int
    start_logit: float
    end_logit: float


@dataclass
class _Nbest:
    text: str
    start_logit: float
    end_logit: float
    span: tuple[int, int, int, int] | None = None


def get_best_indexes(logits: Sequence[float], n_best_size: int) -> list[int]:
    """Indexes of the ``n_best_size`` largest logits, best first (stable for ties)."""
    return sorted(range(len(logits)), key=lambda i: logits[i], reverse=True)[:n_best_size]


def compute_softmax(scores: Sequence[float]) -> list[float]:
    """Softmax over raw scores (max-shifted), as the original ``_compute_softmax``."""
    if not scores:
        return []
    max_score = max(scores)
    exp_scores = [math.exp(s - max_score) for s in scores]
    total = sum(exp_scores)
    return [e / total for e in exp_scores]


def _strip_spaces(text: str) -> tuple[str, dict[int, int]]:
    """-> (text without spaces, map from index in it to index in ``text``)."""
    ns_chars = []
    ns_to_s_map = collections.OrderedDict()
    for i, c in enumerate(text):
        if c == " ":
            continue
        ns_to_s_map[len(ns_chars)] = i
        ns_chars.append(c)
    return "".join(ns_chars), ns_to_s_map


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool, verbose_logging: bool = False) -> str:
    """Project a normalised prediction back onto the original words' text.

    ``pred_text`` is detokenised WordPiece text ("steve smith"), ``orig_text`` the original words it
    came from ("Steve Smith's"); returns the matching characters of ``orig_text`` ("Steve Smith"),
    with case and accents restored. Falls back to ``orig_text`` when the alignment fails.
    """
    start, end = final_text_span(pred_text, orig_text, do_lower_case, verbose_logging)
    return orig_text[start:end]


def final_text_span(pred_text: str, orig_text: str, do_lower_case: bool,
                    verbose_logging: bool = False) -> tuple[int, int]:
    """Where :func:`get_final_text`'s answer lies in ``orig_text``: ``(start, end)``, end exclusive
    (the whole of ``orig_text`` when the alignment fails)."""
    whole = (0, len(orig_text))
    tok_text = " ".join(BasicTokenizer(do_lower_case=do_lower_case).tokenize(orig_text))
    start_position = tok_text.find(pred_text)
    if start_position == -1:
        if verbose_logging:
            logger.info("Unable to find text: '%s' in '%s'", pred_text, orig_text)
        return whole
    end_position = start_position + len(pred_text) - 1

    orig_ns_text, orig_ns_to_s_map = _strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s_map = _strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        if verbose_logging:
            logger.info("Length not equal after stripping spaces: '%s' vs '%s'", orig_ns_text, tok_ns_text)
        return whole

    # Characters are assumed one-to-one aligned once spaces are gone.
    tok_s_to_ns_map = {tok_index: i for i, tok_index in tok_ns_to_s_map.items()}

    def to_orig(position: int) -> int | None:
        no_space = tok_s_to_ns_map.get(position)
        return None if no_space is None else orig_ns_to_s_map.get(no_space)

    orig_start_position, orig_end_position = to_orig(start_position), to_orig(end_position)
    if orig_start_position is None or orig_end_position is None:
        if verbose_logging:
            logger.info("Couldn't map %s position", "start" if orig_start_position is None else "end")
        return whole
    return orig_start_position, orig_end_position + 1


def _candidate_text(example, feature, start_index: int, end_index: int, do_lower_case: bool,
                    verbose_logging: bool) -> tuple[str, tuple[int, int, int, int]]:
    """WordPieces ``start_index..end_index`` of a window -> the original text they stand for, and
    its span (first word, last word, start, end in the words joined by spaces)."""
    tok_text = " ".join(feature.tokens[start_index:end_index + 1])
    tok_text = tok_text.replace(" ##", "").replace("##", "")  # de-tokenize split-off WordPieces
    tok_text = " ".join(tok_text.strip().split())
    orig_doc_start = feature.token_to_orig_map[start_index]
    orig_doc_end = feature.token_to_orig_map[end_index]
    orig_text = " ".join(example.doc_tokens[orig_doc_start:orig_doc_end + 1])
    start, end = final_text_span(tok_text, orig_text, do_lower_case, verbose_logging)
    return orig_text[start:end], (orig_doc_start, orig_doc_end, start, end)


def compute_predictions(examples, features, results: Sequence[RawResult], n_best_size: int = 20,
                        max_answer_length: int = 30, do_lower_case: bool = True,
                        version_2_with_negative: bool = False, null_score_diff_threshold: float = 0.0,
                        verbose_logging: bool = False) -> SquadPredictions:
    """N-best answers per example over all its windows, exactly as the original.

    Start/end candidates are each window's top ``n_best_size`` logits over its real tokens. Spans
    outside the document, starting where the window is not the token's max-context window, ending
    before they start or longer than ``max_answer_length`` are dropped. v2 adds the null answer
    with the smallest null score (start[0] + end[0]) over the windows and predicts "" when
    ``score_null - best_non_null > null_score_diff_threshold``.

    Unlike the original, an example whose only v2 candidate is the null answer gets "" (with
    null odds ``NULL_SCORE_NO_ANSWER``) instead of a crash.
    """
    features_by_example = collections.defaultdict(list)
    for feature in features:
        features_by_example[feature.example_index].append(feature)
    result_by_id = {r.unique_id: r for r in results}
    out = SquadPredictions()

    for example_index, example in enumerate(examples):
        ex_features = features_by_example[example_index]
        prelim: list[_Prelim] = []
        score_null = 1000000.0  # large and positive: the minimum null score over windows
        min_null_feature_index = 0
        null_start_logit = null_end_logit = 0.0
        for feature_index, feature in enumerate(ex_features):
            result = result_by_id[feature.unique_id]
            num_tokens = len(feature.tokens)
            start_logits = result.start_logits[:num_tokens]
            end_logits = result.end_logits[:num_tokens]
            if version_2_with_negative:
                feature_null_score = start_logits[0] + end_logits[0]
                if feature_null_score < score_null:
                    score_null = feature_null_score
                    min_null_feature_index = feature_index
                    null_start_logit, null_end_logit = start_logits[0], end_logits[0]
            for start_index in get_best_indexes(start_logits, n_best_size):
                if start_index not in feature.token_to_orig_map:
                    continue
                if not feature.token_is_max_context.get(start_index, False):
                    continue
                for end_index in get_best_indexes(end_logits, n_best_size):
                    if end_index not in feature.token_to_orig_map or end_index < start_index:
                        continue
                    if end_index - start_index + 1 > max_answer_length:
                        continue
                    prelim.append(_Prelim(feature_index, start_index, end_index,
                                          start_logits[start_index], end_logits[end_index]))
        if version_2_with_negative:
            prelim.append(_Prelim(min_null_feature_index, 0, 0, null_start_logit, null_end_logit))
        prelim.sort(key=lambda p: p.start_logit + p.end_logit, reverse=True)

        seen: set[str] = set()
        nbest: list[_Nbest] = []
        for pred in prelim:
            if len(nbest) >= n_best_size:
                break
            if pred.start_index > 0:  # a non-null prediction
                feature = ex_features[pred.feature_index]
                final_text, span = _candidate_text(example, feature, pred.start_index, pred.end_index,
                                                   do_lower_case, verbose_logging)
                if final_text in seen:
                    continue
            else:
                final_text, span = "", None
            seen.add(final_text)
            nbest.append(_Nbest(final_text, pred.start_logit, pred.end_logit, span))

        if version_2_with_negative and "" not in seen:
            nbest.append(_Nbest("", null_start_logit, null_end_logit))
        if not nbest:  # in very rare edge cases there is no valid prediction: a nonce one
            nbest.append(_Nbest("empty", 0.0, 0.0))

        probs = compute_softmax([e.start_logit + e.end_logit for e in nbest])
        out.nbest[example.qas_id] = [
            collections.OrderedDict([("text", e.text), ("probability", p),
                                     ("start_logit", e.start_logit), ("end_logit", e.end_logit)])
            for e, p in zip(nbest, probs)]
        out.spans[example.qas_id] = [e.span for e in nbest]
        best_non_null = next((e for e in nbest if e.text), None)
        if not version_2_with_negative:
            out.predictions[example.qas_id] = nbest[0].text
        elif best_non_null is None:
            out.null_odds[example.qas_id] = NULL_SCORE_NO_ANSWER
            out.predictions[example.qas_id] = ""
        else:
            score_diff = score_null - best_non_null.start_logit - best_non_null.end_logit
            out.null_odds[example.qas_id] = score_diff
            out.predictions[example.qas_id] = "" if score_diff > null_score_diff_threshold else best_non_null.text
    return out


def context_offsets(context: str, span: tuple[int, int, int, int]) -> tuple[int, int]:
    """Character offsets ``(start, end)`` (end exclusive) in ``context`` of an answer whose ``span``
    is in :attr:`SquadPredictions.spans`; ``context[start:end]`` is the answer, whitespace between
    words as in the context."""
    doc_tokens, c2w = split_context(context)
    word_starts = [i for i, w in enumerate(c2w) if w >= 0 and (i == 0 or c2w[i - 1] != w)]
    first, last, start, end = span

    def to_context(p: int) -> int:  # a character of the joined words -> its index in the context
        offset = 0
        for w in range(first, last + 1):
            n = len(doc_tokens[w])
            if p < offset + n:
                return word_starts[w] + p - offset
            if p == offset + n and w < last:  # the joining space: the next word's start
                return word_starts[w + 1]
            offset += n + 1
        return word_starts[last] + len(doc_tokens[last]) - 1

    return to_context(start), to_context(max(end - 1, start)) + 1


def write_predictions(preds: SquadPredictions, output_dir: str | os.PathLike,
                      version_2_with_negative: bool = False) -> dict[str, str]:
    """Write predictions.json, nbest_predictions.json and (v2) null_odds.json; -> {name: path}."""
    files = {"predictions": preds.predictions, "nbest_predictions": preds.nbest}
    if version_2_with_negative:
        files["null_odds"] = preds.null_odds
    paths = {}
    for name, obj in files.items():
        path = os.path.join(os.fspath(output_dir), f"{name}.json")
        logger.info("Writing %s to: %s", name, path)
        atomic_write_text(path, json.dumps(obj, indent=4) + "\n")
        paths[name] = path
    return paths

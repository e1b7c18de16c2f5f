"""The official SQuAD metrics (evaluate-v1.1.py and evaluate-v2.0.py), as library functions.

``evaluate(dataset_json, predictions, na_probs=None, version=None)`` scores with the version given,
else the one the file declares (guessed from the questions only when it declares none), and returns
the official script's output dict: v1.1 ``{exact_match, f1}``; v2.0 ``{exact, f1, total,
HasAns_exact, HasAns_f1, HasAns_total, NoAns_..., [best_exact, best_exact_thresh, best_f1,
best_f1_thresh]}`` (the best thresholds when ``na_probs`` is given). Scores are percentages.
"""
from __future__ import annotations

import collections
import logging
import re
import string

logger = logging.getLogger(__name__)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop ASCII punctuation, the articles a/an/the and extra whitespace."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def get_tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def compute_exact(a_gold: str, a_pred: str) -> int:
    """1 when the normalised answers are equal, else 0."""
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str, empty_matches_empty: bool = True) -> float:
    """Token-overlap F1 of the normalised answers.

    v2.0 (``empty_matches_empty``): when either side has no tokens, 1 if both are empty else 0.
    v1.1 gives 0 whenever nothing overlaps.
    """
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    if empty_matches_empty and (not gold_toks or not pred_toks):
        return float(gold_toks == pred_toks)
    num_same = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def _questions(dataset: list):
    for article in dataset:
        for paragraph in article["paragraphs"]:
            yield from paragraph["qas"]


def evaluate_v1(dataset: list, predictions: dict) -> dict:
    """evaluate-v1.1.py: mean over ALL questions of the max EM / F1 over gold answers (missing = 0)."""
    f1 = exact_match = total = 0
    for qa in _questions(dataset):
        total += 1
        if qa["id"] not in predictions:
            logger.warning("Unanswered question %s will receive score 0.", qa["id"])
            continue
        golds = [a["text"] for a in qa["answers"]]
        pred = predictions[qa["id"]]
        if golds:
            exact_match += max(compute_exact(g, pred) for g in golds)
            f1 += max(compute_f1(g, pred, empty_matches_empty=False) for g in golds)
    total = max(total, 1)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def make_qid_to_has_ans(dataset: list) -> dict[str, bool]:
    return {qa["id"]: bool(qa["answers"]) for qa in _questions(dataset)}


def get_raw_scores(dataset: list, predictions: dict) -> tuple[dict, dict]:
    """Per-question EM and F1 (v2.0): max over the non-empty gold answers, or [""] if none."""
    exact_scores, f1_scores = {}, {}
    for qa in _questions(dataset):
        qid = qa["id"]
        golds = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])] or [""]
        if qid not in predictions:
            logger.warning("Missing prediction for %s", qid)
            continue
        pred = predictions[qid]
        exact_scores[qid] = max(compute_exact(g, pred) for g in golds)
        f1_scores[qid] = max(compute_f1(g, pred) for g in golds)
    return exact_scores, f1_scores


def apply_no_ans_threshold(scores: dict, na_probs: dict, qid_to_has_ans: dict, na_prob_thresh: float) -> dict:
    """Questions with ``na_prob > na_prob_thresh`` count as answered "no answer"."""
    return {qid: (float(not qid_to_has_ans[qid]) if na_probs[qid] > na_prob_thresh else s)
            for qid, s in scores.items()}


def make_eval_dict(exact_scores: dict, f1_scores: dict, qid_list=None) -> dict:
    qids = list(exact_scores) if qid_list is None else [q for q in qid_list if q in exact_scores]
    total = len(qids)
    if total == 0:
        return collections.OrderedDict([("exact", 0.0), ("f1", 0.0), ("total", 0)])
    return collections.OrderedDict([
        ("exact", 100.0 * sum(exact_scores[q] for q in qids) / total),
        ("f1", 100.0 * sum(f1_scores[q] for q in qids) / total),
        ("total", total),
    ])


def find_best_thresh(predictions: dict, scores: dict, na_probs: dict, qid_to_has_ans: dict) -> tuple[float, float]:
    """Best score over null thresholds: sweep questions by ascending na_prob -> (score %, threshold)."""
    cur_score = best_score = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if predictions[qid] else 0
        cur_score += diff
        if cur_score > best_score:
            best_score, best_thresh = cur_score, na_probs[qid]
    return 100.0 * best_score / max(len(scores), 1), best_thresh


def evaluate_v2(dataset: list, predictions: dict, na_probs: dict | None = None,
                na_prob_thresh: float = 1.0) -> dict:
    """evaluate-v2.0.py: EM/F1 with HasAns/NoAns splits; best thresholds when ``na_probs`` is given.

    As the official script, questions without a prediction are left out of the totals (and logged).
    """
    have_na_probs = na_probs is not None
    if na_probs is None:
        na_probs = {k: 0.0 for k in predictions}
    qid_to_has_ans = make_qid_to_has_ans(dataset)
    exact_raw, f1_raw = get_raw_scores(dataset, predictions)
    missing = [q for q in exact_raw if q not in na_probs]
    if missing:
        from ...errors import OpenBertError

        raise OpenBertError(f"the null-odds file has no entry for {len(missing)} question(s), e.g. "
                            f"{missing[0]!r}; pass the null_odds.json written with these predictions")
    exact_thresh = apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    f1_thresh = apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    out = make_eval_dict(exact_thresh, f1_thresh)
    for prefix, has in (("HasAns", True), ("NoAns", False)):
        qids = [k for k, v in qid_to_has_ans.items() if v is has]
        if qids:
            for k, v in make_eval_dict(exact_thresh, f1_thresh, qid_list=qids).items():
                out[f"{prefix}_{k}"] = v
    if have_na_probs:
        na_probs = {k: v for k, v in na_probs.items() if k in qid_to_has_ans}
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(predictions, exact_raw, na_probs, qid_to_has_ans)
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(predictions, f1_raw, na_probs, qid_to_has_ans)
    return out


VERSIONS = ("1.1", "2.0")


def declared_version(dataset_json: dict) -> str | None:
    """The SQuAD version a file declares ("1.1" / "2.0" from its ``version``), or None."""
    v = str(dataset_json.get("version", "")).strip().lstrip("v")
    if v.startswith("2"):
        return "2.0"
    if v.startswith("1"):
        return "1.1"
    return None


def squad_version(dataset_json: dict, version: str | None = None) -> str:
    """``version`` when given, else the version the file declares; only a file declaring none is
    guessed: v2.0 when a question is impossible or has no answer (the official v1.1 script ignores
    ``is_impossible``, so a file declared 1.1 is scored as 1.1)."""
    if version is not None:
        if version not in VERSIONS:
            from ...errors import OpenBertError

            raise OpenBertError(f"--version {version}: use 1.1 or 2.0")
        return version
    declared = declared_version(dataset_json)
    if declared:
        return declared
    any_v2 = any(qa.get("is_impossible", False) or not qa.get("answers")
                 for qa in _questions(dataset_json["data"]))
    return "2.0" if any_v2 else "1.1"


def is_version_2(dataset_json: dict) -> bool:
    return squad_version(dataset_json) == "2.0"


def evaluate(dataset_json: dict, predictions: dict, na_probs: dict | None = None,
             na_prob_thresh: float = 1.0, version: str | None = None) -> dict:
    """The official metrics for the SQuAD version :func:`squad_version` gives (see module docstring)."""
    if squad_version(dataset_json, version) == "2.0":
        return evaluate_v2(dataset_json["data"], predictions, na_probs, na_prob_thresh)
    return evaluate_v1(dataset_json["data"], predictions)

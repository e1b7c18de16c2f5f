"""The official SQuAD evaluation (evaluate-v1.1.py / evaluate-v2.0.py), for the version the data declares.

    openbert squad-eval dev-v1.1.json predictions.json
    openbert squad-eval dev-v2.0.json predictions.json --na-prob-file null_odds.json

Prints the official script's JSON (v1.1: exact_match, f1; v2.0: exact, f1, total, HasAns_*, NoAns_*,
and with --na-prob-file the best thresholds: best_f1_thresh is the value to pass to
``openbert squad --null_score_diff_threshold``). The data file's declared ``version`` chooses the
script (``--version 1.1|2.0`` forces one); only a file declaring none is guessed from its questions.
"""
from __future__ import annotations

import argparse
import json

from ..errors import OpenBertError
from ..io.fileio import atomic_write_text, check_output_file, read_json
from ..tasks.squad import metrics as squad_metrics
from ..tasks.squad.data import load_squad_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_file", help="SQuAD dataset file with answers (dev-v1.1.json, dev-v2.0.json)")
    parser.add_argument("pred_file", help="predictions.json written by openbert squad (or run_squad.py)")
    parser.add_argument("--na-prob-file", "--na_prob_file", dest="na_prob_file",
                        help="v2.0: null_odds.json (model's no-answer score per question)")
    parser.add_argument("--na-prob-thresh", "--na_prob_thresh", dest="na_prob_thresh", type=float, default=1.0,
                        help="v2.0: predict no-answer when the no-answer score exceeds this (default: 1.0)")
    parser.add_argument("--out-file", "-o", dest="out_file", help="also write the metrics JSON here")
    parser.add_argument("--version", choices=squad_metrics.VERSIONS, default=None,
                        help="score as this SQuAD version (default: the version the data file declares)")


def load_json_mapping(path: str, what: str) -> dict:
    """A JSON object file {question id: value}; OpenBertError naming the file otherwise."""
    obj = read_json(path, f"the {what} as a JSON object {{question id: value}}")
    if not isinstance(obj, dict):
        raise OpenBertError(f"{path}: expected the {what} as a JSON object {{question id: value}}, "
                            f"got a {type(obj).__name__}")
    return obj


def evaluate_files(data_file: str, pred_file: str, na_prob_file: str | None = None,
                   na_prob_thresh: float = 1.0, version: str | None = None) -> dict:
    """Read the files and compute the official metrics for ``version`` (default: the data's)."""
    dataset = load_squad_json(data_file)
    predictions = load_json_mapping(pred_file, "predictions")
    bad = [k for k, v in predictions.items() if not isinstance(v, str)]
    if bad:
        raise OpenBertError(f"{pred_file}: the prediction for {bad[0]!r} is not a string; expected "
                            "{question id: answer text} (predictions.json, not nbest_predictions.json)")
    na_probs = load_json_mapping(na_prob_file, "null odds") if na_prob_file else None
    return squad_metrics.evaluate(dataset, predictions, na_probs, na_prob_thresh, version)


def is_metrics_file(path: str) -> bool:
    """True when ``path`` holds a metrics JSON object written by squad-eval."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and ("exact_match" in obj or "exact" in obj) and "f1" in obj


def run(args: argparse.Namespace) -> int:
    if args.out_file:
        check_output_file(args.out_file, "--out-file", "squad-eval metrics file", is_metrics_file,
                          inputs=[args.data_file, args.pred_file, args.na_prob_file])
    result = evaluate_files(args.data_file, args.pred_file, args.na_prob_file, args.na_prob_thresh,
                            args.version)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out_file:
        atomic_write_text(args.out_file, text + "\n")
    return 0

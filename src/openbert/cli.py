"""The ``openbert`` command: ``openbert <command> [flags]``.

Flags follow the original scripts, so ``python run_classifier.py --task_name=MRPC ...`` becomes
``openbert classify --task_name=MRPC ...``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .commands.flags import HelpFormatter
from .errors import OpenBertError

# command name -> (module under openbert.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("quickstart", "fine-tune a real pre-trained model on a real task, on the CPU"),
    "tokenize": ("tokenize", "WordPiece-tokenize stdin, one line at a time"),
    "build-vocab": ("build_vocab", "learn a WordPiece vocabulary from raw text"),
    "create-pretraining-data": ("create_pretraining_data", "masked-LM / next-sentence instances"),
    "pretrain": ("pretrain", "pre-train (run_pretraining.py)"),
    "classify": ("classify", "fine-tune and evaluate on classification (run_classifier.py)"),
    "ner": ("ner", "fine-tune and evaluate on named-entity recognition (CoNLL-2003) or other tagging"),
    "multiple-choice": ("multiple_choice", "fine-tune and evaluate on multiple choice (SWAG)"),
    "squad": ("squad", "fine-tune and predict on SQuAD v1.1/v2.0 (run_squad.py)"),
    "squad-eval": ("squad_eval", "official SQuAD v1.1/v2.0 evaluation"),
    "extract-features": ("extract_features", "contextual embeddings (extract_features.py)"),
    "fill-mask": ("fill_mask", "top-k predictions for every [MASK]"),
    "predict": ("predict", "predictions on new text with any model (JSON lines out)"),
    "serve": ("serve", "serve a model over HTTP with dynamic batching (needs openbert[serve])"),
    "convert": ("convert", "convert checkpoints: TF <-> HF/safetensors"),
    "download": ("download", "fetch a named model or data set into the cache"),
}


def _load(module: str):
    try:
        return importlib.import_module(f"openbert.commands.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"openbert.commands.{module}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openbert", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (module, help_) in COMMANDS.items():
        mod = _load(module)
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ if mod else help_),
                           formatter_class=HelpFormatter)
        if mod is not None:
            mod.add_arguments(p)
        p.set_defaults(_module=mod, _name=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args._module is None:
        print(f"error: `openbert {args._name}` is not built yet", file=sys.stderr)
        return 2
    try:
        rc = args._module.run(args)
    except OpenBertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:
            raise
        print(f"error: {e.filename}: {e.strerror}; check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())

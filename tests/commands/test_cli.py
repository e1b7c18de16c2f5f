"""The command line: absl-style boolean flags, help, clear errors."""
import argparse

import pytest

from openbert import cli
from openbert.commands.flags import add_bool, str2bool


@pytest.mark.parametrize("text,value", [("true", True), ("True", True), ("1", True), ("yes", True),
                                        ("false", False), ("FALSE", False), ("0", False), ("no", False)])
def test_str2bool(text, value):
    assert str2bool(text) is value


def test_str2bool_rejects_other_words():
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        str2bool("maybe")


def _parser():
    p = argparse.ArgumentParser()
    add_bool(p, "do_train", False, "train")
    add_bool(p, "do_lower_case", True, "lower case")
    return p


@pytest.mark.parametrize("argv,do_train,lower", [
    ([], False, True),
    (["--do_train"], True, True),
    (["--do_train=true"], True, True),
    (["--do_train=false"], False, True),
    (["--do_train", "false"], False, True),
    (["--do_lower_case=False"], False, False),
    (["--nodo_lower_case"], False, False),
])
def test_bool_flag_forms_match_the_original_scripts(argv, do_train, lower):
    args = _parser().parse_args(argv)
    assert args.do_train is do_train
    assert args.do_lower_case is lower


def test_every_command_is_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in ("create-pretraining-data", "pretrain", "classify", "squad", "extract-features",
                 "convert", "tokenize"):
        assert name in out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2


def test_user_errors_print_one_line_without_traceback(monkeypatch, capsys):
    from openbert.errors import OpenBertError

    class Boom:
        @staticmethod
        def add_arguments(p):
            pass

        @staticmethod
        def run(args):
            raise OpenBertError("vocab file not found: /nowhere/vocab.txt")

    monkeypatch.setattr(cli, "_load", lambda module: Boom)
    assert cli.main(["tokenize"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: vocab file not found: /nowhere/vocab.txt"


def _subparsers():
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_help_keeps_the_examples_line_breaks(capsys):
    with pytest.raises(SystemExit):
        cli.main(["classify", "--help"])
    out = capsys.readouterr().out
    assert ("    openbert classify --task_name=MRPC --do_train --do_eval --data_dir=glue/MRPC \\\n"
            "        --init_checkpoint=") in out


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_flag_shows_its_default(name):
    parser = _subparsers()[name]
    for action in parser._actions:
        if action.option_strings and action.help is not argparse.SUPPRESS and action.dest != "help":
            text = " ".join(parser._get_formatter()._format_action(action).split())
            assert "default" in text or "(required)" in text, (name, text)

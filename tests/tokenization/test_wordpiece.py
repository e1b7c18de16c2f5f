"""The exact tokenizer: the reference cases of docs/faithfulness.md ("Tokenizer"), every code path,
bad input."""
from __future__ import annotations

import logging

import pytest

from openbert.errors import OpenBertError
from openbert.tokenization import wordpiece as tokenization
from openbert.tokenization.wordpiece import (BasicTokenizer, FullTokenizer, WordpieceTokenizer,
                                             load_vocab, validate_case_matches_checkpoint)

REFERENCE_VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","]


@pytest.fixture
def vocab_file(tmp_path):
    def make(tokens, name="vocab.txt"):
        path = tmp_path / name
        path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
        return path
    return make


# -- reference cases (docs/faithfulness.md) ----------------------------------------------------
def test_full_tokenizer_spec_case(vocab_file):
    tok = FullTokenizer(vocab_file(REFERENCE_VOCAB), do_lower_case=True)
    tokens = tok.tokenize("UNwant\u00E9d,running")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tok.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]
    assert tok.convert_ids_to_tokens([7, 4, 5, 10, 8, 9]) == tokens


def test_basic_lower_and_cased():
    text = " \tHeLLo!how  \n Are yoU?  "
    assert BasicTokenizer(do_lower_case=True).tokenize(text) == ["hello", "!", "how", "are", "you", "?"]
    assert BasicTokenizer(do_lower_case=False).tokenize(text) == ["HeLLo", "!", "how", "Are", "yoU", "?"]


def test_accents_stripped_only_when_lower_casing():
    assert BasicTokenizer(do_lower_case=True).tokenize("H\u00E9llo") == ["hello"]
    assert BasicTokenizer(do_lower_case=False).tokenize("H\u00E9llo") == ["H\u00E9llo"]


def test_chinese_characters_are_spaced_out():
    assert BasicTokenizer().tokenize("ah\u535A\u63A8zz") == ["ah", "\u535A", "\u63A8", "zz"]
    # Hiragana, Katakana and Hangul are not CJK ideographs: no spaces around them.
    assert BasicTokenizer(do_lower_case=False).tokenize("\u3042\u30A2\uAC00") == ["\u3042\u30A2\uAC00"]
    # CJK extension B and compatibility ideographs are.
    assert BasicTokenizer(do_lower_case=False).tokenize("a\U00020000b\uF900") == [
        "a", "\U00020000", "b", "\uF900"]


def test_unknown_word_without_comma_in_vocab(vocab_file):
    tok = FullTokenizer(vocab_file([t for t in REFERENCE_VOCAB if t != ","]))
    assert tok.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]


def test_cls_in_raw_text_is_not_protected():
    assert BasicTokenizer().tokenize("[CLS] hi [SEP]") == ["[", "cls", "]", "hi", "[", "sep", "]"]


# -- BasicTokenizer code paths ------------------------------------------------------------------
def test_clean_text_drops_controls_and_maps_whitespace():
    basic = BasicTokenizer(do_lower_case=False)
    # NUL, U+FFFD, Cc (\x05) and Cf (zero-width space) are dropped, joining the pieces around them.
    assert basic.tokenize("a\x00b\ufffdc\x05d\u200be") == ["abcde"]
    # Zs (no-break space, ideographic space) and \t \n \r separate words.
    assert basic.tokenize("a\u00A0b\u3000c\td\re\nf") == ["a", "b", "c", "d", "e", "f"]
    assert basic.tokenize("") == [] and basic.tokenize(" \t\n ") == []


def test_punctuation_split_including_non_p_ascii():
    basic = BasicTokenizer(do_lower_case=False)
    # "$", "^", "`" are not Unicode category P but ASCII punctuation to the original.
    assert basic.tokenize("a$b^c`d") == ["a", "$", "b", "^", "c", "`", "d"]
    assert basic.tokenize("\u00BFQu\u00E9?\u2014x") == ["\u00BF", "Qu\u00E9", "?", "\u2014", "x"]
    assert basic.tokenize("...") == [".", ".", "."]


def test_lower_casing_uses_python_lower():
    basic = BasicTokenizer(do_lower_case=True)
    # Final sigma, and the dotted capital I (lower() gives i + combining dot, which is stripped).
    assert basic.tokenize("\u039F\u0394\u039F\u03A3 \u03A3") == ["\u03bf\u03b4\u03bf\u03c2", "\u03c3"]
    assert basic.tokenize("\u0130stanbul") == ["istanbul"]


def test_input_may_be_bytes_with_invalid_utf8():
    basic = BasicTokenizer()
    assert basic.tokenize("Caf\u00e9 ok".encode("utf-8")) == ["cafe", "ok"]
    # Invalid bytes are dropped, as the original's convert_to_unicode does.
    assert basic.tokenize(b"ab\xffcd \xc3(x") == ["abcd", "(", "x"]
    assert tokenization.printable_text(b"caf\xc3\xa9\xff") == "caf\u00e9"
    with pytest.raises(TypeError, match="str or bytes"):
        basic.tokenize(3)


# -- WordpieceTokenizer -------------------------------------------------------------------------
def test_wordpiece_paths():
    vocab = {t: i for i, t in enumerate(REFERENCE_VOCAB)}
    wp = WordpieceTokenizer(vocab=vocab)
    assert wp.tokenize("") == []
    assert wp.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert wp.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
    long_word = "want" * 50 + "ed"  # 202 characters: [UNK] although every piece exists
    assert wp.tokenize(long_word) == ["[UNK]"]
    assert wp.tokenize("want" * 50) == ["want"] + ["##want"] * 49  # exactly 200 is fine
    assert WordpieceTokenizer(vocab, unk_token="<unk>", max_input_chars_per_word=4).tokenize(
        "wanted want") == ["<unk>", "want"]


# -- vocabulary and conversions -----------------------------------------------------------------
def test_load_vocab_strips_lines_and_numbers_them(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"[PAD]\r\n  a  \n\n##b\n")
    assert list(load_vocab(path).items()) == [("[PAD]", 0), ("a", 1), ("", 2), ("##b", 3)]
    path.write_bytes(b"x\ny")  # no newline at the end
    assert list(load_vocab(path).items()) == [("x", 0), ("y", 1)]


def test_duplicate_tokens_keep_the_last_id(vocab_file, caplog):
    path = vocab_file(["[UNK]", "a", "b", "a"])
    with caplog.at_level(logging.WARNING, logger="openbert.tokenization"):
        tok = FullTokenizer(path)
    assert tok.vocab["a"] == 3
    assert tok.convert_tokens_to_ids(["a", "b"]) == [3, 2]
    assert tok.convert_ids_to_tokens([3]) == ["a"]
    with pytest.raises(KeyError, match="id 1 is not in the vocabulary"):
        tok.convert_ids_to_tokens([1])  # the earlier duplicate's line has no token, as the original
    assert "1 token(s) more than once" in caplog.text and "'a'" in caplog.text


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_vocab_is_an_error(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(OpenBertError, match=f"vocab file {path} is empty"):
        load_vocab(path)


def test_missing_vocab_is_an_error(tmp_path):
    with pytest.raises(OpenBertError, match="not found: pass --vocab_file"):
        FullTokenizer(tmp_path / "nope.txt")
    with pytest.raises(OpenBertError, match="is a directory"):
        load_vocab(tmp_path)


def test_non_utf8_vocab_is_an_error(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("[UNK]\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(OpenBertError, match="not UTF-8 \\(bad byte at line 2\\)"):
        load_vocab(path)


def test_unknown_token_raises_key_error_naming_it(vocab_file):
    tok = FullTokenizer(vocab_file(REFERENCE_VOCAB))
    with pytest.raises(KeyError, match="token 'nope' is not in the vocabulary"):
        tok.convert_tokens_to_ids(["want", "nope"])
    with pytest.raises(KeyError, match="id 99"):
        tok.convert_ids_to_tokens([99])


# -- case check ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", tokenization.LOWER_CASED_MODELS)
def test_case_check_lower_cased_models(name):
    path = f"/models/{name}/bert_model.ckpt"
    validate_case_matches_checkpoint(True, path)
    with pytest.raises(OpenBertError, match="pass --do_lower_case=true") as e:
        validate_case_matches_checkpoint(False, path)
    assert name in str(e.value) and "--do_lower_case=false" in str(e.value)


@pytest.mark.parametrize("name", tokenization.CASED_MODELS)
def test_case_check_cased_models(name):
    path = f"gs://bucket/{name}/bert_model.ckpt"
    validate_case_matches_checkpoint(False, path)
    with pytest.raises(OpenBertError, match="pass --do_lower_case=false"):
        validate_case_matches_checkpoint(True, path)


@pytest.mark.parametrize("path", [None, "", "/m/my_model/bert_model.ckpt", "/m/uncased_L-12_H-768_A-12",
                                  "/m/uncased_L-12_H-768_A-12/model.ckpt-1000"])
def test_case_check_ignores_unknown_paths(path):
    validate_case_matches_checkpoint(False, path)
    validate_case_matches_checkpoint(True, path)


# -- the real Google vocabularies -----------------------------------------------------------------
def test_real_uncased_vocab(shared_data):
    tok = FullTokenizer(shared_data / "vocab" / "bert-base-uncased-vocab.txt", do_lower_case=True)
    assert len(tok.vocab) == 30522 and tok.vocab["[PAD]"] == 0 and tok.vocab["[UNK]"] == 100
    tokens = tok.tokenize("Who was Jim Henson ? Jim Henson was a puppeteer")
    assert tokens == ["who", "was", "jim", "henson", "?", "jim", "henson", "was", "a", "puppet",
                      "##eer"]
    assert tok.convert_tokens_to_ids(tokens) == [2040, 2001, 3958, 27227, 1029, 3958, 27227, 2001,
                                                 1037, 13997, 11510]


def test_real_cased_vocab_keeps_case(shared_data):
    tok = FullTokenizer(shared_data / "vocab" / "bert-base-cased-vocab.txt", do_lower_case=False)
    assert tok.tokenize("Jim Henson, caf\u00e9") == ["Jim", "He", "##nson", ",", "caf\u00e9"]


# -- `openbert tokenize` ------------------------------------------------------------------------
def _stdin_from(monkeypatch, data: bytes):
    """Point sys.stdin at a pipe holding ``data``."""
    import io
    import os
    import sys

    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.FileIO(r, "rb")))


def test_tokenize_command(vocab_file, monkeypatch, capsys):
    from openbert import cli

    path = vocab_file(REFERENCE_VOCAB)
    text = "UNwant\u00e9d,running\n\nrunning \xff\n".encode("utf-8") + b"un\xffwant"  # no final newline
    _stdin_from(monkeypatch, text)
    assert cli.main(["tokenize", f"--vocab_file={path}"]) == 0
    assert capsys.readouterr().out == "un ##want ##ed , runn ##ing\n\nrunn ##ing [UNK]\nun ##want\n"
    _stdin_from(monkeypatch, text)
    assert cli.main(["tokenize", f"--vocab_file={path}", "--ids", "--do_lower_case=false"]) == 0
    assert capsys.readouterr().out == "0 10 8 9\n\n8 9 0\n7 4\n"


def test_tokenize_command_errors(vocab_file, monkeypatch, capsys, tmp_path):
    from openbert import cli

    _stdin_from(monkeypatch, b"x\n")
    assert cli.main(["tokenize", f"--vocab_file={tmp_path}/missing.txt"]) == 2
    assert "not found" in capsys.readouterr().err
    assert cli.main(["tokenize", f"--vocab_file={vocab_file(REFERENCE_VOCAB)}", "--do_lower_case=false",
                     "--init_checkpoint=/m/uncased_L-12_H-768_A-12/bert_model.ckpt"]) == 2
    assert "pass --do_lower_case=true" in capsys.readouterr().err


def test_read_line_batches_streams_complete_lines():
    import os

    from openbert.commands.tokenize import read_line_batches

    r, w = os.pipe()
    os.write(w, b"a\nb\nc")
    batches = read_line_batches(r, chunk=3)
    assert next(batches) == [b"a"]  # only complete lines; "b" waits for its newline
    os.write(w, b"d\n")
    os.close(w)
    assert [line for batch in batches for line in batch] == [b"b", b"cd"]
    os.close(r)

"""WordPiece tokenization exactly as Google's original ``tokenization.py``.

``FullTokenizer.tokenize`` is a faithful port of the original (docs/faithfulness.md, "Tokenizer"):
BasicTokenizer (clean text, space out CJK ideographs, whitespace split, lower-case and strip
accents, split punctuation) then WordpieceTokenizer (greedy longest-match-first with ``##`` continuation pieces).
Character classes come from the running Python's ``unicodedata``, as in the original.

``FullTokenizer.tokenize_batch`` / ``encode_batch`` are the fast batch path (see
:mod:`openbert.tokenization.fast`): the same tokens and ids, many times faster.
"""
from __future__ import annotations

import collections
import logging
import os
import re
import unicodedata
from typing import Iterable, Sequence

from ..errors import OpenBertError
from .fast import FastWordpiece
from .unicode import (convert_to_unicode, is_chinese_char, is_control, is_punctuation,
                      is_whitespace, whitespace_tokenize)

logger = logging.getLogger(__name__)

# Google's released checkpoints and the casing each was pre-trained with.
LOWER_CASED_MODELS = ("uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
                      "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12")
CASED_MODELS = ("cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16", "multi_cased_L-12_H-768_A-12")


def validate_case_matches_checkpoint(do_lower_case: bool, init_checkpoint: str | None) -> None:
    """Raise OpenBertError when ``do_lower_case`` contradicts a known Google checkpoint's casing.

    Only paths of the form ``.../<model name>/bert_model.ckpt`` with one of Google's released model
    names are checked; anything else passes, as in the original.
    """
    if not init_checkpoint:
        return
    m = re.match("^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", str(init_checkpoint))
    if m is None:
        return
    model_name = m.group(1)
    if model_name in LOWER_CASED_MODELS and not do_lower_case:
        actual, kind, fix = "false", "lower-cased (uncased)", "true"
    elif model_name in CASED_MODELS and do_lower_case:
        actual, kind, fix = "true", "cased", "false"
    else:
        return
    raise OpenBertError(
        f"--do_lower_case={actual} does not match --init_checkpoint={init_checkpoint}: "
        f"`{model_name}` is a {kind} model, so pass --do_lower_case={fix} to tokenize text the "
        f"way the model was pre-trained.")


def printable_text(text: str | bytes) -> str:
    """Text for printing or logging (the original's helper): the same as convert_to_unicode."""
    return convert_to_unicode(text)


def load_vocab(vocab_file: str | os.PathLike) -> "collections.OrderedDict[str, int]":
    """Read a vocabulary: one token a line, id = line number, lines stripped.

    A token listed twice keeps the id of its LAST line, as in the original (the earlier id then has
    no token in ``inv_vocab``); a warning names the duplicates. Raises OpenBertError for a missing,
    empty or non-UTF-8 file.
    """
    path = os.fspath(vocab_file)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise OpenBertError(f"vocab file {path} not found: pass --vocab_file with the vocab.txt "
                            f"that came with the checkpoint") from None
    except IsADirectoryError:
        raise OpenBertError(f"vocab file {path} is a directory: pass the vocab.txt inside it") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise OpenBertError(f"vocab file {path} is not UTF-8 (bad byte at line {line}): "
                            f"re-save it as UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline ending the last line does not start another line
    if not any(line.strip() for line in lines):
        raise OpenBertError(f"vocab file {path} is empty: pass a WordPiece vocab.txt with one "
                            f"token a line")
    vocab: collections.OrderedDict[str, int] = collections.OrderedDict()
    duplicates = []
    for index, line in enumerate(lines):
        token = line.strip()
        if token in vocab:
            duplicates.append(token)
        vocab[token] = index
    if duplicates:
        logger.warning("vocab file %s lists %d token(s) more than once (%s); each keeps the id of "
                       "its last line, as the original tokenizer does", path, len(duplicates),
                       ", ".join(repr(t) for t in duplicates[:5]))
    return vocab


def convert_by_vocab(vocab, items: Iterable, what: str = "token") -> list:
    """Map each item through ``vocab``; an unknown item raises KeyError naming it."""
    try:
        return [vocab[item] for item in items]
    except KeyError as e:
        raise KeyError(f"{what} {e.args[0]!r} is not in the vocabulary") from None


def convert_tokens_to_ids(vocab, tokens: Iterable[str]) -> list[int]:
    return convert_by_vocab(vocab, tokens, "token")


def convert_ids_to_tokens(inv_vocab, ids: Iterable[int]) -> list[str]:
    return convert_by_vocab(inv_vocab, ids, "id")


class FullTokenizer:
    """End-to-end tokenization: BasicTokenizer then WordpieceTokenizer.

    ``tokenize(text)`` is the exact original; ``tokenize_batch(texts)`` / ``encode_batch(texts)``
    give the same tokens / ids for many texts, fast (optionally with worker processes).
    """

    def __init__(self, vocab_file: str | os.PathLike, do_lower_case: bool = True):
        self.vocab_file = os.fspath(vocab_file)
        self.do_lower_case = bool(do_lower_case)
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {v: k for k, v in self.vocab.items()}
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        self._fast = None

    def tokenize(self, text: str | bytes) -> list[str]:
        split_tokens = []
        for token in self.basic_tokenizer.tokenize(text):
            for sub_token in self.wordpiece_tokenizer.tokenize(token):
                split_tokens.append(sub_token)
        return split_tokens

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        return convert_by_vocab(self.vocab, tokens, "token")

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return convert_by_vocab(self.inv_vocab, ids, "id")

    # -- fast batch path ------------------------------------------------------------------
    @property
    def fast(self):
        """The :class:`openbert.tokenization.fast.FastWordpiece` engine (built on first use)."""
        if self._fast is None:
            self._fast = FastWordpiece(self.vocab, do_lower_case=self.do_lower_case,
                                       unk_token=self.wordpiece_tokenizer.unk_token,
                                       max_input_chars_per_word=self.wordpiece_tokenizer
                                       .max_input_chars_per_word)
        return self._fast

    @property
    def fast_built(self) -> bool:
        """Whether the fast engine is built already (so a batch of any size repays using it)."""
        return self._fast is not None

    def tokenize_batch(self, texts: Sequence[str | bytes], workers: int = 0) -> list[list[str]]:
        """``[self.tokenize(t) for t in texts]``, fast. ``workers`` > 1 uses that many processes
        for large batches (-1: one per CPU)."""
        return self.fast.tokenize_batch(texts, workers=workers)

    def encode_batch(self, texts: Sequence[str | bytes], workers: int = 0) -> list[list[int]]:
        """``[self.convert_tokens_to_ids(self.tokenize(t)) for t in texts]``, fast."""
        return self.fast.encode_batch(texts, workers=workers)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fast"] = None  # rebuilt on first use in the receiving process
        return state


class BasicTokenizer:
    """Punctuation splitting, lower casing, accent stripping, CJK spacing (the original's)."""

    def __init__(self, do_lower_case: bool = True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text: str | bytes) -> list[str]:
        text = convert_to_unicode(text)
        text = self._clean_text(text)
        # Chinese (and CJK) ideographs are spaced out so that each becomes its own token; this
        # covers the multilingual and Chinese models (English vocabularies contain few of them).
        text = self._tokenize_chinese_chars(text)
        orig_tokens = whitespace_tokenize(text)
        split_tokens = []
        for token in orig_tokens:
            if self.do_lower_case:
                token = token.lower()
                token = self._run_strip_accents(token)
            split_tokens.extend(self._run_split_on_punc(token))
        return whitespace_tokenize(" ".join(split_tokens))

    def _run_strip_accents(self, text: str) -> str:
        text = unicodedata.normalize("NFD", text)
        return "".join(char for char in text if unicodedata.category(char) != "Mn")

    def _run_split_on_punc(self, text: str) -> list[str]:
        output: list[list[str]] = []
        start_new_word = True
        for char in text:
            if is_punctuation(char):
                output.append([char])
                start_new_word = True
            else:
                if start_new_word:
                    output.append([])
                start_new_word = False
                output[-1].append(char)
        return ["".join(x) for x in output]

    def _tokenize_chinese_chars(self, text: str) -> str:
        output = []
        for char in text:
            if is_chinese_char(ord(char)):
                output.append(" ")
                output.append(char)
                output.append(" ")
            else:
                output.append(char)
        return "".join(output)

    def _clean_text(self, text: str) -> str:
        """Drop NUL, U+FFFD and control characters; map whitespace to a space."""
        output = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or is_control(char):
                continue
            output.append(" " if is_whitespace(char) else char)
        return "".join(output)


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece over whitespace-separated words."""

    def __init__(self, vocab, unk_token: str = "[UNK]", max_input_chars_per_word: int = 200):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text: str | bytes) -> list[str]:
        """E.g. ``"unaffable"`` -> ``["un", "##aff", "##able"]``. A word longer than
        ``max_input_chars_per_word`` or with any piece not in the vocab becomes ``unk_token``."""
        text = convert_to_unicode(text)
        output_tokens = []
        for token in whitespace_tokenize(text):
            if len(token) > self.max_input_chars_per_word:
                output_tokens.append(self.unk_token)
                continue
            is_bad = False
            start = 0
            sub_tokens = []
            while start < len(token):
                end = len(token)
                cur_substr = None
                while start < end:
                    substr = token[start:end]
                    if start > 0:
                        substr = "##" + substr
                    if substr in self.vocab:
                        cur_substr = substr
                        break
                    end -= 1
                if cur_substr is None:
                    is_bad = True
                    break
                sub_tokens.append(cur_substr)
                start = end
            if is_bad:
                output_tokens.append(self.unk_token)
            else:
                output_tokens.extend(sub_tokens)
        return output_tokens

"""The character classes and text helpers of the original tokenizer, shared by the exact path
(:mod:`openbert.tokenization.wordpiece`) and the fast batch path (:mod:`openbert.tokenization.fast`).

Classes come from the running Python's ``unicodedata``, as in the original.
"""
from __future__ import annotations

import unicodedata


def convert_to_unicode(text: str | bytes) -> str:
    """``str`` unchanged; ``bytes`` decoded as UTF-8 with invalid bytes dropped (as the original)."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", "ignore")
    raise TypeError(f"tokenizer input must be str or bytes, got {type(text).__name__}")


def whitespace_tokenize(text: str) -> list[str]:
    """Strip, then split on whitespace (``str.split()``)."""
    text = text.strip()
    if not text:
        return []
    return text.split()


# Character classes. `\t`, `\n` and `\r` are technically control characters but are treated as
# whitespace; every Unicode category starting with "P" is punctuation, plus all non-letter,
# non-digit ASCII ("^", "$", "`" are not category P but are treated as punctuation).
def is_whitespace(char: str) -> bool:
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


# CJK Unified Ideographs blocks (not Hiragana, Katakana or Hangul, which are written with spaces).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_chinese_char(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)

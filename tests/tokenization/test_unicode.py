"""tokenization.unicode: the original's character classes."""
from openbert.tokenization import unicode


def test_predicates_as_the_original_tests():
    for ch in (" ", "\t", "\r", "\n", "\u00A0"):
        assert unicode.is_whitespace(ch)
    for ch in ("A", "-"):
        assert not unicode.is_whitespace(ch)
    assert unicode.is_control("\u0005")
    for ch in ("A", " ", "\t", "\r", "\U0001F4A9"):
        assert not unicode.is_control(ch)
    for ch in ("-", "$", "`", "."):
        assert unicode.is_punctuation(ch)
    for ch in ("A", " "):
        assert not unicode.is_punctuation(ch)

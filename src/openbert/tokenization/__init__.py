"""Text to WordPiece ids, exactly as the original release.

``wordpiece`` holds the exact :class:`FullTokenizer` (BasicTokenizer then WordpieceTokenizer),
``fast`` the batch path that gives the same tokens many times faster, ``unicode`` the character
classes both share, and ``vocab`` learns a vocabulary from raw text.
"""
from .wordpiece import (CASED_MODELS, LOWER_CASED_MODELS, BasicTokenizer, FullTokenizer,
                        WordpieceTokenizer, convert_by_vocab, convert_ids_to_tokens,
                        convert_to_unicode, convert_tokens_to_ids, load_vocab, printable_text,
                        validate_case_matches_checkpoint, whitespace_tokenize)

__all__ = ["CASED_MODELS", "LOWER_CASED_MODELS", "BasicTokenizer", "FullTokenizer",
           "WordpieceTokenizer", "convert_by_vocab", "convert_ids_to_tokens", "convert_to_unicode",
           "convert_tokens_to_ids", "load_vocab", "printable_text",
           "validate_case_matches_checkpoint", "whitespace_tokenize"]

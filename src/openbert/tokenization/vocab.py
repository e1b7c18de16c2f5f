"""Learn a WordPiece vocabulary from raw text, for use with :class:`FullTokenizer`.

Beyond the original release (which shipped vocabularies but no way to make one). Text goes through
the same BasicTokenizer as FullTokenizer (fast path), so the learned pieces are exactly the words
FullTokenizer will look up; the HF ``tokenizers`` WordPiece trainer learns the pieces. The file is
laid out like Google's vocabularies:

    [PAD]  [unused0] .. [unused98]  [UNK]  [CLS]  [SEP]  [MASK]  [unused99] ..  learned pieces

([UNK] [CLS] [SEP] [MASK] at ids 100-103 when ``num_unused`` >= 99, as in Google's uncased vocab;
with fewer unused slots they follow the ones there are).
"""
from __future__ import annotations

import logging
import os
from typing import Iterable, Iterator

from ..errors import OpenBertError
from ..io.fileio import atomic_write_text
from .fast import basic_tokenize
from .wordpiece import FullTokenizer

logger = logging.getLogger(__name__)

UNUSED_BEFORE_UNK = 99  # Google's vocabularies: [unused0]..[unused98] sit between [PAD] and [UNK]


def special_tokens(num_unused: int = 100) -> list[str]:
    """The reserved head of the vocabulary in Google's layout (see module docstring)."""
    if num_unused < 0:
        raise OpenBertError(f"--num_unused must be >= 0, got {num_unused}")
    before = min(num_unused, UNUSED_BEFORE_UNK)
    return (["[PAD]"] + [f"[unused{i}]" for i in range(before)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            + [f"[unused{i}]" for i in range(before, num_unused)])



def read_lines(files: Iterable[str], batch: int = 10000) -> Iterator[list[bytes]]:
    """Lines of the files as raw bytes, in batches (the tokenizer decodes them as the original)."""
    for path in files:
        with open(path, "rb") as f:
            lines = []
            for line in f:
                lines.append(line)
                if len(lines) == batch:
                    yield lines
                    lines = []
            if lines:
                yield lines


def learn_vocab(line_batches: Iterable[list[str | bytes]], vocab_size: int,
                do_lower_case: bool = True, num_unused: int = 100, min_frequency: int = 2,
                limit_alphabet: int = 1000, max_input_chars_per_word: int = 200,
                show_progress: bool = False) -> list[str]:
    """Learn a vocabulary of ``vocab_size`` tokens in all (reserved + learned) from text lines.

    Returns the tokens in id order. Fewer tokens come back when the text has fewer pieces to learn.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    reserved = special_tokens(num_unused)
    budget = vocab_size - len(reserved)
    if budget < 1:
        raise OpenBertError(f"--vocab_size={vocab_size} leaves no room for learned pieces after "
                            f"{len(reserved)} reserved tokens: raise --vocab_size or lower --num_unused")

    def words() -> Iterator[str]:
        for lines in line_batches:
            for line in lines:
                tokens = basic_tokenize(line, do_lower_case)
                # Longer words always become [UNK] in FullTokenizer: nothing to learn from them.
                yield " ".join(t for t in tokens if len(t) <= max_input_chars_per_word)

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]",
                                           max_input_chars_per_word=max_input_chars_per_word))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(vocab_size=budget + 1, min_frequency=min_frequency,
                                        special_tokens=["[UNK]"], limit_alphabet=limit_alphabet,
                                        continuing_subword_prefix="##", show_progress=show_progress)
    tokenizer.train_from_iterator(words(), trainer=trainer)
    taken = set(reserved)
    learned = [t for t, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
               if t not in taken]
    if not learned:
        raise OpenBertError("the input text has no words to learn a vocabulary from")
    return reserved + learned[:budget]


def write_vocab(tokens: list[str], output_file: str | os.PathLike) -> None:
    """One token a line (id = line number), written atomically."""
    atomic_write_text(output_file, "".join(t + "\n" for t in tokens))


def unk_rate(vocab_file: str | os.PathLike, lines: list[str | bytes], do_lower_case: bool) -> float:
    """Fraction of tokens that FullTokenizer with ``vocab_file`` turns into [UNK] on ``lines``."""
    tok = FullTokenizer(vocab_file, do_lower_case=do_lower_case)
    rows = tok.tokenize_batch(lines)
    total = sum(len(r) for r in rows)
    return sum(r.count("[UNK]") for r in rows) / max(total, 1)

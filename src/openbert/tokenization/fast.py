"""The fast batch path of :class:`openbert.tokenization.FullTokenizer`: same tokens, many times faster.

The original tokenizer walks every character in Python. Here:

1. A text loses its control characters (one regex) and is split on whitespace (``str.split``).
   Every later step of BasicTokenizer works inside one such chunk, so a chunk ("said," or
   "Caf\u00e9") always gives the same pieces: each distinct chunk is tokenized once and cached,
   and the hot path is a split plus dictionary look-ups.
2. A new chunk goes through :func:`basic_tokenize`, where each BasicTokenizer step is one C-level
   string operation (regex substitution for CJK spacing, ``str.lower``, NFD, regex removal of
   category Mn, regex ``findall`` for the punctuation split), then WordPiece per word (cached too).

The regexes' character classes are computed once per process by running the exact path's own
predicates over every code point, so they follow the running Python's ``unicodedata`` by
construction (HF ``tokenizers`` uses older Unicode tables and disagrees on some code points).
Large batches can be spread over worker processes.
"""
from __future__ import annotations

import array
import contextlib
import gc
import itertools
import multiprocessing
import os
import re
import unicodedata
from typing import Iterable, Sequence

from .unicode import CJK_RANGES, convert_to_unicode, is_control, is_punctuation

_MAX_CACHE = 1 << 21          # distinct words remembered before the cache is cleared
_MIN_TEXTS_PER_WORKER = 256   # smaller batches are not worth shipping to processes
_WINDOW = 256                 # texts split and mapped together

_tables = None


class _Tables:
    """Regexes built from the exact path's character predicates over every code point."""

    def __init__(self):
        self.unidata_version = unicodedata.unidata_version
        drop, punct, mn = [], [], []
        for cp in range(0x110000):
            char = chr(cp)
            cat = unicodedata.category(char)
            if cat[0] == "C" or cp == 0xFFFD:  # cheap pre-filter, then the original's predicate
                if cp == 0 or cp == 0xFFFD or is_control(char):
                    drop.append(cp)
            if cat[0] == "P" or cp < 128:
                if is_punctuation(char):
                    punct.append(cp)
            if cat == "Mn":
                mn.append(cp)
        cjk = [cp for lo, hi in CJK_RANGES for cp in range(lo, hi + 1)]
        ascii_p = _char_class([cp for cp in punct if cp < 128])
        self.drop = re.compile(f"[{_char_class(drop)}]+")
        self.cjk = re.compile(f"[{_char_class(cjk)}]")
        self.ascii_drop = re.compile(f"[{_char_class([cp for cp in drop if cp < 128])}]+")
        self.ascii_words = re.compile(f"[{ascii_p}]|[^{ascii_p}\\s]+")
        # Basic Multilingual Plane text: regexes (sre compiles BMP classes to fast bitmaps).
        bmp_p = _char_class([cp for cp in punct if cp < 0x10000])
        self.astral = re.compile("[\\U00010000-\\U0010ffff]")
        self.bmp_words = re.compile(f"[{bmp_p}]|[^{bmp_p}\\s]+")
        self.bmp_mn = re.compile(f"[{_char_class([cp for cp in mn if cp < 0x10000])}]+")
        # str.translate tables for the non-ASCII split: punctuation -> " p " (so that a
        # whitespace split isolates it); when lower-casing also category Mn -> deleted.
        self.split_cased = {cp: f" {chr(cp)} " for cp in punct}
        self.split_lower = {**self.split_cased, **dict.fromkeys(mn)}


def _char_class(cps: list[int]) -> str:
    """The inside of a regex ``[...]`` matching exactly the sorted code points ``cps``."""
    parts = []
    for _, run in itertools.groupby(enumerate(sorted(cps)), lambda x: x[1] - x[0]):
        run = [cp for _, cp in run]
        lo, hi = run[0], run[-1]
        parts.append(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}")
    return "".join(parts)


def tables() -> _Tables:
    """The character-class regexes of this process (built on first use, about 0.5 s)."""
    global _tables
    if _tables is None:
        _tables = _Tables()
    return _tables


def basic_tokenize(text: str | bytes, do_lower_case: bool = True) -> list[str]:
    """``BasicTokenizer(do_lower_case).tokenize(text)``, computed with whole-text operations."""
    t = tables()
    text = convert_to_unicode(text)
    if text.isascii():
        if t.ascii_drop.search(text):
            text = t.ascii_drop.sub("", text)
        if do_lower_case:
            text = text.lower()
        return t.ascii_words.findall(text)
    if t.drop.search(text):
        text = t.drop.sub("", text)
    if t.cjk.search(text):
        text = t.cjk.sub(r" \g<0> ", text)
    if do_lower_case:
        text = text.lower()
        if not unicodedata.is_normalized("NFD", text):
            text = unicodedata.normalize("NFD", text)
    if not t.astral.search(text):
        if do_lower_case:
            text = t.bmp_mn.sub("", text)
        return t.bmp_words.findall(text)
    return text.translate(t.split_lower if do_lower_case else t.split_cased).split()


def whitespace_chunks(text: str | bytes) -> list[str]:
    """Split ``text`` into the pieces that BasicTokenizer handles independently of each other.

    Only control characters must go first (some of them are whitespace to ``str.split`` but are
    deleted, not split on, by the original); every later step of BasicTokenizer works within one
    whitespace-separated chunk, so ``basic_tokenize`` of each chunk, concatenated, equals
    ``basic_tokenize`` of the text.
    """
    t = tables()
    text = convert_to_unicode(text)
    drop = t.ascii_drop if text.isascii() else t.drop
    if drop.search(text):
        text = drop.sub("", text)
    return text.split()


class FastWordpiece:
    """Basic + WordPiece tokenization of many texts with two caches.

    ``tokenize_batch(texts)`` equals ``[FullTokenizer.tokenize(t) for t in texts]`` and
    ``encode_batch(texts)`` the matching ids. A text is split into whitespace chunks
    (:func:`whitespace_chunks`); each distinct chunk ("said," or "Caf\u00e9") is tokenized once and
    its pieces and ids are remembered; each distinct basic word is WordPiece-split once.
    """

    def __init__(self, vocab, do_lower_case: bool = True, unk_token: str = "[UNK]",
                 max_input_chars_per_word: int = 200):
        self.vocab = vocab
        self.do_lower_case = do_lower_case
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self.max_piece_len = max(map(len, vocab), default=0)
        self._unk_id = vocab.get(unk_token)
        self._pool = None
        self._pool_size = 0
        self._id_to_token = None
        self._clear()

    def _clear(self) -> None:
        """Empty the caches, then seed them from the vocabulary: a basic word that is a vocabulary
        entry (and not over-long) is its own single piece; so is a whole chunk that BasicTokenizer
        leaves as it is (e.g. "the" when lower-casing, but not "The" or "[CLS]")."""
        vocab, limit = self.vocab, self.max_input_chars_per_word
        self._word_pieces = dict(zip(vocab, zip(vocab)))  # word -> pieces; zip(vocab): (w,) tuples
        if self.max_piece_len > limit:
            for w in [w for w in vocab if len(w) > limit]:
                del self._word_pieces[w]
        lower = self.do_lower_case
        kept = [w for w in self._word_pieces
                if ((w.isalnum() and (not lower or w == w.lower())) if w.isascii()
                    else basic_tokenize(w, lower) == [w])]
        self._pieces = dict(zip(kept, zip(kept)))                      # chunk -> pieces
        self._ids = dict(zip(kept, zip(map(vocab.__getitem__, kept))))  # chunk -> ids

    # -- one word ---------------------------------------------------------------------------
    def wordpiece(self, word: str) -> tuple[str, ...]:
        """Greedy longest-match-first pieces of one basic word (no whitespace inside)."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return (self.unk_token,)
        vocab, pieces, start = self.vocab, [], 0
        while start < n:
            # No vocab entry is longer than max_piece_len, so longer candidates cannot match.
            end = min(n, start + self.max_piece_len)
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            else:
                return (self.unk_token,)
            pieces.append(piece)
            start = end
        return tuple(pieces)

    def _fill(self, chunks: set[str]) -> int:
        """Make sure every chunk of ``chunks`` is in the caches; returns how many were new."""
        missing = chunks.difference(self._pieces)
        if not missing:
            return 0
        if len(self._pieces) + len(self._word_pieces) + 2 * len(missing) > (
                len(self.vocab) + _MAX_CACHE):
            self._clear()
            missing = chunks.difference(self._pieces)
        vocab, lower, word_pieces = self.vocab, self.do_lower_case, self._word_pieces
        unk_known = self._unk_id is not None
        for chunk in missing:
            pieces = []
            for word in basic_tokenize(chunk, lower):
                wp = word_pieces.get(word)
                if wp is None:
                    wp = word_pieces[word] = self.wordpiece(word)
                pieces.extend(wp)
            self._pieces[chunk] = pieces = tuple(pieces)
            if unk_known or self.unk_token not in pieces:  # ids only where every piece has one
                self._ids[chunk] = tuple(map(vocab.__getitem__, pieces))
        return len(missing)

    # -- many texts -------------------------------------------------------------------------
    def _run(self, texts: Iterable[str | bytes], ids: bool) -> list[list]:
        chain, out, it = itertools.chain.from_iterable, [], iter(texts)
        look_first = True  # look up new chunks before mapping; off once windows stop having any
        while True:
            chunks = list(map(whitespace_chunks, itertools.islice(it, _WINDOW)))
            if not chunks:
                return out
            if look_first:
                look_first = self._fill(set(chain(chunks))) > 0
            try:
                out += self._map(chunks, ids)
            except KeyError:  # a new chunk (or, for ids, a [UNK] missing from the vocabulary)
                if self._fill(set(chain(chunks))) == 0:
                    raise KeyError(f"token {self.unk_token!r} is not in the vocabulary") from None
                look_first = True
                try:
                    out += self._map(chunks, ids)
                except KeyError:
                    raise KeyError(f"token {self.unk_token!r} is not in the vocabulary") from None

    def _map(self, chunks: list[list[str]], ids: bool) -> list[list]:
        """Pieces (or ids) of each text's chunks, from the cache (KeyError for a chunk not there)."""
        chain, get = itertools.chain.from_iterable, (self._ids if ids else self._pieces).__getitem__
        return [list(chain(map(get, c))) for c in chunks]

    def _run_packed(self, texts: Sequence[str | bytes]) -> tuple[bytes, bytes]:
        """Ids of ``texts`` packed for a cheap trip between processes: (flat ids, per-text counts)
        as int32 bytes."""
        rows = self._run(texts, ids=True)
        flat = array.array("i", itertools.chain.from_iterable(rows))
        return flat.tobytes(), array.array("i", map(len, rows)).tobytes()

    def tokenize_batch(self, texts: Sequence[str | bytes], workers: int = 0) -> list[list[str]]:
        with _gc_paused():
            return self._dispatch(texts, workers, ids=False)

    def encode_batch(self, texts: Sequence[str | bytes], workers: int = 0) -> list[list[int]]:
        with _gc_paused():
            return self._dispatch(texts, workers, ids=True)

    def _dispatch(self, texts, workers: int, ids: bool) -> list[list]:
        if isinstance(texts, (str, bytes)):
            raise TypeError("tokenize_batch/encode_batch take a list of texts; for one text use "
                            "tokenize(text)")
        workers = (os.cpu_count() or 1) if workers < 0 else workers
        if (workers <= 1 or len(texts) < 2 * _MIN_TEXTS_PER_WORKER
                or self.unk_token not in self.vocab):
            return self._run(texts, ids)
        pool = self._get_pool(workers)
        n_chunks = min(4 * workers, len(texts) // _MIN_TEXTS_PER_WORKER)
        size = -(-len(texts) // n_chunks)
        chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
        # Workers send ids back as int32 bytes (pickling millions of small objects would cost
        # more than tokenizing); tokens are looked up from the ids here.
        if not ids and self._id_to_token is None:
            self._id_to_token = {i: t for t, i in self.vocab.items()}
        out = []
        for flat_bytes, counts_bytes in pool.imap(_worker_run, chunks):
            flat, counts = array.array("i"), array.array("i")
            flat.frombytes(flat_bytes)
            counts.frombytes(counts_bytes)
            it = iter(flat.tolist() if ids else map(self._id_to_token.__getitem__, flat))
            out.extend(list(itertools.islice(it, n)) for n in counts)
        return out

    def _get_pool(self, workers: int):
        if self._pool is None or self._pool_size != workers:
            self.close()
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = multiprocessing.get_context(method).Pool(
                workers, initializer=_worker_init, initargs=(self,))
            self._pool_size = workers
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __getstate__(self):
        return {**self.__dict__, "_pool": None, "_pool_size": 0}

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: the batch allocates millions of lists and strings (no
    cycles), and collections triggered by them would scan the whole heap again and again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_worker_engine: FastWordpiece | None = None


def _worker_init(engine: FastWordpiece) -> None:
    global _worker_engine
    _worker_engine = engine
    tables()


def _worker_run(texts) -> tuple[bytes, bytes]:
    with _gc_paused():
        return _worker_engine._run_packed(texts)

"""openbert's pre-training shard format: memory-mapped numpy arrays, no padding stored.

A data set is a directory::

    meta.json                   format, version, the creation flags, vocab_size, the ids of
                                [CLS]/[SEP]/[MASK], num_instances, and per shard: name, source
                                file, seed, num_instances
    subword_ids.npy             ids of the vocabulary's ``##`` pieces (whole-word dynamic masking)
    vocab.txt                   the vocabulary the data was made with (pretrain saves it with its
                                model, so fill-mask and extract-features find it)
    shard_00000/                one shard per input file (in input order)
        input_ids.npy           [T] uint16 (int32 when vocab_size > 65535): every instance's
                                tokens back to back, masks applied, no padding
        offsets.npy             [N+1] int64: instance i is input_ids[offsets[i]:offsets[i+1]]
        a_lengths.npy           [N] uint16: tokens with segment id 0 ([CLS] A [SEP]); the rest are 1
        masked_lm_positions.npy [M] uint16, masked_lm_ids.npy [M] (dtype of input_ids)
        mlm_offsets.npy         [N+1] int64: instance i's predictions are [mlm_offsets[i]:mlm_offsets[i+1]]
        next_sentence_labels.npy [N] uint8: 1 = B is a random next sentence

Every array is a plain ``.npy`` file, opened with ``numpy.load(mmap_mode="r")``, so a data set
larger than memory trains without loading it. The unmasked text of an instance is
``input_ids`` with ``masked_lm_ids`` put back at ``masked_lm_positions`` (dynamic masking uses this).
A directory is written under a temporary name and swapped in when complete
(:func:`openbert.io.fileio.output_folder`); an existing directory is replaced only when it holds
nothing but an earlier output of ``create-pretraining-data``, and never when it holds an input.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict

import numpy as np

from ..errors import OpenBertError
from .fileio import output_folder

FORMAT = "openbert-pretraining-shards"
VERSION = 1
ARRAYS = ("input_ids", "offsets", "a_lengths", "masked_lm_positions", "masked_lm_ids",
          "mlm_offsets", "next_sentence_labels")
VOCAB = "vocab.txt"


COMMAND = "create-pretraining-data"
WHAT = "an openbert shard directory"


def is_shard_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "meta.json"))


def holds_only_shards(path: str) -> bool:
    """True when ``path`` holds exactly a shard set (meta.json, subword_ids.npy, the vocabulary
    meta.json names and the shard folders it names, each with only its arrays): one written
    without the manifest of output folders."""
    try:
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        names = {s["name"] for s in meta["shards"]}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    own = names | {"meta.json", "subword_ids.npy"} | ({meta["vocab_file"]} if meta.get("vocab_file") else set())
    if meta.get("format") != FORMAT or not set(os.listdir(path)) <= own:
        return False
    arrays = {f"{k}.npy" for k in ARRAYS}
    return all(not os.path.isdir(os.path.join(path, n)) or set(os.listdir(os.path.join(path, n))) <= arrays
               for n in names)


def check_output(directory: str, inputs=()) -> None:
    """Fail before any work when ``directory`` may not receive shards (see :class:`ShardWriter`)."""
    from .fileio import check_output_dir

    check_output_dir(directory, COMMAND, "--output_file", overwrite_flag=None, inputs=inputs,
                     legacy=holds_only_shards, what=WHAT)


class ShardWriter:
    """Collect shards into ``directory`` (swapped in atomically on ``close()``).

    An existing ``directory`` is replaced only when it is an earlier output of
    create-pretraining-data and holds none of ``inputs`` (OpenBertError otherwise).
    """

    def __init__(self, directory: str, cfg, vocab, do_lower_case: bool | None = None, inputs=(),
                 vocab_file: str | None = None):
        """``cfg``: PretrainingDataConfig; ``vocab``: MaskingVocab; ``vocab_file``: copied in as
        ``vocab.txt``."""
        self.directory = os.fspath(directory)
        self._ctx = output_folder(self.directory, COMMAND, fresh=True, strict=True,
                                  flag="--output_file", overwrite_flag=None, inputs=inputs,
                                  legacy=holds_only_shards, what=WHAT)
        self._tmp = self._ctx.__enter__()
        self.token_dtype = np.uint16 if vocab.size <= 1 << 16 else np.int32
        self.meta = {"format": FORMAT, "version": VERSION, **asdict(cfg),
                     "vocab_size": int(vocab.size), "do_lower_case": do_lower_case,
                     "cls_id": vocab.cls_id, "sep_id": vocab.sep_id, "mask_id": vocab.mask_id,
                     "num_instances": 0, "shards": []}
        np.save(os.path.join(self._tmp, "subword_ids.npy"),
                np.flatnonzero(np.frombuffer(bytes(vocab.is_subword), np.uint8)).astype(np.int32))
        if vocab_file:
            shutil.copyfile(vocab_file, os.path.join(self._tmp, VOCAB))
            self.meta["vocab_file"] = VOCAB

    def add(self, arrays, source: str = "", seed: int | None = None) -> None:
        name = f"shard_{len(self.meta['shards']):05d}"
        d = os.path.join(self._tmp, name)
        os.makedirs(d)
        small = np.uint16 if self.meta["max_seq_length"] <= 1 << 16 else np.int32
        dtypes = {"input_ids": self.token_dtype, "masked_lm_ids": self.token_dtype,
                  "offsets": np.int64, "mlm_offsets": np.int64, "a_lengths": small,
                  "masked_lm_positions": small, "next_sentence_labels": np.uint8}
        for key in ARRAYS:
            np.save(os.path.join(d, f"{key}.npy"), getattr(arrays, key).astype(dtypes[key]))
        self.meta["shards"].append({"name": name, "source": source, "seed": seed,
                                    "num_instances": len(arrays)})
        self.meta["num_instances"] += len(arrays)

    def close(self) -> None:
        try:
            with open(os.path.join(self._tmp, "meta.json"), "w", encoding="utf-8") as f:
                json.dump(self.meta, f, indent=2)
                f.write("\n")
        except BaseException as e:
            self._ctx.__exit__(type(e), e, e.__traceback__)
            raise
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        err = RuntimeError("aborted")
        self._ctx.__exit__(RuntimeError, err, None)  # removes the temporary directory


class Shards:
    """Read a shard directory: ``len()``, ``instance_arrays(i)`` and concatenated views.

    Arrays stay memory-mapped; ``lengths`` [N] gives every instance's token count.
    """

    def __init__(self, directory: str):
        self.directory = os.fspath(directory)
        meta_path = os.path.join(self.directory, "meta.json")
        try:
            with open(meta_path, encoding="utf-8") as f:
                self.meta = json.load(f)
        except (OSError, ValueError) as e:
            raise OpenBertError(f"cannot read shard directory {self.directory} ({e}): pass a "
                                f"directory written by `openbert create-pretraining-data`") from None
        if self.meta.get("format") != FORMAT:
            raise OpenBertError(f"{meta_path} is not an openbert pre-training shard index")
        if self.meta.get("version", 0) > VERSION:
            raise OpenBertError(f"{self.directory} uses shard format version "
                                f"{self.meta['version']}; this openbert reads up to {VERSION}: "
                                f"upgrade openbert")
        self.max_seq_length = int(self.meta["max_seq_length"])
        self.max_predictions_per_seq = int(self.meta["max_predictions_per_seq"])
        self.shards = [self._open(s["name"]) for s in self.meta["shards"]]
        counts = [len(s["a_lengths"]) for s in self.shards]
        self.starts = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=self.starts[1:])
        sub = os.path.join(self.directory, "subword_ids.npy")
        self.subword_ids = np.load(sub) if os.path.isfile(sub) else None
        vocab = os.path.join(self.directory, VOCAB)
        self.vocab_file = vocab if os.path.isfile(vocab) else None  # None: data made before it was kept
        self.lengths = np.concatenate([np.diff(s["offsets"]) for s in self.shards]) \
            if self.shards else np.zeros(0, np.int64)

    def _open(self, name: str) -> dict[str, np.ndarray]:
        d = os.path.join(self.directory, name)
        out = {}
        for key in ARRAYS:
            path = os.path.join(d, f"{key}.npy")
            try:
                out[key] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise OpenBertError(f"unreadable shard file {path} ({e}): re-create the data "
                                    f"with `openbert create-pretraining-data`") from None
        n = len(out["a_lengths"])
        if (len(out["offsets"]) != n + 1 or len(out["mlm_offsets"]) != n + 1
                or len(out["next_sentence_labels"]) != n
                or (n and (out["offsets"][-1] != len(out["input_ids"])
                           or out["mlm_offsets"][-1] != len(out["masked_lm_ids"])))):
            raise OpenBertError(f"shard {d} is inconsistent (array sizes do not match): "
                                f"re-create the data with `openbert create-pretraining-data`")
        return out

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, i: int) -> tuple[dict, int]:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.shards[k], i - int(self.starts[k])

    def instance(self, i: int) -> dict[str, np.ndarray]:
        """Instance ``i`` unpadded: input_ids, segment_ids [n]; masked_lm_positions,
        masked_lm_ids [m]; next_sentence_labels (int)."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        s, j = self.locate(i)
        a, b = int(s["offsets"][j]), int(s["offsets"][j + 1])
        ma, mb = int(s["mlm_offsets"][j]), int(s["mlm_offsets"][j + 1])
        n = b - a
        segment_ids = np.zeros(n, np.int64)
        segment_ids[int(s["a_lengths"][j]):] = 1
        return {"input_ids": s["input_ids"][a:b].astype(np.int64), "segment_ids": segment_ids,
                "masked_lm_positions": s["masked_lm_positions"][ma:mb].astype(np.int64),
                "masked_lm_ids": s["masked_lm_ids"][ma:mb].astype(np.int64),
                "next_sentence_labels": int(s["next_sentence_labels"][j])}

"""Training checkpoints: everything needed to continue a run exactly, written atomically, checksummed.

A checkpoint is one file ``<output_dir>/checkpoints/step-00001000.pt`` (``torch.save``) holding the
model and optimizer state, the scheduler, the fp16 loss scaler, every rank's random number
generator states, the global step and the data position, the run's fingerprint (which model, data
and batch settings it belongs to) and a CRC32C checksum of all of that. It is written to a
temporary name and renamed (``openbert.io.fileio``), so a crash never leaves a half-written
checkpoint behind; the checksum is verified on load, so a damaged one is never trained on
(:func:`load_latest` falls back to the newest good checkpoint).
"""
from __future__ import annotations

import dataclasses
import logging
import random
import re
from pathlib import Path

import google_crc32c
import numpy as np
import torch

from ..errors import OpenBertError
from ..io.fileio import atomic_open

logger = logging.getLogger(__name__)

FORMAT = "openbert-training-state"
VERSION = 2  # 2: "checksum" and "fingerprint"
_NAME = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_dir(output_dir) -> Path:
    return Path(output_dir) / "checkpoints"


def checkpoint_path(output_dir, step: int) -> Path:
    return checkpoint_dir(output_dir) / f"step-{step:08d}.pt"


def list_checkpoints(output_dir) -> list[tuple[int, Path]]:
    """``[(step, path), ...]`` of the checkpoints in ``output_dir``, oldest first."""
    d = checkpoint_dir(output_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(output_dir) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


# ---------------------------------------------------------------------------------------------
# checksums and fingerprints
# ---------------------------------------------------------------------------------------------
class _Crc:
    """A running CRC32C over a canonical byte encoding of nested Python / numpy / torch values."""

    def __init__(self):
        self.crc = 0

    def bytes(self, b) -> None:
        self.crc = google_crc32c.extend(self.crc, b)

    def tag(self, text: str) -> None:
        self.bytes(text.encode("utf-8", "surrogatepass"))

    def feed(self, obj) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            self.tag(f"T{t.dtype}{tuple(t.shape)}")
            if t.numel():
                self.bytes(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(obj, np.ndarray):
            a = np.ascontiguousarray(obj)
            self.tag(f"A{a.dtype.str}{a.shape}")
            if a.size and a.dtype != object:
                self.bytes(a.reshape(-1).view(np.uint8))
            elif a.size:
                self.feed(a.tolist())
        elif isinstance(obj, dict):
            self.tag("{")
            for k in sorted(obj, key=repr):
                self.feed(k)
                self.feed(obj[k])
            self.tag("}")
        elif isinstance(obj, (list, tuple)):
            if obj and all(type(x) is int for x in obj) and -2**63 <= min(obj) and max(obj) < 2**63:
                self.tag(f"I{len(obj)}")
                self.bytes(np.asarray(obj, np.int64).view(np.uint8))
            else:
                self.tag(f"[{len(obj)}")
                for x in obj:
                    self.feed(x)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            self.tag(type(obj).__name__)
            self.feed({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
        elif obj is None or isinstance(obj, (bool, int, float, str, bytes, np.generic)):
            self.tag(f"{type(obj).__name__}:{obj!r}")
        else:
            self.tag(type(obj).__name__)

    def hexdigest(self) -> str:
        return f"{self.crc:08x}"


def checksum(obj) -> str:
    """CRC32C (hex) of a nested state: tensors and arrays by their bytes, dtype and shape."""
    c = _Crc()
    c.feed(obj)
    return c.hexdigest()


def data_fingerprint(dataset, max_items: int = 4096, item=None) -> str:
    """A short digest of a map-style dataset: its length and ``max_items`` evenly spaced examples
    (all of them in a smaller one). ``item(i)`` reads example ``i`` (default ``dataset[i]``)."""
    n = len(dataset)
    get = item or dataset.__getitem__
    idx = range(n) if n <= max_items else np.linspace(0, n - 1, max_items).round().astype(np.int64)
    c = _Crc()
    c.tag(f"n={n}")
    for i in idx:
        c.feed(get(int(i)))
    return c.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short digest of a model's architecture: class, config, and every tensor's name, shape
    and dtype (not the values, which training changes)."""
    config = getattr(model, "config", None)
    described = config.to_dict() if hasattr(config, "to_dict") else repr(config)
    if isinstance(described, dict):  # label names are written into the config when saving
        described = {k: v for k, v in described.items() if k not in ("id2label", "label2id")}
    c = _Crc()
    c.feed([type(model).__name__, described,
            [(k, list(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]])
    return c.hexdigest()


def describe_mismatch(saved: dict | None, current: dict) -> str:
    """What differs between two fingerprints, in words ("" when nothing)."""
    if not saved:
        return "it records no fingerprint (written by an older openbert)"
    names = {"model": "the model", "data": "the training data"}
    diffs = []
    for key in current:
        if saved.get(key) != current[key]:
            if key in names:
                diffs.append(names[key])
            else:
                diffs.append(f"--{key}={saved.get(key)} there, {current[key]} now")
    return ", ".join(diffs)


# ---------------------------------------------------------------------------------------------
# saving and loading
# ---------------------------------------------------------------------------------------------
def save_checkpoint(path, state: dict) -> None:
    """Write ``state`` (with its checksum) to ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": VERSION, **state}
    state["checksum"] = checksum(state)
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` and verify its checksum; clear errors
    for missing, unreadable, foreign or damaged files."""
    path = Path(path)
    if not path.is_file():
        raise OpenBertError(f"training checkpoint {path} does not exist; start without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise OpenBertError(
            f"training checkpoint {path} is unreadable ({type(e).__name__}: {str(e)[:200]}); delete it "
            f"to resume from the previous checkpoint, or pass --overwrite_output_dir to start over") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise OpenBertError(f"{path} is not an openbert training checkpoint; delete it, or pass "
                            f"--overwrite_output_dir to start over")
    if "checksum" in state:
        stored = state.pop("checksum")
        if checksum(state) != stored:
            raise OpenBertError(f"training checkpoint {path} is damaged (its contents do not match "
                                f"their checksum); delete it to resume from the previous checkpoint, "
                                f"or pass --overwrite_output_dir to start over")
    elif state.get("version", 1) >= 2:
        raise OpenBertError(f"training checkpoint {path} is damaged (its checksum is missing)")
    return state


def load_latest(output_dir) -> tuple[Path, dict] | None:
    """The newest checkpoint in ``output_dir`` that loads and verifies -> (path, state), or None
    when there is none. Damaged ones are skipped with a warning naming them; OpenBertError when
    every checkpoint there is damaged."""
    found = list_checkpoints(output_dir)
    bad, errors = [], []
    for _, path in reversed(found):
        try:
            state = load_checkpoint(path)
        except OpenBertError as e:
            bad.append(path.name)
            errors.append(e)
            continue
        for e in errors:
            logger.warning("%s", e)
        if bad:
            logger.warning("resuming from %s, the newest good checkpoint: the newer %s %s damaged",
                           path.name, ", ".join(bad), "is" if len(bad) == 1 else "are")
        return path, state
    if errors:
        older = f" (the older {', '.join(bad[1:])} too)" if len(bad) > 1 else ""
        raise OpenBertError(f"{errors[0]}{older}")
    return None


def prune_checkpoints(output_dir, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps all)."""
    if keep <= 0:
        return
    for _, p in list_checkpoints(output_dir)[:-keep]:
        p.unlink(missing_ok=True)


def check_model_state(model: torch.nn.Module, saved: dict, path) -> None:
    """Raise a clear error when a checkpoint's tensors do not fit ``model`` (names or shapes)."""
    own = model.state_dict()
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    if missing or unexpected:
        raise OpenBertError(
            f"training checkpoint {path} is for a different model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}; resume with the same model and task, or use a new --output_dir")
    for k, t in own.items():
        if tuple(saved[k].shape) != tuple(t.shape):
            raise OpenBertError(
                f"training checkpoint {path} is for a different model shape: {k} is "
                f"{tuple(saved[k].shape)} there but {tuple(t.shape)} here; resume with the same "
                f"bert_config.json, or use a new --output_dir")


# ---------------------------------------------------------------------------------------------
# random number generators
# ---------------------------------------------------------------------------------------------
def rng_state() -> dict:
    """Python, numpy, torch (CPU and every CUDA device) generator states, as plain tensors."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy_key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(np_state["state"]["pos"]),
        "numpy_gauss": [int(np_state["has_gauss"]), float(np_state["gauss"])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    has_gauss, cached = state["numpy_gauss"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": state["numpy_key"].numpy().astype(np.uint32),
                                   "pos": state["numpy_pos"]},
                         "has_gauss": has_gauss, "gauss": cached})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

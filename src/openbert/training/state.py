"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is one file ``<output_dir>/checkpoints/step-00001000.pt`` (``torch.save``) holding the
model and optimizer state, the scheduler, the fp16 loss scaler, every rank's random number
generator states, the global step and the data position. It is written to a temporary name and
renamed (``openbert.io.fileio``), so a crash never leaves a half-written checkpoint behind.
"""
from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import OpenBertError
from ..io.fileio import atomic_open

logger = logging.getLogger(__name__)

FORMAT = "openbert-training-state"
VERSION = 1
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


def save_checkpoint(path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        torch.save({"format": FORMAT, "version": VERSION, **state}, f)


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors for missing or bad files."""
    path = Path(path)
    if not path.is_file():
        raise OpenBertError(f"training checkpoint {path} does not exist; start without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise OpenBertError(
            f"training checkpoint {path} is unreadable ({type(e).__name__}: {str(e)[:200]}); delete it "
            f"to resume from the previous checkpoint, or start without --resume") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise OpenBertError(f"{path} is not an openbert training checkpoint; delete it or start "
                            f"without --resume")
    return state


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

"""A PNG of the training curves from ``metrics.jsonl`` (matplotlib, a core dependency, draws it)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..io.fileio import atomic_path

logger = logging.getLogger(__name__)


def read_metrics(path) -> list[dict]:
    """The JSON lines of a metrics file (lines that do not parse, e.g. a torn last line, are skipped)."""
    rows = []
    p = Path(path)
    if not p.is_file():
        return rows
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_metrics(metrics_path, png_path) -> bool:
    """Plot loss, learning rate and throughput against step; False (with a warning) when
    matplotlib is missing from the install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is missing from this install, so no metrics.png (the curves are in "
                       "metrics.jsonl); pip install matplotlib")
        return False
    rows = [r for r in read_metrics(metrics_path) if "step" in r]
    if not rows:
        return False
    steps = [r["step"] for r in rows]
    panels = [(k, label) for k, label in (("loss", "training loss"), ("lr", "learning rate"),
                                          ("seq_per_s", "sequences / s")) if k in rows[0]]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.4 * len(panels)), sharex=True)
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, (key, label) in zip(axes, panels):
        ax.plot(steps, [r.get(key) for r in rows], lw=1.2)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True

